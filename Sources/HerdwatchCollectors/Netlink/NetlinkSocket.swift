import CLinuxAudit

#if canImport(Glibc)
import Glibc
#endif

/// What the audit and proc-connector sockets share: opening and binding, and reading every queued
/// datagram without blocking.
enum NetlinkSocket {
    /// NLMSG_ALIGN: messages in a datagram start on 4-byte boundaries.
    static func align(_ length: Int) -> Int { (length + 3) & ~3 }

    /// A netlink socket of `family` (NETLINK_AUDIT, NETLINK_CONNECTOR), bound to `groups`, with a
    /// large receive buffer: root may exceed rmem_max, and records arrive in bursts the kernel drops
    /// when they do not fit.
    static func open(
        family: Int32, type: __socket_type, groups: UInt32, receiveBufferBytes: Int32, name: String,
        bindFailure: String
    ) throws(AuditNetlinkError) -> Int32 {
        let descriptor = socket(AF_NETLINK, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), family)
        guard descriptor >= 0 else { throw AuditNetlinkError("socket(\(name))", code: errno) }
        var size = receiveBufferBytes
        if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = groups
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            close(descriptor)
            throw AuditNetlinkError(bindFailure, code: code)
        }
        return descriptor
    }

    /// Hands `body` each datagram queued on `descriptor` (in `receiver`'s memory), until none is
    /// left: up to `receiver.slots` datagrams per system call (recvmmsg), so a burst of records costs
    /// a few calls rather than one each. ENOBUFS (the socket overflowed, the kernel dropped
    /// datagrams) adds one to `overflows` and reading goes on.
    static func drain(
        _ descriptor: Int32, receiver: Receiver, overflows: inout Int, name: String, _ body: (UnsafeRawBufferPointer) -> Void
    ) throws(AuditNetlinkError) {
        while true {
            receiver.prepare()
            let count = recvmmsg(descriptor, receiver.headers, UInt32(receiver.slots), Int32(MSG_DONTWAIT), nil)
            if count < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR: continue
                case ENOBUFS:
                    overflows += 1
                    continue
                default: throw AuditNetlinkError("recvmmsg(\(name))", code: errno)
                }
            }
            guard count > 0 else { return }
            for index in 0..<Int(count) {
                let length = Int(receiver.headers[index].msg_len)
                body(UnsafeRawBufferPointer(start: receiver.slot(index), count: min(length, receiver.slotBytes)))
            }
            // Fewer than asked for: the queue is empty (a datagram arriving now waits for the next poll).
            if Int(count) < receiver.slots { return }
        }
    }

    /// Memory for `recvmmsg`: `slots` buffers of `slotBytes`, with their iovecs and headers, made
    /// once per socket. A datagram longer than a slot is cut (kauditd's are at most 8,970 bytes).
    final class Receiver {
        let slots: Int
        let slotBytes: Int
        private let memory: UnsafeMutableRawPointer
        private let vectors: UnsafeMutablePointer<iovec>
        let headers: UnsafeMutablePointer<herdwatch_mmsghdr>

        init(slots: Int, slotBytes: Int) {
            self.slots = slots
            self.slotBytes = slotBytes
            memory = .allocate(byteCount: slots * slotBytes, alignment: 16)
            vectors = .allocate(capacity: slots)
            headers = .allocate(capacity: slots)
            for index in 0..<slots {
                vectors[index] = iovec(iov_base: memory + index * slotBytes, iov_len: slotBytes)
            }
        }

        deinit {
            memory.deallocate()
            vectors.deallocate()
            headers.deallocate()
        }

        func slot(_ index: Int) -> UnsafeRawPointer { UnsafeRawPointer(memory + index * slotBytes) }

        /// Headers set afresh before each call (the kernel writes lengths and flags into them).
        func prepare() {
            for index in 0..<slots {
                var header = herdwatch_mmsghdr()
                header.msg_hdr.msg_iov = vectors + index
                header.msg_hdr.msg_iovlen = 1
                headers[index] = header
            }
        }
    }
}
