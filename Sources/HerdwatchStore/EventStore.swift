import Foundation
import GRDB
import HerdwatchEvents

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
        return migrator
    }

    public struct IngestResult: Sendable, Equatable {
        public var inserted = 0
        /// Positions (from 0) in the batch of the lines stored now, not before: what detection sees.
        public var insertedLines: [Int] = []
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
                var row = try StoredEvent(json: line)
                row.line = index
                rows.append(row)
            } catch {
                result.rejected.append(Rejection(line: index + 1, reason: "\(error)"))
            }
        }
        if allOrNothing && !result.rejected.isEmpty { return result }
        let batch = rows
        (result.inserted, result.duplicates, result.insertedLines) = try pool.write { db in try Self.insert(batch, into: db) }
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
                var row = try StoredEvent(json: line)
                row.line = index
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
        (result.inserted, result.duplicates, result.insertedLines) = try await pool.write { db in try Self.insert(batch, into: db) }
        return result
    }

    /// Inserts rows not stored yet and counts hosts; returns (inserted, duplicates, lines inserted).
    private static func insert(_ rows: [StoredEvent], into db: Database) throws -> (Int, Int, [Int]) {
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
        var lines: [Int] = []
        for row in rows {
            try insert.execute(arguments: row.arguments)
            if db.changesCount == 1 {
                inserted += 1
                lines.append(row.line)
                try host.execute(arguments: [row.host, row.time, row.time, row.profile])
            } else {
                duplicates += 1
            }
        }
        return (inserted, duplicates, lines)
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

    public func hunt(named name: String) throws -> Hunt? { try hunts().first { $0.name == name } }

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
            try Row.fetchAll(db, sql: "SELECT name, last_seen FROM host_store WHERE last_seen < ?", arguments: [cutoff])
                .map { ($0["name"], $0["last_seen"]) }
        }
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
    /// Position in its batch.
    var line = 0
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

    /// `2026-11-23T10:00:00.123Z` (fraction optional, `Z` or an offset) to milliseconds since the epoch.
    static func milliseconds(_ text: String) -> Int64? { CivilTime.milliseconds(iso8601: text) }
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
            sql: "SELECT executable, count(DISTINCT host) AS hosts, count(*) AS runs FROM processes WHERE action = 'process-started' GROUP BY executable ORDER BY hosts DESC, runs DESC",
            description: "every program started, on how many hosts and how often"),
        Hunt(
            name: "rare-parent-child",
            sql: "SELECT json_extract(json, '$.process.parent.executable') AS parent, executable AS child, count(*) AS runs, count(DISTINCT host) AS hosts FROM processes WHERE action = 'process-started' GROUP BY parent, child HAVING runs <= 2 ORDER BY runs, hosts",
            description: "parent → child program pairs seen at most twice: the unusual ones"),
        Hunt(
            name: "outbound-destinations",
            sql: "SELECT host, destination_ip, destination_port, count(*) AS connections FROM network WHERE action = 'network-connected' GROUP BY host, destination_ip, destination_port ORDER BY connections DESC",
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
