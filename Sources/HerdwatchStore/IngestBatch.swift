extension StoredEvent {
    /// Parses a batch of ECS JSON lines the same way for every engine: blank lines are skipped, a
    /// line that is not an event is rejected with its number (from 1) and the reason, and when
    /// `host` is given every event must be from that host.
    static func parse(_ lines: [Substring], host: String? = nil) -> (rows: [StoredEvent], rejected: [IngestResult.Rejection]) {
        var rows: [StoredEvent] = []
        var rejected: [IngestResult.Rejection] = []
        for (index, line) in lines.enumerated() where !isBlank(line.utf8) {
            do {
                var row = try StoredEvent(json: line, host: host)
                row.line = index
                rows.append(row)
            } catch {
                rejected.append(IngestResult.Rejection(line: index + 1, reason: "\(error)"))
            }
        }
        return (rows, rejected)
    }

    /// A line of nothing but ASCII white space: spaces, tabs, carriage returns, vertical tabs and
    /// form feeds (skipped, not rejected).
    static func isBlank(_ line: some Sequence<UInt8>) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0B || $0 == 0x0C }
    }

    /// The rows whose `event.id` is not already earlier in the batch (the first one is kept, as
    /// SQLite's INSERT OR IGNORE does), and how many repeats were left out.
    static func firstOfEachID(_ rows: [StoredEvent]) -> (rows: [StoredEvent], repeats: Int) {
        var seen = Set<String>()
        let unique = rows.filter { seen.insert($0.id).inserted }
        return (unique, rows.count - unique.count)
    }
}
