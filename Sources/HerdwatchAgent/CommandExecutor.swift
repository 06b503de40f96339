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
                        commandID: command?.id, action: command?.action, target: command.flatMap(Self.target), status: "refused",
                        detail: refused.reason.description, refusal: refused.reason.code, requestedBy: command?.requestedBy),
                    now: now)
            ]
        case .accepted(let command):
            var produced: [Event] = []
            let (succeeded, detail) = execute(command, now: now, produced: &produced)
            let result = Event.ResponseAction(
                commandID: command.id, action: command.action, target: Self.target(command), status: succeeded ? "succeeded" : "failed",
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

    static func target(_ command: Command) -> String? {
        switch command.action {
        case "level": command.arguments["level"]
        case "kill": command.arguments["entity_id"]
        case "block", "unblock": command.arguments["address"]
        default: nil
        }
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
        case "block":
            guard let address = command.arguments["address"] else { return (false, "no address given") }
            do {
                try Firewall().block(address, seconds: Int(seconds ?? 600))
                return (true, "\(address) blocked for \(Int(seconds ?? 600)) s")
            } catch {
                return (false, "\(error)")
            }
        case "unblock":
            guard let address = command.arguments["address"] else { return (false, "no address given") }
            do {
                try Firewall().unblock(address)
                return (true, "\(address) unblocked")
            } catch {
                return (false, "\(error)")
            }
        case "isolate":
            guard let server else { return (false, "no server address known to keep reachable (commands need http.url)") }
            do {
                try Isolation().isolate(keeping: server.host, port: server.port)
                isolationEnds = seconds.map { now + Int64($0 * 1000) }
                return (true, "isolated; only \(server.host):\(server.port) reachable" + (seconds.map { " for \(Int($0)) s" } ?? ""))
            } catch {
                return (false, "\(error)")
            }
        case "release":
            isolationEnds = nil
            return release()
        default:
            return (false, "unknown action '\(command.action)'")
        }
    }

    private func release() -> (Bool, String) {
        do {
            try Isolation().release()
            return (true, "network isolation lifted")
        } catch {
            return (false, "\(error)")
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
