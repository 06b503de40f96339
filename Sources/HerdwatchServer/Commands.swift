import Foundation
import HerdwatchCommands
import Hummingbird
import Logging
import Synchronization

/// Commands waiting for their agents. An agent keeps one request open
/// (`GET /api/v1/commands?epoch=E&after=SEQ&wait=S`); a command queued for its host answers that
/// request at once, so a command reaches a connected agent within milliseconds. The agent's
/// `after` acknowledges what it has received; expired commands are dropped unsent. Sequence
/// numbers restart with the server, which the `epoch` (random per start) tells the agent.
public final class CommandQueue: Sendable {
    public struct Entry: Sendable {
        public var sequence: Int
        public var command: SignedCommand
        public var expiresAt: Int64
    }

    private struct State {
        var nextSequence = 1
        var pending: [String: [Entry]] = [:]
        var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
        var nextWaiter = 0
    }

    public let epoch = Command.newID()
    private let state = Mutex(State())

    public init() {}

    /// Queues a signed command for `host` and wakes its waiting request; returns its sequence number.
    @discardableResult
    public func enqueue(_ command: SignedCommand, host: String, expiresAt: Int64) -> Int {
        let (sequence, waiting) = state.withLock { state in
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.pending[host, default: []].append(Entry(sequence: sequence, command: command, expiresAt: expiresAt))
            let waiting = state.waiters.removeValue(forKey: host).map { Array($0.values) } ?? []
            return (sequence, waiting)
        }
        for waiter in waiting { waiter.resume() }
        return sequence
    }

    /// The host's commands after `after` (those up to it are acknowledged and forgotten), waiting
    /// up to `wait` for one to arrive when there are none.
    public func take(host: String, after: Int, wait: Duration, now: @Sendable () -> Int64) async -> [Entry] {
        if let ready = ready(host: host, after: after, now: now()) { return ready }
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLock { state in
                        if state.pending[host]?.contains(where: { $0.sequence > after }) == true { return true }
                        state.waiters[host, default: [:]][id] = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: wait)
                self.wake(host: host, id: id)
            }
            await group.next()
            group.cancelAll()
        }
        return ready(host: host, after: after, now: now()) ?? []
    }

    /// Commands not yet acknowledged, by host (for the UI and tests).
    public func pendingCount(host: String) -> Int { state.withLock { $0.pending[host]?.count ?? 0 } }

    private func ready(host: String, after: Int, now: Int64) -> [Entry]? {
        state.withLock { state in
            guard var entries = state.pending[host] else { return nil }
            entries.removeAll { $0.sequence <= after || $0.expiresAt < now }
            state.pending[host] = entries.isEmpty ? nil : entries
            return entries.isEmpty ? nil : entries
        }
    }

    private func wake(host: String, id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            let waiter = state.waiters[host]?.removeValue(forKey: id)
            if state.waiters[host]?.isEmpty == true { state.waiters[host] = nil }
            return waiter
        }
        waiter?.resume()
    }
}

/// Signs and queues commands: what response policies and operators use to reach an agent.
public struct CommandIssuer: Sendable {
    public let signer: CommandSigner
    public let queue: CommandQueue
    /// How long a command stays valid (and waits for an agent that is away).
    public var lifetimeMilliseconds: Int64 = 60_000

    public init(signer: CommandSigner, queue: CommandQueue = CommandQueue()) {
        self.signer = signer
        self.queue = queue
    }

    /// A command for `host`, not yet sent (so its id can be recorded first).
    public func prepare(host: String, action: String, arguments: [String: String], requestedBy: String, now: Int64) -> Command {
        Command(
            host: host, action: action, arguments: arguments, issuedAt: now, lifetimeMilliseconds: lifetimeMilliseconds,
            requestedBy: requestedBy)
    }

    /// Signs the command and queues it for its host.
    public func send(_ command: Command) {
        queue.enqueue(signer.sign(command), host: command.host, expiresAt: command.expiresAt)
    }
}

enum CommandRoutes {
    /// `GET /api/v1/commands`: the agents' long poll, authenticated by the host token.
    static func add(to router: Router<BasicRequestContext>, queue: CommandQueue, ingest: IngestConfiguration) {
        router.get("/api/v1/commands") { request, _ -> Response in
            guard let host = ingest.host(authenticating: request) else {
                return IngestRoutes.reply(.unauthorized, ["error": "missing or unknown token (Authorization: Bearer HOST-TOKEN)"])
            }
            let query = request.uri.queryParameters
            // Sequence numbers of an earlier server start mean nothing now.
            let after = query["epoch"].map(String.init) == queue.epoch ? query["after"].flatMap { Int($0) } ?? 0 : 0
            let wait = min(max(query["wait"].flatMap { Double($0) } ?? 15, 0), 30)
            let entries = await queue.take(host: host, after: after, wait: .milliseconds(Int(wait * 1000))) {
                Int64(Date().timeIntervalSince1970 * 1000)
            }
            return IngestRoutes.reply(
                .ok,
                [
                    "epoch": queue.epoch,
                    "commands": entries.map { ["seq": $0.sequence, "payload": $0.command.payload, "signature": $0.command.signature] },
                ])
        }
    }
}
