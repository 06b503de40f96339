import ArgumentParser
import Foundation
import HerdwatchCommands
import HerdwatchDetection
import HerdwatchServer
import HerdwatchStore
import Hummingbird
import Logging
import HerdwatchShipping
import ServiceLifecycle

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Receive events from agents, store them, detect, and serve the web UI and query API.",
        discussion: """
            Agents post batches of ECS JSON lines to /api/v1/events with their host's token (the agent's \
            `http:` sink); a batch is acknowledged only once it is stored, each event once (with \
            --journal DIR: once it is checked and synced to that ingest journal, stored behind). Tokens come \
            from --tokens: one 'HOST TOKEN [key=value ...]' per line; the tags put hosts in groups that \
            queries select (--hosts role=web). Listens on 127.0.0.1:8080 by default, with the web UI \
            (/hosts, /alerts, /events, /hunts, /process/ID) and the query API (/api/v1/query); beyond \
            127.0.0.1 both need a user of --users. Query from the shell with `herdwatch query --db`. \
            SIGTERM or SIGINT stops it cleanly.

            Detection: every newly stored event meets the Sigma rules of --rules (default: the built-in \
            pack; 'none' turns detection off; repeat to add directories); alerts are stored (the `alerts` \
            view) and logged. A host that sends nothing, heartbeats included, for --silence seconds \
            raises an 'Agent Went Silent' alert.

            Response: --responses names a YAML file of response policies (docs/responses.md): alerts that \
            match run actions — notify (webhook, Slack, syslog, file), raise the host's monitoring level, \
            kill the process, block the remote address, isolate the host, bounce it with your own program. \
            Actions on a host go to its agent as commands signed with --signing-key (Ed25519; made on \
            first use, its public half written to KEY.pub for the agents' --command-key). Every decision \
            and outcome is in the `responses` view and on /responses.
            """
    )

    @Option(help: "Address to listen on: HOST:PORT.")
    var listen: String = "127.0.0.1:8080"

    @Option(help: "Tokens file: one 'HOST TOKEN' per line (tokens of 16 characters or more).")
    var tokens: String

    @Option(help: "Largest batch accepted, in bytes.")
    var maxBatchBytes: Int = 16 << 20

    @Option(help: "Also store what agents publish to this NATS JetStream server (nats://HOST:PORT).")
    var nats: String?

    @Option(help: "Durable consumer name on NATS; servers with the same name share the stream.")
    var natsDurable: String = "herdwatch-server"

    @Option(help: "Sigma rules to run over stored events: files, directories, 'builtin' or 'none'; repeatable.")
    var rules: [String] = ["builtin"]

    @Option(help: "Seconds without any event from a host before it raises an 'Agent Went Silent' alert (0: off).")
    var silence: Int = 180

    @Option(help: "Users who may sign in to the web UI and query API: 'NAME HASH' per line (herdwatch passwd). Needed beyond 127.0.0.1.")
    var users: String?

    @Option(help: "Days of events and alerts kept (whole UTC days; older ones are dropped hourly). Default: all.")
    var retentionDays: Int?

    @Option(help: "Response policies (YAML): what to do about alerts. Needs --signing-key.")
    var responses: String?

    @Option(help: "Ed25519 key that signs commands to agents (created when missing; the public key goes to KEY.pub).")
    var signingKey: String?

    @Option(help: "Serve HTTPS with this PEM certificate (chain); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The PEM key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Mutual TLS: require a client certificate signed by this PEM CA from every connection.")
    var tlsClientCa: String?

    @Option(help: "Ingest journal directory: acknowledge agents' batches once checked and synced there, and store them behind (503 past --journal-backlog-mb not yet stored).")
    var journal: String?

    @Option(help: "Megabytes of the journal not yet stored past which batches are refused until the store catches up.")
    var journalBacklogMb: Int = 4096

    @OptionGroup var store: StoreLocation

    func validate() throws {
        if let retentionDays, retentionDays < 1 { throw ValidationError("--retention-days must be 1 or more") }
        if journalBacklogMb < 1 { throw ValidationError("--journal-backlog-mb must be 1 or more") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsClientCa != nil && tlsCert == nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
    }

    func run() async throws {
        var logger = Logger(label: "herdwatch.server")
        logger.logLevel = .info
        let settings = try settings()
        let runtime = try ServerRuntime(settings: settings, store: try await store.open(), logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: try await runtime.services().map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    func settings() throws -> ServerRuntime.Settings {
        guard let text = try? String(contentsOfFile: tokens, encoding: .utf8) else { throw ValidationError("cannot read \(tokens)") }
        return try settings(ingest: IngestConfiguration(parsing: text, file: tokens))
    }

    /// The settings of the options, with the agents' tokens given (`herdwatch run` has its own).
    func settings(ingest: IngestConfiguration) throws -> ServerRuntime.Settings {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen: expected HOST:PORT")
        }
        var settings = ServerRuntime.Settings(ingest: ingest)
        settings.ingest.maximumBodyBytes = maxBatchBytes
        settings.host = String(listen[..<colon])
        settings.port = port
        if let users {
            guard let text = try? String(contentsOfFile: users, encoding: .utf8) else { throw ValidationError("cannot read \(users)") }
            settings.web.users = try UserDirectory(parsing: text, file: users)
        }
        if let nats {
            var configuration = NATSIngest.Configuration(url: nats)
            configuration.durable = natsDurable
            settings.nats = configuration
        }
        if !rules.contains("none") { settings.ruleSet = try RuleLoading.ruleSet(rules, strict: false) }
        settings.silenceSeconds = silence
        settings.retentionDays = retentionDays
        if let journal {
            var configuration = IngestJournal.Configuration(directory: journal)
            configuration.maximumBacklogBytes = journalBacklogMb << 20
            settings.journal = configuration
        }
        if let tlsCert, let tlsKey { settings.tls = TLSFiles(certificate: tlsCert, key: tlsKey, clientCA: tlsClientCa) }
        if let signingKey { settings.commandSigner = try Self.signer(at: signingKey) }
        if let responses {
            guard settings.commandSigner != nil else { throw ValidationError("--responses needs --signing-key (commands to agents are signed)") }
            guard let text = try? String(contentsOfFile: responses, encoding: .utf8) else { throw ValidationError("cannot read \(responses)") }
            settings.responses = try ResponseConfiguration.load(text: text, file: responses)
        }
        return settings
    }

    /// The signing key at `path` (made when missing), with its public half beside it in `path.pub`.
    static func signer(at path: String) throws -> CommandSigner {
        let signer = try CommandSigner.loadOrCreate(path: path)
        try (signer.publicKeyBase64 + "\n").write(toFile: path + ".pub", atomically: true, encoding: .utf8)
        return signer
    }
}

struct PasswdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Print a users-file line (NAME HASH, yescrypt) for `herdwatch server --users`.",
        discussion: "Reads the password from standard input (one line), so it stays out of the shell history and ps."
    )

    @Argument(help: "The user's name.")
    var name: String

    func run() throws {
        guard !name.isEmpty, !name.contains(where: \.isWhitespace) else { throw ValidationError("a name without spaces") }
        guard let password = readLine(strippingNewline: true), !password.isEmpty else { throw ValidationError("no password on standard input") }
        guard let hash = PasswordHash.make(password) else { throw ValidationError("libcrypt could not hash the password") }
        print("\(name) \(hash)")
    }
}
