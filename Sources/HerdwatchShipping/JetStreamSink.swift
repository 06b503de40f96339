import HerdwatchCompression

/// Publishes the spool to NATS JetStream, to `SUBJECT_PREFIX.HOST`: several events per message (ECS
/// JSON lines, one per event; `eventsPerMessage` of them at most), with the first event's id and the
/// count as message id (`ID+COUNT`; the stream drops repeats within its duplicate window). With
/// `eventsPerMessage` 1 each message is one event and its id the event id. A batch is confirmed
/// when the stream acknowledged every message of it. With `compression` zstd (the default) a
/// message's lines travel as one zstd frame and the message says so in its `Content-Encoding`
/// header (`events(in:encoding:)` reads either): about a tenth of the bytes for the stream to
/// take in and keep.
///
/// One message per event costs the server an acknowledgment, a store write and a round of its
/// protocol per event; it then takes about 50,000 events/s here, several events per message
/// about four times that (docs/shipping.md).
public final class JetStreamSink: SpoolSink {
    public struct Configuration: Sendable {
        public var url: String
        public var stream = "HERDWATCH"
        public var subjectPrefix = "herdwatch.events"
        /// Create the stream (file storage, subjects `PREFIX.>`) when it does not exist.
        public var createsStream = true
        public var ackTimeoutMilliseconds: Int64 = 5000
        /// Events per message, at most (1: one event per message).
        public var eventsPerMessage = 32
        /// A message is closed before it would pass this many bytes (a single larger event is sent
        /// alone); nats-server's default maximum payload is 1 MB.
        public var maximumMessageBytes = 512 * 1024
        /// zstd: each message's lines compressed together (`Content-Encoding: zstd`); none: as they are.
        public var compression = Compression.zstd
        public typealias Compression = HTTPSink.Configuration.Compression

        public init(url: String) { self.url = url }
    }

    public let configuration: Configuration
    public let name = "nats"
    private let subject: String
    private var stream: JetStream?
    /// Published and not yet acknowledged: the batch's end and the stream's message count to wait for.
    private var inFlight: [(end: SpoolPosition, target: Int)] = []
    /// The ends of the batches that were in flight when sending failed, oldest first. The retry
    /// publishes the same records, cut into the same messages with the same ids, so that the
    /// stream drops what it had already stored (events spooled since wait for a later batch).
    private var resendEnds: [SpoolPosition] = []

    private let compressor: Zstd.Compressor?

    public init(configuration: Configuration, hostName: String) {
        self.configuration = configuration
        subject = configuration.subjectPrefix + "." + JetStream.subjectToken(hostName)
        compressor = configuration.compression == .zstd ? Zstd.Compressor() : nil
    }

    /// The `Content-Encoding` of this sink's messages.
    var contentEncoding: String? { compressor == nil ? nil : "zstd" }

    /// Publishes the batch and returns without waiting for it; returns the end of the batch before,
    /// once the stream acknowledged that one. One batch is in flight while the next is read from the
    /// spool and published: the stream is never left waiting for the agent.
    public func send(_ records: [(payload: [UInt8], next: SpoolPosition)]) throws -> SpoolPosition? {
        if stream == nil {
            let connected = try JetStream(url: configuration.url, timeoutMilliseconds: configuration.ackTimeoutMilliseconds)
            if configuration.createsStream {
                try connected.ensureStream(name: configuration.stream, subjects: [configuration.subjectPrefix + ".>"])
            }
            stream = connected
        }
        var records = records[...]
        if let first = records.first?.next {
            resendEnds.removeAll { $0 < first }  // already behind this batch
            if let end = resendEnds.first, let last = records.firstIndex(where: { $0.next == end }) {
                records = records[...last]
                resendEnds.removeFirst()
            }
        }
        guard let end = records.last?.next else { return nil }
        let target = try stream!.publishWithoutWaiting(messages(records), contentEncoding: contentEncoding)
        inFlight.append((end, target))
        return try confirm(keeping: 1)
    }

    /// Waits for every batch in flight but the last `keeping`; returns the end of the last one confirmed.
    private func confirm(keeping: Int) throws -> SpoolPosition? {
        guard let stream, inFlight.count > keeping else { return nil }
        let done = inFlight[inFlight.count - 1 - keeping]
        try stream.waitForAcknowledgments(through: done.target, timeoutMilliseconds: configuration.ackTimeoutMilliseconds)
        inFlight.removeFirst(inFlight.count - keeping)
        return done.end
    }

    /// The records cut into messages, in order.
    func messages(_ records: ArraySlice<(payload: [UInt8], next: SpoolPosition)>) -> [(subject: String, id: String, payload: [UInt8])] {
        func id(_ record: (payload: [UInt8], next: SpoolPosition)) -> String {
            SpooledEvent.firstString("id", in: record.payload) ?? "spool-\(record.next)"
        }
        if configuration.eventsPerMessage <= 1 {
            return records.map { (subject, id($0), compressor?.compress($0.payload) ?? $0.payload) }
        }
        var messages: [(subject: String, id: String, payload: [UInt8])] = []
        var start = records.startIndex
        while start < records.endIndex {
            // Where the message ends first, so that its payload is allocated once, at its size.
            var size = records[start].payload.count
            var end = start + 1
            while end < records.endIndex, end - start < configuration.eventsPerMessage,
                size + 1 + records[end].payload.count <= configuration.maximumMessageBytes
            {
                size += 1 + records[end].payload.count
                end += 1
            }
            var payload: [UInt8] = []
            payload.reserveCapacity(size)
            payload += records[start].payload
            for record in records[(start + 1)..<end] {
                payload.append(UInt8(ascii: "\n"))
                payload += record.payload
            }
            messages.append((subject, "\(id(records[start]))+\(end - start)", compressor?.compress(payload) ?? payload))
            start = end
        }
        return messages
    }

    /// The batch in flight, once the stream acknowledged it (the spool had nothing more to send).
    public func confirmed() throws -> SpoolPosition? {
        try confirm(keeping: 0)
    }

    /// After a failure: nothing in flight is waited for any more, and the retry cuts its batches
    /// where these ended. The connection stays (it reconnects on its own).
    public func reset() {
        resendEnds = (resendEnds + inFlight.map(\.end)).sorted()
        inFlight = []
        stream?.abandon()
    }

    /// The events of a message as published by this sink: its lines (one event, for a message of one).
    public static func events(in payload: [UInt8]) -> [ArraySlice<UInt8>] {
        payload.split(separator: UInt8(ascii: "\n"))
    }

    /// The same for a message with its `Content-Encoding` header (nil or `identity`: as it is;
    /// `zstd`: decompressed, up to `limit` bytes). Throws for another encoding or a damaged frame.
    public static func events(in payload: [UInt8], encoding: String?, limit: Int = 64 << 20) throws -> [ArraySlice<UInt8>] {
        switch encoding?.lowercased() {
        case nil, "identity": return events(in: payload)
        case "zstd":
            return events(in: try payload.withUnsafeBytes { bytes throws(Zstd.DecompressionError) in try Zstd.decompress(bytes, limit: limit) })
        case let other?: throw UnknownEncoding(encoding: other)
        }
    }

    public struct UnknownEncoding: Error, CustomStringConvertible {
        public var encoding: String
        public var description: String { "Content-Encoding '\(encoding)' is not zstd or identity" }
    }
}
