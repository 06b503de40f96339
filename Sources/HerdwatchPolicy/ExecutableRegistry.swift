#if canImport(Glibc)
import Glibc
#endif

/// The programs this host has executed, for the drift signal: a program not in it is new to the
/// host. Seeded from a baseline (a list shipped with the image, the programs running at start) and
/// kept in a file, one path per line, so a program is new only once per host, across restarts.
/// New paths are appended as they are seen (not synced: a crash may flag one again, never miss one).
public final class ExecutableRegistry {
    private var known: Set<String>
    private let path: String?
    private var descriptor: Int32 = -1
    /// Past this many programs, new ones are still flagged but no longer remembered.
    public let capacity: Int

    public init(path: String?, baseline: some Sequence<String> = [String](), capacity: Int = 200_000) {
        self.path = path
        self.capacity = capacity
        known = Set(baseline)
        if let path {
            for line in Self.lines(path) { known.insert(line) }
            descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            // The baseline goes into the file, so the next start knows it even if the list changes.
            let fresh = known.subtracting(Self.lines(path))
            for executable in fresh.sorted() { append(executable) }
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    public var count: Int { known.count }

    public func contains(_ executable: String) -> Bool { known.contains(executable) }

    /// True the first time a program is seen on this host.
    public func observe(_ executable: String) -> Bool {
        guard !known.contains(executable) else { return false }
        if known.count < capacity {
            known.insert(executable)
            append(executable)
        }
        return true
    }

    private func append(_ executable: String) {
        guard descriptor >= 0, !executable.contains("\n") else { return }
        let line = Array((executable + "\n").utf8)
        _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }

    /// One path per line; blank lines and `#` comments are skipped.
    public static func lines(_ path: String) -> [String] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return bytes.split(separator: UInt8(ascii: "\n")).compactMap { line in
            let text = String(decoding: line, as: UTF8.self)
            let trimmed = text.drop { $0 == " " || $0 == "\t" }
            return trimmed.isEmpty || trimmed.hasPrefix("#") ? nil : String(trimmed)
        }
    }
}
