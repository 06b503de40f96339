import Foundation
import HerdwatchCompression
import Synchronization

/// The JSON documents of stored events, compressed together in blocks of up to `capacity` lines.
///
/// An event's columns are a row of their own; its whole ECS document is line `slot` of block
/// `block`. A block of 64 events compresses (zstd level 1) to about a twelfth of its size, so the
/// database writes, caches and scans a fraction of what it would with every document in its row.
/// Reading one document decompresses its block (about 75 KB) once; `EventBlockCache` keeps the
/// last few for the rows that follow.
struct EventBlock: Sendable {
    /// Lines per block: big enough to compress well, small enough to decompress for one line.
    static let capacity = 64
    static let level: Int32 = 1

    /// Each line followed by a newline, compressed (one zstd frame).
    var data: [UInt8]
    /// Bytes before compressing.
    var size: Int
    /// How many lines.
    var count: Int

    /// Compresses `lines` (each without its newline) with `compressor`.
    init<Lines: Collection>(lines: Lines, compressor: Zstd.Compressor) where Lines.Element == Substring {
        var text: [UInt8] = []
        text.reserveCapacity(lines.reduce(0) { $0 + $1.utf8.count + 1 })
        for line in lines {
            if line.utf8.withContiguousStorageIfAvailable({ text.append(contentsOf: $0) }) == nil { text.append(contentsOf: line.utf8) }
            text.append(UInt8(ascii: "\n"))
        }
        size = text.count
        count = lines.count
        data = compressor.compress(text)
    }

    /// The lines of a stored block, or nil when `data` does not decompress to `size` bytes.
    static func lines(data: UnsafeRawBufferPointer, size: Int) -> DecompressedBlock? {
        Zstd.decompress(data, size: size).map(DecompressedBlock.init(text:))
    }
}

/// A batch parsed and its documents compressed, ready for one write transaction. Made on the
/// caller's task, so that preparing a batch overlaps writing another.
struct PreparedBatch: Sendable {
    var rows: [StoredEvent]
    /// `rows`' documents, `EventBlock.capacity` consecutive rows to a block.
    var blocks: [EventBlock]

    init(_ rows: [StoredEvent]) {
        // In host and time order, so that consecutive rows go to the same pages of the (host, time)
        // index (a batch from a bus holds events of many hosts); the first of a repeated id stays first.
        self.rows = rows.sorted { ($0.host, $0.time, $0.line) < ($1.host, $1.time, $1.line) }
        let rows = self.rows
        let compressor = Zstd.Compressor(level: EventBlock.level)
        blocks = stride(from: 0, to: rows.count, by: EventBlock.capacity).map { start in
            EventBlock(lines: rows[start..<min(start + EventBlock.capacity, rows.count)].lazy.map(\.json), compressor: compressor)
        }
    }
}

/// A block's text and where each line starts.
struct DecompressedBlock: Sendable {
    var text: [UInt8]
    var starts: [Int]

    init(text: [UInt8]) {
        self.text = text
        var starts = [0]
        for index in text.indices where text[index] == UInt8(ascii: "\n") && index + 1 < text.count { starts.append(index + 1) }
        self.starts = starts
    }

    /// Line `slot` without its newline; nil past the last line.
    func line(_ slot: Int) -> String? {
        guard slot >= 0, slot < starts.count else { return nil }
        var end = slot + 1 < starts.count ? starts[slot + 1] - 1 : text.count
        if end > starts[slot], text[end - 1] == UInt8(ascii: "\n") { end -= 1 }
        return String(decoding: text[starts[slot]..<end], as: UTF8.self)
    }
}

/// The last few blocks decompressed for one store's queries, by block id (ids are never reused, see
/// `event_block`'s AUTOINCREMENT), shared by its connections.
final class EventBlockCache: Sendable {
    private let blocks = Mutex<[(id: Int64, block: DecompressedBlock)]>([])
    private static let kept = 8

    /// Line `slot` of block `id`, decompressing `data` when the block is not cached.
    func line(block id: Int64, slot: Int, size: Int, data: () -> Data?) -> String? {
        if let cached = blocks.withLock({ $0.first { $0.id == id }?.block }) { return cached.line(slot) }
        guard let bytes = data(), let block = bytes.withUnsafeBytes({ EventBlock.lines(data: $0, size: size) }) else { return nil }
        blocks.withLock {
            if $0.count == Self.kept { $0.removeFirst() }
            $0.append((id, block))
        }
        return block.line(slot)
    }
}
