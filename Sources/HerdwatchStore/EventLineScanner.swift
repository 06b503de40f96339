#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the fields the store keeps in columns from one ECS JSON line, over its bytes, in one pass
/// that also checks the whole line is well-formed JSON. Ingest runs it on every event, so it makes
/// no Foundation objects: only the values kept become Strings.
///
/// Keys are compared as written; a key spelled with escapes (`"ho\u0073t"`) is not recognised (the
/// event is still stored whole, in `json`).
struct EventLineScanner {
    /// The fields, by `Field`; strings unescaped, integers as written.
    private(set) var strings = [String?](repeating: nil, count: Field.allCases.count)
    private(set) var integers = [Int64?](repeating: nil, count: Field.allCases.count)
    /// The line has a `herdwatch.agent` object (a heartbeat): its figures are read separately.
    private(set) var hasAgentFigures = false

    enum Field: Int, CaseIterable {
        case timestamp, eventID, kind, action, category, outcome, module, sequence, hostName
        case pid, executable, commandLine, entityID, parentEntityID, parentExecutable
        case userName, sourceIP, destinationIP, destinationPort, filePath, tags, agentVersion
    }

    struct Malformed: Error {
        var offset: Int
    }

    /// Where a key leads: another object to look into, or a field.
    private enum Target {
        case object(Node)
        case field(Field)
        case agentFigures
    }

    private enum Node: Int {
        case root, event, host, process, parent, user, source, destination, file, herdwatch, agent
    }

    private static func target(_ node: Node, _ key: UnsafeRawBufferPointer) -> Target? {
        func equals(_ text: StaticString) -> Bool {
            text.utf8CodeUnitCount == key.count && memcmp(text.utf8Start, key.baseAddress!, key.count) == 0
        }
        switch node {
        case .root:
            if equals("@timestamp") { return .field(.timestamp) }
            if equals("event") { return .object(.event) }
            if equals("host") { return .object(.host) }
            if equals("process") { return .object(.process) }
            if equals("user") { return .object(.user) }
            if equals("source") { return .object(.source) }
            if equals("destination") { return .object(.destination) }
            if equals("file") { return .object(.file) }
            if equals("tags") { return .field(.tags) }
            if equals("herdwatch") { return .object(.herdwatch) }
            if equals("agent") { return .object(.agent) }
        case .event:
            if equals("id") { return .field(.eventID) }
            if equals("kind") { return .field(.kind) }
            if equals("action") { return .field(.action) }
            if equals("category") { return .field(.category) }
            if equals("outcome") { return .field(.outcome) }
            if equals("module") { return .field(.module) }
            if equals("sequence") { return .field(.sequence) }
        case .host:
            if equals("name") { return .field(.hostName) }
        case .process:
            if equals("pid") { return .field(.pid) }
            if equals("executable") { return .field(.executable) }
            if equals("command_line") { return .field(.commandLine) }
            if equals("entity_id") { return .field(.entityID) }
            if equals("parent") { return .object(.parent) }
        case .parent:
            if equals("entity_id") { return .field(.parentEntityID) }
            if equals("executable") { return .field(.parentExecutable) }
        case .user:
            if equals("name") { return .field(.userName) }
        case .source:
            if equals("ip") { return .field(.sourceIP) }
        case .destination:
            if equals("ip") { return .field(.destinationIP) }
            if equals("port") { return .field(.destinationPort) }
        case .file:
            if equals("path") { return .field(.filePath) }
        case .herdwatch:
            if equals("agent") { return .agentFigures }
        case .agent:
            if equals("version") { return .field(.agentVersion) }
        }
        return nil
    }

    private var bytes: UnsafeRawBufferPointer
    private var index = 0
    private var scratch: [UInt8] = []

    /// Scans `line`; throws `Malformed` when it is not one JSON object.
    init(_ line: UnsafeRawBufferPointer) throws(Malformed) {
        bytes = line
        skipSpace()
        guard peek() == UInt8(ascii: "{") else { throw Malformed(offset: index) }
        try object(.root, depth: 0)
        skipSpace()
        guard index == bytes.count else { throw Malformed(offset: index) }
        bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    subscript(field: Field) -> String? { strings[field.rawValue] }
    func integer(_ field: Field) -> Int64? { integers[field.rawValue] }

    // MARK: grammar

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8) throws(Malformed) {
        skipSpace()
        guard peek() == byte else { throw Malformed(offset: index) }
        index += 1
    }

    private mutating func object(_ node: Node?, depth: Int) throws(Malformed) {
        guard depth < 64 else { throw Malformed(offset: index) }
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipSpace()
            guard peek() == UInt8(ascii: "\"") else { throw Malformed(offset: index) }
            let keyStart = index + 1
            try skipString()
            let key = UnsafeRawBufferPointer(rebasing: bytes[keyStart..<(index - 1)])
            try expect(UInt8(ascii: ":"))
            skipSpace()
            switch node.flatMap({ Self.target($0, key) }) {
            case .object(let child) where peek() == UInt8(ascii: "{"): try object(child, depth: depth + 1)
            case .field(let field): try value(for: field, depth: depth + 1)
            case .agentFigures:
                hasAgentFigures = peek() == UInt8(ascii: "{")
                try skipValue(depth: depth + 1)
            default: try skipValue(depth: depth + 1)
            }
            skipSpace()
            guard let next = peek() else { throw Malformed(offset: index) }
            index += 1
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { throw Malformed(offset: index - 1) }
        }
    }

    /// A wanted value: a string, an integer, or (category, tags) an array of strings joined by commas.
    private mutating func value(for field: Field, depth: Int) throws(Malformed) {
        guard let first = peek() else { throw Malformed(offset: index) }
        switch first {
        case UInt8(ascii: "\""):
            strings[field.rawValue] = try string()
        case UInt8(ascii: "["):
            guard field == .category || field == .tags else { return try skipValue(depth: depth) }
            index += 1
            var joined = ""
            var first = true
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                index += 1
            } else {
                while true {
                    skipSpace()
                    if peek() == UInt8(ascii: "\"") {
                        if !first { joined += "," }
                        joined += try string()
                    } else {
                        let start = index
                        try skipValue(depth: depth + 1)
                        if !first { joined += "," }
                        joined += String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    }
                    first = false
                    skipSpace()
                    guard let next = peek() else { throw Malformed(offset: index) }
                    index += 1
                    if next == UInt8(ascii: "]") { break }
                    guard next == UInt8(ascii: ",") else { throw Malformed(offset: index - 1) }
                }
            }
            strings[field.rawValue] = joined
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = index
            let integral = try number()
            if integral, index - start <= 18 {
                var number: Int64 = 0
                var negative = false
                for position in start..<index {
                    let byte = bytes[position]
                    if byte == UInt8(ascii: "-") { negative = true } else { number = number * 10 + Int64(byte - 0x30) }
                }
                integers[field.rawValue] = negative ? -number : number
            }
        default:
            try skipValue(depth: depth)
        }
    }

    private mutating func skipValue(depth: Int) throws(Malformed) {
        skipSpace()
        guard let byte = peek() else { throw Malformed(offset: index) }
        switch byte {
        case UInt8(ascii: "{"): try object(nil, depth: depth)
        case UInt8(ascii: "["):
            guard depth < 64 else { throw Malformed(offset: index) }
            index += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try skipValue(depth: depth + 1)
                skipSpace()
                guard let next = peek() else { throw Malformed(offset: index) }
                index += 1
                if next == UInt8(ascii: "]") { return }
                guard next == UInt8(ascii: ",") else { throw Malformed(offset: index - 1) }
            }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try number()
        }
    }

    private mutating func literal(_ word: StaticString) throws(Malformed) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count, memcmp(word.utf8Start, bytes.baseAddress! + index, count) == 0 else {
            throw Malformed(offset: index)
        }
        index += count
    }

    /// Skips a number; true when it has no fraction or exponent.
    private mutating func number() throws(Malformed) -> Bool {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), (0x30...0x39).contains(first) else { throw Malformed(offset: start) }
        index += 1
        if first != 0x30 { while let byte = peek(), (0x30...0x39).contains(byte) { index += 1 } }
        var integral = true
        if peek() == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard let byte = peek(), (0x30...0x39).contains(byte) else { throw Malformed(offset: index) }
            while let byte = peek(), (0x30...0x39).contains(byte) { index += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            integral = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let byte = peek(), (0x30...0x39).contains(byte) else { throw Malformed(offset: index) }
            while let byte = peek(), (0x30...0x39).contains(byte) { index += 1 }
        }
        return integral
    }

    /// Skips a string at `index` (its opening quote), checking its escapes.
    private mutating func skipString() throws(Malformed) {
        index += 1
        while index < bytes.count {
            // To the next quote, backslash or control byte, eight bytes at a time while eight remain.
            if index + 8 <= bytes.count {
                let stops = Self.stringStops(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                guard stops != 0 else {
                    index += 8
                    continue
                }
                index += stops.trailingZeroBitCount >> 3
            }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return
            }
            if byte < 0x20 { throw Malformed(offset: index) }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { throw Malformed(offset: index) }
                switch bytes[index + 1] {
                case UInt8(ascii: "u"):
                    guard index + 6 <= bytes.count, (2..<6).allSatisfy({ Self.hex(bytes[index + $0]) != nil }) else {
                        throw Malformed(offset: index)
                    }
                    index += 6
                    continue
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                    continue
                default: throw Malformed(offset: index)
                }
            }
            index += 1
        }
        throw Malformed(offset: index)
    }

    /// The high bit of each of eight bytes (read little-endian) that is a quote, a backslash or
    /// below 0x20. The lowest bit set is exact; bits above it may be set for bytes that are not
    /// (a borrow), so only the first is used.
    @inline(__always)
    static func stringStops(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func zeroBytes(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & highs }
        let quotes = zeroBytes(word ^ (ones &* 0x22))
        let backslashes = zeroBytes(word ^ (ones &* 0x5C))
        let controls = (word &- ones &* 0x20) & ~word & highs
        return quotes | backslashes | controls
    }

    /// The string at `index`, unescaped.
    private mutating func string() throws(Malformed) -> String {
        let start = index + 1
        try skipString()
        let body = UnsafeRawBufferPointer(rebasing: bytes[start..<(index - 1)])
        guard body.contains(UInt8(ascii: "\\")) else { return String(decoding: body, as: UTF8.self) }
        scratch.removeAll(keepingCapacity: true)
        var position = 0
        while position < body.count {
            let byte = body[position]
            guard byte == UInt8(ascii: "\\") else {
                scratch.append(byte)
                position += 1
                continue
            }
            let escape = body[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "u"):
                var scalar = Self.hex4(body, position)
                position += 4
                // A surrogate pair makes one scalar; a lone surrogate becomes U+FFFD.
                if (0xD800..<0xDC00).contains(scalar), position + 6 <= body.count, body[position] == UInt8(ascii: "\\"),
                    body[position + 1] == UInt8(ascii: "u")
                {
                    let low = Self.hex4(body, position + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        position += 6
                    }
                }
                let character = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                scratch.append(contentsOf: String(character).utf8)
            default: scratch.append(escape)
            }
        }
        return String(decoding: scratch, as: UTF8.self)
    }

    private static func hex4(_ body: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 4 | UInt32(hex(body[at + $1]) ?? 0) }
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}
