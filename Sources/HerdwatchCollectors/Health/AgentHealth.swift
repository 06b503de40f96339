import HerdwatchEvents
import Metrics

#if canImport(Glibc)
import Glibc
#endif

/// Counts what the agent emits, by source, into swift-metrics counters, and turns the counts into a
/// periodic `agent-heartbeat` event: events per second by source, losses, memory and CPU.
public final class AgentHealthMonitor {
    public let intervalMilliseconds: Int64
    private let hostName: String?
    private let started: Int64
    private var lastBeat: Int64
    private var lastCPU: Double
    private var interval: [String: Int] = [:]
    private var total = 0
    private var lost = 0
    private var counters: [String: Counter] = [:]
    private let lostCounter = Counter(label: "herdwatch_telemetry_lost_total")

    public init(intervalMilliseconds: Int64, hostName: String?, now: Int64) {
        self.intervalMilliseconds = intervalMilliseconds
        self.hostName = hostName
        started = now
        lastBeat = now
        lastCPU = Self.cpuSeconds()
    }

    /// Counts one emitted event.
    public func record(_ event: Event) {
        total += 1
        interval[event.module, default: 0] += 1
        let counter = counters[event.module] ?? {
            let counter = Counter(label: "herdwatch_events_total", dimensions: [("source", event.module)])
            counters[event.module] = counter
            return counter
        }()
        counter.increment()
        if let loss = event.loss {
            lost += loss.count
            lostCounter.increment(by: loss.count)
        }
    }

    /// A heartbeat when the interval has passed, else nil.
    public func heartbeat(now: Int64) -> Event? {
        let elapsed = now - lastBeat
        guard elapsed >= intervalMilliseconds, elapsed > 0 else { return nil }
        let seconds = Double(elapsed) / 1000
        let cpu = Self.cpuSeconds()
        var rates: [String: Double] = [:]
        for (source, count) in interval { rates[source] = Double(count) / seconds }
        var event = Event(timestamp: AuditTimestamp(milliseconds: now), kind: .agentHeartbeat, outcome: .success)
        event.module = "agent"
        event.host.name = hostName
        event.agentHealth = Event.AgentHealth(
            intervalSeconds: seconds, eventsPerSecond: rates, eventsTotal: total, lostTotal: lost,
            residentBytes: Self.residentBytes(), cpuPercent: (cpu - lastCPU) / seconds * 100,
            uptimeSeconds: Double(now - started) / 1000)
        lastBeat = now
        lastCPU = cpu
        interval = [:]
        return event
    }

    /// User + system CPU seconds of this process.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// Resident set size from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let bytes = ProcessTable.readFile("/proc/self/statm") else { return 0 }
        let fields = bytes.split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
