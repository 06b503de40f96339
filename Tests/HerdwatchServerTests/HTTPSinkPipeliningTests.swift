import Dispatch
import Foundation
import HerdwatchShipping
import HerdwatchStore
import Testing

@testable import HerdwatchServer

/// The agent's HTTP sink keeps several batches in flight on one connection (HTTP/1.1 pipelining) to
/// a real `herdwatch server` on 127.0.0.1, with and without the ingest journal: each confirmation
/// names the oldest batch sent, and the server stores every batch, in order.
@Suite struct HTTPSinkPipeliningTests {
    static let token = "web1-token-0123456789"

    func withServer(journal: Bool, _ test: @Sendable (Int, EventStore) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-pipelining-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try EventStore(path: folder + "/events.db")
        var settings = ServerRuntime.Settings(ingest: IngestConfiguration(tokens: [Self.token: "web1"]))
        if journal { settings.journal = IngestJournal.Configuration(directory: folder + "/journal") }
        try await withRunningServer(settings: settings, store: store) { port in try await test(port, store) }
    }

    /// Five batches of two events through a sink with three in flight over `connections`: what `send` and `confirmed`
    /// return, in order (blocking I/O, on a thread of its own).
    func ship(port: Int, connections: Int) async throws -> [SpoolPosition?] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        var configuration = try HTTPSink.Configuration(url: "http://127.0.0.1:\(port)", token: Self.token)
                        configuration.maximumInFlight = 3
                        configuration.connections = connections
                        let sink = HTTPSink(configuration: configuration)
                        var confirmations: [SpoolPosition?] = []
                        for batch in 0..<5 {
                            let records = (0..<2).map { index in
                                let line = #"{"@timestamp":"2026-12-03T10:00:0\#(batch).00\#(index)Z","event":{"kind":"event","action":"process-started","id":"p-\#(batch)-\#(index)"},"host":{"name":"web1"},"process":{"pid":1,"executable":"/usr/bin/true"}}"#
                                return (payload: Array(line.utf8), next: SpoolPosition(segment: 1, offset: UInt64(batch * 2 + index + 1)))
                            }
                            confirmations.append(try sink.send(records))
                        }
                        confirmations.append(try sink.confirmed())
                        return confirmations
                    })
            }
        }
    }

    @Test(arguments: [false, true], [1, 2])
    func batchesInFlightAreConfirmedOldestFirstAndAllStored(journal: Bool, connections: Int) async throws {
        try await withServer(journal: journal) { port, store in
            let confirmations = try await ship(port: port, connections: connections)
            // Nothing confirmed until three are in flight; then each send reads the oldest reply.
            #expect(confirmations.map { $0?.offset } == [nil, nil, 2, 4, 6, 10], "\(confirmations)")
            let deadline = ContinuousClock.now + .seconds(10)
            while try store.query("SELECT count(*) FROM events").rows != [[.integer(10)]], ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let ids = try store.query("SELECT id FROM events ORDER BY time").rows
            #expect(ids == (0..<5).flatMap { batch in (0..<2).map { [.text("p-\(batch)-\($0)")] } })
        }
    }
}
