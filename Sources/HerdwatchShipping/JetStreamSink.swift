/// Publishes the spool to NATS JetStream: each event to `SUBJECT_PREFIX.HOST` with its event id as
/// message id (the stream drops repeats within its duplicate window); a batch is confirmed when the
/// stream acknowledged every message of it.
public final class JetStreamSink: SpoolSink {
    public struct Configuration: Sendable {
        public var url: String
        public var stream = "HERDWATCH"
        public var subjectPrefix = "herdwatch.events"
        /// Create the stream (file storage, subjects `PREFIX.>`) when it does not exist.
        public var createsStream = true
        public var ackTimeoutMilliseconds: Int64 = 5000

        public init(url: String) { self.url = url }
    }

    public let configuration: Configuration
    public let name = "nats"
    private let subject: String
    private var stream: JetStream?

    public init(configuration: Configuration, hostName: String) {
        self.configuration = configuration
        subject = configuration.subjectPrefix + "." + JetStream.subjectToken(hostName)
    }

    public func send(_ records: [(payload: [UInt8], next: SpoolPosition)]) throws -> SpoolPosition? {
        if stream == nil {
            let connected = try JetStream(url: configuration.url, timeoutMilliseconds: configuration.ackTimeoutMilliseconds)
            if configuration.createsStream {
                try connected.ensureStream(name: configuration.stream, subjects: [configuration.subjectPrefix + ".>"])
            }
            stream = connected
        }
        let messages = records.map { record in
            (subject: subject, id: SpooledEvent.firstString("id", in: record.payload) ?? "spool-\(record.next)", payload: record.payload)
        }
        try stream!.publish(messages, timeoutMilliseconds: configuration.ackTimeoutMilliseconds)
        return records.last?.next
    }

    public func confirmed() throws -> SpoolPosition? { nil }

    /// The connection stays (it reconnects on its own); a batch is sent again whole.
    public func reset() {}
}
