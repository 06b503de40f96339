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
