import HerdwatchEvents

#if canImport(Glibc)
import CCRC32C
import Glibc
#endif

/// A failed spool operation: which file and what went wrong.
public struct SpoolError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    static func system(_ path: String, _ operation: String) -> SpoolError {
        SpoolError(path: path, reason: "\(operation): \(String(cString: strerror(errno)))")
    }

    public var description: String { "\(path): \(reason)" }
}

/// A place in the spool: a segment and a byte offset in it. Ordered as the records were written.
public struct SpoolPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var segment: UInt64
    public var offset: UInt64

    public init(segment: UInt64, offset: UInt64) {
        self.segment = segment
        self.offset = offset
    }

    public static func < (a: SpoolPosition, b: SpoolPosition) -> Bool {
        (a.segment, a.offset) < (b.segment, b.offset)
    }

    public var description: String { "\(segment):\(offset)" }
}

/// The disk spool between the collectors and the sinks: events are appended to segment files as
/// checksummed records, each sink reads from its own cursor, and a cursor only moves when its sink
/// has acknowledged delivery, so a crash or an outage loses nothing that reached the disk.
///
/// Record: `length` (UInt32 LE, top bit: must-keep) · `crc32c(payload)` (UInt32 LE) · payload. On
/// open, the newest segment is scanned and a torn or corrupt tail is cut off (reported in
/// `recovery`), never read as data. Segments roll over at `segmentBytes`; past `maximumBytes` the
/// oldest segments are deleted: their unacknowledged must-keep records move to the end, the others
/// are dropped and counted in `droppedRecords` (see `enforceLimit`).
///
/// Durability: `flush()` writes what was appended and, with `SyncPolicy.everyFlush`, fsyncs the
/// segment before returning; with `.interval(ms)` at most once per interval; with `.never` the
/// kernel decides (a power loss may lose the last seconds, a process crash loses nothing written).
public final class Spool {
    public enum SyncPolicy: Sendable, Equatable {
        case everyFlush
        case interval(milliseconds: Int64)
        case never
    }

    public struct Configuration: Sendable {
        public var directory: String
        public var segmentBytes: UInt64 = 16 << 20
        public var maximumBytes: UInt64 = 1 << 30
        public var sync: SyncPolicy = .everyFlush

        public init(directory: String) {
            self.directory = directory
        }
    }

    /// What opening the spool found and repaired.
    public struct Recovery: Sendable, Equatable {
        public var segments = 0
        public var records = 0
        /// Bytes cut from the end of the newest segment (a torn write or a corrupt record).
        public var truncatedBytes: UInt64 = 0
        public var reason: String?
    }

    public let configuration: Configuration
    public private(set) var recovery = Recovery()
    /// Records deleted unacknowledged because the spool was full, since it was opened.
    public private(set) var droppedRecords = 0
    /// Of `droppedRecords`, the must-keep ones (only when must-keep records alone overflow half
    /// the spool).
    public private(set) var droppedMustKeepRecords = 0
    /// Must-keep records moved from a deleted segment to the end of the spool (delivered later,
    /// out of order).
    public private(set) var movedRecords = 0
    private var segments: [UInt64] = []
    private var writeDescriptor: Int32 = -1
    private var writeOffset: UInt64 = 0
    private var pending: [UInt8] = []
    private var lastSync: Int64 = 0
    private var cursors: [String: SpoolPosition] = [:]
    /// Open cursor files, by sink (see `CursorFile`).
    private var cursorFiles: [String: CursorFile] = [:]
    /// Records appended by this process, kept in memory so sinks that keep up read them without
    /// touching the disk: (position before, payload, position after). Bounded by `cacheBytes`.
    private var recent: [(start: SpoolPosition, payload: [UInt8], next: SpoolPosition)] = []
    private var recentHead = 0
    private var recentBytes = 0
    private let cacheBytes = 8 << 20

    /// Bytes a record takes in a segment beyond its payload (length and checksum).
    public static let headerSize = 8
    /// The length field's top bit: the record is must-keep (lengths stay below 64 MiB).
    static let mustKeepFlag: UInt32 = 1 << 31
    static let maximumRecord = 64 << 20

    public init(configuration: Configuration) throws(SpoolError) {
        self.configuration = configuration
        let directory = configuration.directory
        try Self.makeDirectories(directory)
        segments = try Self.listSegments(directory)
        recovery.segments = segments.count
        if let newest = segments.last {
            try recover(segment: newest)
        } else {
            segments = [1]
        }
        try openForAppend(segments.last!)
        for name in try Self.listFiles(directory) where name.hasPrefix("cursor-") {
            let sink = String(name.dropFirst("cursor-".count))
            if let position = Self.readCursor("\(directory)/\(name)") { cursors[sink] = position }
        }
    }

    deinit {
        try? flush()
        if writeDescriptor >= 0 { close(writeDescriptor) }
        for file in cursorFiles.values {
            fdatasync(file.descriptor)
            close(file.descriptor)
        }
    }

    /// Where the next record will go.
    public var end: SpoolPosition { SpoolPosition(segment: segments.last!, offset: writeOffset + UInt64(pending.count)) }

    /// The end of what is written to the segment files (what sinks can read).
    public var written: SpoolPosition { SpoolPosition(segment: segments.last!, offset: writeOffset) }

    /// The oldest record still kept.
    public var start: SpoolPosition { SpoolPosition(segment: segments.first!, offset: 0) }

    // MARK: Writing

    /// Adds one record (in memory until `flush`). Returns the position after it.
    @discardableResult
    public func append(_ payload: [UInt8], mustKeep: Bool = false) throws(SpoolError) -> SpoolPosition {
        guard !payload.isEmpty, payload.count <= Self.maximumRecord else {
            throw SpoolError(path: configuration.directory, reason: "record of \(payload.count) bytes not allowed")
        }
        if writeOffset + UInt64(pending.count + Self.headerSize + payload.count) > configuration.segmentBytes,
            writeOffset + UInt64(pending.count) > 0
        {
            try roll()
        }
        // The header: length (and the must-keep flag), then the payload's checksum, little-endian.
        let header = ((UInt32(payload.count) | (mustKeep ? Self.mustKeepFlag : 0)).littleEndian, CRC32C.checksum(payload).littleEndian)
        let before = end
        withUnsafeBytes(of: header) { pending.append(contentsOf: $0) }
        pending += payload
        let after = end
        recent.append((before, payload, after))
        recentBytes += payload.count
        while recentBytes > cacheBytes, recentHead < recent.count {
            recentBytes -= recent[recentHead].payload.count
            recentHead += 1
        }
        if recentHead > 4096, recentHead * 2 > recent.count {
            recent.removeFirst(recentHead)
            recentHead = 0
        }
        return after
    }

    /// Writes what was appended; fsyncs according to the policy.
    public func flush() throws(SpoolError) {
        try writePending()
        try enforceLimit()
    }

    private func writePending() throws(SpoolError) {
        if !pending.isEmpty {
            let path = segmentPath(segments.last!)
            var written = 0
            while written < pending.count {
                let count = pending.withUnsafeBytes { bytes in
                    write(writeDescriptor, bytes.baseAddress! + written, bytes.count - written)
                }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw .system(path, "write")
                }
                written += count
            }
            writeOffset += UInt64(pending.count)
            pending.removeAll(keepingCapacity: true)
            try sync(force: false)
        }
    }

    private func sync(force: Bool) throws(SpoolError) {
        let now = SystemClock.monotonicMilliseconds()
        switch configuration.sync {
        case .never where !force:
            return
        case .interval(let milliseconds) where !force && now - lastSync < milliseconds:
            return
        default:
            if fdatasync(writeDescriptor) != 0 { throw .system(segmentPath(segments.last!), "fdatasync") }
            lastSync = now
        }
    }

    private func roll() throws(SpoolError) {
        try flush()
        try sync(force: true)
        close(writeDescriptor)
        let next = segments.last! + 1
        segments.append(next)
        try openForAppend(next)
        // The new file's name must survive a crash too.
        let directory = open(configuration.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    private func openForAppend(_ segment: UInt64) throws(SpoolError) {
        let path = segmentPath(segment)
        writeDescriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard writeDescriptor >= 0 else { throw .system(path, "open") }
        var info = stat()
        fstat(writeDescriptor, &info)
        writeOffset = UInt64(info.st_size)
    }

    // MARK: Reading and acknowledging

    /// Up to `maximumRecords` records after `position` (already written by `flush`), with the
    /// position after each.
    public func read(after position: SpoolPosition, maximumRecords: Int = 1024) throws(SpoolError)
        -> [(payload: [UInt8], next: SpoolPosition)]
    {
        var records: [(payload: [UInt8], next: SpoolPosition)] = []
        var cursor = max(position, start)
        let written = SpoolPosition(segment: segments.last!, offset: writeOffset)
        // Nothing written past the cursor (an idle host, a sink that keeps up): no file to open.
        guard cursor < written else { return records }
        // From memory when the cursor is within what this process appended and wrote.
        if recentHead < recent.count, cursor >= recent[recentHead].start {
            var low = recentHead
            var high = recent.count
            while low < high {
                let middle = (low + high) / 2
                if recent[middle].start < cursor { low = middle + 1 } else { high = middle }
            }
            var index = low
            if index < recent.count, recent[index].start == cursor {
                while index < recent.count, records.count < maximumRecords, recent[index].next <= written {
                    records.append((recent[index].payload, recent[index].next))
                    index += 1
                }
                return records
            }
        }
        while records.count < maximumRecords {
            guard let index = segments.firstIndex(of: cursor.segment) else { break }
            let limit = cursor.segment == segments.last! ? writeOffset : UInt64.max
            let segment = cursor.segment
            let walked = try Self.walk(
                segmentPath(segment), from: cursor.offset, limit: limit, maximumRecords: maximumRecords - records.count
            ) { payload, offset, _ in
                records.append((payload, SpoolPosition(segment: segment, offset: offset)))
            }
            cursor.offset = walked.end
            guard !walked.stoppedEarly, index + 1 < segments.count else { break }
            cursor = SpoolPosition(segment: segments[index + 1], offset: 0)
        }
        return records
    }

    /// What a sink has not yet acknowledged.
    public struct Lag: Sendable, Equatable {
        public var records = 0
        /// Spool bytes (headers included).
        public var bytes: UInt64 = 0
        /// The oldest unacknowledged record, for its age.
        public var oldest: [UInt8]?
    }

    /// Walks what `sink` has not acknowledged (written records only; a `stats` request, not a hot path).
    public func lag(for sink: String) throws(SpoolError) -> Lag {
        var lag = Lag()
        var cursor = max(cursor(for: sink), start)
        while let index = segments.firstIndex(of: cursor.segment) {
            let last = index == segments.count - 1
            let walked = try Self.walk(segmentPath(cursor.segment), from: cursor.offset, limit: last ? writeOffset : .max) {
                payload, _, _ in
                lag.records += 1
                lag.bytes += UInt64(Self.headerSize + payload.count)
                if lag.oldest == nil { lag.oldest = payload }
            }
            _ = walked
            guard !last else { break }
            cursor = SpoolPosition(segment: segments[index + 1], offset: 0)
        }
        return lag
    }

    /// The bytes `lag(for:)` counts, from the segments' sizes alone: no record is read, so a
    /// journal with gigabytes behind opens at once.
    public func unsentBytes(for sink: String) -> UInt64 {
        let cursor = max(cursor(for: sink), start)
        var bytes: UInt64 = 0
        for segment in segments where segment >= cursor.segment {
            let size = segment == segments.last! ? writeOffset : fileSize(segment)
            bytes += size - (segment == cursor.segment ? min(cursor.offset, size) : 0)
        }
        return bytes
    }

    /// The sink's cursor: everything up to it has been delivered.
    public func cursor(for sink: String) -> SpoolPosition { cursors[sink] ?? start }

    /// Moves the sink's cursor (after the sink acknowledged everything up to `position`).
    ///
    /// The cursor is written in place (`CursorFile`) and synced at most once a second: a cursor
    /// that lags after a power loss only repeats events (delivery is at least once, and receivers
    /// drop repeats by event id); it can never skip one.
    public func acknowledge(sink: String, through position: SpoolPosition) throws(SpoolError) {
        let path = "\(configuration.directory)/cursor-\(sink)"
        var file: CursorFile
        if let open = cursorFiles[sink] {
            file = open
        } else {
            file = try CursorFile(path: path)
        }
        try file.write(position, path: path)
        cursorFiles[sink] = file
        cursors[sink] = position
        try enforceLimit()
    }

    // MARK: Capacity

    /// Deletes the oldest segments while the spool is over `maximumBytes` (never the one being
    /// written). Of the records in them that a sink had not yet acknowledged, the must-keep ones are
    /// appended again (up to half the spool's size per pass) and the others are dropped and counted
    /// in `droppedRecords`: the oldest ordinary events go first. Must-keep records past that half
    /// are dropped too, and also counted in `droppedMustKeepRecords`.
    private func enforceLimit() throws(SpoolError) {
        var rescued: [[UInt8]] = []
        var rescuedBytes: UInt64 = 0
        while segments.count > 1, totalBytes() > configuration.maximumBytes {
            let oldest = segments.removeFirst()
            let path = segmentPath(oldest)
            let slowest = cursors.values.min() ?? SpoolPosition(segment: 0, offset: 0)
            if slowest.segment <= oldest {
                let from = slowest.segment == oldest ? slowest.offset : 0
                let budget = configuration.maximumBytes / 2
                try Self.walk(path, from: from) { payload, _, mustKeep in
                    if mustKeep && rescuedBytes + UInt64(payload.count + Self.headerSize) <= budget {
                        rescued.append(payload)
                        rescuedBytes += UInt64(payload.count + Self.headerSize)
                    } else {
                        droppedRecords += 1
                        if mustKeep { droppedMustKeepRecords += 1 }
                    }
                }
            }
            unlink(path)
        }
        // A segment everyone has read past can go as well.
        if let slowest = cursors.values.min() {
            while segments.count > 1, segments.first! < slowest.segment {
                unlink(segmentPath(segments.removeFirst()))
            }
        }
        guard !rescued.isEmpty else { return }
        for payload in rescued { try append(payload, mustKeep: true) }
        movedRecords += rescued.count
        try writePending()
    }

    private func totalBytes() -> UInt64 {
        segments.reduce(0) { $0 + fileSize($1) } + UInt64(pending.count)
    }

    /// A segment file's size on disk (0 when it cannot be read).
    private func fileSize(_ segment: UInt64) -> UInt64 {
        var info = stat()
        return stat(segmentPath(segment), &info) == 0 ? UInt64(info.st_size) : 0
    }

    // MARK: Recovery

    private func recover(segment: UInt64) throws(SpoolError) {
        let path = segmentPath(segment)
        var records = 0
        let (validEnd, _, problem) = try Self.walk(path, from: 0) { _, _, _ in records += 1 }
        recovery.records = records
        var info = stat()
        stat(path, &info)
        let size = UInt64(info.st_size)
        if validEnd < size {
            guard truncate(path, off_t(validEnd)) == 0 else { throw .system(path, "truncate") }
            recovery.truncatedBytes = size - validEnd
            recovery.reason = problem
        }
    }

    /// Walks the valid records of a segment from `offset`, up to `limit` bytes or the file's end
    /// and at most `maximumRecords`, handing each payload and the offset after it to `body`.
    /// Returns where valid data ends, whether it stopped for `maximumRecords`, and — when it stopped
    /// at a torn or corrupt record before the end — why.
    @discardableResult
    static func walk(
        _ path: String, from offset: UInt64, limit: UInt64 = .max, maximumRecords: Int = .max,
        _ body: (_ payload: [UInt8], _ end: UInt64, _ mustKeep: Bool) -> Void = { _, _, _ in }
    ) throws(SpoolError) -> (end: UInt64, stoppedEarly: Bool, problem: String?) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system(path, "open") }
        defer { close(descriptor) }
        var info = stat()
        fstat(descriptor, &info)
        let end = min(limit, UInt64(info.st_size))
        var position = offset
        var count = 0
        // Read in chunks of up to 1 MB (one read for many records), grown for a larger record.
        var buffer = [UInt8](repeating: 0, count: Int(min(max(end > offset ? end - offset : 0, UInt64(headerSize)), 1 << 20)))
        var bufferStart = position  // the file offset of buffer[0]
        var bufferCount = 0
        /// Makes [position, position + bytes) available in the buffer; false at a short read.
        func ensure(_ bytes: Int) -> Bool {
            if position + UInt64(bytes) <= bufferStart + UInt64(bufferCount) { return true }
            let wanted = max(bytes, min(buffer.count, Int(end - position)))
            if wanted > buffer.count { buffer = [UInt8](repeating: 0, count: wanted) }
            let read = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, wanted, off_t(position)) }
            bufferStart = position
            bufferCount = max(read, 0)
            return bufferCount >= bytes
        }
        while position < end {
            guard count < maximumRecords else { return (position, true, nil) }
            guard position + UInt64(headerSize) <= end else { return (position, false, "torn record header") }
            guard ensure(headerSize) else { return (position, false, "torn record header") }
            let at = Int(position - bufferStart)
            let field = get(buffer, at: at, as: UInt32.self)
            let length = Int(field & ~mustKeepFlag)
            guard length > 0, length <= maximumRecord else { return (position, false, "invalid record length \(length)") }
            guard position + UInt64(headerSize + length) <= end else { return (position, false, "torn record") }
            guard ensure(headerSize + length) else { return (position, false, "torn record") }
            let start = Int(position - bufferStart)
            let stored = get(buffer, at: start + 4, as: UInt32.self)
            let payload = Array(buffer[(start + headerSize)..<(start + headerSize + length)])
            guard CRC32C.checksum(payload) == stored else { return (position, false, "checksum mismatch") }
            position += UInt64(headerSize + length)
            count += 1
            body(payload, position, field & mustKeepFlag != 0)
        }
        return (position, false, nil)
    }

    // MARK: Files

    private func segmentPath(_ segment: UInt64) -> String {
        let hex = String(segment, radix: 16)
        return "\(configuration.directory)/\(String(repeating: "0", count: max(0, 16 - hex.count)))\(hex).seg"
    }

    /// `mkdir -p`, private to root.
    static func makeDirectories(_ path: String) throws(SpoolError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { throw .system(prefix, "mkdir") }
        }
    }

    static func listFiles(_ directory: String) throws(SpoolError) -> [String] {
        guard let handle = opendir(directory) else { throw .system(directory, "opendir") }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func listSegments(_ directory: String) throws(SpoolError) -> [UInt64] {
        try listFiles(directory).compactMap { name in
            name.hasSuffix(".seg") ? UInt64(name.dropLast(4), radix: 16) : nil
        }.sorted()
    }

    static func readCursor(_ path: String) -> SpoolPosition? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        return CursorFile.read(descriptor)?.position
    }

    /// `value` little-endian at `offset` (record headers, cursor slots).
    static func put<Value: FixedWidthInteger & UnsignedInteger>(_ value: Value, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<Value.bitWidth / 8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    static func get<Value: FixedWidthInteger & UnsignedInteger>(_ bytes: [UInt8], at offset: Int, as _: Value.Type) -> Value {
        var value: Value = 0
        for index in 0..<Value.bitWidth / 8 { value |= Value(bytes[offset + index]) << (8 * index) }
        return value
    }
}

/// CRC-32C (Castagnoli), the checksum iSCSI, ext4 and Kafka use: the processor's instruction when it
/// has one, else tables (slicing-by-8).
public enum CRC32C {
    /// tables[k][b]: the CRC of byte b followed by k zero bytes.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[index] = crc
        }
        for index in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = tables[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return tables
    }()

    /// Whether the processor computes CRC-32C itself (SSE 4.2, or Arm's CRC extension).
    static let hardware = herdwatch_crc32c_available() != 0

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        guard hardware else { return tableChecksum(bytes) }
        return bytes.withUnsafeBufferPointer { herdwatch_crc32c_update(0xFFFF_FFFF, $0.baseAddress, $0.count) } ^ 0xFFFF_FFFF
    }

    /// The same checksum from tables, eight bytes at a time (slicing-by-8).
    static func tableChecksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        tables.withUnsafeBufferPointer { t in
            bytes.withUnsafeBytes { data in
                var index = 0
                let count = data.count
                while index + 8 <= count {
                    let low = UInt32(littleEndian: data.loadUnaligned(fromByteOffset: index, as: UInt32.self)) ^ crc
                    let high = UInt32(littleEndian: data.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                    crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                        ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                        ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                    index += 8
                }
                while index < count {
                    crc = t[Int((crc ^ UInt32(data[index])) & 0xFF)] ^ (crc >> 8)
                    index += 1
                }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// A sink's cursor on disk: two 32-byte slots, written in turn in place, each
/// `sequence · segment · offset` (UInt64 LE) · `crc32c` of those 24 bytes · "HWC1". The newest
/// slot with a valid checksum is the cursor, so a write torn by a power loss leaves the one before.
/// No open, rename or fsync per acknowledgment: the file stays open and is synced at most once a
/// second, and when the spool closes. Cursors of earlier releases (`SEGMENT OFFSET` as text) are
/// read, and replaced at the first write.
struct CursorFile {
    let descriptor: Int32
    private var sequence: UInt64
    private var lastSync: Int64 = 0
    /// Holds the text of an earlier release: emptied before the first slot is written.
    private var isText: Bool

    static let slotSize = 32
    static let magic: UInt32 = 0x3143_5748  // "HWC1", little-endian
    static let syncMilliseconds: Int64 = 1000

    init(path: String) throws(SpoolError) {
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .system(path, "open") }
        let found = Self.read(descriptor)
        sequence = found?.sequence ?? 0
        isText = found?.isText ?? false
    }

    mutating func write(_ position: SpoolPosition, path: String) throws(SpoolError) {
        if isText {
            guard ftruncate(descriptor, 0) == 0 else { throw .system(path, "truncate") }
            isText = false
        }
        sequence &+= 1
        var slot = [UInt8](repeating: 0, count: Self.slotSize)
        Spool.put(sequence, into: &slot, at: 0)
        Spool.put(position.segment, into: &slot, at: 8)
        Spool.put(position.offset, into: &slot, at: 16)
        Spool.put(CRC32C.checksum(Array(slot[0..<24])), into: &slot, at: 24)
        Spool.put(Self.magic, into: &slot, at: 28)
        let offset = off_t(Int(sequence % 2) * Self.slotSize)
        let written = slot.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, offset) }
        guard written == Self.slotSize else { throw .system(path, "write") }
        let now = SystemClock.monotonicMilliseconds()
        if now - lastSync >= Self.syncMilliseconds {
            guard fdatasync(descriptor) == 0 else { throw .system(path, "fdatasync") }
            lastSync = now
        }
    }

    /// The cursor a file holds: its newest valid slot, or the text of an earlier release.
    static func read(_ descriptor: Int32) -> (position: SpoolPosition, sequence: UInt64, isText: Bool)? {
        var buffer = [UInt8](repeating: 0, count: 2 * slotSize)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        var best: (position: SpoolPosition, sequence: UInt64, isText: Bool)?
        var looksBinary = false
        for start in stride(from: 0, to: count - slotSize + 1, by: slotSize) {
            guard Spool.get(buffer, at: start + 28, as: UInt32.self) == magic else { continue }
            looksBinary = true
            let checksum = CRC32C.checksum(Array(buffer[start..<start + 24]))
            guard checksum == Spool.get(buffer, at: start + 24, as: UInt32.self) else { continue }
            let sequence = Spool.get(buffer, at: start, as: UInt64.self)
            if let best, best.sequence >= sequence { continue }
            let position = SpoolPosition(
                segment: Spool.get(buffer, at: start + 8, as: UInt64.self), offset: Spool.get(buffer, at: start + 16, as: UInt64.self))
            best = (position, sequence, false)
        }
        if best != nil || looksBinary { return best }
        let parts = String(decoding: buffer[0..<count], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let segment = UInt64(parts[0]), let offset = UInt64(parts[1]) else { return nil }
        return (SpoolPosition(segment: segment, offset: offset), 0, true)
    }
}
