import Foundation
import HerdwatchDetection
import HerdwatchStore
import Yams

/// What the server does about an alert, from the response policies file (YAML):
///
///     policies:
///       - name: contain-reverse-shells
///         match:
///           rules: [0efa0a24-b198-439f-941d-6a0325bd622b, "*Reverse Shell*"]  # ids or titles, * wildcards; any of
///           level: high                 # at least: informational, low, medium, high, critical
///           tags: [attack.execution]    # any of
///           hosts: role=web,env=prod    # a host selector, as --hosts takes it; default all
///         actions:
///           - notify: {kind: webhook, url: "https://hooks.example/herdwatch"}
///           - raise: {level: pet, for: 15m}    # the host's monitoring level, for a while
///           - kill: {}                         # the alert's process, by entity id
///           - block: {for: 10m}                # the alert's remote address (destination)
///           - isolate: {for: 1h}               # only the herdwatch server stays reachable
///           - bounce: {command: /usr/local/bin/replace-instance, timeout: 5m}
///         rate_limit: {max: 10, per: 10m}      # per host; later matches are recorded as rate-limited
///         dry_run: false                       # record what would be done, do nothing
///
/// Every policy whose match holds runs; each action's decision and outcome is recorded (the
/// `responses` view).
public struct ResponsePolicy: Sendable {
    public struct Match: Sendable {
        /// Rule ids or titles, with `*` wildcards; empty: any rule.
        public var rules: [String] = []
        public var minimumLevel: RuleLevel = .informational
        /// Any of these tags; empty: any.
        public var tags: [String] = []
        public var hosts: HostScope = .all
    }

    public enum Action: Sendable {
        case notify(NotifyTarget)
        case raise(level: String, seconds: Int)
        case kill
        case block(seconds: Int)
        case isolate(seconds: Int?)
        case bounce(command: String, timeoutSeconds: Int)

        /// The name recorded in `responses.action`.
        public var name: String {
            switch self {
            case .notify: "notify"
            case .raise: "raise-level"
            case .kill: "kill"
            case .block: "block"
            case .isolate: "isolate"
            case .bounce: "bounce"
            }
        }
    }

    public var name: String
    public var match = Match()
    public var actions: [Action] = []
    public var rateLimit = (maximum: 10, seconds: 600)
    public var dryRun = false

    public init(name: String) { self.name = name }

    /// Whether an alert on a host with these tags (stored text, `env=prod,role=web`) is for this policy.
    public func matches(_ alert: Alert, hostTags: String?) -> Bool {
        guard alert.level >= match.minimumLevel else { return false }
        if !match.rules.isEmpty,
            !match.rules.contains(where: { Self.glob($0, alert.ruleID) || Self.glob($0, alert.ruleTitle) })
        {
            return false
        }
        if !match.tags.isEmpty, !alert.tags.contains(where: match.tags.contains) { return false }
        return match.hosts.contains(name: alert.host ?? "", tagText: hostTags)
    }

    /// `*` matches any run of characters; case-insensitive, as titles are written by people.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let pattern = Array(pattern.lowercased())
        let text = Array(text.lowercased())
        var (p, t, star, mark) = (0, 0, -1, 0)
        while t < text.count {
            if p < pattern.count && pattern[p] != "*" && pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == "*" {
                (star, mark) = (p, t)
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}

/// The response policies file; errors name the file, the policy and the key.
public struct ResponseConfiguration: Sendable {
    public var policies: [ResponsePolicy]

    public init(policies: [ResponsePolicy]) { self.policies = policies }

    public struct Problem: Error, CustomStringConvertible {
        public var file: String
        public var location: String
        public var reason: String
        public var description: String { "\(file): \(location.isEmpty ? "" : "\(location): ")\(reason)" }
    }

    /// What `herdwatch run` responds with unless told otherwise: medium alerts and above are
    /// written to `notifications` (a JSON line each; `-` for standard output) and raise the host
    /// to the full `pet` level for 15 minutes.
    public static func allInOneDefault(notifications: String) -> ResponseConfiguration {
        var policy = ResponsePolicy(name: "notify-and-raise")
        policy.match.minimumLevel = .medium
        policy.actions = [.notify(NotifyTarget(.file(path: notifications))), .raise(level: "pet", seconds: 900)]
        return ResponseConfiguration(policies: [policy])
    }

    public static func load(text: String, file: String) throws -> ResponseConfiguration {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw Problem(file: file, location: "", reason: "not valid YAML: \(error)")
        }
        guard let top = root as? [String: Any], let list = top["policies"] as? [Any] else {
            throw Problem(file: file, location: "", reason: "expected a mapping with a 'policies' list")
        }
        if let key = top.keys.first(where: { $0 != "policies" }) { throw Problem(file: file, location: key, reason: "unknown key") }
        var policies: [ResponsePolicy] = []
        for (index, item) in list.enumerated() {
            guard let map = item as? [String: Any] else {
                throw Problem(file: file, location: "policies[\(index)]", reason: "expected a mapping")
            }
            let policy = try parsePolicy(map, file: file, location: "policies[\(index)]")
            if policies.contains(where: { $0.name == policy.name }) {
                throw Problem(file: file, location: "policies[\(index)]", reason: "a second policy named '\(policy.name)'")
            }
            policies.append(policy)
        }
        return ResponseConfiguration(policies: policies)
    }

    static func parsePolicy(_ map: [String: Any], file: String, location: String) throws -> ResponsePolicy {
        func problem(_ key: String, _ reason: String) -> Problem { Problem(file: file, location: "\(location).\(key)", reason: reason) }
        let known: Set = ["name", "match", "actions", "rate_limit", "dry_run"]
        if let key = map.keys.sorted().first(where: { !known.contains($0) }) {
            throw problem(key, "unknown key (known: \(known.sorted().joined(separator: ", ")))")
        }
        guard let name = map["name"] as? String, !name.isEmpty else { throw problem("name", "required") }
        let location = "\(location) (\(name))"
        func problemIn(_ key: String, _ reason: String) -> Problem { Problem(file: file, location: "\(location).\(key)", reason: reason) }
        var policy = ResponsePolicy(name: name)
        if let match = map["match"] {
            guard let match = match as? [String: Any] else { throw problemIn("match", "expected a mapping") }
            let knownMatch: Set = ["rules", "level", "tags", "hosts"]
            if let key = match.keys.sorted().first(where: { !knownMatch.contains($0) }) {
                throw problemIn("match.\(key)", "unknown key (known: \(knownMatch.sorted().joined(separator: ", ")))")
            }
            policy.match.rules = try strings(match["rules"], "match.rules")
            policy.match.tags = try strings(match["tags"], "match.tags")
            if let level = match["level"] {
                guard let text = level as? String, let parsed = RuleLevel(rawValue: text) else {
                    throw problemIn("match.level", "expected informational, low, medium, high or critical")
                }
                policy.match.minimumLevel = parsed
            }
            if let hosts = match["hosts"] {
                guard let text = hosts as? String else { throw problemIn("match.hosts", "expected a host selector (all, names, key=value)") }
                policy.match.hosts = HostScope(parsing: text)
            }
        }
        guard let actions = map["actions"] as? [Any], !actions.isEmpty else { throw problemIn("actions", "expected a list of one or more actions") }
        for (index, item) in actions.enumerated() {
            let key = "actions[\(index)]"
            guard let entry = item as? [String: Any], entry.count == 1, let (kind, value) = entry.first else {
                throw problemIn(key, "expected one action: notify, raise, kill, block, isolate or bounce")
            }
            let options: [String: String]
            if value is NSNull {
                options = [:]
            } else if let dictionary = value as? [String: Any] {
                var texts: [String: String] = [:]
                for (name, option) in dictionary {
                    if let option = option as? [String: Any] {
                        // Nested maps (webhook headers): `header.NAME`.
                        for (inner, text) in option { texts["\(name).\(inner)"] = "\(text)" }
                    } else {
                        texts[name] = "\(option)"
                    }
                }
                options = texts
            } else {
                throw problemIn("\(key).\(kind)", "expected a mapping of options")
            }
            func duration(_ name: String, default fallback: Int?) throws -> Int? {
                guard let text = options[name] else { return fallback }
                guard let seconds = Self.seconds(text), seconds > 0 else {
                    throw problemIn("\(key).\(kind).\(name)", "'\(text)' is not a duration (90, 30s, 15m, 2h)")
                }
                return seconds
            }
            func only(_ allowed: Set<String>) throws {
                if let bad = options.keys.sorted().first(where: { !allowed.contains($0) }) {
                    throw problemIn("\(key).\(kind).\(bad)", "unknown option (known: \(allowed.sorted().joined(separator: ", ")))")
                }
            }
            switch kind {
            case "notify":
                var options = options
                let target = options.removeValue(forKey: "kind") ?? "file"
                do {
                    policy.actions.append(.notify(try NotifyTarget(kind: target, options: options)))
                } catch {
                    throw problemIn("\(key).notify", "\(error)")
                }
            case "raise":
                try only(["level", "for"])
                policy.actions.append(.raise(level: options["level"] ?? "pet", seconds: try duration("for", default: 900)!))
            case "kill":
                try only([])
                policy.actions.append(.kill)
            case "block":
                try only(["for"])
                policy.actions.append(.block(seconds: try duration("for", default: 600)!))
            case "isolate":
                try only(["for"])
                policy.actions.append(.isolate(seconds: try duration("for", default: nil)))
            case "bounce":
                try only(["command", "timeout"])
                guard let command = options["command"], command.hasPrefix("/") else {
                    throw problemIn("\(key).bounce.command", "required: the absolute path of the program to run")
                }
                policy.actions.append(.bounce(command: command, timeoutSeconds: try duration("timeout", default: 300)!))
            default:
                throw problemIn(key, "'\(kind)' is not an action (notify, raise, kill, block, isolate, bounce)")
            }
        }
        if let limit = map["rate_limit"] {
            guard let limit = limit as? [String: Any], let maximum = limit["max"] as? Int, maximum > 0 else {
                throw problemIn("rate_limit", "expected {max: N, per: DURATION}")
            }
            guard let per = limit["per"].map({ "\($0)" }).flatMap(Self.seconds), per > 0 else {
                throw problemIn("rate_limit.per", "expected a duration (30s, 10m, 1h)")
            }
            policy.rateLimit = (maximum, per)
        }
        if let dryRun = map["dry_run"] {
            guard let flag = dryRun as? Bool else { throw problemIn("dry_run", "expected true or false") }
            policy.dryRun = flag
        }
        return policy

        func strings(_ value: Any?, _ key: String) throws -> [String] {
            guard let value else { return [] }
            if let text = value as? String { return [text] }
            guard let list = value as? [Any], let texts = list as? [String] else { throw problemIn(key, "expected a list of text") }
            return texts
        }
    }

    /// `90`, `90s`, `15m`, `2h`, `1d` → seconds.
    static func seconds(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last, let scale = units[unit], let value = Int(text.dropLast()) { return value * scale }
        return Int(text)
    }
}
