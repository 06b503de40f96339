import HerdwatchShipping
import HerdwatchStore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Stores what agents publish to NATS JetStream (`herdwatch.events.>`): a durable pull consumer
/// fetches batches, stores them, and acknowledges them only then; several servers with the same
/// durable name share the stream. Lines that are not events are logged and skipped (the bus has no
/// per-host tokens: its own authorization decides who publishes).
public final class NATSIngest: Sendable {
    public struct Configuration: Sendable {
        public var url: String
        public var subject = "herdwatch.events.>"
        public var durable = "herdwatch-server"
        public var batch = 500

        public init(url: String) { self.url = url }
    }

    public let configuration: Configuration
    private let store: EventStore
    private let detection: DetectionStage?
    private let logger: Logger

    public init(configuration: Configuration, store: EventStore, detection: DetectionStage? = nil, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.detection = detection
        self.logger = logger
    }

    /// Runs until `shouldStop` (checked at least every second).
    public func run(shouldStop: () -> Bool) {
        var consumer: JetStreamConsumer?
        var failing = false
        while !shouldStop() {
            do {
                if consumer == nil {
                    consumer = try JetStreamConsumer(
                        stream: JetStream(url: configuration.url, name: "herdwatch-server"), subject: configuration.subject,
                        durable: configuration.durable)
                    logger.info("consuming NATS JetStream", metadata: ["url": "\(configuration.url)", "durable": "\(configuration.durable)"])
                }
                let batch = try consumer!.fetch(batch: configuration.batch, waitMilliseconds: 1000)
                guard !batch.isEmpty else { continue }
                let lines = batch.map { Substring(String(decoding: $0.payload, as: UTF8.self)) }
                let result: EventStore.IngestResult
                do {
                    result = try store.ingest(lines: lines)
                } catch {
                    consumer!.handBack()
                    throw error
                }
                consumer!.acknowledge()
                detection?.process(lines: lines, stored: result.insertedLines)
                for rejection in result.rejected.prefix(5) {
                    logger.warning("NATS message is not an event; skipped", metadata: ["where": "\(rejection)"])
                }
                if failing { logger.notice("NATS ingest running again") }
                failing = false
            } catch {
                if !failing { logger.error("NATS ingest failing", metadata: ["error": "\(error)"]) }
                failing = true
                consumer = nil
                for _ in 0..<10 where !shouldStop() { usleep(100_000) }
            }
        }
    }
}
