import AsyncHTTPClient
import Foundation
import HerdwatchEvents
import HerdwatchPolicy
import HerdwatchShipping
import HerdwatchStore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

// The notify actions of automated responses: an alert that matched a response policy, sent to a
// webhook, a Slack-compatible incoming webhook, a syslog receiver or a file.
//
//     let notifier = Notifier(logger: logger)          // run it in the service group, or call shutdown()
//     let target = try NotifyTarget(kind: "webhook", options: ["url": "https://hooks.example/herdwatch",
//                                                             "header.Authorization": "Bearer s3cret"])
//     let outcome = await notifier.send(AlertNotification(alert: stored, policy: "crypto-miners"), to: target)
//     // outcome.succeeded, outcome.attempts, outcome.detail ("HTTP 503 after 5 attempts")
//
// Webhooks and Slack are retried with exponential backoff and jitter on connection errors,
// timeouts, 5xx and 429 (waiting at least the server's Retry-After when it is at most
// `max_retry_after`); any other status is final. Syslog over TCP is retried on connection errors.
// A file is written once.

// MARK: - Targets

/// Where a notification goes, and how hard to try.
public struct NotifyTarget: Sendable, Equatable {
    public enum Destination: Sendable, Equatable {
        /// The notification's JSON object, POSTed.
        case webhook(HTTPEndpoint)
        /// A Slack-compatible incoming webhook: `{"text": ...}`.
        case slack(HTTPEndpoint)
        /// One RFC 5424 message.
        case syslog(SyslogEndpoint)
        /// One JSON line appended; `-` is standard output.
        case file(path: String)
    }

    public var destination: Destination
    public var retry: RetryPolicy

    public init(_ destination: Destination, retry: RetryPolicy = RetryPolicy()) {
        self.destination = destination
        self.retry = retry
    }

    /// `webhook`, `slack`, `syslog` or `file`.
    public var kind: String {
        switch destination {
        case .webhook: "webhook"
        case .slack: "slack"
        case .syslog: "syslog"
        case .file: "file"
        }
    }

    /// A target as a response policy writes it: a kind and its options, all strings.
    ///
    ///     webhook  url (http:// or https://), header.NAME (extra headers), ui_url
    ///     slack    url, ui_url (the web UI's base URL, for a link to the alert)
    ///     syslog   address (HOST:PORT, [IPv6]:PORT), protocol (tcp, udp; tcp), facility (0-23 or
    ///              a name: local0 ... local7, authpriv, security, daemon, user; local0), app_name (herdwatch)
    ///     file     path (`-` is standard output)
    ///
    /// webhook, slack and syslog also take attempts (1-20; 5), timeout (per attempt; 10s),
    /// backoff (the first wait; 500ms), max_backoff (30s) and max_retry_after (60s); durations are
    /// written `500ms`, `10s`, `2m` (a bare number is seconds). An unknown option is an error, so a
    /// misspelt one is not silently ignored.
    public init(kind: String, options: [String: String]) throws(NotifyTargetError) {
        var reader = OptionReader(kind: kind, options: options)
        switch kind {
        case "webhook", "slack":
            let url = try reader.required("url")
            var headers: [String: String] = [:]
            for name in reader.remainingKeys where name.hasPrefix("header.") {
                headers[String(name.dropFirst("header.".count))] = reader.take(name)
            }
            let endpoint = try HTTPEndpoint(url: url, headers: headers, interfaceURL: reader.take("ui_url"), kind: kind)
            destination = kind == "webhook" ? .webhook(endpoint) : .slack(endpoint)
            retry = try RetryPolicy(reading: &reader)
        case "syslog":
            let address = try reader.required("address")
            var endpoint = try SyslogEndpoint(address: address)
            if let text = reader.take("protocol") {
                guard let transport = SyslogEndpoint.Transport(rawValue: text.lowercased()) else {
                    throw reader.error("protocol", text, "expected tcp or udp")
                }
                endpoint.transport = transport
            }
            if let text = reader.take("facility") {
                guard let facility = SyslogEndpoint.facility(named: text) else {
                    throw reader.error("facility", text, "expected 0-23 or a name such as local0 or authpriv")
                }
                endpoint.facility = facility
            }
            if let name = reader.take("app_name") {
                guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 }), name.utf8.count <= 48 else {
                    throw reader.error("app_name", name, "expected at most 48 printable ASCII characters without spaces")
                }
                endpoint.appName = name
            }
            destination = .syslog(endpoint)
            retry = try RetryPolicy(reading: &reader)
        case "file":
            let path = try reader.required("path")
            destination = .file(path: path)
            retry = RetryPolicy()
            retry.attempts = 1
        default:
            throw NotifyTargetError(kind: kind, field: "kind", value: kind, reason: "expected webhook, slack, syslog or file")
        }
        try reader.finish()
    }
}

/// A bad notify target: which kind, which field, the offending value and what was expected.
public struct NotifyTargetError: Error, Sendable, Equatable, CustomStringConvertible {
    public var kind: String
    public var field: String
    /// Nil when the field is missing.
    public var value: String?
    public var reason: String

    public init(kind: String, field: String, value: String?, reason: String) {
        self.kind = kind
        self.field = field
        self.value = value
        self.reason = reason
    }

    public var description: String {
        "notify target \(kind): \(field)\(value.map { " '\($0)'" } ?? ""): \(reason)"
    }
}

/// An HTTP(S) URL that takes a POST, extra headers (`Authorization`, ...), and where the web UI is.
public struct HTTPEndpoint: Sendable, Equatable {
    public let url: String
    public let headers: [String: String]
    /// The web UI's base URL (`https://herdwatch.example`): the notification links to the alert there.
    public let interfaceURL: String?

    public init(url: String, headers: [String: String] = [:], interfaceURL: String? = nil) throws(NotifyTargetError) {
        try self.init(url: url, headers: headers, interfaceURL: interfaceURL, kind: "webhook")
    }

    init(url: String, headers: [String: String], interfaceURL: String?, kind: String) throws(NotifyTargetError) {
        guard Self.isHTTPURL(url) else {
            throw NotifyTargetError(kind: kind, field: "url", value: url, reason: "expected an http:// or https:// URL with a host")
        }
        for (name, value) in headers {
            // RFC 9110 token characters for the name; no line breaks in the value (no header injection).
            let token = "!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            guard !name.isEmpty, name.unicodeScalars.allSatisfy({ token.unicodeScalars.contains($0) }) else { throw NotifyTargetError(kind: kind, field: "header.\(name)", value: nil, reason: "not a valid header name") }
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw NotifyTargetError(kind: kind, field: "header.\(name)", value: nil, reason: "a header value cannot hold a line break")
            }
        }
        if let interfaceURL, !Self.isHTTPURL(interfaceURL) {
            throw NotifyTargetError(kind: kind, field: "ui_url", value: interfaceURL, reason: "expected an http:// or https:// URL with a host")
        }
        self.url = url
        self.headers = headers
        self.interfaceURL = interfaceURL
    }

    static func isHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty
        else { return false }
        return true
    }
}

/// A syslog receiver.
public struct SyslogEndpoint: Sendable, Equatable {
    public enum Transport: String, Sendable {
        /// Octet-counted framing (RFC 6587), as rsyslog's imtcp and syslog-ng's network() take it.
        case tcp
        /// One datagram (RFC 5426).
        case udp
    }

    public var host: String
    public var port: Int
    public var transport: Transport = .tcp
    /// 16 is local0.
    public var facility = 16
    public var appName = "herdwatch"

    public init(host: String, port: Int, transport: Transport = .tcp) {
        self.host = host
        self.port = port
        self.transport = transport
    }

    /// `HOST:PORT` or `[IPv6]:PORT`.
    public init(address: String) throws(NotifyTargetError) {
        let invalid = NotifyTargetError(kind: "syslog", field: "address", value: address, reason: "expected HOST:PORT or [IPv6]:PORT")
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port)
        else { throw invalid }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(" ") else { throw invalid }
        self.init(host: host, port: port)
    }

    static func facility(named text: String) -> Int? {
        if let number = Int(text) { return (0...23).contains(number) ? number : nil }
        let names = [
            "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "security": 4, "syslog": 5, "authpriv": 10,
            "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
        ]
        return names[text.lowercased()]
    }
}

/// How often and how patiently a notification is tried.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var attempts = 5
    /// Each attempt's limit: connecting, sending and the reply.
    public var attemptTimeout: Duration = .seconds(10)
    /// The wait after the first failed attempt; it doubles after each one, up to `maximumBackoff`,
    /// and each wait is drawn between half of it and all of it (jitter).
    public var initialBackoff: Duration = .milliseconds(500)
    public var maximumBackoff: Duration = .seconds(30)
    /// A server's Retry-After is honoured up to this; a longer one ends the tries.
    public var maximumRetryAfter: Duration = .seconds(60)

    public init() {}

    /// The wait after failed attempt `attempt` (1 is the first).
    func backoff(after attempt: Int) -> Duration {
        let initial = max(Self.seconds(initialBackoff), 0)
        let ceiling = max(Self.seconds(maximumBackoff), 0)
        let full = min(initial * pow(2, Double(min(max(attempt - 1, 0), 40))), ceiling)
        return .milliseconds(Int64(Double.random(in: (full / 2)...max(full, full / 2)) * 1000))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    fileprivate init(reading reader: inout OptionReader) throws(NotifyTargetError) {
        if let text = reader.take("attempts") {
            guard let attempts = Int(text), (1...20).contains(attempts) else { throw reader.error("attempts", text, "expected 1 to 20") }
            self.attempts = attempts
        }
        attemptTimeout = try reader.duration("timeout", default: attemptTimeout, minimum: 1)
        initialBackoff = try reader.duration("backoff", default: initialBackoff, minimum: 0)
        maximumBackoff = try reader.duration("max_backoff", default: maximumBackoff, minimum: 0)
        maximumRetryAfter = try reader.duration("max_retry_after", default: maximumRetryAfter, minimum: 0)
    }
}

/// Takes options one by one, so that what is left over at the end is an error.
private struct OptionReader {
    let kind: String
    var options: [String: String]

    init(kind: String, options: [String: String]) {
        self.kind = kind
        self.options = options
    }

    var remainingKeys: [String] { options.keys.sorted() }

    mutating func take(_ key: String) -> String? { options.removeValue(forKey: key) }

    mutating func required(_ key: String) throws(NotifyTargetError) -> String {
        guard let value = take(key), !value.isEmpty else {
            throw NotifyTargetError(kind: kind, field: key, value: nil, reason: "is required")
        }
        return value
    }

    mutating func duration(_ key: String, default value: Duration, minimum milliseconds: Int64) throws(NotifyTargetError) -> Duration {
        guard let text = take(key) else { return value }
        guard let parsed = PolicyDuration.milliseconds(text), parsed >= milliseconds, parsed <= 3_600_000 else {
            throw error(key, text, "expected a duration such as 500ms, 10s or 2m, at most 1h\(milliseconds > 0 ? ", more than 0" : "")")
        }
        return .milliseconds(parsed)
    }

    func error(_ field: String, _ value: String, _ reason: String) -> NotifyTargetError {
        NotifyTargetError(kind: kind, field: field, value: value, reason: reason)
    }

    func finish() throws(NotifyTargetError) {
        guard let unknown = remainingKeys.first else { return }
        throw NotifyTargetError(kind: kind, field: unknown, value: options[unknown], reason: "unknown option for a \(kind) target")
    }
}

// MARK: - Notifications

/// An alert and why it is being sent: the response policy that matched and what it decided.
public struct AlertNotification: Sendable {
    public var alert: StoredAlert
    /// The response policy's name.
    public var policy: String
    public var hostTags: [String]
    /// The policy only says what it would do.
    public var dryRun: Bool
    /// The actions the policy decided (`notify`, `kill`, ...), for the reader.
    public var actions: [String]

    public init(alert: StoredAlert, policy: String, hostTags: [String] = [], dryRun: Bool = false, actions: [String] = []) {
        self.alert = alert
        self.policy = policy
        self.hostTags = hostTags
        self.dryRun = dryRun
        self.actions = actions
    }

    /// The JSON object webhooks receive and files hold, snake_case; absent values are left out.
    ///
    ///     {"alert_id":…,"rule_id":…,"rule_title":…,"level":"high","severity":73,"host":"web1",
    ///      "host_tags":[…],"time":"2026-11-23T10:00:00.000Z","entity_id":…,"pid":4242,
    ///      "executable":…,"command_line":…,"user":…,"tags":[…],"event_ids":[…],"correlation":…,
    ///      "policy":…,"dry_run":false,"actions":[…],"link":…}
    public func json(link: String? = nil) -> [UInt8] {
        var writer = JSONWriter(capacity: 1024)
        writer.beginObject()
        writer.member("alert_id", alert.id)
        writer.member("rule_id", alert.ruleID)
        writer.member("rule_title", alert.ruleTitle)
        writer.member("level", alert.level)
        writer.member("severity", alert.severity)
        writer.member("host", alert.host)
        writer.key("host_tags")
        Self.strings(hostTags, into: &writer)
        writer.timestampMember("time", milliseconds: alert.time)
        writer.member("entity_id", alert.entityID)
        writer.member("pid", alert.pid)
        writer.member("executable", alert.executable)
        writer.member("command_line", alert.commandLine)
        writer.member("user", alert.userName)
        writer.key("tags")
        Self.strings(alert.tags, into: &writer)
        writer.key("event_ids")
        Self.strings(alert.eventIDs, into: &writer)
        writer.member("correlation", alert.correlation)
        writer.member("policy", policy)
        writer.key("dry_run")
        writer.bool(dryRun)
        writer.key("actions")
        Self.strings(actions, into: &writer)
        writer.member("link", link)
        writer.endObject()
        return writer.bytes
    }

    /// Where the web UI shows the alert: its process when it has one, else the host's alerts.
    public func link(base: String) -> String {
        let base = base.hasSuffix("/") ? String(base.dropLast()) : base
        var component = CharacterSet.urlPathAllowed
        component.remove(charactersIn: "/?&=#+")
        func encoded(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: component) ?? "" }
        if let entity = alert.entityID, !entity.isEmpty { return "\(base)/process/\(encoded(entity))" }
        return "\(base)/alerts?hosts=\(encoded(alert.host))&level=\(encoded(alert.level))"
    }

    /// One line for people: `[high] Rule title on web1: /usr/bin/curl (pid 4242)`.
    var summary: String {
        var text = "\(dryRun ? "[dry run] " : "")[\(alert.level)] \(alert.ruleTitle) on \(alert.host.isEmpty ? "an unknown host" : alert.host)"
        if let executable = alert.executable { text += ": \(executable)" }
        if let pid = alert.pid { text += " (pid \(pid))" }
        return text
    }

    /// A Slack incoming-webhook message: one `text` in Slack's mrkdwn.
    func slackPayload(link: String?) -> [UInt8] {
        // Slack wants &, < and > escaped; a backquote would end the code span.
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
        }
        var lines = [
            "\(dryRun ? "[dry run] " : "")*\(escaped(alert.level.uppercased()))* (severity \(alert.severity)) \(escaped(alert.ruleTitle))",
            "Host: *\(escaped(alert.host.isEmpty ? "-" : alert.host))*",
        ]
        if alert.executable != nil || alert.pid != nil {
            var process = "Process: \(escaped(alert.executable ?? "-"))"
            if let pid = alert.pid { process += " (pid \(pid)\(alert.userName.map { ", user \(escaped($0))" } ?? ""))" }
            lines.append(process)
        }
        if let commandLine = alert.commandLine, !commandLine.isEmpty {
            lines.append("Command line: `\(escaped(commandLine.replacingOccurrences(of: "`", with: "'")))`")
        }
        lines.append("Policy: \(escaped(policy))\(dryRun ? " (dry run)" : "")")
        if let link { lines.append("<\(link)|Open in Herdwatch>") }
        var writer = JSONWriter(capacity: 512)
        writer.beginObject()
        writer.member("text", lines.joined(separator: "\n"))
        writer.endObject()
        return writer.bytes
    }

    /// The alert's fields as structured data (`[alert@32473 …]`), the summary as MSG. 32473 is
    /// the private enterprise number reserved for examples (RFC 5612).
    func syslogMessage(for endpoint: SyslogEndpoint, processID: String) -> SyslogMessage {
        var parameters: [(name: String, value: String)] = [
            ("alert_id", alert.id), ("rule_id", alert.ruleID), ("rule_title", alert.ruleTitle), ("level", alert.level),
            ("severity", String(alert.severity)), ("host", alert.host),
        ]
        if let entity = alert.entityID { parameters.append(("entity_id", entity)) }
        if let pid = alert.pid { parameters.append(("pid", String(pid))) }
        if let executable = alert.executable { parameters.append(("executable", executable)) }
        if let commandLine = alert.commandLine { parameters.append(("command_line", commandLine)) }
        if let user = alert.userName { parameters.append(("user", user)) }
        if !alert.tags.isEmpty { parameters.append(("tags", alert.tags.joined(separator: ","))) }
        if !alert.eventIDs.isEmpty { parameters.append(("event_ids", alert.eventIDs.joined(separator: ","))) }
        parameters += [("policy", policy), ("dry_run", dryRun ? "true" : "false")]
        if !actions.isEmpty { parameters.append(("actions", actions.joined(separator: ","))) }
        let severity =
            switch alert.level {
            case "critical": 2
            case "high": 3
            case "medium": 4
            case "low": 5
            default: 6
            }
        var writer = JSONWriter(capacity: 40)
        writer.timestampMember("t", milliseconds: alert.time)
        // `"t":"2026-…Z"`: the time without its key and quotes.
        let timestamp = String(decoding: writer.bytes.dropFirst(5).dropLast(), as: UTF8.self)
        return SyslogMessage(
            facility: endpoint.facility, severity: severity, timestamp: timestamp, hostName: alert.host, appName: endpoint.appName,
            processID: processID, messageID: "alert", structuredData: [.init(id: "alert@32473", parameters: parameters)],
            message: Array(summary.utf8))
    }

    private static func strings(_ values: [String], into writer: inout JSONWriter) {
        writer.beginArray()
        for value in values { writer.string(value) }
        writer.endArray()
    }
}

/// What became of a notification.
public struct NotifyOutcome: Sendable, Equatable, CustomStringConvertible {
    public var succeeded: Bool
    /// Attempts made (0 when nothing could be tried).
    public var attempts: Int
    /// For people: `HTTP 200 after 3 attempts`, `HTTP 400 after 1 attempt: bad token`.
    public var detail: String

    public init(succeeded: Bool, attempts: Int, detail: String) {
        self.succeeded = succeeded
        self.attempts = attempts
        self.detail = detail
    }

    public var description: String { "\(succeeded ? "succeeded" : "failed"): \(detail)" }
}

// MARK: - Sending

/// Sends notifications. It owns an HTTP client: run the notifier in the server's service group
/// (it shuts the client down on graceful shutdown) or call `shutdown()` before letting it go; an
/// HTTP client that was never shut down stops a debug build at exit.
public final class Notifier: Service, Sendable {
    private let client: HTTPClient
    private let group: any EventLoopGroup
    private let logger: Logger
    private let processID = String(ProcessInfo.processInfo.processIdentifier)

    public init(logger: Logger, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.logger = logger
        group = eventLoopGroup
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        // Our retries decide, not the client's: a refused connection fails the attempt at once.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration, backgroundActivityLogger: logger)
    }

    /// Sends `notification`, retrying as `target.retry` says. Never throws: the outcome says what happened.
    public func send(_ notification: AlertNotification, to target: NotifyTarget) async -> NotifyOutcome {
        let outcome: NotifyOutcome
        switch target.destination {
        case .webhook(let endpoint):
            let body = notification.json(link: endpoint.interfaceURL.map { notification.link(base: $0) })
            outcome = await retrying(target) { timeout in await self.post(body, to: endpoint, timeout: timeout) }
        case .slack(let endpoint):
            let body = notification.slackPayload(link: endpoint.interfaceURL.map { notification.link(base: $0) })
            outcome = await retrying(target) { timeout in await self.post(body, to: endpoint, timeout: timeout) }
        case .syslog(let endpoint):
            let message = notification.syslogMessage(for: endpoint, processID: processID)
            outcome = await retrying(target) { timeout in await self.send(message, to: endpoint, timeout: timeout) }
        case .file(let path):
            let line = notification.json() + [UInt8(ascii: "\n")]
            outcome = await retrying(target) { _ in Self.append(line, to: path) }
        }
        let metadata: Logger.Metadata = [
            "target": "\(target.kind)", "alert": "\(notification.alert.id)", "policy": "\(notification.policy)",
            "attempts": "\(outcome.attempts)", "detail": "\(outcome.detail)",
        ]
        if outcome.succeeded {
            logger.info("notification sent", metadata: metadata)
        } else {
            logger.error("notification failed", metadata: metadata)
        }
        return outcome
    }

    /// Shuts the HTTP client down; sending afterwards fails (the outcome says so).
    public func shutdown() async {
        do {
            try await client.shutdown()
        } catch {
            logger.debug("notifier HTTP client shutdown", metadata: ["error": "\(error)"])
        }
    }

    /// As a service: waits for graceful shutdown, then shuts the HTTP client down.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    // MARK: attempts

    enum Attempt: Sendable {
        case delivered(String)
        /// Trying again cannot help.
        case refused(String)
        /// Worth another try, not sooner than `after` if the receiver asked.
        case failed(String, after: Duration?)
    }

    private func retrying(_ target: NotifyTarget, _ attempt: @Sendable (Duration) async -> Attempt) async -> NotifyOutcome {
        let policy = target.retry
        let limit = max(policy.attempts, 1)
        var made = 0
        func counted(_ detail: String) -> String { "\(detail) after \(made) attempt\(made == 1 ? "" : "s")" }
        while true {
            made += 1
            switch await attempt(policy.attemptTimeout) {
            case .delivered(let detail):
                return NotifyOutcome(succeeded: true, attempts: made, detail: counted(detail))
            case .refused(let detail):
                return NotifyOutcome(succeeded: false, attempts: made, detail: counted(detail))
            case .failed(let detail, let retryAfter):
                guard made < limit else { return NotifyOutcome(succeeded: false, attempts: made, detail: counted(detail)) }
                var wait = policy.backoff(after: made)
                if let retryAfter {
                    guard retryAfter <= policy.maximumRetryAfter else {
                        return NotifyOutcome(
                            succeeded: false, attempts: made,
                            detail: counted("\(detail), Retry-After \(retryAfter) is longer than max_retry_after \(policy.maximumRetryAfter)"))
                    }
                    wait = max(wait, retryAfter)
                }
                logger.warning(
                    "notification attempt failed, trying again",
                    metadata: ["target": "\(target.kind)", "attempt": "\(made)", "detail": "\(detail)", "wait": "\(wait)"])
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    return NotifyOutcome(succeeded: false, attempts: made, detail: counted("\(detail), then cancelled"))
                }
            }
        }
    }

    private func post(_ body: [UInt8], to endpoint: HTTPEndpoint, timeout: Duration) async -> Attempt {
        var request = HTTPClientRequest(url: endpoint.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "herdwatch")
        for (name, value) in endpoint.headers.sorted(by: { $0.key < $1.key }) {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        var reply: [UInt8] = []
        do {
            response = try await client.execute(request, timeout: TimeAmount(timeout), logger: logger)
            // The reply's start, for the detail; the rest is read and dropped so the connection can be reused.
            for try await chunk in response.body where reply.count < 200 {
                reply += chunk.readableBytesView.prefix(200 - reply.count)
            }
        } catch let error as HTTPClientError where error == .alreadyShutdown {
            return .refused("the notifier is shut down")
        } catch {
            return .failed(Self.describe(error, timeout: timeout), after: nil)
        }
        let status = Int(response.status.code)
        var detail = "HTTP \(status)"
        let text = String(decoding: reply, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        switch status {
        case 200..<300:
            return .delivered(detail)
        case 429, 500...599:
            return .failed(detail, after: response.headers.first(name: "Retry-After").flatMap(Self.retryAfter))
        default:
            if !text.isEmpty { detail += " (\(text.replacingOccurrences(of: "\n", with: " ")))" }
            return .refused(detail)
        }
    }

    private func send(_ message: SyslogMessage, to endpoint: SyslogEndpoint, timeout: Duration) async -> Attempt {
        let address = "\(endpoint.transport.rawValue) \(endpoint.host):\(endpoint.port)"
        do {
            switch endpoint.transport {
            case .tcp:
                let channel = try await ClientBootstrap(group: group).connectTimeout(TimeAmount(timeout))
                    .connect(host: endpoint.host, port: endpoint.port).get()
                do {
                    try await channel.writeAndFlush(ByteBuffer(bytes: message.octetCounted)).get()
                } catch {
                    try? await channel.close().get()
                    throw error
                }
                try? await channel.close().get()
            case .udp:
                let channel = try await DatagramBootstrap(group: group).connect(host: endpoint.host, port: endpoint.port).get()
                defer { channel.close(promise: nil) }
                try await channel.writeAndFlush(ByteBuffer(bytes: message.bytes)).get()
            }
            return .delivered("syslog \(address)")
        } catch {
            return .failed("syslog \(address): \(Self.describe(error, timeout: timeout))", after: nil)
        }
    }

    private static func append(_ line: [UInt8], to path: String) -> Attempt {
        let descriptor = path == "-" ? STDOUT_FILENO : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { return .refused("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { if descriptor != STDOUT_FILENO { close(descriptor) } }
        var offset = 0
        while offset < line.count {
            // One write for the whole line in the usual case: O_APPEND keeps concurrent lines whole.
            let count = line[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .refused("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += count
        }
        return .delivered(path == "-" ? "written to standard output" : "appended to \(path)")
    }

    /// Retry-After as seconds (`120`) or an HTTP date.
    static func retryAfter(_ text: String) -> Duration? {
        let text = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(text) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .milliseconds(Int64(max(date.timeIntervalSinceNow, 0) * 1000))
    }

    /// The cause, without the client's nesting: `connection refused`, `timed out after 10 seconds`.
    static func describe(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return "timed out after \(timeout)"
        }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error, timeout: timeout)
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return "timed out after \(timeout)" }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        return String(String(describing: error).prefix(200))
    }
}
