import ArgumentParser
import HerdwatchEvents

@main
struct Herdwatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herdwatch",
        abstract: "Security monitoring for Linux fleets: collect, decide, ship, detect.",
        version: HerdwatchVersion.string,
        subcommands: [RunCommand.self, ReplayCommand.self, ServerCommand.self, ImportCommand.self, QueryCommand.self, HuntCommand.self, RulesCommand.self, PasswdCommand.self]
    )
}

