import CLinuxAudit
import HerdwatchEvents

#if canImport(Glibc)
import Glibc
#endif

/// A failed netlink operation: what was asked and the errno the kernel or libc gave.
public struct AuditNetlinkError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var code: Int32

    public init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        let name = Int(code) < 134 ? String(cString: strerror(code)) : "error \(code)"
        return "\(operation): \(name) (errno \(code))"
    }
}

/// The kernel's audit status (`struct audit_status`, `auditctl -s`).
public struct AuditStatus: Sendable, Equatable, Codable {
    public var enabled: UInt32 = 0
    public var failure: UInt32 = 0
    /// The pid of the process that receives records over unicast netlink (the audit daemon), or 0.
    public var pid: UInt32 = 0
    public var rateLimit: UInt32 = 0
    public var backlogLimit: UInt32 = 0
    /// Records the kernel could not deliver, since boot (or the last reset).
    public var lost: UInt32 = 0
    public var backlog: UInt32 = 0
    public var featureBitmap: UInt32 = 0
    public var backlogWaitTime: UInt32 = 0

    public init() {}
}

/// One message received on the audit socket.
public struct AuditNetlinkMessage: Sendable {
    public var type: UInt16
    public var sequence: UInt32
    public var payload: [UInt8]
}

/// The kernel's audit interface over a raw `NETLINK_AUDIT` socket: status, settings, rules, and the
/// records themselves. No auditd or libaudit involved.
///
/// One owner at a time (not `Sendable`): the agent drives it from its collection thread.
/// - `unicast`: after `register()` the kernel sends every record to this socket; only one process
///   can hold that role.
/// - `multicast`: the socket joins the read-only log group and sees the records beside whoever is
///   the audit daemon; it needs CAP_AUDIT_READ and changes nothing.
public final class AuditNetlink {
    public enum Mode: String, Sendable {
        case unicast
        case multicast
    }

    public let mode: Mode
    private let descriptor: Int32
    private var sequence: UInt32 = 0
    /// Records that arrived while a request waited for its answer; `receive` hands them out first.
    private var backlog: [AuditNetlinkMessage] = []
    /// A record's datagram is at most 8,970 bytes (MAX_AUDIT_MESSAGE_LENGTH); netlink sizes dump
    /// replies to the reader's buffer, up to 32 KB.
    private let receiver = NetlinkSocket.Receiver(slots: 32, slotBytes: 32 << 10)
    /// Times `recv` reported ENOBUFS: the socket overflowed and the kernel dropped records.
    public private(set) var overflows = 0

    public init(mode: Mode, receiveBufferBytes: Int32 = 16 << 20) throws(AuditNetlinkError) {
        self.mode = mode
        self.descriptor = try NetlinkSocket.open(
            family: NETLINK_AUDIT, type: SOCK_RAW,
            groups: mode == .multicast ? 1 << (UInt32(AUDIT_NLGRP_READLOG.rawValue) - 1) : 0,
            receiveBufferBytes: receiveBufferBytes, name: "NETLINK_AUDIT",
            bindFailure: mode == .multicast ? "joining the audit log group" : "bind(NETLINK_AUDIT)")
    }

    deinit { close(descriptor) }

    // MARK: Requests

    public func status() throws(AuditNetlinkError) -> AuditStatus {
        let replies = try request(type: UInt16(AUDIT_GET), payload: [], expectsReply: true)
        guard let reply = replies.first(where: { $0.type == UInt16(AUDIT_GET) }) else {
            throw AuditNetlinkError("AUDIT_GET: no status in reply", code: EPROTO)
        }
        return Self.decodeStatus(reply.payload)
    }

    /// Changes the settings named in `mask` (AUDIT_STATUS_* bits) to the values in `status`.
    public func set(_ status: AuditStatus, mask: UInt32) throws(AuditNetlinkError) {
        var raw = audit_status()
        raw.mask = mask
        raw.enabled = status.enabled
        raw.failure = status.failure
        raw.pid = status.pid
        raw.rate_limit = status.rateLimit
        raw.backlog_limit = status.backlogLimit
        raw.backlog_wait_time = status.backlogWaitTime
        raw.lost = status.lost
        let payload = withUnsafeBytes(of: &raw) { Array($0) }
        _ = try request(type: UInt16(AUDIT_SET), payload: payload, expectsReply: false)
    }

    public func setEnabled(_ value: UInt32) throws(AuditNetlinkError) {
        var status = AuditStatus()
        status.enabled = value
        try set(status, mask: UInt32(AUDIT_STATUS_ENABLED))
    }

    /// Becomes the audit daemon: the kernel sends every record to this socket. Fails with EEXIST when
    /// another live process holds the role.
    public func register() throws(AuditNetlinkError) {
        var status = AuditStatus()
        status.pid = UInt32(getpid())
        try set(status, mask: UInt32(AUDIT_STATUS_PID))
    }

    /// Gives the audit daemon role back (pid 0), so the kernel falls back to printk until another
    /// daemon registers.
    public func unregister() throws(AuditNetlinkError) {
        var status = AuditStatus()
        status.pid = 0
        try set(status, mask: UInt32(AUDIT_STATUS_PID))
    }

    /// Sends a user-space audit message (USER_CMD, USER_LOGIN, ...) as PAM and sudo do; the kernel
    /// stamps it and logs it as a record of that type.
    public func sendUserMessage(type: UInt16, text: String) throws(AuditNetlinkError) {
        _ = try request(type: type, payload: Array(text.utf8) + [0], expectsReply: false)
    }

    public func addRule(_ data: [UInt8]) throws(AuditNetlinkError) {
        _ = try request(type: UInt16(AUDIT_ADD_RULE), payload: data, expectsReply: false)
    }

    public func deleteRule(_ data: [UInt8]) throws(AuditNetlinkError) {
        _ = try request(type: UInt16(AUDIT_DEL_RULE), payload: data, expectsReply: false)
    }

    /// The kernel's rules, each as `struct audit_rule_data` with its buffer.
    public func listRules() throws(AuditNetlinkError) -> [[UInt8]] {
        let replies = try request(type: UInt16(AUDIT_LIST_RULES), payload: [], expectsReply: true, multipart: true)
        return replies.filter { $0.type == UInt16(AUDIT_LIST_RULES) }.map(\.payload)
    }

    /// Sends a request and waits for its answer (ACK, error, reply or, for lists, DONE). Records that
    /// arrive meanwhile are kept for `receive`.
    private func request(
        type: UInt16, payload: [UInt8], expectsReply: Bool, multipart: Bool = false
    ) throws(AuditNetlinkError) -> [AuditNetlinkMessage] {
        sequence &+= 1
        let sent = sequence
        let headerSize = MemoryLayout<nlmsghdr>.size
        var message = [UInt8](repeating: 0, count: headerSize + NetlinkSocket.align(payload.count))
        var header = nlmsghdr()
        header.nlmsg_len = UInt32(headerSize + payload.count)
        header.nlmsg_type = type
        header.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_ACK)
        header.nlmsg_seq = sent
        withUnsafeBytes(of: &header) { message.replaceSubrange(0..<headerSize, with: $0) }
        message.replaceSubrange(headerSize..<(headerSize + payload.count), with: payload)
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let count = withUnsafePointer(to: &kernel) { address in
            address.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                message.withUnsafeBytes {
                    sendto(descriptor, $0.baseAddress, $0.count, 0, address, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        guard count == message.count else { throw AuditNetlinkError("send \(Self.name(type))", code: errno) }

        var replies: [AuditNetlinkMessage] = []
        var acknowledged = false
        let deadline = SystemClock.monotonicMilliseconds() + 5000
        while true {
            let remaining = deadline - SystemClock.monotonicMilliseconds()
            guard remaining > 0 else { throw AuditNetlinkError("\(Self.name(type)): no answer", code: ETIMEDOUT) }
            for message in try read(timeoutMilliseconds: Int32(remaining)) {
                guard message.sequence == sent, message.type < 1000 || message.type == type else {
                    if Self.isRecord(message.type) { backlog.append(message) }
                    continue
                }
                switch Int32(message.type) {
                case NLMSG_ERROR:
                    let code = message.payload.count >= 4 ? message.payload.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } : 0
                    if code != 0 { throw AuditNetlinkError(Self.name(type), code: -code) }
                    acknowledged = true
                case NLMSG_DONE:
                    return replies
                default:
                    replies.append(message)
                }
            }
            if multipart { continue }
            if acknowledged && (!expectsReply || !replies.isEmpty) { return replies }
        }
    }

    // MARK: Receiving

    /// Waits up to `timeoutMilliseconds` (0: no wait) for messages; returns what arrived, possibly
    /// nothing. ENOBUFS is counted in `overflows` and does not end the stream.
    public func receive(timeoutMilliseconds: Int32) throws(AuditNetlinkError) -> [AuditNetlinkMessage] {
        var ready: [Int32] = []
        return try receive(timeoutMilliseconds: timeoutMilliseconds, alsoWaitingOn: [], ready: &ready)
    }

    /// The same, and the wait also ends as soon as one of `others` (the caller's other sources) is
    /// readable; `ready` is set to those that are. What is returned is only what the audit socket had.
    public func receive(timeoutMilliseconds: Int32, alsoWaitingOn others: [Int32], ready: inout [Int32]) throws(AuditNetlinkError)
        -> [AuditNetlinkMessage]
    {
        if !backlog.isEmpty {
            defer { backlog.removeAll() }
            return backlog
        }
        return try read(timeoutMilliseconds: timeoutMilliseconds, alsoWaitingOn: others, ready: &ready)
    }

    private func read(timeoutMilliseconds: Int32) throws(AuditNetlinkError) -> [AuditNetlinkMessage] {
        var ready: [Int32] = []
        return try read(timeoutMilliseconds: timeoutMilliseconds, alsoWaitingOn: [], ready: &ready)
    }

    private func read(timeoutMilliseconds: Int32, alsoWaitingOn others: [Int32], ready: inout [Int32]) throws(AuditNetlinkError)
        -> [AuditNetlinkMessage]
    {
        var pollers = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
        for other in others where other >= 0 { pollers.append(pollfd(fd: other, events: Int16(POLLIN), revents: 0)) }
        let count = poll(&pollers, nfds_t(pollers.count), timeoutMilliseconds)
        if count < 0 {
            if errno == EINTR { return [] }
            throw AuditNetlinkError("poll", code: errno)
        }
        ready = pollers.dropFirst().filter { $0.revents != 0 }.map(\.fd)
        guard count > 0, pollers[0].revents != 0 else { return [] }
        var messages: [AuditNetlinkMessage] = []
        // Drain what is queued without blocking, so a burst is read in one go.
        try NetlinkSocket.drain(descriptor, receiver: receiver, overflows: &overflows, name: "NETLINK_AUDIT") { datagram in
            Self.split(datagram, into: &messages)
        }
        return messages
    }

    static func split(_ bytes: UnsafeRawBufferPointer, into messages: inout [AuditNetlinkMessage]) {
        let headerSize = MemoryLayout<nlmsghdr>.size
        let count = bytes.count
        var offset = 0
        while offset + headerSize <= count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let type = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            let sequence = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            if isRecord(type) {
                // kauditd sends each record in a datagram of its own and sets nlmsg_len to the
                // payload length alone (a historical quirk kept for compatibility); newer kernels
                // may count the header. Take the payload up to the length, within the datagram.
                let end = min(offset + headerSize + length, count)
                messages.append(
                    AuditNetlinkMessage(type: type, sequence: sequence, payload: Array(bytes[(offset + headerSize)..<end])))
                return
            }
            guard length >= headerSize else { return }
            let end = min(offset + length, count)
            messages.append(
                AuditNetlinkMessage(type: type, sequence: sequence, payload: Array(bytes[(offset + headerSize)..<end])))
            offset += NetlinkSocket.align(length)
        }
    }

    // MARK: Helpers

    static func decodeStatus(_ payload: [UInt8]) -> AuditStatus {
        var words = [UInt32](repeating: 0, count: 11)
        payload.withUnsafeBytes { bytes in
            for index in 0..<min(11, bytes.count / 4) {
                words[index] = bytes.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)
            }
        }
        var status = AuditStatus()
        status.enabled = words[1]
        status.failure = words[2]
        status.pid = words[3]
        status.rateLimit = words[4]
        status.backlogLimit = words[5]
        status.lost = words[6]
        status.backlog = words[7]
        status.featureBitmap = words[8]
        status.backlogWaitTime = words[9]
        return status
    }

    /// Whether a message type is an audit record (LOGIN, and the 1100–2999 event range) rather than
    /// a control message.
    public static func isRecord(_ type: UInt16) -> Bool {
        type == UInt16(AUDIT_LOGIN) || (type >= 1100 && type < 3000)
    }

    static func name(_ type: UInt16) -> String {
        switch Int32(type) {
        case AUDIT_GET: "AUDIT_GET"
        case AUDIT_SET: "AUDIT_SET"
        case AUDIT_ADD_RULE: "AUDIT_ADD_RULE"
        case AUDIT_DEL_RULE: "AUDIT_DEL_RULE"
        case AUDIT_LIST_RULES: "AUDIT_LIST_RULES"
        default: "audit message \(type)"
        }
    }
}
