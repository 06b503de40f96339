import HerdwatchEvents
import Metrics

/// What telemetry costs, per profile and event class: events and bytes produced before the policy
/// and sent after it, per minute, since the last heartbeat and since start. Also counted into
/// swift-metrics (`herdwatch_policy_events_total`, `herdwatch_policy_bytes_total`, dimensions
/// profile, class, stage=before|after).
///
/// Bytes are the encoded JSON size. A dropped event is not encoded just to be weighed: its size is
/// the mean of its class, measured on kept events and on every 16th dropped one.
public final class CostLedger {
    public struct Counts: Sendable, Equatable, Codable {
        public var eventsBefore = 0
        public var eventsAfter = 0
        public var bytesBefore = 0
        public var bytesAfter = 0
        public init() {}

        mutating func add(_ other: Counts) {
            eventsBefore += other.eventsBefore
            eventsAfter += other.eventsAfter
            bytesBefore += other.bytesBefore
            bytesAfter += other.bytesAfter
        }
    }

    public struct Key: Hashable, Sendable, Comparable {
        public var profile: String
        public var eventClass: EventClass
        public static func < (a: Key, b: Key) -> Bool { (a.profile, a.eventClass) < (b.profile, b.eventClass) }
    }

    /// Every profile and class seen: counts since start and in the minute in progress, and metrics.
    private var entries: [Key: Entry] = [:]
    /// The entries of the profile recorded last, by class: most events find theirs without hashing
    /// a profile name.
    private var recent: (profile: String, entries: [Entry?])?
    public private(set) var minuteStart: Int64
    /// The last complete minute.
    public private(set) var lastMinute: [Key: Counts] = [:]
    public private(set) var lastMinuteStart: Int64?
    private var sinceBeat: [EventClass: Counts] = [:]
    private var measured: [EventClass: (bytes: Int, events: Int)] = [:]
    private var unmeasuredDrops: [EventClass: Int] = [:]
    /// swift-metrics counters per profile and class, made on first use.
    private struct Counters {
        let eventsBefore: Counter
        let bytesBefore: Counter
        let eventsAfter: Counter
        let bytesAfter: Counter

        init(_ key: Key) {
            func counter(_ label: String, _ stage: String) -> Counter {
                Counter(label: label, dimensions: [("profile", key.profile), ("class", key.eventClass.rawValue), ("stage", stage)])
            }
            eventsBefore = counter("herdwatch_policy_events_total", "before")
            bytesBefore = counter("herdwatch_policy_bytes_total", "before")
            eventsAfter = counter("herdwatch_policy_events_total", "after")
            bytesAfter = counter("herdwatch_policy_bytes_total", "after")
        }
    }

    private final class Entry {
        var total = Counts()
        /// Zero when the class had no event in the minute in progress.
        var minute = Counts()
        let counters: Counters
        init(_ key: Key) { counters = Counters(key) }
    }

    public init(now: Int64) {
        minuteStart = now - now % 60_000
    }

    /// Whether a dropped event of this class should be encoded to measure its size.
    public func wantsMeasurement(_ eventClass: EventClass) -> Bool {
        measured[eventClass] == nil || unmeasuredDrops[eventClass, default: 0] >= 15
    }

    /// One event: `bytes` is its encoded size when known (always for kept events).
    public func record(_ eventClass: EventClass, profile: String, bytes: Int?, kept: Bool, now: Int64) {
        rollMinute(now: now)
        let size: Int
        if let bytes {
            var sample = measured[eventClass] ?? (0, 0)
            if sample.events >= 1 << 20 { sample = (sample.bytes / 2, sample.events / 2) }
            sample.bytes += bytes
            sample.events += 1
            measured[eventClass] = sample
            if !kept { unmeasuredDrops[eventClass] = 0 }
            size = bytes
        } else {
            unmeasuredDrops[eventClass, default: 0] += 1
            size = measured[eventClass].map { $0.bytes / max($0.events, 1) } ?? 0
        }
        var counts = Counts()
        counts.eventsBefore = 1
        counts.bytesBefore = size
        if kept {
            counts.eventsAfter = 1
            counts.bytesAfter = size
        }
        let entry = entry(eventClass, profile: profile)
        entry.total.add(counts)
        entry.minute.add(counts)
        sinceBeat[eventClass, default: Counts()].add(counts)
        let metrics = entry.counters
        metrics.eventsBefore.increment()
        metrics.bytesBefore.increment(by: size)
        if kept {
            metrics.eventsAfter.increment()
            metrics.bytesAfter.increment(by: size)
        }
    }

    /// Counts an event the policy made itself (aggregates, level changes): after only.
    public func recordProduced(_ eventClass: EventClass, profile: String, bytes: Int, now: Int64) {
        rollMinute(now: now)
        var counts = Counts()
        counts.eventsAfter = 1
        counts.bytesAfter = bytes
        let entry = entry(eventClass, profile: profile)
        entry.total.add(counts)
        entry.minute.add(counts)
        sinceBeat[eventClass, default: Counts()].add(counts)
        let metrics = entry.counters
        metrics.eventsAfter.increment()
        metrics.bytesAfter.increment(by: bytes)
    }

    /// Per class since the last call (for the heartbeat).
    public func takeSinceHeartbeat() -> [Event.ClassCost] {
        defer { sinceBeat = [:] }
        return sinceBeat.sorted { $0.key < $1.key }.map { eventClass, counts in
            Event.ClassCost(
                eventClass: eventClass.rawValue, eventsBefore: counts.eventsBefore, eventsAfter: counts.eventsAfter,
                bytesBefore: counts.bytesBefore, bytesAfter: counts.bytesAfter)
        }
    }

    public func totals() -> [Key: Counts] { entries.mapValues(\.total) }

    /// The minute in progress (so far).
    public func currentMinute(now: Int64) -> [Key: Counts] {
        rollMinute(now: now)
        return minuteCounts()
    }

    private func minuteCounts() -> [Key: Counts] {
        entries.filter { $0.value.minute != Counts() }.mapValues(\.minute)
    }

    private func rollMinute(now: Int64) {
        guard now - minuteStart >= 60_000 else { return }
        let start = now - now % 60_000
        // A quiet gap leaves an empty last minute, not a stale one.
        lastMinute = start - minuteStart == 60_000 ? minuteCounts() : [:]
        lastMinuteStart = start - 60_000
        for entry in entries.values { entry.minute = Counts() }
        minuteStart = start
    }

    private func entry(_ eventClass: EventClass, profile: String) -> Entry {
        let index = eventClass.ledgerIndex
        if let recent, recent.profile == profile, let found = recent.entries[index] { return found }
        let key = Key(profile: profile, eventClass: eventClass)
        let found: Entry
        if let existing = entries[key] {
            found = existing
        } else {
            found = Entry(key)
            entries[key] = found
        }
        if recent?.profile != profile { recent = (profile, Array(repeating: nil, count: EventClass.allCases.count)) }
        recent?.entries[index] = found
        return found
    }
}

extension EventClass {
    /// The class's place in `allCases`, without a search.
    fileprivate var ledgerIndex: Int {
        switch self {
        case .process: 0
        case .file: 1
        case .network: 2
        case .login: 3
        case .privilege: 4
        case .module: 5
        case .auditConfig: 6
        case .health: 7
        case .other: 8
        }
    }
}
