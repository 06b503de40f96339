import ArgumentParser
import HerdwatchEvents
import Foundation
import HerdwatchAgent
import HerdwatchCollectors
import HerdwatchPolicy

@main
struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herdwatch-agent",
        abstract: "The Herdwatch host agent: collects security events on this host.",
        discussion: """
            The agent links only the collection stages (no web or database code). `run` collects from \
            the kernel's audit subsystem (or a stream of audit records), the proc connector and the auth \
            log, and writes ECS JSON lines.
            """,
        version: HerdwatchVersion.string,
        subcommands: [RunCommand.self, LevelCommand.self, StatsCommand.self, RulesCommand.self, ConfigCommand.self],
        defaultSubcommand: nil
    )
}

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Print a built-in rule set, or check rule files without loading them.",
        discussion: "Exit status: 0, or 1 when a checked file has lines that would be skipped (each is listed with file, line and reason)."
    )

    @Option(help: "Built-in rule set to print: pet or cattle.")
    var profile: String = "pet"

    @Option(name: .customLong("check"), help: "Rule file to check (repeatable).")
    var files: [String] = []

    func run() throws {
        guard !files.isEmpty else {
            guard let text = DefaultRules.named(profile) else { throw ValidationError("--profile must be pet or cattle") }
            print(text)
            return
        }
        var failed = false
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                print("\(file): cannot read")
                failed = true
                continue
            }
            let (lines, errors) = AuditRuleParser().parse(text, source: file)
            for error in errors { print(error) }
            print("\(file): \(lines.count) lines load, \(errors.count) skipped")
            failed = failed || !errors.isEmpty
        }
        if failed { throw ExitCode.failure }
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the default configuration file, or check one.",
        discussion: "Exit status: 0, or 1 when the checked file has an error (named with its key)."
    )

    @Option(name: .customLong("check"), help: "Configuration file to check.")
    var file: String?

    func run() throws {
        guard let file else {
            print(AgentConfiguration.defaultText)
            return
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        do {
            _ = try AgentConfiguration.load(text: text, file: file)
            print("\(file): ok")
        } catch {
            print(error)
            throw ExitCode.failure
        }
    }
}

/// Where a running agent listens: the state directory from the option, else the configuration
/// file's, else the default.
struct ControlLocation: ParsableArguments {
    @Option(name: .shortAndLong, help: "The agent's configuration file (for its state directory).")
    var config: String?

    @Option(help: "The running agent's state directory (default /var/lib/herdwatch).")
    var stateDir: String?

    func request(_ line: String) throws -> [String: Any] {
        var directory = stateDir
        if directory == nil, let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw ValidationError("cannot read \(config)") }
            directory = try AgentConfiguration.load(text: text, file: config).stateDirectory
        }
        let reply = try ControlServer.request(line, path: (directory ?? AgentConfiguration().stateDirectory) + "/control.sock")
        guard let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any] else {
            throw ControlError("unreadable reply: \(reply)")
        }
        if let error = object["error"] as? String { throw ControlError(error) }
        return object
    }
}

struct LevelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "level",
        abstract: "Show or change the running agent's monitoring level.",
        discussion: """
            Without a level, prints the level in force. With one, the agent switches within one poll \
            interval (its rules included) before this command returns, records a \
            monitoring-level-changed event, and with --for falls back to its configured level when the \
            time is up (also recorded). The level survives an agent restart until it expires.

            Examples: `herdwatch-agent level pet --for 30m`, `herdwatch-agent level cattle` (back to \
            cattle, no expiry).
            """
    )

    @Argument(help: "pet, cattle or a profile of the agent's configuration.")
    var level: String?

    @Option(name: .customLong("for"), help: "How long: 90s, 30m, 2h, 1d; default until changed again.")
    var duration: String?

    @Flag(help: "Print the agent's JSON reply.")
    var json = false

    @OptionGroup var location: ControlLocation

    func validate() throws {
        if let duration {
            guard level != nil else { throw ValidationError("--for needs a level") }
            guard let milliseconds = PolicyDuration.milliseconds(duration), milliseconds > 0 else {
                throw ValidationError("--for: '\(duration)' is not a duration (90s, 30m, 2h, 1d)")
            }
        }
    }

    func run() throws {
        var request = "level"
        if let level {
            let seconds = duration.flatMap(PolicyDuration.milliseconds).map { String(Double($0) / 1000) } ?? "-"
            request += " \(level) \(seconds)"
        }
        let reply = try location.request(request)
        if json {
            let data = try JSONSerialization.data(withJSONObject: reply, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        var line = "level \(reply["level"] ?? "?")"
        if let previous = reply["previous"] as? String { line = "level \(previous) -> \(reply["level"] ?? "?")" }
        if let expires = reply["expires_at"] as? String { line += " until \(expires)" }
        line += " (configured: \(reply["base"] ?? "?"))"
        print(line)
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "What the running agent's telemetry costs, by level and event class, and each sink's lag.",
        discussion: """
            Events and bytes before the policy (produced) and after it (sent), for the last complete \
            minute and since the agent started; the spool's undelivered events, bytes and the age of \
            the oldest, per sink.
            """
    )

    @Flag(help: "Print the agent's JSON reply.")
    var json = false

    @OptionGroup var location: ControlLocation

    func run() throws {
        let reply = try location.request("stats")
        if json {
            let data = try JSONSerialization.data(withJSONObject: reply, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("host \(reply["host"] ?? "?")  level \(reply["level"] ?? "?") (configured \(reply["base"] ?? "?"))  up \(Int(reply["uptime_seconds"] as? Double ?? 0)) s")
        let cost = reply["cost"] as? [String: Any] ?? [:]
        for (title, key) in [("last minute", "last_minute"), ("this minute", "current_minute"), ("since start", "total")] {
            guard let table = cost[key] as? [String: [String: [String: Int]]] else { continue }
            print("\ncost, \(title):")
            print(Self.row(["level", "class", "events in", "events out", "bytes in", "bytes out", "sent"]))
            for (profile, classes) in table.sorted(by: { $0.key < $1.key }) {
                for (eventClass, counts) in classes.sorted(by: { $0.key < $1.key }) {
                    let before = counts["bytes_before"] ?? 0
                    let after = counts["bytes_after"] ?? 0
                    let share = before > 0 ? "\(Int((Double(after) / Double(before) * 100).rounded()))%" : "-"
                    print(
                        Self.row([
                            profile, eventClass, "\(counts["events_before"] ?? 0)", "\(counts["events_after"] ?? 0)",
                            Self.size(before), Self.size(after), share,
                        ]))
                }
            }
        }
        print("\nsinks:")
        for (name, value) in (reply["sinks"] as? [String: [String: Any]] ?? [:]).sorted(by: { $0.key < $1.key }) {
            var line = "  \(name): lag \(value["lag_events"] ?? 0) events, \(Self.size(value["lag_bytes"] as? Int ?? 0))"
            if let age = value["oldest_age_seconds"] as? Double { line += ", oldest \(String(format: "%.1f", age)) s" }
            if let error = value["error"] { line += " (\(error))" }
            print(line)
        }
    }

    static func row(_ cells: [String]) -> String {
        let widths = [8, 12, 10, 11, 10, 10, 6]
        return "  " + zip(cells, widths).enumerated().map { index, pair in
            let (cell, width) = pair
            let pad = String(repeating: " ", count: max(0, width - cell.count))
            return index < 2 ? cell + pad : pad + cell
        }.joined(separator: " ")
    }

    static func size(_ bytes: Int) -> String {
        if bytes >= 10 << 20 { return "\(bytes >> 20) MiB" }
        if bytes >= 10 << 10 { return "\(bytes >> 10) KiB" }
        return "\(bytes) B"
    }
}
