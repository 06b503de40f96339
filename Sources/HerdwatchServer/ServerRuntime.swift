import Foundation
import HerdwatchCommands
import HerdwatchDetection
import HerdwatchStore
import Hummingbird
import HummingbirdTLS
import Logging
import ServiceLifecycle

/// Everything `herdwatch server` runs, as services for one service group: the HTTP server (agent
/// ingest, web UI, query API), the NATS consumer, the silence watch and retention.
public struct ServerRuntime: Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        public var ingest: IngestConfiguration
        public var web = WebConfiguration()
        public var nats: NATSIngest.Configuration?
        /// Nil: no detection.
        public var ruleSet: RuleSet?
        public var silenceSeconds = 180
        /// Acknowledge agents' batches once in this journal and store them behind; nil: once stored.
        public var journal: IngestJournal.Configuration?
        /// Days of events kept; nil keeps everything.
        public var retentionDays: Int?
        /// Signs the commands sent to agents (`/api/v1/commands`); nil: no command channel.
        public var commandSigner: CommandSigner?
        /// Response policies; nil or empty: alerts get no automated response.
        public var responses: ResponseConfiguration?
        /// HTTPS instead of HTTP (agents' ingest and commands, the UI, the API); nil: plain HTTP.
        public var tls: TLSFiles?
        /// Called once the server listens, with its port (tests listen on port 0).
        public var onListening: @Sendable (Int) async -> Void = { _ in }

        public init(ingest: IngestConfiguration) { self.ingest = ingest }
    }

    public let settings: Settings
    public let store: any FleetStore
    public let detection: DetectionStage?
    /// Commands waiting for their agents (nil without a signer).
    public let commands: CommandIssuer?
    /// The ingest journal (nil: batches are acknowledged once stored).
    public let journal: IngestJournal?
    private let notifier: Notifier?
    private let logger: Logger

    public init(settings: Settings, store: any FleetStore, logger: Logger) throws {
        if settings.web.users == nil && !Self.isLoopback(settings.host) {
            throw IngestSetupError(
                description: "listening on \(settings.host) needs --users (who may sign in to the UI and the query API); without it, listen on 127.0.0.1")
        }
        self.settings = settings
        self.store = store
        self.logger = logger
        commands = settings.commandSigner.map { CommandIssuer(signer: $0) }
        var responder: Responder?
        if let configuration = settings.responses, !configuration.policies.isEmpty {
            guard let commands else {
                throw IngestSetupError(description: "response policies need a command signing key (the server's --signing-key)")
            }
            let notifier = Notifier(logger: logger)
            self.notifier = notifier
            responder = Responder(
                configuration: configuration, issuer: commands, store: store, hostTags: settings.ingest.hostTags, notifier: notifier,
                logger: logger)
        } else {
            notifier = nil
        }
        let detection = settings.ruleSet.map { DetectionStage(ruleSet: $0, store: store, responder: responder, logger: logger) }
        self.detection = detection
        journal = try settings.journal.map { try IngestJournal(configuration: $0, store: store, detection: detection, logger: logger) }
    }

    static func isLoopback(_ host: String) -> Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

    /// The router with every route, for the HTTP server (and for tests).
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        IngestRoutes.add(to: router, store: store, configuration: settings.ingest, detection: detection, journal: journal, logger: logger)
        if let commands { CommandRoutes.add(to: router, queue: commands.queue, ingest: settings.ingest) }
        WebRoutes.add(
            to: router, store: store, configuration: settings.web, commands: commands, hosts: Set(settings.ingest.tokens.values), logger: logger)
        return router
    }

    /// Registers the hosts of the tokens file, then returns the services to run.
    public func services() async throws -> [any Service] {
        try await store.register(hosts: settings.ingest.hostTags)
        let listening = settings.onListening
        let app = Application(
            router: router(), server: try settings.tls.map { try .tls(.http1(), tlsConfiguration: $0.configuration()) } ?? .http1(),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "herdwatch"),
            onServerRunning: { channel in await listening(channel.localAddress?.port ?? 0) }, logger: logger)
        var services: [any Service] = [app]
        if let journal { services.append(journal) }
        if let nats = settings.nats {
            services.append(NATSIngest(configuration: nats, store: store, detection: detection, logger: logger))
        }
        if let detection, settings.silenceSeconds > 0 {
            services.append(SilenceWatch(store: store, detection: detection, silenceSeconds: settings.silenceSeconds))
        }
        if let responder = detection?.responder { services.append(responder) }
        if let notifier { services.append(notifier) }
        if let days = settings.retentionDays {
            services.append(Retention(store: store, days: days, logger: logger))
        }
        logger.info(
            "listening",
            metadata: [
                "address": "\(settings.tls == nil ? "http" : "https")://\(settings.host):\(settings.port)", "store": "\(store.location)", "hosts": "\(settings.ingest.tokens.count)",
                "rules": "\(detection?.ruleCount ?? 0)", "response-policies": "\(detection?.responder?.policyCount ?? 0)",
                "command-key": "\(settings.commandSigner?.publicKeyBase64 ?? "none")", "sign-in": "\(settings.web.users == nil ? "off (loopback)" : "on")",
            ])
        return services
    }
}

/// Drops the days older than `days` (whole UTC days), at start and then hourly.
public struct Retention: Service {
    let store: any FleetStore
    let days: Int
    let logger: Logger

    public init(store: any FleetStore, days: Int, logger: Logger) {
        self.store = store
        self.days = days
        self.logger = logger
    }

    public func run() async throws {
        await repeatUntilShutdown(every: .seconds(3600)) {
            let cutoff = Int64(Date().timeIntervalSince1970 * 1000) - Int64(days) * 86_400_000
            do {
                let dropped = try await store.dropDays(before: cutoff)
                if dropped > 0 { logger.info("retention dropped old days", metadata: ["days": "\(dropped)", "keep": "\(days)"]) }
            } catch {
                logger.error("retention failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Runs `round` now and then every `interval` until the task is cancelled or the service group
/// shuts down gracefully; stopping is not an error.
func repeatUntilShutdown(every interval: Duration, _ round: @escaping @Sendable () async -> Void) async {
    await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            await round()
            try? await Task.sleep(for: interval)
        }
    }
}

/// The server's certificate and key (PEM), and, for mutual TLS, the CA whose client certificates
/// it requires of every connection.
public struct TLSFiles: Sendable {
    public var certificate: String
    public var key: String
    public var clientCA: String?

    public init(certificate: String, key: String, clientCA: String? = nil) {
        self.certificate = certificate
        self.key = key
        self.clientCA = clientCA
    }

    func configuration() throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw IngestSetupError(description: "TLS: cannot load \(certificate) and \(key): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCA {
            guard FileManager.default.isReadableFile(atPath: clientCA) else {
                throw IngestSetupError(description: "TLS: cannot read the client CA file \(clientCA)")
            }
            configuration.trustRoots = .file(clientCA)
            configuration.certificateVerification = .noHostnameVerification
        }
        return configuration
    }
}
