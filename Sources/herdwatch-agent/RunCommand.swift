import ArgumentParser
import HerdwatchAudit
import HerdwatchEvents
import HerdwatchPipeline
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Reads audit records from a stream as they arrive and writes events as soon as they complete.
///
/// As an auditd plugin (`/etc/audit/plugins.d/herdwatch.conf` with `path = /usr/local/bin/herdwatch-agent`,
/// `args = run`, `format = string`) it receives every record on standard input.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Read audit records from a stream and write ECS JSON events.",
        discussion: """
            Events complete on their EOE or PROCTITLE record, or after --event-timeout milliseconds of \
            wall-clock quiet, so a quiet stream never holds an event back. Malformed lines are reported \
            with their line number and skipped. Exit status: 0 at the end of input, 1 on a read or write error.
            """
    )

    @Option(name: .shortAndLong, help: "Where audit records come from: '-' (standard input) or a FIFO path.")
    var input: String = "-"

    @Option(name: .shortAndLong, help: "Where events go: '-' (standard output) or a file.")
    var output: String = "-"

    @Option(help: "host.name for records without node=; defaults to this host's name.")
    var hostName: String?

    @Option(help: "Milliseconds an event waits for its remaining records.")
    var eventTimeout: Int64 = 2000

    func run() throws {
        let logger = Logger(label: "herdwatch.agent")
        let descriptor = input == "-" ? STDIN_FILENO : open(input, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ValidationError("cannot open \(input): \(String(cString: strerror(errno)))")
        }
        let reader = LineReader(streaming: descriptor, name: input == "-" ? "<stdin>" : input)
        let sink = try OutputFile(path: output, capacity: 64 * 1024)
        var assembler = AuditEventAssembler.Configuration()
        assembler.timeoutMilliseconds = eventTimeout
        var pipeline = AuditPipeline(
            assembler: AuditEventAssembler(configuration: assembler),
            interpreter: AuditInterpreter(hostName: hostName ?? Self.localHostName()))
        let encoder = ECSEncoder()
        var writer = JSONWriter()
        let emit: (Event) throws -> Void = { event in
            writer.reset()
            encoder.encode(event, into: &writer)
            try writer.withUnsafeBytes { try sink.writeLine($0) }
        }

        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while !reader.isFinished {
            let ready = poll(&poller, 1, Int32(clamping: max(eventTimeout / 4, 50)))
            if ready > 0 {
                try reader.fill()
                while let line = try reader.nextBufferedLine() {
                    if line.truncated {
                        pipeline.noteMalformed()
                        logger.warning("line too long, skipped", metadata: ["line": "\(line.number)"])
                        continue
                    }
                    if let malformed = try pipeline.process(
                        line: line.bytes, source: reader.path, lineNumber: line.number, emit: emit)
                    {
                        logger.warning("malformed line skipped", metadata: ["where": "\(malformed)"])
                    }
                }
            }
            try pipeline.flush(olderThan: Self.nowMilliseconds(), emit: emit)
            try sink.flush()
        }
        try pipeline.finish(emit: emit)
        try sink.flush()
    }

    static func nowMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    static func localHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
