import Foundation
import GRDB
import Testing

import HerdwatchEvents
@testable import HerdwatchStore

/// A SQLite store made by an earlier release opens with its events intact.
@Suite struct MigrationTests {
    /// Release 6 kept each document in its row: they move into blocks, the rollups are counted
    /// from them, the search still finds them, and default hunts follow the release.
    @Test func documentsInRowsMoveToBlocks() async throws {
        let database = try TemporaryDatabase("migration")
        defer { database.remove() }
        let path = database.path
        let lines = (0..<100).map { event("old\($0)", host: "web\($0 % 2)", second: $0 % 60, executable: $0 == 7 ? "/tmp/evil.sh" : "/usr/bin/true") }
        do {
            let pool = try DatabasePool(path: path)
            try EventStore.migrator.migrate(pool, upTo: "v6-command-search")
            try await pool.write { db in
                for line in lines {
                    let row = try StoredEvent(json: line)
                    try db.execute(
                        sql: "INSERT INTO event_store (id, host, time, action, executable, command_line, json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        arguments: [row.id, row.host, row.time, "process-started", "/usr/bin/true", row.commandLine, String(line)])
                    try db.execute(sql: "INSERT INTO command_search (rowid, command_line) VALUES (?, ?)", arguments: [db.lastInsertedRowID, row.commandLine])
                }
                // The registry as release 6 kept it: the events counted when they arrived.
                try db.execute(sql: "INSERT INTO host_store (name, first_seen, last_seen, events) VALUES ('web0', 0, 1, 50), ('web1', 0, 1, 50)")
                // Release 6's default, and a hunt someone changed.
                try db.execute(sql: "UPDATE hunt_store SET sql = 'SELECT executable FROM processes' WHERE name = 'programs-across-fleet'")
                try db.execute(sql: "UPDATE hunt_store SET sql = 'SELECT 1', saved_at = 1 WHERE name = 'rare-parent-child'")
            }
        }
        let store = try EventStore(path: path)
        #expect(try await store.read("SELECT count(*), count(DISTINCT json) FROM events").rows == [[.integer(100), .integer(100)]])
        #expect(try await store.read("SELECT json FROM events WHERE id = 'old42'").rows == [[.text(String(lines[42]))]])
        #expect(try await store.read("SELECT sum(runs) FROM process_pairs").rows == [[.integer(100)]])
        #expect(try await store.read("SELECT name, events FROM hosts ORDER BY name").rows == [
            [.text("web0"), .integer(50)], [.text("web1"), .integer(50)],
        ], "moving events does not count them again")
        var search = QueryOptions()
        search.search = "evil.sh"
        #expect(try store.query("SELECT id FROM events", options: search).rows == [[.text("old7")]])
        let hunts = try store.hunts()
        #expect(hunts.first { $0.name == "programs-across-fleet" }?.sql.contains("process_pairs") == true)
        #expect(hunts.first { $0.name == "rare-parent-child" }?.sql == "SELECT 1", "a hunt someone saved stays")
    }
}
