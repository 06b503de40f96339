import Foundation
import GRDB
import GRDBSQLite
import HerdwatchEvents
import Synchronization

/// Every event of the fleet in one SQLite database (WAL), de-duplicated by `event.id`, with the
/// fields people filter on in columns of their own and the whole ECS document in an `EventBlock`
/// (compressed with the 63 events around it).
///
/// Writes go through `ingest`, one transaction per batch: when it returns, the batch is on disk
/// (what an HTTP or NATS ingest acknowledges). Reads go through `query` (see `QueryGuard`).
public final class EventStore: FleetStore {
    public let path: String
    public var location: String { "sqlite:\(path)" }
    private let pool: DatabasePool
    /// Blocks decompressed for the `json` column of the views, shared by this store's connections.
    private let blocks = EventBlockCache()
    /// Batches waiting for the writer (group commit, see `store(_:into:)`).
    private let writes = Mutex(WriteQueue())
    /// Event batches prepared and written at a lower CPU priority (`setBackgroundWrites`).
    private let backgroundWrites = Atomic(false)
    /// Where background batches are prepared: one thread of its own, not the concurrency pool.
    private let backgroundPrepare = DispatchQueue(label: "herdwatch.store.prepare")

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        // A page cache big enough for the indexes' hot pages (SQLite's default is 2 MB), and
        // temporary b-trees in memory. Commits stay fsynced (WAL, synchronous FULL): an ingest is
        // acknowledged only once it is on disk.
        let blocks = blocks
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 16384")
            db.add(function: Self.eventJSON(blocks))
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
    }

    /// `herdwatch_event_json(block, slot, size, data)`: line `slot` of an `event_block` row, the
    /// `json` column of the views.
    static func eventJSON(_ cache: EventBlockCache) -> DatabaseFunction {
        DatabaseFunction("herdwatch_event_json", argumentCount: 4, pure: true) { values in
            guard let block = Int64.fromDatabaseValue(values[0]), let slot = Int.fromDatabaseValue(values[1]),
                let size = Int.fromDatabaseValue(values[2])
            else { return nil }
            return cache.line(block: block, slot: slot, size: size) {
                guard case .blob(let data) = values[3].storage else { return nil }
                return data
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE event_store (
                        id TEXT NOT NULL UNIQUE,
                        host TEXT NOT NULL,
                        time INTEGER NOT NULL,
                        kind TEXT, action TEXT, category TEXT, outcome TEXT, module TEXT,
                        pid INTEGER, executable TEXT, command_line TEXT, entity_id TEXT, parent_entity_id TEXT,
                        user_name TEXT, source_ip TEXT, destination_ip TEXT, destination_port INTEGER, file_path TEXT,
                        tags TEXT, json TEXT NOT NULL
                    );
                    CREATE INDEX event_host_time ON event_store(host, time);
                    CREATE INDEX event_time ON event_store(time);
                    CREATE INDEX event_action_time ON event_store(action, time);
                    CREATE INDEX event_executable ON event_store(executable);
                    CREATE INDEX event_user ON event_store(user_name);
                    CREATE INDEX event_destination ON event_store(destination_ip);
                    CREATE INDEX event_entity ON event_store(entity_id);
                    CREATE TABLE host_store (
                        name TEXT PRIMARY KEY,
                        first_seen INTEGER NOT NULL,
                        last_seen INTEGER NOT NULL,
                        events INTEGER NOT NULL DEFAULT 0,
                        profile TEXT
                    );
                    """)
        }
        migrator.registerMigration("v2-alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE alert_store (
                        id TEXT NOT NULL UNIQUE,
                        host TEXT NOT NULL,
                        time INTEGER NOT NULL,
                        rule_id TEXT NOT NULL, rule_title TEXT NOT NULL, level TEXT NOT NULL, severity INTEGER NOT NULL,
                        correlation TEXT, entity_id TEXT, pid INTEGER, executable TEXT, command_line TEXT, user_name TEXT,
                        event_ids TEXT, tags TEXT, stored_at INTEGER NOT NULL, json TEXT NOT NULL
                    );
                    CREATE INDEX alert_host_time ON alert_store(host, time);
                    CREATE INDEX alert_time ON alert_store(time);
                    CREATE INDEX alert_rule ON alert_store(rule_id);
                    """)
        }
        migrator.registerMigration("v3-hunts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE hunt_store (
                        name TEXT PRIMARY KEY,
                        sql TEXT NOT NULL,
                        description TEXT,
                        hosts TEXT,
                        saved_at INTEGER NOT NULL
                    )
                    """)
            for hunt in Hunt.defaults {
                try db.execute(
                    sql: "INSERT INTO hunt_store (name, sql, description, hosts, saved_at) VALUES (?, ?, ?, ?, 0)",
                    arguments: [hunt.name, hunt.sql, hunt.description, hunt.hosts])
            }
        }
        migrator.registerMigration("v4-registry") { db in
            // The hosts registry: hosts known from the tokens file before they send anything
            // (first/last seen null), their tags, and their agent's figures from heartbeats.
            try db.execute(
                sql: """
                    CREATE TABLE host_registry (
                        name TEXT PRIMARY KEY,
                        first_seen INTEGER, last_seen INTEGER,
                        events INTEGER NOT NULL DEFAULT 0,
                        tags TEXT, level TEXT, agent_version TEXT, events_per_second REAL, bytes_per_day REAL,
                        rss_bytes INTEGER, cpu_percent REAL, lost_total INTEGER, health_time INTEGER
                    );
                    INSERT INTO host_registry (name, first_seen, last_seen, events, level)
                        SELECT name, first_seen, last_seen, events, profile FROM host_store;
                    DROP TABLE host_store;
                    ALTER TABLE host_registry RENAME TO host_store;
                    ALTER TABLE event_store ADD COLUMN parent_executable TEXT;
                    UPDATE event_store SET parent_executable = json_extract(json, '$.process.parent.executable')
                        WHERE json_extract(json, '$.process.parent.executable') IS NOT NULL;
                    CREATE INDEX event_parent_child ON event_store(parent_executable, executable);
                    CREATE INDEX event_action_executable ON event_store(action, executable);
                    UPDATE hunt_store SET sql = replace(sql, 'json_extract(json, ''$.process.parent.executable'')', 'parent_executable')
                        WHERE name = 'rare-parent-child';
                    """)
        }
        migrator.registerMigration("v5-responses") { db in
            // Automated and manual responses: one row per decision, replaced as its status changes.
            try db.execute(
                sql: """
                    CREATE TABLE response_store (
                        id TEXT PRIMARY KEY,
                        time INTEGER NOT NULL,
                        host TEXT NOT NULL,
                        alert_id TEXT, rule_id TEXT, rule_title TEXT,
                        policy TEXT NOT NULL, action TEXT NOT NULL, target TEXT, dry_run INTEGER NOT NULL,
                        status TEXT NOT NULL, detail TEXT, command_id TEXT, updated INTEGER NOT NULL
                    );
                    CREATE INDEX response_host_time ON response_store(host, time);
                    CREATE INDEX response_time ON response_store(time);
                    CREATE INDEX response_alert ON response_store(alert_id);
                    CREATE INDEX response_command ON response_store(command_id);
                    """)
        }
        migrator.registerMigration("v6-command-search") { db in
            // Full-text search over command lines (QueryOptions.search): an FTS5 index over
            // event_store's command_line, by rowid, kept by ingest and retention.
            try db.execute(
                sql: """
                    CREATE VIRTUAL TABLE command_search USING fts5(command_line, content = 'event_store', content_rowid = 'rowid');
                    INSERT INTO command_search (rowid, command_line) SELECT rowid, command_line FROM event_store WHERE command_line IS NOT NULL;
                    """)
        }
        migrator.registerMigration("v7-blocks") { db in
            // Documents move out of the rows into compressed blocks; indexes that only fleet-wide
            // aggregates used give way to the rollups; the process tree's lookups get their own.
            try db.execute(
                sql: """
                    DROP TABLE command_search;
                    ALTER TABLE event_store RENAME TO event_store_v6;
                    DROP INDEX event_host_time; DROP INDEX event_time; DROP INDEX event_action_time; DROP INDEX event_executable;
                    DROP INDEX event_user; DROP INDEX event_destination; DROP INDEX event_entity; DROP INDEX event_parent_child;
                    DROP INDEX event_action_executable;
                    CREATE TABLE event_block (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        size INTEGER NOT NULL,
                        events INTEGER NOT NULL,
                        data BLOB NOT NULL
                    );
                    CREATE TABLE event_store (
                        id TEXT NOT NULL,
                        host TEXT NOT NULL,
                        time INTEGER NOT NULL,
                        kind TEXT, action TEXT, category TEXT, outcome TEXT, module TEXT,
                        pid INTEGER, executable TEXT, command_line TEXT, entity_id TEXT, parent_entity_id TEXT, parent_executable TEXT,
                        user_name TEXT, source_ip TEXT, destination_ip TEXT, destination_port INTEGER, file_path TEXT,
                        tags TEXT, block INTEGER NOT NULL, slot INTEGER NOT NULL
                    );
                    CREATE UNIQUE INDEX event_id ON event_store(id);
                    CREATE INDEX event_host_time ON event_store(host, time);
                    CREATE INDEX event_time ON event_store(time);
                    CREATE INDEX event_action_time ON event_store(action, time);
                    CREATE INDEX event_entity ON event_store(entity_id) WHERE entity_id IS NOT NULL;
                    CREATE INDEX event_parent_entity ON event_store(parent_entity_id) WHERE parent_entity_id IS NOT NULL;
                    CREATE VIRTUAL TABLE command_search USING fts5(command_line, content = 'event_store', content_rowid = 'rowid');
                    CREATE TABLE process_rollup (
                        day INTEGER NOT NULL, host TEXT NOT NULL, parent_executable TEXT NOT NULL, executable TEXT NOT NULL,
                        runs INTEGER NOT NULL, first_time INTEGER NOT NULL, last_time INTEGER NOT NULL,
                        PRIMARY KEY (day, host, parent_executable, executable)
                    ) WITHOUT ROWID;
                    CREATE INDEX process_rollup_executable ON process_rollup(executable);
                    CREATE TABLE connection_rollup (
                        day INTEGER NOT NULL, host TEXT NOT NULL, destination_ip TEXT NOT NULL, destination_port INTEGER NOT NULL,
                        connections INTEGER NOT NULL, first_time INTEGER NOT NULL, last_time INTEGER NOT NULL,
                        PRIMARY KEY (day, host, destination_ip, destination_port)
                    ) WITHOUT ROWID;
                    CREATE INDEX connection_rollup_destination ON connection_rollup(destination_ip);
                    """)
            // The events stored so far, read again from their documents in the order they came
            // (the hosts registry counted them when they arrived).
            let documents = try String.fetchCursor(db, sql: "SELECT json FROM event_store_v6 ORDER BY rowid")
            var lines: [Substring] = []
            func flush() throws {
                let batch = PreparedBatch(StoredEvent.parse(lines).rows)
                _ = try Self.insert(batch, into: db, registry: false)
                lines.removeAll(keepingCapacity: true)
            }
            while let document = try documents.next() {
                lines.append(Substring(document))
                if lines.count == 5000 { try flush() }
            }
            try flush()
            try db.execute(sql: "DROP TABLE event_store_v6")
            for hunt in Hunt.defaults {
                try db.execute(sql: "UPDATE hunt_store SET sql = ? WHERE name = ? AND saved_at = 0", arguments: [hunt.sql, hunt.name])
            }
        }
        migrator.registerMigration("v8-filter-indexes") { db in
            // One program's, user's or destination's events anywhere in the fleet (the rollups
            // answer the fleet-wide counts; these find the events themselves: at 3 million events a
            // scan takes 0.4-0.5 s, the index a few ms). Few distinct values each, so new rows land
            // at the end of a few runs of the index; they cost about 15% of the ingest rate.
            try db.execute(
                sql: """
                    CREATE INDEX event_executable ON event_store(executable) WHERE executable IS NOT NULL;
                    CREATE INDEX event_user ON event_store(user_name) WHERE user_name IS NOT NULL;
                    CREATE INDEX event_destination ON event_store(destination_ip) WHERE destination_ip IS NOT NULL;
                    """)
        }
        return migrator
    }

    public typealias Rejection = IngestResult.Rejection

    /// Parses a batch of ECS JSON lines; when `allOrNothing`, a batch with a bad line stores nothing.
    public func ingest(lines: [Substring], allOrNothing: Bool = false) async throws -> IngestResult {
        var result = IngestResult()
        let rows: [StoredEvent]
        (rows, result.rejected) = StoredEvent.parse(lines)
        if allOrNothing && !result.rejected.isEmpty { return result }
        try await store(PreparedBatch(rows), into: &result)
        return result
    }

    /// Stores the events of a batch parsed before; its rejected lines are only reported.
    public func ingest(_ batch: ParsedBatch) async throws -> IngestResult {
        var result = IngestResult()
        result.rejected = batch.rejected
        let prepared: PreparedBatch
        if backgroundWrites.load(ordering: .relaxed) {
            // Off the concurrency pool: it has a thread per core, and a pool thread busy compressing
            // at a lowered priority is still a thread the server's own tasks cannot run on.
            prepared = await withCheckedContinuation { continuation in
                backgroundPrepare.async { continuation.resume(returning: ThreadPriority.idle { PreparedBatch(batch.rows) }) }
            }
        } else {
            prepared = PreparedBatch(batch.rows)
        }
        try await store(prepared, into: &result)
        return result
    }

    /// In the background (the server's journal loader), a batch's compression (on a thread of its
    /// own) runs under SCHED_IDLE and its SQLite write 10 nice levels down (it holds the writer, which
    /// other writes wait for): on a busy server they take what CPU the acknowledgments leave.
    public func setBackgroundWrites(_ background: Bool) { backgroundWrites.store(background, ordering: .relaxed) }

    private func withWritePriority<T>(_ body: () throws -> T) rethrows -> T {
        guard backgroundWrites.load(ordering: .relaxed) else { return try body() }
        return try ThreadPriority.background(body)
    }

    /// Writes a batch parsed and compressed before (on the caller's task, so that one batch's
    /// preparing overlaps another's writing). Group commit: the batch joins a queue, and the next
    /// write takes every batch queued by then into one transaction. Batches that arrive while
    /// another commits share the next commit: fewer syncs, and an index page that several batches
    /// touch is written once. Returns when the transaction holding the batch is on disk.
    private func store(_ batch: PreparedBatch, into result: inout IngestResult) async throws {
        let ticket = writes.withLock { $0.queue(batch) }
        let outcome: Result<[Int], any Error>
        do {
            try await pool.writeWithoutTransaction { db in self.withWritePriority { self.writeQueued(db) } }
            // Written by this write or by one before it (which took the batch with its group).
            outcome = try writes.withLock { queue in
                guard let outcome = queue.outcomes.removeValue(forKey: ticket) else {
                    throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "batch \(ticket) left the write queue unwritten")
                }
                return outcome
            }
        } catch {
            // The write did not run (cancelled, or the database could not be reached): the batch
            // may still be written by a later write; its caller retries and duplicates are dropped.
            writes.withLock { $0.forget(ticket) }
            throw error
        }
        result.insertedLines = try outcome.get()
        result.inserted = result.insertedLines.count
        result.duplicates = batch.rows.count - result.inserted
    }

    /// On the writer: every queued batch in one transaction, and each batch's outcome recorded.
    /// Should that transaction fail, each batch is tried again alone.
    private func writeQueued(_ db: Database) {
        let group = writes.withLock { $0.takeQueued() }
        guard !group.isEmpty else { return }
        /// The batches' inserted lines, all in one transaction.
        func insert(_ batches: ArraySlice<(ticket: Int, batch: PreparedBatch)>) throws -> [[Int]] {
            var lines: [[Int]] = []
            try db.inTransaction(.immediate) {
                lines = try batches.map { try Self.insert($0.batch, into: db) }
                return .commit
            }
            return lines
        }
        do {
            let lines = try insert(group[...])
            writes.withLock { queue in
                for (item, inserted) in zip(group, lines) { queue.record(.success(inserted), for: item.ticket) }
            }
        } catch {
            // Nothing of the group was stored. One transaction each, so that a batch the database
            // refuses fails alone.
            for index in group.indices {
                let outcome = Result { try insert(group[index...index])[0] }
                writes.withLock { $0.record(outcome, for: group[index].ticket) }
            }
        }
    }

    /// Batches waiting for a write, and the outcomes of batches written, by ticket.
    struct WriteQueue: ~Copyable {
        private var lastTicket = 0
        private var queued: [(ticket: Int, batch: PreparedBatch)] = []
        var outcomes: [Int: Result<[Int], any Error>] = [:]
        /// Batches a write took whose callers stopped waiting: their outcomes are not kept.
        private var abandoned: Set<Int> = []

        mutating func queue(_ batch: PreparedBatch) -> Int {
            lastTicket += 1
            queued.append((lastTicket, batch))
            return lastTicket
        }

        mutating func takeQueued() -> [(ticket: Int, batch: PreparedBatch)] {
            defer { queued.removeAll() }
            return queued
        }

        mutating func record(_ outcome: Result<[Int], any Error>, for ticket: Int) {
            if abandoned.remove(ticket) == nil { outcomes[ticket] = outcome }
        }

        /// A batch whose caller stopped waiting: out of the queue, its outcome not kept (also when
        /// a write already took it).
        mutating func forget(_ ticket: Int) {
            let waiting = queued.count
            queued.removeAll { $0.ticket == ticket }
            if queued.count == waiting && outcomes.removeValue(forKey: ticket) == nil { abandoned.insert(ticket) }
        }
    }

    /// Inserts the blocks and the rows not stored yet, counts rollups and (unless `registry` is
    /// false: the hosts registry already counts the events, as when an upgrade moves them) hosts;
    /// returns the batch lines of the rows inserted (the others were stored before).
    fileprivate static func insert(_ batch: PreparedBatch, into db: Database, registry: Bool = true) throws -> [Int] {
        let columns = StoredEvent.columns + ["block", "slot"]
        var insertRow = try RawStatement(
            db,
            try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO event_store (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"))
        var insertBlock = try RawStatement(db, try db.cachedStatement(sql: "INSERT INTO event_block (size, events, data) VALUES (?, ?, ?)"))
        var search = try RawStatement(db, try db.cachedStatement(sql: "INSERT INTO command_search (rowid, command_line) VALUES (?, ?)"))
        let host = try db.cachedStatement(
            sql: """
                INSERT INTO host_store (name, first_seen, last_seen, events) VALUES (?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET last_seen = max(coalesce(last_seen, excluded.last_seen), excluded.last_seen),
                    first_seen = min(coalesce(first_seen, excluded.first_seen), excluded.first_seen), events = events + excluded.events
                """)
        let health = try db.cachedStatement(
            sql: """
                UPDATE host_store SET \(HostHealth.columnNames.map { "\($0) = coalesce(?, \($0))" }.joined(separator: ", ")),
                    health_time = ? WHERE name = ? AND coalesce(health_time, 0) <= ?
                """)
        var lines: [Int] = []
        lines.reserveCapacity(batch.rows.count)
        // One registry update per host and batch: (first, last, count) of what was new.
        var seen: [String: (first: Int64, last: Int64, count: Int)] = [:]
        var heartbeats: [StoredEvent] = []
        var rollups = Rollups()
        let connection = db.sqliteConnection
        for (blockIndex, block) in batch.blocks.enumerated() {
            insertBlock.bind(Int64(block.size))
            insertBlock.bind(Int64(block.count))
            insertBlock.bind(bytes: block.data)
            try insertBlock.step()
            let blockID = sqlite3_last_insert_rowid(connection)
            var duplicates: Int64 = 0
            let first = blockIndex * EventBlock.capacity
            for slot in 0..<block.count {
                let row = batch.rows[first + slot]
                insertRow.bind(row.id)
                insertRow.bind(row.host)
                insertRow.bind(row.time)
                for value in row.values { insertRow.bind(value) }
                insertRow.bind(blockID)
                insertRow.bind(Int64(slot))
                try insertRow.step()
                guard sqlite3_changes(connection) == 1 else {
                    duplicates += 1
                    continue
                }
                if let commandLine = row.commandLine {
                    search.bind(sqlite3_last_insert_rowid(connection))
                    search.bind(commandLine)
                    try search.step()
                }
                lines.append(row.line)
                let before = seen[row.host] ?? (row.time, row.time, 0)
                seen[row.host] = (min(before.first, row.time), max(before.last, row.time), before.count + 1)
                if row.health != nil { heartbeats.append(row) }
                rollups.add(row)
            }
            if duplicates > 0 {
                // Events stored before: the block keeps their lines (nothing points at them) until
                // no event of it is left.
                if duplicates == Int64(block.count) {
                    try db.execute(sql: "DELETE FROM event_block WHERE id = ?", arguments: [blockID])
                } else {
                    try db.execute(sql: "UPDATE event_block SET events = events - ? WHERE id = ?", arguments: [duplicates, blockID])
                }
            }
        }
        for (name, figures) in seen where registry {
            try host.execute(arguments: [name, figures.first, figures.last, figures.count])
        }
        for row in heartbeats where registry {
            guard let figures = row.health else { continue }
            try health.execute(arguments: StatementArguments(figures.values.map(\.databaseValue) + [row.time, row.host, row.time]))
        }
        try store(rollups, into: db)
        lines.sort()
        return lines
    }

    /// Adds a batch's rollup counts to the stored ones.
    private static func store(_ rollups: Rollups, into db: Database) throws {
        for table in rollups.tables {
            let count = table.countColumn
            var upsert = try RawStatement(
                db,
                try db.cachedStatement(
                    sql: """
                        INSERT INTO \(table.name) (\(table.columns.joined(separator: ", "))) VALUES (\(table.columns.map { _ in "?" }.joined(separator: ", ")))
                        ON CONFLICT DO UPDATE SET \(count) = \(count) + excluded.\(count), first_time = min(first_time, excluded.first_time),
                            last_time = max(last_time, excluded.last_time)
                        """))
            for row in table.rows {
                for value in row { upsert.bind(value) }
                try upsert.step()
            }
        }
    }

    /// Stores alerts (each once, by id); returns how many were new.
    @discardableResult
    public func store(alerts: [StoredAlert]) throws -> Int {
        guard !alerts.isEmpty else { return 0 }
        return try pool.write { db in
            let insert = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO alert_store (id, host, time, rule_id, rule_title, level, severity, correlation,
                        entity_id, pid, executable, command_line, user_name, event_ids, tags, stored_at, json)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            var stored = 0
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for alert in alerts {
                try insert.execute(arguments: [
                    alert.id, alert.host, alert.time, alert.ruleID, alert.ruleTitle, alert.level, alert.severity,
                    alert.correlation, alert.entityID, alert.pid, alert.executable, alert.commandLine, alert.userName,
                    alert.eventIDs.joined(separator: ","), alert.tags.joined(separator: ","), now, alert.json,
                ])
                stored += db.changesCount
            }
            return stored
        }
    }

    /// Inserts or replaces responses by id, in one transaction.
    public func record(responses: [StoredResponse]) async throws {
        guard !responses.isEmpty else { return }
        try await pool.write { db in
            let columns = StoredResponse.columns
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO response_store (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))
                    ON CONFLICT(id) DO UPDATE SET \(columns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
                    """)
            for response in responses {
                try insert.execute(arguments: StatementArguments(response.values.map(\.databaseValue)))
            }
        }
    }

    /// Sets status, detail and time of change of the response that sent command `commandID`
    /// (every one, should several share it); false when none has it.
    @discardableResult
    public func updateResponse(commandID: String, status: String, detail: String?, time: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE response_store SET status = ?, detail = ?, updated = ? WHERE command_id = ?",
                arguments: [status, detail, time, commandID])
            return db.changesCount > 0
        }
    }

    /// Saves a hunt (a named query), replacing one of the same name. The query must pass the same
    /// checks as any other (one reading statement over the views).
    public func save(_ hunt: Hunt) throws {
        guard !hunt.name.isEmpty, hunt.name.utf8.allSatisfy({ Hunt.nameBytes.contains($0) }) else {
            throw QueryError.refused("hunt name '\(hunt.name)': use letters, digits, '-' and '_'")
        }
        try QueryGuard.check(hunt.sql)
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO hunt_store (name, sql, description, hosts, saved_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET sql = excluded.sql, description = excluded.description,
                        hosts = excluded.hosts, saved_at = excluded.saved_at
                    """,
                arguments: [hunt.name, hunt.sql, hunt.description, hunt.hosts, Int64(Date().timeIntervalSince1970 * 1000)])
        }
    }

    /// Every saved hunt, by name.
    public func hunts() throws -> [Hunt] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, sql, description, hosts FROM hunt_store ORDER BY name").map {
                Hunt(name: $0["name"], sql: $0["sql"], description: $0["description"], hosts: $0["hosts"])
            }
        }
    }


    /// Deletes a hunt; false when there was none of that name.
    @discardableResult
    public func deleteHunt(named name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM hunt_store WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    /// Hosts whose newest event is older than `cutoff` (milliseconds since the epoch): name and
    /// the newest event's time.
    public func hosts(silentSince cutoff: Int64) throws -> [(name: String, lastSeen: Int64)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, last_seen FROM host_store WHERE last_seen IS NOT NULL AND last_seen < ?", arguments: [cutoff])
                .map { ($0["name"], $0["last_seen"]) }
        }
    }

    /// Runs one read-only query over the documented views, scoped and bounded (see `QueryGuard`).
    public func query(_ sql: String, options: QueryOptions = QueryOptions()) throws -> QueryResult {
        try QueryGuard.check(sql)
        let registry = !options.hosts.needsRegistry ? [] : try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, tags FROM host_store ORDER BY name").map { (name: $0["name"] as String, tagText: $0["tags"] as String?) }
        }
        let hosts = options.hosts.resolved(registry: registry)
        let scoped = QueryGuard.scoped(sql, options: options, hosts: hosts)
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let blocks = blocks
        configuration.prepareDatabase { db in db.add(function: Self.eventJSON(blocks)) }
        let reader = try DatabaseQueue(path: path, configuration: configuration)
        let timer = DispatchWorkItem { reader.interrupt() }
        DispatchQueue.global().asyncAfter(deadline: .now() + options.timeoutSeconds, execute: timer)
        defer { timer.cancel() }
        do {
            return try reader.read { db in
                let statement = try db.makeStatement(sql: scoped.sql)
                guard statement.isReadonly else { throw QueryError.refused("only queries that read are allowed") }
                statement.arguments = StatementArguments(scoped.arguments.map(\.databaseValue))
                var result = QueryResult(columns: statement.columnNames, rows: [], truncated: false)
                let rows = try Row.fetchCursor(statement)
                while let row = try rows.next() {
                    if result.rows.count == options.limit {
                        result.truncated = true
                        break
                    }
                    result.rows.append(row.databaseValues.map(QueryValue.init))
                }
                return result
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_INTERRUPT {
            throw QueryError.timedOut(options.timeoutSeconds)
        } catch let error as DatabaseError {
            throw QueryError.invalid(error.message ?? "\(error)")
        }
    }
}

/// An alert as stored: the detection engine's alert in columns, and its JSON.
public struct StoredAlert: Sendable {
    public var id: String
    public var host: String
    public var time: Int64
    public var ruleID: String
    public var ruleTitle: String
    public var level: String
    public var severity: Int
    public var correlation: String?
    public var entityID: String?
    public var pid: Int64?
    public var executable: String?
    public var commandLine: String?
    public var userName: String?
    public var eventIDs: [String]
    public var tags: [String]
    public var json: String

    public init(
        id: String, host: String, time: Int64, ruleID: String, ruleTitle: String, level: String, severity: Int,
        correlation: String?, entityID: String?, pid: Int64?, executable: String?, commandLine: String?, userName: String?,
        eventIDs: [String], tags: [String], json: String
    ) {
        self.id = id
        self.host = host
        self.time = time
        self.ruleID = ruleID
        self.ruleTitle = ruleTitle
        self.level = level
        self.severity = severity
        self.correlation = correlation
        self.entityID = entityID
        self.pid = pid
        self.executable = executable
        self.commandLine = commandLine
        self.userName = userName
        self.eventIDs = eventIDs
        self.tags = tags
        self.json = json
    }
}

/// A saved hunt: a named read-only query over the views, with the hosts it looks at by default.
public struct Hunt: Sendable, Equatable {
    public var name: String
    public var sql: String
    public var description: String?
    /// A host scope (`all`, names separated by commas); nil means all.
    public var hosts: String?

    public init(name: String, sql: String, description: String? = nil, hosts: String? = nil) {
        self.name = name
        self.sql = sql
        self.description = description
        self.hosts = hosts
    }

    static let nameBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_".utf8)

    /// The hunts every store starts with: the questions a response usually begins with.
    public static let defaults: [Hunt] = [
        Hunt(
            name: "host-timeline", sql: "SELECT timestamp, host, action, pid, executable, command_line, user_name FROM events ORDER BY time DESC",
            description: "what happened on a host, newest first (run with --hosts and --since)"),
        Hunt(
            name: "programs-across-fleet",
            sql: "SELECT executable, count(DISTINCT host) AS hosts, sum(runs) AS runs FROM process_pairs GROUP BY executable ORDER BY hosts DESC, runs DESC",
            description: "every program started, on how many hosts and how often"),
        Hunt(
            name: "rare-parent-child",
            sql: "SELECT parent_executable AS parent, executable AS child, sum(runs) AS runs, count(DISTINCT host) AS hosts FROM process_pairs GROUP BY parent_executable, executable HAVING sum(runs) <= 2 ORDER BY runs, hosts",
            description: "parent → child program pairs seen at most twice: the unusual ones"),
        Hunt(
            name: "outbound-destinations",
            sql: "SELECT host, destination_ip, destination_port, sum(connections) AS connections FROM connections GROUP BY host, destination_ip, destination_port ORDER BY connections DESC",
            description: "where hosts connect to, by host (run with --hosts for a group)"),
        Hunt(
            name: "logins-by-user",
            sql: "SELECT user_name, outcome, count(*) AS attempts, count(DISTINCT host) AS hosts FROM logins WHERE action IN ('user-login', 'user-authenticated') GROUP BY user_name, outcome ORDER BY attempts DESC",
            description: "logins and authentication by account and outcome"),
        Hunt(
            name: "recent-alerts", sql: "SELECT timestamp, host, level, rule_title, executable, command_line FROM alerts ORDER BY time DESC",
            description: "alerts, newest first"),
    ]
}

// The synchronous methods above witness the protocol's async requirements.
extension EventStore {
    public func register(hosts: [String: HostTags]) async throws {
        try await pool.write { db in
            let statement = try db.cachedStatement(
                sql: "INSERT INTO host_store (name, tags) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET tags = excluded.tags")
            for (name, tags) in hosts { try statement.execute(arguments: [name, tags.isEmpty ? nil : tags.tagText]) }
        }
    }

    /// SQLite keeps one table; a day is dropped by deleting its rows through the time index.
    @discardableResult
    public func dropDays(before cutoff: Int64) async throws -> Int {
        let day = UTCDay.milliseconds
        let boundary = UTCDay.of(cutoff) * day
        return try await pool.write { db in
            let days = try Int.fetchOne(
                db, sql: "SELECT count(DISTINCT time / ?) FROM event_store WHERE time < ?", arguments: [day, boundary]) ?? 0
            // The search index first: an external-content index is told what each row held.
            try db.execute(
                sql: """
                    INSERT INTO command_search (command_search, rowid, command_line)
                        SELECT 'delete', rowid, command_line FROM event_store WHERE time < ? AND command_line IS NOT NULL
                    """, arguments: [boundary])
            // Blocks lose the documents of the events dropped; a block with none left goes.
            let perBlock = try Row.fetchAll(
                db, sql: "SELECT block, count(*) FROM event_store WHERE time < ? GROUP BY block", arguments: [boundary])
            let release = try db.cachedStatement(sql: "UPDATE event_block SET events = events - ? WHERE id = ?")
            for row in perBlock { try release.execute(arguments: [row[1] as Int64, row[0] as Int64]) }
            try db.execute(sql: "DELETE FROM event_block WHERE events <= 0")
            try db.execute(sql: "DELETE FROM event_store WHERE time < ?", arguments: [boundary])
            try db.execute(sql: "DELETE FROM process_rollup WHERE day < ?", arguments: [boundary / day])
            try db.execute(sql: "DELETE FROM connection_rollup WHERE day < ?", arguments: [boundary / day])
            try db.execute(sql: "DELETE FROM alert_store WHERE time < ?", arguments: [boundary])
            try db.execute(sql: "DELETE FROM response_store WHERE time < ?", arguments: [boundary])
            return days
        }
    }
}

extension ColumnValue {
    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let number): number.databaseValue
        case .real(let number): number.databaseValue
        case .text(let text): text.databaseValue
        }
    }
}
