import ArgumentParser
import Foundation
import HerdwatchStore

struct HuntCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hunt",
        abstract: "Saved hunts: named read-only queries over the fleet, listed, saved, run and deleted.",
        discussion: """
            A new store starts with hunts for the usual first questions (host-timeline, \
            programs-across-fleet, rare-parent-child, outbound-destinations, logins-by-user, \
            recent-alerts). A hunt's query is checked like any `herdwatch query` when it is saved.
            """,
        subcommands: [List.self, Save.self, Run.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the saved hunts.")
        @OptionGroup var store: StoreLocation

        func run() async throws {
            for hunt in try await store.open(mustExist: true).hunts() {
                print("\(hunt.name)\(hunt.hosts.map { " [hosts: \($0)]" } ?? "")")
                if let description = hunt.description { print("    \(description)") }
                print("    \(hunt.sql)")
            }
        }
    }

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Save (or replace) a hunt.")
        @Argument(help: "Name: letters, digits, '-' and '_'.") var name: String
        @Argument(help: "One SELECT statement over the views.") var sql: String
        @Option(help: "What the hunt looks for.") var description: String?
        @Option(help: "Hosts it sees by default: all, names or tags separated by commas.") var hosts: String?
        @OptionGroup var store: StoreLocation

        func run() async throws {
            do {
                try await store.open().save(Hunt(name: name, sql: sql, description: description, hosts: hosts))
            } catch let error as QueryError {
                FileHandle.standardError.write(Data("hunt not saved: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a saved hunt (options as for `herdwatch query`).")
        @Argument(help: "The hunt's name.") var name: String
        @Option(help: "Hosts it sees (default: the hunt's own, else all).") var hosts: String?
        @Option(help: "Only events at or after this time: ISO 8601 or relative (-1h).") var since: String?
        @Option(help: "Only events before this time.") var until: String?
        @Option(help: "Rows at most.") var limit: Int = 1000
        @Option(help: "Seconds before the query is stopped.") var timeout: Double = 10
        @Option(help: "table, json or csv.") var format: String = "table"
        @OptionGroup var store: StoreLocation

        func run() async throws {
            guard let hunt = try await store.open(mustExist: true).hunt(named: name) else {
                FileHandle.standardError.write(Data("no hunt named '\(name)' (herdwatch hunt list)\n".utf8))
                throw ExitCode.failure
            }
            var query = try QueryCommand.parse([hunt.sql, "--db", store.db, "--limit", "\(limit)", "--timeout", "\(timeout)", "--format", format])
            query.hosts = hosts ?? hunt.hosts ?? "all"
            query.since = since
            query.until = until
            try query.validate()
            try await query.run()
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a saved hunt.")
        @Argument(help: "The hunt's name.") var name: String
        @OptionGroup var store: StoreLocation

        func run() async throws {
            guard try await store.open(mustExist: true).deleteHunt(named: name) else {
                FileHandle.standardError.write(Data("no hunt named '\(name)'\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}
