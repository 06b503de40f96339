import Foundation
import HerdwatchEvents
import Logging
import PostgresNIO

/// Every event of the fleet in PostgreSQL: the same tables, views and behaviour as `EventStore`
/// (SQLite), for fleets that outgrow one file or want several servers on one database.
///
/// Events and alerts are partitioned by UTC day (`event_store_20261123`, `alert_store_20261123`),
/// each partition created when the first event of its day arrives; `dropDays(before:)` is the
/// retention: it drops whole days (and deletes the responses of those days from their one table). An event is stored once per `event.id`: the unique key is
/// (`id`, `time`), since a unique key of a partitioned table must hold the partition column, and an
/// event's time is part of its identity (every delivery of it carries the same `@timestamp`, and
/// `replay`'s ids are made of host, time and serial). The same id with another time would be
/// stored twice; within one batch the first line of an id wins, as in SQLite.
///
/// `open` connects (the pool runs in a task of the store's own until `close()` or the store goes
/// away) and creates or updates the schema, safely with several servers at once.
public final class PostgresStore: FleetStore {
    public let configuration: Configuration
    private let client: PostgresClient
    private let logger: Logger
    private let partitions = PartitionCache()
    /// Runs the connection pool (postgres-nio's `PostgresClient.run()`).
    private let pool: Task<Void, Never>

    /// `postgres://user@host:port/database` (never the password).
    public var location: String { "postgres://\(configuration.redacted)" }

    init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let client = PostgresClient(configuration: configuration.client, backgroundLogger: logger)
        self.client = client
        pool = Task { await client.run() }
    }

    deinit { pool.cancel() }

    /// Connects to the store at `configuration` and prepares its schema.
    public static func open(_ configuration: Configuration, logger: Logger = Logger(label: "herdwatch.store.postgres")) async throws
        -> PostgresStore
    {
        // The pool's task starts now; meanwhile one connection of our own: the pool retries in
        // silence for a minute, this says at once why it cannot connect.
        let store = PostgresStore(configuration: configuration, logger: logger)
        do {
            do {
                let connection = try await PostgresConnection.connect(configuration: try configuration.connection(), id: 0, logger: logger)
                try? await connection.close()
            } catch {
                throw PostgresStoreError(operation: "connect", configuration: configuration, error: error)
            }
            try await store.prepare()
        } catch {
            store.close()
            throw error
        }
        return store
    }

    /// Connects to the store at a `postgres://user@host:port/database` URL and prepares its schema.
    public static func open(url: String, logger: Logger = Logger(label: "herdwatch.store.postgres")) async throws -> PostgresStore {
        try await open(try Configuration(url: url), logger: logger)
    }

    /// Closes the connections; the store cannot be used afterwards.
    public func close() { pool.cancel() }

    /// Opens the store, runs `body` with it, and closes it.
    public static func withStore<Result: Sendable>(
        _ configuration: Configuration, logger: Logger = Logger(label: "herdwatch.store.postgres"),
        _ body: @Sendable (PostgresStore) async throws -> Result
    ) async throws -> Result {
        let store = try await open(configuration, logger: logger)
        defer { store.close() }
        return try await body(store)
    }

    // MARK: Schema

    /// Creates the tables, indexes, functions and default hunts that are missing (idempotent; one
    /// server at a time through an advisory lock).
    public func prepare() async throws {
        try await transaction("prepare the schema") { connection in
            try await self.lock(connection)
            let newHunts = try await connection.query("SELECT to_regclass('hunt_store') IS NULL", logger: self.logger)
                .collect().first.map { try $0.decode(Bool.self) } ?? false
            for statement in PostgresSchema.statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
            }
            // Defaults nobody changed follow the release (saved hunts have their time).
            for hunt in Hunt.defaults {
                try await connection.query(
                    "UPDATE hunt_store SET sql = \(hunt.sql) WHERE name = \(hunt.name) AND saved_at = 0", logger: self.logger)
            }
            if newHunts {
                for hunt in Hunt.defaults {
                    try await connection.query(
                        "INSERT INTO hunt_store (name, sql, description, hosts, saved_at) VALUES (\(hunt.name), \(hunt.sql), \(hunt.description), \(hunt.hosts), 0) ON CONFLICT (name) DO NOTHING",
                        logger: self.logger)
                }
            }
        }
        logger.debug("schema ready", metadata: ["database": "\(configuration.database)"])
    }

    /// Serialises schema changes (tables, partitions) between the servers sharing the database.
    private func lock(_ connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey))", logger: logger)
    }

    /// Creates the day partitions of `table` for these times that do not exist yet, in their own
    /// transaction (never inside an ingest: creating a partition locks the parent table).
    private func ensurePartitions(of table: PostgresSchema.PartitionedTable, times: some Sequence<Int64>) async throws {
        let days = Set(times.map(UTCDay.of))
        let missing = await partitions.missing(days.map { table.partition(day: $0) })
        guard !missing.isEmpty else { return }
        try await transaction("create partitions of \(table.rawValue)") { connection in
            try await self.lock(connection)
            for day in days.sorted() where missing.contains(table.partition(day: day)) {
                try await connection.query(PostgresQuery(unsafeSQL: table.createPartition(day: day)), logger: self.logger)
            }
        }
        await partitions.insert(missing)
        logger.debug("partitions ready", metadata: ["table": "\(table.rawValue)", "partitions": "\(missing.sorted())"])
    }

    /// Drops the day partitions of events and alerts that end at or before `cutoff` (milliseconds
    /// since the epoch): the whole UTC days before the day of `cutoff`; and deletes the responses
    /// of those days (one table, not partitioned). Returns how many days of events were dropped (as
    /// SQLite counts them).
    @discardableResult
    public func dropDays(before cutoff: Int64) async throws -> Int {
        let names = try await partitionNames()
        let old = names.filter { name in
            PostgresSchema.day(ofPartition: name).map { ($0 + 1) * UTCDay.milliseconds <= cutoff } ?? false
        }
        let boundary = UTCDay.of(cutoff) * UTCDay.milliseconds
        let responses = try await transaction("drop days before \(cutoff)") { connection in
            try await self.lock(connection)
            var responses = 0
            for try await _ in try await connection.query("DELETE FROM response_store WHERE time < \(boundary) RETURNING id", logger: self.logger) {
                responses += 1
            }
            for name in old.sorted() {
                try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(name)"), logger: self.logger)
            }
            let day = boundary / UTCDay.milliseconds
            try await connection.query("DELETE FROM process_rollup WHERE day < \(day)", logger: self.logger)
            try await connection.query("DELETE FROM connection_rollup WHERE day < \(day)", logger: self.logger)
            return responses
        }
        guard !old.isEmpty else { return 0 }
        await partitions.remove(old)
        logger.info("dropped days", metadata: ["before": "\(cutoff)", "partitions": "\(old.sorted())", "responses": "\(responses)"])
        return old.filter { $0.hasPrefix(PostgresSchema.PartitionedTable.events.rawValue + "_") }.count
    }

    /// The day partitions that exist now, oldest first (`event_store_20261123`, …).
    public func partitionNames() async throws -> [String] {
        try await transaction("list partitions") { connection in
            var names: [String] = []
            let rows = try await connection.query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent IN ('event_store'::regclass, 'alert_store'::regclass) ORDER BY c.relname",
                logger: self.logger)
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        }
    }

    // MARK: Ingest

    /// Parses a batch of ECS JSON lines; when `allOrNothing`, a batch with a bad line stores nothing.
    /// Returns once the batch is committed.
    public func ingest(lines: [Substring], allOrNothing: Bool = false) async throws -> IngestResult {
        let (rows, rejected) = StoredEvent.parse(lines)
        var result = IngestResult()
        result.rejected = rejected
        if allOrNothing && !rejected.isEmpty { return result }
        try await insert(rows, into: &result)
        return result
    }

    /// Stores the events of a batch parsed before; its rejected lines are only reported.
    /// Returns once they are committed.
    public func ingest(_ batch: ParsedBatch) async throws -> IngestResult {
        var result = IngestResult()
        result.rejected = batch.rejected
        try await insert(batch.rows, into: &result)
        return result
    }

    private func insert(_ parsed: [StoredEvent], into result: inout IngestResult) async throws {
        let (rows, repeats) = StoredEvent.firstOfEachID(parsed)
        guard !rows.isEmpty else {
            result.duplicates = repeats
            return
        }
        try await ensurePartitions(of: .events, times: rows.map(\.time))
        let inserted: Set<String>
        do {
            inserted = try await insertTransaction(rows)
        } catch let error as PostgresStoreError where error.sqlState == PostgresSchema.noPartition {
            // A partition this server knew was dropped meanwhile (retention on another server).
            await partitions.removeAll()
            try await ensurePartitions(of: .events, times: rows.map(\.time))
            inserted = try await insertTransaction(rows)
        }
        result.inserted = inserted.count
        result.duplicates = repeats + rows.count - inserted.count
        result.insertedLines = rows.filter { inserted.contains($0.id) }.map(\.line)
    }

    /// One transaction: the new events (one statement for the batch), then their hosts.
    private func insertTransaction(_ rows: [StoredEvent]) async throws -> Set<String> {
        try await transaction("store \(rows.count) events") { connection in
            var binds = PostgresBindings(capacity: StoredEvent.columns.count + 1)
            binds.append(ColumnArray(kind: .text, values: rows.map { .text($0.id) }))
            binds.append(ColumnArray(kind: .text, values: rows.map { .text($0.host) }))
            binds.append(ColumnArray(kind: .integer, values: rows.map { .integer($0.time) }))
            for (index, column) in StoredEvent.columns.dropFirst(3).enumerated() {
                binds.append(
                    ColumnArray(kind: PostgresSchema.integerColumns.contains(column) ? .integer : .text, values: rows.map { $0.values[index] }))
            }
            binds.append(ColumnArray(kind: .text, values: rows.map { .text(String($0.json)) }))
            var inserted = Set<String>()
            let stream = try await connection.query(PostgresQuery(unsafeSQL: PostgresSchema.insertEvents, binds: binds), logger: self.logger)
            for try await id in stream.decode(String.self) { inserted.insert(id) }
            let new = rows.filter { inserted.contains($0.id) }
            let hosts = HostCounts(new)
            if !hosts.names.isEmpty {
                var hostBinds = PostgresBindings(capacity: 4)
                hostBinds.append(ColumnArray(kind: .text, values: hosts.names.map { .text($0) }))
                hostBinds.append(ColumnArray(kind: .integer, values: hosts.firstSeen.map { .integer($0) }))
                hostBinds.append(ColumnArray(kind: .integer, values: hosts.lastSeen.map { .integer($0) }))
                hostBinds.append(ColumnArray(kind: .integer, values: hosts.events.map { .integer($0) }))
                try await connection.query(PostgresQuery(unsafeSQL: PostgresSchema.upsertHosts, binds: hostBinds), logger: self.logger)
            }
            var rollups = Rollups()
            for row in new { rollups.add(row) }
            for table in rollups.tables {
                var binds = PostgresBindings(capacity: table.columns.count)
                for (index, column) in table.columns.enumerated() {
                    binds.append(
                        ColumnArray(kind: PostgresSchema.rollupIntegerColumns.contains(column) ? .integer : .text, values: table.rows.map { $0[index] }))
                }
                try await connection.query(PostgresQuery(unsafeSQL: PostgresSchema.upsertRollup(table), binds: binds), logger: self.logger)
            }
            // Heartbeats: few per batch, each its own update (an older one arriving late changes nothing).
            for row in new {
                guard let health = row.health else { continue }
                var healthBinds = PostgresBindings(capacity: HostHealth.columnNames.count + 2)
                for value in health.values { healthBinds.append(value) }
                healthBinds.append(row.time)
                healthBinds.append(row.host)
                try await connection.query(PostgresQuery(unsafeSQL: PostgresSchema.updateHealth, binds: healthBinds), logger: self.logger)
            }
            return inserted
        }
    }

    /// Stores alerts (each once, by id and time); returns how many were new.
    @discardableResult
    public func store(alerts: [StoredAlert]) async throws -> Int {
        var seen = Set<String>()
        let alerts = alerts.filter { seen.insert($0.id).inserted }
        guard !alerts.isEmpty else { return 0 }
        try await ensurePartitions(of: .alerts, times: alerts.map(\.time))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let columns: [(ColumnArray.Kind, (StoredAlert) -> ColumnValue)] = [
            (.text, { .text($0.id) }), (.text, { .text($0.host) }), (.integer, { .integer($0.time) }),
            (.text, { .text($0.ruleID) }), (.text, { .text($0.ruleTitle) }), (.text, { .text($0.level) }),
            (.integer, { ColumnValue($0.severity) }), (.text, { ColumnValue($0.correlation) }), (.text, { ColumnValue($0.entityID) }),
            (.integer, { $0.pid.map { .integer($0) } ?? .null }), (.text, { ColumnValue($0.executable) }),
            (.text, { ColumnValue($0.commandLine) }), (.text, { ColumnValue($0.userName) }),
            (.text, { .text($0.eventIDs.joined(separator: ",")) }), (.text, { .text($0.tags.joined(separator: ",")) }),
            (.integer, { _ in .integer(now) }), (.text, { .text($0.json) }),
        ]
        var binds = PostgresBindings(capacity: columns.count)
        for (kind, value) in columns { binds.append(ColumnArray(kind: kind, values: alerts.map(value))) }
        let query = PostgresQuery(unsafeSQL: PostgresSchema.insertAlerts, binds: binds)
        return try await transaction("store \(alerts.count) alerts") { connection in
            var stored = 0
            for try await _ in try await connection.query(query, logger: self.logger) { stored += 1 }
            return stored
        }
    }

    // MARK: Responses

    /// Inserts or replaces responses by id, in one statement (the last of an id in the batch wins).
    public func record(responses: [StoredResponse]) async throws {
        let responses = StoredResponse.lastOfEachID(responses)
        guard !responses.isEmpty else { return }
        var binds = PostgresBindings(capacity: StoredResponse.columns.count)
        let rows = responses.map(\.values)
        for (index, column) in StoredResponse.columns.enumerated() {
            binds.append(ColumnArray(kind: StoredResponse.integerColumns.contains(column) ? .integer : .text, values: rows.map { $0[index] }))
        }
        let query = PostgresQuery(unsafeSQL: PostgresSchema.upsertResponses, binds: binds)
        try await transaction("record \(responses.count) responses") { connection in
            try await connection.query(query, logger: self.logger)
        }
    }

    /// Sets status, detail and time of change of the response that sent command `commandID`
    /// (every one, should several share it); false when none has it.
    @discardableResult
    public func updateResponse(commandID: String, status: String, detail: String?, time: Int64) async throws -> Bool {
        var binds = PostgresBindings(capacity: 4)
        binds.append(.text(status))
        binds.append(ColumnValue(detail))
        binds.append(.integer(time))
        binds.append(.text(commandID))
        let query = PostgresQuery(unsafeSQL: PostgresSchema.updateResponse, binds: binds)
        return try await transaction("update the response of command \(commandID)") { connection in
            var updated = false
            for try await _ in try await connection.query(query, logger: self.logger) { updated = true }
            return updated
        }
    }

    // MARK: Hunts and hosts

    /// Saves a hunt (a named query), replacing one of the same name. The query must pass the same
    /// checks as any other (one reading statement over the views).
    public func save(_ hunt: Hunt) async throws {
        guard !hunt.name.isEmpty, hunt.name.utf8.allSatisfy({ Hunt.nameBytes.contains($0) }) else {
            throw QueryError.refused("hunt name '\(hunt.name)': use letters, digits, '-' and '_'")
        }
        try Self.check(hunt.sql)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await transaction("save hunt '\(hunt.name)'") { connection in
            try await connection.query(
                """
                INSERT INTO hunt_store (name, sql, description, hosts, saved_at) VALUES (\(hunt.name), \(hunt.sql), \(hunt.description), \(hunt.hosts), \(now))
                ON CONFLICT (name) DO UPDATE SET sql = excluded.sql, description = excluded.description, hosts = excluded.hosts, saved_at = excluded.saved_at
                """,
                logger: self.logger)
        }
    }

    /// Every saved hunt, by name.
    public func hunts() async throws -> [Hunt] {
        try await transaction("read hunts") { connection in
            var hunts: [Hunt] = []
            let rows = try await connection.query("SELECT name, sql, description, hosts FROM hunt_store ORDER BY name", logger: self.logger)
            for try await (name, sql, description, hosts) in rows.decode((String, String, String?, String?).self) {
                hunts.append(Hunt(name: name, sql: sql, description: description, hosts: hosts))
            }
            return hunts
        }
    }

    /// Deletes a hunt; false when there was none of that name.
    @discardableResult
    public func deleteHunt(named name: String) async throws -> Bool {
        try await transaction("delete hunt '\(name)'") { connection in
            var deleted = false
            for try await _ in try await connection.query("DELETE FROM hunt_store WHERE name = \(name) RETURNING name", logger: self.logger) {
                deleted = true
            }
            return deleted
        }
    }

    /// Sets the tags of hosts (name → tags), known before they send anything; other hosts keep theirs.
    public func register(hosts: [String: HostTags]) async throws {
        guard !hosts.isEmpty else { return }
        let sorted = hosts.sorted { $0.key < $1.key }
        var binds = PostgresBindings(capacity: 2)
        binds.append(ColumnArray(kind: .text, values: sorted.map { .text($0.key) }))
        binds.append(ColumnArray(kind: .text, values: sorted.map { $0.value.isEmpty ? .null : .text($0.value.tagText) }))
        try await transaction("register \(hosts.count) hosts") { connection in
            try await connection.query(PostgresQuery(unsafeSQL: PostgresSchema.registerHosts, binds: binds), logger: self.logger)
        }
    }

    /// Hosts whose newest event is older than `cutoff` (milliseconds since the epoch): name and
    /// the newest event's time.
    public func hosts(silentSince cutoff: Int64) async throws -> [(name: String, lastSeen: Int64)] {
        let rows = try await transaction("read hosts") { connection in
            var rows: [HostSeen] = []
            let stream = try await connection.query("SELECT name, last_seen FROM host_store WHERE last_seen IS NOT NULL AND last_seen < \(cutoff) ORDER BY name", logger: self.logger)
            for try await (name, lastSeen) in stream.decode((String, Int64).self) { rows.append(HostSeen(name: name, lastSeen: lastSeen)) }
            return rows
        }
        return rows.map { ($0.name, $0.lastSeen) }
    }

    // MARK: Queries

    /// Runs one read-only query over the documented views, scoped and bounded: `QueryGuard`'s
    /// checks (and PostgreSQL's own names), then a `READ ONLY` transaction with `statement_timeout`
    /// that is always rolled back, reading through a cursor no more than the limit (and one row to
    /// know whether there were more).
    public func query(_ sql: String, options: QueryOptions = QueryOptions()) async throws -> QueryResult {
        try Self.check(sql)
        let milliseconds = max(1, Int((options.timeoutSeconds * 1000).rounded()))
        let limit = max(0, options.limit)
        let logger = self.logger
        do {
            return try await client.withConnection { connection in
                try await connection.query("BEGIN READ ONLY", logger: logger)
                do {
                    try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(milliseconds)"), logger: logger)
                    let hosts = try await Self.hosts(in: options.hosts, on: connection, logger: logger)
                    let scoped = QueryGuard.scoped(sql, options: options, hosts: hosts, dialect: .postgres)
                    var binds = PostgresBindings(capacity: scoped.arguments.count)
                    for argument in scoped.arguments { binds.append(argument) }
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "DECLARE herdwatch_query NO SCROLL CURSOR FOR " + scoped.sql, binds: binds), logger: logger)
                    var result = QueryResult(columns: [], rows: [], truncated: false)
                    let rows = try await connection.query(PostgresQuery(unsafeSQL: "FETCH FORWARD \(limit + 1) FROM herdwatch_query"), logger: logger)
                    for try await row in rows {
                        if result.rows.count == limit {
                            result.truncated = true
                            break
                        }
                        if result.columns.isEmpty { result.columns = row.map(\.columnName) }
                        result.rows.append(row.map(QueryValue.init))
                    }
                    if result.rows.isEmpty && !result.truncated {
                        result.columns = try await Self.columns(of: sql, options: options, hosts: hosts, on: connection, logger: logger)
                    }
                    try await connection.query("ROLLBACK", logger: logger)
                    return result
                } catch {
                    do {
                        try await connection.query("ROLLBACK", logger: logger)
                    } catch {
                        // The connection is in no state to be reused.
                        try? await connection.close()
                    }
                    throw error
                }
            }
        } catch let error as PSQLError where error.code == .server {
            let state = error.serverInfo?[.sqlState]
            let message = error.serverInfo?[.message] ?? "\(error)"
            switch state {
            case "57014": throw QueryError.timedOut(options.timeoutSeconds)
            case "25006": throw QueryError.refused("\(message): queries only read")
            default: throw QueryError.invalid(message)
            }
        } catch let error as QueryError {
            throw error
        } catch {
            throw PostgresStoreError(operation: "query", configuration: configuration, error: error)
        }
    }

    /// The names a host scope stands for (nil: every host); tags are looked up in the registry.
    private static func hosts(in scope: HostScope, on connection: PostgresConnection, logger: Logger) async throws -> [String]? {
        var registry: [(name: String, tagText: String?)] = []
        if scope.needsRegistry {
            let rows = try await connection.query("SELECT name, tags FROM host_store ORDER BY name", logger: logger)
            for try await (name, tags) in rows.decode((String, String?).self) { registry.append((name, tags)) }
        }
        return scope.resolved(registry: registry)
    }

    /// The column names of a query that returned no rows: PostgreSQL sends them with the rows'
    /// description, which postgres-nio gives only with a row; an outer join on one row makes one.
    private static func columns(of sql: String, options: QueryOptions, hosts: [String]?, on connection: PostgresConnection, logger: Logger)
        async throws -> [String]
    {
        let body = sql.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: ";"))
        let scoped = QueryGuard.scoped(
            "SELECT json_object_keys(row_to_json(herdwatch_columns)) FROM (SELECT herdwatch_result.* FROM (SELECT 1) AS herdwatch_one "
                + "LEFT JOIN (\(body)) AS herdwatch_result ON true) AS herdwatch_columns",
            options: options, hosts: hosts, dialect: .postgres)
        var binds = PostgresBindings(capacity: scoped.arguments.count)
        for argument in scoped.arguments { binds.append(argument) }
        var columns: [String] = []
        for try await name in try await connection.query(PostgresQuery(unsafeSQL: scoped.sql, binds: binds), logger: logger).decode(String.self) {
            columns.append(name)
        }
        return columns
    }

    /// `QueryGuard.check`, and PostgreSQL's names that reach past the views: its catalogs and
    /// administration functions (`pg_…`), the day partitions, schema names, and the functions that
    /// run SQL given as text (`query_to_xml` and the like), which no text check could look into.
    public static func check(_ sql: String) throws(QueryError) {
        try QueryGuard.check(sql)
        let views = QueryGuard.views.map(\.name).joined(separator: ", ")
        for token in QueryGuard.tokenize(sql) {
            let name = token.lowercased()
            if name.hasPrefix("event_store_") || name.hasPrefix("alert_store_") || name == "herdwatch_query" {
                throw .refused("'\(name)' is not queryable; use the views: \(views)")
            }
            if name == "public" || name == "information_schema" || name == "pg_catalog" || name == "pg_temp" {
                throw .refused("schema names are not allowed; use the views: \(views)")
            }
            if name.hasPrefix("pg_") || name.hasPrefix("lo_") || name.contains("_to_xml") || name.hasPrefix("dblink")
                || name == "set_config" || name == "current_setting" || name == "txid_current" || name.hasPrefix("nextval")
                || name.hasPrefix("setval")
            {
                throw .refused("'\(name)' is not allowed in queries (PostgreSQL administration and catalog functions)")
            }
        }
    }

    // MARK: Transactions

    /// Runs `body` in a transaction on a pooled connection; errors say what was being done.
    @discardableResult
    private func transaction<Result: Sendable>(_ what: String, _ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: self.logger)
                do {
                    let result = try await body(connection)
                    try await connection.query("COMMIT", logger: self.logger)
                    return result
                } catch {
                    do {
                        try await connection.query("ROLLBACK", logger: self.logger)
                    } catch {
                        try? await connection.close()
                    }
                    throw error
                }
            }
        } catch let error as QueryError {
            throw error
        } catch {
            throw PostgresStoreError(operation: what, configuration: configuration, error: error)
        }
    }
}

private struct HostSeen: Sendable {
    var name: String
    var lastSeen: Int64
}

/// The hosts of a batch's new events, sorted by name (rows are locked in one order by every
/// server, so concurrent batches cannot deadlock): first and last time, count.
private struct HostCounts {
    var names: [String] = []
    var firstSeen: [Int64] = []
    var lastSeen: [Int64] = []
    var events: [Int64] = []

    init(_ rows: [StoredEvent]) {
        var hosts: [String: (first: Int64, last: Int64, events: Int64)] = [:]
        for row in rows {
            var host = hosts[row.host] ?? (row.time, row.time, 0)
            host.first = min(host.first, row.time)
            host.last = max(host.last, row.time)
            host.events += 1
            hosts[row.host] = host
        }
        for (name, host) in hosts.sorted(by: { $0.key < $1.key }) {
            names.append(name)
            firstSeen.append(host.first)
            lastSeen.append(host.last)
            events.append(host.events)
        }
    }
}

/// The day partitions known to exist, so that most batches skip the catalog.
private actor PartitionCache {
    private var known: Set<String> = []

    func missing(_ names: [String]) -> Set<String> { Set(names).subtracting(known) }
    func insert(_ names: Set<String>) { known.formUnion(names) }
    func remove(_ names: [String]) { known.subtract(names) }
    func removeAll() { known.removeAll() }
}

/// A PostgreSQL operation that failed: what the store was doing, where, and what the server said.
public struct PostgresStoreError: Error, CustomStringConvertible {
    /// What the store was doing (`store 500 events`, `prepare the schema`, …).
    public var operation: String
    /// `user@host:port/database`, without the password.
    public var database: String
    /// The SQLSTATE code, when the server answered (`42P01`, …).
    public var sqlState: String?
    /// The server's message, or the client's error.
    public var message: String

    init(operation: String, configuration: PostgresStore.Configuration, error: any Error) {
        self.operation = operation
        database = configuration.redacted
        if let error = error as? PostgresStoreError {
            sqlState = error.sqlState
            message = error.message
        } else if let error = error as? PSQLError {
            sqlState = error.serverInfo?[.sqlState]
            if let server = error.serverInfo?[.message] {
                message = server + (error.serverInfo?[.detail].map { " (\($0))" } ?? "")
            } else {
                // PSQLError's own description hides everything (it may be logged anywhere).
                message = "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
            }
        } else {
            message = "\(error)"
        }
    }

    public var description: String {
        "PostgreSQL \(database): \(operation) failed: \(message)" + (sqlState.map { " [SQLSTATE \($0)]" } ?? "")
    }
}
