import Foundation
import HerdwatchEvents

/// The PostgreSQL schema: the same tables as SQLite's, with events and alerts partitioned by day
/// (responses are few and change after they are stored: one table, retention deletes rows).
enum PostgresSchema {
    /// The advisory lock that serialises schema changes between servers ("Hwatch").
    static let lockKey: Int64 = 0x4877_6174_6368
    /// SQLSTATE of a row for which no partition exists (check_violation: "no partition of relation … found for row").
    static let noPartition = "23514"

    /// `event_store` columns that hold integers (all others text, and `json` JSON).
    static let integerColumns: Set<String> = ["time", "pid", "destination_port"]

    enum PartitionedTable: String {
        case events = "event_store"
        case alerts = "alert_store"

        /// `event_store_20261123` for the day (days since the epoch) of 2026-11-23.
        func partition(day: Int64) -> String {
            let civil = CivilTime(secondsSinceEpoch: day * 86_400)
            func padded(_ value: Int64, _ width: Int) -> String {
                let text = String(value)
                return String(repeating: "0", count: max(0, width - text.count)) + text
            }
            return "\(rawValue)_\(padded(civil.year, 4))\(padded(civil.month, 2))\(padded(civil.day, 2))"
        }

        func createPartition(day: Int64) -> String {
            "CREATE TABLE IF NOT EXISTS \(partition(day: day)) PARTITION OF \(rawValue) FOR VALUES FROM (\(day * UTCDay.milliseconds)) TO (\((day + 1) * UTCDay.milliseconds))"
        }
    }

    /// The day (since the epoch) of a partition's name, nil for other names.
    static func day(ofPartition name: String) -> Int64? {
        guard let separator = name.lastIndex(of: "_") else { return nil }
        let digits = name[name.index(after: separator)...]
        guard digits.count == 8, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        let text = "\(digits.prefix(4))-\(digits.dropFirst(4).prefix(2))-\(digits.suffix(2))T00:00:00Z"
        return CivilTime.milliseconds(iso8601: text).map(UTCDay.of)
    }

    /// Idempotent statements, run in order by `PostgresStore.prepare()` under the advisory lock.
    static let statements: [String] = [
        """
        CREATE TABLE IF NOT EXISTS event_store (
            id TEXT NOT NULL,
            host TEXT NOT NULL,
            time BIGINT NOT NULL,
            kind TEXT, action TEXT, category TEXT, outcome TEXT, module TEXT,
            pid BIGINT, executable TEXT, command_line TEXT, entity_id TEXT, parent_entity_id TEXT, parent_executable TEXT,
            user_name TEXT, source_ip TEXT, destination_ip TEXT, destination_port BIGINT, file_path TEXT,
            tags TEXT, json JSON NOT NULL,
            UNIQUE (id, time)
        ) PARTITION BY RANGE (time)
        """,
        // Indexes on the partitioned table: every day partition gets its own.
        "CREATE INDEX IF NOT EXISTS event_host_time ON event_store (host, time)",
        "CREATE INDEX IF NOT EXISTS event_time ON event_store (time)",
        "CREATE INDEX IF NOT EXISTS event_action_time ON event_store (action, time)",
        "CREATE INDEX IF NOT EXISTS event_entity ON event_store (entity_id)",
        "CREATE INDEX IF NOT EXISTS event_parent_entity ON event_store (parent_entity_id) WHERE parent_entity_id IS NOT NULL",
        // One program's, user's or destination's events anywhere in the fleet (the rollups answer
        // the fleet-wide counts; these find the events themselves).
        "CREATE INDEX IF NOT EXISTS event_executable ON event_store (executable) WHERE executable IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS event_user ON event_store (user_name) WHERE user_name IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS event_destination ON event_store (destination_ip) WHERE destination_ip IS NOT NULL",
        // Earlier releases' indexes for fleet-wide aggregates, which the rollups answer now.
        "DROP INDEX IF EXISTS event_parent_child",
        "DROP INDEX IF EXISTS event_action_executable",
        // Full text over command lines: WHERE to_tsvector('simple', command_line) @@ to_tsquery('simple', 'curl & wget').
        "CREATE INDEX IF NOT EXISTS event_command_line ON event_store USING GIN (to_tsvector('simple', command_line))",
        // The hosts registry: hosts known from the tokens file before they send anything (first and
        // last seen NULL), their tags, and their agent's figures from heartbeats.
        """
        CREATE TABLE IF NOT EXISTS host_store (
            name TEXT PRIMARY KEY,
            first_seen BIGINT, last_seen BIGINT,
            events BIGINT NOT NULL DEFAULT 0,
            tags TEXT, level TEXT, agent_version TEXT, events_per_second DOUBLE PRECISION, bytes_per_day DOUBLE PRECISION,
            rss_bytes BIGINT, cpu_percent DOUBLE PRECISION, lost_total BIGINT, health_time BIGINT
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS alert_store (
            id TEXT NOT NULL,
            host TEXT NOT NULL,
            time BIGINT NOT NULL,
            rule_id TEXT NOT NULL, rule_title TEXT NOT NULL, level TEXT NOT NULL, severity BIGINT NOT NULL,
            correlation TEXT, entity_id TEXT, pid BIGINT, executable TEXT, command_line TEXT, user_name TEXT,
            event_ids TEXT, tags TEXT, stored_at BIGINT NOT NULL, json JSON NOT NULL,
            UNIQUE (id, time)
        ) PARTITION BY RANGE (time)
        """,
        "CREATE INDEX IF NOT EXISTS alert_host_time ON alert_store (host, time)",
        "CREATE INDEX IF NOT EXISTS alert_time ON alert_store (time)",
        "CREATE INDEX IF NOT EXISTS alert_rule ON alert_store (rule_id)",
        // Responses: a decision per row, replaced by id as its status changes (a partitioned table's
        // unique key would have to hold the time, and a decision's record keeps its id, not its time).
        """
        CREATE TABLE IF NOT EXISTS response_store (
            id TEXT PRIMARY KEY,
            time BIGINT NOT NULL,
            host TEXT NOT NULL,
            alert_id TEXT, rule_id TEXT, rule_title TEXT,
            policy TEXT NOT NULL, action TEXT NOT NULL, target TEXT, dry_run BIGINT NOT NULL,
            status TEXT NOT NULL, detail TEXT, command_id TEXT, updated BIGINT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS response_host_time ON response_store (host, time)",
        "CREATE INDEX IF NOT EXISTS response_time ON response_store (time)",
        "CREATE INDEX IF NOT EXISTS response_alert ON response_store (alert_id)",
        "CREATE INDEX IF NOT EXISTS response_command ON response_store (command_id)",
        """
        CREATE TABLE IF NOT EXISTS hunt_store (
            name TEXT PRIMARY KEY,
            sql TEXT NOT NULL,
            description TEXT,
            hosts TEXT,
            saved_at BIGINT NOT NULL
        )
        """,
        // Rollups kept at ingest (see `Rollups`): counts per day and host.
        """
        CREATE TABLE IF NOT EXISTS process_rollup (
            day BIGINT NOT NULL, host TEXT NOT NULL, parent_executable TEXT NOT NULL, executable TEXT NOT NULL,
            runs BIGINT NOT NULL, first_time BIGINT NOT NULL, last_time BIGINT NOT NULL,
            PRIMARY KEY (day, host, parent_executable, executable)
        )
        """,
        "CREATE INDEX IF NOT EXISTS process_rollup_executable ON process_rollup (executable)",
        """
        CREATE TABLE IF NOT EXISTS connection_rollup (
            day BIGINT NOT NULL, host TEXT NOT NULL, destination_ip TEXT NOT NULL, destination_port BIGINT NOT NULL,
            connections BIGINT NOT NULL, first_time BIGINT NOT NULL, last_time BIGINT NOT NULL,
            PRIMARY KEY (day, host, destination_ip, destination_port)
        )
        """,
        "CREATE INDEX IF NOT EXISTS connection_rollup_destination ON connection_rollup (destination_ip)",
        // SQLite's json_extract(json, '$.a.b') for the hunts written for it (objects only, as text).
        """
        CREATE OR REPLACE FUNCTION json_extract(document json, path text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT document #>> string_to_array(regexp_replace(path, '^\\$\\.?', ''), '.') $$
        """,
    ]

    /// Every column goes in as one array parameter; the new events' ids come back.
    static var insertEvents: String {
        let columns = StoredEvent.columns + ["json"]
        let arrays = columns.enumerated().map { "$\($0.offset + 1)::\(integerColumns.contains($0.element) ? "int8" : "text")[]" }
        let values = columns.map { $0 == "json" ? "json::json" : $0 }
        return """
            INSERT INTO event_store (\(columns.joined(separator: ", ")))
            SELECT \(values.joined(separator: ", ")) FROM unnest(\(arrays.joined(separator: ", "))) AS batch(\(columns.joined(separator: ", ")))
            ON CONFLICT (id, time) DO NOTHING RETURNING id
            """
    }

    /// A batch's rollup counts added to the stored ones: every column one array parameter (the
    /// count and times integers, like `day` and `destination_port`).
    static func upsertRollup(_ table: Rollups.Table) -> String {
        let count = table.countColumn
        let arrays = table.columns.enumerated().map { "$\($0.offset + 1)::\(rollupIntegerColumns.contains($0.element) ? "int8" : "text")[]" }
        return """
            INSERT INTO \(table.name) (\(table.columns.joined(separator: ", "))) SELECT * FROM unnest(\(arrays.joined(separator: ", ")))
            ON CONFLICT (\(table.keyColumns.joined(separator: ", "))) DO UPDATE SET \(count) = \(table.name).\(count) + excluded.\(count),
                first_time = least(\(table.name).first_time, excluded.first_time), last_time = greatest(\(table.name).last_time, excluded.last_time)
            """
    }

    /// Rollup columns that hold integers (the others text).
    static let rollupIntegerColumns: Set<String> = ["day", "destination_port", "runs", "connections", "first_time", "last_time"]

    static let upsertHosts = """
        INSERT INTO host_store (name, first_seen, last_seen, events)
        SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
        ON CONFLICT (name) DO UPDATE SET last_seen = greatest(host_store.last_seen, excluded.last_seen),
            first_seen = least(host_store.first_seen, excluded.first_seen), events = host_store.events + excluded.events
        """

    /// A heartbeat's figures, unless a newer heartbeat's are there (NULL figures leave a column).
    static let updateHealth = """
        UPDATE host_store SET \(HostHealth.columnNames.enumerated().map { "\($0.element) = coalesce($\($0.offset + 1), \($0.element))" }.joined(separator: ", ")),
            health_time = $\(HostHealth.columnNames.count + 1)
        WHERE name = $\(HostHealth.columnNames.count + 2) AND coalesce(health_time, 0) <= $\(HostHealth.columnNames.count + 1)
        """

    static let registerHosts = """
        INSERT INTO host_store (name, tags) SELECT * FROM unnest($1::text[], $2::text[])
        ON CONFLICT (name) DO UPDATE SET tags = excluded.tags
        """

    static let insertAlerts = """
        INSERT INTO alert_store (id, host, time, rule_id, rule_title, level, severity, correlation, entity_id, pid, executable,
            command_line, user_name, event_ids, tags, stored_at, json)
        SELECT id, host, time, rule_id, rule_title, level, severity, correlation, entity_id, pid, executable,
            command_line, user_name, event_ids, tags, stored_at, json::json
        FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[],
            $10::int8[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::int8[], $17::text[])
            AS batch(id, host, time, rule_id, rule_title, level, severity, correlation, entity_id, pid, executable,
            command_line, user_name, event_ids, tags, stored_at, json)
        ON CONFLICT (id, time) DO NOTHING RETURNING id
        """

    /// Every column goes in as one array parameter; a response already stored (by id) is replaced.
    static var upsertResponses: String {
        let columns = StoredResponse.columns
        let arrays = columns.enumerated().map { "$\($0.offset + 1)::\(StoredResponse.integerColumns.contains($0.element) ? "int8" : "text")[]" }
        return """
            INSERT INTO response_store (\(columns.joined(separator: ", ")))
            SELECT * FROM unnest(\(arrays.joined(separator: ", ")))
            ON CONFLICT (id) DO UPDATE SET \(columns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
            """
    }

    static let updateResponse = "UPDATE response_store SET status = $1, detail = $2, updated = $3 WHERE command_id = $4 RETURNING id"
}

extension SQLDialect {
    /// `$1`, `$2`, …; times formatted exactly (integer milliseconds added to the epoch); views
    /// `NOT MATERIALIZED`, so that a query naming several of them still uses the indexes.
    static let postgres = SQLDialect(
        placeholder: { "$\($0)" },
        timestamp: { "to_char(TIMESTAMP 'epoch' + \($0) * INTERVAL '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')" },
        never: "false",
        inlinedView: " NOT MATERIALIZED",
        date: { "to_char(DATE '1970-01-01' + (\($0))::int, 'YYYY-MM-DD')" },
        commandLineSearch: { words, bind in
            // Every word a case-insensitive substring of the command line (a trailing * adds
            // nothing to a substring); LIKE's own wildcards in a word are taken literally.
            words.map { word in
                let text = word.text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                    .replacingOccurrences(of: "_", with: "\\_")
                return "command_line ILIKE \(bind(.text("%" + text + "%")))"
            }.joined(separator: " AND ")
        })
}
