import CLinuxAudit

#if canImport(Glibc)
import Glibc
#endif

/// What the audit and proc-connector sockets share: opening and binding, and reading every queued
/// datagram without blocking.
enum NetlinkSocket {
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

    /// Hands `body` each datagram queued on `descriptor` (read into `buffer`, with its length),
    /// until none is left. ENOBUFS (the socket overflowed, the kernel dropped datagrams) adds one
    /// to `overflows` and reading goes on.
    static func drain(
        _ descriptor: Int32, buffer: inout [UInt8], overflows: inout Int, name: String, _ body: ([UInt8], Int) -> Void
    ) throws(AuditNetlinkError) {
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR: continue
                case ENOBUFS:
                    overflows += 1
                    continue
                default: throw AuditNetlinkError("recv(\(name))", code: errno)
                }
            }
            guard count > 0 else { return }
            body(buffer, count)
        }
    }
}
