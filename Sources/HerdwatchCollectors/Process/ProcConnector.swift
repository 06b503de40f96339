import CLinuxAudit

#if canImport(Glibc)
import Glibc
#endif

/// Process events from the kernel's proc connector (NETLINK_CONNECTOR, CN_IDX_PROC): every fork,
/// exec, exit and id change on the host, with no audit rule needed. Threads are left out: only
/// thread-group leaders (processes) are reported.
public final class ProcConnector {
    public enum Event: Sendable, Equatable {
        case fork(parent: Int32, child: Int32, nanosecondsSinceBoot: UInt64)
        case exec(pid: Int32, nanosecondsSinceBoot: UInt64)
        case exit(pid: Int32, code: UInt32, signal: UInt32, nanosecondsSinceBoot: UInt64)
        case uid(pid: Int32, real: UInt32, effective: UInt32)
        case sid(pid: Int32)
    }

    private let descriptor: Int32
    /// Connector messages are under 100 bytes.
    private let receiver = NetlinkSocket.Receiver(slots: 64, slotBytes: 512)
    /// Times the socket overflowed (ENOBUFS): events were lost.
    public private(set) var overflows = 0

    public init(receiveBufferBytes: Int32 = 4 << 20) throws(AuditNetlinkError) {
        self.descriptor = try NetlinkSocket.open(
            family: NETLINK_CONNECTOR, type: SOCK_DGRAM, groups: UInt32(CN_IDX_PROC),
            receiveBufferBytes: receiveBufferBytes, name: "NETLINK_CONNECTOR", bindFailure: "bind(NETLINK_CONNECTOR)")
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
        try NetlinkSocket.drain(descriptor, receiver: receiver, overflows: &overflows, name: "NETLINK_CONNECTOR") { datagram in
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
