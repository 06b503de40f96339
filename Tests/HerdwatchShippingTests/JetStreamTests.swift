import Foundation
import Testing

@testable import HerdwatchShipping

/// A nats-server with JetStream on 127.0.0.1, started by the test, in a folder of its own.
final class NATSServer {
    static let binary = ["/usr/bin/nats-server", "/usr/sbin/nats-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    let folder: URL
    let port: Int
    private(set) var process: Process?
    var url: String { "nats://127.0.0.1:\(port)" }

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-nats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        port = Self.freePort()
        try start()
    }

    deinit {
        stop(signal: SIGTERM)
        try? FileManager.default.removeItem(at: folder)
    }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary!)
        process.arguments = ["-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", folder.appendingPathComponent("store").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: {
            let log = folder.appendingPathComponent("server.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            return log
        }())
        try process.run()
        self.process = process
        // Ready when it accepts connections.
        for _ in 0..<100 where !Self.accepts(port) { usleep(50_000) }
    }

    func stop(signal: Int32) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
    }

    static func accepts(_ port: Int) -> Bool {
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

    static func freePort() -> Int {
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

@Suite(.serialized) struct JetStreamTests {
    static let available = NATSServer.binary != nil

    func messages(_ range: Range<Int>, host: String = "web1") -> [(subject: String, id: String, payload: [UInt8])] {
        range.map { ("herdwatch.events.\(host)", "host1-\($0)", Array("{\"n\":\($0)}".utf8)) }
    }

    @Test(.enabled(if: available, "needs nats-server (scripts/setup installs it)"))
    func everyMessageIsAcknowledgedAndStoredOnceEvenWhenSentTwice() throws {
        let server = try NATSServer()
        let stream = try JetStream(url: server.url)
        try stream.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])
        try stream.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])  // already there: fine
        for start in stride(from: 0, to: 500, by: 100) {
            try stream.publish(messages(start..<(start + 100)), timeoutMilliseconds: 5000)
        }
        try stream.publish(messages(200..<300), timeoutMilliseconds: 5000)  // an ack lost: sent again
        let read = try stream.drain(subject: "herdwatch.events.>", durable: "check")
        #expect(read.count == 500)
        #expect(Set(read.compactMap(\.id)) == Set((0..<500).map { "host1-\($0)" }))
        #expect(read.first.map { String(decoding: $0.payload, as: UTF8.self) } == "{\"n\":0}")
        #expect(JetStream.subjectToken("web 1.example.com") == "web_1_example_com")
    }

    /// The server is killed in the middle of a run of batches and started again on the same store:
    /// the publisher retries what was not acknowledged, and the stream holds each message once.
    @Test(.enabled(if: available, "needs nats-server (scripts/setup installs it)"))
    func aServerRestartDuringPublishingLosesNothing() throws {
        let server = try NATSServer()
        let stream = try JetStream(url: server.url)
        try stream.ensureStream(name: "HERDWATCH", subjects: ["herdwatch.events.>"])
        let total = 3000
        var failures = 0
        var start = 0
        while start < total {
            if start == 1000 && failures == 0 { server.stop(signal: SIGKILL) }
            do {
                try stream.publish(messages(start..<(start + 100)), timeoutMilliseconds: 500)
                start += 100
            } catch {
                failures += 1
                // Down for three attempts, then back on the same store.
                if failures == 3 { try server.start() }
                #expect(failures < 60, "no recovery: \(error)")
                if failures >= 60 { return }
            }
        }
        #expect(failures > 0, "the restart was noticed")
        let read = try stream.drain(subject: "herdwatch.events.>", durable: "check")
        #expect(Set(read.compactMap(\.id)) == Set((0..<total).map { "host1-\($0)" }))
        #expect(read.count == total, "each message once (\(read.count))")
    }
}
