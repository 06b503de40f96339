import Foundation
import HerdwatchCompression
import HerdwatchShipping
import HerdwatchStore
import HerdwatchTestSupport
import Logging
import Synchronization
import Testing

@testable import HerdwatchServer

@Suite(.serialized) struct NATSIngestTests {
    static let available = NATSServer.binary != nil

    /// What agents publish (some twice, one line not an event, one event or several per message,
    /// compressed or not, one message damaged) is stored once each, and only then
    /// acknowledged: a second consumer with the same durable name gets nothing left over.
    @Test(.enabled(if: available, "needs nats-server (scripts/setup installs it)"))
    func publishedEventsAreStoredOnceAndAcknowledgedAfter() async throws {
        let server = try NATSServer()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-natsingest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try EventStore(path: folder.appendingPathComponent("events.db").path)

        let publisher = try JetStream(url: server.url)
        try publisher.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])
        func event(_ index: Int, host: String) -> [UInt8] {
            Array(#"{"@timestamp":"2026-11-23T10:00:00.000Z","event":{"kind":"event","category":["process"],"action":"process-started","id":"\#(host)-\#(index)"},"host":{"name":"\#(host)"}}"#.utf8)
        }
        var messages = (0..<300).map { (subject: "herdwatch.events.web\($0 % 3)", id: "web\($0 % 3)-\($0)", payload: event($0, host: "web\($0 % 3)")) }
        messages.append((subject: "herdwatch.events.web0", id: "junk", payload: Array("not an event".utf8)))
        try publisher.publish(messages, timeoutMilliseconds: 5000)
        // The same events again under other message ids (as after a lost acknowledgment upstream).
        try publisher.publish((0..<50).map { (subject: "herdwatch.events.web\($0 % 3)", id: "again-\($0)", payload: event($0, host: "web\($0 % 3)")) }, timeoutMilliseconds: 5000)
        // Several events per message, as the agent's sink publishes them: 110 new ones, then the
        // first ten again cut another way (as after an agent restart).
        func message(_ range: Range<Int>) -> (subject: String, id: String, payload: [UInt8]) {
            let lines = range.map { event($0, host: "web4") }
            return ("herdwatch.events.web4", "web4-\(range.lowerBound)+\(range.count)", Array(lines.joined(separator: [UInt8(ascii: "\n")])))
        }
        try publisher.publish(stride(from: 290, to: 400, by: 10).map { message($0..<($0 + 10)) } + [message(295..<305)], timeoutMilliseconds: 5000)
        // Compressed as the sink does by default (Content-Encoding: zstd): 20 events of web5, and
        // one message that says zstd but is not, skipped.
        let compressor = Zstd.Compressor()
        let compressed = [0..<10, 10..<20].map { range in
            let lines = Array(range.map { event($0, host: "web5") }.joined(separator: [UInt8(ascii: "\n")]))
            return (subject: "herdwatch.events.web5", id: "web5-\(range.lowerBound)+10", payload: compressor.compress(lines))
        }
        try publisher.publish(
            compressed + [(subject: "herdwatch.events.web5", id: "damaged", payload: Array("not zstd".utf8))], contentEncoding: "zstd",
            timeoutMilliseconds: 5000)

        let ingest = NATSIngest(configuration: NATSIngest.Configuration(url: server.url), store: store, logger: Logger(label: "test"))
        let running = Task { try await ingest.consume() }
        var stored: [[QueryValue]] = []
        for _ in 0..<100 {
            stored = try store.query("SELECT count(*), count(DISTINCT host) FROM events").rows
            if stored == [[.integer(430), .integer(5)]] { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        running.cancel()
        _ = await running.result
        #expect(stored == [[.integer(430), .integer(5)]])

        // Everything was acknowledged: the durable has nothing more to give.
        let consumer = try JetStreamConsumer(stream: JetStream(url: server.url), subject: "herdwatch.events.>", durable: "herdwatch-server")
        #expect(try consumer.fetch(batch: 100, waitMilliseconds: 500).isEmpty)
    }
}
