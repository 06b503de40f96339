import Foundation
import Testing

@testable import HerdwatchShipping
import HerdwatchTestSupport

@Suite(.serialized) struct JetStreamTests {
    static let available = NATSServer.binary != nil

    func messages(_ range: Range<Int>, host: String = "web1") -> [(subject: String, id: String, payload: [UInt8])] {
        range.map { ("herdwatch.events.\(host)", "host1-\($0)", Array("{\"n\":\($0)}".utf8)) }
    }

    @Test(.enabled(if: available, "needs nats-server (scripts/setup installs it)"))
    func everyMessageIsAcknowledgedAndStoredOnceEvenWhenSentTwice() throws {
        let server = try NATSServer()
        let stream = try JetStream(url: server.url)
        try stream.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])
        try stream.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])  // already there: fine
        for start in stride(from: 0, to: 500, by: 100) {
            try stream.publish(messages(start..<(start + 100)), timeoutMilliseconds: 5000)
        }
        try stream.publish(messages(200..<300), timeoutMilliseconds: 5000)  // an ack lost: sent again
        let read = try stream.drain(subject: "herdwatch.events.>", durable: "check")
        #expect(read.count == 500)
        #expect(Set(read.compactMap(\.id)) == Set((0..<500).map { "host1-\($0)" }))
        #expect(read.first.map { String(decoding: $0.payload, as: UTF8.self) } == "{\"n\":0}")
        #expect(JetStream.subjectToken("web 1.example.com") == "web_1_example_com")
    }

    /// The server is restarted (SIGTERM, then started again on the same store) in the middle of a run
    /// of batches: the publisher retries what was not acknowledged, and the stream holds each
    /// message once. (SIGKILL is not used: nats-server 2.9 can lose messages it had acknowledged
    /// but not yet written out, which no publisher can see.)
    @Test(.enabled(if: available, "needs nats-server (scripts/setup installs it)"))
    func aServerRestartDuringPublishingLosesNothing() throws {
        let server = try NATSServer()
        let stream = try JetStream(url: server.url)
        try stream.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])
        let total = 3000
        var failures = 0
        var start = 0
        while start < total {
            if start == 1000 && failures == 0 { server.stop(signal: SIGTERM) }
            do {
                try stream.publish(messages(start..<(start + 100)), timeoutMilliseconds: 500)
                start += 100
            } catch {
                failures += 1
                // Down for three attempts, then back on the same store.
                if failures == 3 { try server.start() }
                #expect(failures < 60, "no recovery: \(error)")
                if failures >= 60 { return }
            }
        }
        #expect(failures > 0, "the restart was noticed")
        let read = try stream.drain(subject: "herdwatch.events.>", durable: "check")
        #expect(Set(read.compactMap(\.id)) == Set((0..<total).map { "host1-\($0)" }))
        #expect(read.count == total, "each message once (\(read.count))")
    }

    /// Spool records as the agent writes them: ECS JSON with `event.id`.
    func records(_ range: Range<Int>) -> [(payload: [UInt8], next: SpoolPosition)] {
        range.map { (Array("{\"event\":{\"id\":\"h-\($0)\"},\"n\":\($0)}".utf8), SpoolPosition(segment: 1, offset: UInt64($0 + 1))) }
    }

    @Test func severalEventsGoInOneMessageUpToTheLimits() throws {
        var configuration = JetStreamSink.Configuration(url: "nats://127.0.0.1:1")
        let sink = JetStreamSink(configuration: configuration, hostName: "web 1")
        let batch = records(0..<70)
        let messages = sink.messages(batch[...])
        #expect(messages.map(\.id) == ["h-0+32", "h-32+32", "h-64+6"])
        #expect(messages.allSatisfy { $0.subject == "herdwatch.events.web_1" })
        #expect(sink.contentEncoding == "zstd")
        let lines = try messages.flatMap { try JetStreamSink.events(in: $0.payload, encoding: "zstd").map(Array.init) }
        #expect(lines == batch.map(\.payload), "every event once, in order, one line each")
        #expect(messages.reduce(0) { $0 + $1.payload.count } < batch.reduce(0) { $0 + $1.payload.count } / 3, "compressed")

        // Uncompressed: the lines as they are, no encoding.
        var plain = configuration
        plain.compression = .none
        let plainSink = JetStreamSink(configuration: plain, hostName: "web 1")
        #expect(plainSink.contentEncoding == nil)
        #expect(plainSink.messages(batch[...]).flatMap { JetStreamSink.events(in: $0.payload).map(Array.init) } == batch.map(\.payload))
        #expect(throws: JetStreamSink.UnknownEncoding.self) { try JetStreamSink.events(in: messages[0].payload, encoding: "gzip") }
        #expect(throws: (any Error).self) { try JetStreamSink.events(in: Array("not zstd".utf8), encoding: "zstd") }

        // A message is closed before it passes the byte limit; a larger event goes alone.
        configuration.maximumMessageBytes = 3 * batch[0].payload.count + 2
        let small = JetStreamSink(configuration: configuration, hostName: "web1").messages(batch[0..<7])
        #expect(small.map(\.id) == ["h-0+3", "h-3+3", "h-6+1"])
        configuration.maximumMessageBytes = 10
        #expect(JetStreamSink(configuration: configuration, hostName: "web1").messages(batch[0..<2]).map(\.id) == ["h-0+1", "h-1+1"])

        // One event per message: the event id is the message id.
        configuration.eventsPerMessage = 1
        #expect(JetStreamSink(configuration: configuration, hostName: "web1").messages(batch[0..<3]).map(\.id) == ["h-0", "h-1", "h-2"])
    }

    /// Batches are pipelined (one in flight), and a batch that failed is sent again as the same
    /// messages, even when more events were spooled meanwhile, so the stream drops what it had
    /// stored: every event once, in order.
    @Test(.enabled(if: available, "needs nats-server (scripts/setup installs it)"))
    func aFailedBatchIsSentAgainAsTheSameMessages() throws {
        let server = try NATSServer()
        var configuration = JetStreamSink.Configuration(url: server.url)
        configuration.ackTimeoutMilliseconds = 500
        let sink = JetStreamSink(configuration: configuration, hostName: "web1")
        let all = records(0..<120)
        // One batch in flight: sending one confirms the one before; `confirmed` the last.
        #expect(try sink.send(Array(all[0..<30])) == nil)
        #expect(try sink.send(Array(all[30..<50])) == all[29].next)
        #expect(try sink.confirmed() == all[49].next)
        #expect(try sink.confirmed() == nil)

        server.stop(signal: SIGTERM)
        #expect(throws: (any Error).self) {
            _ = try sink.send(Array(all[50..<100]))
            _ = try sink.confirmed()
        }
        sink.reset()
        try server.start()
        var sent: SpoolPosition?
        for _ in 0..<50 where sent == nil {
            do {
                #expect(try sink.send(Array(all[50..<120])) == nil)
                sent = try sink.confirmed()
            } catch {
                sink.reset()
                usleep(200_000)
            }
        }
        #expect(sent == all[99].next, "the retry stops where the failed batch ended")
        #expect(try sink.send(Array(all[100..<120])) == nil)
        #expect(try sink.confirmed() == all[119].next)

        let read = try JetStream(url: server.url).drain(subject: "herdwatch.events.>", durable: "check")
        #expect(read.allSatisfy { $0.encoding == "zstd" }, "the sink's messages say how they are compressed")
        let events = try read.flatMap { try JetStreamSink.events(in: $0.payload, encoding: $0.encoding).map { String(decoding: $0, as: UTF8.self) } }
        #expect(events == all.map { String(decoding: $0.payload, as: UTF8.self) }, "each event once, in order (\(events.count))")
        #expect(read.map(\.id).first == "h-0+30")
    }
}
