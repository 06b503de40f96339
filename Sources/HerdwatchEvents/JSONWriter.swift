/// Writes JSON straight into a byte buffer: no intermediate dictionaries, no Foundation.
///
/// Commas are placed automatically; strings are escaped and invalid UTF-8 is replaced by U+FFFD,
/// so any byte sequence read from a log yields valid JSON.
public struct JSONWriter {
    @usableFromInline let storage: ByteStorage

    /// A copy of what has been written.
    public var bytes: [UInt8] { storage.array }

    /// How many bytes have been written.
    public var count: Int { storage.count }

    /// What has been written, without copying; valid inside `body` only.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try body(UnsafeRawBufferPointer(start: storage.base, count: storage.count))
    }
    /// Bit n set: the container at depth n already has a member.
    @usableFromInline var hasMember: UInt64 = 0
    @usableFromInline var depth: Int = 0

    public init(capacity: Int = 1024) {
        storage = ByteStorage(capacity: capacity)
    }

    public mutating func reset() {
        storage.count = 0
        hasMember = 0
        depth = 0
        pendingValue = false
    }

    @inlinable
    mutating func separate() {
        guard depth > 0 else { return }
        let bit: UInt64 = 1 << UInt64(depth - 1 & 63)
        if hasMember & bit != 0 { storage.append(UInt8(ascii: ",")) } else { hasMember |= bit }
    }

    @inlinable
    public mutating func beginObject() {
        beginValue()
        storage.append(UInt8(ascii: "{"))
        depth += 1
        hasMember &= ~(1 << UInt64(depth - 1 & 63))
    }

    @inlinable
    public mutating func endObject() {
        depth -= 1
        storage.append(UInt8(ascii: "}"))
    }

    @inlinable
    public mutating func beginArray() {
        beginValue()
        storage.append(UInt8(ascii: "["))
        depth += 1
        hasMember &= ~(1 << UInt64(depth - 1 & 63))
    }

    @inlinable
    public mutating func endArray() {
        depth -= 1
        storage.append(UInt8(ascii: "]"))
    }

    /// Writes `"key":` — the next value call writes the value.
    @inlinable
    public mutating func key(_ key: StaticString) {
        separate()
        storage.append(UInt8(ascii: "\""))
        storage.append(literal: key)
        storage.append(UInt8(ascii: "\""))
        storage.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    /// Writes a key taken from input bytes (escaped like a string).
    @inlinable
    public mutating func key<Bytes: Collection>(bytes key: Bytes) where Bytes.Element == UInt8 {
        separate()
        appendEscaped(key)
        storage.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    /// Writes a key held in a String (escaped).
    public mutating func key(_ key: String) {
        var key = key
        key.withUTF8 { self.key(bytes: $0) }
    }

    /// Writes a number with up to three decimals (`12.5`, `0.125`, `3`); not-finite values as 0.
    public mutating func decimal(_ value: Double) {
        beginValue()
        guard value.isFinite else {
            storage.append(UInt8(ascii: "0"))
            return
        }
        let scaled = (abs(value) * 1000).rounded()
        guard scaled < 9e15 else {
            appendDecimal(Int64(value))
            return
        }
        var thousandths = Int64(scaled)
        if value < 0 && thousandths != 0 { storage.append(UInt8(ascii: "-")) }
        appendDecimal(thousandths / 1000)
        thousandths %= 1000
        guard thousandths != 0 else { return }
        storage.append(UInt8(ascii: "."))
        var digits = [UInt8(48 + thousandths / 100), UInt8(48 + thousandths / 10 % 10), UInt8(48 + thousandths % 10)]
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        storage.append(contentsOf: digits)
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
        // Two array literals here, one per branch, were merged into "true" for both by the Swift
        // 6.3 optimizer when inlined into another module (release builds wrote `false` as `true`).
        storage.append(literal: value ? "true" : "false")
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
            storage.append(UInt8(ascii: "-"))
            appendUnsigned(UInt64(value.magnitude))
        } else {
            appendUnsigned(UInt64(value))
        }
    }

    @inlinable
    mutating func appendUnsigned(_ value: UInt64) {
        if value < 10 {
            storage.append(UInt8(ascii: "0") + UInt8(value))
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
            for index in stride(from: count - 1, through: 0, by: -1) { storage.append(scratch[index]) }
        }
    }

    @usableFromInline static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    @inlinable
    mutating func appendEscaped<Bytes: Collection>(_ value: Bytes) where Bytes.Element == UInt8 {
        let done: Void? = value.withContiguousStorageIfAvailable { appendEscaped(buffer: $0) }
        if done == nil { Array(value).withUnsafeBufferPointer { appendEscaped(buffer: $0) } }
    }

    /// Copies runs of characters that need no escaping in one go; escapes the rest.
    @usableFromInline
    mutating func appendEscaped(buffer: UnsafeBufferPointer<UInt8>) {
        storage.append(UInt8(ascii: "\""))
        let count = buffer.count
        var runStart = 0
        var index = 0
        var tailTested = false
        let base = UnsafeRawPointer(buffer.baseAddress)
        while index < count {
            // Skip eight plain bytes at a time: none below 0x20, none from 0x80, no quote, no backslash.
            if let base {
                while index + 8 <= count {
                    let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    if Self.needsEscaping(word) { break }
                    index += 8
                }
                if index >= count { break }
                // Fewer than eight left (most values are short): tested once as one word instead
                // of one by one; if that word needs escaping, the bytes go one by one from here.
                if !tailTested && count - index < 8 {
                    tailTested = true
                    if !Self.needsEscaping(Self.tailWord(base, count: count)) {
                        index = count
                        break
                    }
                }
            }
            let byte = buffer[index]
            if byte >= 0x20 && byte < 0x80 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            if index > runStart { storage.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[runStart..<index])) }
            if byte >= 0x80 {
                index = appendMultibyte(buffer, from: index)
            } else {
                storage.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): storage.append(byte)
                case 0x0A: storage.append(UInt8(ascii: "n"))
                case 0x0D: storage.append(UInt8(ascii: "r"))
                case 0x09: storage.append(UInt8(ascii: "t"))
                default:
                    storage.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    storage.append(Self.hexDigits[Int(byte >> 4)])
                    storage.append(Self.hexDigits[Int(byte & 0xF)])
                }
                index += 1
            }
            runStart = index
        }
        if count > runStart { storage.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[runStart..<count])) }
        storage.append(UInt8(ascii: "\""))
    }

    /// Whether no byte needs escaping or UTF-8 validation: whole words, then the tail as one word.
    @inlinable @inline(__always)
    static func isPlain(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = UnsafeRawPointer(buffer.baseAddress) else { return true }
        let count = buffer.count
        var index = 0
        while index + 8 <= count {
            if needsEscaping(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) { return false }
            index += 8
        }
        return index == count || !needsEscaping(tailWord(base, count: count))
    }

    /// The value's last bytes (up to eight, every byte of a shorter value) as one word, read with
    /// loads only: a copy into a padded word would stall the load that follows it.
    @inlinable @inline(__always)
    static func tailWord(_ base: UnsafeRawPointer, count: Int) -> UInt64 {
        if count >= 8 { return base.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) }
        if count >= 4 {
            // Two overlapping halves cover all four to seven bytes.
            return UInt64(base.loadUnaligned(as: UInt32.self)) | UInt64(base.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)) << 32
        }
        // Fewer than four: each byte in place over eight plain ones ("aaaaaaaa").
        var word: UInt64 = 0x6161_6161_6161_6161
        for offset in 0..<count {
            let shift = UInt64(8 * offset)
            word = word & ~(0xFF << shift) | UInt64(base.load(fromByteOffset: offset, as: UInt8.self)) << shift
        }
        return word
    }

    /// Whether any of the eight bytes in `word` needs escaping or UTF-8 validation (may say yes for a
    /// plain word after a byte that does, never no for one that does).
    @inlinable @inline(__always)
    static func needsEscaping(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let control = (word &- ones &* 0x20) & ~word & highs
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let quoteZero = (quote &- ones) & ~quote & highs
        let backslashZero = (backslash &- ones) & ~backslash & highs
        return (word & highs) | control | quoteZero | backslashZero != 0
    }

    /// Copies one UTF-8 sequence if it is valid, else writes U+FFFD for its first byte.
    @usableFromInline
    mutating func appendMultibyte(_ value: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let lead = value[start]
        let length: Int
        let minimum: UInt32
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
        var index = start + 1
        var valid = length > 0
        if valid {
            for _ in 1..<length {
                guard index < value.count, value[index] & 0xC0 == 0x80 else {
                    valid = false
                    break
                }
                scalar = scalar << 6 | UInt32(value[index] & 0x3F)
                index += 1
            }
        }
        if valid && scalar >= minimum && scalar <= 0x10FFFF && !(0xD800...0xDFFF).contains(scalar) {
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: value[start..<index]))
            return index
        }
        storage.append(contentsOf: [0xEF, 0xBF, 0xBD])
        return start + 1
    }
}

/// A growable byte buffer over raw memory: appends are a capacity check and a copy, with none of
/// Array's uniqueness checks on the hot path.
@usableFromInline
final class ByteStorage {
    @exclusivity(unchecked) @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) @usableFromInline var count = 0
    @exclusivity(unchecked) @usableFromInline var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var array: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    @usableFromInline
    func grow(to minimum: Int) {
        var newCapacity = capacity * 2
        while newCapacity < minimum { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inlinable @inline(__always)
    func append(_ byte: UInt8) {
        if count == capacity { grow(to: count + 1) }
        base[count] = byte
        count += 1
    }

    /// A literal's bytes, straight from where they lie (a `withUTF8Buffer` closure retained the
    /// storage at every call).
    @inlinable @inline(__always)
    func append(literal: StaticString) {
        if literal.hasPointerRepresentation {
            append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        } else {
            literal.withUTF8Buffer { append(contentsOf: $0) }
        }
    }

    @inlinable @inline(__always)
    func append(contentsOf buffer: UnsafeBufferPointer<UInt8>) {
        let length = buffer.count
        guard length > 0 else { return }
        if count + length > capacity { grow(to: count + length) }
        (base + count).update(from: buffer.baseAddress!, count: length)
        count += length
    }

    /// `"first":"second"`, for bytes that need no escaping: one capacity check for all of it.
    @inlinable @inline(__always)
    func appendQuotedPair(_ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>) {
        let total = first.count + second.count + 5
        if count + total > capacity { grow(to: count + total) }
        var cursor = base + count
        cursor.pointee = UInt8(ascii: "\"")
        cursor += 1
        if let start = first.baseAddress { cursor.update(from: start, count: first.count) }
        cursor += first.count
        cursor[0] = UInt8(ascii: "\"")
        cursor[1] = UInt8(ascii: ":")
        cursor[2] = UInt8(ascii: "\"")
        cursor += 3
        if let start = second.baseAddress { cursor.update(from: start, count: second.count) }
        cursor += second.count
        cursor.pointee = UInt8(ascii: "\"")
        count += total
    }

    @inlinable
    func append(contentsOf bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append(contentsOf: $0) }
    }
}
