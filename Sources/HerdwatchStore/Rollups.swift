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

    static let dayMilliseconds: Int64 = 86_400_000

    /// Counts `row` if it is a process start or an outbound connection.
    mutating func add(_ row: StoredEvent) {
        guard case .text(let action) = row.values[StoredEvent.actionValue] else { return }
        let day = row.time >= 0 ? row.time / Self.dayMilliseconds : (row.time + 1) / Self.dayMilliseconds - 1
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

    /// What the rollup views show; both engines' schemas follow it.
    static let processColumns = "day, host, parent_executable, executable, runs, first_time, last_time"
    static let connectionColumns = "day, host, destination_ip, destination_port, connections, first_time, last_time"
}
