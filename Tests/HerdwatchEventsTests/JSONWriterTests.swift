import Testing

@testable import HerdwatchEvents

@Suite struct JSONWriterTests {
    private func json(_ build: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter()
        build(&writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    @Test func nestedContainersGetCommasRight() {
        let text = json { w in
            w.beginObject()
            w.member("a", "x")
            w.key("b")
            w.beginArray()
            w.number(1)
            w.number(-2)
            w.beginObject()
            w.endObject()
            w.endArray()
            w.key("c")
            w.beginObject()
            w.member("d", 3 as Int?)
            w.member("e", nil as String?)
            w.endObject()
            w.key("f")
            w.bool(false)
            w.endObject()
        }
        #expect(text == #"{"a":"x","b":[1,-2,{}],"c":{"d":3},"f":false}"#)
    }

    @Test func escapesControlCharactersAndQuotes() {
        let text = json { $0.string(bytes: Array("a\"b\\c\n\t\u{01}".utf8)) }
        #expect(text == #""a\"b\\c\n\t\u0001""#)
    }

    @Test(arguments: [
        ([0xFF] as [UInt8], "\"\u{FFFD}\""),
        ([0xC3, 0xA9], "\"é\""),
        ([0xC3], "\"\u{FFFD}\""),
        ([0xE2, 0x82], "\"\u{FFFD}\u{FFFD}\""),
        ([0xED, 0xA0, 0x80], "\"\u{FFFD}\u{FFFD}\u{FFFD}\""),  // a UTF-16 surrogate is not UTF-8
        ([0xC0, 0xAF], "\"\u{FFFD}\u{FFFD}\""),  // overlong
        ([0xF0, 0x9F, 0x98, 0x80], "\"😀\""),
    ])
    func invalidUTF8BecomesReplacementCharacters(bytes: [UInt8], expected: String) {
        #expect(json { $0.string(bytes: bytes) } == expected)
    }

    /// The escaper tests words of eight bytes, and a short tail once as one word: every length
    /// up to 20 with one byte that must be escaped (or checked as UTF-8) at each position agrees
    /// with escaping byte by byte.
    @Test func wordAtATimeAgreesWithByteByByte() {
        func reference(_ bytes: [UInt8]) -> String {
            var out = "\""
            for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        let specials: [[UInt8]] = [[0x22], [0x5C], [0x0A], [0x01], [0x1F], [0x7F], [0xC3, 0xA9], [0xFF], [0x00]]
        for length in 0...20 {
            let plain = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            #expect(json { $0.string(bytes: plain) } == reference(plain))
            for special in specials {
                for position in 0...length {
                    var bytes = plain
                    bytes.insert(contentsOf: special, at: position)
                    let text = json { $0.string(bytes: bytes) }
                    #expect(text == reference(bytes), "length \(length), \(special) at \(position)")
                }
            }
        }
    }

    /// A raw record member takes the plain fast path or the escaping one; both must write the same
    /// as escaping key and value one by one, for every length and special byte in either.
    @Test func rawMembersAgreeWithEscapingEachPart() {
        let specials: [[UInt8]] = [[0x22], [0x5C], [0x0A], [0x01], [0xC3, 0xA9], [0xFF], [0x00]]
        var cases: [(key: [UInt8], value: [UInt8])] = []
        for length in 0...17 {
            let plain = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            cases.append((Array("k".utf8), plain))
            cases.append((plain, Array("v".utf8)))
            for special in specials {
                for position in stride(from: 0, through: length, by: max(1, length / 4)) {
                    var bytes = plain
                    bytes.insert(contentsOf: special, at: position)
                    cases.append((Array("key".utf8), bytes))
                    cases.append((bytes, Array("value".utf8)))
                }
            }
        }
        for (key, value) in cases {
            // As a record lays them out: key=value, with a byte before and after.
            let record = [UInt8(ascii: " ")] + key + [UInt8(ascii: "=")] + value + [UInt8(ascii: " ")]
            let field = AuditField(
                keyStart: 1, keyEnd: UInt32(1 + key.count), valueStart: UInt32(2 + key.count),
                valueEnd: UInt32(2 + key.count + value.count), quoting: .none, isEnriched: false)
            let fast = json { w in
                w.beginObject()
                record.withUnsafeBufferPointer { w.rawMember($0, field) }
                w.endObject()
            }
            let slow = json { w in
                w.beginObject()
                w.key(bytes: key)
                w.string(bytes: value)
                w.endObject()
            }
            #expect(fast == slow, "key \(key), value \(value)")
        }
    }

    @Test func largeNumbers() {
        #expect(json { $0.number(UInt64.max) } == "18446744073709551615")
        #expect(json { $0.number(Int64.min) } == "-9223372036854775808")
        #expect(json { $0.number(0) } == "0")
    }

    @Test(arguments: [
        (0 as Int64, "1970-01-01T00:00:00"),
        (1_492_037_291, "2017-04-12T22:48:11"),
        (951_782_400, "2000-02-29T00:00:00"),
        (4_102_444_799, "2099-12-31T23:59:59"),
        (-1, "1969-12-31T23:59:59"),
    ])
    func civilTime(seconds: Int64, expected: String) {
        var writer = JSONWriter()
        writer.appendTimestamp(AuditTimestamp(seconds: seconds, milliseconds: 7))
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "\"\(expected).007Z\"")
    }

    @Test(arguments: [(0.0, "0"), (12.5, "12.5"), (0.125, "0.125"), (3.0, "3"), (-1.25, "-1.25"), (2.0004, "2"), (Double.nan, "0")])
    func decimals(value: Double, expected: String) {
        var writer = JSONWriter()
        writer.decimal(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
    }
}
