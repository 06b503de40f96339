import Foundation
import HerdwatchAudit
import HerdwatchEvents
import HerdwatchPipeline
import Testing

/// A small deterministic generator (SplitMix64), so a failure reproduces.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct RobustnessTests {
    /// Every line of every corpus log.
    static func corpusLines() -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for log in Corpus.logFiles() {
            guard let data = FileManager.default.contents(atPath: Corpus.auditLogs.appendingPathComponent(log).path)
            else { continue }
            lines += data.split(separator: UInt8(ascii: "\n")).map { Array($0) }
        }
        return lines
    }

    static let interesting: [UInt8] = [
        0, UInt8(ascii: "="), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: " "), 0x1D, 0xFF, 0xC3,
        UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "["),
        UInt8(ascii: "{"), UInt8(ascii: "9"), UInt8(ascii: "A"), UInt8(ascii: "\\"), 0x0D,
    ]

    static func mutate(_ line: [UInt8], _ random: inout SplitMix, pool: [[UInt8]]) -> [UInt8] {
        var bytes = line
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            switch Int.random(in: 0..<8, using: &random) {
            case 0 where !bytes.isEmpty:  // flip a byte
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            case 1 where !bytes.isEmpty:  // truncate
                bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &random)...)
            case 2:  // insert a byte that means something to the parser
                let at = Int.random(in: 0...bytes.count, using: &random)
                bytes.insert(interesting.randomElement(using: &random)!, at: at)
            case 3 where bytes.count > 2:  // delete a span
                let start = Int.random(in: 0..<bytes.count - 1, using: &random)
                let end = Int.random(in: start...min(bytes.count, start + 20), using: &random)
                bytes.removeSubrange(start..<end)
            case 4:  // splice with another line
                let other = pool.randomElement(using: &random)!
                let cut = Int.random(in: 0...bytes.count, using: &random)
                let from = Int.random(in: 0...other.count, using: &random)
                bytes = Array(bytes[..<cut]) + Array(other[from...])
            case 5 where !bytes.isEmpty:  // duplicate a span many times
                let start = Int.random(in: 0..<bytes.count, using: &random)
                let span = bytes[start..<min(bytes.count, start + 12)]
                bytes.insert(contentsOf: Array(repeating: Array(span), count: Int.random(in: 1...300, using: &random)).flatMap { $0 }, at: start)
            case 6:  // odd-length or non-hex hex payloads
                bytes += Array(" saddr=0A0 proctitle=ZZ a0_len=5 a0[0]=4 argc=99999999999999999999 a7=\"".utf8)
            default:  // random garbage
                bytes += (0..<Int.random(in: 1...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
        }
        return bytes
    }

    @Test func thousandsOfMutatedLinesNeverCrashAndAlwaysGiveValidJSON() throws {
        let pool = Self.corpusLines()
        try #require(pool.count > 100)
        var random = SplitMix(state: 0x5EED)
        var pipeline = AuditPipeline()
        let encoder = ECSEncoder()
        var writer = JSONWriter()
        var events = 0
        var invalid: [String] = []
        let emit: (Event) -> Void = { event in
            writer.reset()
            encoder.encode(event, into: &writer)
            events += 1
            if (try? JSONSerialization.jsonObject(with: Data(writer.bytes))) == nil, invalid.count < 5 {
                invalid.append(String(decoding: writer.bytes, as: UTF8.self))
            }
        }
        let count = 20_000
        var malformed = 0
        for index in 0..<count {
            let line = Self.mutate(pool[index % pool.count], &random, pool: pool)
            if pipeline.process(line: line, source: "mutated", lineNumber: index + 1, emit: emit) != nil {
                malformed += 1
            }
        }
        pipeline.finish(emit: emit)
        let statistics = pipeline.statistics
        #expect(invalid.isEmpty, "invalid JSON: \(invalid)")
        #expect(statistics.lines == count)
        #expect(statistics.malformedLines == malformed)
        #expect(statistics.records + statistics.malformedLines + statistics.blankLines == count)
        #expect(statistics.events == events)
        #expect(malformed > 100, "the mutations should break some headers")
        #expect(statistics.records > 1000, "most lines should still parse")
    }

    @Test func malformedLinesAreReportedWithFileAndLineAndTheRestFlows() throws {
        let path = Corpus.temporaryFile("malformed.log")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = """
            type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 success=yes exit=0 pid=1
            this is not an audit record
            type=PROCTITLE msg=audit(1.000:1): proctitle="ls"

            type=CWD msg=audit(bad): cwd="/"
            type=USER_LOGIN msg=audit(2.000:2): pid=3 uid=0 msg='op=login acct="bob" res=success'

            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var configuration = Replay.Configuration()
        configuration.maximumReportedErrors = 10
        let (statistics, lines, failed) = try Corpus.replay([path])
        #expect(failed == 0)
        #expect(statistics.malformedLines == 2)
        #expect(statistics.blankLines == 1)
        #expect(statistics.events == 2)
        #expect(lines.count == 2)

        var pipeline = AuditPipeline()
        let reports = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { index, line in
            pipeline.process(line: Array(line.utf8), source: path, lineNumber: index + 1) { _ in }
        }
        #expect(reports.map(\.line) == [2, 5])
        #expect(reports.allSatisfy { $0.source == path })
        #expect(reports[0].description.contains("no 'type=' field"))
        #expect(reports[1].description.contains("malformed 'audit(seconds.millis:serial):' header"))
    }

    @Test func overlongLineIsCutCountedAndSkipped() throws {
        let path = Corpus.temporaryFile("long.log")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let long = "type=CWD msg=audit(1.000:1): cwd=\"" + String(repeating: "x", count: 3 << 20) + "\"\n"
        try (long + "type=CWD msg=audit(1.000:2): cwd=\"/\"\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (statistics, lines, _) = try Corpus.replay([path])
        #expect(statistics.malformedLines == 1)
        #expect(statistics.events == 1)
        #expect(lines.count == 1)
    }

    @Test func missingInputIsReportedAndOthersStillRun() throws {
        let log = Corpus.auditLogs.appendingPathComponent("go-libaudit/testdata/normal.log").path
        let (statistics, _, failed) = try Corpus.replay(["/nonexistent/audit.log", log])
        #expect(failed == 1)
        #expect(statistics.events > 0)
    }

    @Test func truncatedGzipIsReported() throws {
        let log = Corpus.auditLogs.appendingPathComponent("go-libaudit/auparse/testdata/audit-rhel7.log").path
        let gz = Corpus.temporaryFile("cut.log.gz")
        defer { try? FileManager.default.removeItem(atPath: gz) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "gzip -c '\(log)' | head -c 2000 > '\(gz)'"]
        try process.run()
        process.waitUntilExit()
        let (statistics, _, failed) = try Corpus.replay([gz])
        #expect(failed == 1)
        #expect(statistics.records > 0)
    }
}
