import HerdwatchEvents

#if canImport(Glibc)
import Glibc
#endif

/// The host's processes, seeded from /proc and kept current from fork, exec and exit, so every event
/// can name its process and its ancestors by ids that survive pid reuse.
///
/// An entity id is the boot id, the pid and the start time in clock ticks since boot: the same
/// process gets the same id from any source and after an agent restart (it is computed, not
/// stored), and a later process with the same pid gets another (in the rare case of a pid reused
/// within one clock tick, a generation suffix tells them apart). A pid keeps its recent generations,
/// so an event read late is matched to the process that was running when it happened. Exited
/// processes stay for `exitGraceMilliseconds`, and the table never holds more than
/// `maximumEntries`: the oldest exited, then the oldest, go first.
public final class ProcessTable {
    public struct Entry: Sendable, Equatable, Codable {
        public var pid: Int32
        public var parentPID: Int32
        /// Clock ticks since boot (/proc/PID/stat field 22).
        public var startTicks: UInt64
        /// When it started, in milliseconds since the epoch.
        public var startedAt: Int64
        public var entityID: String
        public var name: String?
        public var executable: String?
        public var args: [String]?
        public var containerID: String?
        /// The session id (/proc/PID/stat field 6): the pid of the session's leader.
        public var sessionID: Int32?
        /// Milliseconds since the epoch; nil while running.
        public var exitedAt: Int64?
        /// The root of its tree (see `sessionLeader`), once an event asked for it.
        var leader: Leader?
    }

    struct Leader: Sendable, Equatable, Codable {
        var entityID: String
        var pid: Int32
    }

    public let bootID: String
    public let procRoot: String
    public var maximumEntries: Int
    public var exitGraceMilliseconds: Int64
    /// How many ancestors an event lists.
    public var maximumAncestry: Int
    /// Generations of each pid, oldest first.
    private var entries: [Int32: [Entry]] = [:]
    private var total = 0
    private var exitedOrder: [(pid: Int32, entityID: String)] = []
    public private(set) var evictions = 0
    /// Wall-clock milliseconds at boot, for the kernel's since-boot times.
    public let bootMillis: Int64

    public init(
        procRoot: String = "/proc", bootID: String? = nil, maximumEntries: Int = 65_536,
        exitGraceMilliseconds: Int64 = 30_000, maximumAncestry: Int = 8
    ) {
        self.procRoot = procRoot
        self.bootID = bootID ?? Self.readBootID(procRoot) ?? "00000000-0000-0000-0000-000000000000"
        entityIDPrefix = "\(self.bootID.prefix(8))-"
        self.maximumEntries = maximumEntries
        self.exitGraceMilliseconds = exitGraceMilliseconds
        self.maximumAncestry = maximumAncestry
        bootMillis = SystemClock.wallMilliseconds() - SystemClock.monotonicMilliseconds()
    }

    public var count: Int { total }

    /// The newest generation of a pid.
    public func entry(pid: Int32) -> Entry? { entries[pid]?.last }

    /// The generation of a pid that was running at `time` (milliseconds since the epoch).
    public func entry(pid: Int32, at time: Int64) -> Entry? { lookup(pid: pid, at: time) }

    public func entityID(pid: Int32, startTicks: UInt64) -> String {
        var id = entityIDPrefix
        id += String(pid)
        id += "-"
        id += String(startTicks)
        return id
    }

    /// The boot id's first eight characters and a dash: every entity id starts with it.
    private let entityIDPrefix: String

    // MARK: Sources

    /// Reads every process in /proc.
    public func seed() {
        guard let directory = opendir(procRoot) else { return }
        defer { closedir(directory) }
        while let item = readdir(directory) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), entries[pid] == nil else { continue }
            if let entry = read(pid: pid) { append(entry) }
        }
    }

    /// A fork seen by the proc connector (`nanosecondsSinceBoot`: its timestamp): always a new
    /// process, even if its pid and start tick match one the table knows.
    public func fork(child: Int32, parent: Int32, nanosecondsSinceBoot: UInt64, now: Int64) {
        let startedAt = bootMillis + Int64(nanosecondsSinceBoot / 1_000_000)
        let parentEntry = lookup(pid: parent, at: startedAt)
        let ticks = nanosecondsSinceBoot / (1_000_000_000 / Self.clockTicksPerSecond)
        // No /proc read: the fork's own timestamp gives the start tick, and a child starts as a
        // copy of its parent (program, arguments, cgroup). For a process that lives on, the id is
        // kept across agent restarts by the state file (see `save` and `restore`).
        var entry = Entry(
            pid: child, parentPID: parent, startTicks: ticks, startedAt: startedAt,
            entityID: entityID(pid: child, startTicks: ticks))
        entry.name = parentEntry?.name
        entry.args = parentEntry?.args
        entry.containerID = parentEntry?.containerID
        entry.sessionID = parentEntry?.sessionID
        if entry.executable == nil { entry.executable = parentEntry?.executable }
        entry.startedAt = startedAt
        if var previous = entries[child]?.last {
            if previous.exitedAt == nil {
                // Its exit was missed; it ended before this fork.
                previous.exitedAt = startedAt
                replaceLast(previous)
                exitedOrder.append((child, previous.entityID))
            }
            if previous.entityID.hasPrefix(entry.entityID) {
                entry.entityID += "-\(entries[child]?.count ?? 1)"
            }
        }
        append(entry)
    }

    /// An exec: same process, new program. Arguments and executable from the audit record when it
    /// has them, else from /proc.
    public func exec(pid: Int32, executable: String?, args: [String]?, name: String?, at time: Int64) {
        if var entry = lookup(pid: pid, at: time), entry.exitedAt == nil || entry.exitedAt! >= time {
            let fresh = (executable == nil || args == nil) ? read(pid: pid) : nil
            let sameProcess = fresh == nil || fresh?.startTicks == entry.startTicks
            if sameProcess {
                entry.executable = executable ?? fresh?.executable ?? entry.executable
                entry.args = args ?? fresh?.args ?? entry.args
                entry.name = name ?? fresh?.name ?? entry.name
                replace(entry)
                return
            }
        }
        // Unknown pid: read it while it is there.
        if var entry = read(pid: pid) {
            entry.executable = executable ?? entry.executable
            entry.args = args ?? entry.args
            entry.name = name ?? entry.name
            if let last = entries[pid]?.last, last.entityID == entry.entityID {
                replace(entry)
            } else {
                append(entry)
            }
        }
    }

    /// The process made itself a session leader (setsid): it roots a new process tree.
    public func setsid(pid: Int32) {
        guard var entry = entries[pid]?.last, entry.exitedAt == nil else { return }
        entry.sessionID = pid
        entry.leader = nil
        replaceLast(entry)
    }

    /// A kernel thread: kthreadd, or a child of it that never ran a program (a usermode helper
    /// such as modprobe becomes a process once its exec is seen). The kernel starts them for its
    /// own work, e.g. one for each audit status reply.
    public func isKernelThread(pid: Int32, at time: Int64) -> Bool {
        guard let entry = lookup(pid: pid, at: time) else { return false }
        return entry.executable == nil && (entry.pid == 2 || entry.parentPID == 2)
    }

    /// The process with this pid that was running at `now` ended then.
    public func exit(pid: Int32, now: Int64) {
        guard var entry = lookup(pid: pid, at: now), entry.exitedAt == nil else { return }
        entry.exitedAt = now
        replace(entry)
        exitedOrder.append((pid, entry.entityID))
        expire(now: now)
    }

    /// Drops exited processes past their grace period.
    public func expire(now: Int64) {
        var index = 0
        while index < exitedOrder.count {
            let (pid, id) = exitedOrder[index]
            guard let position = entries[pid]?.firstIndex(where: { $0.entityID == id }),
                let exited = entries[pid]?[position].exitedAt
            else {
                index += 1
                continue
            }
            guard now - exited >= exitGraceMilliseconds else { break }
            remove(pid: pid, at: position)
            index += 1
        }
        if index > 0 { exitedOrder.removeFirst(index) }
    }

    // MARK: Enrichment

    /// Fills entity ids, parent details, ancestry and container id into an event's process: the
    /// process that had the pid when the event happened.
    public func enrich(_ event: inout Event, now: Int64) {
        guard var process = event.process, let rawPID = process.pid, let pid = Int32(exactly: rawPID) else { return }
        let time = event.timestamp.totalMilliseconds
        if event.kind == .processStart && event.module == "auditd" {
            exec(pid: pid, executable: process.executable, args: process.args, name: process.name, at: time)
        }
        guard var entry = lookup(pid: pid, at: time) ?? resolve(pid: pid) else { return }
        if let reported = process.parentPID.flatMap({ Int32(exactly: $0) }), reported != entry.parentPID, reported > 0 {
            entry.parentPID = reported  // reparented, or /proc was read late
            replace(entry)
        }
        process.entityID = entry.entityID
        if process.parentPID == nil, entry.parentPID > 0 { process.parentPID = Int64(entry.parentPID) }
        // The parent and the chain above it are the same for every child of one parent: computed
        // once per parent process and kept (bounded) while it runs.
        if let parentEntry = entry.parentPID > 0 ? (lookup(pid: entry.parentPID, at: time) ?? resolve(pid: entry.parentPID)) : nil {
            let (parent, above) = lineage(of: parentEntry, at: time, excluding: pid)
            process.parent = parent
            process.ancestry = above
        } else {
            process.ancestry = []
        }
        let leader = sessionLeader(of: entry, at: time)
        process.sessionLeaderEntityID = leader.entityID
        process.sessionLeaderPID = Int64(leader.pid)
        if event.containerID == nil { event.containerID = entry.containerID }
        event.process = process
        if event.kind == .processExit { exit(pid: pid, now: now) }
    }

    /// The root of a process's tree: itself when it leads its session (sshd's session child, a cron
    /// job, a container's init, a daemon), else its parent's root; a process whose parent is init
    /// or kthreadd (or unknown) roots its own tree. Sessions are inherited at fork, so this is the
    /// session leader while it runs, and stays the same after it exits. Kept in each entry of the
    /// chain walked, so a process's later events (its exit) and its children's find it there.
    private func sessionLeader(of entry: Entry, at time: Int64) -> Leader {
        var chain: [Entry] = []
        var cursor = entry
        var result: Leader?
        while result == nil {
            if let known = cursor.leader {
                result = known
            } else if cursor.sessionID == cursor.pid || cursor.parentPID <= 2 || chain.count >= 64 {
                result = Leader(entityID: cursor.entityID, pid: cursor.pid)
                chain.append(cursor)
            } else if let parent = lookup(pid: cursor.parentPID, at: time) ?? resolve(pid: cursor.parentPID),
                parent.pid != cursor.pid, !chain.contains(where: { $0.entityID == parent.entityID })
            {
                chain.append(cursor)
                cursor = parent
            } else {
                result = Leader(entityID: cursor.entityID, pid: cursor.pid)
                chain.append(cursor)
            }
        }
        for var member in chain {
            member.leader = result
            replace(member)
        }
        return result!
    }

    private struct Lineage {
        var parent: Event.Parent
        var ancestry: [String]
        var executable: String?
    }
    private var lineages: [String: Lineage] = [:]

    /// A process as a parent (`process.parent.*`) and the entity ids from it upwards.
    private func lineage(of parentEntry: Entry, at time: Int64, excluding child: Int32) -> (Event.Parent, [String]) {
        if let cached = lineages[parentEntry.entityID], cached.executable == parentEntry.executable {
            return (cached.parent, cached.ancestry)
        }
        var parent = Event.Parent()
        parent.entityID = parentEntry.entityID
        parent.name = parentEntry.name
        parent.executable = parentEntry.executable
        parent.args = parentEntry.args
        var ancestry = [parentEntry.entityID]
        var cursor = parentEntry.parentPID
        var seen: Set<Int32> = [child, parentEntry.pid]
        while cursor > 0, ancestry.count < maximumAncestry, seen.insert(cursor).inserted,
            let ancestor = lookup(pid: cursor, at: time) ?? resolve(pid: cursor)
        {
            ancestry.append(ancestor.entityID)
            cursor = ancestor.parentPID
        }
        if lineages.count >= 4096 { lineages.removeAll(keepingCapacity: true) }
        lineages[parentEntry.entityID] = Lineage(parent: parent, ancestry: ancestry, executable: parentEntry.executable)
        return (parent, ancestry)
    }

    /// The generation of `pid` that was running at `time`: the newest whose life, widened by
    /// `timeSlack` on both ends, holds it; else the newest that had started; else the oldest.
    /// Audit stamps records with the kernel's coarse clock (up to a tick behind) in milliseconds,
    /// while fork and exit times are exact, hence the slack.
    private func lookup(pid: Int32, at time: Int64) -> Entry? {
        guard let generations = entries[pid], !generations.isEmpty else { return nil }
        if let running = generations.last(where: {
            $0.startedAt - Self.timeSlack <= time && ($0.exitedAt.map { $0 + Self.timeSlack >= time } ?? true)
        }) {
            return running
        }
        return generations.last { $0.startedAt <= time } ?? generations.first
    }

    static let timeSlack: Int64 = 10

    /// The pid from /proc, added if the table did not know it.
    private func resolve(pid: Int32) -> Entry? {
        if let entry = entries[pid]?.last { return entry }
        guard let entry = read(pid: pid) else { return nil }
        append(entry)
        return entry
    }

    private func append(_ entry: Entry) {
        if total >= maximumEntries { evict() }
        entries[entry.pid, default: []].append(entry)
        total += 1
    }

    private func replace(_ entry: Entry) {
        guard let index = entries[entry.pid]?.lastIndex(where: { $0.entityID == entry.entityID }) else { return }
        entries[entry.pid]?[index] = entry
    }

    private func replaceLast(_ entry: Entry) {
        guard let count = entries[entry.pid]?.count, count > 0 else { return }
        entries[entry.pid]?[count - 1] = entry
    }

    private func remove(pid: Int32, at position: Int) {
        entries[pid]?.remove(at: position)
        if entries[pid]?.isEmpty == true { entries[pid] = nil }
        total -= 1
    }

    private func evict() {
        // The oldest exited first, else the entry that started first.
        while let (pid, id) = exitedOrder.first {
            exitedOrder.removeFirst()
            if let position = entries[pid]?.firstIndex(where: { $0.entityID == id }) {
                remove(pid: pid, at: position)
                evictions += 1
                return
            }
        }
        var oldest: Entry?
        for generations in entries.values {
            if let first = generations.first, oldest == nil || first.startTicks < oldest!.startTicks { oldest = first }
        }
        if let oldest, let position = entries[oldest.pid]?.firstIndex(of: oldest) {
            remove(pid: oldest.pid, at: position)
            evictions += 1
        }
    }

    // MARK: State across restarts

    /// The running processes, for `restore` after a restart.
    public func runningEntries() -> [Entry] {
        entries.values.compactMap { $0.last }.filter { $0.exitedAt == nil }.sorted { $0.pid < $1.pid }
    }

    /// Takes back the ids a previous run gave to processes that still run: a saved entry is kept
    /// when its pid is alive with (nearly) the same start tick, so its entity id stays the same.
    /// Returns how many were kept.
    @discardableResult
    public func restore(_ saved: [Entry]) -> Int {
        var kept = 0
        for entry in saved {
            guard let now = read(pid: entry.pid, details: false),
                now.startTicks + 2 >= entry.startTicks, now.startTicks <= entry.startTicks + 2
            else { continue }
            if let position = entries[entry.pid]?.lastIndex(where: { $0.startTicks == now.startTicks }) {
                var merged = entries[entry.pid]![position]
                merged.entityID = entry.entityID
                if merged.executable == nil { merged.executable = entry.executable }
                if merged.args == nil { merged.args = entry.args }
                entries[entry.pid]![position] = merged
            } else {
                var restored = entry
                restored.exitedAt = nil
                append(restored)
            }
            kept += 1
        }
        return kept
    }

    // MARK: /proc

    static let clockTicksPerSecond = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// One process from /proc, or nil if it is gone. Without `details`, only its stat file (name,
    /// parent, start time).
    public func read(pid: Int32, details: Bool = true) -> Entry? {
        let base = "\(procRoot)/\(pid)"
        guard let stat = Self.readFile("\(base)/stat"), let parsed = Self.parseStat(stat) else { return nil }
        var entry = Entry(
            pid: pid, parentPID: parsed.parentPID, startTicks: parsed.startTicks,
            startedAt: bootMillis + Int64(parsed.startTicks * 1000 / Self.clockTicksPerSecond),
            entityID: entityID(pid: pid, startTicks: parsed.startTicks))
        entry.name = parsed.name
        entry.sessionID = parsed.sessionID
        guard details else { return entry }
        entry.executable = Self.readLink("\(base)/exe")
        if let cmdline = Self.readFile("\(base)/cmdline"), !cmdline.isEmpty {
            var parts = cmdline.split(separator: 0, omittingEmptySubsequences: false)
            if parts.last?.isEmpty == true { parts.removeLast() }
            entry.args = parts.map { String(decoding: $0, as: UTF8.self) }
        }
        if let cgroup = Self.readFile("\(base)/cgroup") { entry.containerID = Self.containerID(cgroup: cgroup) }
        return entry
    }

    /// `pid (comm) state ppid ... starttime`: comm may hold spaces and parentheses, so fields are
    /// counted from the last ')'.
    public static func parseStat(_ bytes: [UInt8]) -> (name: String, parentPID: Int32, startTicks: UInt64, sessionID: Int32?)? {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
            let close = bytes.lastIndex(of: UInt8(ascii: ")")), close > open
        else { return nil }
        let name = String(decoding: bytes[(open + 1)..<close], as: UTF8.self)
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is state (field 3); ppid is field 4, session field 6, starttime field 22.
        guard fields.count > 19, let parent = Int32(String(decoding: fields[1], as: UTF8.self)),
            let start = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return (name, parent, start, Int32(String(decoding: fields[3], as: UTF8.self)))
    }

    /// A container id in a cgroup path: 64 hex digits after docker-, crio-, cri-containerd-,
    /// libpod- or as a path component (/docker/ID, /kubepods/.../ID).
    static func containerID(cgroup: [UInt8]) -> String? {
        for line in cgroup.split(separator: UInt8(ascii: "\n")) {
            var run = 0
            var end = line.startIndex
            for index in line.indices {
                let byte = line[index]
                let hex = (byte >= 48 && byte <= 57) || (byte >= 97 && byte <= 102)
                if hex {
                    run += 1
                    if run == 64 { end = index + 1 }
                } else {
                    if run == 64 {
                        return String(decoding: line[(end - 64)..<end], as: UTF8.self)
                    }
                    run = 0
                }
            }
            if run == 64 { return String(decoding: line[(end - 64)..<end], as: UTF8.self) }
        }
        return nil
    }

    /// /proc/sys/kernel/random/boot_id, or nil when unreadable.
    public static func readBootID(_ procRoot: String = "/proc") -> String? {
        guard let bytes = readFile("\(procRoot)/sys/kernel/random/boot_id") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n")
        return text.isEmpty ? nil : text
    }

    public static func readFile(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            result += chunk[0..<count]
            if result.count > 1 << 20 { break }
        }
        return result
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var view = Substring(self)
        while let first = view.first, set.contains(first) { view = view.dropFirst() }
        while let last = view.last, set.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
