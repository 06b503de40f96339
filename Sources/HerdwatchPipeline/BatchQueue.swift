import Dispatch
import Synchronization

/// A bounded FIFO of batches between one producer thread and one consumer thread.
///
/// `push` blocks while `capacity` batches wait, so a slow consumer slows the producer down instead of
/// letting memory grow. Either side can stop early: `close` (producer: no more batches) and `cancel`
/// (consumer: stop producing; pending and later pushes are dropped).
final class BatchQueue<Element: Sendable>: Sendable {
    private struct State: ~Copyable {
        /// At most `capacity` long, so removing from the front is cheap.
        var batches: [[Element]] = []
        var closed = false
        var cancelled = false
    }

    private let state = Mutex(State())
    private let capacity: Int
    // Both semaphores start at 0 and are raised by signals: libdispatch traps when a semaphore is
    // destroyed below its initial value, which a cancelled queue could otherwise be.
    private let available = DispatchSemaphore(value: 0)
    private let free = DispatchSemaphore(value: 0)

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        for _ in 0..<capacity { free.signal() }
    }

    /// Queues a batch, waiting for room. Returns false when the consumer has cancelled.
    @discardableResult
    func push(_ batch: [Element]) -> Bool {
        free.wait()
        let accepted = state.withLock { state in
            guard !state.cancelled else { return false }
            state.batches.append(batch)
            return true
        }
        if accepted {
            available.signal()
        } else {
            free.signal()  // keep the slot for other blocked pushes to see the cancellation
        }
        return accepted
    }

    /// No more batches will come.
    func close() {
        state.withLock { $0.closed = true }
        available.signal()
    }

    /// The next batch, waiting for one; nil once the queue is closed and drained, or cancelled.
    func pop() -> [Element]? {
        while true {
            available.wait()
            let (batch, finished): ([Element]?, Bool) = state.withLock { state in
                if state.cancelled { return (nil, true) }
                if !state.batches.isEmpty { return (state.batches.removeFirst(), false) }
                return (nil, state.closed)
            }
            if let batch {
                free.signal()
                return batch
            }
            if finished {
                available.signal()  // later pops see the end too
                return nil
            }
        }
    }

    /// The consumer stops: queued batches are dropped and a blocked or later `push` returns false.
    func cancel() {
        let dropped = state.withLock { state in
            state.cancelled = true
            let count = state.batches.count
            state.batches.removeAll()
            return count
        }
        for _ in 0..<(dropped + 1) { free.signal() }
        available.signal()
    }
}
