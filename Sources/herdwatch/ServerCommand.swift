import ArgumentParser
import Foundation
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
        abstract: "Receive events from agents over HTTP and store them.",
        discussion: """
            Agents post batches of ECS JSON lines to /api/v1/events with their host's token (the agent's \
            `http:` sink); a batch is acknowledged only once it is stored, each event once. Tokens come \
            from --tokens: one 'HOST TOKEN' per line. Listens on 127.0.0.1:8080 by default. Query what \
            is stored with `herdwatch query --db`. SIGTERM or SIGINT stops it cleanly.

            Detection: every newly stored event meets the Sigma rules of --rules (default: the built-in \
            pack; 'none' turns detection off; repeat to add directories); alerts are stored (the `alerts` \
            view) and logged. A host that sends nothing, heartbeats included, for --silence seconds \
            raises an 'Agent Went Silent' alert.
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

    @OptionGroup var store: StoreLocation

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen: expected HOST:PORT")
        }
        let host = String(listen[..<colon])
        guard let text = try? String(contentsOfFile: tokens, encoding: .utf8) else { throw ValidationError("cannot read \(tokens)") }
        var configuration = try IngestConfiguration(parsing: text, file: tokens)
        configuration.maximumBodyBytes = maxBatchBytes
        var logger = Logger(label: "herdwatch.server")
        logger.logLevel = .info
        let events = try await store.open()
        try await events.register(hosts: configuration.hostTags)
        var detection: DetectionStage?
        if !rules.contains("none") {
            detection = DetectionStage(ruleSet: try RuleLoading.ruleSet(rules, strict: false), store: events, logger: logger)
            logger.info("detection on", metadata: ["rules": "\(detection!.ruleCount)"])
        }
        let router = Router()
        IngestRoutes.add(to: router, store: events, configuration: configuration, detection: detection, logger: logger)
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "herdwatch"), logger: logger)
        logger.info("listening", metadata: ["address": "\(listen)", "store": "\(store.db)", "hosts": "\(configuration.tokens.count)"])
        var services: [any Service] = [app]
        if let nats {
            var natsConfiguration = NATSIngest.Configuration(url: nats)
            natsConfiguration.durable = natsDurable
            let ingest = NATSIngest(configuration: natsConfiguration, store: events, detection: detection, logger: logger)
            services.append(ingest)
        }
        if let detection, silence > 0 {
            services.append(SilenceWatch(store: events, detection: detection, silenceSeconds: silence))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
