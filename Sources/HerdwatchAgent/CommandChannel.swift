import Foundation
import HerdwatchCommands
import HerdwatchShipping
import Logging
import Synchronization

/// A command as the poll hands it to the collection loop: verified, or refused with the reason.
enum ReceivedCommand: Sendable {
    case accepted(Command)
    case refused(CommandVerifier.Refused)
}

/// Commands verified on the poll's thread, waiting for the collection loop (which owns the
/// policy and carries them out between batches, within one poll interval).
final class CommandInbox: Sendable {
    private let received = Mutex<[ReceivedCommand]>([])
    /// Wakes the collection loop, so a command is carried out at once even on an idle host.
    let waker: Waker?

    init(waker: Waker? = nil) { self.waker = waker }

    func put(_ command: ReceivedCommand) {
        received.withLock { $0.append(command) }
        waker?.wake()
    }
    func take() -> [ReceivedCommand] { received.withLock { list in defer { list = [] }; return list } }
}

/// The agent's end of the command channel: one request kept open to the server
/// (`GET /api/v1/commands`, the host's token), each command checked by `CommandVerifier` —
/// signature, host, validity window, replay, accepted action — before it reaches the inbox.
/// Refusals go to the inbox too: the loop reports them as events.
struct CommandChannel: Sendable {
    var client: HTTPSink.Configuration
    var verifier: CommandVerifier
    /// Seen command ids, kept across restarts.
    var ledgerPath: String
    var inbox: CommandInbox
    var logger: Logger
    var waitSeconds = 15

    func run(shouldStop: () -> Bool) {
        let poll = LongPollClient(configuration: client, name: "commands")
        var ledger = NonceLedger(path: ledgerPath, now: Self.now())
        var epoch = ""
        var after = 0
        var backoff: Int64 = 250
        // Failed requests in a row. The first is not worth a warning: `herdwatch run` starts the
        // agent and the server together, and the agent's first request may come before the server
        // listens. A second failure in a row (250 ms later) is.
        var failures = 0
        while !shouldStop() {
            do {
                let path = "/api/v1/commands?epoch=\(epoch)&after=\(after)&wait=\(waitSeconds)"
                let (status, body) = try poll.get(path, timeoutMilliseconds: Int64(waitSeconds + 10) * 1000, shouldStop: shouldStop)
                guard status == 200 else {
                    throw CommandChannelError(reason: "server answered \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
                }
                guard let reply = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                    let replyEpoch = reply["epoch"] as? String, let commands = reply["commands"] as? [[String: Any]]
                else { throw CommandChannelError(reason: "reply is not {epoch, commands}") }
                if replyEpoch != epoch {
                    epoch = replyEpoch
                    after = 0
                }
                for entry in commands {
                    guard let sequence = entry["seq"] as? Int else { continue }
                    after = max(after, sequence)
                    let signed = SignedCommand(payload: entry["payload"] as? String ?? "", signature: entry["signature"] as? String ?? "")
                    switch verifier.verify(signed, now: Self.now(), ledger: &ledger) {
                    case .success(let command):
                        logger.notice("command received", metadata: ["action": "\(command.action)", "id": "\(command.id)", "by": "\(command.requestedBy)"])
                        inbox.put(.accepted(command))
                    case .failure(let refused):
                        logger.warning(
                            "command refused",
                            metadata: ["reason": "\(refused.reason)", "id": "\(refused.command?.id ?? "?")", "action": "\(refused.command?.action ?? "?")"])
                        inbox.put(.refused(refused))
                    }
                }
                if failures > 1 { logger.notice("command channel connected again") }
                failures = 0
                backoff = 250
            } catch {
                if shouldStop() { break }
                failures += 1
                if failures == 1 { logger.debug("command channel: first request failed; retrying", metadata: ["error": "\(error)"]) }
                if failures == 2 { logger.warning("command channel failing; retrying", metadata: ["error": "\(error)"]) }
                let until = Self.now() + backoff
                while Self.now() < until && !shouldStop() { usleep(50_000) }
                backoff = min(backoff * 2, 10_000)
            }
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

struct CommandChannelError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "commands: \(reason)" }
}
