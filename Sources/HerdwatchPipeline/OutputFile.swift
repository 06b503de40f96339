#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A write failure on an output: which output, and the system's reason.
public struct OutputError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// A buffered byte sink over a file descriptor: standard output (`-`) or a file.
public final class OutputFile {
    public let path: String
    private let descriptor: Int32
    private let ownsDescriptor: Bool
    private var buffer: [UInt8] = []
    private let capacity: Int

    /// `appending`: keep what the file holds and add to its end (the agent, across restarts);
    /// otherwise the file is replaced (replay).
    public init(path: String, capacity: Int = 256 * 1024, appending: Bool = false) throws {
        self.path = path
        self.capacity = capacity
        if path == "-" {
            descriptor = STDOUT_FILENO
            ownsDescriptor = false
        } else {
            descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (appending ? O_APPEND : O_TRUNC), 0o644)
            guard descriptor >= 0 else { throw OutputError(path: path, reason: String(cString: strerror(errno))) }
            ownsDescriptor = true
        }
        buffer.reserveCapacity(capacity + 64 * 1024)
    }

    deinit {
        try? flush()
        if ownsDescriptor { close(descriptor) }
    }

    public func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= capacity { try flush() }
    }

    /// Writes one JSON line: `bytes` then a newline.
    public func writeLine(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= capacity { try flush() }
    }

    /// Writes one line from raw bytes (a `JSONWriter`'s buffer) without an intermediate array.
    public func writeLine(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= capacity { try flush() }
    }

    /// Drops what is buffered and not yet written (after a failed write, before a retry).
    public func discardBuffered() { buffer.removeAll(keepingCapacity: true) }

    public func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let written = buffer.withUnsafeBytes { pointer in
                Glibc.write(descriptor, pointer.baseAddress! + offset, pointer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                buffer.removeAll(keepingCapacity: true)
                throw OutputError(path: path == "-" ? "<stdout>" : path, reason: reason)
            }
            offset += written
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Writes text to standard error unbuffered (progress lines, summaries).
public func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 {
                if written < 0 && errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
