import HerdwatchEvents

/// Why a line is not an audit record, and where in the line that showed.
public struct AuditParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case emptyLine
        case missingType
        case unknownTypeNumber
        case missingHeader
        case malformedTimestamp
        case lineTooLong(limit: Int)
    }

    public var reason: Reason
    /// Byte offset in the line where parsing stopped.
    public var offset: Int

    public init(_ reason: Reason, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        switch reason {
        case .emptyLine: "empty line"
        case .missingType: "no 'type=' field at byte \(offset)"
        case .unknownTypeNumber: "record type number is not a number at byte \(offset)"
        case .missingHeader: "no 'msg=audit(' header at byte \(offset)"
        case .malformedTimestamp: "malformed 'audit(seconds.millis:serial):' header at byte \(offset)"
        case .lineTooLong(let limit): "line longer than \(limit) bytes"
        }
    }
}

/// Parses audit records from bytes: auditd's RAW and ENRICHED log formats and the kernel's netlink form.
///
/// ```
/// node=web1 type=SYSCALL msg=audit(1492037291.036:59): arch=c000003e syscall=59 ... key=(null)\x1dARCH=x86_64 ...
/// ```
/// Fields become spans into the record's own bytes; nothing is decoded here (see `AuditInterpreter`).
/// Any byte sequence yields a record or an `AuditParseError`, never a trap.
public struct AuditRecordParser: Sendable {
    /// Longest line accepted. The kernel's records are at most 8,970 bytes; auditd's ENRICHED form adds
    /// interpretations, so the default leaves ample room.
    public var maximumLineLength: Int

    public init(maximumLineLength: Int = 64 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    /// Parses one log line (without or with its trailing newline).
    public func parse(line: [UInt8]) throws(AuditParseError) -> AuditRecord {
        var end = line.count
        while end > 0, line[end - 1] == UInt8(ascii: "\n") || line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard end > 0 else { throw AuditParseError(.emptyLine, at: 0) }
        guard end <= maximumLineLength else { throw AuditParseError(.lineTooLong(limit: maximumLineLength), at: 0) }
        var bytes = line
        if end < bytes.count { bytes.removeSubrange(end...) }
        return try parseLine(bytes)
    }

    /// Parses a record received over netlink: the type comes from the message header and the body
    /// starts with `audit(seconds.millis:serial): `.
    public func parse(netlinkType type: UInt16, body: [UInt8]) throws(AuditParseError) -> AuditRecord {
        var bytes = body
        while let last = bytes.last, last == 0 || last == UInt8(ascii: "\n") { bytes.removeLast() }
        guard bytes.count <= maximumLineLength else {
            throw AuditParseError(.lineTooLong(limit: maximumLineLength), at: 0)
        }
        var cursor = 0
        let (timestamp, serial) = try Self.parseStamp(bytes, &cursor)
        var fields: [AuditField] = []
        fields.reserveCapacity(Self.expectedFieldCount(bytes.count))
        Self.parseFields(&bytes, from: cursor, into: &fields)
        return AuditRecord(
            type: type, typeName: RecordTypes.name(of: type), timestamp: timestamp, serial: serial,
            bytes: bytes, nodeRange: nil, fields: fields)
    }

    private func parseLine(_ line: [UInt8]) throws(AuditParseError) -> AuditRecord {
        var bytes = line
        var cursor = 0
        var nodeRange: Range<Int>? = nil

        // Lines relayed through syslog carry a prefix ("Jan  1 00:00:00 host audispd: node=..."):
        // start at the first "node=" or "type=" that begins a word.
        guard let start = Self.findHeaderStart(bytes) else { throw AuditParseError(.missingType, at: 0) }
        cursor = start
        if bytes.equals("node=", at: cursor) {
            cursor += 5
            let valueStart = cursor
            while cursor < bytes.count, bytes[cursor] != UInt8(ascii: " ") { cursor += 1 }
            nodeRange = valueStart..<cursor
            Self.skipSpaces(bytes, &cursor)
        }
        guard bytes.equals("type=", at: cursor) else { throw AuditParseError(.missingType, at: cursor) }
        cursor += 5
        let typeStart = cursor
        while cursor < bytes.count, bytes[cursor] != UInt8(ascii: " ") { cursor += 1 }
        let typeBytes = bytes[typeStart..<cursor]
        let (type, typeName) = try Self.recordType(typeBytes, offset: typeStart)
        Self.skipSpaces(bytes, &cursor)
        guard bytes.equals("msg=", at: cursor) else { throw AuditParseError(.missingHeader, at: cursor) }
        cursor += 4
        let (timestamp, serial) = try Self.parseStamp(bytes, &cursor)
        var fields: [AuditField] = []
        fields.reserveCapacity(Self.expectedFieldCount(bytes.count))
        Self.parseFields(&bytes, from: cursor, into: &fields)
        return AuditRecord(
            type: type, typeName: typeName, timestamp: timestamp, serial: serial, bytes: bytes,
            nodeRange: nodeRange, fields: fields)
    }

    static func findHeaderStart(_ bytes: [UInt8]) -> Int? {
        if bytes.equals("type=", at: 0) || bytes.equals("node=", at: 0) { return 0 }
        var index = 1
        while index + 5 <= bytes.count {
            if bytes[index - 1] == UInt8(ascii: " ")
                && (bytes.equals("type=", at: index) || bytes.equals("node=", at: index))
            {
                return index
            }
            index += 1
        }
        return nil
    }

    static func recordType(_ name: ArraySlice<UInt8>, offset: Int) throws(AuditParseError) -> (UInt16, String) {
        if let known = RecordTypes.lookup(name: name) { return known }
        // ausearch and auditd spell types they cannot name as UNKNOWN[1334].
        if name.hasPrefix("UNKNOWN["), name.last == UInt8(ascii: "]") {
            let digits = name.dropFirst(8).dropLast()
            guard let value = digits.decimal, value <= UInt64(UInt16.max) else {
                throw AuditParseError(.unknownTypeNumber, at: offset + 8)
            }
            let number = UInt16(value)
            return (number, RecordTypes.name(of: number))
        }
        guard !name.isEmpty else { throw AuditParseError(.missingType, at: offset) }
        return (0, name.string)
    }

    /// Parses `audit(1492037291.036:59):` (after `msg=` in logs, at the start of netlink bodies).
    static func parseStamp(_ bytes: [UInt8], _ cursor: inout Int) throws(AuditParseError) -> (AuditTimestamp, UInt64) {
        guard bytes.equals("audit(", at: cursor) else { throw AuditParseError(.missingHeader, at: cursor) }
        cursor += 6
        guard let seconds = readDecimal(bytes, &cursor), seconds <= UInt64(Int64.max),
            cursor < bytes.count, bytes[cursor] == UInt8(ascii: ".")
        else { throw AuditParseError(.malformedTimestamp, at: cursor) }
        cursor += 1
        let millisStart = cursor
        guard let millis = readDecimal(bytes, &cursor), cursor - millisStart <= 3, millis < 1000,
            cursor < bytes.count, bytes[cursor] == UInt8(ascii: ":")
        else { throw AuditParseError(.malformedTimestamp, at: cursor) }
        // "1.5" means 500 ms: scale short fractions.
        var scaled = millis
        for _ in 0..<(3 - (cursor - millisStart)) { scaled *= 10 }
        cursor += 1
        guard let serial = readDecimal(bytes, &cursor), cursor < bytes.count, bytes[cursor] == UInt8(ascii: ")")
        else { throw AuditParseError(.malformedTimestamp, at: cursor) }
        cursor += 1
        if cursor < bytes.count, bytes[cursor] == UInt8(ascii: ":") { cursor += 1 }
        return (AuditTimestamp(seconds: Int64(seconds), milliseconds: UInt16(scaled)), serial)
    }

    static func readDecimal(_ bytes: [UInt8], _ cursor: inout Int) -> UInt64? {
        let start = cursor
        // Up to 19 digits cannot overflow UInt64; more are rejected.
        let (value, end) = bytes.withUnsafeBufferPointer { buffer -> (UInt64, Int) in
            var index = start
            var value: UInt64 = 0
            let limit = min(buffer.count, start + 20)
            while index < limit {
                let digit = buffer[index] &- UInt8(ascii: "0")
                if digit > 9 { break }
                value = value &* 10 &+ UInt64(digit)
                index += 1
            }
            return (value, index)
        }
        guard end > start, end - start <= 19 else { return nil }
        cursor = end
        return value
    }

    @inline(__always)
    static func skipSpaces(_ bytes: [UInt8], _ cursor: inout Int) {
        while cursor < bytes.count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
    }

    static let groupSeparator: UInt8 = 0x1D

    /// Room for the fields of a record of this length, so the table is allocated once: audit fields
    /// average a little over ten bytes (`uid=0 `, `exe="/usr/bin/python3.11" `).
    @inline(__always)
    static func expectedFieldCount(_ length: Int) -> Int { min(max(length / 10, 8), 128) }

    /// Splits `k=v k="v v" k='a=b c=d'` into fields. Words without `=` are skipped, except SELinux's
    /// `avc:  denied  { read write } for`, which becomes the fields `seresult` and `seperms` as auparse
    /// names them. Key names for such synthetic fields are appended to `bytes`.
    static func parseFields(_ bytes: inout [UInt8], from start: Int, into fields: inout [AuditField]) {
        let end = bytes.count
        // Cursor and flags live inside the closure, in registers, not in captured boxes.
        let synthetic = bytes.withUnsafeBufferPointer { buffer in
            var cursor = start
            var enriched = false
            var synthetic: [(key: StaticString, value: Range<Int>)] = []
            while cursor < end {
                let byte = buffer[cursor]
                if byte == UInt8(ascii: " ") {
                    cursor += 1
                    continue
                }
                if byte == groupSeparator {
                    enriched = true
                    cursor += 1
                    continue
                }
                let keyStart = cursor
                cursor = ByteScan.firstKeyDelimiter(buffer, from: cursor, to: end)
                guard cursor < end, buffer[cursor] == UInt8(ascii: "="), cursor > keyStart else {
                    // A bare word.
                    if cursor - keyStart == 4, buffer[keyStart] == UInt8(ascii: "a"),
                        buffer[keyStart + 1] == UInt8(ascii: "v"), buffer[keyStart + 2] == UInt8(ascii: "c"),
                        buffer[keyStart + 3] == UInt8(ascii: ":")
                    {
                        parseAVCPrefix(buffer, &cursor, &synthetic)
                    } else if cursor == keyStart {
                        cursor += 1  // a lone "=" or separator
                    }
                    continue
                }
                let keyEnd = cursor
                cursor += 1  // "="
                var quoting = AuditQuoting.none
                var valueStart = cursor
                var valueEnd = cursor
                if cursor < end, buffer[cursor] == UInt8(ascii: "\"") || buffer[cursor] == UInt8(ascii: "'") {
                    let quote = buffer[cursor]
                    quoting = quote == UInt8(ascii: "\"") ? .double : .single
                    cursor += 1
                    valueStart = cursor
                    while cursor < end, buffer[cursor] != quote { cursor += 1 }
                    valueEnd = cursor
                    if cursor < end { cursor += 1 }
                } else if cursor < end, buffer[cursor] == UInt8(ascii: "{") {
                    // ENRICHED sockaddr: SADDR={ saddr_fam=inet6 laddr=::1 lport=5353 }
                    while cursor < end, buffer[cursor] != UInt8(ascii: "}"), buffer[cursor] != groupSeparator {
                        cursor += 1
                    }
                    if cursor < end, buffer[cursor] == UInt8(ascii: "}") { cursor += 1 }
                    valueEnd = cursor
                } else {
                    cursor = ByteScan.firstValueDelimiter(buffer, from: cursor, to: end)
                    valueEnd = cursor
                }
                // USER_* records wrap their payload in msg='op=... acct="root" res=success': split it,
                // unless it is free text.
                if quoting == .single, keyEnd - keyStart == 3, buffer[keyStart] == UInt8(ascii: "m"),
                    buffer[keyStart + 1] == UInt8(ascii: "s"), buffer[keyStart + 2] == UInt8(ascii: "g"),
                    containsEquals(buffer, valueStart, valueEnd)
                {
                    parseInner(buffer, valueStart, valueEnd, enriched: enriched, into: &fields)
                    continue
                }
                fields.append(
                    AuditField(
                        keyStart: UInt32(keyStart), keyEnd: UInt32(keyEnd), valueStart: UInt32(valueStart),
                        valueEnd: UInt32(valueEnd), quoting: quoting, isEnriched: enriched))
            }
            return synthetic
        }
        for (key, value) in synthetic {
            let keyStart = bytes.count
            key.withUTF8Buffer { bytes.append(contentsOf: $0) }
            fields.append(
                AuditField(
                    keyStart: UInt32(keyStart), keyEnd: UInt32(bytes.count), valueStart: UInt32(value.lowerBound),
                    valueEnd: UInt32(value.upperBound), quoting: .none, isEnriched: false))
        }
    }

    private static func containsEquals(_ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        var index = start
        while index < end {
            if buffer[index] == UInt8(ascii: "=") { return true }
            index += 1
        }
        return false
    }

    /// The fields inside a single-quoted `msg='...'`; one level only.
    private static func parseInner(
        _ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, enriched: Bool, into fields: inout [AuditField]
    ) {
        var cursor = start
        while cursor < end {
            if buffer[cursor] == UInt8(ascii: " ") {
                cursor += 1
                continue
            }
            let keyStart = cursor
            while cursor < end, buffer[cursor] != UInt8(ascii: "="), buffer[cursor] != UInt8(ascii: " ") { cursor += 1 }
            guard cursor < end, buffer[cursor] == UInt8(ascii: "="), cursor > keyStart else {
                if cursor == keyStart { cursor += 1 }
                continue
            }
            let keyEnd = cursor
            cursor += 1
            var quoting = AuditQuoting.none
            var valueStart = cursor
            let valueEnd: Int
            if cursor < end, buffer[cursor] == UInt8(ascii: "\"") {
                quoting = .double
                cursor += 1
                valueStart = cursor
                while cursor < end, buffer[cursor] != UInt8(ascii: "\"") { cursor += 1 }
                valueEnd = cursor
                if cursor < end { cursor += 1 }
            } else {
                while cursor < end, buffer[cursor] != UInt8(ascii: " ") { cursor += 1 }
                valueEnd = cursor
            }
            fields.append(
                AuditField(
                    keyStart: UInt32(keyStart), keyEnd: UInt32(keyEnd), valueStart: UInt32(valueStart),
                    valueEnd: UInt32(valueEnd), quoting: quoting, isEnriched: enriched))
        }
    }

    /// After `avc:`: `denied  { read write } for` → seresult=denied, seperms="read write".
    private static func parseAVCPrefix(
        _ buffer: UnsafeBufferPointer<UInt8>, _ cursor: inout Int,
        _ synthetic: inout [(key: StaticString, value: Range<Int>)]
    ) {
        let end = buffer.count
        while cursor < end, buffer[cursor] == UInt8(ascii: " ") { cursor += 1 }
        let resultStart = cursor
        while cursor < end, buffer[cursor] != UInt8(ascii: " "), buffer[cursor] != UInt8(ascii: "=") { cursor += 1 }
        guard cursor < end, buffer[cursor] == UInt8(ascii: " "), cursor > resultStart else {
            cursor = resultStart
            return
        }
        synthetic.append((key: "seresult", value: resultStart..<cursor))
        while cursor < end, buffer[cursor] == UInt8(ascii: " ") { cursor += 1 }
        guard cursor < end, buffer[cursor] == UInt8(ascii: "{") else { return }
        cursor += 1
        while cursor < end, buffer[cursor] == UInt8(ascii: " ") { cursor += 1 }
        let permsStart = cursor
        while cursor < end, buffer[cursor] != UInt8(ascii: "}") { cursor += 1 }
        var permsEnd = cursor
        while permsEnd > permsStart, buffer[permsEnd - 1] == UInt8(ascii: " ") { permsEnd -= 1 }
        synthetic.append((key: "seperms", value: permsStart..<permsEnd))
        if cursor < end { cursor += 1 }
        while cursor < end, buffer[cursor] == UInt8(ascii: " ") { cursor += 1 }
        if cursor + 3 <= end, buffer[cursor] == UInt8(ascii: "f"), buffer[cursor + 1] == UInt8(ascii: "o"),
            buffer[cursor + 2] == UInt8(ascii: "r")
        {
            cursor += 3
        }
    }
}

/// Word-at-a-time scanning for the field delimiters: eight bytes per step while none of them matches.
enum ByteScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// High bit set in each byte of `word` equal to `byte`. Borrows can mark bytes above a true match
    /// as well, never below one, so the lowest mark is exact.
    @inline(__always)
    private static func matches(_ word: UInt64, _ byte: UInt8) -> UInt64 {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highs
    }

    /// Index of the first ' ', '=' or 0x1D at or after `start`, or `end`.
    @inline(__always)
    static func firstKeyDelimiter(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
        var index = start
        if let base = buffer.baseAddress {
            while index + 8 <= end {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
                let found = matches(word, 0x20) | matches(word, 0x3D) | matches(word, 0x1D)
                if found != 0 { return index + found.trailingZeroBitCount >> 3 }
                index += 8
            }
        }
        while index < end {
            let byte = buffer[index]
            if byte == 0x20 || byte == 0x3D || byte == 0x1D { return index }
            index += 1
        }
        return end
    }

    /// Index of the first ' ' or 0x1D at or after `start`, or `end`.
    @inline(__always)
    static func firstValueDelimiter(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
        var index = start
        if let base = buffer.baseAddress {
            while index + 8 <= end {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
                let found = matches(word, 0x20) | matches(word, 0x1D)
                if found != 0 { return index + found.trailingZeroBitCount >> 3 }
                index += 8
            }
        }
        while index < end {
            let byte = buffer[index]
            if byte == 0x20 || byte == 0x1D { return index }
            index += 1
        }
        return end
    }
}
