import Foundation
import GRDB

/// Every event of the fleet in one SQLite database (WAL), de-duplicated by `event.id`, with the
/// fields people filter on in columns of their own and the whole ECS document beside them.
///
/// Writes go through `ingest`, one transaction per batch: when it returns, the batch is on disk
/// (what an HTTP or NATS ingest acknowledges). Reads go through `query` (see `QueryGuard`).
public final class EventStore: Sendable {
    public let path: String
    private let pool: DatabasePool

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
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
        return migrator
    }

    public struct IngestResult: Sendable, Equatable {
        public var inserted = 0
        /// Events already stored (same `event.id`).
        public var duplicates = 0
        /// Lines that are not ECS events: (line number from 1, reason). Nothing of them is stored.
        public var rejected: [Rejection] = []
        public init() {}
    }

    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// Parses a batch of ECS JSON lines; when `allOrNothing`, a batch with a bad line stores nothing.
    public func ingest(lines: [Substring], allOrNothing: Bool = false) throws -> IngestResult {
        var result = IngestResult()
        var rows: [StoredEvent] = []
        for (index, line) in lines.enumerated() where !line.allSatisfy(\.isWhitespace) {
            do {
                rows.append(try StoredEvent(json: line))
            } catch {
                result.rejected.append(Rejection(line: index + 1, reason: "\(error)"))
            }
        }
        if allOrNothing && !result.rejected.isEmpty { return result }
        let (inserted, duplicates) = try pool.write { db in try Self.insert(rows, into: db) }
        result.inserted = inserted
        result.duplicates = duplicates
        return result
    }

    /// An ISO 8601 time (`2026-11-23T10:00:00.123Z`, fraction optional) in milliseconds since the
    /// epoch, as stored.
    public static func milliseconds(iso8601 text: String) -> Int64? { StoredEvent.milliseconds(text) }

    /// An agent's batch: stored whole or not at all, and only if every event is from `host` (the
    /// host its token authenticates). Returns once the batch is on disk.
    public func ingest(lines: [Substring], host: String) async throws -> IngestResult {
        var result = IngestResult()
        var rows: [StoredEvent] = []
        for (index, line) in lines.enumerated() where !line.allSatisfy(\.isWhitespace) {
            do {
                let row = try StoredEvent(json: line)
                guard row.host == host else {
                    throw StoredEvent.Invalid(description: "host.name '\(row.host)' is not the token's host '\(host)'")
                }
                rows.append(row)
            } catch {
                result.rejected.append(Rejection(line: index + 1, reason: "\(error)"))
            }
        }
        guard result.rejected.isEmpty else { return result }
        let batch = rows
        let (inserted, duplicates) = try await pool.write { db in try Self.insert(batch, into: db) }
        result.inserted = inserted
        result.duplicates = duplicates
        return result
    }

    /// Inserts rows not stored yet and counts hosts; returns (inserted, duplicates).
    private static func insert(_ rows: [StoredEvent], into db: Database) throws -> (Int, Int) {
        let insert = try db.cachedStatement(
            sql: """
                INSERT OR IGNORE INTO event_store (id, host, time, kind, action, category, outcome, module, pid, executable,
                    command_line, entity_id, parent_entity_id, user_name, source_ip, destination_ip, destination_port,
                    file_path, tags, json)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let host = try db.cachedStatement(
            sql: """
                INSERT INTO host_store (name, first_seen, last_seen, events, profile) VALUES (?, ?, ?, 1, ?)
                ON CONFLICT(name) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen),
                    first_seen = min(first_seen, excluded.first_seen), events = events + 1,
                    profile = coalesce(excluded.profile, profile)
                """)
        var inserted = 0
        var duplicates = 0
        for row in rows {
            try insert.execute(arguments: row.arguments)
            if db.changesCount == 1 {
                inserted += 1
                try host.execute(arguments: [row.host, row.time, row.time, row.profile])
            } else {
                duplicates += 1
            }
        }
        return (inserted, duplicates)
    }

    /// Runs one read-only query over the documented views, scoped and bounded (see `QueryGuard`).
    public func query(_ sql: String, options: QueryOptions = QueryOptions()) throws -> QueryResult {
        try QueryGuard.check(sql)
        let scoped = QueryGuard.scoped(sql, options: options)
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let reader = try DatabaseQueue(path: path, configuration: configuration)
        let timer = DispatchWorkItem { reader.interrupt() }
        DispatchQueue.global().asyncAfter(deadline: .now() + options.timeoutSeconds, execute: timer)
        defer { timer.cancel() }
        do {
            return try reader.read { db in
                let statement = try db.makeStatement(sql: scoped.sql)
                guard statement.isReadonly else { throw QueryError.refused("only queries that read are allowed") }
                statement.arguments = StatementArguments(scoped.arguments)
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

/// One row of `event_store`, read from an ECS JSON line.
struct StoredEvent: Sendable {
    var id: String
    var host: String
    var time: Int64
    var profile: String?
    var arguments: StatementArguments

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(json line: Substring) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw Invalid(description: "not a JSON object")
        }
        func map(_ key: String, in parent: [String: Any]? = nil) -> [String: Any]? { (parent ?? object)[key] as? [String: Any] }
        let event = map("event")
        guard let host = map("host")?["name"] as? String, !host.isEmpty else {
            throw Invalid(description: "no host.name (for logs without node=, replay with --host-name)")
        }
        guard let stamp = object["@timestamp"] as? String, let time = Self.milliseconds(stamp) else {
            throw Invalid(description: "no valid @timestamp")
        }
        // Events from `herdwatch replay` have no event.id: the audit event's own identity (host,
        // time, serial) is as stable, so importing a log twice stores it once.
        let sequence = (event?["sequence"] as? Int).map { "\(host)-\(time)-\($0)" }
        guard let id = event?["id"] as? String ?? sequence, !id.isEmpty else {
            throw Invalid(description: "no event.id (and no event.sequence to make one from)")
        }
        self.id = id
        self.host = host
        self.time = time
        let process = map("process")
        profile = (map("agent", in: map("herdwatch"))?["profile"] as? String)
        func joined(_ value: Any?) -> String? { (value as? [Any]).map { $0.map { "\($0)" }.joined(separator: ",") } }
        let values: [(any DatabaseValueConvertible)?] = [
            id, host, time, event?["kind"] as? String, event?["action"] as? String, joined(event?["category"]),
            event?["outcome"] as? String, event?["module"] as? String, process?["pid"] as? Int,
            process?["executable"] as? String, process?["command_line"] as? String, process?["entity_id"] as? String,
            map("parent", in: process)?["entity_id"] as? String, map("user")?["name"] as? String,
            map("source")?["ip"] as? String, map("destination")?["ip"] as? String, map("destination")?["port"] as? Int,
            map("file")?["path"] as? String, joined(object["tags"]), String(line),
        ]
        arguments = StatementArguments(values)
    }

    /// `2026-11-23T10:00:00.123Z` (or without the fraction) to milliseconds since the epoch.
    static func milliseconds(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map { Int64($0.timeIntervalSince1970 * 1000) }
    }
}
