import ArgumentParser
import Dispatch
import Foundation
import HerdwatchAudit
import HerdwatchAgent
import HerdwatchCollectors
import HerdwatchEvents
import HerdwatchPipeline
import HerdwatchPolicy
import HerdwatchShipping
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Collects audit events and writes them as ECS JSON lines, as they complete.
///
/// By default from the kernel itself, over netlink: as the audit daemon (unicast, loading the
/// profile's rules) or, beside a running auditd, from the read-only log group (multicast).
/// With `--input` from a stream instead, e.g. as an auditd plugin
/// (`/etc/audit/plugins.d/herdwatch.conf`: `path = /usr/local/bin/herdwatch-agent`,
/// `args = run --input -`, `format = string`).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Collect audit events on this host and write ECS JSON lines.",
        discussion: """
            Without --input the agent reads the kernel's audit netlink socket. In unicast mode it is the \
            audit daemon: it enables auditing, sets backlog_wait_time to 0 so auditing never blocks a \
            process, loads the rules (--rules files, else the --profile's defaults) and on SIGTERM or \
            SIGINT removes them and restores every setting it changed. In multicast mode (the default \
            when another audit daemon runs) it reads beside that daemon and changes nothing.

            Events complete on their EOE or PROCTITLE record, or after --event-timeout milliseconds. \
            Lost records (the kernel's lost counter, socket overflows, events cut short) are reported \
            as telemetry-loss events in the stream. Exit status: 0 on a clean stop, 1 on errors.
            """
    )

    @Option(name: .shortAndLong, help: "Read audit records from this stream ('-' or a FIFO) instead of the kernel.")
    var input: String?

    @Option(name: .shortAndLong, help: "Agent configuration file (YAML; see `herdwatch-agent config`).")
    var config: String?

    @Option(name: .shortAndLong, help: "Where events go: '-' (standard output) or a file.")
    var output: String?

    @Option(help: "Kernel mode: auto, unicast or multicast.")
    var mode: String?

    @Option(name: .customLong("rules"), help: "Audit rule file in auditctl syntax (repeatable); replaces the profile's rules.")
    var ruleFiles: [String] = []

    @Option(help: "The host's monitoring level: pet, cattle or a profile from the configuration file.")
    var profile: String?

    @Option(help: "host.name for records without node=; defaults to this host's name.")
    var hostName: String?

    @Option(help: "Milliseconds an event waits for its remaining records.")
    var eventTimeout: Int64?

    @Option(help: "Where sshd, sudo and su messages come from: a log file, 'journal' or 'none'; default /var/log/auth.log when it exists, else the journal when journald runs.")
    var authLog: String?

    @Option(help: "Proc connector events to emit: none, exits or all (every exec and exit, even without audit rules).")
    var processEvents: String?

    @Option(help: "Seconds between agent-heartbeat events (events/s by source, losses, memory, CPU); 0 for none.")
    var heartbeatInterval: Double?

    @Option(help: "Directory for state kept across restarts (default /var/lib/herdwatch).")
    var stateDir: String?

    @Option(help: "Also publish events to this NATS JetStream server (nats://HOST:PORT).")
    var nats: String?

    @Option(help: "Also send events to this syslog receiver as RFC 5424 over TCP (HOST:PORT).")
    var syslog: String?

    @Option(help: "Syslog over TLS (RFC 5425), trusting this PEM CA for the receiver's certificate ('system': the system's).")
    var syslogCa: String?

    @Option(help: "Send events to `herdwatch server` at this URL (http://HOST:PORT or https://HOST:PORT); needs --http-token-file.")
    var http: String?

    @Option(help: "File holding this host's token for the server.")
    var httpTokenFile: String?

    @Option(help: "https: PEM file of the CA that signed the server's certificate (default: the system's trust store).")
    var httpCa: String?

    @Option(help: "https: PEM client certificate for servers that require one (mutual TLS); needs --http-key.")
    var httpCert: String?

    @Option(help: "https: the client certificate's PEM key.")
    var httpKey: String?

    @Option(help: "Take response commands from the --http server, signed with this Ed25519 public key (base64, or @FILE).")
    var commandKey: String?

    @Option(help: "Comma-separated actions this host carries out when the server asks: level, kill, block, isolate (default: level).")
    var acceptCommands: String?

    func validate() throws {
        if let processEvents, AuditCollector.ProcessEventOutput(rawValue: processEvents) == nil {
            throw ValidationError("--process-events must be none, exits or all")
        }
        if let mode, !["auto", "unicast", "multicast"].contains(mode) {
            throw ValidationError("--mode must be auto, unicast or multicast")
        }
        if let eventTimeout, eventTimeout < 0 { throw ValidationError("--event-timeout must not be negative") }
        if let heartbeatInterval, heartbeatInterval < 0 { throw ValidationError("--heartbeat-interval must not be negative") }
    }

    /// The file's settings with the command line's on top.
    func settings() throws -> AgentConfiguration {
        var settings = AgentConfiguration()
        if let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw ValidationError("cannot read configuration file \(config)")
            }
            do {
                settings = try AgentConfiguration.load(text: text, file: config)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        if let output { settings.output = output }
        if let mode { settings.auditMode = mode }
        if !ruleFiles.isEmpty { settings.ruleFiles = ruleFiles }
        if let profile { settings.profile = profile }
        if let hostName { settings.hostName = hostName }
        if let eventTimeout { settings.eventTimeoutMilliseconds = eventTimeout }
        if let authLog { settings.authLog = authLog }
        if let processEvents { settings.processEvents = processEvents }
        if let heartbeatInterval { settings.heartbeatSeconds = heartbeatInterval }
        if let stateDir { settings.stateDirectory = stateDir }
        if let nats { settings.natsURL = nats }
        if let http { settings.httpURL = http }
        if let httpTokenFile { settings.httpTokenFile = httpTokenFile }
        if let httpCa { settings.httpTLS.caFile = httpCa }
        if let httpCert { settings.httpTLS.certificateFile = httpCert }
        if let httpKey { settings.httpTLS.keyFile = httpKey }
        if (settings.httpTLS.certificateFile == nil) != (settings.httpTLS.keyFile == nil) {
            throw ValidationError("--http-cert and --http-key go together")
        }
        if settings.httpURL != nil && settings.httpTokenFile == nil { throw ValidationError("--http needs --http-token-file") }
        if let commandKey {
            if commandKey.hasPrefix("@") {
                guard let text = try? String(contentsOfFile: String(commandKey.dropFirst()), encoding: .utf8) else {
                    throw ValidationError("--command-key: cannot read \(commandKey.dropFirst())")
                }
                settings.commandServerKey = text.trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                settings.commandServerKey = commandKey
            }
        }
        if let acceptCommands {
            switch AgentConfiguration.commandActions(parsing: acceptCommands) {
            case .success(let actions): settings.acceptedCommands = actions
            case .failure(let error): throw ValidationError("--accept-commands: \(error)")
            }
        }
        if settings.commandServerKey != nil && settings.httpURL == nil {
            throw ValidationError("--command-key needs --http (commands come from that server)")
        }
        if let syslog {
            guard let address = AgentConfiguration.hostAndPort(syslog) else { throw ValidationError("--syslog: expected HOST:PORT") }
            settings.syslogAddress = address
        }
        if let syslogCa { settings.syslogTLS = TLSContext.Configuration(caFile: syslogCa == "system" ? nil : syslogCa) }
        do {
            try settings.policy.validate()
        } catch {
            throw ValidationError("--profile: \(error)")
        }
        return settings
    }

    func run() async throws {
        if let input {
            try runStream(input)
        } else {
            try await runKernel()
        }
    }

    /// The rules for a level: the settings' rule files (which replace every profile's), else the
    /// profile's files, else its built-in set. Bad lines are logged with file and line and left out.
    private func runKernel() async throws {
        var logger = Logger(label: "herdwatch.agent")
        logger.logLevel = .info
        let command = self
        let services = try AgentRuntime.services(settings: try settings(), reread: { try command.settings() }, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    private func runStream(_ input: String) throws {
        let logger = Logger(label: "herdwatch.agent")
        let descriptor = input == "-" ? STDIN_FILENO : open(input, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ValidationError("cannot open \(input): \(String(cString: strerror(errno)))")
        }
        let reader = LineReader(streaming: descriptor, name: input == "-" ? "<stdin>" : input)
        let settings = try settings()
        let eventTimeout = settings.eventTimeoutMilliseconds
        let sink = try OutputFile(path: settings.output, capacity: 64 * 1024)
        var assembler = AuditEventAssembler.Configuration()
        assembler.timeoutMilliseconds = eventTimeout
        var pipeline = AuditPipeline(
            assembler: AuditEventAssembler(configuration: assembler),
            interpreter: AuditInterpreter(hostName: settings.hostName ?? AgentRuntime.localHostName()))
        let encoder = ECSEncoder()
        var writer = JSONWriter()
        let emit: (Event) throws -> Void = { event in
            writer.reset()
            encoder.encode(event, into: &writer)
            try writer.withUnsafeBytes { try sink.writeLine($0) }
        }

        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while !reader.isFinished {
            let ready = poll(&poller, 1, Int32(clamping: max(eventTimeout / 4, 50)))
            if ready > 0 {
                try reader.fill()
                while let line = try reader.nextBufferedLine() {
                    if line.truncated {
                        pipeline.noteMalformed()
                        logger.warning("line too long, skipped", metadata: ["line": "\(line.number)"])
                        continue
                    }
                    if let malformed = try pipeline.process(
                        line: line.bytes, source: reader.path, lineNumber: line.number, emit: emit)
                    {
                        logger.warning("malformed line skipped", metadata: ["where": "\(malformed)"])
                    }
                }
            }
            try pipeline.flush(olderThan: SystemClock.wallMilliseconds(), emit: emit)
            try sink.flush()
        }
        try pipeline.finish(emit: emit)
        try sink.flush()
    }
}
