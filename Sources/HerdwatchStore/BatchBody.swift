#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A batch body as the server receives it: ECS JSON lines, cut and parsed on several cores at once.
extension ParsedBatch {
    /// The lines of `bytes`, cut at newline bytes found with memchr, each line a string of its own
    /// (invalid UTF-8 replaced, as `String(decoding:as:)` does). Checking the UTF-8 line by line is
    /// the fast part: the standard library checks an all-ASCII buffer about ten times faster than
    /// one with any other byte in it, so one accented file name does not slow down a whole batch.
    public static func lines(utf8 bytes: UnsafeRawBufferPointer) -> [Substring] {
        var lines: [Substring] = []
        guard let base = bytes.baseAddress else { return [""] }
        var start = 0
        while true {
            let rest = bytes.count - start
            let found: UnsafeMutableRawPointer? = rest == 0 ? nil : memchr(base + start, 0x0A, rest)
            let end = found.map { UnsafeRawPointer($0) - base } ?? bytes.count
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            lines.append(Substring(String(decoding: line, as: UTF8.self)))
            guard found != nil else { return lines }
            start = end + 1
        }
    }

    /// Where `body` is cut for `parts` pieces: just after a newline at or past each even share,
    /// so that no line is split. Pieces may be empty; the bounds run from 0 to `body.count`.
    static func pieceBounds(_ body: UnsafeRawBufferPointer, parts: Int) -> [Int] {
        var bounds = [0]
        guard let base = body.baseAddress, parts > 1 else { return bounds + [body.count] }
        for part in 1..<parts {
            let from = max(bounds[bounds.count - 1], body.count / parts * part)
            if from >= body.count { break }
            guard let found = memchr(base + from, 0x0A, body.count - from) else { break }
            bounds.append(UnsafeRawPointer(found) - base + 1)
        }
        return bounds + [body.count]
    }

    /// Cuts `body` into lines and parses them as `init(lines:host:)` does, in up to `parts` pieces
    /// at once on the concurrency pool (pieces of at least `minimumPieceBytes`, cut at newlines).
    /// The server runs every batch through this before it answers, so a batch's check uses every
    /// core instead of one; line numbers and positions are the whole batch's.
    public static func parse(
        body: [UInt8], host: String?, parts: Int, minimumPieceBytes: Int = 256 << 10
    ) async -> (lines: [Substring], batch: ParsedBatch) {
        let parts = max(1, min(parts, body.count / max(minimumPieceBytes, 1)))
        let bounds = body.withUnsafeBytes { pieceBounds($0, parts: parts) }
        if bounds.count <= 2 { return parse(body: body, host: host) }
        typealias Piece = (lines: [Substring], rows: [StoredEvent], rejected: [IngestResult.Rejection])
        let pieces = await withTaskGroup(of: (Int, Piece).self) { group in
            for index in 0..<(bounds.count - 1) {
                let range = bounds[index]..<bounds[index + 1]
                // The last piece's end is the body's: a body ending in a newline has an empty last line.
                let last = index == bounds.count - 2
                group.addTask {
                    let lines = body.withUnsafeBytes { bytes in
                        var lines = Self.lines(utf8: UnsafeRawBufferPointer(rebasing: bytes[range]))
                        // A piece cut after a newline ends with an empty line that is not in the body.
                        if !last { lines.removeLast() }
                        return lines
                    }
                    let (rows, rejected) = StoredEvent.parse(lines, host: host)
                    return (index, (lines, rows, rejected))
                }
            }
            var pieces = [Piece?](repeating: nil, count: bounds.count - 1)
            for await (index, piece) in group { pieces[index] = piece }
            return pieces.map { $0! }
        }
        var lines: [Substring] = []
        var rows: [StoredEvent] = []
        var rejected: [IngestResult.Rejection] = []
        lines.reserveCapacity(pieces.reduce(0) { $0 + $1.lines.count })
        rows.reserveCapacity(pieces.reduce(0) { $0 + $1.rows.count })
        for piece in pieces {
            let offset = lines.count
            lines += piece.lines
            rows += piece.rows.map { row in
                var row = row
                row.line += offset
                return row
            }
            rejected += piece.rejected.map { IngestResult.Rejection(line: $0.line + offset, reason: $0.reason) }
        }
        return (lines, ParsedBatch(rows: rows, rejected: rejected))
    }

    /// The same on the caller's thread.
    public static func parse(body: [UInt8], host: String?) -> (lines: [Substring], batch: ParsedBatch) {
        let lines = body.withUnsafeBytes { Self.lines(utf8: $0) }
        return (lines, ParsedBatch(lines: lines, host: host))
    }
}
