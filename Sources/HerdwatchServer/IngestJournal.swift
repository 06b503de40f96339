import Dispatch
import HerdwatchCompression
import HerdwatchShipping
import HerdwatchStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The server's ingest journal (`herdwatch server --journal DIR`): an agent's batch is acknowledged
/// once it is checked (every line an event of the token's host) and synced to the journal, and the
/// store takes it from there behind. Agents then empty their spools at the speed of the server's
/// disk rather than of the store's indexes, and a burst waits on the server, out of an attacker's
/// reach, instead of on the hosts.
///
/// The journal is a `Spool` (checksummed records in segment files, a torn tail cut on open) with one
/// cursor, `store`, that moves only once the store has committed what it passed: a crash or a
/// restart loads the rest again, and the store drops what it already has by `event.id`. A batch is
/// checked before it is taken (`ParsedBatch.check`: no strings made) and parsed by the loader, on
/// its queue under SCHED_IDLE, so agents wait on the check alone. Past `maximumBacklogBytes` not
/// yet stored, batches are refused with 503 and wait in the agents' spools. Each record: format
/// (1) · encoding (0 plain, 1 zstd) · host length (UInt16 LE) · host · the body as received. Metrics: `herdwatch_server_journal_backlog_bytes`, and
/// `herdwatch_server_journal_events_total` by stage (`accepted`, `stored`: new events only).
public final class IngestJournal: Service, Sendable {
    public struct Configuration: Sendable {
        public var directory: String
        /// Journal bytes not yet stored past which batches are refused until the store catches up.
        public var maximumBacklogBytes = 4 << 30
        /// Journal records handed to the store together (they share its commits).
        public var recordsPerLoad = 32

        public init(directory: String) { self.directory = directory }
    }

    /// A journal record parsed again by the loader.
    struct Parsed: Sendable {
        var lines: [Substring]
        var batch: ParsedBatch
    }

    public let configuration: Configuration
    private let spool: SharedSpool
    private let store: any FleetStore
    private let detection: DetectionStage?
    private let logger: Logger
    /// Journal bytes (headers included) accepted and not yet stored.
    private let backlog: Atomic<Int>
    /// Whether the last batch was refused for a full backlog (to log the change once, not each refusal).
    private let refusing = Atomic(false)
    private let wake: AsyncStream<Void>.Continuation
    private let woken: AsyncStream<Void>
    /// Appends and their syncs run here, off the concurrency pool; the loader reads on its own queue.
    private let appendQueue = DispatchQueue(label: "herdwatch.server.journal.append")
    private let loadQueue = DispatchQueue(label: "herdwatch.server.journal.load")
    static let cursor = "store"
    static let format: UInt8 = 1
    /// swift-metrics: the backlog, and the batches and events through each side.
    private let backlogGauge = Gauge(label: "herdwatch_server_journal_backlog_bytes")
    private let acceptedEvents = Counter(label: "herdwatch_server_journal_events_total", dimensions: [("stage", "accepted")])
    private let storedEvents = Counter(label: "herdwatch_server_journal_events_total", dimensions: [("stage", "stored")])

    public init(configuration: Configuration, store: any FleetStore, detection: DetectionStage?, logger: Logger) throws(SpoolError) {
        self.configuration = configuration
        var spoolConfiguration = Spool.Configuration(directory: configuration.directory)
        spoolConfiguration.segmentBytes = 64 << 20
        // Everything in it was acknowledged to an agent: never dropped for space (see `accept`).
        spoolConfiguration.maximumBytes = .max
        spoolConfiguration.sync = .everyFlush
        spool = try SharedSpool(configuration: spoolConfiguration)
        // The backlog from the segments' sizes: reading every record behind would delay the
        // server's start by as long as reading gigabytes takes.
        let (recovery, behind) = spool.withLock { spool in (spool.recovery, spool.unsentBytes(for: Self.cursor)) }
        backlog = Atomic(Int(behind))
        self.store = store
        // What the journal holds is acknowledged already: storing it yields to the batches agents wait on.
        store.setBackgroundWrites(true)
        self.detection = detection
        self.logger = logger
        (woken, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        if let reason = recovery.reason {
            logger.warning(
                "ingest journal: cut a torn tail", metadata: ["directory": "\(configuration.directory)", "bytes": "\(recovery.truncatedBytes)", "reason": "\(reason)"])
        }
        if behind > 0 {
            logger.info("ingest journal: batches to store from before", metadata: ["bytes": "\(behind)"])
        }
        wake.yield()
    }

    /// Journal bytes accepted and not yet stored.
    public var backlogBytes: Int { backlog.load(ordering: .relaxed) }

    /// Appends a checked batch and returns once it is on disk; false (nothing appended) while the
    /// backlog is past its limit.
    func accept(host: String, body: [UInt8], zstd: Bool, events: Int) async throws -> Bool {
        guard backlog.load(ordering: .relaxed) < configuration.maximumBacklogBytes else {
            if refusing.exchange(true, ordering: .relaxed) == false {
                logger.warning(
                    "ingest journal full: refusing batches (503) until the store catches up",
                    metadata: ["backlog-bytes": "\(backlogBytes)", "limit-bytes": "\(configuration.maximumBacklogBytes)"])
            }
            return false
        }
        if refusing.exchange(false, ordering: .relaxed) { logger.notice("ingest journal: accepting batches again") }
        let record = Self.record(host: host, body: body, zstd: zstd)
        try await appendQueue.perform { [self] in
            try spool.withLock { spool throws(SpoolError) in
                _ = try spool.append(record)
                // Counted once appended: should the flush fail, a later flush writes it.
                backlogGauge.record(backlog.add(record.count + Spool.headerSize, ordering: .relaxed).newValue)
                try spool.flush()
            }
        }
        acceptedEvents.increment(by: events)
        wake.yield()
        return true
    }

    static func record(host: String, body: [UInt8], zstd: Bool) -> [UInt8] {
        // Host names come from the tokens file, one line each: far below 64 KiB.
        let name = Array(host.utf8.prefix(Int(UInt16.max)))
        var record: [UInt8] = [format, zstd ? 1 : 0, UInt8(name.count & 0xFF), UInt8(name.count >> 8)]
        record.reserveCapacity(record.count + name.count + body.count)
        record += name
        record += body
        return record
    }

    /// A record read back: its host and lines, parsed again.
    static func parse(record: [UInt8], maximumBytes: Int) throws -> Parsed {
        guard record.count >= 4, record[0] == format else {
            throw IngestSetupError(description: "not a journal record of format \(format)")
        }
        let hostEnd = 4 + (Int(record[2]) | Int(record[3]) << 8)
        guard record.count >= hostEnd else { throw IngestSetupError(description: "a journal record cut short") }
        let host = String(decoding: record[4..<hostEnd], as: UTF8.self)
        var body = Array(record[hostEnd...])
        if record[1] == 1 {
            body = try body.withUnsafeBytes { bytes throws(Zstd.DecompressionError) in try Zstd.decompress(bytes, limit: maximumBytes) }
        }
        let lines = body.withUnsafeBytes { ParsedBatch.lines(utf8: $0) }
        return Parsed(lines: lines, batch: ParsedBatch(lines: lines, host: host))
    }

    /// The loader: stores what the journal holds past its cursor, in order, until the task is
    /// cancelled or the service group shuts down (what is left is loaded at the next start).
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.load() }
    }

    func load() async {
        var signals = woken.makeAsyncIterator()
        var failing = false
        // While a backlog lasts, how it goes, once a minute.
        var reported = ContinuousClock.now
        var storedSinceReport = 0
        while !Task.isCancelled {
            do {
                let loaded = try await loadOnce()
                storedSinceReport += loaded
                if ContinuousClock.now - reported >= .seconds(60) {
                    if backlogBytes > 0 {
                        logger.info(
                            "ingest journal: storing behind", metadata: ["backlog-bytes": "\(backlogBytes)", "batches-stored": "\(storedSinceReport)"])
                    }
                    reported = ContinuousClock.now
                    storedSinceReport = 0
                }
                if loaded == 0 {
                    guard await signals.next() != nil else { return }
                }
                if failing { logger.notice("ingest journal: storing again") }
                failing = false
            } catch {
                if Task.isCancelled { return }
                if !failing { logger.error("ingest journal: the store refused a load; retrying", metadata: ["error": "\(error)"]) }
                failing = true
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Stores the next records past the cursor and moves it; returns how many records there were.
    @discardableResult
    func loadOnce() async throws -> Int {
        let limit = configuration.recordsPerLoad
        let records = try await loadQueue.perform { [spool] in
            try spool.withLock { spool throws(SpoolError) in try spool.read(after: spool.cursor(for: Self.cursor), maximumRecords: limit) }
        }
        guard let last = records.last else { return 0 }
        // Parsed on the loader's queue under SCHED_IDLE: this yields the cores to the batches
        // agents are waiting on.
        let logger = logger
        let batches = try await loadQueue.perform {
            ThreadPriority.idle {
                records.compactMap { record -> Parsed? in
                    do {
                        return try Self.parse(record: record.payload, maximumBytes: 1 << 30)
                    } catch {
                        logger.error("ingest journal: record skipped", metadata: ["position": "\(record.next)", "error": "\(error)"])
                        return nil
                    }
                }
            }
        }
        // Stored together (the store's group commit shares their transaction), then detected in order.
        let store = store
        let results = try await withThrowingTaskGroup(of: (Int, IngestResult).self) { group in
            for (index, parsed) in batches.enumerated() {
                group.addTask { (index, try await store.ingest(parsed.batch)) }
            }
            var results = [IngestResult](repeating: IngestResult(), count: batches.count)
            for try await (index, result) in group { results[index] = result }
            return results
        }
        for (parsed, result) in zip(batches, results) {
            if !result.rejected.isEmpty {
                logger.warning("ingest journal: lines not stored", metadata: ["count": "\(result.rejected.count)", "first": "\(result.rejected[0])"])
            }
            await detection?.process(lines: parsed.lines, stored: result.insertedLines)
        }
        try await loadQueue.perform { [spool] in
            try spool.withLock { spool throws(SpoolError) in try spool.acknowledge(sink: Self.cursor, through: last.next) }
        }
        let now = backlog.subtract(records.reduce(0) { $0 + $1.payload.count + Spool.headerSize }, ordering: .relaxed).newValue
        backlogGauge.record(now)
        storedEvents.increment(by: results.reduce(0) { $0 + $1.inserted })
        return records.count
    }
}
