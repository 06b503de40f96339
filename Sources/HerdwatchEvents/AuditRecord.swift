/// The time and serial number that identify an audit event on one node: `audit(1492037291.036:59)`.
public struct AuditTimestamp: Sendable, Hashable, Comparable {
    public var seconds: Int64
    public var milliseconds: UInt16

    public init(seconds: Int64, milliseconds: UInt16) {
        self.seconds = seconds
        self.milliseconds = milliseconds
    }

    public var totalMilliseconds: Int64 { seconds &* 1000 &+ Int64(milliseconds) }

    /// A time given in milliseconds since the epoch.
    public init(milliseconds total: Int64) {
        let seconds = total >= 0 ? total / 1000 : (total - 999) / 1000
        self.init(seconds: seconds, milliseconds: UInt16(total - seconds * 1000))
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.seconds, lhs.milliseconds) < (rhs.seconds, rhs.milliseconds)
    }
}

/// How a value was written in the record.
public enum AuditQuoting: UInt8, Sendable {
    /// A bare token: a number, a hex-encoded string, `(null)`, `?`.
    case none
    /// `"..."` — an untrusted string the kernel found safe to print as is.
    case double
    /// `'...'` — the user-space message of USER_* records.
    case single
}

/// One `key=value` pair of a record, as offsets into the record's bytes.
public struct AuditField: Sendable {
    public var keyStart: UInt32
    public var keyEnd: UInt32
    public var valueStart: UInt32
    public var valueEnd: UInt32
    public var quoting: AuditQuoting
    /// The field follows the `\x1d` separator of the ENRICHED log format (auditd's interpretation).
    public var isEnriched: Bool

    public init(
        keyStart: UInt32, keyEnd: UInt32, valueStart: UInt32, valueEnd: UInt32,
        quoting: AuditQuoting, isEnriched: Bool
    ) {
        self.keyStart = keyStart
        self.keyEnd = keyEnd
        self.valueStart = valueStart
        self.valueEnd = valueEnd
        self.quoting = quoting
        self.isEnriched = isEnriched
    }
}

/// One parsed audit record. It owns its bytes; fields are spans into them, so parsing allocates twice
/// per record (bytes and field table) whatever the number of fields.
public struct AuditRecord: Sendable {
    /// Record type number (1300 for SYSCALL); 0 when a log names a type this build does not know.
    public var type: UInt16
    /// Record type name as the log or the type table spells it (`SYSCALL`, `UNKNOWN[1334]`).
    public var typeName: String
    public var timestamp: AuditTimestamp
    public var serial: UInt64
    public var bytes: [UInt8]
    /// Span of the `node=` value in `bytes`, when the record has one.
    public var nodeRange: Range<Int>?
    public var fields: [AuditField] {
        didSet { hasEnrichedFields = fields.contains { $0.isEnriched } }
    }
    /// Whether any field is an ENRICHED interpretation: netlink records and RAW logs have none, so
    /// lookups of interpreted names can stop at once.
    public private(set) var hasEnrichedFields: Bool

    public init(
        type: UInt16, typeName: String, timestamp: AuditTimestamp, serial: UInt64, bytes: [UInt8],
        nodeRange: Range<Int>?, fields: [AuditField]
    ) {
        self.type = type
        self.typeName = typeName
        self.timestamp = timestamp
        self.serial = serial
        self.bytes = bytes
        self.nodeRange = nodeRange
        self.hasEnrichedFields = fields.contains { $0.isEnriched }
        self.fields = fields
    }

    public var node: ArraySlice<UInt8>? { nodeRange.map { bytes[$0] } }

    @inlinable
    public func key(_ field: AuditField) -> ArraySlice<UInt8> {
        bytes[Int(field.keyStart)..<Int(field.keyEnd)]
    }

    @inlinable
    public func value(_ field: AuditField) -> ArraySlice<UInt8> {
        bytes[Int(field.valueStart)..<Int(field.valueEnd)]
    }

    /// The first raw (not enriched) field named `key`.
    @inlinable
    public func field(_ key: StaticString) -> AuditField? {
        field(key, enriched: false)
    }

    @inlinable
    public func field(_ key: StaticString, enriched: Bool) -> AuditField? {
        if enriched && !hasEnrichedFields { return nil }
        let length = key.utf8CodeUnitCount
        let first = key.utf8Start.pointee
        for field in fields
        where field.isEnriched == enriched && Int(field.keyEnd - field.keyStart) == length
            && bytes[Int(field.keyStart)] == first
        {
            if bytes.equals(key, at: Int(field.keyStart)) { return field }
        }
        return nil
    }

    /// The raw value of the first field named `key`, without quotes.
    @inlinable
    public func value(_ key: StaticString) -> ArraySlice<UInt8>? {
        field(key).map { value($0) }
    }

    /// The value of the ENRICHED field named `key` (`UID="root"`), when the log carries one.
    @inlinable
    public func enrichedValue(_ key: StaticString) -> ArraySlice<UInt8>? {
        field(key, enriched: true).map { value($0) }
    }
}

extension Array where Element == UInt8 {
    /// Whether the bytes at `offset` spell `literal`.
    @inlinable @inline(__always)
    public func equals(_ literal: StaticString, at offset: Int) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard offset + count <= self.count else { return false }
        return withUnsafeBufferPointer { buffer in
            let start = literal.utf8Start
            for index in 0..<count where buffer[offset + index] != start[index] { return false }
            return true
        }
    }
}

extension ArraySlice where Element == UInt8 {
    /// Whether these bytes spell exactly `literal`.
    @inlinable
    public func equals(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard self.count == count else { return false }
        let start = literal.utf8Start
        var index = startIndex
        for offset in 0..<count {
            if self[index] != start[offset] { return false }
            index += 1
        }
        return true
    }

    @inlinable
    public func hasPrefix(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard self.count >= count else { return false }
        let start = literal.utf8Start
        var index = startIndex
        for offset in 0..<count {
            if self[index] != start[offset] { return false }
            index += 1
        }
        return true
    }

    /// The bytes as a String; invalid UTF-8 becomes U+FFFD.
    @inlinable
    public var string: String { String(decoding: self, as: UTF8.self) }

    /// The value as an unsigned decimal number, or nil when it is not one.
    @inlinable
    public var decimal: UInt64? {
        guard !isEmpty, count <= 20 else { return nil }
        var result: UInt64 = 0
        for byte in self {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (multiplied, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = multiplied.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            result = added
        }
        return result
    }

    /// The value as a signed decimal number (`exit=-13`), or nil.
    @inlinable
    public var signedDecimal: Int64? {
        guard let first = first else { return nil }
        if first == UInt8(ascii: "-") {
            guard let magnitude = self.dropFirst().decimal, magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard let value = decimal, value <= UInt64(Int64.max) else { return nil }
        return Int64(value)
    }

    /// The value as a hexadecimal number without prefix (`arch=c000003e`, `a1=7ffed2893080`), or nil.
    @inlinable
    public var hexadecimal: UInt64? {
        guard !isEmpty, count <= 16 else { return nil }
        var result: UInt64 = 0
        for byte in self {
            guard let nibble = hexNibble(byte) else { return nil }
            result = result << 4 | UInt64(nibble)
        }
        return result
    }
}

@inlinable
public func hexNibble(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}
