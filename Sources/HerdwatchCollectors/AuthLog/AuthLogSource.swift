import HerdwatchEvents
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Follows the auth log (`/var/log/auth.log`) like `tail -F`: new lines as they are written, across
/// rotation (the file is replaced) and truncation, starting at the end so history is not replayed.
public final class AuthLogSource {
    public let path: String
    private var parser: AuthLogParser
    private let logger: Logger
    private var descriptor: Int32 = -1
    private var inode: UInt64 = 0
    private var offset: Int64 = 0
    private var pending: [UInt8] = []
    public private(set) var linesRead = 0

    public init(path: String, hostName: String?, logger: Logger, startAtEnd: Bool = true) {
        self.path = path
        self.logger = logger
        self.parser = AuthLogParser(year: Self.currentYear(), hostName: hostName)
        open(fromEnd: startAtEnd)
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    private func open(fromEnd: Bool) {
        if descriptor >= 0 { close(descriptor) }
        descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        pending = []
        guard descriptor >= 0 else {
            inode = 0
            offset = 0
            return
        }
        var info = stat()
        fstat(descriptor, &info)
        inode = UInt64(info.st_ino)
        offset = fromEnd ? Int64(info.st_size) : 0
    }

    /// Reads what was appended since the last call and emits the events it describes.
    public func poll(emit: (Event) throws -> Void) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            if descriptor < 0 || UInt64(info.st_ino) != inode {
                // Rotated: finish the old file first, then follow the new one from its start.
                if descriptor >= 0 { try readAvailable(emit: emit) }
                open(fromEnd: false)
            } else if Int64(info.st_size) < offset {
                logger.info("auth log truncated; reading it from the start", metadata: ["path": "\(path)"])
                offset = 0
                pending = []
            }
        }
        guard descriptor >= 0 else { return }
        try readAvailable(emit: emit)
    }

    private func readAvailable(emit: (Event) throws -> Void) throws {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
            guard count > 0 else { return }
            offset += Int64(count)
            pending += chunk[0..<count]
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[start..<newline], as: UTF8.self)
                start = newline + 1
                linesRead += 1
                if let event = parser.parse(line[...]) { try emit(event) }
            }
            pending.removeFirst(start)
            if pending.count > 64 * 1024 { pending = [] }  // a line that never ends: drop it
            if count < chunk.count { return }
        }
    }

    static func currentYear() -> Int {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        return Int(parts.tm_year) + 1900
    }
}
