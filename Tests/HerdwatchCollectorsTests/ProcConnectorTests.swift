import CLinuxAudit
import Foundation
import Testing

@testable import HerdwatchCollectors

@Suite struct ProcConnectorTests {
    /// One connector datagram as the kernel sends it: netlink header, connector header, proc event.
    static func datagram(what: UInt32, fields: [Int32]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(ProcConnector.dataOffset) + 4 * max(fields.count, 6))
        func put(_ value: UInt32, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<(offset + 4), with: $0) }
        }
        put(UInt32(bytes.count), at: 0)
        put(UInt32(CN_IDX_PROC), at: 16)
        put(UInt32(CN_VAL_PROC), at: 20)
        put(what, at: Int(ProcConnector.whatOffset))
        for (index, field) in fields.enumerated() {
            put(UInt32(bitPattern: field), at: Int(ProcConnector.dataOffset) + 4 * index)
        }
        return bytes
    }

    /// Runs a classic BPF program over `packet` the way the kernel does for a socket filter (the
    /// instructions the connector's filter uses): the number of bytes to keep, 0 to drop.
    static func run(_ program: [sock_filter], on packet: [UInt8]) -> UInt32 {
        var a: UInt32 = 0
        var x: UInt32 = 0
        var pc = 0
        while pc < program.count {
            let instruction = program[pc]
            pc += 1
            switch Int32(instruction.code) {
            case BPF_LD | BPF_W | BPF_ABS:
                let offset = Int(instruction.k)
                guard offset + 4 <= packet.count else { return 0 }
                a = packet[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }  // big-endian
            case BPF_MISC | BPF_TAX:
                x = a
            case BPF_JMP | BPF_JEQ | BPF_K:
                pc += Int(a == instruction.k ? instruction.jt : instruction.jf)
            case BPF_JMP | BPF_JEQ | BPF_X:
                pc += Int(a == x ? instruction.jt : instruction.jf)
            case BPF_RET | BPF_K:
                return instruction.k
            default:
                Issue.record("instruction \(instruction.code) at \(pc - 1) is not one this interpreter knows")
                return 0
            }
        }
        Issue.record("the program ran past its end")
        return 0
    }

    static let cases: [(name: String, what: UInt32, fields: [Int32], passes: Bool)] = [
        ("a process forks", UInt32(PROC_EVENT_FORK.rawValue), [100, 100, 200, 200], true),
        ("a thread starts", UInt32(PROC_EVENT_FORK.rawValue), [100, 100, 201, 200], false),
        ("a process execs", UInt32(PROC_EVENT_EXEC.rawValue), [200, 200], true),
        ("a process exits", UInt32(PROC_EVENT_EXIT.rawValue), [200, 200, 0, 17], true),
        ("a thread exits", UInt32(PROC_EVENT_EXIT.rawValue), [201, 200, 0, 17], false),
        ("a process changes uid", UInt32(PROC_EVENT_UID.rawValue), [200, 200, 1000, 1000], true),
        ("a thread changes uid", UInt32(PROC_EVENT_UID.rawValue), [201, 200, 1000, 1000], false),
        ("a process starts a session", UInt32(PROC_EVENT_SID.rawValue), [200, 200], true),
        ("a thread starts a session", UInt32(PROC_EVENT_SID.rawValue), [201, 200], false),
        ("a process renames itself", UInt32(PROC_EVENT_COMM.rawValue), [200, 200], false),
        ("a process is traced", UInt32(PROC_EVENT_PTRACE.rawValue), [200, 200, 300, 300], false),
        ("a process dumps core", UInt32(PROC_EVENT_COREDUMP.rawValue), [200, 200], false),
        ("the listen acknowledgement", UInt32(PROC_EVENT_NONE.rawValue), [0], false),
    ]

    @Test func theFilterPassesWhatDecodeKeepsAndDropsTheRest() {
        for test in Self.cases {
            let packet = Self.datagram(what: test.what, fields: test.fields)
            let kept = Self.run(ProcConnector.filterProgram, on: packet)
            #expect((kept != 0) == test.passes, "\(test.name)")
            var events: [ProcConnector.Event] = []
            packet.withUnsafeBytes { ProcConnector.decode($0, into: &events) }
            #expect(events.isEmpty == !test.passes, "decode and the filter disagree on: \(test.name)")
        }
        // A datagram too short to hold the fields the filter reads is dropped, not read past.
        #expect(Self.run(ProcConnector.filterProgram, on: Array(Self.datagram(what: 1, fields: [1, 1, 2, 2]).prefix(60))) == 0)
    }

    static var available: Bool { getuid() == 0 }

    @Test(.enabled(if: available, "needs root for the proc connector"))
    func theKernelDropsThreadEventsAndDeliversProcessEvents() throws {
        let connector = try ProcConnector()
        #expect(connector.filtered, "the kernel took the socket filter")
        _ = try connector.drain()
        let before = connector.datagrams
        // 1,000 threads started and ended: 2,000 events (fork and exit each) without the filter.
        for _ in 0..<1_000 {
            var thread = pthread_t()
            #expect(pthread_create(&thread, nil, { _ in nil }, nil) == 0)
            pthread_join(thread, nil)
        }
        let child = try runProgram("/bin/true", ["proc-connector-filter"])
        var events: [ProcConnector.Event] = []
        func forked(_ event: ProcConnector.Event) -> Bool {
            if case .fork(let parent, let pid, _) = event { return pid == child && parent == getpid() }
            return false
        }
        func executed(_ event: ProcConnector.Event) -> Bool {
            if case .exec(let pid, _) = event { return pid == child }
            return false
        }
        func exited(_ event: ProcConnector.Event) -> Bool {
            if case .exit(let pid, _, _, _) = event { return pid == child }
            return false
        }
        let deadline = Date().addingTimeInterval(10)
        while !events.contains(where: exited), Date() < deadline {
            events += try connector.drain()
            usleep(10_000)
        }
        #expect(events.contains(where: forked))
        #expect(events.contains(where: executed))
        #expect(events.contains(where: exited))
        // Other processes on the host send their events too, but far fewer than the threads would have.
        #expect(connector.datagrams - before < 1_000, "\(connector.datagrams - before) datagrams read")
    }
}
