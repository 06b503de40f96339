import HerdwatchEvents

#if canImport(Glibc)
import Glibc
#endif

/// Sends the spool as RFC 5424 syslog messages over TCP with octet-counted framing (RFC 6587), the
/// way rsyslog's imtcp and syslog-ng's network() source take them, so existing pipelines (and
/// their Kafka outputs) carry the events: `<PRI>1 @timestamp HOST herdwatch-agent PID
/// event.action - {ECS JSON}`.
///
/// Syslog has no acknowledgments. A record counts as delivered once the receiving host's TCP
/// stack has acknowledged its last byte (the socket's unacknowledged send queue, SIOCOUTQ, has
/// drained past it) and the connection then stayed up for `settleMilliseconds`: a receiver that
/// shuts down discards what it had not yet read from its socket, and the connection closing within
/// that time sends those records again. What a receiver read and then lost itself (killed with its
/// queue in memory) cannot be seen from here: for that, use the NATS sink, or a receiver with a
/// disk queue.
///
/// With `tls` (RFC 5425: the same octet-counted frames inside TLS), the server's certificate is
/// verified as for HTTPS, and the delivered count is kept in bytes on the wire: each message is one
/// TLS write, whose end in the socket's byte stream is known.
public final class SyslogSink: SpoolSink {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Syslog facility number: 16 (local0) by default; 10 is authpriv.
        public var facility = 16
        public var connectTimeoutMilliseconds: Int32 = 5000
        /// How long acknowledged bytes must stay acknowledged on an open connection.
        public var settleMilliseconds: Int64 = 2000
        /// TLS (RFC 5425); nil: plain TCP.
        public var tls: TLSContext?

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public let configuration: Configuration
    public let name = "syslog"
    /// `<PRI>1 ` and ` HOSTNAME APP-NAME PROCID `: the header's fields that do not change, made valid once.
    private let headerStart: [UInt8]
    private let headerMiddle: [UInt8]
    private var connection: TCPConnection?
    /// Bytes written on this connection (on the wire: TLS records included).
    private var written: UInt64 = 0
    /// Records written and not yet confirmed: where each ends in the connection's byte stream, and
    /// when its last byte was first seen acknowledged.
    private var inFlight: [(end: UInt64, next: SpoolPosition, acknowledgedAt: Int64?)] = []
    private var inFlightHead = 0

    public init(configuration: Configuration, hostName: String) {
        self.configuration = configuration
        let priority = min(max(configuration.facility, 0), 23) * 8 + 6
        headerStart = Array("<\(priority)>1 ".utf8)
        // HOSTNAME: printable ASCII without spaces, at most 255 (RFC 5424 section 6.2.4).
        headerMiddle = Array(" \(SyslogMessage.field(hostName, 255)) herdwatch-agent \(SyslogMessage.field(String(getpid()), 128)) ".utf8)
    }

    deinit { reset() }

    public func send(_ records: [(payload: [UInt8], next: SpoolPosition)]) throws -> SpoolPosition? {
        if connection == nil { try connect() }
        guard let connection else { return nil }
        if let tls = connection.tls {
            // One TLS write per message: its end on the wire is the socket's byte count after it.
            for record in records {
                try connection.send(frame(record.payload), sink: name)
                inFlight.append((tls.bytesOnWire, record.next, nil))
            }
            written = tls.bytesOnWire
            return try confirmed()
        }
        var frames: [UInt8] = []
        frames.reserveCapacity(records.reduce(0) { $0 + $1.payload.count + 120 })
        var ends: [(end: UInt64, next: SpoolPosition, acknowledgedAt: Int64?)] = []
        for record in records {
            let message = frame(record.payload)
            frames += message
            ends.append((written + UInt64(frames.count), record.next, nil))
        }
        try connection.send(frames, sink: name)
        written += UInt64(frames.count)
        inFlight += ends
        return try confirmed()
    }

    public func confirmed() throws -> SpoolPosition? {
        guard let connection, inFlightHead < inFlight.count else { return nil }
        let descriptor = connection.descriptor
        // The receiver never writes: readable means it closed the connection or it failed (over
        // TLS, unless what came was TLS's own records, such as session tickets).
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN) | Self.pollReadHangUp, revents: 0)
        if poll(&poller, 1, 0) > 0, poller.revents & (Int16(POLLIN) | Self.pollReadHangUp | Int16(POLLERR) | Int16(POLLHUP)) != 0 {
            guard let tls = connection.tls, poller.revents & (Self.pollReadHangUp | Int16(POLLERR) | Int16(POLLHUP)) == 0,
                tls.drainWithoutBlocking(descriptor: descriptor)
            else { throw SinkError(sink: name, reason: "the receiver closed the connection") }
        }
        var unacknowledged: Int32 = 0
        guard ioctl(descriptor, UInt(TIOCOUTQ), &unacknowledged) == 0 else {
            throw SinkError(sink: name, reason: "SIOCOUTQ: \(String(cString: strerror(errno)))")
        }
        let delivered = written - UInt64(max(unacknowledged, 0))
        let now = SystemClock.monotonicMilliseconds()
        var index = inFlightHead
        while index < inFlight.count, inFlight[index].end <= delivered {
            if inFlight[index].acknowledgedAt == nil { inFlight[index].acknowledgedAt = now }
            index += 1
        }
        var last: SpoolPosition?
        while inFlightHead < inFlight.count, let acknowledged = inFlight[inFlightHead].acknowledgedAt,
            now - acknowledged >= configuration.settleMilliseconds
        {
            last = inFlight[inFlightHead].next
            inFlightHead += 1
        }
        if inFlightHead > 4096, inFlightHead * 2 > inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
        return last
    }

    /// POLLRDHUP (Linux; hidden behind _GNU_SOURCE in the headers Swift sees).
    static let pollReadHangUp: Int16 = 0x2000

    public func reset() {
        connection?.close()
        connection = nil
        written = 0
        inFlight = []
        inFlightHead = 0
    }

    /// `LENGTH SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`: what
    /// `SyslogMessage(...).octetCounted` makes, built over bytes with the fields that do not change
    /// (priority, host, program, pid) made once (`headerStart`, `headerMiddle`).
    func frame(_ payload: [UInt8]) -> [UInt8] {
        var header: [UInt8] = []
        header.reserveCapacity(headerStart.count + headerMiddle.count + 64 + 32 + 3)
        header += headerStart
        payload.withUnsafeBytes { payload in
            SyslogMessage.appendField(SpooledEvent.firstStringBytes(pattern: Self.timestampKey, in: payload), 64, to: &header)
            header += headerMiddle
            SyslogMessage.appendField(SpooledEvent.firstStringBytes(pattern: Self.actionKey, in: payload), 32, to: &header)
        }
        header += Array(" - ".utf8)
        var frame = Array("\(header.count + payload.count) ".utf8)
        frame.reserveCapacity(frame.count + header.count + payload.count)
        frame += header
        frame += payload
        return frame
    }

    private static let timestampKey = Array(#""@timestamp":""#.utf8)
    private static let actionKey = Array(#""action":""#.utf8)

    private func connect() throws {
        connection = try TCPConnection(
            host: configuration.host, port: configuration.port, timeoutMilliseconds: configuration.connectTimeoutMilliseconds, sink: name,
            tls: configuration.tls)
        written = connection?.tls?.bytesOnWire ?? 0
    }
}

public struct SinkError: Error, Sendable, CustomStringConvertible {
    public var sink: String
    public var reason: String
    public var description: String { "\(sink): \(reason)" }
}
