import ArgumentParser
import Foundation
import HerdwatchDetection
import HerdwatchPipeline
import Logging

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Check Sigma rules and try them on events.",
        subcommands: [RulesCheckCommand.self, RulesTestCommand.self]
    )
}

/// Loads rules from paths (`builtin` is the pack shipped with herdwatch).
enum RuleLoading {
    static func load(_ paths: [String]) -> SigmaLoader.Result {
        var result = SigmaLoader.Result()
        for path in paths {
            result.append(path == "builtin" ? BuiltinRules.load() : SigmaLoader.load(path: path))
        }
        return result.resolvingCorrelations()
    }

    /// The rule set, or exit status 1 with every error printed.
    static func ruleSet(_ paths: [String], strict: Bool) throws -> RuleSet {
        let loaded = load(paths)
        for error in loaded.errors { writeStandardError("herdwatch: rule not loaded: \(error)\n") }
        if strict && !loaded.errors.isEmpty { throw ExitCode(1) }
        do {
            return try RuleSet(rules: loaded.rules, correlations: loaded.correlations)
        } catch {
            writeStandardError("herdwatch: \(error)\n")
            throw ExitCode(1)
        }
    }
}

struct RulesCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Load every rule and report which run here and why the others cannot.",
        discussion: """
            Prints one line per rule: 'loaded', 'loaded (warning: ...)' when the rule runs but no herdwatch \
            collector produces its logsource yet, or 'unsupported' with the file, line and reason (an \
            unknown modifier, an unmapped field, a logsource herdwatch has no events for, a YAML error). \
            Then a summary. 'builtin' names the rule pack shipped with herdwatch.

            Exit status: 0 when every rule loads, 1 when any does not.
            """
    )

    @Argument(help: "Rule files or directories (searched for .yml and .yaml), or 'builtin'.")
    var paths: [String]

    @Flag(help: "Print only unsupported rules and the summary.")
    var quiet = false

    @Flag(help: "Print the report as JSON lines.")
    var json = false

    @Flag(help: "Also print how rules are routed: per logsource, rules found through an index and rules every event meets.")
    var routing = false

    func run() throws {
        let loaded = RuleLoading.load(paths)
        var lines: [String] = []
        for rule in loaded.rules where !quiet {
            if json {
                lines.append(Self.jsonLine(["status": "loaded", "file": rule.file, "id": rule.id, "title": rule.title, "warning": rule.warning]))
            } else {
                lines.append("loaded       \(rule.file) (\(rule.title))" + (rule.warning.map { " warning: \($0)" } ?? ""))
            }
        }
        for correlation in loaded.correlations where !quiet {
            if json {
                lines.append(Self.jsonLine(["status": "loaded", "file": correlation.file, "id": correlation.id, "title": correlation.title, "correlation": correlation.kind.rawValue]))
            } else {
                lines.append("loaded       \(correlation.file) (\(correlation.title)) correlation \(correlation.kind.rawValue)")
            }
        }
        var errors = loaded.errors
        var unusable = 0
        do {
            let set = try RuleSet(rules: loaded.rules, correlations: loaded.correlations)
            if routing {
                for (name, indexed, always) in set.routing { lines.append("routing      \(name): \(indexed) indexed, \(always) always evaluated") }
            }
        } catch let error as RuleError {
            // A correlation whose rules are missing: listed as loaded above, it cannot run.
            errors.append(error)
            unusable += 1
        }
        for error in errors {
            if json {
                lines.append(Self.jsonLine(["status": "unsupported", "file": error.file, "line": error.line.map(String.init), "title": error.rule, "reason": error.reason]))
            } else {
                lines.append("unsupported  \(error)")
            }
        }
        let total = loaded.rules.count + loaded.correlations.count + errors.count - unusable
        let runnable = loaded.rules.count + loaded.correlations.count - unusable
        let warned = loaded.rules.filter { $0.warning != nil }.count
        let percent = total == 0 ? 100 : Double(runnable) * 100 / Double(total)
        let summary = "\(runnable) of \(total) rules load (\(String(format: "%.1f", percent))%), \(warned) of them with a warning; \(errors.count) unsupported; \(loaded.files) files"
        if json {
            lines.append(Self.jsonLine(["summary": summary]))
        } else {
            lines.append(summary)
        }
        print(lines.joined(separator: "\n"))
        if !errors.isEmpty { throw ExitCode(1) }
    }

    static func jsonLine(_ fields: [String: String?]) -> String {
        let present = fields.compactMapValues { $0 }
        let data = (try? JSONSerialization.data(withJSONObject: present, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

struct RulesTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run rules over events and print the alerts.",
        discussion: """
            Events are ECS JSON lines (what the agent, `herdwatch replay` or the server's store hold) or, \
            with --audit-log, raw audit logs replayed through the pipeline. Prints one alert per line \
            as JSON and a summary of how many events each rule matched on standard error.

            Exit status: 0 when some rule matched, 3 when none did, 1 when a rule did not load.
            """
    )

    @Argument(help: "Rule files or directories, or 'builtin'.")
    var rules: [String]

    @Option(help: "ECS JSON lines to test against ('-' for standard input).")
    var events: String?

    @Option(help: "A raw audit log to replay and test against.")
    var auditLog: String?

    @Option(help: "Host name for audit records without node=.")
    var hostName: String?

    func validate() throws {
        guard (events == nil) != (auditLog == nil) else { throw ValidationError("give --events or --audit-log") }
    }

    func run() throws {
        var detector = Detector(ruleSet: try RuleLoading.ruleSet(rules, strict: true))
        var counts: [String: Int] = [:]
        var events = 0
        var malformed = 0
        func report(_ alerts: [Alert]) {
            for alert in alerts {
                print(alert.json())
                counts[alert.ruleTitle, default: 0] += 1
            }
        }
        if let path = self.events {
            let text: String
            if path == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                guard let read = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw ValidationError("cannot read \(path)")
                }
                text = read
            }
            for (index, line) in text.split(separator: "\n").enumerated() {
                guard let subject = JSONSubject(json: line) else {
                    writeStandardError("herdwatch: \(path):\(index + 1): not a JSON object; skipped\n")
                    malformed += 1
                    continue
                }
                events += 1
                report(detector.process(subject))
            }
        } else if let auditLog {
            var logger = Logger(label: "herdwatch.rules")
            logger.logLevel = .warning
            var configuration = Replay.Configuration()
            configuration.hostName = hostName
            let replay = Replay(configuration: configuration, logger: logger)
            _ = try replay.run(inputs: [auditLog], output: nil) { event in
                events += 1
                report(detector.process(event))
            }
        }
        let summary = counts.sorted { $0.key < $1.key }.map { "  \($0.value)\t\($0.key)" }.joined(separator: "\n")
        writeStandardError("herdwatch rules test: \(events) events, \(counts.values.reduce(0, +)) alerts\(malformed > 0 ? ", \(malformed) malformed lines" : "")\n\(summary)\(summary.isEmpty ? "" : "\n")")
        if counts.isEmpty { throw ExitCode(3) }
    }
}
