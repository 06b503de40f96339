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
        typealias Piece = (lines: [Substring], rows: [StoredEvent], rejected: [IngestResult.Rejection])
        let pieces = await inPieces(body, parts: parts, minimumPieceBytes: minimumPieceBytes) { range, last -> Piece in
            let lines = body.withUnsafeBytes { bytes in
                var lines = Self.lines(utf8: UnsafeRawBufferPointer(rebasing: bytes[range]))
                // A piece cut after a newline ends with an empty line that is not in the body.
                if !last { lines.removeLast() }
                return lines
            }
            let (rows, rejected) = StoredEvent.parse(lines, host: host)
            return (lines, rows, rejected)
        }
        if pieces.count == 1 { return (pieces[0].lines, ParsedBatch(rows: pieces[0].rows, rejected: pieces[0].rejected)) }
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

    /// What the ingest journal needs before it answers: how many events `body` holds and which
    /// lines are not events (or not `host`'s), by the same rules as `parse` (`StoredEvent.check`), in
    /// up to `parts` pieces at once, without making the lines or their fields into strings: the
    /// journal's loader parses the batch fully, behind.
    public static func check(
        body: [UInt8], host: String?, parts: Int, minimumPieceBytes: Int = 256 << 10
    ) async -> (count: Int, rejected: [IngestResult.Rejection]) {
        let pieces = await inPieces(body, parts: parts, minimumPieceBytes: minimumPieceBytes) { range, _ in
            body.withUnsafeBytes { bytes in Self.check(piece: UnsafeRawBufferPointer(rebasing: bytes[range]), host: host) }
        }
        var count = 0
        var rejected: [IngestResult.Rejection] = []
        var offset = 0
        for piece in pieces {
            count += piece.events
            rejected += piece.rejected.map { IngestResult.Rejection(line: $0.line + offset, reason: $0.reason) }
            offset += piece.lines
        }
        return (count, rejected)
    }

    /// `work` over `body` cut into up to `parts` pieces (of at least `minimumPieceBytes`, cut just
    /// after newlines), at once on the concurrency pool; the results in the body's order. `last`
    /// is true for the piece that ends where the body does. One piece runs on the caller's task.
    static func inPieces<Piece: Sendable>(
        _ body: [UInt8], parts: Int, minimumPieceBytes: Int, _ work: @escaping @Sendable (_ range: Range<Int>, _ last: Bool) -> Piece
    ) async -> [Piece] {
        let parts = max(1, min(parts, body.count / max(minimumPieceBytes, 1)))
        let bounds = body.withUnsafeBytes { pieceBounds($0, parts: parts) }
        if bounds.count <= 2 { return [work(0..<body.count, true)] }
        return await withTaskGroup(of: (Int, Piece).self) { group in
            for index in 0..<(bounds.count - 1) {
                let range = bounds[index]..<bounds[index + 1]
                let last = index == bounds.count - 2
                group.addTask { (index, work(range, last)) }
            }
            var pieces = [Piece?](repeating: nil, count: bounds.count - 1)
            for await (index, piece) in group { pieces[index] = piece }
            return pieces.map { $0! }
        }
    }

    /// One piece's lines checked: how many lines it has (a piece cut after a newline has no line
    /// after it), its events, and its rejected lines numbered from 1 within it.
    static func check(piece: UnsafeRawBufferPointer, host: String?) -> (lines: Int, events: Int, rejected: [IngestResult.Rejection]) {
        guard let base = piece.baseAddress else { return (0, 0, []) }
        var lines = 0
        var events = 0
        var rejected: [IngestResult.Rejection] = []
        var start = 0
        while start < piece.count {
            let found = memchr(base + start, 0x0A, piece.count - start)
            let end = found.map { UnsafeRawPointer($0) - base } ?? piece.count
            let line = UnsafeRawBufferPointer(rebasing: piece[start..<end])
            lines += 1
            if !StoredEvent.isBlank(line) {
                do {
                    _ = try StoredEvent.check(line, host: host)
                    events += 1
                } catch {
                    rejected.append(IngestResult.Rejection(line: lines, reason: error.description))
                }
            }
            start = end + 1
        }
        return (lines, events, rejected)
    }

    /// The same on the caller's thread.
    public static func parse(body: [UInt8], host: String?) -> (lines: [Substring], batch: ParsedBatch) {
        let lines = body.withUnsafeBytes { Self.lines(utf8: $0) }
        return (lines, ParsedBatch(lines: lines, host: host))
    }
}
