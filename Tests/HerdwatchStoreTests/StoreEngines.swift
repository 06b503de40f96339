import Foundation
import HerdwatchTestSupport
import Logging
import Testing

@testable import HerdwatchStore

/// The storage engines the shared store tests run against.
enum Engine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// Runs `body` with a new, empty store of this engine, removed afterwards (PostgreSQL: a
    /// server of the test's own, see `PostgresServer`).
    func withStore(_ body: @Sendable (any FleetStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            let database = try TemporaryDatabase("store")
            defer { database.remove() }
            try await body(try EventStore(path: database.path))
        case .postgres:
            let server = try await PostgresServer.start()
            defer { withExtendedLifetime(server) {} }
            try await PostgresStore.withStore(try PostgresStore.Configuration(url: server.url), logger: Self.logger) { store in
                try await body(store)
            }
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "herdwatch.store.test")
        logger.logLevel = .warning
        return logger
    }()
}

/// A SQLite database path in a temporary folder of its own; `remove()` deletes the folder.
struct TemporaryDatabase {
    let folder: URL
    var path: String { folder.appendingPathComponent("events.db").path }

    init(_ label: String) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: folder) }
}

extension FleetStore {
    /// A batch of lines, the good ones stored.
    func ingest(_ lines: [Substring]) async throws -> IngestResult { try await ingest(lines: lines, allOrNothing: false) }
    /// A query over every host and time.
    func read(_ sql: String) async throws -> QueryResult { try await query(sql, options: QueryOptions()) }
}

/// An ECS line as the agent writes it (the fields the store reads).
func event(
    _ id: String, host: String, second: Int, action: String = "process-started", category: String = "process",
    executable: String = "/usr/bin/true", day: String = "2026-11-23"
) -> Substring {
    Substring(#"{"@timestamp":"\#(day)T10:00:\#(String(format: "%02d", second)).000Z","event":{"kind":"event","category":["\#(category)"],"action":"\#(action)","outcome":"success","id":"\#(id)"},"host":{"name":"\#(host)"},"process":{"pid":\#(second),"executable":"\#(executable)","command_line":"\#(executable) --flag","entity_id":"e-\#(id)"}}"#)
}

func alert(_ id: String, host: String, time: Int64) -> StoredAlert {
    StoredAlert(
        id: id, host: host, time: time, ruleID: "rule-\(id)", ruleTitle: "Rule \(id)", level: "high", severity: 73,
        correlation: nil, entityID: "e-\(id)", pid: 42, executable: "/bin/sh", commandLine: "sh -c x", userName: "root",
        eventIDs: ["ev-\(id)"], tags: ["attack.execution"], json: "{}")
}
