import Foundation
import GRDB
import Testing

@testable import HerdwatchStore

/// The questions people ask of one value anywhere in the fleet find their rows through an index,
/// not a scan of every event.
@Suite struct SQLiteIndexTests {
    @Test func oneProgramUserOrDestinationIsFoundThroughItsIndex() async throws {
        let database = try TemporaryDatabase("indexes")
        defer { database.remove() }
        let path = database.path
        let store = try EventStore(path: path)
        _ = try await store.ingest((0..<50).map { event("e\($0)", host: "web\($0 % 5)", second: $0 % 60) })
        let reader = try DatabaseQueue(path: path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        for (column, index) in [("executable", "event_executable"), ("user_name", "event_user"), ("destination_ip", "event_destination")] {
            // As SQLite plans the newest events with one value, the question the views' rows answer.
            let details = try await reader.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT id, time FROM event_store WHERE \(column) = 'x' ORDER BY time DESC LIMIT 10")
                    .map { $0["detail"] as String }
            }
            #expect(details.contains { $0.contains("USING INDEX \(index)") }, "\(column): \(details)")
        }
    }
}

/// Batches that share a commit do not share a failure: a batch the database refuses fails alone.
@Suite struct GroupCommitTests {
    @Test func aRefusedBatchFailsAloneAndTheOthersAreStored() async throws {
        let database = try TemporaryDatabase("group")
        defer { database.remove() }
        let path = database.path
        let store = try EventStore(path: path)
        // The database itself refuses host "bad" (as a full disk or a damaged page would refuse a write).
        let admin = try DatabaseQueue(path: path)
        try await admin.write { db in
            try db.execute(sql: "CREATE TRIGGER refuse_bad BEFORE INSERT ON event_store WHEN NEW.host = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        }
        let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
            for k in 0..<24 {
                let host = k == 11 ? "bad" : "good-\(k)"
                let lines = (0..<20).map { event("\(host)-\($0)", host: host, second: $0) }
                group.addTask { (host, (try? await store.ingest(lines: lines, host: host)) != nil) }
            }
            var outcomes: [String: Bool] = [:]
            for await (host, stored) in group { outcomes[host] = stored }
            return outcomes
        }
        #expect(outcomes["bad"] == false)
        #expect(outcomes.filter { $0.key != "bad" }.values.allSatisfy { $0 }, "\(outcomes)")
        #expect(try await store.read("SELECT count(*), count(DISTINCT host) FROM events").rows == [[.integer(23 * 20), .integer(23)]])
    }
}
