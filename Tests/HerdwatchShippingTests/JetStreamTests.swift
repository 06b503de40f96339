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
}
