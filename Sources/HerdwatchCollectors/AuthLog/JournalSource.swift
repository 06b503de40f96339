import CLinuxAudit
import Foundation
import HerdwatchEvents
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Follows the systemd journal for sshd, sudo and su messages through `journalctl -f -o json`, for
/// hosts that keep no /var/log/auth.log (Debian 12's default). Each entry's MESSAGE,
/// SYSLOG_IDENTIFIER, _PID, _HOSTNAME and __REALTIME_TIMESTAMP go through the same parser as the
/// auth log; new entries only.
public final class JournalSource {
    public static let identifiers = ["sshd", "sudo", "su", "login", "systemd-logind"]

    private let parser: AuthLogParser
    private let logger: Logger
    private var child: pid_t = 0
    private var descriptor: Int32 = -1
    private var pending: [UInt8] = []
    public private(set) var entriesRead = 0

    public init(journalctl: String = "/usr/bin/journalctl", hostName: String?, logger: Logger) throws {
        self.parser = AuthLogParser(year: 1970, hostName: hostName)
        self.logger = logger
        var arguments = [journalctl, "--follow", "--output=json", "--lines=0", "--no-pager"]
        for (index, identifier) in Self.identifiers.enumerated() {
            if index > 0 { arguments.append("+") }
            arguments.append("SYSLOG_IDENTIFIER=\(identifier)")
        }
        let (pid, output) = try ChildProcess.spawn(arguments, standardOutput: .pipe)
        child = pid
        descriptor = output ?? -1
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    deinit { stop() }

    /// journalctl's output, to wait on beside other sources (readable: `poll` has lines to read, or
    /// journalctl ended); nil once stopped.
    public var pollDescriptor: Int32? { descriptor >= 0 ? descriptor : nil }

    /// Whether systemd-journald is listening (its socket file outlives it, so connect to see).
    public static func journaldRunning(socketPath: String = "/run/systemd/journal/socket") -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in socketPath.utf8.enumerated() where index < bytes.count - 1 { bytes[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }

    /// Stops journalctl.
    public func stop() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        if child > 0 {
            ChildProcess.terminate(child)
            child = 0
        }
    }

    /// Reads what journalctl printed since the last call and emits the events it describes.
    public func poll(emit: (Event) throws -> Void) throws {
        guard descriptor >= 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 {
                logger.error("journalctl ended; the journal is no longer followed")
                stop()
                return
            }
            guard count > 0 else { return }  // EAGAIN: nothing more for now
            pending += chunk[0..<count]
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[start..<newline])
                start = newline + 1
                entriesRead += 1
                if let event = parse(entry: line) { try emit(event) }
            }
            pending.removeFirst(start)
        }
    }

    func parse(entry: Data) -> Event? {
        guard let object = try? JSONSerialization.jsonObject(with: entry) as? [String: Any] else { return nil }
        // MESSAGE is a string, or an array of bytes when it is not valid UTF-8.
        let message: String
        if let text = object["MESSAGE"] as? String {
            message = text
        } else if let bytes = object["MESSAGE"] as? [Int] {
            message = String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
        } else {
            return nil
        }
        guard let program = object["SYSLOG_IDENTIFIER"] as? String else { return nil }
        let pid = (object["SYSLOG_PID"] as? String ?? object["_PID"] as? String).flatMap { Int64($0) }
        let micros = (object["__REALTIME_TIMESTAMP"] as? String).flatMap { Int64($0) } ?? 0
        return parser.parse(
            program: program[...], pid: pid, host: (object["_HOSTNAME"] as? String)?[...], milliseconds: micros / 1000,
            message: message[...])
    }
}
