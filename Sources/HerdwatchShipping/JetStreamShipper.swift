import HerdwatchEvents
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The spool shared between the collection loop (appending) and the sinks' threads (reading and
/// acknowledging). Every call holds the lock; reads are served from memory when the sink keeps up.
public final class SharedSpool: Sendable {
    private let spool: Mutex<Spool>

    public init(configuration: Spool.Configuration) throws(SpoolError) {
        spool = Mutex(try Spool(configuration: configuration))
    }

    public func withLock<Result: Sendable, Failure: Error>(_ body: (Spool) throws(Failure) -> Result) throws(Failure) -> Result {
        try spool.withLock { (spool: inout Spool) throws(Failure) -> Result in try body(spool) }
    }
}

/// Ships the spool to NATS JetStream: batches from the sink's cursor, published to
/// `SUBJECT_PREFIX.HOST` with the event id as message id (the stream drops repeats), and the
/// cursor moves only after the stream acknowledged every message of the batch. While the server
/// is unreachable, events wait in the spool and the batch is retried with backoff (100 ms doubling
/// to 5 s, with jitter).
public final class JetStreamShipper: Sendable {
    public struct Configuration: Sendable {
        public var url: String
        public var stream = "HERDWATCH"
        public var subjectPrefix = "herdwatch.events"
        /// Create the stream (file storage, subjects `PREFIX.>`) when it does not exist.
        public var createsStream = true
        public var batchSize = 1000
        public var ackTimeoutMilliseconds: Int64 = 5000
        public var sinkName = "nats"

        public init(url: String) { self.url = url }
    }

    public let configuration: Configuration
    private let spool: SharedSpool
    private let subject: String
    private let logger: Logger

    public init(configuration: Configuration, spool: SharedSpool, hostName: String, logger: Logger) {
        self.configuration = configuration
        self.spool = spool
        self.subject = configuration.subjectPrefix + "." + JetStream.subjectToken(hostName)
        self.logger = logger
    }

    /// Runs until `shouldStop` (checked at least every 100 ms while idle or backing off).
    public func run(shouldStop: () -> Bool) {
        var backoff: Int64 = 100
        var failing = false
        func pause(_ milliseconds: Int64) {
            var left = milliseconds
            while left > 0, !shouldStop() {
                usleep(UInt32(min(left, 100)) * 1000)
                left -= 100
            }
        }
        func failed(_ what: String, _ error: any Error) {
            if !failing {
                logger.error("NATS sink failing; events wait in the spool", metadata: ["what": "\(what)", "error": "\(error)"])
            }
            failing = true
            pause(backoff + Int64.random(in: 0...(backoff / 2)))
            backoff = min(backoff * 2, 5000)
        }

        var stream: JetStream?
        while !shouldStop() {
            do {
                if stream == nil {
                    let connected = try JetStream(url: configuration.url, timeoutMilliseconds: configuration.ackTimeoutMilliseconds)
                    if configuration.createsStream {
                        try connected.ensureStream(name: configuration.stream, subjects: [configuration.subjectPrefix + ".>"])
                    }
                    stream = connected
                }
                let name = configuration.sinkName
                let batch = try spool.withLock { spool throws(SpoolError) in
                    try spool.read(after: spool.cursor(for: name), maximumRecords: configuration.batchSize)
                }
                guard let last = batch.last else {
                    pause(20)
                    continue
                }
                let messages = batch.map { record in
                    (subject: subject, id: Self.eventID(record.payload) ?? "spool-\(record.next)", payload: record.payload)
                }
                try stream!.publish(messages, timeoutMilliseconds: configuration.ackTimeoutMilliseconds)
                try spool.withLock { spool throws(SpoolError) in try spool.acknowledge(sink: name, through: last.next) }
                if failing { logger.notice("NATS sink delivering again", metadata: ["url": "\(configuration.url)"]) }
                failing = false
                backoff = 100
            } catch let error as NATSError {
                failed(error.operation, error)
            } catch {
                // The spool itself failed: nothing this sink can do but wait.
                failed("spool", error)
            }
        }
    }

    /// `event.id` from a spooled ECS event: the first `"id":"…"` member (the encoder writes
    /// `event.id` before any other `id`).
    static func eventID(_ payload: [UInt8]) -> String? {
        let key = Array("\"id\":\"".utf8)
        guard payload.count > key.count else { return nil }
        var index = 0
        let limit = min(payload.count, 2048) - key.count
        while index < limit {
            if payload[index] == key[0], payload[index..<(index + key.count)].elementsEqual(key) {
                let start = index + key.count
                guard let end = payload[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return String(decoding: payload[start..<end], as: UTF8.self)
            }
            index += 1
        }
        return nil
    }
}
