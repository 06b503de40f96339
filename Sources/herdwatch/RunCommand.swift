import ArgumentParser
import Foundation
import HerdwatchAgent
import HerdwatchServer
import HerdwatchStore
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Everything on this host in one process: the agent, the server with detection, SQLite, the web UI.",
        discussion: """
            The agent collects from this host's kernel (as `herdwatch-agent run`: audit over netlink, the \
            proc connector, the auth log) into its disk spool under --state-dir, and ships to the server \
            in the same process over HTTP on 127.0.0.1; the server stores every event in SQLite \
            (--db), runs the built-in Sigma rules (--rules) and serves the web UI and query API on \
            --listen (http://127.0.0.1:8080/ by default). Needs root (the kernel's audit socket). \
            SIGTERM or SIGINT stops both cleanly; the agent removes the audit rules it loaded.

            Response: unless --responses names other policies, alerts of level medium and above are \
            written to STATE-DIR/notifications.jsonl and raise the host to the full `pet` level for 15 \
            minutes (a signed command to the agent, which accepts the actions of --accept-commands). \
            Decisions and outcomes are on /responses.
            """
    )

    @Option(help: "Address of the web UI and the API: HOST:PORT.")
    var listen: String = "127.0.0.1:8080"

    @Option(help: "Directory for the spool, the agent's state and the store.")
    var stateDir: String = "/var/lib/herdwatch"

    @Option(help: "The store (default STATE-DIR/events.db; or postgres://USER@HOST:PORT/DB).")
    var db: String?

    @Option(help: "Agent configuration file (YAML; see `herdwatch-agent config`).")
    var agentConfig: String?

    @Option(help: "The host's monitoring level: pet, cattle or a profile of the agent configuration.")
    var profile: String?

    @Option(help: "Kernel mode: auto, unicast or multicast (beside a running auditd).")
    var mode: String?

    @Option(help: "Sigma rules: files, directories, 'builtin' or 'none'; repeatable.")
    var rules: [String] = ["builtin"]

    @Option(help: "Days of events kept (whole UTC days).")
    var retentionDays: Int = 30

    @Option(help: "Users file for the web UI (herdwatch passwd); needed when --listen is not on 127.0.0.1.")
    var users: String?

    @Option(help: "Response policies (YAML); default: notify to STATE-DIR/notifications.jsonl and raise the level on medium alerts.")
    var responses: String?

    @Option(help: "Comma-separated actions the agent carries out when a policy asks: level, kill, block, isolate.")
    var acceptCommands: String = "level"

    func validate() throws {
        if let mode, !["auto", "unicast", "multicast"].contains(mode) { throw ValidationError("--mode must be auto, unicast or multicast") }
        if case .failure(let error) = AgentConfiguration.commandActions(parsing: acceptCommands) {
            throw ValidationError("--accept-commands: \(error)")
        }
        guard retentionDays >= 1 else { throw ValidationError("--retention-days must be 1 or more") }
    }

    func run() async throws {
        var logger = Logger(label: "herdwatch")
        logger.logLevel = .info
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        // The agent: the configuration file if any, shipping only to the server beside it.
        var agent = AgentConfiguration()
        if let agentConfig {
            guard let text = try? String(contentsOfFile: agentConfig, encoding: .utf8) else {
                throw ValidationError("cannot read agent configuration \(agentConfig)")
            }
            agent = try AgentConfiguration.load(text: text, file: agentConfig)
        } else {
            agent.output = "none"
        }
        agent.stateDirectory = stateDir
        if let profile { agent.profile = profile }
        if let mode { agent.auditMode = mode }
        do {
            try agent.policy.validate()
        } catch {
            throw ValidationError("--profile: \(error)")
        }
        let hostName = agent.hostName ?? AgentRuntime.localHostName() ?? "localhost"
        agent.hostName = hostName

        // The server, with one token: the agent's (its --tokens file is not read).
        let server = try ServerCommand.parse(
            ["--listen", listen, "--tokens", "", "--retention-days", "\(retentionDays)", "--db", db ?? stateDir + "/events.db",
             "--signing-key", stateDir + "/server-signing.key"]
                + rules.flatMap { ["--rules", $0] } + (users.map { ["--users", $0] } ?? []) + (responses.map { ["--responses", $0] } ?? []))
        let tokenFile = stateDir + "/agent-token"
        var settings = try server.settings(ingest: IngestConfiguration(tokens: [try Self.token(in: tokenFile): hostName]))
        agent.httpURL = "http://127.0.0.1:\(settings.port)"
        agent.httpTokenFile = tokenFile
        settings.silenceSeconds = 0  // the agent is in this process: it cannot go silent without the server
        if responses == nil { settings.responses = .allInOneDefault(notifications: stateDir + "/notifications.jsonl") }
        // The agent takes the server's commands (signed with the key just loaded).
        agent.commandServerKey = settings.commandSigner?.publicKeyBase64
        agent.acceptedCommands = try AgentConfiguration.commandActions(parsing: acceptCommands).get()
        let runtime = try ServerRuntime(settings: settings, store: try await server.store.open(), logger: logger)

        let agentSettings = agent
        let agentServices = try AgentRuntime.services(settings: agentSettings, reread: { agentSettings }, logger: logger)
        logger.info("herdwatch running", metadata: ["ui": "http://\(listen)/", "host": "\(hostName)", "level": "\(agent.profile)"])
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: try await runtime.services().map { .init(service: $0) } + agentServices,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The agent's token: made once and kept in `file` (mode 0600).
    static func token(in file: String) throws -> String {
        let kept = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard kept.count < 16 else { return kept }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
        guard FileManager.default.createFile(atPath: file, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw ValidationError("cannot write \(file)") }
        return token
    }
}
