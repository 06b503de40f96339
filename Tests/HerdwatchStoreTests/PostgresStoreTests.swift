import Foundation
import HerdwatchEvents
import HerdwatchTestSupport
import Testing

@testable import HerdwatchStore

/// What only the PostgreSQL engine has: day partitions and retention, the read-only transaction
/// behind the text check, several servers on one database, the URL.
@Suite struct PostgresStoreTests {
    func milliseconds(_ text: String) -> Int64 { CivilTime.milliseconds(iso8601: text) ?? -1 }

    @Test func eventsGoToDayPartitionsAndOldDaysAreDropped() async throws {
        let server = try await PostgresServer.start()
        defer { withExtendedLifetime(server) {} }
        let url = server.url
        do {
            try await PostgresStore.withStore(try PostgresStore.Configuration(url: server.url), logger: Engine.logger) { store in
                let result = try await store.ingest([
                    event("a", host: "web1", second: 1, day: "2026-11-21"), event("b", host: "web1", second: 2, day: "2026-11-22"),
                    event("c", host: "web1", second: 3, day: "2026-11-23"), event("d", host: "web2", second: 4, day: "2026-11-23"),
                ])
                #expect(result.inserted == 4)
                _ = try await store.store(alerts: [alert("x", host: "web1", time: milliseconds("2026-11-21T12:00:00Z"))])
                #expect(try await store.partitionNames() == [
                    "alert_store_20261121", "event_store_20261121", "event_store_20261122", "event_store_20261123",
                ])
                // The same event again, in a day that exists: stored once.
                #expect(try await store.ingest([event("a", host: "web1", second: 1, day: "2026-11-21")]).duplicates == 1)

                // Midday of the 23rd: the 21st and 22nd are whole days before it, the 23rd is not.
                #expect(try await store.dropDays(before: milliseconds("2026-11-23T12:00:00Z")) == 2)
                #expect(try await store.partitionNames() == ["event_store_20261123"])
                #expect(try await store.read("SELECT id FROM events ORDER BY id").rows == [[.text("c")], [.text("d")]])
                #expect(try await store.read("SELECT count(*) FROM alerts").rows == [[.integer(0)]])
                #expect(try await store.dropDays(before: milliseconds("2026-11-23T23:59:59Z")) == 0)

                // A late event of a dropped day makes its partition again.
                #expect(try await store.ingest([event("e", host: "web1", second: 5, day: "2026-11-22")]).inserted == 1)
                #expect(try await store.partitionNames() == ["event_store_20261122", "event_store_20261123"])

                // Another server drops a day this one knows: its next batch of that day makes it again.
                try await PostgresStore.withStore(try PostgresStore.Configuration(url: url), logger: Engine.logger) { other in
                    let dropped = try await other.dropDays(before: milliseconds("2026-11-23T00:00:00Z"))
                    #expect(dropped == 1)
                }
                #expect(try await store.ingest([event("f", host: "web1", second: 6, day: "2026-11-22")]).inserted == 1)
                #expect(try await store.read("SELECT id FROM events ORDER BY id").rows == [[.text("c")], [.text("d")], [.text("f")]])
            }
        }
    }

    /// The text check lets through what only the database can see; the READ ONLY transaction
    /// refuses it, and what PostgreSQL offers beyond SQLite is refused by name.
    @Test func writesPastTheTextCheckAreRefusedByTheReadOnlyTransaction() async throws {
        let server = try await PostgresServer.start()
        defer { withExtendedLifetime(server) {} }
        // A table of no store's and a function that writes (plpgsql resolves its tables when it runs).
        try server.execute(
            """
            CREATE TABLE scratch (a int); INSERT INTO scratch VALUES (1);
            CREATE FUNCTION wipe() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM host_store; RETURN 1; END $$;
            """)
        do {
            try await PostgresStore.withStore(try PostgresStore.Configuration(url: server.url), logger: Engine.logger) { store in
                _ = try await store.ingest([event("a", host: "web1", second: 1)])
                do {
                    _ = try await store.read("SELECT wipe()")
                    Issue.record("a writing function ran")
                } catch let error as QueryError {
                    #expect(error == .refused("cannot execute DELETE in a read-only transaction: queries only read"), "\(error)")
                }
                do {
                    _ = try await store.read("WITH gone AS (DELETE FROM scratch RETURNING a) SELECT count(*) FROM gone")
                    Issue.record("a DELETE in WITH ran")
                } catch is QueryError {}
                do {
                    _ = try await store.read("SELECT count(*) FROM (SELECT 1) AS x FOR UPDATE")
                    Issue.record("FOR UPDATE ran")
                } catch is QueryError {}
                #expect(try await store.read("SELECT count(*) FROM hosts").rows == [[.integer(1)]], "nothing changed")
                #expect(try await store.read("SELECT count(*) FROM scratch").rows == [[.integer(1)]], "nothing changed")

                for (sql, refusal) in [
                    ("SELECT * FROM event_store_20261123", "'event_store_20261123' is not queryable"),
                    ("SELECT pg_read_file('/etc/passwd')", "'pg_read_file' is not allowed"),
                    ("SELECT relname FROM pg_catalog.pg_class", "schema names are not allowed"),
                    ("SELECT query_to_xml('SELECT * FROM event_store', true, true, '')", "'query_to_xml' is not allowed"),
                    ("SELECT set_config('statement_timeout', '0', false)", "'set_config' is not allowed"),
                    ("SELECT * FROM public.events", "schema names are not allowed"),
                ] {
                    do {
                        _ = try await store.read(sql)
                        Issue.record("\(sql) was not refused")
                    } catch let error as QueryError {
                        #expect("\(error)".contains(refusal), "\(sql): \(error)")
                    }
                }
            }
        }
    }

    /// Two servers on one database ingest the same batches at once, in days new to both: each
    /// event is stored once, the partitions are made once, and no batch fails.
    @Test func serversSharingADatabaseStoreEachEventOnce() async throws {
        let server = try await PostgresServer.start()
        defer { withExtendedLifetime(server) {} }
        let configuration = try PostgresStore.Configuration(url: server.url)
        do {
            try await PostgresStore.withStore(configuration, logger: Engine.logger) { first in
                try await PostgresStore.withStore(configuration, logger: Engine.logger) { second in
                    let days = (1...9).map { "2026-10-0\($0)" }
                    let batches = (0..<6).map { batch in
                        (0..<200).map { index in
                            // An event's id stands for one event: the same host and time in every batch.
                            let number = (batch * 200 + index) % 500
                            return event("e\(number)", host: "web\(number % 3)", second: number % 60, day: days[number % days.count])
                        }
                    }
                    let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
                        for batch in batches {
                            group.addTask { try await first.ingest(batch).inserted }
                            group.addTask { try await second.ingest(batch).inserted }
                        }
                        return try await group.reduce(0, +)
                    }
                    #expect(inserted == 500)
                    #expect(try await first.read("SELECT count(*), count(DISTINCT id) FROM events").rows == [[.integer(500), .integer(500)]])
                    #expect(try await first.read("SELECT sum(events) FROM hosts").rows == [[.integer(500)]])
                    #expect(try await second.partitionNames().count == days.count)
                }
            }
        }
    }

    @Test func databaseURLs() throws {
        let full = try PostgresStore.Configuration(url: "postgresql://herd:s%40cret@db.example:6543/fleet?sslmode=require&pool=4")
        #expect(full.username == "herd" && full.password == "s@cret" && full.host == "db.example" && full.port == 6543)
        #expect(full.database == "fleet" && full.requireTLS && full.maximumConnections == 4)
        #expect(full.redacted == "herd@db.example:6543/fleet")
        let socket = try PostgresStore.Configuration(url: "postgres://herd@/fleet?host=/var/run/postgresql")
        #expect(socket.socketDirectory == "/var/run/postgresql" && socket.port == 5432)
        #expect(throws: PostgresStore.URLError.self) { try PostgresStore.Configuration(url: "mysql://x@y/z") }
        do {
            _ = try PostgresStore.Configuration(url: "postgres://herd:hunter2@db/fleet?colour=blue")
            Issue.record("an unknown parameter was accepted")
        } catch {
            #expect("\(error)".contains("colour") && !"\(error)".contains("hunter2"), "\(error)")
        }
    }
}

@Suite struct PostgresUnreachableTests {
    /// A store whose server is not there says which database and what failed, and does not wait forever.
    @Test func anUnreachableDatabaseIsNamed() async throws {
        let configuration = try PostgresStore.Configuration(url: "postgres://herd@127.0.0.1:\(NATSServer.freePort())/fleet")
        let started = Date()
        do {
            try await PostgresStore.withStore(configuration, logger: Engine.logger) { _ in }
            Issue.record("no error without a server")
        } catch {
            #expect("\(error)".contains("herd@127.0.0.1") && "\(error)".contains("connect failed"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 30, "not the pool's minute of retries")
    }
}
