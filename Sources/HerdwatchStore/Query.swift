import Foundation
import GRDB
import HerdwatchEvents

public struct QueryOptions: Sendable {
    public var hosts: HostScope = .all
    /// Milliseconds since the epoch; events outside are not seen.
    public var since: Int64?
    public var until: Int64?
    public var limit = 1000
    public var timeoutSeconds: Double = 10
    /// Full-text search over command lines: words separated by spaces, every one of them in an
    /// event's command line (case-insensitive; `word*` for a prefix). The `events` view and those
    /// built on it then hold only such events.
    public var search: String?
    public init() {}

    /// A word of `search`: its text, and whether it was written `text*` (a prefix).
    struct SearchWord {
        var text: String
        var prefix: Bool
    }

    /// The words of `search`, none when it is blank.
    var searchWords: [SearchWord] {
        (search ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map { word in
            word.hasSuffix("*") && word.count > 1
                ? SearchWord(text: String(word.dropLast()), prefix: true) : SearchWord(text: String(word), prefix: false)
        }
    }

    /// Sets `since` and `until` from text as people write it (`time(parsing:)`); nil leaves a bound
    /// open. Returns a message for each bound that is not a time.
    public mutating func setTimeBounds(since sinceText: String?, until untilText: String?) -> [String] {
        var problems: [String] = []
        for (name, text) in [("since", sinceText), ("until", untilText)] {
            guard let text else { continue }
            guard let time = Self.time(parsing: text) else {
                problems.append("\(name): '\(text)' is not a time (ISO 8601 like 2026-11-23T10:00:00Z, or -1h, -30m, -7d)")
                continue
            }
            if name == "since" { since = time } else { until = time }
        }
        return problems
    }

    /// A time bound as people write it: ISO 8601 (`2026-11-23T10:00:00Z`), or `-N` with s, m, h or
    /// d for that long before `now`; nil when it is neither.
    public static func time(parsing text: String, now: Date = Date()) -> Int64? {
        if text.hasPrefix("-"), let unit = text.last, let amount = Double(text.dropFirst().dropLast()), amount >= 0 {
            let scale: Double? = ["s": 1, "m": 60, "h": 3600, "d": 86400][String(unit)]
            guard let scale else { return nil }
            return Int64((now.timeIntervalSince1970 - amount * scale) * 1000)
        }
        return CivilTime.milliseconds(iso8601: text)
    }
}

public enum QueryValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Int)

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let number): self = .integer(number)
        case .double(let number): self = .real(number)
        case .string(let text): self = .text(text)
        case .blob(let data): self = .blob(data.count)
        }
    }

    public var description: String {
        switch self {
        case .null: ""
        case .integer(let number): String(number)
        case .real(let number): String(number)
        case .text(let text): text
        case .blob(let count): "<\(count) bytes>"
        }
    }
}

public struct QueryResult: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[QueryValue]]
    /// More rows than the limit matched.
    public var truncated: Bool

    /// RFC 4180 CSV: a header line, then a line per row; fields with commas, quotes or newlines quoted.
    public var csv: String {
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        return ([columns.map(field).joined(separator: ",")] + rows.map { $0.map { field($0.description) }.joined(separator: ",") })
            .joined(separator: "\n") + "\n"
    }
}

extension QueryValue {
    /// The value for JSONSerialization: NSNull, a number or a string (a blob as its size).
    public var jsonObject: Any {
        switch self {
        case .null: NSNull()
        case .integer(let number): number
        case .real(let number): number
        case .text(let text): text
        case .blob: description
        }
    }
}

public enum QueryError: Error, Sendable, Equatable, CustomStringConvertible {
    case refused(String)
    case invalid(String)
    case timedOut(Double)

    public var description: String {
        switch self {
        case .refused(let reason): "query refused: \(reason)"
        case .invalid(let reason): "query failed: \(reason)"
        case .timedOut(let seconds): "query stopped after \(seconds) s (--timeout)"
        }
    }
}

/// What differs between the engines' SQL in the views.
struct SQLDialect: Sendable {
    /// The placeholder of the n-th argument (from 1).
    var placeholder: @Sendable (Int) -> String
    /// A column of milliseconds since the epoch as ISO 8601 text (`2026-11-23T10:00:02.000Z`).
    var timestamp: @Sendable (String) -> String
    /// A condition no row meets (a scope of no hosts).
    var never = "0"
    /// Put after a view's name so that the database plans it into the query (with the query's own
    /// conditions and the indexes) instead of computing it whole once.
    var inlinedView = ""

    /// The `json` column of the `events` view: where the engine keeps an event's document.
    var eventJSON = "json"
    /// A column of days since the epoch as ISO 8601 text (`2026-11-23`).
    var date: @Sendable (String) -> String

    /// The condition on `event_store` rows that a command-line search for these words puts in
    /// the `events` view, its arguments bound through `bind`.
    var commandLineSearch: @Sendable (_ words: [QueryOptions.SearchWord], _ bind: (ColumnValue) -> String) -> String

    /// SQLite: the FTS5 index `command_search` (unicode61 tokens), each word a quoted phrase (a
    /// word with punctuation, like `evil.sh`, is its tokens in a row), all of them required.
    static let sqlite = SQLDialect(
        placeholder: { _ in "?" }, timestamp: { "strftime('%Y-%m-%dT%H:%M:%fZ', \($0) / 1000.0, 'unixepoch')" },
        eventJSON: """
            (SELECT herdwatch_event_json(event_block.id, event_store.slot, event_block.size, event_block.data) \
            FROM event_block WHERE event_block.id = event_store.block)
            """,
        date: { "date(\($0) * 86400, 'unixepoch')" },
        commandLineSearch: { words, bind in
            let query = words.map { word in
                "\"" + word.text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" + (word.prefix ? "*" : "")
            }.joined(separator: " ")
            return "rowid IN (SELECT rowid FROM command_search WHERE command_search MATCH \(bind(.text(query))))"
        })
}

/// Queries read, one statement at a time, through the documented views only. Three locks: the text
/// must be one SELECT (or WITH … SELECT, or VALUES) naming no stored table; the prepared statement
/// must be read-only for SQLite; the database is opened read-only.
///
/// The views — `events`, `processes`, `network`, `files`, `logins`, `hosts`, `alerts`, `responses`
/// — are common table expressions put in front of the query, already limited to the scope's hosts
/// and time bounds, so a query cannot see past its scope.
public enum QueryGuard {
    /// Names a query may not use: the stored tables behind the views, and SQLite's catalog.
    static let storedNames: Set<String> = [
        "event_store", "host_store", "alert_store", "response_store", "hunt_store", "sqlite_master", "sqlite_schema", "sqlite_temp_master",
        "sqlite_temp_schema", "grdb_migrations", "event_block", "process_rollup", "connection_rollup", "command_search", "command_search_data", "command_search_idx",
        "command_search_docsize", "command_search_config", "command_search_content",
    ]

    public static let views: [(name: String, meaning: String)] = [
        ("events", "every event"),
        ("processes", "process starts and exits (category process)"),
        ("network", "connections (category network)"),
        ("files", "file changes (category file)"),
        ("logins", "logins, authentication, sessions, account changes"),
        ("hosts", "the hosts registry: name, tags, level, first/last seen, events, agent figures from heartbeats"),
        ("alerts", "alerts raised by detection rules: rule, level, host, process, matching event ids"),
        ("responses", "response decisions and their outcomes: alert, rule, policy, action, target, dry run, status, command"),
        ("process_pairs", "process starts counted per day, host, parent executable and executable (kept at ingest)"),
        ("connections", "outbound connections counted per day, host, destination address and port (kept at ingest)"),
    ]

    /// Refuses what is not one reading statement over the views, naming the statement kind.
    public static func check(_ sql: String) throws(QueryError) {
        let tokens = tokenize(sql)
        guard let first = tokens.first else { throw .refused("empty query") }
        if let semicolon = tokens.firstIndex(of: ";"), tokens[(semicolon + 1)...].contains(where: { $0 != ";" }) {
            throw .refused("one statement at a time (found more after ';')")
        }
        let keyword = first.uppercased()
        guard ["SELECT", "WITH", "VALUES"].contains(keyword) else {
            let kind = ["INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "ATTACH", "DETACH", "PRAGMA",
                "VACUUM", "REINDEX", "ANALYZE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "EXPLAIN"]
                .first { $0 == keyword } ?? keyword
            throw .refused("\(kind) statements are not allowed; queries only read (SELECT)")
        }
        for token in tokens {
            let name = token.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "\"`[]"))
            if storedNames.contains(name) {
                throw .refused("'\(name)' is not queryable; use the views: \(views.map(\.name).joined(separator: ", "))")
            }
            if name == "main" || name == "temp" {
                throw .refused("schema names are not allowed; use the views: \(views.map(\.name).joined(separator: ", "))")
            }
        }
    }

    /// The query with the views in front, and their arguments, in `dialect`'s SQL. `hosts` are the
    /// names the scope resolved to (nil: every host).
    static func scoped(_ sql: String, options: QueryOptions, hosts: [String]?, dialect: SQLDialect = .sqlite) -> (sql: String, arguments: [ColumnValue]) {
        var arguments: [ColumnValue] = []
        func bind(_ value: ColumnValue) -> String {
            arguments.append(value)
            return dialect.placeholder(arguments.count)
        }
        // Placeholders in view order: events' scope, hosts', then alerts', responses' (the same as
        // events') and the rollups'. Rollups count whole days: a day is in when its first or last
        // counted event is within the bounds (`sinceColumn` last_time, `untilColumn` first_time).
        func scope(sinceColumn: String = "time", untilColumn: String = "time") -> String {
            var conditions: [String] = []
            if let names = hosts {
                conditions.append(names.isEmpty ? dialect.never : "host IN (\(names.map { bind(.text($0)) }.joined(separator: ", ")))")
            }
            if let since = options.since { conditions.append("\(sinceColumn) >= \(bind(.integer(since)))") }
            if let until = options.until { conditions.append("\(untilColumn) < \(bind(.integer(until)))") }
            return conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        }
        var eventWhere = scope()
        let words = options.searchWords
        if !words.isEmpty {
            eventWhere += (eventWhere.isEmpty ? " WHERE " : " AND ") + dialect.commandLineSearch(words, bind)
        }
        var hostWhere = ""
        if let names = hosts {
            hostWhere = names.isEmpty ? " WHERE \(dialect.never)" : " WHERE name IN (\(names.map { bind(.text($0)) }.joined(separator: ", ")))"
        }
        let alertWhere = scope()
        let responseWhere = scope()
        let processWhere = scope(sinceColumn: "last_time", untilColumn: "first_time")
        let connectionWhere = scope(sinceColumn: "last_time", untilColumn: "first_time")
        let time = dialect.timestamp
        let view = dialect.inlinedView
        let columns = """
            id, host, \(time("time")) AS timestamp, time, kind, action, category, \
            outcome, module, pid, executable, command_line, entity_id, parent_entity_id, parent_executable, user_name, source_ip, \
            destination_ip, destination_port, file_path, tags, \(dialect.eventJSON) AS json
            """
        let views = """
            events AS\(view) (SELECT \(columns) FROM event_store\(eventWhere)), \
            processes AS\(view) (SELECT * FROM events WHERE category LIKE '%process%'), \
            network AS\(view) (SELECT * FROM events WHERE category LIKE '%network%'), \
            files AS\(view) (SELECT * FROM events WHERE category LIKE '%file%'), \
            logins AS\(view) (SELECT * FROM events WHERE category LIKE '%authentication%' OR category LIKE '%session%' OR category LIKE '%iam%'), \
            hosts AS\(view) (SELECT name, tags, level, \(time("first_seen")) AS first_seen, \
            \(time("last_seen")) AS last_seen, last_seen AS last_seen_time, events, \
            agent_version, events_per_second, bytes_per_day, rss_bytes, cpu_percent, lost_total FROM host_store\(hostWhere)), \
            alerts AS\(view) (SELECT id, host, \(time("time")) AS timestamp, time, rule_id, \
            rule_title, level, severity, correlation, entity_id, pid, executable, command_line, user_name, event_ids, tags, \
            \(time("stored_at")) AS stored_at, json FROM alert_store\(alertWhere)), \
            responses AS\(view) (SELECT id, \(time("time")) AS timestamp, time, host, alert_id, rule_id, rule_title, policy, \
            action, target, dry_run, status, detail, command_id, updated FROM response_store\(responseWhere)), \
            process_pairs AS\(view) (SELECT \(dialect.date("day")) AS day, host, nullif(parent_executable, '') AS parent_executable, \
            nullif(executable, '') AS executable, runs, \(time("first_time")) AS first_seen, \(time("last_time")) AS last_seen, \
            first_time, last_time FROM process_rollup\(processWhere)), \
            connections AS\(view) (SELECT \(dialect.date("day")) AS day, host, nullif(destination_ip, '') AS destination_ip, \
            nullif(destination_port, 0) AS destination_port, connections, \(time("first_time")) AS first_seen, \
            \(time("last_time")) AS last_seen, first_time, last_time FROM connection_rollup\(connectionWhere))
            """
        let trimmed = sql.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: ";"))
        let tokens = tokenize(trimmed)
        if tokens.first?.uppercased() == "WITH", let withRange = trimmed.range(of: "with", options: [.caseInsensitive, .anchored]) {
            // Their common table expressions after ours (after RECURSIVE, which must come first).
            var rest = trimmed[withRange.upperBound...]
            var prefix = "WITH "
            if tokens.count > 1, tokens[1].uppercased() == "RECURSIVE", let recursive = rest.range(of: "recursive", options: .caseInsensitive) {
                rest = rest[recursive.upperBound...]
                prefix = "WITH RECURSIVE "
            }
            return (prefix + views + ", " + rest, arguments)
        }
        return ("WITH " + views + " " + trimmed, arguments)
    }

    /// Words, quoted identifiers and punctuation, without comments and string literals.
    static func tokenize(_ sql: String) -> [String] {
        var tokens: [String] = []
        let characters = Array(sql)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character == "-", index + 1 < characters.count, characters[index + 1] == "-" {
                while index < characters.count, characters[index] != "\n" { index += 1 }
            } else if character == "/", index + 1 < characters.count, characters[index + 1] == "*" {
                index += 2
                while index + 1 < characters.count, !(characters[index] == "*" && characters[index + 1] == "/") { index += 1 }
                index += 2
            } else if character == "'" {
                index += 1
                while index < characters.count {
                    if characters[index] == "'" {
                        if index + 1 < characters.count, characters[index + 1] == "'" { index += 2; continue }
                        break
                    }
                    index += 1
                }
                index += 1
                tokens.append("''")
            } else if character == "\"" || character == "`" || character == "[" {
                let close: Character = character == "[" ? "]" : character
                var name = ""
                index += 1
                while index < characters.count, characters[index] != close {
                    name.append(characters[index])
                    index += 1
                }
                index += 1
                tokens.append(name)
            } else if character.isLetter || character == "_" || character.isNumber {
                var word = ""
                while index < characters.count, characters[index].isLetter || characters[index].isNumber || characters[index] == "_" || characters[index] == "$" {
                    word.append(characters[index])
                    index += 1
                }
                tokens.append(word)
            } else if character.isWhitespace {
                index += 1
            } else {
                tokens.append(String(character))
                index += 1
            }
        }
        return tokens
    }
}
