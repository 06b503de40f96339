import HerdwatchCommands
import HerdwatchEvents
import HerdwatchPolicy
import Logging

/// Carries out verified commands on this host, in the collection loop, and describes each outcome
/// as a `response-action` event (refusals too), so the server learns what became of its command
/// through the same stream as everything else.
final class CommandExecutor {
    private let policy: TelemetryPolicy
    private let hostName: String?
    private let server: (host: String, port: Int)?
    private let logger: Logger
    /// When the isolation ends by itself (milliseconds since the epoch); nil: not isolated by us, or no end.
    private var isolationEnds: Int64?

    init(policy: TelemetryPolicy, hostName: String?, server: (host: String, port: Int)?, logger: Logger) {
        self.policy = policy
        self.hostName = hostName
        self.server = server
        self.logger = logger
    }

    /// The events to emit for one received command: the outcome, and what the action itself
    /// produced (a level change).
    func handle(_ received: ReceivedCommand, now: Int64) -> [Event] {
        switch received {
        case .refused(let refused):
            let command = refused.command
            return [
                outcome(
                    Event.ResponseAction(
                        commandID: command?.id, action: command?.action, target: command?.target, status: "refused",
                        detail: refused.reason.description, refusal: refused.reason.code, requestedBy: command?.requestedBy),
                    now: now)
            ]
        case .accepted(let command):
            var produced: [Event] = []
            let (succeeded, detail) = execute(command, now: now, produced: &produced)
            let result = Event.ResponseAction(
                commandID: command.id, action: command.action, target: command.target, status: succeeded ? "succeeded" : "failed",
                detail: detail, requestedBy: command.requestedBy)
            logger.notice(
                "command carried out",
                metadata: ["action": "\(command.action)", "id": "\(command.id)", "status": "\(result.status)", "detail": "\(detail)"])
            return produced + [outcome(result, now: now)]
        }
    }

    /// Ends an isolation whose time is up; the release is reported like a command's outcome.
    func tick(now: Int64) -> [Event] {
        guard let ends = isolationEnds, now >= ends else { return [] }
        isolationEnds = nil
        let (succeeded, detail) = release()
        return [
            outcome(
                Event.ResponseAction(
                    commandID: nil, action: "release", target: hostName, status: succeeded ? "succeeded" : "failed",
                    detail: "isolation expired: \(detail)", requestedBy: "agent"),
                now: now)
        ]
    }

    private func execute(_ command: Command, now: Int64, produced: inout [Event]) -> (Bool, String) {
        let seconds = command.arguments["seconds"].flatMap(Double.init)
        if let seconds, !(seconds > 0 && seconds < 1e7) { return (false, "seconds must be a positive number") }
        switch command.action {
        case "level":
            guard let name = command.arguments["level"] else { return (false, "no level given") }
            do {
                let until = seconds.map { now + Int64($0 * 1000) }
                produced.append(try policy.setLevel(name, until: until, requestedBy: command.requestedBy, now: now))
                return (true, "level \(name)" + (seconds.map { " for \(Int($0)) s" } ?? ""))
            } catch {
                return (false, "\(error)")
            }
        case "kill":
            guard let entity = command.arguments["entity_id"] else { return (false, "no entity_id given") }
            let result = ProcessKill.kill(entityID: entity)
            return (result.succeeded, result.description)
        case "block", "unblock":
            do throws(CommandFailure) {
                let address = try RemoteAddress.parsed(command.arguments["address"])
                let firewall = try HostFirewall.opened()
                if command.action == "unblock" {
                    let was = try firewall.run { try $0.unblock(address) }
                    return (true, was ? "\(address) unblocked" : "\(address) was not blocked")
                }
                let duration = seconds ?? 600
                try firewall.run { try $0.block(address, for: .milliseconds(Int64(duration * 1000))) }
                return (true, "\(address) blocked for \(Int(duration)) s")
            } catch {
                return (false, error.description)
            }
        case "isolate":
            guard let server else { return (false, "no server address known to keep reachable (commands need http.url)") }
            do throws(CommandFailure) {
                let address = try RemoteAddress.parsed(server.host, port: server.port)
                try HostFirewall.opened().run { try $0.isolate(server: address) }
                isolationEnds = seconds.map { now + Int64($0 * 1000) }
                return (true, "isolated; only \(address) reachable" + (seconds.map { " for \(Int($0)) s" } ?? ""))
            } catch {
                return (false, error.description)
            }
        case "release":
            isolationEnds = nil
            return release()
        default:
            return (false, "unknown action '\(command.action)'")
        }
    }

    private func release() -> (Bool, String) {
        do throws(CommandFailure) {
            let was = try HostFirewall.opened().run { try $0.release() }
            return (true, was ? "network isolation lifted" : "the host was not isolated")
        } catch {
            return (false, error.description)
        }
    }

    private func outcome(_ response: Event.ResponseAction, now: Int64) -> Event {
        var event = Event(
            timestamp: AuditTimestamp(milliseconds: now), kind: .responseAction, outcome: response.status == "succeeded" ? .success : .failure,
            host: Event.Host(name: hostName))
        event.module = "agent"
        event.response = response
        event.message = "\(response.action ?? "command") \(response.status)" + (response.detail.map { ": \($0)" } ?? "")
        return event
    }
}

/// Why a host action could not be carried out, in words for the outcome event.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

extension RemoteAddress {
    /// A command's address argument (or the server's host and port), checked.
    static func parsed(_ text: String?, port: Int? = nil) throws(CommandFailure) -> RemoteAddress {
        guard let text else { throw CommandFailure(description: "no address given") }
        do {
            if let port { return try RemoteAddress(host: text, port: UInt16(clamping: port)) }
            return try RemoteAddress(parsing: text)
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }
}

extension HostFirewall {
    static func opened() throws(CommandFailure) -> HostFirewall {
        do {
            return try HostFirewall()
        } catch {
            throw CommandFailure(description: error.description)
        }
    }

    func run<T>(_ body: (HostFirewall) throws -> T) throws(CommandFailure) -> T {
        do {
            return try body(self)
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }
}
