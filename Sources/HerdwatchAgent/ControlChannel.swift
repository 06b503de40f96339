#if canImport(Glibc)
import Glibc
#endif

/// The running agent's local command socket (`STATE_DIR/control.sock`, owner only): one request
/// line in, one reply out, then the connection closes. `herdwatch-agent level` and `stats` use it.
/// The collection loop waits on it beside its sources and serves it between batches, so a command
/// is answered (and in force) at once, busy or idle; the loop never waits on a slow client for more
/// than `clientTimeout` ms.
public final class ControlServer {
    let path: String
    private let descriptor: Int32
    /// The listening socket, to wait on (readable: a client is waiting to be accepted).
    var pollDescriptor: Int32 { descriptor }
    static let clientTimeout: Int32 = 200

    init(path: String) throws(ControlError) {
        self.path = path
        var address = sockaddr_un()
        guard Self.fill(&address, path: path) else { throw ControlError("socket path too long: \(path)") }
        unlink(path)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        let mask = umask(0o077)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(mask)
        guard bound == 0, listen(descriptor, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ControlError("cannot listen on \(path): \(reason)")
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// Answers every waiting client with `handle(request line) -> reply`.
    func serve(_ handle: (String) -> String) {
        while true {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else { return }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            defer { close(client) }
            guard let request = Self.readLine(client, timeoutMilliseconds: Self.clientTimeout) else { continue }
            Self.writeAll(client, Array((handle(request) + "\n").utf8))
        }
    }

    /// Sends one request to the agent whose state directory holds `path` and returns its reply.
    public static func request(_ line: String, path: String, timeoutMilliseconds: Int32 = 5000) throws(ControlError) -> String {
        var address = sockaddr_un()
        guard fill(&address, path: path) else { throw ControlError("socket path too long: \(path)") }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw ControlError("no agent is running with this state directory (\(path): \(String(cString: strerror(errno))))")
        }
        writeAll(descriptor, Array((line + "\n").utf8))
        guard let reply = readLine(descriptor, timeoutMilliseconds: timeoutMilliseconds) else {
            throw ControlError("the agent did not answer within \(timeoutMilliseconds) ms")
        }
        return reply
    }

    private static func fill(_ address: inout sockaddr_un, path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return true
    }

    /// Bytes up to the first newline (at most 64 KiB), or nil on timeout or an empty read.
    private static func readLine(_ descriptor: Int32, timeoutMilliseconds: Int32) -> String? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while bytes.count < 65_536 {
            guard poll(&poller, 1, timeoutMilliseconds) > 0 else { return nil }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
            if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                return String(decoding: bytes[..<newline], as: UTF8.self)
            }
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }
}

public struct ControlError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
