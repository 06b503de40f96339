import HerdwatchEvents
import Testing

@testable import HerdwatchAudit

private func record(_ type: String, _ seconds: Int, _ serial: Int, _ body: String = "x=1", node: String? = nil) -> AuditRecord {
    let prefix = node.map { "node=\($0) " } ?? ""
    return try! AuditRecordParser().parse(line: Array("\(prefix)type=\(type) msg=audit(\(seconds).000:\(serial)): \(body)".utf8))
}

private func run(_ records: [AuditRecord], configuration: AuditEventAssembler.Configuration = .init())
    -> ([AssembledEvent], AuditEventAssembler.Statistics)
{
    var assembler = AuditEventAssembler(configuration: configuration)
    var events: [AssembledEvent] = []
    for record in records { assembler.add(record) { events.append($0) } }
    assembler.flushAll { events.append($0) }
    return (events, assembler.statistics)
}

@Suite struct AssemblerTests {
    @Test func eoeCompletesAnEvent() {
        var assembler = AuditEventAssembler()
        var events: [AssembledEvent] = []
        assembler.add(record("SYSCALL", 10, 1)) { events.append($0) }
        assembler.add(record("CWD", 10, 1)) { events.append($0) }
        #expect(events.isEmpty)
        assembler.add(record("EOE", 10, 1)) { events.append($0) }
        #expect(events.count == 1)
        #expect(events[0].records.map(\.typeName) == ["SYSCALL", "CWD"])
        #expect(events[0].completion == .complete)
        #expect(assembler.inFlightEvents == 0)
    }

    @Test func proctitleCompletesAnEvent() {
        var assembler = AuditEventAssembler()
        var events: [AssembledEvent] = []
        assembler.add(record("SYSCALL", 10, 1)) { events.append($0) }
        assembler.add(record("PROCTITLE", 10, 1, "proctitle=6C73")) { events.append($0) }
        #expect(events.count == 1)
    }

    @Test func userMessagesAreEventsOnTheirOwn() {
        var assembler = AuditEventAssembler()
        var events: [AssembledEvent] = []
        assembler.add(record("USER_LOGIN", 10, 5, "pid=1 res=success")) { events.append($0) }
        #expect(events.count == 1)
        #expect(assembler.inFlightEvents == 0)
    }

    @Test func interleavedAndOutOfOrderSerials() {
        let records = [
            record("SYSCALL", 10, 2), record("SYSCALL", 10, 1), record("CWD", 10, 2), record("PATH", 10, 1),
            record("PATH", 10, 2), record("CWD", 10, 1),
        ]
        let (events, statistics) = run(records)
        #expect(events.count == 2)
        #expect(statistics.events == 2)
        let bySerial = Dictionary(uniqueKeysWithValues: events.map { ($0.serial, $0.records.map(\.typeName)) })
        #expect(bySerial[1] == ["SYSCALL", "PATH", "CWD"])
        #expect(bySerial[2] == ["SYSCALL", "CWD", "PATH"])
    }

    @Test func sameSerialOnDifferentNodesIsTwoEvents() {
        let (events, _) = run([record("SYSCALL", 10, 1, node: "a"), record("SYSCALL", 10, 1, node: "b")])
        #expect(events.count == 2)
    }

    @Test func sameSerialAtAnotherTimeIsAnotherEvent() {
        // Serial numbers restart at boot and roll over.
        let (events, _) = run([record("SYSCALL", 10, 1), record("SYSCALL", 99, 1)])
        #expect(events.count == 2)
    }

    @Test func timeoutInLogTime() {
        var assembler = AuditEventAssembler(configuration: .init(timeoutMilliseconds: 2000))
        var events: [AssembledEvent] = []
        assembler.add(record("SYSCALL", 10, 1)) { events.append($0) }
        assembler.add(record("SYSCALL", 11, 2)) { events.append($0) }
        #expect(events.isEmpty)
        assembler.add(record("SYSCALL", 13, 3)) { events.append($0) }
        #expect(events.map(\.serial) == [1])
        #expect(events[0].completion == .timedOut)
        #expect(assembler.statistics.timedOut == 1)
        assembler.flush(olderThan: 20_000) { events.append($0) }
        #expect(events.map(\.serial) == [1, 2, 3])
    }

    @Test func inFlightCapFlushesTheOldestEarly() {
        var configuration = AuditEventAssembler.Configuration()
        configuration.maximumInFlightEvents = 10
        var assembler = AuditEventAssembler(configuration: configuration)
        var events: [AssembledEvent] = []
        for serial in 1...1000 { assembler.add(record("SYSCALL", 10, serial)) { events.append($0) } }
        #expect(assembler.inFlightEvents <= 10)
        #expect(assembler.statistics.flushedEarly == 990)
        #expect(events.first?.serial == 1)
        #expect(events.allSatisfy { $0.completion == .flushedEarly })
    }

    @Test func byteCapBoundsMemory() {
        var configuration = AuditEventAssembler.Configuration()
        configuration.maximumInFlightBytes = 64 * 1024
        var assembler = AuditEventAssembler(configuration: configuration)
        let big = "a=" + String(repeating: "x", count: 4000)
        for serial in 1...500 { assembler.add(record("SYSCALL", 10, serial, big)) { _ in } }
        #expect(assembler.inFlightEvents < 20)
        #expect(assembler.statistics.flushedEarly > 480)
    }

    @Test func recordsPerEventCap() {
        var configuration = AuditEventAssembler.Configuration()
        configuration.maximumRecordsPerEvent = 5
        let records = (0..<12).map { _ in record("PATH", 10, 1) }
        let (events, statistics) = run(records, configuration: configuration)
        #expect(events.count == 3)
        #expect(statistics.flushedEarly == 2)
        #expect(statistics.lateRecords == 2)
    }
}
