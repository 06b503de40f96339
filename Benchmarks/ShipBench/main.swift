// herdwatch-bench-ship — how fast the agent's shipping path moves events: a spool filled with N
// events (ECS JSON lines from FILE, cycled), then the NATS JetStream sink run until the stream has
// acknowledged all of them. Prints one JSON line: events, bytes, seconds, events_per_second.
//
//   herdwatch-bench-ship NATS_URL FILE N
import Foundation
import HerdwatchShipping
import Logging

let arguments = CommandLine.arguments
guard arguments.count == 4, let count = Int(arguments[3]), count > 0 else {
    FileHandle.standardError.write(Data("usage: herdwatch-bench-ship NATS_URL EVENTS.jsonl N\n".utf8))
    exit(2)
}
let lines = try String(contentsOfFile: arguments[2], encoding: .utf8).split(separator: "\n").map { Array($0.utf8) }
guard !lines.isEmpty else { fatalError("no events in \(arguments[2])") }

let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-bench-ship-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: folder) }
let spool = try SharedSpool(configuration: Spool.Configuration(directory: folder.path))
var bytes = 0
try spool.withLock { spool throws(SpoolError) in
    for index in 0..<count {
        let payload = lines[index % lines.count]
        bytes += payload.count
        try spool.append(payload)
    }
    try spool.flush()
}
let end = spool.withLock { $0.end }

var logger = Logger(label: "herdwatch.bench")
logger.logLevel = .error
let sink = JetStreamSink(configuration: JetStreamSink.Configuration(url: arguments[1]), hostName: "bench")
let runner = SinkRunner(sink: sink, spool: spool, logger: logger)
let started = Date()
runner.run { spool.withLock { $0.cursor(for: "nats") } >= end }
let seconds = Date().timeIntervalSince(started)
print(
    "{\"events\":\(count),\"bytes\":\(bytes),\"seconds\":\(String(format: "%.3f", seconds)),"
        + "\"events_per_second\":\(Int(Double(count) / seconds))}")
