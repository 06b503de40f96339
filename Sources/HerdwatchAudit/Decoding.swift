import HerdwatchEvents

/// Decoders for the encodings the kernel uses inside record values.
public enum AuditDecoding {
    /// Decodes an even-length hex string (`2F7573722F62696E`) to bytes; nil if it is not one.
    public static func hexBytes(_ value: ArraySlice<UInt8>) -> [UInt8]? {
        guard !value.isEmpty, value.count % 2 == 0 else { return nil }
        var decoded = false
        let result = value.withUnsafeBufferPointer { hex in
            [UInt8](unsafeUninitializedCapacity: hex.count / 2) { buffer, count in
                decoded = decodeHex(hex, into: buffer.baseAddress!)
                count = decoded ? hex.count / 2 : 0
            }
        }
        return decoded ? result : nil
    }

    /// The same into `target`, which has room for `hex.count / 2` bytes (detection decodes into a
    /// buffer it reuses); false if `hex` is not an even-length run of hex digits.
    @inlinable
    public static func decodeHex(_ hex: UnsafeBufferPointer<UInt8>, into target: UnsafeMutablePointer<UInt8>) -> Bool {
        guard !hex.isEmpty, hex.count % 2 == 0 else { return false }
        var index = 0
        while index < hex.count {
            guard let high = hexNibble(hex[index]), let low = hexNibble(hex[index &+ 1]) else { return false }
            target[index >> 1] = high << 4 | low
            index &+= 2
        }
        return true
    }

    /// Decodes a value the kernel writes with `audit_log_untrustedstring`: quoted when printable,
    /// hex otherwise. `(null)`, `?` and `(none)` mean absent.
    public static func untrustedString(_ record: AuditRecord, _ field: AuditField) -> String? {
        let value = record.value(field)
        if field.quoting != .none { return value.string }
        if isAbsent(value) { return nil }
        if let bytes = hexBytes(value) { return String(decoding: bytes, as: UTF8.self) }
        return value.string
    }

    public static func untrustedString(_ record: AuditRecord, _ key: StaticString) -> String? {
        record.field(key).flatMap { untrustedString(record, $0) }
    }

    /// A plain (never hex-encoded) value, or nil when absent.
    public static func plainString(_ record: AuditRecord, _ key: StaticString) -> String? {
        guard let value = record.value(key), !isAbsent(value) else { return nil }
        return value.string
    }

    @inline(__always)
    public static func isAbsent(_ value: ArraySlice<UInt8>) -> Bool {
        value.isEmpty || value.equals("(null)") || value.equals("?") || value.equals("(none)")
    }

    /// PROCTITLE: the command line with NUL separators, hex-encoded unless it was printable.
    private enum ProctitleValue {
        /// Quoted, or not hex: the text as printed.
        case text(ArraySlice<UInt8>)
        /// Hex-decoded: arguments separated by NULs.
        case decoded([UInt8])
    }

    private static func proctitleValue(_ record: AuditRecord) -> ProctitleValue? {
        guard let field = record.field("proctitle") else { return nil }
        let value = record.value(field)
        if field.quoting != .none { return .text(value) }
        if isAbsent(value) { return nil }
        guard let bytes = hexBytes(value) else { return .text(value) }
        return .decoded(bytes)
    }

    /// `process.title`: the proctitle's arguments joined by spaces, decoded in one pass (the same
    /// as `proctitleArguments(record)?.joined(separator: " ")`).
    public static func proctitle(_ record: AuditRecord) -> String? {
        switch proctitleValue(record) {
        case nil: return nil
        case .text(let value): return value.string
        case .decoded(var bytes):
            while bytes.last == 0 { bytes.removeLast() }
            for index in bytes.indices where bytes[index] == 0 { bytes[index] = UInt8(ascii: " ") }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    public static func proctitleArguments(_ record: AuditRecord) -> [String]? {
        switch proctitleValue(record) {
        case nil: return nil
        case .text(let value): return [value.string]
        case .decoded(let bytes):
            var args: [String] = []
            for part in bytes.split(separator: 0, omittingEmptySubsequences: false) { args.append(part.string) }
            while let last = args.last, last.isEmpty { args.removeLast() }
            return args
        }
    }
}

/// A decoded `saddr=` value of a SOCKADDR record.
public struct SocketAddress: Sendable, Equatable {
    public enum Family: Sendable, Equatable {
        case unix(path: String, abstract: Bool)
        case ipv4(address: String, port: Int)
        case ipv6(address: String, port: Int)
        case netlink(pid: UInt32, groups: UInt32)
        case other(Int)
    }

    public var family: Family

    public var networkType: String {
        switch family {
        case .unix: "unix"
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .netlink: "netlink"
        case .other(let number): "family-\(number)"
        }
    }

    /// Parses the hex-encoded `struct sockaddr` the kernel logs.
    public init?(hex: ArraySlice<UInt8>) {
        guard let bytes = AuditDecoding.hexBytes(hex), bytes.count >= 2 else { return nil }
        let family = Int(bytes[0]) | Int(bytes[1]) << 8  // sa_family_t is host order (little-endian here)
        switch family {
        case 1:
            let path = bytes[2...]
            if path.first == 0 {
                self.family = .unix(path: String(decoding: path.dropFirst().prefix { $0 != 0 }, as: UTF8.self), abstract: true)
            } else {
                self.family = .unix(path: String(decoding: path.prefix { $0 != 0 }, as: UTF8.self), abstract: false)
            }
        case 2:
            guard bytes.count >= 8 else { return nil }
            let port = Int(bytes[2]) << 8 | Int(bytes[3])
            self.family = .ipv4(address: "\(bytes[4]).\(bytes[5]).\(bytes[6]).\(bytes[7])", port: port)
        case 10:
            guard bytes.count >= 24 else { return nil }
            let port = Int(bytes[2]) << 8 | Int(bytes[3])
            self.family = .ipv6(address: Self.formatIPv6(Array(bytes[8..<24])), port: port)
        case 16:
            guard bytes.count >= 12 else { return nil }
            let pid = UInt32(bytes[4]) | UInt32(bytes[5]) << 8 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 24
            let groups = UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24
            self.family = .netlink(pid: pid, groups: groups)
        default:
            self.family = .other(family)
        }
    }

    /// RFC 5952 text form: lowercase, the longest run of two or more zero groups as `::`,
    /// IPv4-mapped addresses as `::ffff:a.b.c.d`.
    static func formatIPv6(_ bytes: [UInt8]) -> String {
        var groups = [Int](repeating: 0, count: 8)
        for index in 0..<8 { groups[index] = Int(bytes[2 * index]) << 8 | Int(bytes[2 * index + 1]) }
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF {
            return "::ffff:\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8, groups[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        func hex(_ value: Int) -> String { String(value, radix: 16) }
        if bestStart < 0 { return groups.map(hex).joined(separator: ":") }
        let head = groups[0..<bestStart].map(hex).joined(separator: ":")
        let tail = groups[(bestStart + bestLength)...].map(hex).joined(separator: ":")
        return head + "::" + tail
    }
}

/// File type and permission bits from a PATH record's octal `mode=0100755`.
public struct FileMode: Sendable, Equatable {
    public var rawValue: UInt32

    public init?(octal: ArraySlice<UInt8>) {
        guard !octal.isEmpty, octal.count <= 11 else { return nil }
        var value: UInt32 = 0
        for byte in octal {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "7") else { return nil }
            value = value << 3 | UInt32(byte - UInt8(ascii: "0"))
        }
        rawValue = value
    }

    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket` (ECS `file.type` values).
    public var typeName: String? {
        switch rawValue & 0o170000 {
        case 0o100000: "file"
        case 0o040000: "dir"
        case 0o120000: "symlink"
        case 0o020000: "char"
        case 0o060000: "block"
        case 0o010000: "fifo"
        case 0o140000: "socket"
        default: nil
        }
    }

    /// Permission bits in four octal digits, including setuid/setgid/sticky: `4755`.
    public var permissions: String {
        let bits = rawValue & 0o7777
        return String(unsafeUninitializedCapacity: 4) { digits in
            for index in 0..<4 { digits[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: bits >> (9 - 3 * index) & 7) }
            return 4
        }
    }
}
