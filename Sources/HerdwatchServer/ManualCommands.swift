import Foundation
import HerdwatchCommands
import HerdwatchStore
import HTTPTypes
import Hummingbird

/// Commands an operator sends by hand (the API, or the buttons of the web UI): recorded as
/// responses of the policy `manual`, with who asked, then signed and queued like a policy's.
///
///     POST /api/v1/hosts/{host}/commands
///     {"action": "isolate", "seconds": 3600}             isolate (seconds optional), release
///     {"action": "kill", "entity_id": "..."}               kill a process by entity id
///     {"action": "block", "address": "203.0.113.9:4444", "seconds": 600}, unblock
///     {"action": "level", "level": "pet", "seconds": 3600}
///
/// 202 `{"command_id", "response_id"}`; 400 naming what is wrong; 404 for a host without a token.
/// A form post (the UI's buttons) answers with a redirect to the host's responses instead. A post
/// that a browser sends from another site (its Origin is not this server) is refused, so a page
/// elsewhere cannot act through a signed-in operator's browser.
struct ManualCommands: Sendable {
    let issuer: CommandIssuer
    let store: any FleetStore
    let hosts: Set<String>
    /// Sign-in is on: the signed-in user's name comes with the request (set by `SignedIn`).
    let signIn: Bool

    static let userHeader = HTTPField.Name("x-herdwatch-user")!

    func handle(_ request: Request, host: String) async throws -> Response {
        if let origin = request.headers[.origin], !Self.sameOrigin(origin, host: request.head.authority) {
            return Pages.json(.forbidden, ["error": "a command must come from this server's own pages (Origin \(origin))"])
        }
        var request = request
        let body = String(buffer: try await request.collectBody(upTo: 64 * 1024))
        let isForm = request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true
        var fields: [String: String] = [:]
        if isForm {
            fields = Pages.form(body)
        } else if let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] {
            for (key, value) in object { fields[key] = "\(value)" }
        } else {
            return Pages.json(.badRequest, ["error": "expected a JSON object with \"action\" (or a form)"])
        }
        guard hosts.contains(host) else { return Pages.json(.notFound, ["error": "no host '\(host)' in the tokens file"]) }
        let user = signIn ? request.headers[Self.userHeader] ?? "?" : "local user (127.0.0.1, no sign-in)"
        let command: Command
        switch validate(fields, host: host, user: user) {
        case .failure(let problem): return Pages.json(.badRequest, ["error": problem.description])
        case .success(let prepared): command = prepared
        }
        let response = StoredResponse(
            id: "manual|\(command.id)", time: command.issuedAt, host: host, policy: "manual",
            action: command.action == "level" ? "raise-level" : command.action, target: command.target ?? host, status: "sent",
            detail: "by \(user)", commandID: command.id)
        try await store.record(responses: [response])
        issuer.send(command)
        if isForm {
            return Response(status: .seeOther, headers: [.location: "/responses?hosts=" + (host.addingPercentEncoding(withAllowedCharacters: Pages.unreserved) ?? "")])
        }
        return Pages.json(.accepted, ["command_id": command.id, "response_id": response.id])
    }

    func validate(_ fields: [String: String], host: String, user: String) -> Result<Command, Problem> {
        guard let action = fields["action"], ["level", "kill", "block", "unblock", "isolate", "release"].contains(action) else {
            return .failure(Problem(description: "action must be one of level, kill, block, unblock, isolate, release"))
        }
        var arguments: [String: String] = [:]
        if let seconds = fields["seconds"], !seconds.isEmpty {
            guard let value = Int(seconds), value > 0, value <= 30 * 86_400 else { return .failure(Problem(description: "seconds must be 1 to 2592000")) }
            arguments["seconds"] = String(value)
        }
        switch action {
        case "kill":
            guard let entity = fields["entity_id"], !entity.isEmpty else { return .failure(Problem(description: "kill needs entity_id")) }
            arguments["entity_id"] = entity
        case "block", "unblock":
            guard let address = fields["address"], !address.isEmpty else { return .failure(Problem(description: "\(action) needs address (IP or IP:PORT)")) }
            arguments["address"] = address
        case "level":
            guard let level = fields["level"], !level.isEmpty else { return .failure(Problem(description: "level needs level (a profile name)")) }
            arguments["level"] = level
        default:
            break
        }
        return .success(
            issuer.prepare(
                host: host, action: action, arguments: arguments, requestedBy: "user \(user)", now: Int64(Date().timeIntervalSince1970 * 1000)))
    }

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// Whether an Origin header (`http://127.0.0.1:8080`) names the server the request came to.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, let schemeEnd = origin.range(of: "://") else { return false }
        return origin[schemeEnd.upperBound...] == host
    }

    /// A small form with one button: a command for `host`.
    static func button(_ label: String, host: String, fields: [String: String]) -> String {
        let hidden = fields.sorted { $0.key < $1.key }
            .map { "<input type=\"hidden\" name=\"\(escape($0.key))\" value=\"\(escape($0.value))\">" }.joined()
        let path = "/api/v1/hosts/" + (host.addingPercentEncoding(withAllowedCharacters: Pages.unreserved) ?? "") + "/commands"
        return "<form method=\"post\" action=\"\(escape(path))\" class=\"act\">\(hidden)<button type=\"submit\">\(escape(label))</button></form>"
    }
}
