import ArgumentParser
import HerdwatchCollectors

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
        version: "0.1.0",
        subcommands: [RunCommand.self, RulesCommand.self, ConfigCommand.self],
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
