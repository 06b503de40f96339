import Dispatch
import HerdwatchCollectors
import HerdwatchEvents
import HerdwatchPipeline
import HerdwatchShipping
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The agent's collection loop as a service: kernel audit, proc connector, auth events and
/// heartbeats into one output. The loop polls sockets synchronously, so it runs on a thread of its
/// own; graceful shutdown (SIGTERM, SIGINT through the service group) ends it within one poll
/// interval, after which the collector removes its rules and restores the kernel.
final class CollectionService: Service, Sendable {
    private final class Flags: Sendable {
        let stop = Atomic(false)
        let reload = Atomic(false)
    }

    private let settings: AgentConfiguration
    private let configuration: AuditCollector.Configuration
    private let logger: Logger
    private let reloadRules: @Sendable () throws -> [AuditRuleLine]
    private let flags = Flags()

    init(
        settings: AgentConfiguration, configuration: AuditCollector.Configuration, logger: Logger,
        reloadRules: @escaping @Sendable () throws -> [AuditRuleLine]
    ) {
        self.settings = settings
        self.configuration = configuration
        self.logger = logger
        self.reloadRules = reloadRules
    }

    /// Asks the loop to read its rule files again (SIGHUP).
    func requestReload() { flags.reload.store(true, ordering: .relaxed) }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = DispatchQueue(label: "herdwatch.collection")
                thread.async {
                    do {
                        try self.collect()
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onGracefulShutdown: {
            self.flags.stop.store(true, ordering: .relaxed)
        }
    }

    private func collect() throws {
        let settings = self.settings
        let logger = self.logger
        let sink = try OutputFile(path: settings.output, capacity: 64 * 1024, appending: true)
        let encoder = ECSEncoder()
        var writer = JSONWriter()
        let health = AgentHealthMonitor(
            intervalMilliseconds: Int64(settings.heartbeatSeconds * 1000), hostName: configuration.hostName,
            now: SystemClock.wallMilliseconds())
        // Every event goes to the disk spool first; the output is fed from it and its cursor moves
        // only once the bytes are out, so a crash loses nothing and repeats only what was not yet
        // acknowledged (event.id tells the repeats apart).
        let spool = try Spool(configuration: Spool.Configuration(directory: settings.stateDirectory + "/spool"))
        if spool.recovery.truncatedBytes > 0 {
            logger.warning(
                "spool tail repaired",
                metadata: ["bytes": "\(spool.recovery.truncatedBytes)", "reason": "\(spool.recovery.reason ?? "")"])
        }
        let idPrefix = "\(Self.machineID().prefix(8))-\(SystemClock.wallMilliseconds())"
        var sequence = 0
        let emit: (Event) throws -> Void = { event in
            health.record(event)
            var event = event
            sequence += 1
            event.id = "\(idPrefix)-\(sequence)"
            writer.reset()
            encoder.encode(event, into: &writer)
            try spool.append(writer.bytes)
        }
        // A failing output (disk full, a closed pipe) stops nothing: events wait in the spool and
        // delivery is retried, backing off to once every 5 s.
        var retryAt: Int64 = 0
        var backoff: Int64 = 100
        var failing = false
        let deliver: () throws -> Void = {
            try spool.flush()
            let now = SystemClock.wallMilliseconds()
            guard now >= retryAt else { return }
            do {
                while true {
                    let batch = try spool.read(after: spool.cursor(for: "output"), maximumRecords: 4096)
                    guard let last = batch.last else { break }
                    for record in batch {
                        try record.payload.withUnsafeBytes { try sink.writeLine($0) }
                    }
                    try sink.flush()
                    try spool.acknowledge(sink: "output", through: last.next)
                }
                if failing { logger.notice("output delivering again", metadata: ["output": "\(settings.output)"]) }
                failing = false
                backoff = 100
            } catch let error as SpoolError {
                throw error
            } catch {
                if !failing { logger.error("output failing; events wait in the spool", metadata: ["error": "\(error)"]) }
                failing = true
                sink.discardBuffered()
                retryAt = now + backoff
                backoff = min(backoff * 2, 5000)
            }
        }
        try deliver()  // what an earlier run spooled and did not deliver

        let collector = AuditCollector(configuration: configuration, logger: logger)
        do {
            try collector.start()
        } catch {
            collector.stop()
            logger.critical("cannot collect kernel audit events", metadata: ["error": "\(error)"])
            throw CollectionError(reason: "\(error)")
        }
        logger.info(
            "collecting kernel audit events",
            metadata: ["mode": "\(collector.mode.rawValue)", "rules": "\(configuration.rules.count)"])
        defer { collector.stop() }

        // Auth events: the auth log file, or the journal on hosts without one (Debian 12's default).
        let authChoice = settings.authLog
            ?? (access("/var/log/auth.log", R_OK) == 0
                ? "/var/log/auth.log"
                : (JournalSource.journaldRunning() && access("/usr/bin/journalctl", X_OK) == 0 ? "journal" : "none"))
        var auth: AuthLogSource?
        var journal: JournalSource?
        switch authChoice {
        case "none":
            break
        case "journal":
            do {
                journal = try JournalSource(hostName: configuration.hostName, logger: logger)
                logger.info("following the journal for sshd, sudo and su")
            } catch {
                logger.error("cannot follow the journal", metadata: ["error": "\(error)"])
            }
        default:
            auth = AuthLogSource(path: authChoice, hostName: configuration.hostName, logger: logger)
            logger.info("following the auth log", metadata: ["path": "\(authChoice)"])
        }
        defer { journal?.stop() }

        // Events leave the process within 50 ms of being read.
        var lastFlush: Int64 = 0
        try collector.run(
            pollMilliseconds: 50,
            shouldStop: { flags.stop.load(ordering: .relaxed) },
            afterBatch: {
                if flags.reload.exchange(false, ordering: .relaxed) {
                    // SIGHUP: read the configuration and rule files again and swap the rules.
                    do {
                        let reloaded = try reloadRules()
                        collector.replaceRules(reloaded)
                        logger.info("rules reloaded", metadata: ["rules": "\(reloaded.count)"])
                    } catch {
                        logger.error("reload failed; the current rules stay", metadata: ["error": "\(error)"])
                    }
                }
                let enriched: (Event) throws -> Void = { event in
                    var event = event
                    collector.enrich(&event)
                    try emit(event)
                }
                try auth?.poll(emit: enriched)
                try journal?.poll(emit: enriched)
                let now = SystemClock.wallMilliseconds()
                if settings.heartbeatSeconds > 0, let beat = health.heartbeat(now: now) {
                    try emit(beat)
                }
                // Out within 50 ms: one write for a burst instead of one per record.
                if now - lastFlush >= 50 {
                    try deliver()
                    lastFlush = now
                }
            }
        ) { event in
            try emit(event)
        }
        try deliver()
        collector.stop()
        logger.info("stopped", metadata: ["events": "\(collector.statistics.events)"])
    }
}

extension CollectionService {
    /// /etc/machine-id, the host's stable id (random when absent).
    static func machineID() -> String {
        if let bytes = ProcessTable.readFile("/etc/machine-id") {
            let text = String(decoding: bytes, as: UTF8.self).filter { $0.isHexDigit }
            if !text.isEmpty { return text }
        }
        return String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }
}

struct CollectionError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "cannot collect kernel audit events: \(reason)" }
}

/// SIGHUP asks the collection service to reload its rules.
struct HangupService: Service {
    let collection: CollectionService

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            collection.requestReload()
        }
    }
}
