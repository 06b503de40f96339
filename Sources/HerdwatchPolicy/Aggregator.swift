import HerdwatchEvents

/// Counts events instead of sending them: per class, per key (action with the executable, the
/// destination or the path) over a window, then one `events-aggregated` event per key.
struct Aggregator {
    struct Key: Hashable {
        var eventClass: EventClass
        var action: String
        var executable: String?
        var target: String?
    }

    struct Window {
        var start: Int64
        var interval: Int64
        var counts: [Key: (count: Int, sample: Event)] = [:]
    }

    /// Keys per class and window; past it, events are counted under one `(other)` key.
    let maximumKeys: Int
    private var windows: [EventClass: Window] = [:]

    init(maximumKeys: Int = 10_000) {
        self.maximumKeys = maximumKeys
    }

    mutating func add(_ event: Event, as eventClass: EventClass, interval: Int64, now: Int64) {
        var window = windows[eventClass] ?? Window(start: now, interval: interval)
        window.interval = interval
        var key = Key(
            eventClass: eventClass, action: Self.action(event), executable: event.process?.executable ?? event.process?.name,
            target: Self.target(event, eventClass))
        if window.counts[key] == nil && window.counts.count >= maximumKeys {
            key = Key(eventClass: eventClass, action: "(other)", executable: nil, target: nil)
        }
        if var entry = window.counts[key] {
            entry.count += 1
            window.counts[key] = entry
        } else {
            window.counts[key] = (1, event)
        }
        windows[eventClass] = window
    }

    /// The counts of every window that has run its interval (all of them when `flushAll`).
    mutating func due(now: Int64, host: Event.Host, flushAll: Bool = false) -> [Event] {
        var events: [Event] = []
        for (eventClass, window) in windows.sorted(by: { $0.key < $1.key })
        where flushAll || now - window.start >= window.interval {
            for (key, entry) in window.counts.sorted(by: { $0.value.count > $1.value.count }) {
                var event = Event(timestamp: AuditTimestamp(milliseconds: now), kind: .telemetryAggregate, outcome: .success, host: host)
                event.module = "agent"
                if let executable = key.executable {
                    var process = Event.Process()
                    process.executable = executable
                    process.name = entry.sample.process?.name
                    event.process = process
                }
                event.destination = eventClass == .network ? entry.sample.destination : nil
                if eventClass == .file, let path = entry.sample.file?.path {
                    var file = Event.File()
                    file.path = path
                    event.file = file
                }
                event.aggregate = Event.Aggregate(
                    eventClass: eventClass.rawValue,
                    key: [key.action, key.executable, key.target].compactMap { $0 }.joined(separator: " "),
                    count: entry.count, windowStart: window.start, windowEnd: now)
                events.append(event)
            }
            windows[eventClass] = nil
        }
        return events
    }

    static func action(_ event: Event) -> String {
        switch event.kind {
        case .syscall: event.audit?.syscall ?? "syscall"
        case .other: event.audit?.recordType ?? "other"
        default: event.kind.action.description
        }
    }

    static func target(_ event: Event, _ eventClass: EventClass) -> String? {
        switch eventClass {
        case .network:
            guard let destination = event.destination else { return nil }
            if let ip = destination.ip { return destination.port.map { "\(ip):\($0)" } ?? ip }
            return destination.address
        case .file:
            return event.file?.path
        default:
            return nil
        }
    }
}
