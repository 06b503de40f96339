import Dispatch
import HerdwatchEvents
import Synchronization

/// Encodes and writes events on a thread of its own, so reading, parsing, assembling and interpreting
/// (the caller's thread) overlap with JSON encoding and output.
///
/// Events travel in batches through a bounded queue, so memory stays bounded and a slow output slows
/// the input down instead of piling up. Order is kept. A write error stops the stage; the next `submit`
/// or `finish` throws it.
final class EncodingStage: @unchecked Sendable {
    // @unchecked: `output`, `encoder` and `writer` are used only by the worker thread between `init`
    // and the end of `finish`; `pending` only by the producer; the error is guarded by a mutex.
    private let output: OutputFile
    private let encoder: ECSEncoder
    private var writer = JSONWriter(capacity: 16 * 1024)
    private let batchSize: Int
    private var pending: [Event] = []
    private let queue: BatchQueue<Event>
    private let failure = Mutex<(any Error)?>(nil)
    private let done = DispatchGroup()

    init(output: OutputFile, encoder: ECSEncoder, batchSize: Int = 256, maximumBatches: Int = 4) {
        self.output = output
        self.encoder = encoder
        self.batchSize = batchSize
        self.queue = BatchQueue(capacity: maximumBatches)
        pending.reserveCapacity(batchSize)
        done.enter()
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            work()
            done.leave()
        }
    }

    /// Queues one event for encoding (caller's thread).
    func submit(_ event: Event) throws {
        pending.append(event)
        if pending.count >= batchSize { try sendPending() }
    }

    /// Sends what is queued, waits for the worker to write everything, and flushes the output.
    func finish() throws {
        try? sendPending()
        queue.close()
        done.wait()
        if let error = failure.withLock({ $0 }) { throw error }
        try output.flush()
    }

    private func sendPending() throws {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        if !queue.push(batch), let error = failure.withLock({ $0 }) { throw error }
    }

    private func work() {
        while let batch = queue.pop() {
            do {
                for event in batch {
                    writer.reset()
                    encoder.encode(event, into: &writer)
                    try writer.withUnsafeBytes { try output.writeLine($0) }
                }
            } catch {
                failure.withLock { $0 = error }
                queue.cancel()
                return
            }
        }
    }
}
