import HTTPTypes
import Synchronization

/// One host's batches taken in the order its agent sent them, when they arrive on several
/// connections at once. The agent's HTTP sink numbers its batches (`Herdwatch-Batch: STREAM N`,
/// N from 0 in each stream); the server checks batches as they come, then each waits here for
/// its turn before it goes into the journal or the store, so the host's events stay in order.
///
/// A batch whose predecessor does not come within `patience` (its connection broke; the agent
/// sends it again in a new stream) goes on without it. Once a batch fails in its turn (the journal
/// full, the store failing), the later batches of its stream are refused (503): the agent sends
/// them again after the failed one, in a new stream. Streams unused for ten minutes are forgotten.
final class BatchOrder: Sendable {
    struct Key: Hashable {
        var host: String
        var stream: String
    }

    /// Where a stream is: the lowest number not yet through (every one before it is), those
    /// through after it, and the batches waiting for their turn.
    struct Stream {
        var next: UInt64 = 0
        var through: Set<UInt64> = []
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var used: ContinuousClock.Instant
        /// A batch failed in its turn: the agent starts a new stream, and this one's later batches are refused.
        var broken = false

        /// `number` is through (stored, or refused): the stream moves past every number through.
        mutating func pass(_ number: UInt64) {
            guard number >= next else { return }
            through.insert(number)
            advance()
        }

        /// The predecessors of `number` are given up on.
        mutating func skip(to number: UInt64) {
            guard number > next else { return }
            next = number
            through = through.filter { $0 >= number }
            advance()
        }

        /// Past every number through from `next` on.
        private mutating func advance() {
            while through.remove(next) != nil { next += 1 }
        }

        /// The waiting batches whose turn has come (the next one, and any that came too late).
        mutating func due() -> [CheckedContinuation<Void, Never>] {
            let numbers = waiting.keys.filter { $0 <= next }
            return numbers.compactMap { waiting.removeValue(forKey: $0) }
        }
    }

    struct State: ~Copyable {
        var streams: [Key: Stream] = [:]
        var pruned = ContinuousClock.now
    }

    /// The request header that gives a batch's place: `Herdwatch-Batch: STREAM N`.
    static let header = HTTPField.Name("Herdwatch-Batch")!

    let patience: Duration
    private let state = Mutex(State())

    init(patience: Duration = .seconds(2)) {
        self.patience = patience
    }

    /// The `Herdwatch-Batch` header's stream and number, when it is well formed.
    static func parse(header: String) -> (stream: Substring, number: UInt64)? {
        let parts = header.split(separator: " ")
        guard parts.count == 2, let number = UInt64(parts[1]), !parts[0].isEmpty, parts[0].count <= 32 else { return nil }
        return (parts[0], number)
    }

    /// Runs `body` once every batch numbered before `number` in the stream has run (or waited
    /// `patience` for one that has not come), then lets the next one go. Nil, without running
    /// `body`, when an earlier batch of the stream failed (threw, or `breakStream`): the agent
    /// sends everything after a failed batch again in a new stream, so taking the later ones now
    /// would only put them before it.
    func inTurn<T>(host: String, stream: Substring, number: UInt64, _ body: () async throws -> T) async rethrows -> T? {
        let key = Key(host: host, stream: String(stream))
        await waitForTurn(key, number)
        defer { finished(key, number) }
        guard !(state.withLock { $0.streams[key]?.broken ?? false }) else { return nil }
        do {
            return try await body()
        } catch {
            breakStream(key)
            throw error
        }
    }

    /// The batch in its turn failed (the journal refused it): the stream's later batches are refused.
    func breakStream(host: String, stream: Substring) {
        breakStream(Key(host: host, stream: String(stream)))
    }

    private func breakStream(_ key: Key) {
        state.withLock { $0.streams[key, default: Stream(used: .now)].broken = true }
    }

    private func waitForTurn(_ key: Key, _ number: UInt64) async {
        let now = ContinuousClock.now
        let due: Bool = state.withLock { state in
            if now - state.pruned > .seconds(60) {
                state.streams = state.streams.filter { now - $0.value.used < .seconds(600) || !$0.value.waiting.isEmpty }
                state.pruned = now
            }
            state.streams[key, default: Stream(used: now)].used = now
            return number <= state.streams[key]!.next
        }
        guard !due else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let registered = state.withLock { state in
                // Its turn may have come while the lock was free.
                guard number > state.streams[key, default: Stream(used: now)].next else { return false }
                state.streams[key, default: Stream(used: now)].waiting[number] = continuation
                return true
            }
            guard registered else { return continuation.resume() }
            Task { [patience] in
                try? await Task.sleep(for: patience)
                self.giveUp(key, number)
            }
        }
    }

    /// The predecessors did not come in time: `number` goes now, and the stream moves on to it.
    private func giveUp(_ key: Key, _ number: UInt64) {
        update(key) { stream in
            // Already gone: its turn came in time.
            guard stream.waiting[number] != nil else { return }
            stream.skip(to: number)
        }
    }

    /// Batch `number` is through: stored, or refused before its turn (it must not hold up the rest).
    func finished(host: String, stream: Substring, number: UInt64) {
        finished(Key(host: host, stream: String(stream)), number)
    }

    private func finished(_ key: Key, _ number: UInt64) {
        update(key) { $0.pass(number) }
    }

    /// Changes a stream, then lets the batches whose turn that brought go (outside the lock).
    private func update(_ key: Key, _ change: (inout Stream) -> Void) {
        let due = state.withLock { state in
            change(&state.streams[key, default: Stream(used: .now)])
            return state.streams[key]!.due()
        }
        for continuation in due { continuation.resume() }
    }
}
