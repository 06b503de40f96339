import Foundation
import HerdwatchStore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import HerdwatchServer

/// One host's batches, numbered by its HTTP sink and sent over several connections, go into the
/// store in the order sent, whatever order they arrive in.
@Suite struct BatchOrderTests {
    /// The batches that ran, in the order they ran.
    final class Log: Sendable {
        private let numbers = Mutex<[UInt64]>([])
        func append(_ number: UInt64) { numbers.withLock { $0.append(number) } }
        var all: [UInt64] { numbers.withLock { $0 } }
    }

    /// Runs batch `number` of `stream` through `order`, noting when it ran.
    func run(_ order: BatchOrder, _ number: UInt64, stream: Substring = "s1", host: String = "web1", into log: Log) async {
        _ = await order.inTurn(host: host, stream: stream, number: number) { log.append(number) }
    }

    struct Failed: Error {}

    static func event(_ id: String) -> String {
        #"{"@timestamp":"2026-12-03T10:00:00.000Z","event":{"kind":"event","action":"process-started","id":"\#(id)"},"host":{"name":"web1"},"process":{"pid":1}}"#
    }

    @Test func batchesArrivingOutOfOrderRunInTheOrderSent() async throws {
        let order = BatchOrder(patience: .seconds(30))
        let log = Log()
        await withTaskGroup(of: Void.self) { group in
            for number: UInt64 in [3, 1, 2] {
                group.addTask { await run(order, number, into: log) }
            }
            try? await Task.sleep(for: .milliseconds(100))
            #expect(log.all.isEmpty, "nothing runs before batch 0")
            group.addTask { await run(order, 0, into: log) }
        }
        #expect(log.all == [0, 1, 2, 3])
    }

    @Test func aRefusedBatchDoesNotHoldUpTheOnesAfterIt() async throws {
        let order = BatchOrder(patience: .seconds(30))
        let log = Log()
        order.finished(host: "web1", stream: "s1", number: 0)
        let started = ContinuousClock.now
        await run(order, 1, into: log)
        #expect(log.all == [1])
        #expect(ContinuousClock.now - started < .seconds(5), "ran without waiting for the refused batch")
    }

    @Test func aBatchThatNeverComesIsGivenUpAfterPatience() async throws {
        let order = BatchOrder(patience: .milliseconds(300))
        let log = Log()
        let started = ContinuousClock.now
        await run(order, 1, into: log)
        #expect(ContinuousClock.now - started >= .milliseconds(300), "waited for batch 0")
        await run(order, 2, into: log)
        // The late one goes at once, out of order: nothing is held back for good.
        await run(order, 0, into: log)
        #expect(log.all == [1, 2, 0])
    }

    /// The agent sends everything after a failed batch again, so the rest of its stream is refused
    /// rather than taken before it.
    @Test func aFailedBatchRefusesTheRestOfItsStream() async throws {
        let order = BatchOrder(patience: .seconds(30))
        let log = Log()
        await run(order, 0, into: log)
        await #expect(throws: Failed.self) { try await order.inTurn(host: "web1", stream: "s1", number: 1) { throw Failed() } }
        await run(order, 2, into: log)
        // Refused from inside its turn (the journal full) works the same.
        _ = await order.inTurn(host: "web1", stream: "s2", number: 0) { order.breakStream(host: "web1", stream: "s2") }
        await run(order, 1, stream: "s2", into: log)
        // Another stream of the host (the agent's next connections) goes on.
        await run(order, 0, stream: "s3", into: log)
        #expect(log.all == [0, 0], "only s1's batch 0 and s3's batch 0 ran")
    }

    @Test func streamsAndHostsAreSeparate() async throws {
        let order = BatchOrder(patience: .seconds(30))
        let log = Log()
        // Each is the first of its own stream: none waits for another's.
        await run(order, 0, stream: "s1", into: log)
        await run(order, 0, stream: "s2", into: log)
        await run(order, 0, stream: "s1", host: "db1", into: log)
        await run(order, 1, stream: "s1", into: log)
        #expect(log.all == [0, 0, 0, 1])
    }

    @Test func headerIsParsedOrIgnored() {
        #expect(BatchOrder.parse(header: "9f3a 12").map { "\($0.stream) \($0.number)" } == "9f3a 12")
        #expect(BatchOrder.parse(header: "9f3a") == nil)
        #expect(BatchOrder.parse(header: "9f3a -1") == nil)
        #expect(BatchOrder.parse(header: "a b c") == nil)
    }

    /// Through the ingest route: batch 1 arrives first and waits until batch 0 is stored.
    @Test func theIngestRouteStoresAHostsBatchesInTheOrderSent() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-order-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = OrderRecordingStore(try EventStore(path: folder.appendingPathComponent("events.db").path))
        let router = Router()
        var configuration = IngestConfiguration(tokens: [IngestTests.token: "web1"])
        // Batch 0 comes 300 ms after batch 1: patience enough for a machine busy with other tests.
        configuration.batchOrderPatience = .seconds(30)
        IngestRoutes.add(to: router, store: store, configuration: configuration, logger: Logger(label: "test"))
        try await Application(router: router).test(.router) { client in
            func post(number: Int, events: Int, bad: Bool = false) async throws -> HTTPResponse.Status {
                let body = (0..<events).map { Self.event("b\(number)-\($0)") }.joined(separator: "\n") + (bad ? "\nnot json" : "")
                let headers: HTTPFields = [
                    .contentType: "application/x-ndjson", .authorization: "Bearer \(IngestTests.token)", BatchOrder.header: "7e57 \(number)",
                ]
                return try await client.execute(uri: "/api/v1/events", method: .post, headers: headers, body: ByteBuffer(string: body)).status
            }
            try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                group.addTask { try await post(number: 1, events: 2) }
                try await Task.sleep(for: .milliseconds(300))
                group.addTask { try await post(number: 0, events: 1) }
                for try await status in group { #expect(status == .ok) }
            }
            // A refused batch is through all the same: the next does not wait for it (30 s).
            #expect(try await post(number: 2, events: 1, bad: true) == .badRequest)
            let started = ContinuousClock.now
            #expect(try await post(number: 3, events: 3) == .ok)
            #expect(ContinuousClock.now - started < .seconds(10), "did not wait out the patience for the refused batch")
        }
        // Told apart by size: batch 0 has one event, batch 1 two, batch 3 three.
        #expect(store.sizes.withLock { $0 } == [1, 2, 3])
    }
}

/// An `EventStore` that notes the size of each batch it is asked to store, in order.
final class OrderRecordingStore: FleetStore {
    let inner: EventStore
    let sizes = Mutex<[Int]>([])
    init(_ inner: EventStore) { self.inner = inner }

    var location: String { inner.location }
    func ingest(lines: [Substring], host: String) async throws -> IngestResult { try await inner.ingest(lines: lines, host: host) }
    func ingest(lines: [Substring], allOrNothing: Bool) async throws -> IngestResult { try await inner.ingest(lines: lines, allOrNothing: allOrNothing) }
    func ingest(_ batch: ParsedBatch) async throws -> IngestResult {
        sizes.withLock { $0.append(batch.count) }
        return try await inner.ingest(batch)
    }
    func store(alerts: [StoredAlert]) async throws -> Int { try await inner.store(alerts: alerts) }
    func record(responses: [StoredResponse]) async throws { try await inner.record(responses: responses) }
    func updateResponse(commandID: String, status: String, detail: String?, time: Int64) async throws -> Bool {
        try await inner.updateResponse(commandID: commandID, status: status, detail: detail, time: time)
    }
    func query(_ sql: String, options: QueryOptions) async throws -> QueryResult { try await inner.query(sql, options: options) }
    func save(_ hunt: Hunt) async throws { try await inner.save(hunt) }
    func hunts() async throws -> [Hunt] { try await inner.hunts() }
    func deleteHunt(named name: String) async throws -> Bool { try await inner.deleteHunt(named: name) }
    func hosts(silentSince cutoff: Int64) async throws -> [(name: String, lastSeen: Int64)] { try await inner.hosts(silentSince: cutoff) }
    func register(hosts: [String: HostTags]) async throws { try await inner.register(hosts: hosts) }
    func dropDays(before cutoff: Int64) async throws -> Int { try await inner.dropDays(before: cutoff) }
}
