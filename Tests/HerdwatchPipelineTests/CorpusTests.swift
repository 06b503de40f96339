import Foundation
import HerdwatchPipeline
import Testing

/// Golden files: every corpus log beside the ECS JSON it must produce.
///
/// Regenerate after an intended change with `HERDWATCH_UPDATE_GOLDEN=1 swift test --filter CorpusTests`
/// and review the diff; a failing test prints the first differing event.
@Suite struct CorpusTests {
    static let logs = Corpus.logFiles()

    @Test func corpusIsPresent() {
        #expect(Self.logs.count >= 15, "corpus not found at \(Corpus.auditLogs.path)")
    }

    @Test(arguments: Corpus.logFiles())
    func goldenOutput(log: String) throws {
        let (statistics, lines, failed) = try Corpus.replay([Corpus.auditLogs.appendingPathComponent(log).path])
        #expect(failed == 0)
        // audit-rhel7.log holds one line without a header, `type=UNKNOWN[1329] msg=?`; ausearch skips it too.
        #expect(statistics.malformedLines == (log.hasSuffix("audit-rhel7.log") ? 1 : 0))
        #expect(lines.count == statistics.events)
        let golden = Corpus.fixtures.appendingPathComponent("golden/" + log.replacingOccurrences(of: "/", with: "__") + ".jsonl")
        let actual = lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
        if ProcessInfo.processInfo.environment["HERDWATCH_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: golden.deletingLastPathComponent(), withIntermediateDirectories: true)
            try actual.write(to: golden, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        if expected != actual {
            let expectedLines = expected.split(separator: "\n").map(String.init)
            let index = zip(expectedLines, lines).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(expectedLines.count, lines.count)
            Issue.record(
                """
                \(log): output differs from \(golden.lastPathComponent) at event \(index + 1) \
                (expected \(expectedLines.count) events, got \(lines.count))
                expected: \(index < expectedLines.count ? expectedLines[index] : "<none>")
                actual:   \(index < lines.count ? lines[index] : "<none>")
                """)
        }
    }

    /// Every event line is a JSON object with the ECS basics.
    @Test(arguments: Corpus.logFiles())
    func outputIsValidECS(log: String) throws {
        let (_, lines, _) = try Corpus.replay([Corpus.auditLogs.appendingPathComponent(log).path])
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let event = object?["event"] as? [String: Any]
            #expect(object?["@timestamp"] is String)
            #expect(event?["action"] is String)
            #expect(event?["outcome"] is String)
            #expect((object?["auditd"] as? [String: Any])?["records"] is [Any])
        }
    }

    /// Records ausearch (audit 3.0.9) drops that Herdwatch keeps, by file: the count ausearch misses.
    static let ausearchDrops: [String: (count: Int, reason: String)] = [
        "go-libaudit/auparse/testdata/audit-ubuntu16.log": (
            1, "an AppArmor AVC record without SELinux's 'avc:' prefix (line 3) is not parsed by ausearch"
        )
    ]

    /// The number of events equals the number of distinct (node, time, serial) ids in the file, and
    /// the number of distinct ids `ausearch --raw` finds (scripts/ausearch-count; the setup script
    /// installs auditd), less the records ausearch is known to drop.
    @Test(arguments: Corpus.logFiles())
    func eventCountMatchesDistinctIdsAndAusearch(log: String) throws {
        let path = Corpus.auditLogs.appendingPathComponent(log).path
        let (statistics, _, _) = try Corpus.replay([path]) { $0.format = .none }
        let distinct = try distinctIds(path)
        #expect(statistics.events == distinct, "\(log)")
        let dropped = Self.ausearchDrops[log]?.count ?? 0
        let ausearch = try ausearchCount(path)
        #expect(statistics.events == ausearch + dropped, "\(log): \(Self.ausearchDrops[log]?.reason ?? "")")
        #expect(statistics.lateRecords == 0)
    }

    /// Distinct `node=… msg=audit(time:serial)` ids, found with plain string search.
    private func distinctIds(_ path: String) throws -> Int {
        var ids = Set<String>()
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            guard let open = line.range(of: "msg=audit("), let close = line[open.upperBound...].firstIndex(of: ")")
            else { continue }
            let node = line.hasPrefix("node=") ? line.prefix { $0 != " " } : ""
            ids.insert(node + "|" + line[open.upperBound..<close])
        }
        return ids.count
    }

    @Test func gzipInputGivesTheSameEvents() throws {
        let log = Corpus.auditLogs.appendingPathComponent("go-libaudit/auparse/testdata/audit-rhel7.log").path
        let compressed = Corpus.temporaryFile("rhel7.log.gz")
        defer { try? FileManager.default.removeItem(atPath: compressed) }
        try run("/bin/sh", ["-c", "gzip -c '\(log)' > '\(compressed)'"])
        let plain = try Corpus.replay([log])
        let gzipped = try Corpus.replay([compressed])
        #expect(plain.1 == gzipped.1)
        #expect(plain.0.events > 10)
    }

    private func ausearchCount(_ path: String) throws -> Int {
        let script = Corpus.packageRoot.appendingPathComponent("scripts/ausearch-count").path
        let output = try run(script, [path])
        guard let field = output.split(separator: "\t").last,
            let count = Int(field.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "ausearch-count said: \(output)"])
        }
        return count
    }

    @discardableResult
    private func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(executable) exited \(process.terminationStatus)"])
        }
        return String(decoding: data, as: UTF8.self)
    }
}
