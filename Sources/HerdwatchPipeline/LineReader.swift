import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An input that cannot be opened or read.
public struct InputError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Reads lines from a file, a gzip file or standard input (`-`), in large chunks.
///
/// Compression is detected from the content (zlib reads plain files transparently). Lines longer than
/// `maximumLineLength` are cut at the limit and flagged, the rest of the line skipped, so memory stays
/// bounded whatever the input.
public final class LineReader {
    public let path: String
    public let maximumLineLength: Int
    private let file: gzFile?
    private let descriptor: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var finished = false
    public private(set) var lineNumber = 0
    public private(set) var bytesRead: UInt64 = 0

    public init(path: String, maximumLineLength: Int = 64 * 1024, chunkSize: Int = 1 << 20) throws {
        self.path = path
        self.maximumLineLength = maximumLineLength
        let descriptor: Int32
        if path == "-" {
            descriptor = dup(STDIN_FILENO)
        } else {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
        }
        guard descriptor >= 0 else {
            throw InputError(path: path == "-" ? "<stdin>" : path, reason: String(cString: strerror(errno)))
        }
        var info = stat()
        if fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
            close(descriptor)
            throw InputError(path: path, reason: "is a directory")
        }
        guard let file = gzdopen(descriptor, "rb") else {
            close(descriptor)
            throw InputError(path: path, reason: "cannot open for reading")
        }
        gzbuffer(file, 256 * 1024)
        self.file = file
        self.descriptor = -1
        self.buffer = [UInt8](repeating: 0, count: max(chunkSize, maximumLineLength * 2))
    }

    /// A live stream (a pipe from auditd's dispatcher, a socket): plain reads, each `fill` returns what
    /// is there, so a caller can poll the descriptor and never block behind a partial chunk.
    public init(streaming descriptor: Int32, name: String, maximumLineLength: Int = 64 * 1024) {
        self.path = name
        self.maximumLineLength = maximumLineLength
        self.file = nil
        self.descriptor = descriptor
        self.buffer = [UInt8](repeating: 0, count: max(1 << 20, maximumLineLength * 2))
    }

    deinit { if let file { gzclose(file) } }

    public var isFinished: Bool { finished && start == end }

    /// The next complete line already in the buffer, without reading; for streaming use after `fill()`.
    public func nextBufferedLine() throws -> Line? {
        if let newline = findNewline() {
            lineNumber += 1
            let line = Array(buffer[start..<newline])
            start = newline + 1
            return Line(bytes: line, number: lineNumber, truncated: false)
        }
        if end - start >= maximumLineLength || (finished && end > start) {
            return try next()
        }
        return nil
    }

    public struct Line {
        /// The bytes of the line, without the newline; at most `maximumLineLength` of them.
        public var bytes: [UInt8]
        public var number: Int
        /// The line was longer than the limit and has been cut.
        public var truncated: Bool
    }

    /// The next line, or nil at the end of the input.
    public func next() throws -> Line? {
        while true {
            if let newline = findNewline() {
                lineNumber += 1
                let line = Array(buffer[start..<newline])
                start = newline + 1
                return Line(bytes: line, number: lineNumber, truncated: false)
            }
            if end - start >= maximumLineLength {
                // Too long: keep the head, discard through the next newline.
                lineNumber += 1
                let line = Array(buffer[start..<(start + maximumLineLength)])
                try skipRestOfLine()
                return Line(bytes: line, number: lineNumber, truncated: true)
            }
            if finished {
                guard end > start else { return nil }
                lineNumber += 1
                let line = Array(buffer[start..<end])
                start = end
                return Line(bytes: line, number: lineNumber, truncated: false)
            }
            try fill()
        }
    }

    private func findNewline() -> Int? {
        guard end > start else { return nil }
        return buffer.withUnsafeBufferPointer { pointer in
            guard let base = pointer.baseAddress,
                let found = memchr(base + start, Int32(UInt8(ascii: "\n")), end - start)
            else { return nil }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Reads once: one chunk from a file, or whatever a stream has (blocking until it has something).
    public func fill() throws {
        if start > 0 {
            let remaining = end - start
            if remaining > 0 {
                buffer.withUnsafeMutableBufferPointer { pointer in
                    _ = memmove(pointer.baseAddress!, pointer.baseAddress! + start, remaining)
                }
            }
            start = 0
            end = remaining
        }
        let capacity = buffer.count - end
        guard let file else {
            let count = buffer.withUnsafeMutableBufferPointer { pointer in
                read(descriptor, pointer.baseAddress! + end, capacity)
            }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { return }
                throw InputError(path: path, reason: String(cString: strerror(errno)))
            }
            if count == 0 { finished = true }
            end += count
            bytesRead += UInt64(count)
            return
        }
        let count = buffer.withUnsafeMutableBufferPointer { pointer in
            gzread(file, pointer.baseAddress! + end, UInt32(capacity))
        }
        if count < 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
            throw InputError(path: path, reason: message)
        }
        if count == 0 {
            // A truncated gzip stream ends without an error from gzread; report it.
            var code: Int32 = 0
            _ = gzerror(file, &code)
            if code != Z_OK && code != Z_STREAM_END {
                throw InputError(path: path, reason: "compressed data is truncated or corrupt")
            }
            finished = true
        }
        end += Int(count)
        bytesRead += UInt64(count)
    }

    private func skipRestOfLine() throws {
        start = end
        while true {
            try fill()
            if let newline = findNewline() {
                start = newline + 1
                return
            }
            start = end
            if finished { return }
        }
    }
}
