import HerdwatchEvents

/// Decides, event by event, what a host sends: the profile in force (its level) says per class
/// whether events go in full, sampled by process tree, counted, or not at all; security-critical
/// events are always kept; the first execution of a program new to the host is kept and flagged.
/// The level can be raised for a while (`setLevel`) and falls back on its own (`tick`).
///
/// Sampling is coherent: an event's tree is its process's session leader (see
/// `Event.Process.sessionLeaderEntityID`), hashed to a number in [0, 1) that is compared with the
/// rate, so a tree is kept or dropped whole, in every class, on every run. A must-keep or
/// first-seen event in a dropped tree promotes the tree: its later events are kept too.
/// Not thread-safe: one collection loop owns it.
public final class TelemetryPolicy {
    public enum Verdict: Equatable, Sendable {
        case keep(EventClass)
        case drop(EventClass)

        public var eventClass: EventClass {
            switch self {
            case .keep(let eventClass), .drop(let eventClass): eventClass
            }
        }

        public var kept: Bool {
            if case .keep = self { return true }
            return false
        }
    }

    public let configuration: PolicyConfiguration
    /// The profile in force.
    public private(set) var profile: Profile
    /// When the raised level falls back to the base profile (milliseconds since the epoch).
    public private(set) var expiresAt: Int64?
    public let cost: CostLedger
    public var hostName: String?
    private let executables: ExecutableRegistry?
    private var aggregator = Aggregator()
    private var promoted = BoundedSet(capacity: 8192)
    private var lastTick: Int64

    public init(configuration: PolicyConfiguration, executables: ExecutableRegistry?, hostName: String? = nil, now: Int64)
        throws(PolicyError)
    {
        try configuration.validate()
        self.configuration = configuration
        self.profile = configuration.profiles[configuration.baseProfile]!
        self.executables = configuration.flagsFirstSeen ? executables : nil
        self.hostName = hostName
        cost = CostLedger(now: now)
        lastTick = now
    }

    /// Keep or drop one event; a kept event may be marked (`sampling`, `firstSeen`).
    public func admit(_ event: inout Event, now: Int64) -> Verdict {
        let eventClass = EventClass(event.kind)
        if event.kind == .processStart, let executables, let executable = event.process?.executable,
            executables.observe(executable)
        {
            event.firstSeen = true
            promote(event)
            return .keep(eventClass)
        }
        if mustKeep(event, eventClass) {
            promote(event)
            return .keep(eventClass)
        }
        switch profile.treatment(for: eventClass) {
        case .full:
            return .keep(eventClass)
        case .off:
            return .drop(eventClass)
        case .sample(let rate):
            let tree = Self.tree(of: event)
            if Self.unitHash(tree) < rate {
                event.sampling = Event.Sampling(rate: rate, treeID: tree)
                return .keep(eventClass)
            }
            if let tree, promoted.contains(tree) {
                event.sampling = Event.Sampling(rate: rate, treeID: tree, promoted: true)
                return .keep(eventClass)
            }
            return .drop(eventClass)
        case .aggregate(let interval):
            if let tree = Self.tree(of: event), promoted.contains(tree) { return .keep(eventClass) }
            aggregator.add(event, as: eventClass, interval: interval, now: now)
            return .drop(eventClass)
        }
    }

    /// Events the policy makes itself when their time comes: counts of aggregated windows, and the
    /// fall back to the base level when a raised level expires.
    public func tick(now: Int64) -> [Event] {
        var events = pendingAggregates
        pendingAggregates = []
        if let expiresAt, now >= expiresAt {
            events.append(change(to: configuration.baseProfile, until: nil, reason: "expiry", requestedBy: "agent", now: now))
        }
        if now - lastTick >= 250 || !events.isEmpty {
            lastTick = now
            events += aggregator.due(now: now, host: Event.Host(name: hostName))
        }
        return events
    }

    /// Every count still open (at shutdown).
    public func finish(now: Int64) -> [Event] {
        aggregator.due(now: now, host: Event.Host(name: hostName), flushAll: true)
    }

    /// Raises (or lowers) the level to `name` until `until` (nil: until changed again), and
    /// returns the event that records it.
    public func setLevel(_ name: String, until: Int64?, requestedBy: String, now: Int64) throws(PolicyError) -> Event {
        guard configuration.profiles[name] != nil else {
            throw PolicyError("no profile '\(name)' (known: \(configuration.profiles.keys.sorted().joined(separator: ", ")))")
        }
        if let until, until <= now { throw PolicyError("the level would expire before it starts") }
        let reason = name == configuration.baseProfile && until == nil ? "reset" : "escalation"
        return change(to: name, until: until, reason: reason, requestedBy: requestedBy, now: now)
    }

    /// Takes back a level a previous run had set (from the state file), if it has not expired.
    public func resume(_ name: String, until: Int64?, now: Int64) -> Event? {
        guard configuration.profiles[name] != nil, name != profile.name, until.map({ $0 > now }) ?? true else { return nil }
        return change(to: name, until: until, reason: "restart", requestedBy: "agent", now: now)
    }

    private func change(to name: String, until: Int64?, reason: String, requestedBy: String, now: Int64) -> Event {
        let previous = profile.name
        // Counts so far belong to the level they were made under; they go out with the next tick.
        pendingAggregates += aggregator.due(now: now, host: Event.Host(name: hostName), flushAll: true)
        profile = configuration.profiles[name]!
        expiresAt = name == configuration.baseProfile ? nil : until
        var event = Event(timestamp: AuditTimestamp(milliseconds: now), kind: .levelChange, outcome: .success, host: Event.Host(name: hostName))
        event.module = "agent"
        event.levelChange = Event.LevelChange(
            previous: previous, current: name, reason: reason, requestedBy: requestedBy, expiresAt: expiresAt)
        event.message = "monitoring level \(previous) -> \(name) (\(reason))"
        return event
    }

    /// Aggregates closed early by a level change, handed out by the next `tick`.
    private var pendingAggregates: [Event] = []

    /// Whether an event may never be dropped, here or later (a full spool drops others first).
    public func mustKeep(_ event: Event) -> Bool {
        event.firstSeen || mustKeep(event, EventClass(event.kind))
    }

    private func mustKeep(_ event: Event, _ eventClass: EventClass) -> Bool {
        if configuration.mustKeepClasses.contains(eventClass) { return true }
        if !configuration.mustKeepTags.isEmpty, event.tags.contains(where: configuration.mustKeepTags.contains) { return true }
        if !configuration.mustKeepExecutables.isEmpty, let executable = event.process?.executable,
            configuration.mustKeepExecutables.contains(executable)
        {
            return true
        }
        return false
    }

    private func promote(_ event: Event) {
        if let tree = Self.tree(of: event) { promoted.insert(tree) }
    }

    /// The process tree an event belongs to: its session leader, else its process.
    static func tree(of event: Event) -> String? {
        guard let process = event.process else { return nil }
        return process.sessionLeaderEntityID ?? process.entityID ?? process.pid.map { "pid-\($0)" }
    }

    /// FNV-1a over the id, then a 64-bit finalizer, as a number in [0, 1). Events without a process
    /// hash to 0: kept by any rate (they are rare and have no tree to keep whole).
    static func unitHash(_ id: String?) -> Double {
        guard let id else { return 0 }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return Double(hash >> 11) / Double(1 << 53)
    }
}

/// A set that forgets its oldest members past `capacity`.
struct BoundedSet {
    let capacity: Int
    private var members: Set<String> = []
    private var order: [String] = []
    private var head = 0

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ member: String) -> Bool { members.contains(member) }

    mutating func insert(_ member: String) {
        guard members.insert(member).inserted else { return }
        if order.count < capacity {
            order.append(member)
        } else {
            members.remove(order[head])
            order[head] = member
            head = (head + 1) % capacity
        }
    }
}
