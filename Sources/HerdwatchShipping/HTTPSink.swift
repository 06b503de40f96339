import HerdwatchCompression

/// Posts the spool to `herdwatch server`: batches of ECS JSON lines to `/api/v1/events` with the
/// host's token, compressed (`Content-Encoding: zstd`, unless `compression` is `.none`), over a
/// kept-alive HTTP/1.1 connection (TLS for `https://`). The server replies after the batch is on
/// disk, so a 200 confirms the batch; anything else (a refusal, a timeout, a closed connection) is
/// an error and the batch is sent again, with every batch sent after it.
///
/// Up to `maximumInFlight` batches go out before the first reply is read (HTTP/1.1 pipelining),
/// over `connections` connections in turn: the agent prepares and sends the next batch while the
/// server checks the ones before, and the server, which answers one connection's requests one after
/// another, works on a batch from each connection at once. Replies are read oldest batch first, so
/// a confirmation always covers every batch before it. Each request names its place in the sink's
/// order (`Herdwatch-Batch: STREAM N`, a stream per run of unbroken connections, N from 0), and the
/// server takes one host's batches in that order, so a host's events still arrive in order.
public final class HTTPSink: SpoolSink {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var path = "/api/v1/events"
        public var token: String
        public var timeoutMilliseconds: Int32 = 5000
        /// How batches travel: zstd (about a tenth of the bytes) or as they are.
        public var compression = Compression.zstd
        /// Batches sent and not yet answered, at most, over all connections (1: wait for each reply
        /// before the next).
        public var maximumInFlight = 4
        /// Connections to the server, used in turn (1: every batch on one connection).
        public var connections = 2

        public enum Compression: String, Sendable, CaseIterable {
            case zstd
            case none
        }

        public init(host: String, port: Int, token: String) {
            self.host = host
            self.port = port
            self.token = token
        }

        /// TLS for `https://` URLs (nil: plain HTTP).
        public var tls: TLSContext?

        /// `http://HOST:PORT[/PATH]` or `https://HOST:PORT[/PATH]` (then `tls` verifies the server,
        /// and gives the client certificate when there is one).
        public init(url: String, token: String, tls configuration: TLSContext.Configuration = .init()) throws(SinkError) {
            let secure = url.hasPrefix("https://")
            guard secure || url.hasPrefix("http://") else {
                throw SinkError(sink: "http", reason: "'\(url)': expected http://HOST:PORT or https://HOST:PORT")
            }
            let rest = url.dropFirst(secure ? "https://".count : "http://".count)
            let authority = rest.prefix { $0 != "/" }
            let path = rest.dropFirst(authority.count)
            guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]),
                (1...65535).contains(port)
            else { throw SinkError(sink: "http", reason: "'\(url)': expected \(secure ? "https" : "http")://HOST:PORT") }
            var host = String(authority[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            self.init(host: host, port: port, token: token)
            if !path.isEmpty && path != "/" { self.path = String(path) }
            if secure { tls = try TLSContext(configuration) }
        }
    }

    public let configuration: Configuration
    public let name = "http"
    private var connections: [TCPConnection?]
    private let compressor: Zstd.Compressor?
    /// Each batch sent and not yet answered, oldest first: its connection and the spool position
    /// after it.
    private var unanswered: [(connection: Int, next: SpoolPosition)] = []
    /// Per connection, bytes received past the last reply read: the start of the next.
    private var received: [[UInt8]]
    /// This run of connections (new after every reset) and the next batch's number in it (which
    /// also picks its connection, in turn).
    private var stream = UInt64.random(in: 1...UInt64.max)
    private var sequence: UInt64 = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
        compressor = configuration.compression == .zstd ? Zstd.Compressor() : nil
        connections = Array(repeating: nil, count: max(1, configuration.connections))
        received = Array(repeating: [], count: max(1, configuration.connections))
    }

    deinit { reset() }

    public func send(_ records: [(payload: [UInt8], next: SpoolPosition)]) throws -> SpoolPosition? {
        var body: [UInt8] = []
        body.reserveCapacity(records.reduce(0) { $0 + $1.payload.count + 1 })
        for record in records {
            body += record.payload
            body.append(UInt8(ascii: "\n"))
        }
        if let compressor { body = compressor.compress(body) }
        let head = """
            POST \(configuration.path) HTTP/1.1\r
            Host: \(configuration.host):\(configuration.port)\r
            Authorization: Bearer \(configuration.token)\r
            Content-Type: application/x-ndjson\r
            Herdwatch-Batch: \(String(stream, radix: 16)) \(sequence)\r
            \(compressor == nil ? "" : "Content-Encoding: zstd\r\n")Content-Length: \(body.count)\r
            \r

            """
        let index = Int(sequence % UInt64(connections.count))
        do {
            if connections[index] == nil {
                connections[index] = try TCPConnection(
                    host: configuration.host, port: configuration.port, timeoutMilliseconds: configuration.timeoutMilliseconds, sink: name,
                    tls: configuration.tls)
            }
            try connections[index]!.send(Array(head.utf8) + body, sink: name)
            sequence += 1
            if let last = records.last { unanswered.append((index, last.next)) }
            var confirmed: SpoolPosition?
            while unanswered.count >= max(1, configuration.maximumInFlight) {
                confirmed = try readReply()
            }
            return confirmed
        } catch {
            reset()
            throw error
        }
    }

    /// Reads the replies to every batch sent.
    public func confirmed() throws -> SpoolPosition? {
        var confirmed: SpoolPosition?
        do {
            while !unanswered.isEmpty { confirmed = try readReply() }
        } catch {
            reset()
            throw error
        }
        return confirmed
    }

    /// Reads the reply to the oldest batch sent; a refusal is an error.
    private func readReply() throws -> SpoolPosition {
        let index = unanswered[0].connection
        let (status, reply, keepAlive) = try HTTPResponseReader.read(connections[index]!, sink: name, buffered: &received[index])
        guard status == 200 else {
            throw SinkError(sink: name, reason: "server answered \(status): \(String(decoding: reply.prefix(300), as: UTF8.self))")
        }
        let position = unanswered.removeFirst().next
        if !keepAlive {
            let lost = unanswered.count
            reset()
            // What was sent after this reply is sent again, from the cursor.
            guard lost == 0 else {
                throw SinkError(sink: name, reason: "the server closed the connection with \(lost) batches unanswered")
            }
        }
        return position
    }

    /// Closes every connection and forgets what was sent: sending starts again, in a new stream.
    public func reset() {
        for index in connections.indices {
            connections[index]?.close()
            connections[index] = nil
            received[index].removeAll()
        }
        unanswered.removeAll()
        stream = UInt64.random(in: 1...UInt64.max)
        sequence = 0
    }
}

/// HTTP/1.1 responses read off a blocking connection (Content-Length bodies only: the server's
/// replies to the agent always have one).
enum HTTPResponseReader {
    /// Status, body and whether the connection stays open. `waitForData` runs before each read
    /// (the command poll uses it to notice a shutdown while the server holds the request).
    /// `buffered` holds bytes received past the reply (the start of the next one, when requests
    /// are pipelined): they are read first, and what follows this reply is left there.
    static func read(
        _ connection: TCPConnection, sink name: String, buffered: inout [UInt8], waitForData: () throws(SinkError) -> Void = {}
    ) throws(SinkError) -> (status: Int, body: [UInt8], keepAlive: Bool) {
        var bytes = buffered
        buffered = []
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        func findHeaderEnd() -> Int? {
            bytes.count >= 4 ? (0...(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual(separator) } : nil
        }
        var headerEnd = findHeaderEnd()
        while headerEnd == nil {
            if bytes.count > 65_536 { throw SinkError(sink: name, reason: "response header too long") }
            try waitForData()
            let chunk = try connection.receive(sink: name)
            guard !chunk.isEmpty else { throw SinkError(sink: name, reason: "the server closed the connection") }
            bytes += chunk
            headerEnd = findHeaderEnd()
        }
        let header = String(decoding: bytes[..<headerEnd!], as: UTF8.self).split(separator: "\r\n")
        let statusLine = header.first?.split(separator: " ") ?? []
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw SinkError(sink: name, reason: "not an HTTP response: \(header.first ?? "")")
        }
        var length = 0
        var keepAlive = true
        for line in header.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: " ") }
            guard parts.count == 2 else { continue }
            switch parts[0].lowercased() {
            case "content-length": length = Int(parts[1]) ?? 0
            case "connection": keepAlive = parts[1].lowercased() != "close"
            default: break
            }
        }
        guard length <= 16 << 20 else { throw SinkError(sink: name, reason: "response body of \(length) bytes is too large") }
        var body = Array(bytes[(headerEnd! + 4)...])
        while body.count < length {
            try waitForData()
            let chunk = try connection.receive(sink: name)
            guard !chunk.isEmpty else { throw SinkError(sink: name, reason: "the server closed the connection mid-reply") }
            body += chunk
        }
        buffered = Array(body[length...])
        return (status, Array(body.prefix(length)), keepAlive)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var view = self
        while let first = view.first, set.contains(first) { view = view.dropFirst() }
        while let last = view.last, set.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
