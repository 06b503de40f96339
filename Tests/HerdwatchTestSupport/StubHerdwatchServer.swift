import Foundation
import HerdwatchCompression
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for `herdwatch server` on 127.0.0.1 that a test controls byte for byte: it accepts
/// every event batch (200) and hands the agent's command poll exactly the envelopes the test
/// queues — forged, expired, replayed — which the real server would never send.
public final class StubHerdwatchServer: Sendable {
    public let port: Int
    private let listener: Int32
    private let queued = Mutex<(next: Int, items: [(seq: Int, payload: String, signature: String)])>((1, []))
    private let stopped = Atomic(false)
    public let eventLines = Mutex<[String]>([])

    public init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = listener
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Queues one envelope (as the server's JSON would carry it) for the next poll.
    public func queue(payload: String, signature: String) {
        queued.withLock { state in
            state.items.append((state.next, payload, signature))
            state.next += 1
        }
    }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while !stopped.load(ordering: .relaxed) {
            // One request: the head, then Content-Length bytes.
            guard let headEnd = Self.find(Array("\r\n\r\n".utf8), in: buffer) else {
                let count = recv(client, &chunk, chunk.count, 0)
                if count == 0 { return }
                if count < 0 { if errno == EAGAIN || errno == EINTR { continue } else { return } }
                buffer += chunk[0..<count]
                continue
            }
            let head = String(decoding: buffer[..<headEnd], as: UTF8.self)
            let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                let parts = line.split(separator: ":", maxSplits: 1)
                return parts.count == 2 && parts[0].lowercased() == "content-length" ? Int(parts[1].trimmingCharacters(in: .whitespaces)) : nil
            }.first ?? 0
            while buffer.count < headEnd + 4 + length {
                let count = recv(client, &chunk, chunk.count, 0)
                if count == 0 { return }
                if count < 0 { if errno == EAGAIN || errno == EINTR { continue } else { return } }
                buffer += chunk[0..<count]
            }
            var body = Array(buffer[(headEnd + 4)..<(headEnd + 4 + length)])
            // The agent's HTTP sink compresses its batches (as the real server, refuse what does not decompress).
            if head.lowercased().contains("\r\ncontent-encoding: zstd") {
                guard let text = try? body.withUnsafeBytes({ try Zstd.decompress($0, limit: 64 << 20) }) else { return }
                body = text
            }
            buffer.removeFirst(headEnd + 4 + length)
            let reply: String
            if head.hasPrefix("POST /api/v1/events") {
                let lines = String(decoding: body, as: UTF8.self).split(separator: "\n").map(String.init)
                eventLines.withLock { $0 += lines }
                reply = "{\"stored\":\(lines.count),\"duplicates\":0}"
            } else if head.hasPrefix("GET /api/v1/commands") {
                let after = head.split(separator: " ").dropFirst().first.flatMap { target in
                    URLComponents(string: String(target))?.queryItems?.first { $0.name == "after" }?.value.flatMap { Int($0) }
                } ?? 0
                var items = queued.withLock { state in state.items.filter { $0.seq > after } }
                if items.isEmpty {
                    usleep(200_000)
                    items = queued.withLock { state in state.items.filter { $0.seq > after } }
                }
                let commands = items.map { "{\"seq\":\($0.seq),\"payload\":\"\($0.payload)\",\"signature\":\"\($0.signature)\"}" }
                reply = "{\"epoch\":\"stub\",\"commands\":[\(commands.joined(separator: ","))]}"
            } else {
                reply = "{}"
            }
            let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(reply.utf8.count)\r\n\r\n\(reply)"
            let bytes = Array(response.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}
