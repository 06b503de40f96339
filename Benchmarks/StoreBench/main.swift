// herdwatch-bench-store — the central store at fleet scale: N events (ECS JSON lines from FILE,
// re-hosted across H fake hosts, each with its own event id) ingested in batches, then five typical
// hunts timed. One engine per run; scripts/bench-store runs SQLite and PostgreSQL in one go and
// prints them side by side. Prints one JSON line.
//
//   herdwatch-bench-store STORE FILE N H     STORE: a SQLite file (created) or postgres://... URL
//   herdwatch-bench-store check FILE N       the server's work on a batch alone (one core): N lines
//                                            of FILE (cycled) in bodies of 1,000, checked as the
//                                            journal checks them, then cut and parsed
import Foundation
import HerdwatchStore

let arguments = CommandLine.arguments

/// What a bad argument leads to: the reason on stderr and exit 1, not a crash at top level.
func orExit<T>(_ what: String, _ body: () async throws -> T) async -> T {
    do { return try await body() } catch {
        FileHandle.standardError.write(Data("herdwatch-bench-store: \(what): \(error)\n".utf8))
        exit(1)
    }
}

if arguments.count == 4, arguments[1] == "check", let count = Int(arguments[3]), count > 0 {
    let lines = await orExit(arguments[2]) { try String(contentsOfFile: arguments[2], encoding: .utf8) }.split(separator: "\n")
    guard !lines.isEmpty else { fatalError("no events in \(arguments[2])") }
    let bodies = stride(from: 0, to: count, by: 1000).map { start in
        Array((start..<min(start + 1000, count)).map { lines[$0 % lines.count] }.joined(separator: "\n").utf8)
    }
    func seconds(_ elapsed: Duration) -> Double { Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18 }
    // The journal's check (no strings made), then the full parse (what the loader and a server
    // without a journal do), each on one core.
    var started = ContinuousClock.now
    var checked = 0
    for body in bodies { checked += await ParsedBatch.check(body: body, host: nil, parts: 1).count }
    let checkSeconds = seconds(ContinuousClock.now - started)
    started = ContinuousClock.now
    var events = 0
    for body in bodies { events += ParsedBatch.parse(body: body, host: nil).batch.count }
    let parseSeconds = seconds(ContinuousClock.now - started)
    guard checked == events else { fatalError("the check counted \(checked) events, the parse \(events)") }
    let bytes = bodies.reduce(0) { $0 + $1.count }
    print(
        #"{"events":\#(events),"bytes":\#(bytes),"check_seconds":\#(checkSeconds),"check_events_per_second":\#(Int(Double(events) / checkSeconds)),"seconds":\#(parseSeconds),"events_per_second":\#(Int(Double(events) / parseSeconds)),"microseconds_per_event":\#(parseSeconds / Double(events) * 1e6)}"#
    )
    exit(0)
}
guard arguments.count == 5, let count = Int(arguments[3]), let hostCount = Int(arguments[4]), count > 0, hostCount > 0 else {
    FileHandle.standardError.write(Data("usage: herdwatch-bench-store STORE EVENTS.jsonl N HOSTS\n".utf8))
    exit(2)
}
let source = await orExit(arguments[2]) { try String(contentsOfFile: arguments[2], encoding: .utf8) }.split(separator: "\n")
guard !source.isEmpty else { fatalError("no events in \(arguments[2])") }

/// Each source line cut where the host name and the event object start, so a copy for host h with
/// id i is a few appends. Made on the cooperative pool (not the main actor) by the ingesting tasks.
struct LineMaker: Sendable {
    struct Template: Sendable {
        var beforeEvent: [UInt8]
        var eventToHost: [UInt8]
        var afterHost: [UInt8]
    }
    var templates: [Template]
    var hostNames: [[UInt8]]

    init(source: [Substring], hostNames: [String]) {
        templates = source.compactMap { line in
            guard let host = line.range(of: #""host":{"name":""#), let end = line[host.upperBound...].firstIndex(of: "\""),
                let event = line.range(of: #""event":{"#), event.upperBound < host.lowerBound
            else { return nil }
            return Template(
                beforeEvent: Array(line[..<event.upperBound].utf8), eventToHost: Array(line[event.upperBound..<host.upperBound].utf8),
                afterHost: Array(line[end...].utf8))
        }
        self.hostNames = hostNames.map { Array($0.utf8) }
    }

    /// Event `index`: template `index` (cycled) on host `index` (cycled), with id `b<index>`. The
    /// live log has no logins and repeats its programs, so one event in 200 becomes an sshd
    /// authentication (as the agent reports PAM's USER_AUTH: 300 users, one attempt in ten failed),
    /// and one in 100,000 a program only that host ever ran, started by a web server (a pair the
    /// rare parent → child hunt should find), both at the time of the event they replace.
    func line(_ index: Int) -> String {
        let template = templates[index % templates.count]
        if index % 200 == 199 || index % 100_000 == 77_777 {
            return synthetic(index, timestamp: template.beforeEvent.prefix(while: { $0 != UInt8(ascii: ",") }))
        }
        var bytes = template.beforeEvent
        bytes.reserveCapacity(template.beforeEvent.count + template.eventToHost.count + template.afterHost.count + 40)
        bytes.append(contentsOf: #""id":"b"#.utf8)
        bytes.append(contentsOf: String(index).utf8)
        bytes.append(contentsOf: #"","#.utf8)
        bytes.append(contentsOf: template.eventToHost)
        bytes.append(contentsOf: hostNames[index % hostNames.count])
        bytes.append(contentsOf: template.afterHost)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `timestamp`: the `{"@timestamp":"…"` the line starts with.
    private func synthetic(_ index: Int, timestamp: ArraySlice<UInt8>) -> String {
        let host = String(decoding: hostNames[index % hostNames.count], as: UTF8.self)
        let head = String(decoding: timestamp, as: UTF8.self)
        if index % 100_000 == 77_777 {
            return head
                + #","event":{"id":"b\#(index)","kind":"event","module":"auditd","category":["process"],"type":["start"],"action":"process-started","outcome":"success"},"host":{"name":"\#(host)"},"process":{"pid":\#(index % 30_000 + 1000),"name":"kworkerd","executable":"/tmp/.cache/kworkerd-\#(index)","command_line":"/tmp/.cache/kworkerd-\#(index) -d","parent":{"pid":812,"executable":"/usr/sbin/nginx"}},"user":{"name":"www-data","id":"33"}}"#
        }
        let user = index % 7 == 0 ? "root" : "user-\(index / 200 % 300)"
        let failed = index / 200 % 10 == 3
        let source = "10.\(index / 200 % 250).\(index / 50_000 % 250).\(index % 250)"
        return head
            + #","event":{"id":"b\#(index)","kind":"event","module":"auditd","category":["authentication"],"type":["info"],"action":"user-authenticated","outcome":"\#(failed ? "failure" : "success")"},"host":{"name":"\#(host)"},"process":{"pid":\#(index % 30_000 + 1000),"name":"sshd","executable":"/usr/sbin/sshd"},"user":{"name":"\#(user)"},"source":{"ip":"\#(source)","address":"\#(source)"},"auditd":{"record_type":"USER_AUTH","result":"\#(failed ? "failed" : "success")"}}"#
    }
}
let hostNames = (0..<hostCount).map { String(format: "host-%04d", $0) }
let roles = ["web", "db", "app", "cache"]
let maker = LineMaker(source: source, hostNames: hostNames)
guard !maker.templates.isEmpty else { fatalError("no line of \(arguments[2]) has event before host.name") }

let location = arguments[1]
let store: any FleetStore = await orExit(location) { try await StoreURL.open(location) }
try await store.register(hosts: Dictionary(uniqueKeysWithValues: hostNames.enumerated().map { index, name in
    (name, ["role": roles[index % roles.count], "env": index % 10 == 0 ? "staging" : "prod"])
}))

// Ingest in batches of 5000, as agents' HTTP batches arrive, two at a time (as from two agents at
// once: one batch is parsed and compressed while the other is written). BATCH and IN_FLIGHT in the
// environment change both: many agents' small batches are, say, BATCH=50 IN_FLIGHT=64.
let batch = ProcessInfo.processInfo.environment["BATCH"].flatMap(Int.init) ?? 5000
let parallel = ProcessInfo.processInfo.environment["IN_FLIGHT"].flatMap(Int.init) ?? 2
// PER_HOST=1: each batch holds one host's events, as an agent sends them (batch k from host
// k mod H); otherwise consecutive events, one per host in turn.
let perHost = ProcessInfo.processInfo.environment["PER_HOST"] == "1"
let batches = perHost ? (count + batch * hostCount - 1) / (batch * hostCount) * hostCount : (count + batch - 1) / batch
/// The event indexes of batch `number` (in the last round of PER_HOST, some hosts have fewer or none).
func indexes(ofBatch number: Int) -> [Int] {
    guard perHost else { return Array(number * batch..<min(number * batch + batch, count)) }
    let host = number % hostCount
    let first = number / hostCount * batch
    return (first..<first + batch).map { $0 * hostCount + host }.filter { $0 < count }
}
let clock = ContinuousClock()
var stored = 0
let ingestStart = clock.now
var lastReport = clock.now
try await withThrowingTaskGroup(of: Int.self) { group in
    var next = 0
    var inFlight = 0
    while next < batches || inFlight > 0 {
        while inFlight < parallel && next < batches {
            let events = indexes(ofBatch: next)
            next += 1
            guard !events.isEmpty else { continue }
            group.addTask { try await store.ingest(lines: events.map { Substring(maker.line($0)) }, allOrNothing: false).inserted }
            inFlight += 1
        }
        guard inFlight > 0 else { break }
        stored += try await group.next() ?? 0
        inFlight -= 1
        if clock.now - lastReport > .seconds(30) {
            lastReport = clock.now
            let seconds = Double((clock.now - ingestStart).components.seconds)
            FileHandle.standardError.write(Data("\(stored) events, \(Int(Double(stored) / max(seconds, 1))) events/s\n".utf8))
        }
    }
}
let ingestDuration = clock.now - ingestStart
let ingestSeconds = Double(ingestDuration.components.seconds) + Double(ingestDuration.components.attoseconds) / 1e18

// Hunts: the median of three runs each.
let probeHost = hostNames[hostCount / 2]
let window = try await store.query("SELECT min(time), max(time) FROM events", options: { var o = QueryOptions(); o.hosts = .names([probeHost]); return o }())
var first: Int64 = 0
var last: Int64 = 0
if case .integer(let low) = window.rows.first?[0], case .integer(let high) = window.rows.first?[1] {
    first = low
    last = high
}
struct Hunt {
    var name: String
    var sql: String
    var hosts: HostScope = .all
    var since: Int64?
    var until: Int64?
}
let hunts = [
    Hunt(
        name: "host+time", sql: "SELECT timestamp, action, executable, command_line FROM events ORDER BY time DESC LIMIT 500",
        hosts: .names([probeHost]), since: first + (last - first) / 4, until: first + (last - first) / 2),
    // The fleet-wide three read the rollups kept at ingest (process_pairs, connections).
    Hunt(name: "executable across fleet", sql: "SELECT host, sum(runs) AS runs FROM process_pairs WHERE executable = '/usr/bin/ls' GROUP BY host ORDER BY runs DESC LIMIT 100"),
    Hunt(name: "rare parent→child", sql: "SELECT parent_executable, executable, sum(runs) AS runs FROM process_pairs GROUP BY parent_executable, executable HAVING sum(runs) <= 2 ORDER BY runs LIMIT 100"),
    Hunt(
        name: "outbound by host group", sql: "SELECT destination_ip, destination_port, sum(connections) AS connections, count(DISTINCT host) AS hosts FROM connections GROUP BY destination_ip, destination_port ORDER BY connections DESC LIMIT 50",
        hosts: HostScope(parsing: "role=web,env=prod")),
    Hunt(name: "logins by user", sql: "SELECT user_name, outcome, count(*) AS attempts, count(DISTINCT host) AS hosts FROM events WHERE action IN ('user-login', 'user-authenticated', 'user-session-opened') GROUP BY user_name, outcome ORDER BY attempts DESC LIMIT 100"),
]
var huntFigures: [String: Any] = [:]
for hunt in hunts {
    var options = QueryOptions()
    options.hosts = hunt.hosts
    options.since = hunt.since
    options.until = hunt.until
    options.limit = 10_000
    options.timeoutSeconds = 120
    var times: [Double] = []
    var rows = 0
    for _ in 0..<3 {
        let start = clock.now
        rows = try await store.query(hunt.sql, options: options).rows.count
        let duration = clock.now - start
        times.append(Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }
    huntFigures[hunt.name] = ["milliseconds": times.sorted()[1], "rows": rows]
}
let figures: [String: Any] = [
    "store": store.location, "events": stored, "hosts": hostCount, "ingest_seconds": ingestSeconds,
    "ingest_events_per_second": Double(stored) / ingestSeconds, "hunts": huntFigures,
]
let data = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
print(String(decoding: data, as: UTF8.self))
