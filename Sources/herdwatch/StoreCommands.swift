import ArgumentParser
import Foundation
import HerdwatchEvents
import HerdwatchStore

/// Where the store lives.
struct StoreLocation: ParsableArguments {
    @Option(help: "The store: a SQLite file, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB).")
    var db: String = "/var/lib/herdwatch/events.db"

    var isPostgres: Bool { StoreURL.isPostgres(db) }

    /// Opens (and creates or migrates) the store; with `mustExist`, a missing SQLite file is an error.
    func open(mustExist: Bool = false) async throws -> any FleetStore {
        if !isPostgres {
            if mustExist && !FileManager.default.fileExists(atPath: db) { throw ValidationError("no store at \(db)") }
            let folder = URL(fileURLWithPath: db).deletingLastPathComponent()
            try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        do {
            return try await StoreURL.open(db)
        } catch let error as PostgresStore.URLError {
            throw ValidationError("\(error)")
        }
    }
}

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Store ECS JSON event lines (what the agent or replay writes) in the store.",
        discussion: """
            Each event is stored once (by event.id): importing the same file twice stores nothing new. \
            A line that is not an event with event.id, host.name and @timestamp is reported with file \
            and line and skipped; the rest are stored. Exit status: 0, or 1 when a line was skipped.
            """
    )

    @Argument(help: "Files of ECS JSON lines; '-' reads standard input.")
    var files: [String]

    @OptionGroup var store: StoreLocation

    func run() async throws {
        let events = try await store.open()
        var total = IngestResult()
        for file in files {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            let text = String(decoding: data, as: UTF8.self)
            let result = try await events.ingest(lines: text.split(separator: "\n", omittingEmptySubsequences: false), allOrNothing: false)
            for rejection in result.rejected { FileHandle.standardError.write(Data("\(file):\(rejection)\n".utf8)) }
            total.inserted += result.inserted
            total.duplicates += result.duplicates
            total.rejected += result.rejected
        }
        FileHandle.standardError.write(
            Data("stored \(total.inserted) events, \(total.duplicates) already stored, \(total.rejected.count) lines skipped\n".utf8))
        if !total.rejected.isEmpty { throw ExitCode.failure }
    }
}

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Ask the fleet a question in SQL (read-only) over the documented views.",
        discussion: """
            Views: \(QueryGuard.views.map { "\($0.name) (\($0.meaning))" }.joined(separator: "; ")). \
            Event views have the columns id, host, timestamp, time (ms), kind, action, category, outcome, \
            module, pid, executable, command_line, entity_id, parent_entity_id, parent_executable, user_name, \
            source_ip, destination_ip, destination_port, file_path, tags and json (the whole ECS event; use \
            json_extract on SQLite, json::jsonb on PostgreSQL). Only one SELECT at a time: writes, ATTACH, PRAGMA, several statements and the \
            stored tables are refused. Exit status: 0, 1 when refused or failed.

            Example: herdwatch query --hosts web1,web2 --since -1h \
            "SELECT host, executable, count(*) AS n FROM processes GROUP BY 1, 2 ORDER BY n DESC"
            """
    )

    @Argument(help: "One SELECT statement.")
    var sql: String

    @Option(help: "Hosts the query sees: all; names separated by commas; tags (role=web,env=prod: hosts with all of them).")
    var hosts: String = "all"

    @Option(help: "Only events at or after this time: ISO 8601 (2026-11-23T10:00:00Z) or relative (-1h, -30m, -7d).")
    var since: String?

    @Option(help: "Only events before this time (same forms).")
    var until: String?

    @Option(help: "Only events whose command line has every one of these words (full-text search; word* for a prefix).")
    var search: String?

    @Option(help: "Rows at most.")
    var limit: Int = 1000

    @Option(help: "Seconds before the query is stopped.")
    var timeout: Double = 10

    @Option(help: "table, json (one object per row) or csv.")
    var format: String = "table"

    @OptionGroup var store: StoreLocation

    func validate() throws {
        guard ["table", "json", "csv"].contains(format) else { throw ValidationError("--format must be table, json or csv") }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        var options = QueryOptions()
        if let problem = options.setTimeBounds(since: since, until: until).first { throw ValidationError("--\(problem)") }
    }

    func run() async throws {
        let events = try await store.open(mustExist: true)
        var options = QueryOptions()
        options.hosts = HostScope(parsing: hosts)
        _ = options.setTimeBounds(since: since, until: until)  // checked in validate()
        options.search = search
        options.limit = limit
        options.timeoutSeconds = timeout
        let result: QueryResult
        do {
            result = try await events.query(sql, options: options)
        } catch let error as QueryError {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        }
        print(Self.render(result, format: format), terminator: "")
        if result.truncated {
            FileHandle.standardError.write(Data("(more than \(limit) rows; raise --limit)\n".utf8))
        }
    }

    static func render(_ result: QueryResult, format: String) -> String {
        switch format {
        case "json":
            return result.rows.map { row in
                var object: [String: Any] = [:]
                for (column, value) in zip(result.columns, row) { object[column] = value.jsonObject }
                let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
                return String(decoding: data, as: UTF8.self) + "\n"
            }.joined()
        case "csv":
            return result.csv
        default:
            let cells = [result.columns] + result.rows.map { $0.map { String($0.description.prefix(60)) } }
            let widths = result.columns.indices.map { column in cells.map { $0[column].count }.max() ?? 0 }
            return cells.enumerated().map { index, row in
                let line = zip(row, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  ")
                return index == 0 ? line + "\n" + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") : line
            }.joined(separator: "\n") + "\n(\(result.rows.count) rows)\n"
        }
    }
}
