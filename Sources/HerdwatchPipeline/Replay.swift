import HerdwatchAudit
import HerdwatchEvents
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Replays audit logs through the same pipeline as the live agent and writes ECS JSON lines.
public struct Replay {
    public enum Format: String, Sendable, CaseIterable {
        /// ECS JSON, one event per line.
        case ecs
        /// Parse and assemble only; nothing is written (the floor for benchmarks).
        case none
    }

    public struct Configuration: Sendable {
        public var format: Format = .ecs
        public var includeRawRecords = true
        /// No time limit by default: see `AuditEventAssembler`.
        public var assembler = AuditEventAssembler.Configuration(timeoutMilliseconds: nil)
        public var hostName: String?
        /// How many malformed lines are reported one by one; the rest are only counted.
        public var maximumReportedErrors = 100
        /// Print a progress line on standard error (when it is a terminal).
        public var showsProgress = false
        public init() {}
    }

    public var configuration: Configuration
    public var logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs every input in order through one pipeline (events may span files, as with rotated logs)
    /// and returns the counts. An input that cannot be opened or read is reported and skipped.
    ///
    /// `observe` sees every event on the reading thread before it is written (detection runs there).
    public func run(
        inputs: [String], output: OutputFile?, observe: ((Event) throws -> Void)? = nil
    ) throws -> (PipelineStatistics, failedInputs: Int) {
        var pipeline = AuditPipeline(
            assembler: AuditEventAssembler(configuration: configuration.assembler),
            interpreter: AuditInterpreter(hostName: configuration.hostName),
            interprets: configuration.format == .ecs || observe != nil)
        let encoder = ECSEncoder(includeRawRecords: configuration.includeRawRecords)
        var reported = 0
        var failedInputs = 0
        var progress = Progress(enabled: configuration.showsProgress)

        // Encoding and writing run on a second thread; this one reads, parses, assembles, interprets.
        let stage = output.map { EncodingStage(output: $0, encoder: encoder) }
        let emit: (Event) throws -> Void = { event in
            try observe?(event)
            try stage?.submit(event)
        }

        for input in inputs {
            let reader: LineReader
            do {
                reader = try LineReader(path: input, maximumLineLength: pipeline.parser.maximumLineLength)
            } catch {
                logger.error("cannot read input", metadata: ["input": "\(input)", "error": "\(error)"])
                failedInputs += 1
                continue
            }
            let name = input == "-" ? "<stdin>" : input
            do {
                while let line = try reader.next() {
                    if line.truncated {
                        pipeline.noteMalformed()
                        report(
                            MalformedLine(source: name, line: line.number, reason: "line longer than \(reader.maximumLineLength) bytes"),
                            &reported)
                        continue
                    }
                    if let malformed = try pipeline.process(
                        line: line.bytes, source: name, lineNumber: line.number, emit: emit)
                    {
                        report(malformed, &reported)
                    }
                    if line.number & 0x3FFF == 0 { progress.update(pipeline.statistics, bytes: reader.bytesRead) }
                }
            } catch let error as InputError {
                logger.error("input ended early", metadata: ["input": "\(name)", "error": "\(error.reason)"])
                failedInputs += 1
            }
            pipeline.noteBytesRead(reader.bytesRead)
        }
        try pipeline.finish(emit: emit)
        try stage?.finish()
        progress.finish()
        if reported > configuration.maximumReportedErrors {
            logger.warning(
                "more malformed lines were counted but not reported",
                metadata: ["unreported": "\(reported - configuration.maximumReportedErrors)"])
        }
        return (pipeline.statistics, failedInputs)
    }

    private func report(_ malformed: MalformedLine, _ reported: inout Int) {
        reported += 1
        guard reported <= configuration.maximumReportedErrors else { return }
        logger.warning(
            "malformed line skipped",
            metadata: ["source": "\(malformed.source)", "line": "\(malformed.line)", "reason": "\(malformed.reason)"])
    }
}

/// A single progress line on a terminal, redrawn at most twice a second.
struct Progress {
    let enabled: Bool
    var lastDraw: Double = 0
    var drew = false

    init(enabled: Bool) {
        self.enabled = enabled && isatty(STDERR_FILENO) == 1
    }

    mutating func update(_ statistics: PipelineStatistics, bytes: UInt64) {
        guard enabled else { return }
        let now = Double(SystemClock.monotonicMilliseconds()) / 1000
        guard now - lastDraw >= 0.5 else { return }
        lastDraw = now
        drew = true
        let line = "\r\u{1B}[K\(statistics.records) records, \(statistics.events) events, \(bytes >> 20) MiB read"
        writeStandardError(line)
    }

    func finish() {
        if drew { writeStandardError("\r\u{1B}[K") }
    }
}
