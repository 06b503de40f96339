import Yams

/// The agent's configuration file (YAML). Every key is optional; the defaults are what
/// `herdwatch-agent config` prints. Command-line options override the file.
struct AgentConfiguration: Equatable {
    var output = "-"
    var hostName: String?
    var auditMode = "auto"
    var profile = "pet"
    var ruleFiles: [String] = []
    var backlogLimit: UInt32 = 8192
    var eventTimeoutMilliseconds: Int64 = 2000
    var keepRulesOnStop = false
    var tracksProcesses = true
    var processEvents = "exits"
    /// nil: /var/log/auth.log when it exists; "none": off.
    var authLog: String?
    var heartbeatSeconds: Double = 60
    /// Where state that outlives a restart is kept (the process table).
    var stateDirectory = "/var/lib/herdwatch"

    static let defaultText = """
        # herdwatch-agent configuration (YAML). Every key is optional; these are the defaults.
        output: "-"                 # events as ECS JSON lines: "-" (standard output) or a file
        # host_name: web1           # host.name; default: this host's name
        audit:
          mode: auto                # auto (multicast beside a running auditd, else unicast) | unicast | multicast
          profile: pet              # built-in rules when no rule files are given: pet | cattle
          rules: []                 # rule files in auditctl syntax; replace the profile's rules
          backlog_limit: 8192       # kernel queue length while the agent owns the audit socket
          event_timeout_ms: 2000    # how long an event waits for its last record
          keep_rules_on_stop: false # leave the rules loaded when the agent stops
        processes:
          track: true               # process table: entity ids, parents, ancestry, container ids
          events: exits             # proc-connector events emitted: none | exits | all
        # auth_log: /var/log/auth.log   # sshd/sudo/su messages: a file, "journal" or "none"; default: that file if it exists, else the journal
        heartbeat_seconds: 60       # agent-heartbeat events; 0 for none
        state_dir: /var/lib/herdwatch   # process table kept across restarts (entity ids stay the same)
        """

    struct Problem: Error, CustomStringConvertible {
        var file: String
        var key: String
        var reason: String
        var description: String { "\(file): \(key.isEmpty ? "" : "key '\(key)': ")\(reason)" }
    }

    /// Reads a configuration file; unknown keys and wrong types are errors naming the key.
    static func load(text: String, file: String) throws -> AgentConfiguration {
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
        func map(_ key: String) throws -> [String: Any]? {
            guard let value = top[key] else { return nil }
            guard let map = value as? [String: Any] else { throw Problem(file: file, key: key, reason: "expected a mapping") }
            return map
        }

        try unknown(top, ["output", "host_name", "audit", "processes", "auth_log", "heartbeat_seconds", "state_dir"], prefix: "")
        if let directory = try string(top, "state_dir", "state_dir") { configuration.stateDirectory = directory }
        if let output = try string(top, "output", "output") { configuration.output = output }
        configuration.hostName = try string(top, "host_name", "host_name")
        configuration.authLog = try string(top, "auth_log", "auth_log")
        if let seconds = try number(top, "heartbeat_seconds", "heartbeat_seconds") { configuration.heartbeatSeconds = seconds }
        if let audit = try map("audit") {
            try unknown(audit, ["mode", "profile", "rules", "backlog_limit", "event_timeout_ms", "keep_rules_on_stop"], prefix: "audit.")
            if let mode = try string(audit, "mode", "audit.mode", allowed: ["auto", "unicast", "multicast"]) {
                configuration.auditMode = mode
            }
            if let profile = try string(audit, "profile", "audit.profile", allowed: ["pet", "cattle"]) {
                configuration.profile = profile
            }
            if let rules = audit["rules"] {
                guard let list = rules as? [Any], let files = list as? [String] else {
                    throw Problem(file: file, key: "audit.rules", reason: "expected a list of file paths")
                }
                configuration.ruleFiles = files
            }
            if let limit = try number(audit, "backlog_limit", "audit.backlog_limit") {
                guard limit <= Double(UInt32.max) else { throw Problem(file: file, key: "audit.backlog_limit", reason: "too large") }
                configuration.backlogLimit = UInt32(limit)
            }
            if let timeout = try number(audit, "event_timeout_ms", "audit.event_timeout_ms") {
                configuration.eventTimeoutMilliseconds = Int64(timeout)
            }
            if let keep = try bool(audit, "keep_rules_on_stop", "audit.keep_rules_on_stop") { configuration.keepRulesOnStop = keep }
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
