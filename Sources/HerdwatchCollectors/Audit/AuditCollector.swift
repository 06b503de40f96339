import CLinuxAudit
import Foundation
import HerdwatchAudit
import HerdwatchEvents
import HerdwatchPipeline
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Collects kernel audit records over netlink and turns them into events, on the caller's thread.
///
/// `start` decides the mode (multicast beside a live audit daemon, else unicast as the daemon),
/// remembers the kernel's settings, and — when it owns the audit socket — applies the settings and
/// rules it was given. `run` reads, assembles and emits until told to stop. `stop` removes the rules
/// it added and puts every setting it changed back, so the kernel is left as found.
public final class AuditCollector {
    public struct Configuration: Sendable {
        /// nil: multicast when another live process is the audit daemon, else unicast.
        public var mode: AuditNetlink.Mode?
        /// Rules and settings to apply when the collector owns the audit socket (unicast).
        public var rules: [AuditRuleLine] = []
        /// Set while the collector owns the socket. The kernel waits this long (in jiffies) for
        /// room in its queue before dropping; 0 means it never blocks a process on auditing.
        public var backlogWaitTime: UInt32 = 0
        public var backlogLimit: UInt32? = 8192
        /// Leave the rules loaded on stop (an immutable configuration, `-e 2`, is always left).
        public var keepsRulesOnStop = false
        public var eventTimeoutMilliseconds: Int64 = 2000
        /// The record socket's receive buffer: bursts wait here while the agent catches up.
        public var receiveBufferBytes: Int32 = 16 << 20
        public var hostName: String?
        public var userNames: (any UserNameResolver)?
        /// Keep a process table (seeded from /proc, fed by the proc connector) and give every event
        /// entity ids, parent details, ancestry and container id.
        public var tracksProcesses = true
        /// Which proc-connector events become events of their own.
        public var processEvents: ProcessEventOutput = .exits
        /// Where the process table is kept across restarts (entity ids of running processes stay the
        /// same); nil: not kept.
        public var processStateFile: String?
        /// A rule the kernel already has counts as loaded (and is removed on stop), instead of being
        /// reported as refused: what an agent restarted after a crash needs.
        public var adoptsExistingRules = false
        /// Where the kernel's settings from before the agent took over are kept while it runs, so
        /// an agent restarted after a crash still puts back the original ones, not the crashed
        /// run's; removed on a clean stop.
        public var kernelStateFile: String?
        /// When a wake-up finds fewer records than this, wait `coalesceMicroseconds` for more before
        /// handling them (0 turns it off): fewer wake-ups, system calls and spool syncs at a small
        /// latency cost. 25 ms took about 10% off the agent's CPU per exec against 10 ms at 1,000
        /// execs/s (A/B, three pairs); a busier wake-up (a storm) does not wait at all, nor does
        /// the first one after `trickleWindow` without records (a lone event goes out at once).
        public var coalesceBelow = 512
        public var coalesceMicroseconds = 25_000

        public init() {}
    }

    public enum ProcessEventOutput: String, Sendable {
        /// The connector only feeds the process table.
        case none
        /// Process exits (audit rules rarely cover them; they are cheap).
        case exits
        /// Every exec and exit: process telemetry with no audit rules at all.
        case all
    }

    public let configuration: Configuration
    /// Proc-connector events emitted; starts as the configuration's, changes with the monitoring level.
    public var processEvents: ProcessEventOutput
    /// The rules in force: the configuration's, until `replaceRules`.
    public private(set) var rules: [AuditRuleLine]
    public private(set) var mode: AuditNetlink.Mode = .unicast
    private let logger: Logger
    private var netlink: AuditNetlink?
    private var saved: AuditStatus?
    private var changedMask: UInt32 = 0
    private var addedRules: [[UInt8]] = []
    /// Rule changes this collector made, until their CONFIG_CHANGE records come back (see
    /// `claimOwnRuleChange`).
    private var ownRuleChanges: [OwnRuleChange] = []
    private var registered = false
    private var pipeline: AuditPipeline
    private let parser = AuditRecordParser()
    public private(set) var processes: ProcessTable?
    private var connector: ProcConnector?
    /// Rule lines the kernel refused, with file, line and reason.
    public private(set) var ruleErrors: [AuditRuleError] = []

    // Loss accounting: compared once a second, reported as telemetry-loss events.
    private var lastLost: UInt32?
    private var lastOverflows = 0
    private var lastConnectorOverflows = 0
    private var lastFlushedEarly = 0
    private var lastLossCheck: Int64 = 0
    /// When the kernel's status was last asked for, and the records read by then.
    private var lastStatusQuery: Int64 = 0
    private var recordsAtStatusQuery = 0

    public var statistics: PipelineStatistics { pipeline.statistics }

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.rules = configuration.rules
        self.processEvents = configuration.processEvents
        self.logger = logger
        var assembler = AuditEventAssembler.Configuration()
        assembler.timeoutMilliseconds = configuration.eventTimeoutMilliseconds
        pipeline = AuditPipeline(
            assembler: AuditEventAssembler(configuration: assembler),
            interpreter: AuditInterpreter(hostName: configuration.hostName, userNames: configuration.userNames))
    }

    deinit {
        if netlink != nil { stop() }
    }

    /// Opens the audit socket and prepares the kernel. Throws when it cannot collect at all; a rule
    /// the kernel refuses is recorded in `ruleErrors` and the rest still load.
    public func start() throws(AuditNetlinkError) {
        if configuration.tracksProcesses {
            let table = ProcessTable()
            table.seed()
            if let file = configuration.processStateFile, let data = FileManager.default.contents(atPath: file) {
                do {
                    let kept = table.restore(try JSONDecoder().decode([ProcessTable.Entry].self, from: data))
                    logger.info("process table restored", metadata: ["file": "\(file)", "kept": "\(kept)"])
                } catch {
                    logger.warning("process state file unreadable; starting fresh", metadata: ["file": "\(file)", "error": "\(error)"])
                }
            }
            processes = table
            do {
                let opened = try ProcConnector()
                if !opened.filtered {
                    logger.notice("the kernel refused the proc connector's socket filter: threads' events are read and dropped here")
                }
                connector = opened
            } catch {
                logger.warning("no proc connector: process ids come from /proc alone", metadata: ["error": "\(error)"])
            }
        }
        let control = try AuditNetlink(mode: .unicast, receiveBufferBytes: configuration.receiveBufferBytes)
        let status = try control.status()
        saved = status
        lastLost = status.lost
        let daemonAlive = status.pid != 0 && status.pid != UInt32(getpid()) && kill(pid_t(status.pid), 0) == 0
        mode = configuration.mode ?? (daemonAlive ? .multicast : .unicast)

        switch mode {
        case .multicast:
            netlink = try AuditNetlink(mode: .multicast, receiveBufferBytes: configuration.receiveBufferBytes)
            logger.info(
                "reading the audit log group beside the audit daemon; its rules stay in charge",
                metadata: ["daemon-pid": "\(status.pid)"])
        case .unicast:
            if daemonAlive {
                throw AuditNetlinkError(
                    "another process (pid \(status.pid)) is the audit daemon; stop it or use multicast mode", code: EEXIST)
            }
            netlink = control
            try control.register()
            registered = true
            adoptOriginalSettings(current: status)
            if status.enabled == 2 {
                logger.warning("audit configuration is locked (enabled=2): rules and settings stay as they are")
            } else {
                try applySettings(control, status)
                applyRules(control)
            }
        }
    }

    /// The settings to restore on stop: those a crashed run saved, else the current ones (saved now).
    private func adoptOriginalSettings(current: AuditStatus) {
        guard let file = configuration.kernelStateFile else { return }
        if let data = FileManager.default.contents(atPath: file),
            let original = try? JSONDecoder().decode(AuditStatus.self, from: data)
        {
            saved = original
            // Whatever the crashed run changed is put back too.
            if original.enabled != current.enabled { changedMask |= UInt32(AUDIT_STATUS_ENABLED) }
            if original.backlogLimit != current.backlogLimit { changedMask |= UInt32(AUDIT_STATUS_BACKLOG_LIMIT) }
            if original.backlogWaitTime != current.backlogWaitTime { changedMask |= UInt32(AUDIT_STATUS_BACKLOG_WAIT_TIME) }
            if original.rateLimit != current.rateLimit { changedMask |= UInt32(AUDIT_STATUS_RATE_LIMIT) }
            if original.failure != current.failure { changedMask |= UInt32(AUDIT_STATUS_FAILURE) }
            logger.notice("the last run did not stop cleanly; its saved kernel settings will be restored", metadata: ["file": "\(file)"])
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try JSONEncoder().encode(current).write(to: URL(fileURLWithPath: file), options: .atomic)
        } catch {
            logger.warning("could not save the kernel's audit settings", metadata: ["file": "\(file)", "error": "\(error)"])
        }
    }

    private func applySettings(_ netlink: AuditNetlink, _ status: AuditStatus) throws(AuditNetlinkError) {
        var wanted = AuditStatus()
        var mask: UInt32 = 0
        wanted.backlogWaitTime = configuration.backlogWaitTime
        if status.backlogWaitTime != configuration.backlogWaitTime { mask |= UInt32(AUDIT_STATUS_BACKLOG_WAIT_TIME) }
        if let limit = configuration.backlogLimit, limit != status.backlogLimit {
            wanted.backlogLimit = limit
            mask |= UInt32(AUDIT_STATUS_BACKLOG_LIMIT)
        }
        if status.enabled != 1 {
            wanted.enabled = 1
            mask |= UInt32(AUDIT_STATUS_ENABLED)
        }
        if mask != 0 {
            try netlink.set(wanted, mask: mask)
            changedMask |= mask
        }
    }

    /// Loads `rules`; those in `loaded` are in the kernel already (kept across a replace).
    private func applyRules(_ netlink: AuditNetlink, loaded: Set<[UInt8]> = []) {
        var loaded = loaded
        for line in rules {
            do {
                switch line.command {
                case .add(let rule):
                    let data = rule.kernelData()
                    if loaded.remove(data) != nil { continue }
                    do {
                        try addRule(data, netlink)
                    } catch where error.code == EEXIST && configuration.adoptsExistingRules {
                        // Left by an agent that did not stop cleanly: ours to remove on stop.
                        logger.notice("audit rule already loaded; adopting it", metadata: ["line": "\(line.source):\(line.line)"])
                    }
                    if !addedRules.contains(data) { addedRules.append(data) }
                case .delete(let rule):
                    try deleteRule(rule.kernelData(), netlink)
                case .setBacklogLimit(let value):
                    var status = AuditStatus()
                    status.backlogLimit = value
                    try netlink.set(status, mask: UInt32(AUDIT_STATUS_BACKLOG_LIMIT))
                    changedMask |= UInt32(AUDIT_STATUS_BACKLOG_LIMIT)
                case .setRateLimit(let value):
                    var status = AuditStatus()
                    status.rateLimit = value
                    try netlink.set(status, mask: UInt32(AUDIT_STATUS_RATE_LIMIT))
                    changedMask |= UInt32(AUDIT_STATUS_RATE_LIMIT)
                case .setFailure(let value):
                    var status = AuditStatus()
                    status.failure = value
                    try netlink.set(status, mask: UInt32(AUDIT_STATUS_FAILURE))
                    changedMask |= UInt32(AUDIT_STATUS_FAILURE)
                case .setEnabled(let value):
                    // 2 locks the configuration until reboot: only on request, and never undone.
                    try netlink.setEnabled(value)
                    if value != 2 { changedMask |= UInt32(AUDIT_STATUS_ENABLED) }
                case .setBacklogWaitTime:
                    // The agent keeps backlog_wait_time at its configured value (0): it never lets
                    // auditing block processes.
                    break
                case .deleteAll(let key):
                    try deleteAll(netlink, key: key)
                    addedRules.removeAll { rule in key.map { AuditRuleData.keys(of: rule).contains($0) } ?? true }
                case .makeLoginUIDImmutable, .resetLostCounter, .ignoreErrors, .continueOnErrors:
                    logger.debug("rule file option not applied by the agent", metadata: ["line": "\(line.text)"])
                }
            } catch {
                let failure = AuditRuleError(source: line.source, line: line.line, reason: "kernel refused: \(error)")
                ruleErrors.append(failure)
                logger.error("audit rule not loaded", metadata: ["where": "\(failure)"])
            }
        }
    }

    /// Gives an event from another source (the auth log, the journal) the same process details as
    /// audit events: entity ids, parent, ancestry, container.
    public func enrich(_ event: inout Event) {
        processes?.enrich(&event, now: SystemClock.wallMilliseconds())
    }

    /// Swaps the loaded rules for `lines` (SIGHUP, a change of monitoring level): rules only the old
    /// set has go, rules only the new set has load, and rules both have stay loaded throughout, so
    /// what both sets watch has no gap. Refusals are reported in `ruleErrors`. Only when the
    /// collector owns the audit socket.
    public func replaceRules(_ lines: [AuditRuleLine]) {
        guard mode == .unicast, let netlink, saved?.enabled != 2 else { return }
        var wanted = Set<[UInt8]>()
        for line in lines {
            if case .add(let rule) = line.command { wanted.insert(rule.kernelData()) }
        }
        for rule in addedRules.reversed() where !wanted.contains(rule) {
            do { try deleteRule(rule, netlink) } catch { logger.error("could not remove an audit rule", metadata: ["error": "\(error)"]) }
        }
        addedRules.removeAll { !wanted.contains($0) }
        ruleErrors = []
        rules = lines
        applyRules(netlink, loaded: Set(addedRules))
    }

    private func addRule(_ rule: [UInt8], _ netlink: AuditNetlink) throws(AuditNetlinkError) {
        try netlink.addRule(rule)
        expectOwnRuleChange("add_rule", rule)
    }

    private func deleteRule(_ rule: [UInt8], _ netlink: AuditNetlink) throws(AuditNetlinkError) {
        try netlink.deleteRule(rule)
        expectOwnRuleChange("remove_rule", rule)
    }

    /// A rule change the collector made, as its CONFIG_CHANGE record will spell it.
    struct OwnRuleChange: Equatable {
        var operation: String
        /// The rule's keys joined by 0x01, or `(null)`.
        var key: String
        var list: String
        var until: Int64
    }

    /// How long a change of the collector's own waits for its record (kauditd can lag under load).
    static let ownRuleChangeWait: Int64 = 30_000

    private func expectOwnRuleChange(_ operation: String, _ rule: [UInt8]) {
        let keys = AuditRuleData.keys(of: rule)
        let flags = rule.count >= 4 ? rule.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0
        ownRuleChanges.append(
            OwnRuleChange(
                operation: operation, key: keys.isEmpty ? "(null)" : keys.joined(separator: "\u{1}"),
                list: String(flags & ~UInt32(AUDIT_FILTER_PREPEND)), until: SystemClock.wallMilliseconds() + Self.ownRuleChangeWait))
    }

    /// The kernel's record of a rule added or removed names no process, only the login uid and
    /// session of whoever made the change; the record of the system call that made it comes along
    /// only when that call was audited. One that matches a change this collector has just made
    /// (operation, keys and filter list, each change claimed once) and names no other process is the
    /// agent's own: it gets the agent's pid and executable, so that detection tells the agent's
    /// changes (at start, on SIGHUP, when the monitoring level changes) from anyone else's.
    private func claimOwnRuleChange(_ event: inout Event) {
        guard !ownRuleChanges.isEmpty else { return }
        let now = SystemClock.wallMilliseconds()
        ownRuleChanges.removeAll { $0.until < now }
        let me = Int64(getpid())
        guard event.kind == .auditConfigChange, event.process?.pid == nil || event.process?.pid == me,
            let record = event.audit?.records.first(where: { $0.type == RecordTypes.configChange }),
            let operation = record.value("op"), let list = record.value("list")
        else { return }
        let key = AuditDecoding.untrustedString(record, "key") ?? "(null)"
        let made = ownRuleChanges.firstIndex {
            $0.list.utf8.elementsEqual(list) && $0.operation.utf8.elementsEqual(operation) && $0.key == key
        }
        guard let made else { return }
        ownRuleChanges.remove(at: made)
        guard event.process?.pid == nil else { return }
        var process = event.process ?? Event.Process()
        process.pid = me
        process.executable = Self.ownExecutable
        process.name = Self.ownExecutable.map { String($0.split(separator: "/").last ?? Substring($0)) }
        event.process = process
    }

    private static let ownExecutable: String? = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")

    private func deleteAll(_ netlink: AuditNetlink, key: String?) throws(AuditNetlinkError) {
        for rule in try netlink.listRules() {
            if let key, !AuditRuleData.keys(of: rule).contains(key) { continue }
            try deleteRule(rule, netlink)
        }
    }

    /// Reads until `shouldStop` returns true. `afterBatch` runs after each batch of records, so
    /// output can be flushed while the host is busy or quiet.
    ///
    /// Each wait lasts at most `pollMilliseconds` while anything waits on a timer: an audit event
    /// whose records are still arriving, a process exit held back, or whatever `isIdle` says the
    /// caller has (unflushed output). When nothing does, it lasts up to `idleMilliseconds`, so an
    /// idle host costs about one wake-up a second instead of twenty. Any wait ends as soon as
    /// audit records or proc-connector events arrive, or one of `wakeDescriptors` (the caller's
    /// other sources: a control socket, a pipe, an eventfd signalled on stop) is readable.
    public func run(
        pollMilliseconds: Int32 = 200, idleMilliseconds: Int32? = nil, wakeDescriptors: () -> [Int32] = { [] },
        isIdle: () -> Bool = { true }, shouldStop: () -> Bool, afterBatch: () throws -> Void = {},
        emit: (consuming Event) throws -> Void
    ) throws {
        while !shouldStop() {
            var timeout = pollMilliseconds
            if let idleMilliseconds, isQuiet, isIdle() { timeout = max(idleMilliseconds, pollMilliseconds) }
            try poll(timeoutMilliseconds: timeout, alsoWaitingOn: wakeDescriptors(), emit: emit)
            try afterBatch()
        }
        // What the kernel had already queued when the stop came.
        try poll(timeoutMilliseconds: 0, emit: emit)
        try pipeline.finish(emit: emit)
        try emitExits(olderThan: .max, emit: emit)
        try afterBatch()
    }

    /// When a wake-up last brought audit records (monotonic milliseconds): within `trickleWindow`
    /// of it, records are a trickle worth waiting for.
    private var lastRecords: Int64 = .min / 2
    static let trickleWindow: Int64 = 50

    /// Nothing waits on a timer here: no audit event still assembling, no process exit held back.
    public var isQuiet: Bool { pipeline.inFlightEvents == 0 && pendingExits.isEmpty }

    /// One pass: waits up to `timeoutMilliseconds` for records or proc-connector events (or for one
    /// of `others` to be readable), handles what came.
    public func poll(timeoutMilliseconds: Int32, alsoWaitingOn others: [Int32] = [], emit: (consuming Event) throws -> Void) throws {
        guard let netlink else { return }
        let enrich: (consuming Event) throws -> Void = { (event: consuming Event) in
            self.claimOwnRuleChange(&event)
            self.enrich(&event)
            try emit(consume event)
        }
        // Connector events first: a fork must be in the table before the exec record that follows it.
        try drainConnector(emit: emit)
        var waitingOn = others
        if let connector { waitingOn.append(connector.pollDescriptor) }
        var ready: [Int32] = []
        var messages = try netlink.receive(timeoutMilliseconds: timeoutMilliseconds, alsoWaitingOn: waitingOn, ready: &ready)
        let connectorReady = connector.map { ready.contains($0.pollDescriptor) } ?? false
        let woken = SystemClock.monotonicMilliseconds()
        if (connectorReady || !messages.isEmpty) && messages.count < configuration.coalesceBelow
            && woken - lastRecords < Self.trickleWindow
        {
            // A trickle: wait a moment and take what came meanwhile, so a busy host costs one
            // wake-up per few milliseconds instead of one per record (a fork on the connector
            // comes just before the audit records of its exec). The first records after a quiet
            // spell are handled at once, so a lone event (the one an alert is about) does not
            // wait; the caller's own sources (a command, a stop) are handled at once too.
            var pause = timespec(tv_sec: 0, tv_nsec: Int(configuration.coalesceMicroseconds) * 1000)
            nanosleep(&pause, nil)
            messages += try netlink.receive(timeoutMilliseconds: 0)
        }
        if !messages.isEmpty { lastRecords = woken }
        try drainConnector(emit: emit)
        for message in messages {
            try handle(message, emit: enrich)
        }
        let now = SystemClock.wallMilliseconds()
        try pipeline.flush(olderThan: now, emit: enrich)
        try emitExits(olderThan: now - Self.exitDelay, emit: emit)
        processes?.expire(now: now)
        if now - lastLossCheck >= 1000 { try checkLoss(netlink, now: now, emit: emit) }
    }

    private func drainConnector(emit: (consuming Event) throws -> Void) throws {
        guard let connector, let processes else { return }
        let now = SystemClock.wallMilliseconds()
        for event in try connector.drain() {
            switch event {
            case .fork(let parent, let child, let time):
                processes.fork(child: child, parent: parent, nanosecondsSinceBoot: time, now: now)
            case .exec(let pid, let time):
                // The audit record of the exec (when a rule asks for it) brings the program and its
                // arguments; /proc is read only when this event is emitted itself.
                let at = processes.bootMillis + Int64(time / 1_000_000)
                guard processEvents == .all else {
                    // A kernel thread running a program (a usermode helper: modprobe, a core dump
                    // handler) is a process from now on: its program read while it is there.
                    if processes.isKernelThread(pid: pid, at: at) {
                        processes.exec(pid: pid, executable: nil, args: nil, name: nil, at: at)
                    }
                    continue
                }
                processes.exec(pid: pid, executable: nil, args: nil, name: nil, at: at)
                var exec = connectorEvent(.processStart, pid: pid, at: at, processes)
                processes.enrich(&exec, now: at)
                try emit(consume exec)
            case .exit(let pid, let code, _, let time):
                // Held back a moment: the audit record of the process's last exec may still be on
                // its way (kauditd lags the connector), and the exit should name that program.
                pendingExits.append((pid, code, processes.bootMillis + Int64(time / 1_000_000)))
            case .sid(let pid):
                processes.setsid(pid: pid)
            case .uid:
                break
            }
        }
    }

    /// How long a process exit waits for the audit records of its exec.
    static let exitDelay: Int64 = 250
    private var pendingExits: [(pid: Int32, code: UInt32, at: Int64)] = []

    /// Marks exits in the table (and emits them, unless process events are off), oldest first.
    private func emitExits(olderThan limit: Int64, emit: (consuming Event) throws -> Void) throws {
        guard let processes, let first = pendingExits.first, first.at <= limit else { return }
        let due = pendingExits.prefix { $0.at <= limit }
        pendingExits.removeFirst(due.count)
        for (pid, code, at) in due {
            // Kernel threads come and go with the kernel's work (one for each audit status reply):
            // they leave the table without an event.
            guard processEvents != .none, !processes.isKernelThread(pid: pid, at: at) else {
                processes.exit(pid: pid, now: at)
                continue
            }
            var exit = connectorEvent(.processExit, pid: pid, at: at, processes)
            // The wait status: exit code in bits 8-15, or the signal in the low 7 bits.
            exit.process?.exitCode = code & 0x7F == 0 ? Int64(code >> 8) : 128 + Int64(code & 0x7F)
            processes.enrich(&exit, now: at)  // also marks the exit in the table
            try emit(consume exit)
        }
    }

    /// A process event of the proc connector, with what the table knows of the process.
    private func connectorEvent(_ kind: EventKind, pid: Int32, at time: Int64, _ processes: ProcessTable) -> Event {
        var event = Event(timestamp: AuditTimestamp(milliseconds: time), kind: kind, outcome: .success)
        event.module = "proc-connector"
        event.host.name = configuration.hostName
        var process = Event.Process()
        process.pid = Int64(pid)
        if let entry = processes.entry(pid: pid, at: time) {
            process.name = entry.name
            process.executable = entry.executable
            process.args = entry.args
            if kind == .processStart { process.commandLine = entry.args?.joined(separator: " ") }
        }
        event.process = process
        return event
    }

    private func handle(_ message: AuditNetlinkMessage, emit: (consuming Event) throws -> Void) throws {
        // Control replies and netlink's own messages are not records.
        guard AuditNetlink.isRecord(message.type) else { return }
        do {
            let record = try parser.parse(netlinkType: message.type, body: message.payload)
            try pipeline.add(record, emit: emit)
        } catch let error as AuditParseError {
            pipeline.noteMalformed()
            logger.warning("malformed audit record skipped", metadata: ["type": "\(message.type)", "reason": "\(error)"])
        }
    }

    private func checkLoss(_ netlink: AuditNetlink, now: Int64, emit: (consuming Event) throws -> Void) throws {
        let windowStart = lastLossCheck == 0 ? now : lastLossCheck
        lastLossCheck = now
        var losses: [(source: String, count: Int, unit: String, since: Int64)] = []
        // The kernel's lost counter takes a status request, and the kernel answers each from a
        // thread it starts for the purpose (`audit_send_reply`), which the proc connector reports
        // like any process. So: once a second while records flow, once a minute while none do
        // (records are lost only where records are made; the minute covers the rest).
        let records = pipeline.statistics.records
        if mode == .unicast || mode == .multicast, records != recordsAtStatusQuery || now - lastStatusQuery >= 60_000,
            let status = try? netlink.status()
        {
            if let last = lastLost, status.lost > last {
                losses.append(("kernel-audit", Int(status.lost - last), "records", lastStatusQuery == 0 ? now : lastStatusQuery))
            }
            lastLost = status.lost
            lastStatusQuery = now
            recordsAtStatusQuery = records
        }
        if netlink.overflows > lastOverflows {
            losses.append(("audit-socket", netlink.overflows - lastOverflows, "overflows", windowStart))
            lastOverflows = netlink.overflows
        }
        if let connector, connector.overflows > lastConnectorOverflows {
            losses.append(("proc-connector", connector.overflows - lastConnectorOverflows, "overflows", windowStart))
            lastConnectorOverflows = connector.overflows
        }
        let flushed = pipeline.statistics.earlyFlushedEvents
        if flushed > lastFlushedEarly {
            losses.append(("assembler", flushed - lastFlushedEarly, "events", windowStart))
            lastFlushedEarly = flushed
        }
        for (source, count, unit, windowStart) in losses {
            var event = Event(timestamp: AuditTimestamp(milliseconds: now), kind: .telemetryLoss, outcome: .failure)
            event.host.name = configuration.hostName
            event.loss = Event.Loss(source: source, count: count, unit: unit, windowStart: windowStart, windowEnd: now)
            event.message = "\(count) \(unit) lost (\(source))"
            logger.warning("telemetry lost", metadata: ["source": "\(source)", "count": "\(count)", "unit": "\(unit)"])
            try emit(event)
        }
    }

    /// Removes the rules this collector added, restores the settings it changed and gives up the
    /// audit daemon role. Safe to call twice.
    public func stop() {
        if let file = configuration.processStateFile, let processes {
            do {
                let data = try JSONEncoder().encode(processes.runningEntries())
                try FileManager.default.createDirectory(
                    atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try data.write(to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                logger.error("could not save the process table", metadata: ["file": "\(file)", "error": "\(error)"])
            }
            self.processes = nil
        }
        guard let netlink else { return }
        defer {
            self.netlink = nil
            addedRules = []
        }
        guard mode == .unicast else { return }
        if !configuration.keepsRulesOnStop {
            for rule in addedRules.reversed() {
                do { try netlink.deleteRule(rule) } catch { logger.error("could not remove an audit rule", metadata: ["error": "\(error)"]) }
            }
        }
        if let saved, changedMask != 0 {
            do {
                try netlink.set(saved, mask: changedMask)
            } catch {
                logger.error("could not restore audit settings", metadata: ["error": "\(error)"])
            }
        }
        if let file = configuration.kernelStateFile { unlink(file) }
        if registered {
            do { try netlink.unregister() } catch { logger.error("could not release the audit pid", metadata: ["error": "\(error)"]) }
            registered = false
        }
    }
}

/// Reading back `struct audit_rule_data` as the kernel lists it.
enum AuditRuleData {
    /// The keys of a rule (its FILTERKEY field, split at 0x01).
    static func keys(of data: [UInt8]) -> [String] {
        let headerSize = AuditRule.headerSize
        guard data.count >= headerSize else { return [] }
        func word(_ offset: Int) -> UInt32 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) } }
        let count = Int(min(word(8), UInt32(AuditRule.maximumFields)))
        let (fieldsOffset, valuesOffset) = (AuditRule.fieldsOffset, AuditRule.valuesOffset)
        var bufferOffset = headerSize
        let stringFields: Set<UInt32> = [
            UInt32(AUDIT_WATCH), UInt32(AUDIT_DIR), UInt32(AUDIT_EXE), UInt32(AUDIT_FILTERKEY),
            UInt32(AUDIT_SUBJ_USER), UInt32(AUDIT_SUBJ_ROLE), UInt32(AUDIT_SUBJ_TYPE), UInt32(AUDIT_SUBJ_SEN),
            UInt32(AUDIT_SUBJ_CLR), UInt32(AUDIT_OBJ_USER), UInt32(AUDIT_OBJ_ROLE), UInt32(AUDIT_OBJ_TYPE),
            UInt32(AUDIT_OBJ_LEV_LOW), UInt32(AUDIT_OBJ_LEV_HIGH),
        ]
        for index in 0..<count {
            let field = word(fieldsOffset + 4 * index)
            guard stringFields.contains(field) else { continue }
            let length = Int(word(valuesOffset + 4 * index))
            guard bufferOffset + length <= data.count else { return [] }
            if field == UInt32(AUDIT_FILTERKEY) {
                return data[bufferOffset..<(bufferOffset + length)].split(separator: 1).map {
                    String(decoding: $0, as: UTF8.self)
                }
            }
            bufferOffset += length
        }
        return []
    }
}
