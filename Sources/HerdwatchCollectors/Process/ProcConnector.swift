import CLinuxAudit

#if canImport(Glibc)
import Glibc
#endif

/// Process events from the kernel's proc connector (NETLINK_CONNECTOR, CN_IDX_PROC): every fork,
/// exec, exit and id change on the host, with no audit rule needed. Threads are left out: only
/// thread-group leaders (processes) are reported, and a socket filter drops the rest in the kernel.
public final class ProcConnector {
    public enum Event: Sendable, Equatable {
        case fork(parent: Int32, child: Int32, nanosecondsSinceBoot: UInt64)
        case exec(pid: Int32, nanosecondsSinceBoot: UInt64)
        case exit(pid: Int32, code: UInt32, signal: UInt32, nanosecondsSinceBoot: UInt64)
        case uid(pid: Int32, real: UInt32, effective: UInt32)
        case sid(pid: Int32)
    }

    private let descriptor: Int32
    /// The socket, to wait on beside others (readable: events are queued; `drain` takes them).
    public var pollDescriptor: Int32 { descriptor }
    /// Connector messages are under 100 bytes.
    private let receiver = NetlinkSocket.Receiver(slots: 64, slotBytes: 512)
    /// Times the socket overflowed (ENOBUFS): events were lost.
    public private(set) var overflows = 0
    /// Datagrams read from the socket (what passed the filter).
    public private(set) var datagrams = 0
    /// Whether the kernel runs the socket filter (`filterProgram`).
    public let filtered: Bool

    public init(receiveBufferBytes: Int32 = 4 << 20) throws(AuditNetlinkError) {
        self.descriptor = try NetlinkSocket.open(
            family: NETLINK_CONNECTOR, type: SOCK_DGRAM, groups: UInt32(CN_IDX_PROC),
            receiveBufferBytes: receiveBufferBytes, name: "NETLINK_CONNECTOR", bindFailure: "bind(NETLINK_CONNECTOR)")
        // The filter only saves work (`decode` checks the same): a kernel that refuses it still
        // gives every event, so the connector works without it.
        filtered = (try? Self.attachFilter(descriptor)) != nil
        do {
            try send(operation: UInt32(PROC_CN_MCAST_LISTEN.rawValue))
        } catch {
            close(descriptor)
            throw error
        }
    }

    deinit {
        try? send(operation: UInt32(PROC_CN_MCAST_IGNORE.rawValue))
        close(descriptor)
    }

    // Where a proc event's fields are in a datagram: the netlink header (16 bytes), the connector's
    // header (20), then `struct proc_event`: `what` (4), cpu (4), timestamp (8), then the event's
    // own fields, each 4 bytes.
    static let whatOffset: UInt32 = 36
    static let dataOffset: UInt32 = 52

    /// A classic BPF program the kernel runs on every datagram before it queues it: only fork, exec,
    /// exit, uid and sid events pass, and of forks, exits, uid and sid changes only those of processes
    /// (thread-group leaders). A threaded server starting and ending threads all day then costs the
    /// agent nothing: their events are dropped in the kernel, not copied out and decoded. `decode`
    /// checks the same things again, so the filter only saves work.
    static var filterProgram: [sock_filter] {
        // Loads of words are big-endian in classic BPF: compare with the fields' bytes as they are.
        func wordConstant(_ value: UInt32) -> UInt32 { UInt32(bigEndian: value) }
        func load(_ offset: UInt32) -> sock_filter {
            sock_filter(code: UInt16(BPF_LD | BPF_W | BPF_ABS), jt: 0, jf: 0, k: offset)
        }
        func jumpIfEqual(_ value: UInt32, _ equal: UInt8, _ other: UInt8) -> sock_filter {
            sock_filter(code: UInt16(BPF_JMP | BPF_JEQ | BPF_K), jt: equal, jf: other, k: wordConstant(value))
        }
        func jumpIfEqualToX(_ equal: UInt8, _ other: UInt8) -> sock_filter {
            sock_filter(code: UInt16(BPF_JMP | BPF_JEQ | BPF_X), jt: equal, jf: other, k: 0)
        }
        let copyToX = sock_filter(code: UInt16(BPF_MISC | BPF_TAX), jt: 0, jf: 0, k: 0)
        let accept = sock_filter(code: UInt16(BPF_RET | BPF_K), jt: 0, jf: 0, k: UInt32.max)
        let drop = sock_filter(code: UInt16(BPF_RET | BPF_K), jt: 0, jf: 0, k: 0)
        // Jump offsets count the instructions skipped: the target is the next instruction + offset.
        return [
            /* 0 */ load(whatOffset),
            /* 1 */ jumpIfEqual(UInt32(PROC_EVENT_EXEC.rawValue), 12, 0),  // → 14 accept
            /* 2 */ jumpIfEqual(UInt32(PROC_EVENT_FORK.rawValue), 3, 0),  // → 6
            /* 3 */ jumpIfEqual(UInt32(PROC_EVENT_EXIT.rawValue), 6, 0),  // → 10
            /* 4 */ jumpIfEqual(UInt32(PROC_EVENT_UID.rawValue), 5, 0),  // → 10
            /* 5 */ jumpIfEqual(UInt32(PROC_EVENT_SID.rawValue), 4, 9),  // → 10, else → 15 drop
            // A fork passes when the child is a process: child_pid (third field) == child_tgid (fourth).
            /* 6 */ load(dataOffset + 12),
            /* 7 */ copyToX,
            /* 8 */ load(dataOffset + 8),
            /* 9 */ jumpIfEqualToX(4, 5),  // → 14 : 15
            // Exit, uid and sid pass when process_pid (first field) == process_tgid (second).
            /* 10 */ load(dataOffset + 4),
            /* 11 */ copyToX,
            /* 12 */ load(dataOffset),
            /* 13 */ jumpIfEqualToX(0, 1),  // → 14 : 15
            /* 14 */ accept,
            /* 15 */ drop,
        ]
    }

    private static func attachFilter(_ descriptor: Int32) throws(AuditNetlinkError) {
        var program = filterProgram
        let attached = program.withUnsafeMutableBufferPointer { instructions in
            var fprog = sock_fprog(len: UInt16(instructions.count), filter: instructions.baseAddress)
            return setsockopt(descriptor, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, socklen_t(MemoryLayout<sock_fprog>.size))
        }
        guard attached == 0 else { throw AuditNetlinkError("proc connector filter (SO_ATTACH_FILTER)", code: errno) }
    }

    private func send(operation: UInt32) throws(AuditNetlinkError) {
        let headerSize = MemoryLayout<nlmsghdr>.size
        let connectorSize = MemoryLayout<cn_msg>.size
        var message = [UInt8](repeating: 0, count: headerSize + connectorSize + 4)
        func put32(_ value: UInt32, _ offset: Int) {
            withUnsafeBytes(of: value) { message.replaceSubrange(offset..<(offset + 4), with: $0) }
        }
        put32(UInt32(message.count), 0)
        withUnsafeBytes(of: UInt16(NLMSG_DONE)) { message.replaceSubrange(4..<6, with: $0) }
        put32(UInt32(getpid()), 12)
        put32(UInt32(CN_IDX_PROC), headerSize)
        put32(UInt32(CN_VAL_PROC), headerSize + 4)
        withUnsafeBytes(of: UInt16(4)) { message.replaceSubrange((headerSize + 16)..<(headerSize + 18), with: $0) }
        put32(operation, headerSize + connectorSize)
        let sent = message.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
        guard sent == message.count else { throw AuditNetlinkError("proc connector listen", code: errno) }
    }

    /// Everything queued, without blocking.
    public func drain() throws(AuditNetlinkError) -> [Event] {
        var events: [Event] = []
        var read = 0
        defer { datagrams += read }
        try NetlinkSocket.drain(descriptor, receiver: receiver, overflows: &overflows, name: "NETLINK_CONNECTOR") { datagram in
            read += 1
            Self.decode(datagram, into: &events)
        }
        return events
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, into events: inout [Event]) {
        let headerSize = MemoryLayout<nlmsghdr>.size
        let connectorSize = MemoryLayout<cn_msg>.size
        let count = bytes.count
        var offset = 0
        while offset + headerSize <= count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= headerSize, offset + length <= count else { return }
            let event = offset + headerSize + connectorSize
            if event + 16 <= offset + length {
                let what = bytes.loadUnaligned(fromByteOffset: event, as: UInt32.self)
                let time = bytes.loadUnaligned(fromByteOffset: event + 8, as: UInt64.self)
                let data = event + 16
                func int(_ index: Int) -> Int32 {
                    data + 4 * index + 4 <= offset + length
                        ? bytes.loadUnaligned(fromByteOffset: data + 4 * index, as: Int32.self) : -1
                }
                switch what {
                case UInt32(PROC_EVENT_FORK.rawValue):
                    // parent_pid, parent_tgid, child_pid, child_tgid: a new thread has pid != tgid.
                    if int(2) == int(3) { events.append(.fork(parent: int(1), child: int(3), nanosecondsSinceBoot: time)) }
                case UInt32(PROC_EVENT_EXEC.rawValue):
                    events.append(.exec(pid: int(1), nanosecondsSinceBoot: time))
                case UInt32(PROC_EVENT_EXIT.rawValue):
                    if int(0) == int(1) {
                        events.append(
                            .exit(pid: int(1), code: UInt32(bitPattern: int(2)), signal: UInt32(bitPattern: int(3)), nanosecondsSinceBoot: time))
                    }
                case UInt32(PROC_EVENT_UID.rawValue):
                    if int(0) == int(1) {
                        events.append(.uid(pid: int(1), real: UInt32(bitPattern: int(2)), effective: UInt32(bitPattern: int(3))))
                    }
                case UInt32(PROC_EVENT_SID.rawValue):
                    if int(0) == int(1) { events.append(.sid(pid: int(1))) }
                default:
                    break
                }
            }
            offset += NetlinkSocket.align(length)
        }
    }
}
