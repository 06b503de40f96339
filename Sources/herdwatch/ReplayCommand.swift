import ArgumentParser
import HerdwatchDetection
import HerdwatchEvents
import HerdwatchPipeline
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run existing audit logs through the Herdwatch pipeline and print ECS JSON events.",
        discussion: """
            Reads auditd logs (RAW or ENRICHED format, plain or gzip, '-' for standard input), assembles \
            records into events exactly as the live agent does, and writes one ECS JSON object per line. \
            Inputs are read in order as one stream, so rotated logs can be given oldest first.

            A summary goes to standard error: records, events, malformed lines (each reported with file, \
            line and reason), and events completed by timeout or flushed early to bound memory.

            With --rules, Sigma rules run over the events as the server runs them, and alerts are \
            printed as JSON lines (to --alerts, standard output by default); events are then written \
            only when --output is given.

            Exit status: 0 on success, 1 when an input could not be read, 2 on usage errors.
            """
    )

    @Argument(help: "Audit log files to read; '-' reads standard input.")
    var inputs: [String] = []

    @Option(name: .shortAndLong, help: "Write events to this file instead of standard output.")
    var output: String?

    @Option(help: "Sigma rules (a file, a directory, or 'builtin') to run over the events; repeatable.")
    var rules: [String] = []

    @Option(help: "Where alerts go with --rules ('-' is standard output).")
    var alerts: String = "-"

    @Option(help: "Output format: 'ecs' (JSON lines) or 'none' (parse and assemble only).")
    var format: String = "ecs"

    @Flag(help: "Leave the raw records out of the events (auditd.records).")
    var noRaw = false

    @Option(help: "Host name for records without a node= prefix.")
    var hostName: String?

    @Option(help: """
        Complete an event once the log's time is this many milliseconds past it. Default: no time \
        limit; events end with their last record (PROCTITLE), when the in-flight window is full, or \
        at the end of the input.
        """)
    var eventTimeout: Int64?

    @Option(help: "Most events kept waiting at once; beyond it the oldest is flushed early.")
    var maxInFlight: Int = 8192

    @Flag(help: "Also print the summary as one JSON line on standard error.")
    var summaryJson = false

    @Flag(name: .shortAndLong, help: "Print only errors on standard error.")
    var quiet = false

    func validate() throws {
        guard Replay.Format(rawValue: format) != nil else {
            throw ValidationError("--format must be one of: ecs, none")
        }
        if let eventTimeout, eventTimeout < 0 { throw ValidationError("--event-timeout must not be negative") }
        guard maxInFlight > 0 else { throw ValidationError("--max-in-flight must be positive") }
    }

    func run() throws {
        var logger = Logger(label: "herdwatch.replay")
        logger.logLevel = quiet ? .error : .info
        var configuration = Replay.Configuration()
        configuration.format = Replay.Format(rawValue: format) ?? .ecs
        configuration.includeRawRecords = !noRaw
        configuration.hostName = hostName
        configuration.assembler.timeoutMilliseconds = eventTimeout
        configuration.assembler.maximumInFlightEvents = maxInFlight
        configuration.showsProgress = !quiet

        let eventsPath = output ?? (rules.isEmpty ? "-" : nil)
        let sink: OutputFile? = configuration.format == .none ? nil : try eventsPath.map { try OutputFile(path: $0) }
        let replay = Replay(configuration: configuration, logger: logger)
        var observe: ((Event) throws -> Void)?
        var alertCount = 0
        var detector: Detector?
        var detectionNanoseconds: UInt64 = 0
        let alertOutput = rules.isEmpty ? nil : try OutputFile(path: alerts)
        if !rules.isEmpty {
            detector = Detector(ruleSet: try RuleLoading.ruleSet(rules, strict: false))
            observe = { event in
                let start = SystemClock.monotonicNanoseconds()
                let alerts = detector!.process(event)
                detectionNanoseconds += SystemClock.monotonicNanoseconds() - start
                for alert in alerts {
                    alertCount += 1
                    try alertOutput?.writeLine(Array(alert.json().utf8))
                }
            }
        }
        let (statistics, failedInputs) = try replay.run(inputs: inputs.isEmpty ? ["-"] : inputs, output: sink, observe: observe)
        try alertOutput?.flush()
        if let detector, !quiet {
            let seconds = Double(detectionNanoseconds) / 1e9
            let rate = seconds > 0 ? Int(Double(detector.eventsSeen) / seconds) : 0
            writeStandardError(
                "herdwatch replay: \(detector.ruleSet.rules.count) rules, \(detector.ruleSet.correlations.count) correlations, \(alertCount) alerts; detection took \(String(format: "%.2f", seconds)) s (\(rate) events/s)\n")
        }

        if !quiet {
            let summary = """
                herdwatch replay: \(statistics.records) records, \(statistics.events) events, \
                \(statistics.malformedLines) malformed lines, \(statistics.timedOutEvents) completed by timeout, \
                \(statistics.earlyFlushedEvents) flushed early, \(statistics.lateRecords) late records

                """
            writeStandardError(summary)
        }
        if summaryJson {
            let line = """
                {"records":\(statistics.records),"events":\(statistics.events),"malformed":\(statistics.malformedLines),\
                "timed_out":\(statistics.timedOutEvents),"early_flushed":\(statistics.earlyFlushedEvents),\
                "late_records":\(statistics.lateRecords),"bytes":\(statistics.bytesRead)\
                \(detector.map { ",\"rules\":\($0.ruleSet.rules.count + $0.ruleSet.correlations.count),\"alerts\":\(alertCount),\"detection_seconds\":\(Double(detectionNanoseconds) / 1e9)" } ?? "")}

                """
            writeStandardError(line)
        }
        if failedInputs > 0 { throw ExitCode(1) }
    }
}
