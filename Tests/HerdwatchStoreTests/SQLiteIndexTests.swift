import Foundation
import GRDB
import Testing

@testable import HerdwatchStore

/// The questions people ask of one value anywhere in the fleet find their rows through an index,
/// not a scan of every event.
@Suite struct SQLiteIndexTests {
    @Test func oneProgramUserOrDestinationIsFoundThroughItsIndex() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-indexes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("events.db").path
        let store = try EventStore(path: path)
        _ = try await store.ingest((0..<50).map { event("e\($0)", host: "web\($0 % 5)", second: $0 % 60) })
        let database = try DatabaseQueue(path: path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        for (column, index) in [("executable", "event_executable"), ("user_name", "event_user"), ("destination_ip", "event_destination")] {
            // As SQLite plans the newest events with one value, the question the views' rows answer.
            let details = try await database.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT id, time FROM event_store WHERE \(column) = 'x' ORDER BY time DESC LIMIT 10")
                    .map { $0["detail"] as String }
            }
            #expect(details.contains { $0.contains("USING INDEX \(index)") }, "\(column): \(details)")
        }
    }
}
