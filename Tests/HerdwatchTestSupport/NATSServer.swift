import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A nats-server with JetStream on 127.0.0.1, started by the test, in a folder of its own.
public final class NATSServer {
    public static let binary = ["/usr/bin/nats-server", "/usr/sbin/nats-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    public let folder: URL
    public let port: Int
    private var pid: pid_t?
    public var url: String { "nats://127.0.0.1:\(port)" }

    public init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        port = Self.freePort()
        try start()
    }

    deinit {
        stop(signal: SIGTERM)
        try? FileManager.default.removeItem(at: folder)
    }

    public func start() throws {
        pid = try spawnServer(
            [Self.binary!, "-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", folder.appendingPathComponent("store").path],
            log: folder.appendingPathComponent("server.log").path)
        // Ready when it accepts connections.
        for _ in 0..<100 where !Self.accepts(port) { usleep(50_000) }
    }

    public func stop(signal: Int32) {
        guard let pid else { return }
        stopServer(pid, signal: signal)
        self.pid = nil
    }

    public static func accepts(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    public static func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
