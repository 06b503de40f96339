/// Writes JSON straight into a byte buffer: no intermediate dictionaries, no Foundation.
///
/// Commas are placed automatically; strings are escaped and invalid UTF-8 is replaced by U+FFFD,
/// so any byte sequence read from a log yields valid JSON.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]
    /// Bit n set: the container at depth n already has a member.
    @usableFromInline var hasMember: UInt64 = 0
    @usableFromInline var depth: Int = 0

    public init(capacity: Int = 1024) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        hasMember = 0
        depth = 0
        pendingValue = false
    }

    @inlinable
    mutating func separate() {
        guard depth > 0 else { return }
        let bit: UInt64 = 1 << UInt64(depth - 1 & 63)
        if hasMember & bit != 0 { bytes.append(UInt8(ascii: ",")) } else { hasMember |= bit }
    }

    @inlinable
    public mutating func beginObject() {
        beginValue()
        bytes.append(UInt8(ascii: "{"))
        depth += 1
        hasMember &= ~(1 << UInt64(depth - 1 & 63))
    }

    @inlinable
    public mutating func endObject() {
        depth -= 1
        bytes.append(UInt8(ascii: "}"))
    }

    @inlinable
    public mutating func beginArray() {
        beginValue()
        bytes.append(UInt8(ascii: "["))
        depth += 1
        hasMember &= ~(1 << UInt64(depth - 1 & 63))
    }

    @inlinable
    public mutating func endArray() {
        depth -= 1
        bytes.append(UInt8(ascii: "]"))
    }

    /// Writes `"key":` — the next value call writes the value.
    @inlinable
    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    /// Writes a key taken from input bytes (escaped like a string).
    @inlinable
    public mutating func key<Bytes: Collection>(bytes key: Bytes) where Bytes.Element == UInt8 {
        separate()
        appendEscaped(key)
        bytes.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    @usableFromInline var pendingValue = false

    /// Separates a value from the previous one, unless it follows its key.
    @inlinable
    mutating func beginValue() {
        if pendingValue { pendingValue = false } else { separate() }
    }

    @inlinable
    public mutating func string(_ value: String) {
        beginValue()
        var value = value
        value.withUTF8 { appendEscaped($0) }
    }

    @inlinable
    public mutating func string(_ value: StaticString) {
        beginValue()
        value.withUTF8Buffer { appendEscaped($0) }
    }

    @inlinable
    public mutating func string<Bytes: Collection>(bytes value: Bytes) where Bytes.Element == UInt8 {
        beginValue()
        appendEscaped(value)
    }

    @inlinable
    public mutating func number<T: BinaryInteger>(_ value: T) {
        beginValue()
        appendDecimal(value)
    }

    @inlinable
    public mutating func bool(_ value: Bool) {
        beginValue()
        if value {
            bytes.append(contentsOf: [UInt8(ascii: "t"), UInt8(ascii: "r"), UInt8(ascii: "u"), UInt8(ascii: "e")])
        } else {
            bytes.append(contentsOf: [
                UInt8(ascii: "f"), UInt8(ascii: "a"), UInt8(ascii: "l"), UInt8(ascii: "s"), UInt8(ascii: "e"),
            ])
        }
    }

    /// Writes `"key":value` for a non-nil string.
    @inlinable
    public mutating func member(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    @inlinable
    public mutating func member<T: BinaryInteger>(_ name: StaticString, _ value: T?) {
        guard let value else { return }
        key(name)
        number(value)
    }

    // MARK: Encoding

    @inlinable
    mutating func appendDecimal<T: BinaryInteger>(_ value: T) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            appendUnsigned(UInt64(value.magnitude))
        } else {
            appendUnsigned(UInt64(value))
        }
    }

    @inlinable
    mutating func appendUnsigned(_ value: UInt64) {
        if value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for 20 digits
        var count = 0
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { scratch in
            while remaining > 0 {
                scratch[count] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(scratch[index]) }
        }
    }

    @usableFromInline static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    @inlinable
    mutating func appendEscaped<Bytes: Collection>(_ value: Bytes) where Bytes.Element == UInt8 {
        bytes.append(UInt8(ascii: "\""))
        var index = value.startIndex
        while index != value.endIndex {
            let byte = value[index]
            if byte >= 0x20 && byte < 0x80 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
                value.formIndex(after: &index)
            } else if byte < 0x20 {
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    bytes.append(Self.hexDigits[Int(byte >> 4)])
                    bytes.append(Self.hexDigits[Int(byte & 0xF)])
                }
                value.formIndex(after: &index)
            } else {
                index = appendMultibyte(value, from: index)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Copies one UTF-8 sequence if it is valid, else writes U+FFFD for its first byte.
    @inlinable
    mutating func appendMultibyte<Bytes: Collection>(_ value: Bytes, from start: Bytes.Index) -> Bytes.Index
    where Bytes.Element == UInt8 {
        let lead = value[start]
        let length: Int
        var minimum: UInt32
        switch lead {
        case 0xC2...0xDF:
            length = 2
            minimum = 0x80
        case 0xE0...0xEF:
            length = 3
            minimum = 0x800
        case 0xF0...0xF4:
            length = 4
            minimum = 0x10000
        default:
            length = 0
            minimum = 0
        }
        var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        var index = value.index(after: start)
        var valid = length > 0
        if valid {
            for _ in 1..<length {
                guard index != value.endIndex, value[index] & 0xC0 == 0x80 else {
                    valid = false
                    break
                }
                scalar = scalar << 6 | UInt32(value[index] & 0x3F)
                value.formIndex(after: &index)
            }
        }
        if valid && scalar >= minimum && scalar <= 0x10FFFF && !(0xD800...0xDFFF).contains(scalar) {
            bytes.append(contentsOf: value[start..<index])
            return index
        }
        bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
        return value.index(after: start)
    }
}
