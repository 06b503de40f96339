import Foundation
import HerdwatchAudit
import HerdwatchCollectors
import HerdwatchCommands
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

/// The live agent as services: what `herdwatch-agent run` runs, and what `herdwatch run` runs in
/// the same process as the server.
public enum AgentRuntime {
    /// The audit rules a level loads: the configured rule files, else the profile's built-in set.
    public static func rules(_ settings: AgentConfiguration, profile name: String? = nil, logger: Logger) throws -> [AuditRuleLine] {
        let parser = AuditRuleParser()
        var lines: [AuditRuleLine] = []
        var errors: [AuditRuleError] = []
        let profile = settings.policy.profiles[name ?? settings.profile] ?? .pet
        let files = settings.ruleFiles.isEmpty ? profile.ruleFiles ?? [] : settings.ruleFiles
        if files.isEmpty {
            let (parsed, problems) = parser.parse(
                DefaultRules.named(profile.builtinRules) ?? "", source: "<\(profile.builtinRules) rules>")
            lines = parsed
            errors = problems
        } else {
            for file in files {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw AgentSetupError(description: "cannot read rule file \(file)")
                }
                let (parsed, problems) = parser.parse(text, source: file)
                lines += parsed
                errors += problems
            }
        }
        for error in errors { logger.error("audit rule skipped", metadata: ["where": "\(error)"]) }
        return lines
    }

    /// The agent's services for one service group: collection (which ends the group when it stops),
    /// SIGHUP reloading, and one shipper per sink. `reread` reads the configuration again on SIGHUP.
    public static func services(
        settings: AgentConfiguration, reread: @escaping @Sendable () throws -> AgentConfiguration, logger: Logger
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var configuration = AuditCollector.Configuration()
        configuration.mode = settings.auditMode == "auto" ? nil : AuditNetlink.Mode(rawValue: settings.auditMode)
        configuration.eventTimeoutMilliseconds = settings.eventTimeoutMilliseconds
        configuration.hostName = settings.hostName ?? localHostName()
        configuration.userNames = SystemUserNames()
        configuration.processEvents = AuditCollector.ProcessEventOutput(
            rawValue: settings.policy.profiles[settings.profile]?.processEvents ?? settings.processEvents) ?? .exits
        configuration.tracksProcesses = settings.tracksProcesses
        configuration.backlogLimit = settings.backlogLimit
        configuration.keepsRulesOnStop = settings.keepRulesOnStop
        configuration.rules = try Self.rules(settings, logger: logger)
        configuration.processStateFile = settings.stateDirectory + "/process-table.json"
        configuration.adoptsExistingRules = true
        configuration.kernelStateFile = settings.stateDirectory + "/kernel-audit.json"

        let reloadLogger = logger
        let rereadSettings = reread
        var spoolConfiguration = Spool.Configuration(directory: settings.stateDirectory + "/spool")
        spoolConfiguration.maximumBytes = settings.spoolMaximumBytes
        spoolConfiguration.segmentBytes = settings.spoolSegmentBytes
        spoolConfiguration.sync = settings.spoolSync
        let spool = try SharedSpool(configuration: spoolConfiguration)
        var sinkNames = settings.output == "none" ? [] : ["output"]
        var shippers: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let hostName = configuration.hostName ?? "unknown"
        func ship(_ sink: any SpoolSink) {
            let runner = SinkRunner(sink: sink, spool: spool, logger: logger)
            shippers.append(.init(service: LoopService(label: "herdwatch.sink.\(runner.name)", loop: runner.run)))
            sinkNames.append(sink.name)
        }
        if let url = settings.natsURL {
            var nats = JetStreamSink.Configuration(url: url)
            nats.stream = settings.natsStream
            nats.subjectPrefix = settings.natsSubjectPrefix
            nats.createsStream = settings.natsCreatesStream
            nats.eventsPerMessage = settings.natsEventsPerMessage
            nats.compression = settings.natsCompression
            ship(JetStreamSink(configuration: nats, hostName: hostName))
            logger.info("publishing to NATS JetStream", metadata: ["url": "\(url)", "stream": "\(nats.stream)"])
        }
        var commands: (inbox: CommandInbox, server: (host: String, port: Int))?
        // Wakes the collection loop from other threads (a stop, a reload, a server command).
        let waker = Waker()
        if let url = settings.httpURL, let tokenFile = settings.httpTokenFile {
            guard let token = try? String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
                !token.isEmpty
            else { throw AgentSetupError(description: "cannot read a token from \(tokenFile)") }
            var http = try HTTPSink.Configuration(url: url, token: token, tls: settings.httpTLS)
            http.compression = settings.httpCompression
            http.connections = settings.httpConnections
            ship(HTTPSink(configuration: http))
            logger.info("sending to herdwatch server", metadata: ["url": "\(url)"])
            if let key = settings.commandServerKey {
                let verifier: CommandVerifier
                do {
                    verifier = try CommandVerifier(publicKeyBase64: key, hostName: hostName, acceptedActions: settings.acceptedCommandActions)
                } catch {
                    throw AgentSetupError(description: "commands: \(error)")
                }
                let inbox = CommandInbox(waker: waker)
                let channel = CommandChannel(
                    client: http, verifier: verifier, ledgerPath: settings.stateDirectory + "/command-ids", inbox: inbox, logger: logger)
                shippers.append(.init(service: LoopService(label: "herdwatch.commands", loop: channel.run)))
                commands = (inbox, (http.host, http.port))
                logger.info("taking commands from the server", metadata: ["accept": "\(settings.acceptedCommands.joined(separator: ","))"])
            }
        }
        if let address = settings.syslogAddress {
            var syslog = SyslogSink.Configuration(host: address.host, port: address.port)
            syslog.facility = settings.syslogFacility
            if let tls = settings.syslogTLS { syslog.tls = try TLSContext(tls) }
            ship(SyslogSink(configuration: syslog, hostName: hostName))
            logger.info(
                "sending to syslog", metadata: ["address": "\(address.host):\(address.port)", "transport": "\(syslog.tls == nil ? "TCP" : "TLS")"])
        }
        let collection = CollectionService(
            settings: settings, configuration: configuration, spool: spool, sinkNames: sinkNames, commands: commands, waker: waker,
            logger: logger,
            rulesFor: { profile, reread in
                try Self.rules(reread ? try rereadSettings() : settings, profile: profile, logger: reloadLogger)
            })
        return [
            .init(
                service: collection, successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: HangupService(collection: collection)),
        ] + shippers
    }

    public static func localHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// uid/gid → names from the host's user database (getpwuid_r), cached.
public final class SystemUserNames: UserNameResolver, Sendable {
    public init() {}

    private let cache = Mutex<[UInt64: String?]>([:])

    public func userName(uid: UInt32) -> String? { lookup(UInt64(uid)) { Self.passwdName(uid) } }
    public func groupName(gid: UInt32) -> String? { lookup(UInt64(gid) | 1 << 32) { Self.groupName(gid) } }

    private func lookup(_ key: UInt64, _ resolve: () -> String?) -> String? {
        if let cached = cache.withLock({ $0[key] }) { return cached }
        let name = resolve()
        cache.withLock { $0[key] = name }
        return name
    }

    private static func passwdName(_ uid: UInt32) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
            return nil
        }
        return String(cString: name)
    }

    private static func groupName(_ gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.gr_name else {
            return nil
        }
        return String(cString: name)
    }
}

public struct AgentSetupError: Error, CustomStringConvertible {
    public var description: String
}
