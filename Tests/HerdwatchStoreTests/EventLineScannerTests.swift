import Foundation
import Testing

@testable import HerdwatchStore

/// The byte scanner ingest uses agrees with Foundation's JSON reader on what it keeps, and refuses
/// what is not one JSON object.
@Suite struct EventLineScannerTests {
    /// A line scanned, with its bytes: the scanner notes where values are, and makes them strings
    /// from the same bytes when asked.
    struct Scanned {
        var scanner: EventLineScanner
        var line: [UInt8]
        subscript(field: EventLineScanner.Field) -> String? { line.withUnsafeBytes { scanner.string(field, in: $0) } }
        func integer(_ field: EventLineScanner.Field) -> Int64? { line.withUnsafeBytes { scanner.integer(field, in: $0) } }
        var hasAgentFigures: Bool { scanner.hasAgentFigures }
    }

    func scan(_ line: String) throws -> Scanned {
        let bytes = Array(line.utf8)
        return Scanned(scanner: try bytes.withUnsafeBytes { try EventLineScanner($0) }, line: bytes)
    }

    @Test func escapesNumbersAndNestingReadAsFoundationReadsThem() throws {
        let line = #"""
            { "@timestamp" : "2026-11-23T10:00:00Z", "extra": {"deep": [1, -2.5e3, true, false, null, {"process": {"pid": 9}}]},
              "event": {"id": "a\"b", "category": ["process", "network"], "sequence": 42, "action": "process-started"},
              "host": {"name": "web\u00e9\ud83d\ude00"}, "tags": [],
              "process": {"pid": 4711, "command_line": "sh -c \"echo \\\\ \/ \t\"", "parent": {"executable": "/usr/bin/bash", "pid": 1}},
              "destination": {"port": 443, "ip": "2001:db8::1"}, "user": {"name": null}, "file": "not an object" }
            """#
        let scanned = try scan(line)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let process = object["process"] as? [String: Any]
        #expect(scanned[.eventID] == (object["event"] as? [String: Any])?["id"] as? String)
        #expect(scanned[.hostName] == (object["host"] as? [String: Any])?["name"] as? String)
        #expect(scanned[.hostName] == "webé😀")
        #expect(scanned[.commandLine] == process?["command_line"] as? String)
        #expect(scanned[.parentExecutable] == "/usr/bin/bash" && scanned[.category] == "process,network" && scanned[.tags] == "")
        #expect(scanned.integer(.pid) == 4711 && scanned.integer(.sequence) == 42 && scanned.integer(.destinationPort) == 443)
        #expect(scanned[.destinationIP] == "2001:db8::1" && scanned[.userName] == nil && scanned[.filePath] == nil)
        #expect(!scanned.hasAgentFigures)
    }

    @Test(arguments: [
        "", "[]", "\"text\"", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\u{01}\"}", "{\"a\":\"open}", "{\"a\":[1,]}", "{\"a\":1} trailing", "{\"a\":\"\\u12\"}", "{'a':1}",
    ])
    /// RFC 8259 strictly (Foundation lets trailing commas through; this does not).
    func malformedLinesAreRefused(line: String) {
        #expect(throws: EventLineScanner.Malformed.self) { try scan(line) }
    }

    /// The same refusals deep inside what the scan skips (the raw records), where a flat loop
    /// rather than the field-reading descent checks the grammar.
    @Test(arguments: [
        "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\u{01}\"}",
        "{\"a\":\"open}", "{\"a\":[1,]}", "{\"a\":\"\\u12\"}", "{'a':1}", "[1,2", "[1 2]", "{\"a\":1]", "[1}", "{,}", "[,1]", "nul", "-", "1e", "\"a",
    ])
    func malformedValuesInSkippedPartsAreRefused(value: String) {
        #expect(throws: EventLineScanner.Malformed.self) { try scan(#"{"host":{"name":"h"},"auditd":{"records":[{"type":"X"},"# + value + "]}}") }
        #expect(throws: EventLineScanner.Malformed.self) { try scan(#"{"unknown":"# + value + "}") }
    }

    /// Nesting up to 64 levels (the line's object is the first) is read; one more is refused,
    /// wherever it is.
    @Test func nestingIsBounded() throws {
        for open in ["[", "{\"k\":"] {
            let close = open == "[" ? "]" : "}"
            let deepest = #"{"x":"# + String(repeating: open, count: 63) + "1" + String(repeating: close, count: 63) + "}"
            #expect(try scan(deepest).integer(.pid) == nil)
            let tooDeep = #"{"x":"# + String(repeating: open, count: 64) + "1" + String(repeating: close, count: 64) + "}"
            #expect(throws: EventLineScanner.Malformed.self) { try scan(tooDeep) }
        }
        let mixed = #"{"x":[{"a":[{},[],"s",-0.5e+2,true,false,null]},{"b":{"c":[[1],[2,{"d":"\u00e9\""}]]}}]}"#
        _ = try scan(mixed)
    }

    /// The eight-bytes-at-a-time search for where a string may stop finds the same first byte as
    /// looking at each byte: quotes, backslashes and control bytes at every offset, beside bytes
    /// that are close to them (0x1F/0x20, 0x21/0x23, 0x5B/0x5D, 0x7F, 0xA0, 0xFF).
    @Test func stringStopsFindTheFirstStoppingByte() {
        let special: [UInt8] = [0x22, 0x5C, 0x00, 0x1F, 0x0A]
        let plain: [UInt8] = [0x20, 0x21, 0x23, 0x5B, 0x5D, 0x41, 0x7F, 0x80, 0xA0, 0xC3, 0xFF]
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20_000 {
            var bytes = (0..<8).map { _ in plain.randomElement(using: &generator)! }
            for _ in 0..<(round % 3) { bytes[Int.random(in: 0..<8, using: &generator)] = special.randomElement(using: &generator)! }
            let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            let stops = EventLineScanner.stringStops(word)
            let first = bytes.firstIndex { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }
            #expect((stops == 0 ? nil : stops.trailingZeroBitCount >> 3) == first, "\(bytes)")
        }
        // Strings of every length around the eight-byte steps, with an escape at every place.
        for length in 0..<20 {
            for place in 0...length {
                var text = String(repeating: "x", count: length)
                text.insert(contentsOf: "\\\"", at: text.index(text.startIndex, offsetBy: place))
                let line = #"{"host":{"name":"h"},"process":{"command_line":""# + text + #""}}"#
                #expect((try? scan(line)[.commandLine]) == String(repeating: "x", count: place) + "\"" + String(repeating: "x", count: length - place))
            }
        }
    }

    @Test func heartbeatsAreNoticed() throws {
        #expect(try scan(#"{"herdwatch":{"agent":{"profile":"pet"}},"agent":{"version":"1.0"}}"#).hasAgentFigures)
        #expect(try scan(#"{"herdwatch":{"agent":{"profile":"pet"}},"agent":{"version":"1.0"}}"#)[.agentVersion] == "1.0")
        #expect(try !scan(#"{"herdwatch":{"loss":{"count":1}}}"#).hasAgentFigures)
    }
}
