// herdwatch-bench-ship — how fast the agent's shipping path moves events: a spool filled with N
// events (ECS JSON lines from FILE, cycled, each copy with an event id of its own), then one sink run
// by the agent's SinkRunner until its cursor reaches the end (every event acknowledged by the
// receiver). Prints one JSON line: events, bytes, seconds, events_per_second, cpu_seconds (this
// process's user + system time while shipping: the agent's side of the cost) and started_at (when
// shipping began, after the spool was filled: seconds since the epoch).
//
//   herdwatch-bench-ship nats NATS_URL FILE N [EVENTS_PER_MESSAGE]
//   herdwatch-bench-ship http URL TOKEN FILE N        (to `herdwatch server`)
//   herdwatch-bench-ship syslog HOST:PORT FILE N      (RFC 5424 over TCP, e.g. to rsyslog)
//   herdwatch-bench-ship file PATH FILE N             (the baseline: the same lines to a plain file)
import Foundation
import HerdwatchShipping
import Logging

func usage() -> Never {
    FileHandle.standardError.write(
        Data(
            """
            usage: herdwatch-bench-ship nats NATS_URL EVENTS.jsonl N [EVENTS_PER_MESSAGE]
                   herdwatch-bench-ship http URL TOKEN EVENTS.jsonl N [zstd|none]
                   herdwatch-bench-ship syslog HOST:PORT EVENTS.jsonl N
                   herdwatch-bench-ship file PATH EVENTS.jsonl N

            """.utf8))
    exit(2)
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

/// The baseline: batches appended to a plain file, one write per batch, no fsync.
final class PlainFileSink: SpoolSink {
    let name = "file"
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        guard descriptor >= 0 else { throw BenchError(description: "\(path): cannot open") }
    }

    func send(_ records: [(payload: [UInt8], next: SpoolPosition)]) throws -> SpoolPosition? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(records.reduce(0) { $0 + $1.payload.count + 1 })
        for record in records {
            bytes += record.payload
            bytes.append(UInt8(ascii: "\n"))
        }
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw BenchError(description: "short write") }
        return records.last?.next
    }

    func confirmed() throws -> SpoolPosition? { nil }
    func reset() {}
}

let arguments = CommandLine.arguments
guard arguments.count >= 5 else { usage() }
let sink: any SpoolSink
let file: String
let countText: String
switch arguments[1] {
case "nats":
    guard arguments.count == 5 || arguments.count == 6 else { usage() }
    var configuration = JetStreamSink.Configuration(url: arguments[2])
    if arguments.count == 6 {
        guard let perMessage = Int(arguments[5]), perMessage > 0 else { usage() }
        configuration.eventsPerMessage = perMessage
    }
    // COMPRESSION=zstd|none: the messages' compression (default: the agent's, zstd).
    if let compression = ProcessInfo.processInfo.environment["COMPRESSION"] {
        guard let value = JetStreamSink.Configuration.Compression(rawValue: compression) else { usage() }
        configuration.compression = value
    }
    sink = JetStreamSink(configuration: configuration, hostName: "bench")
    (file, countText) = (arguments[3], arguments[4])
case "http":
    guard arguments.count == 6 || arguments.count == 7 else { usage() }
    var configuration = try HTTPSink.Configuration(url: arguments[2], token: arguments[3])
    if arguments.count == 7 {
        guard let compression = HTTPSink.Configuration.Compression(rawValue: arguments[6]) else { usage() }
        configuration.compression = compression
    }
    // CONNECTIONS=N: the sink's connections to the server (default: the agent's).
    if let connections = ProcessInfo.processInfo.environment["CONNECTIONS"].flatMap({ Int($0) }) { configuration.connections = connections }
    // IN_FLIGHT=N: batches sent before the oldest one's answer is read (default: the agent's).
    if let window = ProcessInfo.processInfo.environment["IN_FLIGHT"].flatMap({ Int($0) }) { configuration.maximumInFlight = window }
    sink = HTTPSink(configuration: configuration)
    (file, countText) = (arguments[4], arguments[5])
case "syslog":
    guard arguments.count == 5, let colon = arguments[2].lastIndex(of: ":"), let port = Int(arguments[2][arguments[2].index(after: colon)...])
    else { usage() }
    var configuration = SyslogSink.Configuration(host: String(arguments[2][..<colon]), port: port)
    // SETTLE_MS=N: how long the receiver's TCP acknowledgment must stand before a record counts as
    // delivered (default: the agent's, 2 s; it delays the end of a run by as much).
    if let settle = ProcessInfo.processInfo.environment["SETTLE_MS"].flatMap({ Int64($0) }) { configuration.settleMilliseconds = settle }
    sink = SyslogSink(configuration: configuration, hostName: "bench")
    (file, countText) = (arguments[3], arguments[4])
case "file":
    guard arguments.count == 5 else { usage() }
    sink = try PlainFileSink(path: arguments[2])
    (file, countText) = (arguments[3], arguments[4])
default: usage()
}
guard let count = Int(countText), count > 0 else { usage() }

// Each line cut after `"event":{`, so a copy with its own event id is two appends (bytes, not
// String: a file of a few hundred MB is cut in a second).
let marker = Array(#""event":{"#.utf8)
let templates: [(head: [UInt8], tail: [UInt8])] = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
    .split(separator: UInt8(ascii: "\n")).prefix(count).compactMap { line in
        var at = line.startIndex
        while at + marker.count <= line.endIndex, !line[at..<(at + marker.count)].elementsEqual(marker) {
            guard let next = line[(at + 1)...].firstIndex(of: marker[0]) else { return nil }
            at = next
        }
        guard at + marker.count <= line.endIndex else { return nil }
        return (Array(line[..<(at + marker.count)]), Array(line[(at + marker.count)...]))
    }
guard !templates.isEmpty else { fatalError("no event lines in \(file)") }

let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-bench-ship-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: folder) }
// Room for every event: past its size limit (1 GiB by default) the spool drops its oldest, and
// this measures shipping, not that (a 400,000-event run is 1.3 GB).
var spoolConfiguration = Spool.Configuration(directory: folder.path)
spoolConfiguration.maximumBytes = .max
let spool = try SharedSpool(configuration: spoolConfiguration)
var bytes = 0
try spool.withLock { spool throws(SpoolError) in
    for index in 0..<count {
        let template = templates[index % templates.count]
        let payload = template.head + Array("\"id\":\"bench-\(index)\",".utf8) + template.tail
        bytes += payload.count
        try spool.append(payload)
    }
    try spool.flush()
}
let end = spool.withLock { $0.end }

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

var logger = Logger(label: "herdwatch.bench")
logger.logLevel = .error
// BATCH=N: records per batch (default: the agent's, SinkRunner's default).
let batchSize = ProcessInfo.processInfo.environment["BATCH"].flatMap { Int($0) }
let runner = batchSize.map { SinkRunner(sink: sink, spool: spool, batchSize: $0, logger: logger) } ?? SinkRunner(sink: sink, spool: spool, logger: logger)
let started = Date()
let cpuBefore = cpuSeconds()
runner.run { spool.withLock { $0.cursor(for: sink.name) } >= end }
let seconds = Date().timeIntervalSince(started)
let cpu = cpuSeconds() - cpuBefore
print(
    "{\"events\":\(count),\"bytes\":\(bytes),\"seconds\":\(String(format: "%.3f", seconds)),"
        + "\"events_per_second\":\(Int(Double(count) / seconds)),\"cpu_seconds\":\(String(format: "%.3f", cpu)),"
        + "\"started_at\":\(String(format: "%.3f", started.timeIntervalSince1970))}")
