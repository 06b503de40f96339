import Testing

@testable import HerdwatchStore

/// A batch body parsed in pieces on several cores gives what one pass gives: the same lines, rows
/// at the same positions, rejections with the same line numbers.
@Suite struct BatchBodyTests {
    static func event(_ number: Int, host: String = "h1") -> String {
        #"{"@timestamp":"2026-11-23T10:00:\#(String(format2: number % 60))Z","event":{"id":"\#(host)-\#(number)","action":"process-started"},"host":{"name":"\#(host)"},"process":{"pid":\#(number),"command_line":"/bin/echo caf\#u{E9} \#(number)"}}"#
    }

    /// 200 lines: events, a malformed line, another host's event, blank lines; with and without a
    /// final newline.
    static let bodies: [String] = {
        var lines: [String] = []
        for number in 0..<200 {
            switch number {
            case 17: lines.append("{\"not\": json")
            case 90: lines.append(event(number, host: "h2"))
            case 120, 121: lines.append("")
            default: lines.append(event(number))
            }
        }
        let text = lines.joined(separator: "\n")
        return [text, text + "\n", "", "\n", event(1)]
    }()

    @Test(arguments: [1, 2, 3, 7, 64, 500])
    func piecesGiveWhatOnePassGives(parts: Int) async {
        for body in Self.bodies {
            let bytes = Array(body.utf8)
            let serial = ParsedBatch.parse(body: bytes, host: "h1")
            let parallel = await ParsedBatch.parse(body: bytes, host: "h1", parts: parts, minimumPieceBytes: 1)
            #expect(parallel.lines == serial.lines)
            #expect(parallel.batch.rows.map(\.line) == serial.batch.rows.map(\.line))
            #expect(parallel.batch.rows.map(\.id) == serial.batch.rows.map(\.id))
            #expect(parallel.batch.rejected == serial.batch.rejected)
        }
        // The serial pass is right to begin with: line numbers from 1, positions from 0.
        let serial = ParsedBatch.parse(body: Array(Self.bodies[1].utf8), host: "h1")
        #expect(serial.lines.count == 201)
        #expect(serial.batch.rejected.map(\.line) == [18, 91])
        #expect(serial.batch.count == 196 && serial.batch.rows[17].line == 18)
    }

    /// The journal's check (no strings made) refuses exactly the lines the full parse refuses, for
    /// the same reasons, and counts the same events, in pieces or not.
    @Test(arguments: [1, 3, 64])
    func theCheckAgreesWithTheParse(parts: Int) async {
        let odd = [
            "   ", "\t\r", "\u{A0}", #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":"h1"},"event":{"sequence":7}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":"h\u0031"},"event":{"id":"escaped-host"}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":"h1"},"event":{"id":""}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":"h1"},"event":{"id":5}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":""},"event":{"id":"x"}}"#,
            #"{"@timestamp":"2026-11-23 10:00:00","host":{"name":"h1"},"event":{"id":"x"}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00\u005a","host":{"name":"h1"},"event":{"id":"x"}}"#,
            #"{"host":{"name":"h1"},"event":{"id":"x"}}"#, #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":"h1"}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00Z","host":{"name":"e\u0301"},"event":{"id":"x"}}"#,
            #"{"@timestamp":"2026-11-23T10:00:00Z","host":"h1","event":{"id":"x"}}"#, "[1]", "{} {}",
        ]
        let bodies = Self.bodies + [odd.joined(separator: "\n"), (odd + Self.bodies).joined(separator: "\n")]
        for host in ["h1", "\u{E9}"] {
            for body in bodies {
                let bytes = Array(body.utf8)
                let parsed = ParsedBatch.parse(body: bytes, host: host)
                let checked = await ParsedBatch.check(body: bytes, host: host, parts: parts, minimumPieceBytes: 1)
                #expect(checked.count == parsed.batch.count)
                #expect(checked.rejected == parsed.batch.rejected)
            }
        }
        let checked = await ParsedBatch.check(body: Array(odd.joined(separator: "\n").utf8), host: "h1", parts: parts, minimumPieceBytes: 1)
        #expect(checked.count == 3, "the sequence, the escaped host name, the escaped Z")
        #expect(checked.rejected.map(\.line) == [3, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16])
    }

    /// A batch is cut at newline bytes as `split(omittingEmptySubsequences: false)` cuts it, and
    /// also between CR and LF (one Character for `split`, so such lines used to stay joined).
    @Test func batchLinesAreCutAtNewlines() {
        func lines(_ text: String) -> [Substring] { Array(text.utf8).withUnsafeBytes { ParsedBatch.lines(utf8: $0) } }
        for text in ["", "\n", "a", "a\n", "\na", "a\nb", "a\n\nb\n", "é\u{301}\n{\"x\":\"ü\"}\n\n"] {
            #expect(lines(text) == text.split(separator: "\n", omittingEmptySubsequences: false).map { Substring($0) }, "\(text.debugDescription)")
        }
        #expect(lines("a\r\nb") == ["a\r", "b"], "the carriage return stays on its line (JSON white space)")
        // Each line is checked as UTF-8 on its own.
        let invalid: [UInt8] = Array("ok\n".utf8) + [0x7B, 0xC3, 0x0A, 0xFF, 0x7D]
        #expect(invalid.withUnsafeBytes { ParsedBatch.lines(utf8: $0) } == ["ok", "{\u{FFFD}", "\u{FFFD}}"], "invalid UTF-8 replaced within its line")
    }

    @Test func piecesAreCutAfterNewlinesOnly() {
        let bytes = Array(Self.bodies[0].utf8)
        for parts in [2, 5, 33] {
            let bounds = bytes.withUnsafeBytes { ParsedBatch.pieceBounds($0, parts: parts) }
            #expect(bounds.first == 0 && bounds.last == bytes.count)
            #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 } || bounds.count == 2)
            for bound in bounds.dropFirst().dropLast() { #expect(bytes[bound - 1] == 0x0A) }
        }
    }
}

extension String {
    fileprivate init(format2 number: Int) { self = number < 10 ? "0\(number)" : "\(number)" }
}
