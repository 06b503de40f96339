import Foundation
import HerdwatchEvents
import Testing

@testable import HerdwatchStore

/// What every engine must do alike: the same lines, queries and refusals give the same answers.
@Suite struct SharedStoreTests {
    @Test(arguments: Engine.allCases)
    func eventsAreStoredOnceAndBadLinesAreNamed(engine: Engine) async throws {
        try await engine.withStore { store in
            let first = try await store.ingest([
                event("a", host: "web1", second: 1), "not json", event("b", host: "web1", second: 2),
                #"{"@timestamp":"2026-11-23T10:00:00Z","event":{"id":"c"}}"#, "", event("a", host: "web1", second: 1),
            ])
            #expect(first.inserted == 2 && first.insertedLines == [0, 2] && first.duplicates == 1)
            #expect(first.rejected == [
                IngestResult.Rejection(line: 2, reason: "not a JSON object"),
                IngestResult.Rejection(line: 4, reason: "no host.name (for logs without node=, replay with --host-name)"),
            ])
            let again = try await store.ingest(lines: [event("a", host: "web1", second: 1), event("c", host: "web2", second: 3)], allOrNothing: false)
            #expect(again.inserted == 1 && again.duplicates == 1 && again.insertedLines == [1])
            // All or nothing: a batch with a bad line stores none of its events.
            let refused = try await store.ingest(lines: [event("d", host: "web1", second: 4), "{"], allOrNothing: true)
            #expect(refused.inserted == 0 && refused.rejected.map(\.line) == [2])
            #expect(try await store.read("SELECT count(*) FROM events").rows == [[.integer(3)]])
            let hosts = try await store.query("SELECT name, events, first_seen, last_seen FROM hosts ORDER BY name", options: QueryOptions())
            #expect(hosts.rows == [
                [.text("web1"), .integer(2), .text("2026-11-23T10:00:01.000Z"), .text("2026-11-23T10:00:02.000Z")],
                [.text("web2"), .integer(1), .text("2026-11-23T10:00:03.000Z"), .text("2026-11-23T10:00:03.000Z")],
            ])
            #expect(try await store.hosts(silentSince: CivilTime.milliseconds(iso8601: "2026-11-23T10:00:03Z") ?? 0).map(\.name) == ["web1"])
        }
    }

    /// Many agents' batches at once (on SQLite they share commits): each caller learns what its own
    /// batch stored, an event sent twice is stored once, and the hosts registry counts each once.
    @Test(arguments: Engine.allCases)
    func concurrentBatchesEachLearnTheirOwnOutcome(engine: Engine) async throws {
        try await engine.withStore { store in
            // Batch k holds k + 1 events of host-k; batches 10...19 repeat the events of 0...9.
            let results = try await withThrowingTaskGroup(of: (Int, IngestResult).self) { group in
                for k in 0..<20 {
                    let owner = k % 10
                    let lines = (0...owner).map { event("\(owner)-\($0)", host: "host-\(owner)", second: $0) }
                    group.addTask { (k, try await store.ingest(lines: lines, host: "host-\(owner)")) }
                }
                var results: [Int: IngestResult] = [:]
                for try await (k, result) in group { results[k] = result }
                return results
            }
            for owner in 0..<10 {
                let (first, second) = (results[owner]!, results[owner + 10]!)
                // Whichever batch of the pair came first stored every event; the other, none.
                #expect(first.inserted + second.inserted == owner + 1)
                #expect(first.duplicates + second.duplicates == owner + 1)
                #expect(Set([first.insertedLines, second.insertedLines]) == Set([Array(0...owner), []]))
            }
            #expect(try await store.read("SELECT count(*) FROM events").rows == [[.integer(55)]])
            let hosts = try await store.read("SELECT sum(events), count(*) FROM hosts")
            #expect(hosts.rows == [[.integer(55), .integer(10)]])
        }
    }

    /// An agent's batch (the HTTP and NATS ingest): all or nothing, every event from its host.
    @Test(arguments: Engine.allCases)
    func anAgentBatchIsStoredWholeOrNotAtAll(engine: Engine) async throws {
        try await engine.withStore { store in
            let bad = try await store.ingest(lines: [event("a", host: "web1", second: 1), "{\"broken", event("b", host: "web1", second: 2)], host: "web1")
            #expect(bad.inserted == 0 && bad.rejected.map(\.line) == [2])
            let foreign = try await store.ingest(lines: [event("a", host: "web1", second: 1), event("x", host: "db1", second: 2)], host: "web1")
            #expect(foreign.inserted == 0 && foreign.rejected == [
                IngestResult.Rejection(line: 2, reason: "host.name 'db1' is not the token's host 'web1'")
            ])
            #expect(try await store.read("SELECT count(*) FROM events").rows == [[.integer(0)]])
            let good = try await store.ingest(lines: [event("a", host: "web1", second: 1), event("b", host: "web1", second: 2)], host: "web1")
            #expect(good.inserted == 2 && good.insertedLines == [0, 1])
            let resent = try await store.ingest(lines: [event("a", host: "web1", second: 1), event("b", host: "web1", second: 2)], host: "web1")
            #expect(resent.inserted == 0 && resent.duplicates == 2)
        }
    }

    /// Full-text search over command lines (`QueryOptions.search`): every word must be in the
    /// command line, case aside; the host scope still applies; retention takes dropped events out
    /// of the search too.
    @Test(arguments: Engine.allCases)
    func commandLinesAreSearchedByWord(engine: Engine) async throws {
        try await engine.withStore { store in
            _ = try await store.ingest([
                event("a", host: "web1", second: 1, executable: "/usr/bin/curl"),
                event("b", host: "web1", second: 2, executable: "/tmp/evil.sh"),
                event("c", host: "db1", second: 3, executable: "/usr/bin/curl"),
                event("d", host: "web1", second: 4, executable: "/usr/bin/wget", day: "2026-11-20"),
            ])
            func ids(_ search: String, hosts: HostScope = .all) async throws -> [QueryValue] {
                var options = QueryOptions()
                options.search = search
                options.hosts = hosts
                return try await store.query("SELECT id FROM processes ORDER BY id", options: options).rows.map { $0[0] }
            }
            #expect(try await ids("curl") == [.text("a"), .text("c")])
            #expect(try await ids("CURL --flag") == [.text("a"), .text("c")])
            #expect(try await ids("curl", hosts: .names(["web1"])) == [.text("a")])
            #expect(try await ids("evil.sh") == [.text("b")])
            #expect(try await ids("curl evil.sh") == [])
            #expect(try await ids("wge*") == [.text("d")])
            #expect(try await ids(" \t ") == [.text("a"), .text("b"), .text("c"), .text("d")], "blank: no search")
            #expect(try await ids("\"odd'") == [], "quotes are searched for, not a syntax error")
            // Retention: the dropped day's events leave the search too.
            _ = try await store.dropDays(before: CivilTime.milliseconds(iso8601: "2026-11-21T00:00:00Z")!)
            #expect(try await ids("wget") == [])
            #expect(try await ids("curl") == [.text("a"), .text("c")])
        }
    }

    static let refusals: [(String, String)] = [
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
        ("SELECT * FROM alert_store", "'alert_store' is not queryable"),
        ("SELECT * FROM response_store", "'response_store' is not queryable"),
        ("SELECT * FROM hunt_store", "'hunt_store' is not queryable"),
        ("SELECT name FROM sqlite_master", "'sqlite_master' is not queryable"),
        ("SELECT * FROM main.events", "schema names are not allowed"),
        ("", "empty query"),
    ]

    @Test(arguments: Engine.allCases)
    func onlyReadingQueriesOverTheViewsRun(engine: Engine) async throws {
        try await engine.withStore { store in
            _ = try await store.ingest([event("a", host: "web1", second: 1)])
            for (sql, refusal) in Self.refusals {
                do {
                    _ = try await store.read(sql)
                    Issue.record("\(sql) was not refused")
                } catch let error as QueryError {
                    #expect("\(error)".contains(refusal), "\(sql): \(error)")
                }
                do {
                    try await store.save(Hunt(name: "h", sql: sql))
                    Issue.record("\(sql) was saved as a hunt")
                } catch is QueryError {}
            }
            #expect(try await store.read("SELECT count(*) FROM events").rows == [[.integer(1)]], "nothing changed")
            #expect(try await store.read("SELECT count(*) FROM hosts").rows == [[.integer(1)]], "nothing changed")
        }
    }

    @Test(arguments: Engine.allCases)
    func queriesSeeOnlyTheirHostsAndTime(engine: Engine) async throws {
        try await engine.withStore { store in
            _ = try await store.ingest([
                event("a", host: "web1", second: 1), event("b", host: "web2", second: 2),
                event("c", host: "db1", second: 3, action: "network-connected", category: "network"),
                event("d", host: "web1", second: 40, executable: "/usr/bin/curl"),
            ])
            var options = QueryOptions()
            options.hosts = HostScope(parsing: "web1,web2")
            #expect(try await store.query("SELECT id FROM events ORDER BY id", options: options).rows == [[.text("a")], [.text("b")], [.text("d")]])
            #expect(try await store.query("SELECT count(*) FROM hosts", options: options).rows == [[.integer(2)]])
            #expect(try await store.query("SELECT count(*) FROM network", options: options).rows == [[.integer(0)]])
            // Their own common table expressions still work, behind ours.
            #expect(
                try await store.query("WITH recent AS (SELECT * FROM processes WHERE pid > 10) SELECT executable FROM recent", options: options).rows
                    == [[.text("/usr/bin/curl")]])
            #expect(
                try await store.query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT count(*) FROM n, hosts", options: options).rows
                    == [[.integer(6)]])
            options.since = CivilTime.milliseconds(iso8601: "2026-11-23T10:00:02Z")
            options.until = CivilTime.milliseconds(iso8601: "2026-11-23T10:00:30Z")
            #expect(try await store.query("SELECT id, timestamp FROM events", options: options).rows == [[.text("b"), .text("2026-11-23T10:00:02.000Z")]])
            #expect(try await store.query("SELECT json_extract(json, '$.process.entity_id') FROM events", options: options).rows == [[.text("e-b")]])
            let columns = try await store.query("SELECT id, host AS machine FROM events WHERE id = 'none'", options: options)
            #expect(columns.columns == ["id", "machine"] && columns.rows.isEmpty && !columns.truncated)

            var limited = QueryOptions()
            limited.limit = 2
            let page = try await store.query("SELECT id FROM events ORDER BY id", options: limited)
            #expect(page.rows == [[.text("a")], [.text("b")]] && page.truncated && page.columns == ["id"])
            limited.limit = 4
            #expect(try await !store.query("SELECT id FROM events ORDER BY id", options: limited).truncated, "exactly the limit is not truncated")
            // What the database itself rejects is reported with its words.
            do {
                _ = try await store.read("SELECT no_such_column FROM events")
                Issue.record("an unknown column was not reported")
            } catch let error as QueryError {
                guard case .invalid(let message) = error else {
                    Issue.record("\(error)")
                    return
                }
                #expect(message.contains("no_such_column"), "\(message)")
            }
        }
    }

    @Test(arguments: Engine.allCases)
    func aQueryThatRunsTooLongIsStopped(engine: Engine) async throws {
        try await engine.withStore { store in
            var options = QueryOptions()
            options.timeoutSeconds = 0.3
            let started = Date()
            await #expect(throws: QueryError.timedOut(0.3)) {
                _ = try await store.query(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n", options: options)
            }
            #expect(Date().timeIntervalSince(started) < 5)
            // The store still answers after a stopped query.
            let after = try await store.read("SELECT count(*) FROM events")
            #expect(after.rows == [[.integer(0)]])
        }
    }

    /// Alerts: stored once by id, seen through the `alerts` view within the query's host and time scope.
    @Test(arguments: Engine.allCases)
    func alertsAreStoredOnceAndScopedLikeEvents(engine: Engine) async throws {
        try await engine.withStore { store in
            #expect(try await store.store(alerts: [alert("a", host: "web1", time: 1000), alert("b", host: "db1", time: 2000)]) == 2)
            #expect(try await store.store(alerts: [alert("a", host: "web1", time: 1000)]) == 0, "the same alert again is not stored twice")
            var options = QueryOptions()
            options.hosts = .names(["web1"])
            let scoped = try await store.query("SELECT rule_id, host, event_ids, timestamp, severity FROM alerts", options: options)
            #expect(scoped.rows == [[.text("rule-a"), .text("web1"), .text("ev-a"), .text("1970-01-01T00:00:01.000Z"), .integer(73)]])
            options.hosts = .all
            options.since = 1500
            #expect(try await store.query("SELECT rule_id FROM alerts", options: options).rows == [[.text("rule-b")]])
            await #expect(throws: QueryError.self) { try await store.read("SELECT * FROM alert_store") }
        }
    }

    /// Responses: recorded and replaced by id, updated by the command they sent, seen through the
    /// `responses` view within the query's host and time scope.
    @Test(arguments: Engine.allCases)
    func responsesAreRecordedReplacedUpdatedAndScoped(engine: Engine) async throws {
        try await engine.withStore { store in
            let kill = StoredResponse(
                id: "r1", time: 1000, host: "web1", alertID: "a1", ruleID: "rule-a", ruleTitle: "Rule a", policy: "contain-shells",
                action: "kill", target: "e-a", status: "planned")
            let notify = StoredResponse(
                id: "r2", time: 2000, host: "db1", policy: "manual", action: "notify", target: "ops-webhook", dryRun: true, status: "dry-run",
                detail: "would post")
            #expect(notify.updated == 2000 && notify.alertID == nil && notify.commandID == nil)
            try await store.record(responses: [kill, notify])
            var sent = kill
            sent.status = "sent"
            sent.commandID = "c1"
            sent.updated = 1100
            try await store.record(responses: [sent])
            #expect(try await store.read("SELECT status, command_id, updated FROM responses WHERE id = 'r1'").rows == [[.text("sent"), .text("c1"), .integer(1100)]])
            #expect(try await store.updateResponse(commandID: "c1", status: "succeeded", detail: "pid 42 killed", time: 1500))
            #expect(try await !store.updateResponse(commandID: "c9", status: "failed", detail: nil, time: 1600), "no response sent c9")

            let all = try await store.read("SELECT * FROM responses ORDER BY id")
            #expect(all.columns == [
                "id", "timestamp", "time", "host", "alert_id", "rule_id", "rule_title", "policy", "action", "target", "dry_run", "status",
                "detail", "command_id", "updated",
            ])
            #expect(all.rows == [
                [
                    .text("r1"), .text("1970-01-01T00:00:01.000Z"), .integer(1000), .text("web1"), .text("a1"), .text("rule-a"), .text("Rule a"),
                    .text("contain-shells"), .text("kill"), .text("e-a"), .integer(0), .text("succeeded"), .text("pid 42 killed"), .text("c1"),
                    .integer(1500),
                ],
                [
                    .text("r2"), .text("1970-01-01T00:00:02.000Z"), .integer(2000), .text("db1"), .null, .null, .null, .text("manual"),
                    .text("notify"), .text("ops-webhook"), .integer(1), .text("dry-run"), .text("would post"), .null, .integer(2000),
                ],
            ])

            var options = QueryOptions()
            options.hosts = .names(["web1"])
            #expect(try await store.query("SELECT id FROM responses", options: options).rows == [[.text("r1")]])
            options.hosts = HostScope(parsing: "nowhere")
            #expect(try await store.query("SELECT count(*) FROM responses", options: options).rows == [[.integer(0)]])
            options.hosts = .all
            options.since = 1500
            #expect(try await store.query("SELECT id FROM responses", options: options).rows == [[.text("r2")]])
            options.since = nil
            options.until = 1500
            #expect(try await store.query("SELECT id FROM responses", options: options).rows == [[.text("r1")]])

            // One decision twice in a batch: the later record stays.
            var posted = notify
            posted.status = "sent"
            try await store.record(responses: [notify, posted])
            #expect(try await store.read("SELECT count(*), max(status) FROM responses WHERE id = 'r2'").rows == [[.integer(1), .text("sent")]])
            await #expect(throws: QueryError.self) { try await store.read("SELECT * FROM response_store") }
        }
    }

    /// Saved hunts: a store starts with the default ones; a hunt is saved only if its query would be
    /// allowed, replaced by name, run like any query, and deleted.
    @Test(arguments: Engine.allCases)
    func huntsAreSavedCheckedRunAndDeleted(engine: Engine) async throws {
        try await engine.withStore { store in
            let defaults = try await store.hunts()
            #expect(defaults.map(\.name) == Hunt.defaults.map(\.name).sorted())
            for hunt in defaults { _ = try await store.read(hunt.sql) }  // every default runs on an empty store
            _ = try await store.ingest([event("a", host: "web1", second: 1, executable: "/bin/bash")])
            for hunt in defaults { _ = try await store.read(hunt.sql) }  // and on one with an event
            try await store.save(Hunt(name: "shells", sql: "SELECT count(*) FROM processes WHERE executable LIKE '%sh'", hosts: "web1"))
            try await store.save(Hunt(name: "shells", sql: "SELECT count(*) FROM processes WHERE executable LIKE '%/bash'", hosts: "web1,web2"))
            let saved = try #require(try await store.hunt(named: "shells"))
            #expect(saved.sql.hasSuffix("'%/bash'") && saved.hosts == "web1,web2")
            #expect(try await store.read(saved.sql).rows == [[.integer(1)]])
            await #expect(throws: QueryError.self) { try await store.save(Hunt(name: "wipe", sql: "DELETE FROM events")) }
            await #expect(throws: QueryError.self) { try await store.save(Hunt(name: "bad name!", sql: "SELECT 1")) }
            #expect(try await store.deleteHunt(named: "shells"))
            #expect(try await !store.deleteHunt(named: "shells"))
            #expect(try await store.hunt(named: "shells") == nil)
        }
    }

    /// The rollups kept at ingest: process starts per day, host, parent and program; connections per
    /// day, host and destination; each event counted once, scoped like events, dropped with their day.
    @Test(arguments: Engine.allCases)
    func rollupsCountProcessPairsAndConnections(engine: Engine) async throws {
        try await engine.withStore { store in
            func start(_ id: String, host: String, second: Int, parent: String?, day: String = "2026-11-23") -> Substring {
                let parentField = parent.map { #","parent":{"executable":"\#($0)"}"# } ?? ""
                return Substring(#"{"@timestamp":"\#(day)T10:00:\#(String(format: "%02d", second)).000Z","event":{"category":["process"],"action":"process-started","id":"\#(id)"},"host":{"name":"\#(host)"},"process":{"executable":"/usr/bin/curl"\#(parentField)}}"#)
            }
            func connect(_ id: String, host: String, second: Int, port: Int) -> Substring {
                Substring(#"{"@timestamp":"2026-11-23T10:00:\#(String(format: "%02d", second)).000Z","event":{"category":["network"],"action":"network-connected","id":"\#(id)"},"host":{"name":"\#(host)"},"destination":{"ip":"10.0.0.9","port":\#(port)}}"#)
            }
            _ = try await store.ingest([
                start("a", host: "web1", second: 1, parent: "/bin/bash"), start("b", host: "web1", second: 5, parent: "/bin/bash"),
                start("c", host: "web2", second: 2, parent: "/usr/sbin/cron"), start("d", host: "web2", second: 3, parent: nil),
                start("e", host: "web1", second: 4, parent: "/bin/bash", day: "2026-11-20"),
                connect("n1", host: "web1", second: 6, port: 443), connect("n2", host: "web1", second: 7, port: 443),
                connect("n3", host: "db1", second: 8, port: 5432),
            ])
            // A batch sent again counts nothing twice.
            _ = try await store.ingest([start("a", host: "web1", second: 1, parent: "/bin/bash"), connect("n3", host: "db1", second: 8, port: 5432)])
            #expect(try await store.read("SELECT day, host, parent_executable, executable, runs, first_seen, last_seen FROM process_pairs ORDER BY day, host, coalesce(parent_executable, '')").rows == [
                [.text("2026-11-20"), .text("web1"), .text("/bin/bash"), .text("/usr/bin/curl"), .integer(1), .text("2026-11-20T10:00:04.000Z"), .text("2026-11-20T10:00:04.000Z")],
                [.text("2026-11-23"), .text("web1"), .text("/bin/bash"), .text("/usr/bin/curl"), .integer(2), .text("2026-11-23T10:00:01.000Z"), .text("2026-11-23T10:00:05.000Z")],
                [.text("2026-11-23"), .text("web2"), .null, .text("/usr/bin/curl"), .integer(1), .text("2026-11-23T10:00:03.000Z"), .text("2026-11-23T10:00:03.000Z")],
                [.text("2026-11-23"), .text("web2"), .text("/usr/sbin/cron"), .text("/usr/bin/curl"), .integer(1), .text("2026-11-23T10:00:02.000Z"), .text("2026-11-23T10:00:02.000Z")],
            ])
            #expect(try await store.read("SELECT host, destination_ip, destination_port, connections FROM connections ORDER BY host").rows == [
                [.text("db1"), .text("10.0.0.9"), .integer(5432), .integer(1)],
                [.text("web1"), .text("10.0.0.9"), .integer(443), .integer(2)],
            ])
            var web1 = QueryOptions()
            web1.hosts = .names(["web1"])
            web1.since = CivilTime.milliseconds(iso8601: "2026-11-22T00:00:00Z")
            #expect(try await store.query("SELECT sum(runs) FROM process_pairs", options: web1).rows == [[.integer(2)]])
            await #expect(throws: QueryError.self) { try await store.read("SELECT * FROM process_rollup") }
            try await store.dropDays(before: CivilTime.milliseconds(iso8601: "2026-11-21T00:00:00Z")!)
            #expect(try await store.read("SELECT count(*), sum(runs) FROM process_pairs").rows == [[.integer(3), .integer(4)]])
        }
    }

    /// Documents read back whole through `json`, batches of more events than a block holds, with
    /// events stored before among them.
    @Test(arguments: Engine.allCases)
    func documentsReadBackAcrossBlocks(engine: Engine) async throws {
        try await engine.withStore { store in
            let lines = (0..<150).map { event("id\($0)", host: "web\($0 % 3)", second: $0 % 60) }
            _ = try await store.ingest(Array(lines[..<70]))
            let result = try await store.ingest(lines)
            #expect(result.inserted == 80 && result.duplicates == 70)
            let stored = try await store.query("SELECT id, json FROM events", options: { var o = QueryOptions(); o.limit = 500; return o }())
            #expect(stored.rows.count == 150)
            for row in stored.rows {
                guard case .text(let id) = row[0], case .text(let json) = row[1], let number = Int(id.dropFirst(2)) else {
                    Issue.record("row \(row)")
                    continue
                }
                #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSDictionary
                    == JSONSerialization.jsonObject(with: Data(lines[number].utf8)) as? NSDictionary)
            }
            try await store.dropDays(before: CivilTime.milliseconds(iso8601: "2026-11-24T00:00:00Z")!)
            #expect(try await store.read("SELECT count(*) FROM events").rows == [[.integer(0)]])
        }
    }
}
