import Dispatch
import HerdwatchCollectors
import HerdwatchEvents
import HerdwatchPipeline
import HerdwatchPolicy
import HerdwatchShipping
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The agent's collection loop as a service: kernel audit, proc connector, auth events and
/// heartbeats, through the telemetry policy, into the spool and out. The loop polls sockets
/// synchronously, so it runs on a thread of its own; graceful shutdown (SIGTERM, SIGINT through the
/// service group) wakes and ends it, after which the collector removes its rules and restores the
/// kernel. Between batches it serves the control socket (`level`, `stats`). On an idle host it
/// wakes about once a second (see `AuditCollector.run`).
final class CollectionService: Service, Sendable {
    private final class Flags: Sendable {
        let stop = Atomic(false)
        let reload = Atomic(false)
    }

    private let settings: AgentConfiguration
    private let configuration: AuditCollector.Configuration
    private let logger: Logger
    /// The rules of a level; `reread`: from the configuration file as it is now (SIGHUP).
    private let rulesFor: @Sendable (_ profile: String, _ reread: Bool) throws -> [AuditRuleLine]
    private let flags = Flags()
    /// Every event goes to the disk spool first; the sinks are fed from it.
    private let spool: SharedSpool
    /// The spool's sinks (each has its own cursor): `output`, and `nats`, `syslog` when configured.
    private let sinkNames: [String]
    /// Verified commands from the server, and the server's address (kept reachable by an isolation).
    private let commands: (inbox: CommandInbox, server: (host: String, port: Int))?
    /// Ends the loop's wait on a stop or a reload (the inbox has it too, for server commands).
    private let waker: Waker?

    init(
        settings: AgentConfiguration, configuration: AuditCollector.Configuration, spool: SharedSpool, sinkNames: [String],
        commands: (inbox: CommandInbox, server: (host: String, port: Int))?, waker: Waker?, logger: Logger,
        rulesFor: @escaping @Sendable (_ profile: String, _ reread: Bool) throws -> [AuditRuleLine]
    ) {
        self.spool = spool
        self.waker = waker
        self.sinkNames = sinkNames
        self.commands = commands
        self.settings = settings
        self.configuration = configuration
        self.logger = logger
        self.rulesFor = rulesFor
    }

    /// Asks the loop to read its rule files again (SIGHUP).
    func requestReload() {
        flags.reload.store(true, ordering: .relaxed)
        waker?.wake()
    }

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
            self.waker?.wake()
        }
    }

    private func collect() throws {
        let started = SystemClock.wallMilliseconds()
        let settings = self.settings
        let logger = self.logger
        // `none`: no output sink (the spool feeds only the network sinks, as under `herdwatch run`).
        let sink = settings.output == "none" ? nil : try OutputFile(path: settings.output, capacity: 64 * 1024, appending: true)
        // Every event goes to the disk spool first; the output is fed from it and its cursor moves
        // only once the bytes are out, so a crash loses nothing and repeats only what was not yet
        // acknowledged (event.id tells the repeats apart). Other sinks run on threads of their own.
        let spool = self.spool
        let recovery = spool.withLock { $0.recovery }
        if recovery.truncatedBytes > 0 {
            logger.warning(
                "spool tail repaired", metadata: ["bytes": "\(recovery.truncatedBytes)", "reason": "\(recovery.reason ?? "")"])
        }
        let delivery = Delivery(spool: spool, sink: sink, output: settings.output, logger: logger)
        try delivery.deliver()  // what an earlier run spooled and did not deliver

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
            metadata: ["mode": "\(collector.mode.rawValue)", "rules": "\(configuration.rules.count)", "level": "\(settings.profile)"])
        defer { collector.stop() }

        // The policy, with the programs of the image (baseline files) and those running now as
        // the programs this host already knows.
        var baseline = settings.baselineFiles.flatMap { ExecutableRegistry.lines($0) }
        baseline += collector.processes?.runningEntries().compactMap(\.executable) ?? []
        let registry = ExecutableRegistry(path: settings.stateDirectory + "/executables", baseline: baseline)
        let policy = try TelemetryPolicy(
            configuration: settings.policy, executables: registry, hostName: configuration.hostName,
            now: SystemClock.wallMilliseconds())
        let levelFile = settings.stateDirectory + "/level"
        let health = AgentHealthMonitor(
            intervalMilliseconds: Int64(settings.heartbeatSeconds * 1000), hostName: configuration.hostName,
            now: SystemClock.wallMilliseconds())
        let encoder = ECSEncoder()
        var writer = JSONWriter()
        /// Events appended to the spool since the last flush: the loop must wake within 50 ms.
        var unflushed = false
        let idPrefix = "\(Self.machineID().prefix(8))-\(SystemClock.wallMilliseconds())-"
        var sequence = 0

        /// One event through the policy into the spool. `produced`: made by the policy itself
        /// (aggregates, level changes), so it counts as sent only.
        func emit(_ event: consuming Event, produced: Bool = false) throws {
            health.record(event)
            let now = SystemClock.wallMilliseconds()
            let verdict = produced ? .keep(EventClass(event.kind)) : policy.admit(&event, now: now)
            let level = policy.profile.name
            guard verdict.kept else {
                var bytes: Int?
                if policy.cost.wantsMeasurement(verdict.eventClass) {
                    writer.reset()
                    encoder.encode(event, into: &writer)
                    bytes = writer.count
                }
                policy.cost.record(verdict.eventClass, profile: level, bytes: bytes, kept: false, now: now)
                return
            }
            sequence += 1
            event.id = idPrefix + String(sequence)
            writer.reset()
            encoder.encode(event, into: &writer)
            let bytes = writer.bytes
            let critical = produced || policy.mustKeep(event)
            _ = try spool.withLock { spool throws(SpoolError) in try spool.append(bytes, mustKeep: critical) }
            unflushed = true
            if produced {
                policy.cost.recordProduced(verdict.eventClass, profile: level, bytes: writer.count, now: now)
            } else {
                policy.cost.record(verdict.eventClass, profile: level, bytes: writer.count, kept: true, now: now)
            }
        }

        // The level in force: its rules and process events, kept in the state directory so a
        // restart keeps a raised level until it expires.
        var appliedLevel = settings.profile
        func applyLevel() {
            let profile = policy.profile
            guard profile.name != appliedLevel else { return }
            do {
                let rules = try rulesFor(profile.name, false)
                if rules != collector.rules { collector.replaceRules(rules) }
            } catch {
                logger.error("the level's rules could not be read; the current rules stay", metadata: ["error": "\(error)"])
            }
            let processEvents = profile.processEvents ?? settings.processEvents
            collector.processEvents = AuditCollector.ProcessEventOutput(rawValue: processEvents) ?? collector.processEvents
            appliedLevel = profile.name
            LevelFile.save(levelFile, profile: profile.name, expiresAt: policy.expiresAt, base: settings.profile)
            logger.notice(
                "monitoring level in force",
                metadata: ["level": "\(profile.name)", "expires": "\(policy.expiresAt.map(String.init) ?? "never")"])
        }
        if let saved = LevelFile.load(levelFile), let resumed = policy.resume(saved.profile, until: saved.expiresAt, now: SystemClock.wallMilliseconds()) {
            try emit(resumed, produced: true)
        }
        applyLevel()

        let control: ControlServer?
        do {
            control = try ControlServer(path: settings.stateDirectory + "/control.sock")
        } catch {
            logger.error("no control socket: `herdwatch-agent level` and `stats` cannot reach this agent", metadata: ["error": "\(error)"])
            control = nil
        }
        let controlCommands = ControlCommands(
            policy: policy, spool: spool, sinks: sinkNames, hostName: configuration.hostName, started: SystemClock.wallMilliseconds())
        let inbox = commands?.inbox
        let executor = CommandExecutor(policy: policy, hostName: configuration.hostName, server: commands?.server, logger: logger)

        // Auth events: the auth log file, or the journal on hosts without one (Debian 12's default).
        let authChoice = settings.authLog
            ?? (access("/var/log/auth.log", R_OK) == 0
                ? "/var/log/auth.log"
                : (JournalSource.journaldRunning() && access("/usr/bin/journalctl", X_OK) == 0 ? "journal" : "none"))
        var auth: AuthLogSource?
        var journal: JournalSource?
        switch authChoice {
        case "none":
            if settings.authLog == nil {
                logger.notice(
                    "no auth log: /var/log/auth.log is missing and journald is not running; sshd, sudo and su are seen only through PAM's audit records (auth_log: PATH to name a file)")
            }
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
        /// Flushes the spool and feeds the output. Only a flush that carried events counts as the
        /// last one, so a wake-up with nothing to send (a fork seen before its exec's records)
        /// does not hold back the events that follow it.
        func deliver(now: Int64) throws {
            try delivery.deliver()
            if unflushed { lastFlush = now }
            unflushed = false
        }
        // Every drop since the spool opened: delivering what an earlier run left, and the first
        // events of this one, may already have made room in a full spool.
        var spoolDrops = (count: 0, since: started)
        /// The spool was full: what it dropped since the last report is reported like any other
        /// loss. True when there was something to report.
        @discardableResult
        func reportSpoolDrops(now: Int64) throws -> Bool {
            let dropped = spool.withLock { $0.droppedRecords }
            guard dropped > spoolDrops.count else { return false }
            var loss = Event(timestamp: AuditTimestamp(milliseconds: now), kind: .telemetryLoss, outcome: .failure)
            loss.module = "agent"
            loss.host.name = configuration.hostName
            loss.loss = Event.Loss(
                source: "spool", count: dropped - spoolDrops.count, unit: "events", windowStart: spoolDrops.since, windowEnd: now)
            try emit(loss, produced: true)
            spoolDrops = (dropped, now)
            return true
        }
        // Idle (nothing to flush, no output to retry), the loop sleeps until a source has
        // something, up to a second (or the heartbeat interval when shorter).
        let heartbeatMilliseconds = Int32(clamping: Int64(settings.heartbeatSeconds * 1000))
        let waker = self.waker
        try collector.run(
            pollMilliseconds: 50,
            idleMilliseconds: heartbeatMilliseconds > 0 ? min(1000, heartbeatMilliseconds) : 1000,
            wakeDescriptors: { [waker?.pollDescriptor, control?.pollDescriptor, journal?.pollDescriptor].compactMap { $0 } },
            isIdle: { !unflushed && !delivery.failing },
            shouldStop: { flags.stop.load(ordering: .relaxed) },
            afterBatch: {
                waker?.reset()
                if flags.reload.exchange(false, ordering: .relaxed) {
                    // SIGHUP: read the configuration and rule files again and swap the rules.
                    do {
                        let reloaded = try rulesFor(policy.profile.name, true)
                        collector.replaceRules(reloaded)
                        logger.info("rules reloaded", metadata: ["rules": "\(reloaded.count)"])
                    } catch {
                        logger.error("reload failed; the current rules stay", metadata: ["error": "\(error)"])
                    }
                }
                let enriched: (consuming Event) throws -> Void = { (event: consuming Event) in
                    collector.enrich(&event)
                    try emit(consume event)
                }
                try auth?.poll(emit: enriched)
                try journal?.poll(emit: enriched)
                var now = SystemClock.wallMilliseconds()
                for event in policy.tick(now: now) { try emit(event, produced: true) }
                applyLevel()
                var failure: (any Error)?
                // `herdwatch-agent stats` and `level`: the wait ends when a client connects, and
                // an accept that finds none is one cheap syscall per batch.
                control?.serve { request in
                    let (reply, events) = controlCommands.handle(request, now: SystemClock.wallMilliseconds())
                    do {
                        for event in events { try emit(event, produced: true) }
                        applyLevel()
                        // A level change is on its way out before the command returns.
                        if !events.isEmpty { try deliver(now: SystemClock.wallMilliseconds()) }
                    } catch {
                        failure = error
                    }
                    return reply
                }
                if let failure { throw failure }
                // Commands from the server: carried out, and their outcome on its way before the next batch.
                var outcomes = executor.tick(now: SystemClock.wallMilliseconds())
                for received in inbox?.take() ?? [] { outcomes += executor.handle(received, now: SystemClock.wallMilliseconds()) }
                if !outcomes.isEmpty {
                    for event in outcomes { try emit(event, produced: true) }
                    applyLevel()
                    try deliver(now: SystemClock.wallMilliseconds())
                }
                now = SystemClock.wallMilliseconds()
                try reportSpoolDrops(now: now)
                if settings.heartbeatSeconds > 0, var beat = health.heartbeat(now: now) {
                    beat.agentHealth?.profile = policy.profile.name
                    beat.agentHealth?.cost = policy.cost.takeSinceHeartbeat()
                    try emit(beat, produced: true)
                }
                // Out at once, and within 50 ms of the last flush under load: one write for a
                // burst instead of one per record.
                if now - lastFlush >= 50 { try deliver(now: now) }
            }
        ) { (event: consuming Event) in
            try emit(consume event)
        }
        for event in policy.finish(now: SystemClock.wallMilliseconds()) { try emit(event, produced: true) }
        // The last flush may drop too: report it and flush the report, until a flush drops
        // nothing more (each round deletes old segments, so this ends within a few rounds).
        for _ in 0..<16 {
            try delivery.deliver()
            guard try reportSpoolDrops(now: SystemClock.wallMilliseconds()) else { break }
        }
        collector.stop()
        logger.info("stopped", metadata: ["events": "\(collector.statistics.events)"])
    }
}

/// Feeds the output from the spool: its cursor moves only once the bytes are out. A failing output
/// (disk full, a closed pipe) stops nothing: events wait in the spool and delivery is retried,
/// backing off to once every 5 s.
final class Delivery {
    let spool: SharedSpool
    let sink: OutputFile?
    let output: String
    let logger: Logger
    private var retryAt: Int64 = 0
    private var backoff: Int64 = 100
    /// The output failed and delivery is retried (the loop keeps waking for it).
    private(set) var failing = false

    init(spool: SharedSpool, sink: OutputFile?, output: String, logger: Logger) {
        self.spool = spool
        self.sink = sink
        self.output = output
        self.logger = logger
    }

    func deliver() throws {
        try spool.withLock { spool throws(SpoolError) in try spool.flush() }
        let now = SystemClock.wallMilliseconds()
        guard now >= retryAt, let sink else { return }
        do {
            while true {
                let batch = try spool.withLock { spool throws(SpoolError) in
                    try spool.read(after: spool.cursor(for: "output"), maximumRecords: 4096)
                }
                guard let last = batch.last else { break }
                for record in batch {
                    try record.payload.withUnsafeBytes { try sink.writeLine($0) }
                }
                try sink.flush()
                try spool.withLock { spool throws(SpoolError) in try spool.acknowledge(sink: "output", through: last.next) }
            }
            if failing { logger.notice("output delivering again", metadata: ["output": "\(output)"]) }
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
}

/// The raised level a run leaves for the next one: `PROFILE EXPIRES_MS` (or `-` for no expiry).
enum LevelFile {
    static func save(_ path: String, profile: String, expiresAt: Int64?, base: String) {
        if profile == base && expiresAt == nil {
            unlink(path)
            return
        }
        let text = Array("\(profile) \(expiresAt.map(String.init) ?? "-")\n".utf8)
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        _ = text.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        rename(temporary, path)
    }

    static func load(_ path: String) -> (profile: String, expiresAt: Int64?)? {
        guard let bytes = ProcessTable.readFile(path) else { return nil }
        let parts = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2 else { return nil }
        return (String(parts[0]), Int64(parts[1]))
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
