import ArgumentParser

@main
struct Agent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herdwatch-agent",
        abstract: "The Herdwatch host agent: collects security events on this host.",
        discussion: """
            The agent links only the collection stages (no web or database code). Today it reads audit \
            records from a stream — for example as an auditd dispatcher plugin — and writes ECS JSON lines.
            """,
        version: "0.1.0",
        subcommands: [RunCommand.self]
    )
}
