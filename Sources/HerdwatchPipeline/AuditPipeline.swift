import HerdwatchAudit
import HerdwatchEvents

/// A line that is not an audit record: where it is and why.
public struct MalformedLine: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int
    public var reason: String

    public var description: String { "\(source):\(line): \(reason)" }
}

/// Counts a pipeline keeps; printed as the replay summary and, later, in agent heartbeats.
public struct PipelineStatistics: Sendable, Equatable {
    public var lines = 0
    public var blankLines = 0
    public var malformedLines = 0
    public var records = 0
    public var events = 0
    public var timedOutEvents = 0
    public var earlyFlushedEvents = 0
    public var lateRecords = 0
    public var bytesRead: UInt64 = 0
    public init() {}
}

/// The audit stages in one value: parse bytes → assemble events → interpret → hand to a sink.
///
/// The same pipeline serves `herdwatch replay` and the agent; it is synchronous and single-owner,
/// so the per-record path has no locks and no task hops.
public struct AuditPipeline {
    public var parser: AuditRecordParser
    public var assembler: AuditEventAssembler
    public var interpreter: AuditInterpreter
    /// When false, events are assembled but not interpreted (the parse + assemble floor).
    public var interprets: Bool
    public private(set) var statistics = PipelineStatistics()

    public init(
        parser: AuditRecordParser = AuditRecordParser(),
        assembler: AuditEventAssembler = AuditEventAssembler(),
        interpreter: AuditInterpreter = AuditInterpreter(),
        interprets: Bool = true
    ) {
        self.parser = parser
        self.assembler = assembler
        self.interpreter = interpreter
        self.interprets = interprets
    }

    /// Feeds one log line. A malformed line is returned (for the caller to report) and counted; it
    /// never stops the pipeline.
    @discardableResult
    public mutating func process(
        line: [UInt8], source: String, lineNumber: Int, emit: (consuming Event) throws -> Void
    ) rethrows -> MalformedLine? {
        statistics.lines += 1
        let record: AuditRecord
        do {
            record = try parser.parse(line: line)
        } catch {
            if error.reason == .emptyLine {
                statistics.blankLines += 1
                return nil
            }
            statistics.malformedLines += 1
            return MalformedLine(source: source, line: lineNumber, reason: error.description)
        }
        try add(consume record, emit: emit)
        return nil
    }

    /// Feeds one parsed record (the agent's netlink path).
    public mutating func add(_ record: consuming AuditRecord, emit: (consuming Event) throws -> Void) rethrows {
        statistics.records += 1
        if interprets {
            let interpreter = self.interpreter
            try assembler.add(consume record) { try emit(interpreter.interpret($0)) }
        } else {
            assembler.add(consume record) { _ in }
        }
        syncAssemblerStatistics()
    }

    /// Events begun and not yet complete (their records are still arriving, or their timeout is).
    public var inFlightEvents: Int { assembler.inFlightEvents }

    /// Completes events older than the timeout relative to `now` (milliseconds since the epoch).
    public mutating func flush(olderThan now: Int64, emit: (consuming Event) throws -> Void) rethrows {
        let interpreter = self.interpreter
        let interprets = self.interprets
        try assembler.flush(olderThan: now) { if interprets { try emit(interpreter.interpret($0)) } }
        syncAssemblerStatistics()
    }

    /// Completes every pending event: the end of the input.
    public mutating func finish(emit: (consuming Event) throws -> Void) rethrows {
        let interpreter = self.interpreter
        let interprets = self.interprets
        try assembler.flushAll { if interprets { try emit(interpreter.interpret($0)) } }
        syncAssemblerStatistics()
    }

    /// Counts a line the reader already rejected (too long).
    public mutating func noteMalformed() {
        statistics.lines += 1
        statistics.malformedLines += 1
    }

    public mutating func noteBytesRead(_ count: UInt64) { statistics.bytesRead += count }

    private mutating func syncAssemblerStatistics() {
        let assembled = assembler.statistics
        statistics.events = assembled.events
        statistics.timedOutEvents = assembled.timedOut
        statistics.earlyFlushedEvents = assembled.flushedEarly
        statistics.lateRecords = assembled.lateRecords
    }
}
