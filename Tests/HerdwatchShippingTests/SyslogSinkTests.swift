import Foundation
import Testing

@testable import HerdwatchShipping

@Suite struct SyslogSinkTests {
    @Test func anEventIsOneOctetCountedRFC5424Message() throws {
        var configuration = SyslogSink.Configuration(host: "127.0.0.1", port: 514)
        configuration.facility = 10
        let sink = SyslogSink(configuration: configuration, hostName: "web 1.example")
        let event = #"{"@timestamp":"2026-11-23T10:00:00.123Z","event":{"kind":"event","action":"process-started","id":"abc-1"},"message":"ünïcode"}"#
        let frame = String(decoding: sink.frame(Array(event.utf8)), as: UTF8.self)
        let space = try #require(frame.firstIndex(of: " "))
        let length = try #require(Int(frame[..<space]))
        let message = frame[frame.index(after: space)...]
        #expect(length == message.utf8.count, "the count is in bytes")
        #expect(message.hasPrefix("<86>1 2026-11-23T10:00:00.123Z web1.example herdwatch-agent \(getpid()) process-started - {"))
        #expect(message.hasSuffix(event))
        #expect(SpooledEvent.firstString("id", in: Array(event.utf8)) == "abc-1")
        // The frame is what SyslogMessage makes from the same fields, for odd events too.
        for payload in [
            event, "{}", #"{"@timestamp":"","event":{"action":"a b\u00e9"}}"#, #"{"@timestamp":"2026-11-23T10:00:00Z","action":"\#(String(repeating: "x", count: 40))é"}"#,
            String(repeating: " ", count: 3000) + #""action":"late""#,
        ] {
            let bytes = Array(payload.utf8)
            let expected = SyslogMessage(
                facility: 10, severity: 6, timestamp: SpooledEvent.firstString("@timestamp", in: bytes), hostName: "web 1.example",
                appName: "herdwatch-agent", processID: String(getpid()), messageID: SpooledEvent.firstString("action", in: bytes), message: bytes
            ).octetCounted
            #expect(sink.frame(bytes) == expected, "\(payload.prefix(80))")
        }
        #expect(SpooledEvent.firstString("missing", in: Array(event.utf8)) == nil)
    }

    @Test func structuredDataIsEscapedAndHeaderFieldsAreMadeValid() {
        let message = SyslogMessage(
            facility: 99, severity: 2, timestamp: "2026-11-23T10:00:00.000Z", hostName: "", appName: "my app",
            messageID: String(repeating: "m", count: 40),
            structuredData: [.init(id: "x@32473", parameters: [("q", #"say "hi" [\] ok"#), ("bad name=", "v")])], message: Array("é".utf8))
        #expect(
            String(decoding: message.bytes, as: UTF8.self)
                == #"<186>1 2026-11-23T10:00:00.000Z - myapp - \#(String(repeating: "m", count: 32)) [x@32473 q="say \"hi\" [\\\] ok" badname="v"] é"#)
        #expect(message.octetCounted == Array("\(message.bytes.count) ".utf8) + message.bytes)
    }

    @Test func nobodyListeningIsAnErrorNotAHang() {
        let sink = SyslogSink(configuration: SyslogSink.Configuration(host: "127.0.0.1", port: 9), hostName: "h")
        #expect(throws: SinkError.self) {
            _ = try sink.send([(Array("{}".utf8), SpoolPosition(segment: 1, offset: 10))])
        }
    }
}
