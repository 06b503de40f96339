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

    private var total: [Key: Counts] = [:]
    private var minute: [Key: Counts] = [:]
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
    private var counters: [Key: Counters] = [:]

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
        let key = Key(profile: profile, eventClass: eventClass)
        total[key, default: Counts()].add(counts)
        minute[key, default: Counts()].add(counts)
        sinceBeat[eventClass, default: Counts()].add(counts)
        let metrics = counters(key)
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
        let key = Key(profile: profile, eventClass: eventClass)
        total[key, default: Counts()].add(counts)
        minute[key, default: Counts()].add(counts)
        sinceBeat[eventClass, default: Counts()].add(counts)
        let metrics = counters(key)
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

    public func totals() -> [Key: Counts] { total }

    /// The minute in progress (so far).
    public func currentMinute(now: Int64) -> [Key: Counts] {
        rollMinute(now: now)
        return minute
    }

    private func rollMinute(now: Int64) {
        guard now - minuteStart >= 60_000 else { return }
        let start = now - now % 60_000
        // A quiet gap leaves an empty last minute, not a stale one.
        lastMinute = start - minuteStart == 60_000 ? minute : [:]
        lastMinuteStart = start - 60_000
        minute = [:]
        minuteStart = start
    }

    private func counters(_ key: Key) -> Counters {
        if let existing = counters[key] { return existing }
        let made = Counters(key)
        counters[key] = made
        return made
    }
}
