import Dispatch

extension DispatchQueue {
    /// Runs blocking `work` on this queue, off the concurrency pool, and returns what it returned
    /// (the NATS C client, the ingest journal's file I/O).
    func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            self.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
