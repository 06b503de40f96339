import Foundation
import HerdwatchCompression
import HerdwatchStore
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import HerdwatchServer

/// `herdwatch server --journal`: batches acknowledged once checked and in the journal, stored
/// behind by the loader, each event once, across restarts.
@Suite struct IngestJournalTests {
    let ingest = IngestTests()

    /// A folder with a store and a journal directory, removed afterwards.
    func withFolder(_ test: (URL, EventStore) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await test(folder, try EventStore(path: folder.appendingPathComponent("events.db").path))
    }

    func journal(
        _ folder: URL, _ store: EventStore, detection: DetectionStage? = nil, configure: (inout IngestJournal.Configuration) -> Void = { _ in }
    ) throws -> IngestJournal {
        var configuration = IngestJournal.Configuration(directory: folder.appendingPathComponent("journal").path)
        configure(&configuration)
        return try IngestJournal(configuration: configuration, store: store, detection: detection, logger: Logger(label: "test"))
    }

    /// The ingest routes over `journal` (its loader not running: the tests load by hand).
    func withRoutes(_ journal: IngestJournal, _ store: EventStore, _ test: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var configuration = IngestConfiguration(tokens: [IngestTests.token: "web1"])
        configuration.maximumBodyBytes = 64 * 1024
        let router = Router()
        IngestRoutes.add(to: router, store: store, configuration: configuration, journal: journal, logger: Logger(label: "test"))
        try await Application(router: router).test(.router) { client in try await test(client) }
    }

    func count(_ store: EventStore) throws -> [[QueryValue]] { try store.query("SELECT count(*) FROM events").rows }

    @Test func batchesAreAcknowledgedFromTheJournalAndStoredOnceBehind() async throws {
        try await withFolder { folder, store in
            let journal = try journal(folder, store)
            try await withRoutes(journal, store) { client in
                let (status, reply) = try await ingest.post(client, [ingest.event("a"), ingest.event("b")])
                #expect(status == .ok && reply["accepted"] as? Int == 2, "\(reply)")
                let compressed = Zstd.Compressor().compress(Array([ingest.event("b"), ingest.event("c")].joined(separator: "\n").utf8))
                #expect(try await ingest.post(client, body: compressed, encoding: "zstd").0 == .ok)
                #expect(try count(store) == [[.integer(0)]], "acknowledged, not stored yet")
                #expect(journal.backlogBytes > 0)
                #expect(try await journal.loadOnce() == 2)
                #expect(try await journal.loadOnce() == 0, "the cursor moved past both")
                #expect(try store.query("SELECT id FROM events ORDER BY id").rows == [[.text("a")], [.text("b")], [.text("c")]])
                #expect(journal.backlogBytes == 0)
            }
        }
    }

    /// Bad batches are refused before the journal, as without it, and leave nothing to load.
    @Test func badBatchesNeverReachTheJournal() async throws {
        try await withFolder { folder, store in
            let journal = try journal(folder, store)
            try await withRoutes(journal, store) { client in
                let (status, reply) = try await ingest.post(client, [ingest.event("a"), "{not json"])
                #expect(status == .badRequest && (reply["rejected"] as? [[String: Any]])?.first?["line"] as? Int == 2)
                #expect(try await ingest.post(client, [ingest.event("x", host: "db1")]).0 == .badRequest)
                #expect(try await ingest.post(client, [ingest.event("a")], token: nil).0 == .unauthorized)
                #expect(try await journal.loadOnce() == 0)
                #expect(journal.backlogBytes == 0)
            }
        }
    }

    /// What the journal acknowledged survives the server: a journal opened again on the directory
    /// (a restart, here after nothing was loaded) parses the records from disk and stores them; once
    /// loaded, a third opening has nothing left.
    @Test func acknowledgedBatchesSurviveARestart() async throws {
        try await withFolder { folder, store in
            do {
                let first = try journal(folder, store)
                try await withRoutes(first, store) { client in
                    for index in 0..<5 {
                        let (status, _) = try await ingest.post(client, [ingest.event("r\(index)"), ingest.event("s\(index)")])
                        #expect(status == .ok)
                    }
                }
            }
            #expect(try count(store) == [[.integer(0)]])
            let second = try journal(folder, store)
            #expect(second.backlogBytes > 0)
            #expect(try await second.loadOnce() == 5)
            #expect(try count(store) == [[.integer(10)]])
            let third = try journal(folder, store)
            #expect(third.backlogBytes == 0)
            #expect(try await third.loadOnce() == 0)
        }
    }

    /// Past its backlog limit the journal refuses batches (503, try later) until the store catches up.
    @Test func aFullJournalRefusesBatchesUntilTheStoreCatchesUp() async throws {
        try await withFolder { folder, store in
            let journal = try journal(folder, store) { $0.maximumBacklogBytes = 1 }
            try await withRoutes(journal, store) { client in
                #expect(try await ingest.post(client, [ingest.event("a")]).0 == .ok)
                let (full, reply) = try await ingest.post(client, [ingest.event("b")])
                #expect(full == .serviceUnavailable && (reply["error"] as? String)?.contains("journal is full") == true, "\(reply)")
                #expect(try await journal.loadOnce() == 1)
                #expect(try await ingest.post(client, [ingest.event("b")]).0 == .ok)
                #expect(try await journal.loadOnce() == 1)
                #expect(try count(store) == [[.integer(2)]])
            }
        }
    }

    /// The loader as a service: it stores batches as they come and runs detection on them, once.
    @Test func theLoaderStoresAndDetectsAsBatchesArrive() async throws {
        try await withFolder { folder, store in
            let detection = try IngestTests.detection(rules: IngestTests.trueRunRule, store: store)
            let journal = try journal(folder, store, detection: detection)
            let loader = Task { await journal.load() }
            defer { loader.cancel() }
            try await withRoutes(journal, store) { client in
                #expect(try await ingest.post(client, [ingest.event("a"), ingest.event("b")]).0 == .ok)
                #expect(try await ingest.post(client, [ingest.event("a")]).0 == .ok)
                let deadline = ContinuousClock.now + .seconds(10)
                while try count(store) != [[.integer(2)]] || journal.backlogBytes > 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try count(store) == [[.integer(2)]])
                #expect(try store.query("SELECT event_ids FROM alerts ORDER BY event_ids").rows == [[.text("a")], [.text("b")]])
            }
        }
    }

    /// A record read back gives the host and the lines it was written with, plain or compressed,
    /// for any host name (here past 255 bytes); a record cut short is an error, not a batch.
    @Test func recordsReadBackAsWritten() throws {
        let host = String(repeating: "h", count: 300) + ".example"
        let text = Array([ingest.event("r1", host: host), ingest.event("r2", host: host)].joined(separator: "\n").utf8)
        for (body, zstd) in [(text, false), (Zstd.Compressor().compress(text), true)] {
            let record = IngestJournal.record(host: host, body: body, zstd: zstd)
            let parsed = try IngestJournal.parse(record: record, maximumBytes: 1 << 20)
            #expect(parsed.batch.count == 2 && parsed.batch.rejected.isEmpty, "\(parsed.batch.rejected)")
            #expect(parsed.lines.count == 2)
            #expect(throws: (any Error).self) { try IngestJournal.parse(record: Array(record.prefix(100)), maximumBytes: 1 << 20) }
        }
    }
}
