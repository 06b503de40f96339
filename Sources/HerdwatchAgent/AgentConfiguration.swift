import HerdwatchPolicy
import HerdwatchShipping
import Yams

/// The agent's configuration file (YAML). Every key is optional; the defaults are what
/// `herdwatch-agent config` prints. Command-line options override the file.
public struct AgentConfiguration: Equatable, Sendable {
    public init() {}

    public var output = "-"
    public var hostName: String?
    public var auditMode = "auto"
    /// The telemetry policy; `policy.baseProfile` is the host's level (`profile:`).
    public var policy = PolicyConfiguration()
    /// Lists of programs shipped with the image (first-seen baseline).
    public var baselineFiles: [String] = []
    public var profile: String {
        get { policy.baseProfile }
        set { policy.baseProfile = newValue }
    }
    public var ruleFiles: [String] = []
    public var backlogLimit: UInt32 = 8192
    public var eventTimeoutMilliseconds: Int64 = 2000
    public var keepRulesOnStop = false
    public var tracksProcesses = true
    public var processEvents = "exits"
    /// nil: /var/log/auth.log when it exists; "none": off.
    public var authLog: String?
    public var heartbeatSeconds: Double = 60
    /// Where state that outlives a restart is kept (the process table).
    public var stateDirectory = "/var/lib/herdwatch"
    /// The disk spool's bound and segment size (bytes).
    public var spoolMaximumBytes: UInt64 = 1 << 30
    public var spoolSegmentBytes: UInt64 = 16 << 20
    /// When the spool's writes are synced to the disk (`spool.sync`): at every flush (the default),
    /// at most once per interval, or never (the kernel decides).
    public var spoolSync = Spool.SyncPolicy.everyFlush
    /// NATS JetStream sink: off without a URL.
    public var natsURL: String?
    public var natsStream = "HERDWATCH"
    public var natsSubjectPrefix = "herdwatch.events"
    public var natsCreatesStream = true
    public var natsEventsPerMessage = 32
    public var natsCompression = JetStreamSink.Configuration.Compression.zstd
    /// HTTP sink to `herdwatch server`: off without a URL; the token is read from a file.
    public var httpURL: String?
    public var httpTokenFile: String?
    /// TLS for an `https://` URL: the CA to trust (default: the system's), and a client
    /// certificate and key for servers that require one.
    public var httpTLS = TLSContext.Configuration()
    /// How batches travel to the server: zstd-compressed (the default) or as they are.
    public var httpCompression = HTTPSink.Configuration.Compression.zstd
    /// Connections to the server the batches take in turn (the server checks one from each at once).
    public var httpConnections = 2
    /// Syslog sink (RFC 5424 over TCP): off without an address.
    public var syslogAddress: HostAndPort?
    public var syslogFacility = 16
    /// Syslog over TLS (RFC 5425) when set: the CA to trust, and a client certificate.
    public var syslogTLS: TLSContext.Configuration?
    /// The command channel: off without the server's public key (base64 Ed25519). Commands come
    /// from the HTTP sink's server, with its token.
    public var commandServerKey: String?
    /// Actions this host carries out when the server asks (`unblock` comes with `block`, `release`
    /// with `isolate`).
    public var acceptedCommands: [String] = ["level"]
    public static let commandActions: Set<String> = ["level", "kill", "block", "isolate"]

    /// `level,kill` (an `--accept-commands` value): the actions, or the first that is not one.
    public static func commandActions(parsing text: String) -> Result<[String], AgentSetupError> {
        let actions = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if let bad = actions.first(where: { !commandActions.contains($0) }) {
            return .failure(AgentSetupError(description: "'\(bad)' is not one of \(commandActions.sorted().joined(separator: ", "))"))
        }
        return .success(actions)
    }

    /// The accepted actions with their undo actions.
    public var acceptedCommandActions: Set<String> {
        var actions = Set(acceptedCommands)
        if actions.contains("block") { actions.insert("unblock") }
        if actions.contains("isolate") { actions.insert("release") }
        return actions
    }

    public struct HostAndPort: Equatable, Sendable {
        public var host: String
        public var port: Int
    }

    /// `HOST:PORT` or `[IPv6]:PORT`.
    public static func hostAndPort(_ text: String) -> HostAndPort? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : HostAndPort(host: host, port: port)
    }

    public static let defaultText = """
        # herdwatch-agent configuration (YAML). Every key is optional; these are the defaults.
        output: "-"                 # events as ECS JSON lines: "-" (standard output), a file, or none
        # host_name: web1           # host.name; default: this host's name
        profile: pet                # the host's monitoring level: pet (everything) | cattle (sampled) | one of policy.profiles
        policy:
          first_seen: true          # keep and flag (herdwatch.first_seen) the first run of each program on this host
          baseline: []              # files listing the programs shipped with the image, one path per line
          must_keep:                # always kept, on top of login, privilege, module, audit-config and health events
            classes: []             # process | file | network | other
            tags: []                # audit rule keys (-k) whose events are always kept
            executables: []         # programs whose events are always kept
          profiles: {}              # your own levels beside pet and cattle, e.g.
          #  web:
          #    rules: cattle        # built-in rule set (pet | cattle) or a list of rule files
          #    process_events: exits
          #    classes: {process: sample(5%), file: full, network: aggregate(60s), other: off}
        audit:
          mode: auto                # auto (multicast beside a running auditd, else unicast) | unicast | multicast
          rules: []                 # rule files in auditctl syntax; replace every profile's rules
          backlog_limit: 8192       # kernel queue length while the agent owns the audit socket
          event_timeout_ms: 2000    # how long an event waits for its last record
          keep_rules_on_stop: false # leave the rules loaded when the agent stops
        processes:
          track: true               # process table: entity ids, parents, ancestry, container ids
          events: exits             # proc-connector events emitted: none | exits | all
        # auth_log: /var/log/auth.log   # sshd/sudo/su messages: a file, "journal" or "none"; default: that file if it exists, else the journal
        heartbeat_seconds: 60       # agent-heartbeat events; 0 for none
        state_dir: /var/lib/herdwatch   # process table, spool, level, known programs: kept across restarts
        # nats:                     # also publish to NATS JetStream (a sink of its own, with its own spool cursor)
        #   url: nats://127.0.0.1:4222
        #   stream: HERDWATCH       # created when missing (file storage, subjects SUBJECT_PREFIX.>)
        #   subject_prefix: herdwatch.events   # events go to SUBJECT_PREFIX.HOST
        #   create_stream: true
        #   events_per_message: 32  # JSON lines per message (1: one event per message, its id the message id)
        #   compression: zstd       # zstd | none: a message's lines compressed together (header Content-Encoding: zstd), or as they are
        # http:                     # send to `herdwatch server` (acknowledged once stored)
        #   url: http://127.0.0.1:8080       # or https://HOST:PORT (TLS 1.2+, the server's certificate verified)
        #   token_file: /etc/herdwatch/token   # this host's token (as in the server's --tokens file)
        #   ca_file: /etc/herdwatch/ca.pem     # https: the CA that signed the server's certificate; default: the system's
        #   cert_file: /etc/herdwatch/agent.pem   # https: a client certificate (mutual TLS), with key_file
        #   key_file: /etc/herdwatch/agent.key
        #   compression: zstd       # zstd | none: batches compressed (about a tenth of the bytes), or as they are
        #   connections: 2          # 1 to 8: batches go over these in turn, and the server takes them in order
        # syslog:                   # also send to a syslog receiver: RFC 5424, TCP, octet-counted framing (rsyslog imtcp, syslog-ng)
        #   address: 127.0.0.1:514
        #   facility: 16            # 16 = local0; 10 = authpriv
        #   tls: false              # RFC 5425 (rsyslog gtls, syslog-ng tls()); the receiver's certificate is verified
        #   ca_file: /etc/herdwatch/ca.pem    # tls: the CA that signed the receiver's certificate; default: the system's
        #   cert_file: /etc/herdwatch/agent.pem   # tls: a client certificate, with key_file
        #   key_file: /etc/herdwatch/agent.key
        # commands:                 # carry out response commands from `herdwatch server` (needs http: same server, same token)
        #   server_key: BASE64      # the server's Ed25519 public key (the server's STATE_DIR/command-key.pub)
        #   accept: [level]         # what this host does when asked: level, kill, block, isolate (each signed, checked, reported)
        spool:
          max_bytes: 1073741824     # when full, the oldest ordinary events are dropped (counted, reported as telemetry-loss); must-keep ones move on
          segment_bytes: 16777216   # segment file size
          sync: batch               # batch: fsync at every flush (every 50 ms or sooner); interval: at most every
                                    #   sync_interval_ms (a power loss may lose that much; a crash of the agent, nothing);
                                    #   never: the kernel writes back when it likes
          # sync_interval_ms: 1000
        """

    public struct Problem: Error, CustomStringConvertible {
        var file: String
        var key: String
        var reason: String
        public var description: String { "\(file): \(key.isEmpty ? "" : "key '\(key)': ")\(reason)" }
    }

    /// Reads a configuration file; unknown keys and wrong types are errors naming the key.
    public static func load(text: String, file: String) throws -> AgentConfiguration {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw Problem(file: file, key: "", reason: "not valid YAML: \(error)")
        }
        var configuration = AgentConfiguration()
        guard let root else { return configuration }
        guard let top = root as? [String: Any] else { throw Problem(file: file, key: "", reason: "expected a mapping") }

        func unknown(_ map: [String: Any], _ known: Set<String>, prefix: String) throws {
            if let key = map.keys.sorted().first(where: { !known.contains($0) }) {
                throw Problem(file: file, key: prefix + key, reason: "unknown key (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
        func string(_ map: [String: Any], _ key: String, _ path: String, allowed: Set<String>? = nil) throws -> String? {
            guard let value = map[key] else { return nil }
            guard let text = value as? String ?? (value as? Int).map(String.init) else {
                throw Problem(file: file, key: path, reason: "expected text")
            }
            if let allowed, !allowed.contains(text) {
                throw Problem(file: file, key: path, reason: "'\(text)' is not one of \(allowed.sorted().joined(separator: ", "))")
            }
            return text
        }
        func number(_ map: [String: Any], _ key: String, _ path: String) throws -> Double? {
            guard let value = map[key] else { return nil }
            if let integer = value as? Int, integer >= 0 { return Double(integer) }
            if let double = value as? Double, double >= 0 { return double }
            throw Problem(file: file, key: path, reason: "expected a number of 0 or more")
        }
        func bool(_ map: [String: Any], _ key: String, _ path: String) throws -> Bool? {
            guard let value = map[key] else { return nil }
            guard let flag = value as? Bool else { throw Problem(file: file, key: path, reason: "expected true or false") }
            return flag
        }
        func strings(_ map: [String: Any], _ key: String, _ path: String) throws -> [String]? {
            guard let value = map[key] else { return nil }
            guard let list = value as? [Any], let texts = list as? [String] else {
                throw Problem(file: file, key: path, reason: "expected a list of text")
            }
            return texts
        }
        func submap(_ map: [String: Any], _ key: String, _ path: String) throws -> [String: Any]? {
            guard let value = map[key] else { return nil }
            guard let map = value as? [String: Any] else { throw Problem(file: file, key: path, reason: "expected a mapping") }
            return map
        }
        func map(_ key: String) throws -> [String: Any]? { try submap(top, key, key) }

        try unknown(
            top, ["output", "host_name", "profile", "policy", "audit", "processes", "auth_log", "heartbeat_seconds", "state_dir", "spool", "nats", "syslog", "http", "commands"],
            prefix: "")
        if let directory = try string(top, "state_dir", "state_dir") { configuration.stateDirectory = directory }
        if let output = try string(top, "output", "output") { configuration.output = output }
        configuration.hostName = try string(top, "host_name", "host_name")
        configuration.authLog = try string(top, "auth_log", "auth_log")
        if let seconds = try number(top, "heartbeat_seconds", "heartbeat_seconds") { configuration.heartbeatSeconds = seconds }
        if let audit = try map("audit") {
            try unknown(audit, ["mode", "rules", "backlog_limit", "event_timeout_ms", "keep_rules_on_stop"], prefix: "audit.")
            if let mode = try string(audit, "mode", "audit.mode", allowed: ["auto", "unicast", "multicast"]) {
                configuration.auditMode = mode
            }
            if let files = try strings(audit, "rules", "audit.rules") { configuration.ruleFiles = files }
            if let limit = try number(audit, "backlog_limit", "audit.backlog_limit") {
                guard limit <= Double(UInt32.max) else { throw Problem(file: file, key: "audit.backlog_limit", reason: "too large") }
                configuration.backlogLimit = UInt32(limit)
            }
            if let timeout = try number(audit, "event_timeout_ms", "audit.event_timeout_ms") {
                configuration.eventTimeoutMilliseconds = Int64(timeout)
            }
            if let keep = try bool(audit, "keep_rules_on_stop", "audit.keep_rules_on_stop") { configuration.keepRulesOnStop = keep }
        }
        if let spool = try map("spool") {
            try unknown(spool, ["max_bytes", "segment_bytes", "sync", "sync_interval_ms"], prefix: "spool.")
            let segment = try number(spool, "segment_bytes", "spool.segment_bytes").map { UInt64($0) } ?? configuration.spoolSegmentBytes
            let maximum = try number(spool, "max_bytes", "spool.max_bytes").map { UInt64($0) } ?? configuration.spoolMaximumBytes
            guard segment >= 4096 else { throw Problem(file: file, key: "spool.segment_bytes", reason: "at least 4096") }
            guard maximum >= 2 * segment else { throw Problem(file: file, key: "spool.max_bytes", reason: "at least two segments (\(2 * segment))") }
            configuration.spoolSegmentBytes = segment
            configuration.spoolMaximumBytes = maximum
            let interval = try number(spool, "sync_interval_ms", "spool.sync_interval_ms")
            if let interval, interval < 1 || interval > 60_000 || interval != interval.rounded() {
                throw Problem(file: file, key: "spool.sync_interval_ms", reason: "a whole number of milliseconds from 1 to 60000")
            }
            let sync = try string(spool, "sync", "spool.sync", allowed: ["batch", "interval", "never"]) ?? "batch"
            if interval != nil && sync != "interval" {
                throw Problem(file: file, key: "spool.sync_interval_ms", reason: "only with sync: interval")
            }
            switch sync {
            case "interval": configuration.spoolSync = .interval(milliseconds: Int64(interval ?? 1000))
            case "never": configuration.spoolSync = .never
            default: configuration.spoolSync = .everyFlush
            }
        }
        if let nats = try map("nats") {
            try unknown(nats, ["url", "stream", "subject_prefix", "create_stream", "events_per_message", "compression"], prefix: "nats.")
            guard let url = try string(nats, "url", "nats.url") else { throw Problem(file: file, key: "nats.url", reason: "required") }
            guard url.hasPrefix("nats://") || url.hasPrefix("tls://") else {
                throw Problem(file: file, key: "nats.url", reason: "expected nats://HOST:PORT or tls://HOST:PORT")
            }
            configuration.natsURL = url
            if let stream = try string(nats, "stream", "nats.stream") { configuration.natsStream = stream }
            if let prefix = try string(nats, "subject_prefix", "nats.subject_prefix") { configuration.natsSubjectPrefix = prefix }
            if let create = try bool(nats, "create_stream", "nats.create_stream") { configuration.natsCreatesStream = create }
            if let perMessage = try number(nats, "events_per_message", "nats.events_per_message") {
                guard perMessage >= 1, perMessage <= 1000, perMessage == perMessage.rounded() else {
                    throw Problem(file: file, key: "nats.events_per_message", reason: "a whole number from 1 to 1000")
                }
                configuration.natsEventsPerMessage = Int(perMessage)
            }
            if let compression = try string(
                nats, "compression", "nats.compression", allowed: Set(JetStreamSink.Configuration.Compression.allCases.map(\.rawValue)))
            {
                configuration.natsCompression = JetStreamSink.Configuration.Compression(rawValue: compression) ?? .zstd
            }
        }
        if let http = try map("http") {
            try unknown(http, ["url", "token_file", "ca_file", "cert_file", "key_file", "compression", "connections"], prefix: "http.")
            if let connections = try number(http, "connections", "http.connections") {
                guard connections >= 1, connections <= 8, connections == connections.rounded() else {
                    throw Problem(file: file, key: "http.connections", reason: "a whole number from 1 to 8")
                }
                configuration.httpConnections = Int(connections)
            }
            if let compression = try string(
                http, "compression", "http.compression", allowed: Set(HTTPSink.Configuration.Compression.allCases.map(\.rawValue)))
            {
                configuration.httpCompression = HTTPSink.Configuration.Compression(rawValue: compression) ?? .zstd
            }
            guard let url = try string(http, "url", "http.url") else { throw Problem(file: file, key: "http.url", reason: "required") }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw Problem(file: file, key: "http.url", reason: "expected http://HOST:PORT or https://HOST:PORT")
            }
            configuration.httpTLS.caFile = try string(http, "ca_file", "http.ca_file")
            configuration.httpTLS.certificateFile = try string(http, "cert_file", "http.cert_file")
            configuration.httpTLS.keyFile = try string(http, "key_file", "http.key_file")
            if (configuration.httpTLS.certificateFile == nil) != (configuration.httpTLS.keyFile == nil) {
                throw Problem(file: file, key: "http.cert_file", reason: "a client certificate needs both cert_file and key_file")
            }
            guard let tokenFile = try string(http, "token_file", "http.token_file") else {
                throw Problem(file: file, key: "http.token_file", reason: "required")
            }
            configuration.httpURL = url
            configuration.httpTokenFile = tokenFile
        }
        if let syslog = try map("syslog") {
            try unknown(syslog, ["address", "facility", "tls", "ca_file", "cert_file", "key_file"], prefix: "syslog.")
            guard let text = try string(syslog, "address", "syslog.address") else {
                throw Problem(file: file, key: "syslog.address", reason: "required")
            }
            guard let address = hostAndPort(text) else { throw Problem(file: file, key: "syslog.address", reason: "expected HOST:PORT") }
            configuration.syslogAddress = address
            if let facility = try number(syslog, "facility", "syslog.facility") {
                guard facility <= 23 else { throw Problem(file: file, key: "syslog.facility", reason: "0 to 23") }
                configuration.syslogFacility = Int(facility)
            }
            let files = TLSContext.Configuration(
                caFile: try string(syslog, "ca_file", "syslog.ca_file"), certificateFile: try string(syslog, "cert_file", "syslog.cert_file"),
                keyFile: try string(syslog, "key_file", "syslog.key_file"))
            if try bool(syslog, "tls", "syslog.tls") == true {
                if (files.certificateFile == nil) != (files.keyFile == nil) {
                    throw Problem(file: file, key: "syslog.cert_file", reason: "a client certificate needs both cert_file and key_file")
                }
                configuration.syslogTLS = files
            } else if files != TLSContext.Configuration() {
                throw Problem(file: file, key: "syslog.tls", reason: "ca_file, cert_file and key_file need tls: true")
            }
        }
        if let commands = try map("commands") {
            try unknown(commands, ["server_key", "accept"], prefix: "commands.")
            guard let key = try string(commands, "server_key", "commands.server_key") else {
                throw Problem(file: file, key: "commands.server_key", reason: "required")
            }
            configuration.commandServerKey = key
            if let accept = try strings(commands, "accept", "commands.accept") {
                if let bad = accept.first(where: { !commandActions.contains($0) }) {
                    throw Problem(
                        file: file, key: "commands.accept", reason: "'\(bad)' is not an action (\(commandActions.sorted().joined(separator: ", ")))")
                }
                configuration.acceptedCommands = accept
            }
            guard configuration.httpURL != nil else {
                throw Problem(file: file, key: "commands", reason: "needs http (the server commands come from, and the host's token)")
            }
        }
        if let profile = try string(top, "profile", "profile") { configuration.profile = profile }
        if let policy = try map("policy") {
            try unknown(policy, ["first_seen", "baseline", "must_keep", "profiles"], prefix: "policy.")
            if let flag = try bool(policy, "first_seen", "policy.first_seen") { configuration.policy.flagsFirstSeen = flag }
            if let files = try strings(policy, "baseline", "policy.baseline") { configuration.baselineFiles = files }
            if let mustKeep = try submap(policy, "must_keep", "policy.must_keep") {
                try unknown(mustKeep, ["classes", "tags", "executables"], prefix: "policy.must_keep.")
                if let names = try strings(mustKeep, "classes", "policy.must_keep.classes") {
                    var classes: [EventClass] = []
                    for name in names {
                        guard let eventClass = EventClass(rawValue: name) else {
                            throw Problem(
                                file: file, key: "policy.must_keep.classes",
                                reason: "'\(name)' is not an event class (\(EventClass.allCases.map(\.rawValue).joined(separator: ", ")))")
                        }
                        classes.append(eventClass)
                    }
                    configuration.policy.keepAlways(classes)
                }
                if let tags = try strings(mustKeep, "tags", "policy.must_keep.tags") { configuration.policy.mustKeepTags = Set(tags) }
                if let programs = try strings(mustKeep, "executables", "policy.must_keep.executables") {
                    configuration.policy.mustKeepExecutables = Set(programs)
                }
            }
            if let profiles = try submap(policy, "profiles", "policy.profiles") {
                for (name, value) in profiles {
                    let path = "policy.profiles.\(name)"
                    guard let definition = value as? [String: Any] else { throw Problem(file: file, key: path, reason: "expected a mapping") }
                    try unknown(definition, ["rules", "process_events", "classes"], prefix: path + ".")
                    var profile = Profile(name: name, builtinRules: "pet")
                    if let rules = definition["rules"] {
                        if let builtin = rules as? String {
                            guard builtin == "pet" || builtin == "cattle" else {
                                throw Problem(file: file, key: path + ".rules", reason: "'\(builtin)' is not a built-in rule set (pet, cattle); give a list of files instead")
                            }
                            profile.builtinRules = builtin
                        } else {
                            profile.ruleFiles = try strings(definition, "rules", path + ".rules")
                        }
                    }
                    profile.processEvents = try string(definition, "process_events", path + ".process_events", allowed: ["none", "exits", "all"])
                    if let classes = try submap(definition, "classes", path + ".classes") {
                        for (className, treatment) in classes {
                            guard let eventClass = EventClass(rawValue: className) else {
                                throw Problem(
                                    file: file, key: path + ".classes." + className,
                                    reason: "not an event class (\(EventClass.allCases.map(\.rawValue).joined(separator: ", ")))")
                            }
                            // YAML reads a bare `off` as false.
                            guard let text = treatment as? String ?? ((treatment as? Bool) == false ? "off" : nil) else {
                                throw Problem(file: file, key: path + ".classes." + className, reason: "expected full, sample(RATE), aggregate(INTERVAL) or off")
                            }
                            do {
                                profile.treatments[eventClass] = try Treatment(parsing: text)
                            } catch {
                                throw Problem(file: file, key: path + ".classes." + className, reason: error.description)
                            }
                        }
                    }
                    configuration.policy.profiles[name] = profile
                }
            }
        }
        do {
            try configuration.policy.validate()
        } catch {
            throw Problem(file: file, key: "profile", reason: error.description)
        }
        if let processes = try map("processes") {
            try unknown(processes, ["track", "events"], prefix: "processes.")
            if let track = try bool(processes, "track", "processes.track") { configuration.tracksProcesses = track }
            if let events = try string(processes, "events", "processes.events", allowed: ["none", "exits", "all"]) {
                configuration.processEvents = events
            }
        }
        return configuration
    }
}
