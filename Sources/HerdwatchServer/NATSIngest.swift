import Dispatch
import HerdwatchShipping
import ServiceLifecycle
import HerdwatchStore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Stores what agents publish to NATS JetStream (`herdwatch.events.>`, one event or several JSON
/// lines per message, zstd-compressed when the message's `Content-Encoding` says so): a durable pull consumer fetches batches, stores them, and acknowledges them
/// only then; several servers with the same durable name share the stream. Lines that are not
/// events are logged and skipped (the bus has no per-host tokens: its own authorization decides who
/// publishes).
public final class NATSIngest: Service, Sendable {
    public struct Configuration: Sendable {
        public var url: String
        public var subject = "herdwatch.events.>"
        public var durable = "herdwatch-server"
        public var batch = 500

        public init(url: String) { self.url = url }
    }

    public let configuration: Configuration
    private let store: any FleetStore
    private let detection: DetectionStage?
    private let logger: Logger
    /// The C client blocks: its calls run on a thread of their own, never on the concurrency pool.
    private let queue = DispatchQueue(label: "herdwatch.server.nats")

    public init(configuration: Configuration, store: any FleetStore, detection: DetectionStage? = nil, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.detection = detection
        self.logger = logger
    }

    /// The consumer, touched only on `queue`.
    private final class Connection: @unchecked Sendable {
        var consumer: JetStreamConsumer?
    }

    /// Runs until the task is cancelled or the service group shuts down gracefully.
    public func run() async throws {
        // Stopping (cancellation on graceful shutdown) ends the loop; it is not an error.
        try? await cancelWhenGracefulShutdown { try await self.consume() }
    }

    func consume() async throws {
        let connection = Connection()
        let configuration = configuration
        var failing = false
        while !Task.isCancelled {
            do {
                let batch = try await queue.perform { () throws -> [(id: String?, payload: [UInt8], encoding: String?)] in
                    if connection.consumer == nil {
                        connection.consumer = try JetStreamConsumer(
                            stream: JetStream(url: configuration.url, name: "herdwatch-server"), subject: configuration.subject,
                            durable: configuration.durable)
                    }
                    return try connection.consumer!.fetch(batch: configuration.batch, waitMilliseconds: 1000)
                }
                guard !batch.isEmpty else { continue }
                // A message holds one event or several, one JSON line each, zstd-compressed together
                // or not (JetStreamSink). One that does not decompress is logged and skipped.
                let lines = batch.flatMap { message -> [Substring] in
                    do {
                        return try JetStreamSink.events(in: message.payload, encoding: message.encoding).map { Substring(String(decoding: $0, as: UTF8.self)) }
                    } catch {
                        logger.warning("NATS message skipped", metadata: ["id": "\(message.id ?? "")", "error": "\(error)"])
                        return []
                    }
                }
                let result: IngestResult
                do {
                    result = try await store.ingest(lines: lines, allOrNothing: false)
                } catch {
                    try await queue.perform { connection.consumer?.handBack() }
                    throw error
                }
                try await queue.perform { connection.consumer?.acknowledge() }
                await detection?.process(lines: lines, stored: result.insertedLines)
                for rejection in result.rejected.prefix(5) {
                    logger.warning("NATS message is not an event; skipped", metadata: ["where": "\(rejection)"])
                }
                if failing { logger.notice("NATS ingest running again") }
                failing = false
            } catch {
                if !failing { logger.error("NATS ingest failing", metadata: ["error": "\(error)", "url": "\(configuration.url)"]) }
                failing = true
                try? await queue.perform { connection.consumer = nil }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        try? await queue.perform { connection.consumer = nil }
    }
}
