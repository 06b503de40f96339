import CZlib
import Synchronization

/// The JSON documents of stored events, deflated together in blocks of up to `capacity` lines.
///
/// An event's columns are a row of their own; its whole ECS document is line `slot` of block
/// `block`. A block of 64 events deflates to about a thirteenth of its size (zlib level 1, which
/// runs at some 270 MB/s here), so the database writes, caches and scans a tenth of what it would
/// with every document in its row. Reading one document inflates its block (about 75 KB) once;
/// `EventBlockCache` keeps the last few for the rows that follow.
struct EventBlock: Sendable {
    /// Lines per block: big enough to deflate well, small enough to inflate for one line.
    static let capacity = 64

    /// Each line followed by a newline, deflated.
    var data: [UInt8]
    /// Bytes before deflating.
    var size: Int
    /// How many lines.
    var count: Int

    /// Deflates `lines` (each without its newline).
    init<Lines: Collection>(lines: Lines) where Lines.Element == Substring {
        var text: [UInt8] = []
        text.reserveCapacity(lines.reduce(0) { $0 + $1.utf8.count + 1 })
        for line in lines {
            if line.utf8.withContiguousStorageIfAvailable({ text.append(contentsOf: $0) }) == nil { text.append(contentsOf: line.utf8) }
            text.append(UInt8(ascii: "\n"))
        }
        size = text.count
        count = lines.count
        var bound = compressBound(uLong(text.count))
        data = [UInt8](repeating: 0, count: Int(bound))
        let status = data.withUnsafeMutableBufferPointer { output in
            text.withUnsafeBufferPointer { input in
                compress2(output.baseAddress, &bound, input.baseAddress, uLong(input.count), 1)
            }
        }
        // compress2 fails only without memory or with a buffer smaller than compressBound.
        precondition(status == Z_OK, "zlib compress2 failed: \(status)")
        data.removeSubrange(Int(bound)...)
    }

    /// The lines of a stored block, or nil when `data` does not inflate to `size` bytes.
    static func lines(data: UnsafeRawBufferPointer, size: Int) -> InflatedBlock? {
        guard size >= 0 else { return nil }
        var text = [UInt8](repeating: 0, count: size)
        var length = uLong(size)
        let status = text.withUnsafeMutableBufferPointer { output in
            uncompress(output.baseAddress, &length, data.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(data.count))
        }
        guard status == Z_OK, length == uLong(size) else { return nil }
        return InflatedBlock(text: text)
    }
}

/// A block's text and where each line starts.
struct InflatedBlock: Sendable {
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

/// The last few blocks inflated by one store's queries, by block id (ids are never reused, see
/// `event_block`'s AUTOINCREMENT), shared by its connections.
final class EventBlockCache: Sendable {
    private let blocks = Mutex<[(id: Int64, block: InflatedBlock)]>([])
    private static let kept = 8

    /// Line `slot` of block `id`, inflating `data` when the block is not cached.
    func line(block id: Int64, slot: Int, size: Int, data: () -> [UInt8]?) -> String? {
        if let cached = blocks.withLock({ $0.first { $0.id == id }?.block }) { return cached.line(slot) }
        guard let bytes = data(), let block = bytes.withUnsafeBytes({ EventBlock.lines(data: $0, size: size) }) else { return nil }
        blocks.withLock {
            if $0.count == Self.kept { $0.removeFirst() }
            $0.append((id, block))
        }
        return block.line(slot)
    }
}
