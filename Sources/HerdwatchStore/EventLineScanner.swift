#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the fields the store keeps in columns in one ECS JSON line, over its bytes, in one pass
/// that also checks the whole line is well-formed JSON. Ingest runs it on every event, so it makes
/// nothing on the heap: it notes where each field's value is, and a value becomes a String only
/// when asked for (`string(_:in:)`, given the same bytes again).
///
/// Keys are compared as written; a key spelled with escapes (`"ho\u0073t"`) is not recognised (the
/// event is still stored whole, in `json`).
struct EventLineScanner {
    /// Where a field's value is in the line: a string's contents between its quotes (escapes as
    /// written), an integer's text, or a whole array (category and tags).
    struct Slot {
        enum Kind: UInt8 { case absent, string, integer, array }
        var start = 0
        var end = 0
        var kind = Kind.absent
    }

    private var slots = InlineArray<22, Slot>(repeating: Slot())
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

    /// The field's string, unescaped (an array's strings joined by commas); nil when the line has
    /// none there. `line` is the line scanned.
    func string(_ field: Field, in line: UnsafeRawBufferPointer) -> String? {
        let slot = slots[field.rawValue]
        switch slot.kind {
        case .string: return Self.unescaped(UnsafeRawBufferPointer(rebasing: line[slot.start..<slot.end]))
        case .array: return Self.joined(array: UnsafeRawBufferPointer(rebasing: line[slot.start..<slot.end]))
        case .absent, .integer: return nil
        }
    }

    /// The field's integer, when it is one of at most 18 digits.
    func integer(_ field: Field, in line: UnsafeRawBufferPointer) -> Int64? {
        let slot = slots[field.rawValue]
        guard slot.kind == .integer else { return nil }
        let negative = line[slot.start] == UInt8(ascii: "-")
        var number: Int64 = 0
        for byte in line[(negative ? slot.start + 1 : slot.start)..<slot.end] { number = number * 10 + Int64(byte &- 0x30) }
        return negative ? -number : number
    }

    /// Whether the field is a string (unescaped) equal to `text`, without making it a String when
    /// both are plain ASCII.
    func string(_ field: Field, in line: UnsafeRawBufferPointer, equals text: String) -> Bool {
        let slot = slots[field.rawValue]
        guard slot.kind == .string else { return false }
        let value = UnsafeRawBufferPointer(rebasing: line[slot.start..<slot.end])
        var text = text
        let plain = text.withUTF8 { text in
            value.count == text.count && (value.isEmpty || memcmp(value.baseAddress!, text.baseAddress!, value.count) == 0)
        }
        if plain { return true }
        // Escapes, or text that compares equal as Unicode but not byte for byte.
        guard value.contains(where: { $0 == UInt8(ascii: "\\") || $0 >= 0x80 }) || text.utf8.contains(where: { $0 >= 0x80 }) else {
            return false
        }
        return Self.unescaped(value) == text
    }

    /// The field's string, unescaped, as bytes to `body` (nil when there is no string there).
    func withString<T>(_ field: Field, in line: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
        let slot = slots[field.rawValue]
        guard slot.kind == .string else { return nil }
        let value = UnsafeRawBufferPointer(rebasing: line[slot.start..<slot.end])
        guard value.contains(UInt8(ascii: "\\")) else { return body(value) }
        var text = Self.unescaped(value)
        return text.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    // MARK: grammar

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipSpace() {
        if let base = try? start() { index = Self.space(base, index, bytes.count) }
    }

    /// The line's first byte, for the static scanners below (an empty line has none).
    private func start() throws(Malformed) -> UnsafePointer<UInt8> {
        guard let base = bytes.baseAddress else { throw Malformed(offset: index) }
        return base.assumingMemoryBound(to: UInt8.self)
    }

    private mutating func expect(_ byte: UInt8) throws(Malformed) {
        skipSpace()
        guard peek() == byte else { throw Malformed(offset: index) }
        index += 1
    }

    private mutating func object(_ node: Node, depth: Int) throws(Malformed) {
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
            switch Self.target(node, key) {
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

    /// Notes where a wanted value is: a string, an integer, or (category, tags) an array.
    private mutating func value(for field: Field, depth: Int) throws(Malformed) {
        guard let first = peek() else { throw Malformed(offset: index) }
        let start = index
        switch first {
        case UInt8(ascii: "\""):
            try skipString()
            slots[field.rawValue] = Slot(start: start + 1, end: index - 1, kind: .string)
        case UInt8(ascii: "[") where field == .category || field == .tags:
            try skipValue(depth: depth)
            slots[field.rawValue] = Slot(start: start, end: index, kind: .array)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let integral = try number()
            if integral, index - start <= 18 { slots[field.rawValue] = Slot(start: start, end: index, kind: .integer) }
        default:
            try skipValue(depth: depth)
        }
    }

    /// An array already checked, as one string: its strings unescaped and anything else as
    /// written, joined by commas.
    private static func joined(array: UnsafeRawBufferPointer) -> String {
        guard let base = array.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return "" }
        var joined = ""
        var first = true
        var index = space(base, 1, array.count)
        while index < array.count, base[index] != UInt8(ascii: "]") {
            let start = index
            // Checked by the scan already: this does not throw.
            guard let end = try? skipValue(base, from: index, end: array.count, depth: 0) else { break }
            if !first { joined += "," }
            first = false
            if base[start] == UInt8(ascii: "\"") {
                joined += unescaped(UnsafeRawBufferPointer(rebasing: array[(start + 1)..<(end - 1)]))
            } else {
                joined += String(decoding: UnsafeRawBufferPointer(rebasing: array[start..<end]), as: UTF8.self)
            }
            index = space(base, end, array.count)
            if index < array.count, base[index] == UInt8(ascii: ",") { index = space(base, index + 1, array.count) }
        }
        return joined
    }

    /// Skips the value at `index` and everything in it. Most of an event (its raw records) is
    /// skipped, so this is where the check spends most of its time: one flat loop over the bytes,
    /// the position in a register and the open containers as the bits of one word (set for an
    /// array), instead of a call per value.
    private mutating func skipValue(depth: Int) throws(Malformed) {
        index = try Self.skipValue(try start(), from: index, end: bytes.count, depth: depth)
    }

    private static func skipValue(_ base: UnsafePointer<UInt8>, from start: Int, end: Int, depth: Int) throws(Malformed) -> Int {
        var index = start
        var arrays: UInt64 = 0
        var open = 0
        value: while true {
            index = space(base, index, end)
            guard index < end else { throw Malformed(offset: index) }
            switch base[index] {
            case UInt8(ascii: "\""):
                index = try stringEnd(base, index, end)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isArray = base[index] == UInt8(ascii: "[")
                guard depth + open < 64 else { throw Malformed(offset: index) }
                index = space(base, index + 1, end)
                guard index < end else { throw Malformed(offset: index) }
                if base[index] == (isArray ? UInt8(ascii: "]") : UInt8(ascii: "}")) {
                    index += 1
                    break
                }
                if isArray { arrays |= 1 << open } else { arrays &= ~(1 << open) }
                open += 1
                if !isArray { index = try key(base, index, end) }
                continue value
            case UInt8(ascii: "t"): index = try literal("true", base, index, end)
            case UInt8(ascii: "f"): index = try literal("false", base, index, end)
            case UInt8(ascii: "n"): index = try literal("null", base, index, end)
            default: index = try number(base, index, end).end
            }
            // A value is done: the next one of its container, or the container's end.
            while open > 0 {
                index = space(base, index, end)
                guard index < end else { throw Malformed(offset: index) }
                let inArray = arrays >> (open - 1) & 1 == 1
                let byte = base[index]
                index += 1
                if byte == UInt8(ascii: ",") {
                    if !inArray { index = try key(base, space(base, index, end), end) }
                    continue value
                }
                guard byte == (inArray ? UInt8(ascii: "]") : UInt8(ascii: "}")) else { throw Malformed(offset: index - 1) }
                open -= 1
            }
            return index
        }
    }

    /// Past the space at `index`.
    @inline(__always)
    private static func space(_ base: UnsafePointer<UInt8>, _ index: Int, _ end: Int) -> Int {
        var index = index
        while index < end {
            switch base[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return index
            }
        }
        return index
    }

    /// Past a key at `index` (its opening quote), its colon and the space around it.
    @inline(__always)
    private static func key(_ base: UnsafePointer<UInt8>, _ index: Int, _ end: Int) throws(Malformed) -> Int {
        guard index < end, base[index] == UInt8(ascii: "\"") else { throw Malformed(offset: index) }
        let index = space(base, try stringEnd(base, index, end), end)
        guard index < end, base[index] == UInt8(ascii: ":") else { throw Malformed(offset: index) }
        return index + 1
    }

    private static func literal(_ word: StaticString, _ base: UnsafePointer<UInt8>, _ index: Int, _ end: Int) throws(Malformed) -> Int {
        let count = word.utf8CodeUnitCount
        guard index + count <= end, memcmp(word.utf8Start, base + index, count) == 0 else { throw Malformed(offset: index) }
        return index + count
    }

    /// Skips a number; true when it has no fraction or exponent.
    private mutating func number() throws(Malformed) -> Bool {
        let (end, integral) = try Self.number(try start(), index, bytes.count)
        index = end
        return integral
    }

    /// Where the number at `index` ends, and whether it has no fraction or exponent.
    private static func number(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int) throws(Malformed) -> (end: Int, integral: Bool) {
        var index = start
        func digit() -> Bool { index < end && (0x30...0x39).contains(base[index]) }
        if index < end, base[index] == UInt8(ascii: "-") { index += 1 }
        guard digit() else { throw Malformed(offset: start) }
        let first = base[index]
        index += 1
        if first != 0x30 { while digit() { index += 1 } }
        var integral = true
        if index < end, base[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard digit() else { throw Malformed(offset: index) }
            while digit() { index += 1 }
        }
        if index < end, base[index] | 0x20 == UInt8(ascii: "e") {
            integral = false
            index += 1
            if index < end, base[index] == UInt8(ascii: "+") || base[index] == UInt8(ascii: "-") { index += 1 }
            guard digit() else { throw Malformed(offset: index) }
            while digit() { index += 1 }
        }
        return (index, integral)
    }

    /// Skips a string at `index` (its opening quote), checking its escapes.
    private mutating func skipString() throws(Malformed) {
        index = try Self.stringEnd(try start(), index, bytes.count)
    }

    /// Just past the closing quote of the string at `index` (its opening quote), its escapes checked.
    private static func stringEnd(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int) throws(Malformed) -> Int {
        var index = start + 1
        while index < end {
            // To the next quote, backslash or control byte, eight bytes at a time while eight remain.
            if index + 8 <= end {
                let stops = stringStops(UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
                guard stops != 0 else {
                    index += 8
                    continue
                }
                index += stops.trailingZeroBitCount >> 3
            }
            let byte = base[index]
            if byte == UInt8(ascii: "\"") { return index + 1 }
            if byte < 0x20 { throw Malformed(offset: index) }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < end else { throw Malformed(offset: index) }
                switch base[index + 1] {
                case UInt8(ascii: "u"):
                    guard index + 6 <= end, (2..<6).allSatisfy({ hex(base[index + $0]) != nil }) else { throw Malformed(offset: index) }
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

    /// A string's contents (checked already), unescaped.
    static func unescaped(_ body: UnsafeRawBufferPointer) -> String {
        guard body.contains(UInt8(ascii: "\\")) else { return String(decoding: body, as: UTF8.self) }
        var scratch: [UInt8] = []
        scratch.reserveCapacity(body.count)
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
