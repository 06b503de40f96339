/// Counts kept at ingest, per UTC day and host, for the fleet-wide questions that would otherwise
/// read every event: which programs start under which parents (`process_pairs`), and where hosts
/// connect to (`connections`). Both engines add a batch's counts in the batch's transaction.
struct Rollups {
    struct ProcessKey: Hashable {
        var day: Int64
        var host: String
        /// "" when the event has none (the tables' keys are never NULL).
        var parentExecutable: String
        var executable: String
    }

    struct ConnectionKey: Hashable {
        var day: Int64
        var host: String
        var destinationIP: String
        var destinationPort: Int64
    }

    /// How many events, and the first and last time (milliseconds since the epoch).
    struct Count {
        var events: Int64
        var first: Int64
        var last: Int64

        mutating func add(_ time: Int64) {
            events += 1
            first = min(first, time)
            last = max(last, time)
        }
    }

    var processes: [ProcessKey: Count] = [:]
    var connections: [ConnectionKey: Count] = [:]

    /// Counts `row` if it is a process start or an outbound connection.
    mutating func add(_ row: StoredEvent) {
        guard case .text(let action) = row.values[StoredEvent.actionValue] else { return }
        let day = UTCDay.of(row.time)
        func text(_ index: Int) -> String {
            if case .text(let text) = row.values[index] { return text }
            return ""
        }
        if action == "process-started" {
            let key = ProcessKey(
                day: day, host: row.host, parentExecutable: text(StoredEvent.parentExecutableValue),
                executable: text(StoredEvent.executableValue))
            processes[key, default: Count(events: 0, first: row.time, last: row.time)].add(row.time)
        } else if action == "network-connected" {
            var port: Int64 = 0
            if case .integer(let number) = row.values[StoredEvent.destinationPortValue] { port = number }
            let key = ConnectionKey(day: day, host: row.host, destinationIP: text(StoredEvent.destinationIPValue), destinationPort: port)
            connections[key, default: Count(events: 0, first: row.time, last: row.time)].add(row.time)
        }
    }

    /// A rollup table as both engines write it: four key columns, the count, the first and the last
    /// time; and the batch's counts as rows of those columns, in key order (so that concurrent
    /// batches lock PostgreSQL's rows in one order).
    struct Table {
        var name: String
        var columns: [String]
        var rows: [[ColumnValue]]

        var keyColumns: ArraySlice<String> { columns[..<4] }
        var countColumn: String { columns[4] }
    }

    /// The rollup tables with the batch's counts (tables without any are left out).
    var tables: [Table] {
        func row(_ key: [ColumnValue], _ count: Count) -> [ColumnValue] {
            key + [.integer(count.events), .integer(count.first), .integer(count.last)]
        }
        let processRows = processes.sorted { ($0.key.day, $0.key.host, $0.key.parentExecutable, $0.key.executable) < ($1.key.day, $1.key.host, $1.key.parentExecutable, $1.key.executable) }
            .map { row([.integer($0.key.day), .text($0.key.host), .text($0.key.parentExecutable), .text($0.key.executable)], $0.value) }
        let connectionRows = connections.sorted { ($0.key.day, $0.key.host, $0.key.destinationIP, $0.key.destinationPort) < ($1.key.day, $1.key.host, $1.key.destinationIP, $1.key.destinationPort) }
            .map { row([.integer($0.key.day), .text($0.key.host), .text($0.key.destinationIP), .integer($0.key.destinationPort)], $0.value) }
        return [
            Table(name: "process_rollup", columns: Self.processColumns, rows: processRows),
            Table(name: "connection_rollup", columns: Self.connectionColumns, rows: connectionRows),
        ].filter { !$0.rows.isEmpty }
    }

    /// What the rollup views show; both engines' schemas follow it.
    static let processColumns = ["day", "host", "parent_executable", "executable", "runs", "first_time", "last_time"]
    static let connectionColumns = ["day", "host", "destination_ip", "destination_port", "connections", "first_time", "last_time"]
}
