import Foundation
import Testing

import HerdwatchEvents
@testable import HerdwatchStore

@Suite struct EventStoreTests {
    func store() throws -> (EventStore, URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return (try EventStore(path: folder.appendingPathComponent("events.db").path), folder)
    }

    func event(_ id: String, host: String, second: Int, action: String = "process-started", category: String = "process",
               executable: String = "/usr/bin/true") -> Substring {
        Substring(#"{"@timestamp":"2026-11-23T10:00:\#(String(format: "%02d", second)).000Z","event":{"kind":"event","category":["\#(category)"],"action":"\#(action)","outcome":"success","id":"\#(id)"},"host":{"name":"\#(host)"},"process":{"pid":\#(second),"executable":"\#(executable)","command_line":"\#(executable) --flag","entity_id":"e-\#(id)"}}"#)
    }

    @Test func eventsAreStoredOnceAndBadLinesAreNamed() throws {
        let (store, folder) = try store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try store.ingest(lines: [event("a", host: "web1", second: 1), "not json", event("b", host: "web1", second: 2),
            #"{"@timestamp":"2026-11-23T10:00:00Z","event":{"id":"c"}}"#, ""])
        #expect(first.inserted == 2)
        #expect(first.rejected == [
            EventStore.Rejection(line: 2, reason: "not a JSON object"),
            EventStore.Rejection(line: 4, reason: "no host.name (for logs without node=, replay with --host-name)"),
        ])
        let again = try store.ingest(lines: [event("a", host: "web1", second: 1), event("c", host: "web2", second: 3)])
        #expect(again.inserted == 1 && again.duplicates == 1)
        // All or nothing: a batch with a bad line stores none of its events.
        let refused = try store.ingest(lines: [event("d", host: "web1", second: 4), "{"], allOrNothing: true)
        #expect(refused.inserted == 0 && refused.rejected.count == 1)
        let count = try store.query("SELECT count(*) FROM events")
        #expect(count.rows == [[.integer(3)]])
        let hosts = try store.query("SELECT name, events FROM hosts ORDER BY name")
        #expect(hosts.rows == [[.text("web1"), .integer(2)], [.text("web2"), .integer(1)]])
    }

    @Test(arguments: [
        ("INSERT INTO events (id) VALUES ('x')", "INSERT statements are not allowed"),
        ("update events set host = 'x'", "UPDATE statements are not allowed"),
        ("DELETE FROM events", "DELETE statements are not allowed"),
        ("DROP TABLE events", "DROP statements are not allowed"),
        ("CREATE TABLE x (a)", "CREATE statements are not allowed"),
        ("ALTER TABLE events ADD COLUMN x", "ALTER statements are not allowed"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH statements are not allowed"),
        ("DETACH DATABASE x", "DETACH statements are not allowed"),
        ("PRAGMA journal_mode = DELETE", "PRAGMA statements are not allowed"),
        ("/* hidden */ VACUUM", "VACUUM statements are not allowed"),
        ("SELECT 1; DELETE FROM events", "one statement at a time"),
        ("SELECT * FROM event_store", "'event_store' is not queryable"),
        ("SELECT * FROM \"host_store\"", "'host_store' is not queryable"),
        ("SELECT name FROM sqlite_master", "'sqlite_master' is not queryable"),
        ("SELECT * FROM main.events", "schema names are not allowed"),
        ("", "empty query"),
    ])
    func onlyReadingQueriesOverTheViewsRun(sql: String, refusal: String) throws {
        let (store, folder) = try store()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try store.ingest(lines: [event("a", host: "web1", second: 1)])
        do {
            _ = try store.query(sql)
            Issue.record("\(sql) was not refused")
        } catch let error as QueryError {
            #expect("\(error)".contains(refusal), "\(error)")
        }
        #expect(try store.query("SELECT count(*) FROM events").rows == [[.integer(1)]], "nothing changed")
    }

    @Test func queriesSeeOnlyTheirHostsAndTime() throws {
        let (store, folder) = try store()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try store.ingest(lines: [
            event("a", host: "web1", second: 1), event("b", host: "web2", second: 2),
            event("c", host: "db1", second: 3, action: "network-connected", category: "network"),
            event("d", host: "web1", second: 40, executable: "/usr/bin/curl"),
        ])
        var options = QueryOptions()
        options.hosts = HostScope(parsing: "web1,web2")
        #expect(try store.query("SELECT id FROM events ORDER BY id", options: options).rows == [[.text("a")], [.text("b")], [.text("d")]])
        #expect(try store.query("SELECT count(*) FROM hosts", options: options).rows == [[.integer(2)]])
        #expect(try store.query("SELECT count(*) FROM network", options: options).rows == [[.integer(0)]])
        // Their own common table expressions still work, behind ours.
        #expect(
            try store.query("WITH recent AS (SELECT * FROM processes WHERE pid > 10) SELECT executable FROM recent", options: options).rows
                == [[.text("/usr/bin/curl")]])
        options.since = CivilTime.milliseconds(iso8601: "2026-11-23T10:00:02Z")
        options.until = CivilTime.milliseconds(iso8601: "2026-11-23T10:00:30Z")
        #expect(try store.query("SELECT id, timestamp FROM events", options: options).rows == [[.text("b"), .text("2026-11-23T10:00:02.000Z")]])
        #expect(try store.query("SELECT json_extract(json, '$.process.entity_id') FROM events", options: options).rows == [[.text("e-b")]])

        var limited = QueryOptions()
        limited.limit = 2
        let page = try store.query("SELECT id FROM events ORDER BY id", options: limited)
        #expect(page.rows.count == 2 && page.truncated)
    }

    @Test func aQueryThatRunsTooLongIsStopped() throws {
        let (store, folder) = try store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var options = QueryOptions()
        options.timeoutSeconds = 0.3
        let started = Date()
        #expect(throws: QueryError.timedOut(0.3)) {
            _ = try store.query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n", options: options)
        }
        #expect(Date().timeIntervalSince(started) < 5)
    }
}

/// Alerts: stored once by id, seen through the `alerts` view within the query's host and time scope.
@Suite struct AlertStoreTests {
    @Test func alertsAreStoredOnceAndScopedLikeEvents() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-alerts-\(UUID().uuidString).db").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try EventStore(path: path)
        func alert(_ id: String, host: String, time: Int64) -> StoredAlert {
            StoredAlert(
                id: id, host: host, time: time, ruleID: "rule-\(id)", ruleTitle: "Rule \(id)", level: "high", severity: 73,
                correlation: nil, entityID: "e-\(id)", pid: 42, executable: "/bin/sh", commandLine: "sh -c x", userName: "root",
                eventIDs: ["ev-\(id)"], tags: ["attack.execution"], json: "{}")
        }
        #expect(try store.store(alerts: [alert("a", host: "web1", time: 1000), alert("b", host: "db1", time: 2000)]) == 2)
        #expect(try store.store(alerts: [alert("a", host: "web1", time: 1000)]) == 0, "the same alert again is not stored twice")
        var options = QueryOptions()
        options.hosts = .names(["web1"])
        let scoped = try store.query("SELECT rule_id, host, event_ids FROM alerts", options: options)
        #expect(scoped.rows == [[.text("rule-a"), .text("web1"), .text("ev-a")]])
        options.hosts = .all
        options.since = 1500
        #expect(try store.query("SELECT rule_id FROM alerts", options: options).rows == [[.text("rule-b")]])
        #expect(throws: QueryError.self) { try store.query("SELECT * FROM alert_store") }
    }
}

/// Saved hunts: a store starts with the default ones; a hunt is saved only if its query would be
/// allowed, replaced by name, run like any query, and deleted.
@Suite struct HuntTests {
    @Test func huntsAreSavedCheckedRunAndDeleted() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-hunts-\(UUID().uuidString).db").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try EventStore(path: path)
        #expect(try store.hunts().map(\.name) == Hunt.defaults.map(\.name).sorted())
        for hunt in Hunt.defaults { _ = try store.query(hunt.sql) }  // every default runs on an empty store
        try store.save(Hunt(name: "shells", sql: "SELECT count(*) FROM processes WHERE executable LIKE '%sh'", hosts: "web1"))
        try store.save(Hunt(name: "shells", sql: "SELECT count(*) FROM processes WHERE executable LIKE '%/bash'", hosts: "web1,web2"))
        let saved = try #require(try store.hunt(named: "shells"))
        #expect(saved.sql.hasSuffix("'%/bash'") && saved.hosts == "web1,web2")
        #expect(try store.query(saved.sql).rows == [[.integer(0)]])
        #expect(throws: QueryError.self) { try store.save(Hunt(name: "wipe", sql: "DELETE FROM events")) }
        #expect(throws: QueryError.self) { try store.save(Hunt(name: "bad name!", sql: "SELECT 1")) }
        #expect(throws: QueryError.self) { try store.query("SELECT * FROM hunt_store") }
        #expect(try store.deleteHunt(named: "shells"))
        #expect(try !store.deleteHunt(named: "shells"))
        #expect(try store.hunt(named: "shells") == nil)
    }
}
