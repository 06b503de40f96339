import Foundation
import HerdwatchEvents

/// The central store as the server, the CLI and the web UI see it. Two engines: `EventStore`
/// (SQLite, the embedded default) and `PostgresStore` (PostgreSQL, for fleets).
///
/// Every write returns once it is durable: what an HTTP or NATS ingest acknowledges. Every read
/// goes through the documented views, scoped by hosts and time (see `QueryGuard`).
public protocol FleetStore: Sendable {
    /// Where the events are, for logs: `sqlite:PATH` or `postgres://HOST:PORT/DB`.
    var location: String { get }

    /// An agent's batch: stored whole or not at all, and only if every event is from `host` (the
    /// host its token authenticates).
    func ingest(lines: [Substring], host: String) async throws -> IngestResult

    /// Events from a file or a bus; when `allOrNothing`, a batch with a bad line stores nothing.
    func ingest(lines: [Substring], allOrNothing: Bool) async throws -> IngestResult

    /// A batch parsed and checked before (the server's journal checks a batch when it accepts it and
    /// stores it later): its events are stored, its rejected lines only reported.
    func ingest(_ batch: ParsedBatch) async throws -> IngestResult

    /// Whether event batches are prepared and written at a lower CPU priority than the rest of the
    /// process (the server's journal loader, which stores what is already acknowledged). Engines
    /// whose writes run elsewhere (PostgreSQL) ignore it.
    func setBackgroundWrites(_ background: Bool)

    /// Stores alerts, each once (by id); returns how many were new.
    @discardableResult
    func store(alerts: [StoredAlert]) async throws -> Int

    /// Inserts or replaces responses by id.
    func record(responses: [StoredResponse]) async throws
    /// Sets status/detail/updated of the response that sent command `commandID`; false when none has it.
    @discardableResult
    func updateResponse(commandID: String, status: String, detail: String?, time: Int64) async throws -> Bool

    /// One read-only query over the views, scoped and bounded by `options`.
    func query(_ sql: String, options: QueryOptions) async throws -> QueryResult

    /// Saves a hunt, replacing one of the same name; its query must pass `QueryGuard.check`.
    func save(_ hunt: Hunt) async throws
    /// Every saved hunt, by name.
    func hunts() async throws -> [Hunt]
    /// Deletes a hunt; false when there was none of that name.
    @discardableResult
    func deleteHunt(named name: String) async throws -> Bool

    /// Hosts whose newest event is older than `cutoff` (milliseconds since the epoch).
    func hosts(silentSince cutoff: Int64) async throws -> [(name: String, lastSeen: Int64)]

    /// Sets the tags of hosts (name → tags), known before they send anything; other hosts keep theirs.
    func register(hosts: [String: HostTags]) async throws

    /// Deletes every event, alert and response of the UTC days before the day of `cutoff`; returns
    /// the number of days of events dropped.
    @discardableResult
    func dropDays(before cutoff: Int64) async throws -> Int
}

extension FleetStore {
    public func setBackgroundWrites(_ background: Bool) {}

    /// Both engines alike: parsed and checked first, then stored whole, or nothing of it when a line
    /// is refused.
    public func ingest(lines: [Substring], host: String) async throws -> IngestResult {
        let batch = ParsedBatch(lines: lines, host: host)
        guard batch.rejected.isEmpty else {
            var result = IngestResult()
            result.rejected = batch.rejected
            return result
        }
        return try await ingest(batch)
    }

    public func hunt(named name: String) async throws -> Hunt? { try await hunts().first { $0.name == name } }
}

/// Opens the store a `--db` value names: a `postgres://` or `postgresql://` URL, else a SQLite file.
public enum StoreURL {
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    /// Opens (creating or migrating) the store at `location`.
    public static func open(_ location: String) async throws -> any FleetStore {
        if isPostgres(location) { return try await openPostgres(location) }
        return try EventStore(path: location)
    }

    static func openPostgres(_ location: String) async throws -> any FleetStore {
        try await PostgresStore.open(url: location)
    }
}

/// A host's tags, `role=web` → ["role": "web"]; stored sorted as `env=prod,role=web`.
public typealias HostTags = [String: String]

extension Dictionary where Key == String, Value == String {
    /// `env=prod,role=web` (sorted by key), as stored in the hosts registry.
    public var tagText: String { sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }

    /// Reads `key=value` pairs separated by commas or spaces; nil names the first malformed pair.
    public static func tags(parsing text: Substring) -> Result<HostTags, HostSelectorError> {
        var tags: HostTags = [:]
        for pair in text.split(whereSeparator: { $0 == "," || $0 == " " }) {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex, pair.index(after: equals) != pair.endIndex else {
                return .failure(HostSelectorError(description: "'\(pair)' is not a tag (expected key=value)"))
            }
            tags[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        return .success(tags)
    }
}

public struct HostSelectorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
}

/// Which hosts a query sees: `all`; host names separated by commas (any of them); tags
/// `role=web,env=prod` (all of them); or names and tags together (a named host with those tags).
public struct HostScope: Sendable, Equatable, CustomStringConvertible {
    public var names: [String]
    public var tags: HostTags

    public static let all = HostScope(names: [], tags: [:])

    public init(names: [String], tags: HostTags) {
        self.names = names
        self.tags = tags
    }

    public static func names(_ names: [String]) -> HostScope { HostScope(names: names, tags: [:]) }

    /// `all`, or names and `key=value` tags separated by commas.
    public init(parsing text: String) {
        var names: [String] = []
        var tags: HostTags = [:]
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty && item != "all" {
            if let equals = item.firstIndex(of: "="), equals != item.startIndex {
                tags[String(item[..<equals])] = String(item[item.index(after: equals)...])
            } else {
                names.append(item)
            }
        }
        self.init(names: names, tags: tags)
    }

    public var isAll: Bool { names.isEmpty && tags.isEmpty }

    /// Whether a host of this name and tags (as stored, `env=prod,role=web`) is in scope.
    public func contains(name: String, tagText: String?) -> Bool {
        if !names.isEmpty && !names.contains(name) { return false }
        guard !tags.isEmpty else { return true }
        guard case .success(let hostTags) = HostTags.tags(parsing: Substring(tagText ?? "")) else { return false }
        return tags.allSatisfy { hostTags[$0.key] == $0.value }
    }

    /// Whether resolving the scope needs the hosts registry (it selects by tags).
    var needsRegistry: Bool { !tags.isEmpty }

    /// The host names a query is limited to, nil for every host. `registry` (name, stored tags) is
    /// read only when the scope has tags.
    func resolved(registry: [(name: String, tagText: String?)]) -> [String]? {
        guard needsRegistry else { return names.isEmpty ? nil : names }
        return registry.filter { contains(name: $0.name, tagText: $0.tagText) }.map(\.name)
    }

    public var description: String {
        isAll ? "all" : (names + tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: ",")
    }
}

/// ECS JSON lines parsed into what the store keeps, every line checked, nothing stored yet.
public struct ParsedBatch: Sendable {
    let rows: [StoredEvent]
    /// The lines that are not events (or, with a host, not that host's events).
    public let rejected: [IngestResult.Rejection]

    /// Parses `lines` as `FleetStore.ingest(lines:host:)` does (blank lines skipped); with `host`,
    /// every event must name it.
    public init(lines: [Substring], host: String?) {
        (rows, rejected) = StoredEvent.parse(lines, host: host)
    }

    init(rows: [StoredEvent], rejected: [IngestResult.Rejection]) {
        self.rows = rows
        self.rejected = rejected
    }

    /// Events it holds (rejected lines not counted).
    public var count: Int { rows.count }
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

    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }
}

/// A column value as both engines bind it.
public enum ColumnValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    init(_ text: String?) { self = text.map { .text($0) } ?? .null }
    init(_ number: Int?) { self = number.map { .integer(Int64($0)) } ?? .null }
    init(_ number: Double?) { self = number.map { .real($0) } ?? .null }
}

/// One event as stored, read from an ECS JSON line: the columns people filter on, and the JSON.
struct StoredEvent: Sendable {
    /// Position in its batch.
    var line = 0
    var id: String
    var host: String
    var time: Int64
    /// The `event_store` columns after id, host and time, in `StoredEvent.columns` order.
    var values: [ColumnValue]
    /// The whole ECS document: the line as it came.
    var json: Substring
    /// What a heartbeat says about its agent, for the hosts registry.
    var health: HostHealth?

    /// `process.command_line`, when the event has one.
    var commandLine: String? {
        if case .text(let text) = values[Self.commandLineValue] { return text }
        return nil
    }

    /// Where `command_line` is in `values` (which start after id, host and time).
    static let commandLineValue = columns.firstIndex(of: "command_line")! - 3

    /// The columns of `event_store` read from the document, in insert order (the document itself
    /// is `json` in PostgreSQL, a line of an `event_block` in SQLite).
    static let columns = [
        "id", "host", "time", "kind", "action", "category", "outcome", "module", "pid", "executable", "command_line",
        "entity_id", "parent_entity_id", "parent_executable", "user_name", "source_ip", "destination_ip", "destination_port",
        "file_path", "tags",
    ]

    /// Where `action` and the other columns the rollups read are in `values`.
    static let actionValue = columns.firstIndex(of: "action")! - 3
    static let executableValue = columns.firstIndex(of: "executable")! - 3
    static let parentExecutableValue = columns.firstIndex(of: "parent_executable")! - 3
    static let destinationIPValue = columns.firstIndex(of: "destination_ip")! - 3
    static let destinationPortValue = columns.firstIndex(of: "destination_port")! - 3

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// The event on `line`; throws `Invalid` when `check` refuses it.
    init(json line: Substring, host: String? = nil) throws {
        self = try line.utf8.withContiguousStorageIfAvailable { try StoredEvent(line, bytes: UnsafeRawBufferPointer($0), host: host) }
            ?? Array(line.utf8).withUnsafeBytes { try StoredEvent(line, bytes: $0, host: host) }
    }

    private init(_ line: Substring, bytes: UnsafeRawBufferPointer, host expected: String?) throws {
        let (scanned, time) = try Self.check(bytes, host: expected)
        func text(_ field: EventLineScanner.Field) -> ColumnValue { scanned.string(field, in: bytes).map { .text($0) } ?? .null }
        func number(_ field: EventLineScanner.Field) -> ColumnValue { scanned.integer(field, in: bytes).map { .integer($0) } ?? .null }
        let host = scanned.string(.hostName, in: bytes) ?? ""
        self.host = host
        // Events from `herdwatch replay` have no event.id: the audit event's own identity (host,
        // time, serial) is as stable, so importing a log twice stores it once.
        id = scanned.string(.eventID, in: bytes) ?? scanned.integer(.sequence, in: bytes).map { "\(host)-\(time)-\($0)" } ?? ""
        self.time = time
        values = [
            text(.kind), text(.action), text(.category), text(.outcome), text(.module), number(.pid), text(.executable),
            text(.commandLine), text(.entityID), text(.parentEntityID), text(.parentExecutable), text(.userName), text(.sourceIP),
            text(.destinationIP), number(.destinationPort), text(.filePath), text(.tags),
        ]
        json = line
        // Heartbeats are a few a minute per host: their figures are read with Foundation.
        if scanned.hasAgentFigures, let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let agent = (object["herdwatch"] as? [String: Any])?["agent"] as? [String: Any]
        {
            health = HostHealth(agent: agent, version: scanned.string(.agentVersion, in: bytes))
        }
    }

    /// Whether a line is an event the store takes: one JSON object with a host name (`host`'s, when
    /// given), a valid `@timestamp` and an id (`event.id`, or `event.sequence` to make one from).
    /// The line's scan and its time; throws `Invalid` with the reason. It makes no strings, so the
    /// ingest journal checks a batch this way before it answers and parses it fully behind.
    static func check(_ bytes: UnsafeRawBufferPointer, host expected: String?) throws(Invalid) -> (EventLineScanner, time: Int64) {
        let scanned: EventLineScanner
        do {
            scanned = try EventLineScanner(bytes)
        } catch {
            throw Invalid(description: "not a JSON object")
        }
        guard scanned.withString(.hostName, in: bytes, { !$0.isEmpty }) == true else {
            throw Invalid(description: "no host.name (for logs without node=, replay with --host-name)")
        }
        guard let time = scanned.withString(.timestamp, in: bytes, CivilTime.milliseconds(iso8601:)) ?? nil else {
            throw Invalid(description: "no valid @timestamp")
        }
        let hasID = scanned.withString(.eventID, in: bytes) { !$0.isEmpty } ?? (scanned.integer(.sequence, in: bytes) != nil)
        guard hasID else { throw Invalid(description: "no event.id (and no event.sequence to make one from)") }
        if let expected, !scanned.string(.hostName, in: bytes, equals: expected) {
            throw Invalid(description: "host.name '\(scanned.string(.hostName, in: bytes) ?? "")' is not the token's host '\(expected)'")
        }
        return (scanned, time)
    }
}

/// The hosts registry's figures from an agent's heartbeat (or its level from any agent event).
struct HostHealth: Sendable {
    var level: String?
    var agentVersion: String?
    var eventsPerSecond: Double?
    /// Bytes kept per day at the rate of the heartbeat's interval, all event classes together.
    var bytesPerDay: Double?
    var residentBytes: Int?
    var cpuPercent: Double?
    var lostTotal: Int?

    init(agent: [String: Any], version: String?) {
        level = agent["profile"] as? String
        agentVersion = version
        if let rates = agent["events_per_second"] as? [String: Any] {
            eventsPerSecond = rates.values.compactMap { ($0 as? NSNumber)?.doubleValue }.reduce(0, +)
        }
        // The first heartbeat after an agent starts also counts what the start itself sent (its
        // rules being loaded, a resumed level, the spool of an earlier run): a whole day at that
        // rate would overstate the cost, so it leaves the figure as it was.
        let uptime = (agent["uptime_seconds"] as? NSNumber)?.doubleValue
        if let interval = (agent["interval_seconds"] as? NSNumber)?.doubleValue, interval > 0,
            let cost = agent["cost"] as? [String: Any], !(uptime.map { $0 < interval * 1.5 } ?? false)
        {
            let bytes = cost.values.compactMap { (($0 as? [String: Any])?["bytes_after"] as? NSNumber)?.doubleValue }.reduce(0, +)
            bytesPerDay = bytes / interval * 86_400
        }
        residentBytes = agent["rss_bytes"] as? Int
        cpuPercent = (agent["cpu_percent"] as? NSNumber)?.doubleValue
        lostTotal = agent["lost_total"] as? Int
    }

    /// The registry columns it sets, in `values` order.
    static let columnNames = ["level", "agent_version", "events_per_second", "bytes_per_day", "rss_bytes", "cpu_percent", "lost_total"]

    /// The values of `columnNames` (nil values leave a column as it was).
    var values: [ColumnValue] {
        [
            ColumnValue(level), ColumnValue(agentVersion), ColumnValue(eventsPerSecond), ColumnValue(bytesPerDay),
            ColumnValue(residentBytes), ColumnValue(cpuPercent), ColumnValue(lostTotal),
        ]
    }
}
