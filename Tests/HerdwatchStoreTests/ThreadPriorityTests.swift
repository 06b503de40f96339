import Foundation
import Testing

@testable import HerdwatchStore

/// The journal loader's writes run lowered, and the pooled thread they ran on gets its priority
/// back.
@Suite struct ThreadPriorityTests {
    @Test func workRunsLoweredAndTheThreadGetsItsPriorityBack() {
        let before = ThreadPriority.current()
        let inside = ThreadPriority.lowered(by: 10) { ThreadPriority.current() }
        if ThreadPriority.canRaise(to: before) {
            // As root (CI): lowered while the work runs.
            #expect(inside == min(before + 10, 19))
        } else {
            // Without CAP_SYS_NICE the work runs unchanged rather than leave the thread lowered.
            #expect(inside == before)
        }
        #expect(ThreadPriority.current() == before)
    }

    @Test func idleWorkRunsUnderSchedIdleAndTheThreadGetsItsPolicyBack() {
        let before = (ThreadPriority.policy(), ThreadPriority.current())
        let inside = ThreadPriority.idle { (ThreadPriority.policy(), ThreadPriority.current()) }
        if ThreadPriority.hasSysNice {
            #expect(inside.0 == ThreadPriority.idlePolicy)
        } else {
            // Without CAP_SYS_NICE: 10 nice levels down when it can be put back, as `background`.
            #expect(inside.0 == before.0)
        }
        #expect(ThreadPriority.policy() == before.0 && ThreadPriority.current() == before.1)
    }

    @Test func backgroundWritesStoreTheSameEvents() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-priority-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try EventStore(path: folder.appendingPathComponent("events.db").path)
        store.setBackgroundWrites(true)
        let lines: [Substring] = (0..<50).map {
            #"{"@timestamp":"2026-11-23T10:00:00Z","event":{"id":"p-\#($0)","action":"process-started"},"host":{"name":"h1"}}"#
        }
        let result = try await store.ingest(ParsedBatch(lines: lines, host: "h1"))
        #expect(result.inserted == 50 && result.rejected.isEmpty)
        let count = try await store.query("SELECT count(*) FROM events", options: QueryOptions()).rows
        #expect(count.first?.first == .integer(50))
    }
}
