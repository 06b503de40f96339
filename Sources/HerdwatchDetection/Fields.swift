import HerdwatchAudit

/// The ECS fields a rule can read. Sigma field names (`Image`, `TargetFilename`, ...) resolve to
/// these through `FieldMapping`; rules may also name them directly (`event.action`).
public enum ECSField: String, Sendable, CaseIterable {
    case eventAction = "event.action"
    case eventCategory = "event.category"
    case eventType = "event.type"
    case eventOutcome = "event.outcome"
    case eventModule = "event.module"
    case eventID = "event.id"
    case hostName = "host.name"
    case message
    case tags
    case errorCode = "error.code"
    case containerID = "container.id"

    case processPID = "process.pid"
    case processName = "process.name"
    case processExecutable = "process.executable"
    case processCommandLine = "process.command_line"
    case processArgs = "process.args"
    case processArgsCount = "process.args_count"
    case processTitle = "process.title"
    case processWorkingDirectory = "process.working_directory"
    case processEntityID = "process.entity_id"
    case processExitCode = "process.exit_code"
    case parentPID = "process.parent.pid"
    case parentName = "process.parent.name"
    case parentExecutable = "process.parent.executable"
    case parentArgs = "process.parent.args"
    /// Not written by the encoder: the parent's arguments joined by spaces.
    case parentCommandLine = "process.parent.command_line"
    case parentEntityID = "process.parent.entity_id"
    case sessionLeaderEntityID = "process.session_leader.entity_id"
    case ancestry = "process.Ext.ancestry"

    case userID = "user.id"
    case userName = "user.name"
    case userGroupID = "user.group.id"
    case userGroupName = "user.group.name"
    case userEffectiveID = "user.effective.id"
    case userEffectiveName = "user.effective.name"
    case userAuditID = "user.audit.id"
    case userAuditName = "user.audit.name"

    case filePath = "file.path"
    case fileMode = "file.mode"
    case fileType = "file.type"
    case fileUID = "file.uid"
    case fileOwner = "file.owner"
    case fileInode = "file.inode"

    case sourceIP = "source.ip"
    case sourcePort = "source.port"
    case sourceAddress = "source.address"
    case sourceDomain = "source.domain"
    case destinationIP = "destination.ip"
    case destinationPort = "destination.port"
    case destinationAddress = "destination.address"
    case destinationDomain = "destination.domain"
    case networkType = "network.type"
    case networkDirection = "network.direction"

    case auditRecordType = "auditd.record_type"
    case auditSyscall = "auditd.syscall"
    case auditArch = "auditd.arch"
    case auditResult = "auditd.result"
    case auditSession = "auditd.session"
    case auditTTY = "auditd.tty"
    /// Every PATH item's name (`auditd.paths[].name`).
    case auditPathNames = "auditd.paths.name"
    case firstSeen = "herdwatch.first_seen"
    case agentLostTotal = "herdwatch.agent.lost_total"
    case lossCount = "herdwatch.loss.count"
    case lossSource = "herdwatch.loss.source"
}

/// A field's value in one event.
public enum FieldValue: Sendable, Equatable {
    case string(String)
    case number(Int64)
    case strings([String])
    case bool(Bool)

    /// The values a pattern is tried against (any may match).
    @inlinable
    func forEach(_ body: (String) -> Bool) -> Bool {
        switch self {
        case .string(let text): return body(text)
        case .number(let number): return body(String(number))
        case .bool(let flag): return body(flag ? "true" : "false")
        case .strings(let list):
            for item in list where body(item) { return true }
            return false
        }
    }

    var isEmpty: Bool {
        switch self {
        case .string(let text): text.isEmpty
        case .strings(let list): list.isEmpty
        case .number, .bool: false
        }
    }

    var number: Double? {
        switch self {
        case .number(let value): Double(value)
        case .string(let text): Double(text)
        case .strings(let list): list.first.flatMap(Double.init)
        case .bool: nil
        }
    }

    /// One text form (the first element of a list): group-by keys, alert summaries.
    public var text: String {
        switch self {
        case .string(let text): text
        case .number(let number): String(number)
        case .bool(let flag): flag ? "true" : "false"
        case .strings(let list): list.joined(separator: ",")
        }
    }
}

/// One event as rules see it: its ECS fields and, for `service: auditd` rules, its raw audit
/// records one by one (Sigma's auditd rules are written against single records).
///
/// Two forms implement it: `EventSubject` (an `Event`: replay, the agent) and `JSONSubject` (what
/// the server receives).
public protocol DetectionSubject {
    /// `event.action` (routing reads it for every event).
    var action: String { get }
    /// `event.module`.
    var module: String { get }
    func value(of field: ECSField) -> FieldValue?
    var recordCount: Int { get }
    /// The record's type name (`SYSCALL`, `EXECVE`, `PATH`).
    func recordType(at index: Int) -> String
    /// A record field, decoded (hex strings, EXECVE arguments); upper-case names are auditd's
    /// interpretations (`SYSCALL`, `UID`), taken from the ENRICHED form or the event.
    func recordValue(at index: Int, key: String) -> FieldValue?
    /// Bits (`KeySignature.bit`) of the record's raw field names: a rule that needs a field the
    /// record lacks is not tried on it.
    func recordKeySignature(at index: Int) -> UInt64
    /// The same value as `recordValue` for the program's record field `field`, as bytes that stay
    /// valid until the next call on this subject; nil when the record lacks the field. The hot path
    /// of record rules: no `String`, no closure, no reference retained per lookup.
    func recordBytes(at index: Int, field: Int32, program: Program) -> UnsafeBufferPointer<UInt8>?
    /// The record's type number (1300 for SYSCALL); 0 when unknown (buckets are then found by name).
    func recordTypeNumber(at index: Int) -> UInt16
    /// Every value of the record, decoded, for keyword searches.
    func recordValues(at index: Int) -> [String]
    /// The event's own text for keyword searches outside auditd: the message, command line, paths.
    var keywordValues: [String] { get }
    /// When the event happened, in milliseconds since the epoch (correlation windows use it).
    var timeMilliseconds: Int64 { get }
}

extension DetectionSubject {
    public func recordTypeNumber(at index: Int) -> UInt16 { 0 }

    public var action: String { value(of: .eventAction)?.text ?? "" }
    public var module: String { value(of: .eventModule)?.text ?? "" }
}

/// Bytes a subject hands out by pointer (decoded values, copies of strings): reused from lookup
/// to lookup, so a pointer into it holds until the next one.
final class ScratchBytes {
    private var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int

    init() {
        capacity = 256
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    /// Room for `count` bytes (contents not kept).
    func reserve(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        if count > capacity {
            storage.deallocate()
            capacity = max(count, capacity * 2)
            storage = .allocate(capacity: capacity)
        }
        return storage
    }

    /// A copy of `text`'s UTF-8.
    func copy(_ text: String) -> UnsafeBufferPointer<UInt8> {
        var text = text
        return text.withUTF8 { bytes in
            let target = reserve(bytes.count)
            if let base = bytes.baseAddress { target.update(from: base, count: bytes.count) }
            return UnsafeBufferPointer(start: target, count: bytes.count)
        }
    }

    /// `hex` decoded, or nil when it is not an even run of hex digits.
    func decodeHex(_ hex: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        let target = reserve(hex.count / 2)
        guard AuditDecoding.decodeHex(hex, into: target) else { return nil }
        return UnsafeBufferPointer(start: target, count: hex.count / 2)
    }
}

/// A raw record field name as a rule reads it, with what every lookup would otherwise work out
/// again from the name. Plain bits (the name is held inline): passing one copies no reference.
public struct RecordKey: Sendable, BitwiseCopyable {
    /// The name's bytes (up to 16), zero-padded.
    let low: UInt64
    let high: UInt64
    let count: Int
    /// Its `KeySignature` bit.
    let bit: UInt64
    /// `aN`: N (an EXECVE argument); -1 otherwise.
    let argument: Int
    /// The kernel may write it as hex (`RecordKeys.mayBeHex`, EXECVE arguments aside).
    let hexCapable: Bool
    /// A raw field (lower-case, not `type`) of at most 16 bytes: found in the record's own bytes.
    /// Other names (auditd's interpretations) go through `recordValue`.
    let isDirect: Bool

    init(_ name: String) {
        var bytes = Array(name.utf8.prefix(16))
        count = name.utf8.count
        bytes += Array(repeating: 0, count: 16 - bytes.count)
        low = bytes[0..<8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        high = bytes[8..<16].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        bit = KeySignature.bit(name.utf8)
        argument = RecordKeys.argumentIndex(name) ?? -1
        hexCapable = RecordKeys.mayBeHex(name, recordType: 0)
        isDirect = count <= 16 && RecordKeys.isRaw(name)
    }

    /// Whether `bytes[start..<start + count]` is this name.
    @inline(__always)
    func isName(in bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        var offset = 0
        while offset < count {
            let word = offset < 8 ? low : high
            let byte = UInt8(truncatingIfNeeded: word >> (UInt64(offset & 7) * 8))
            if bytes[start &+ offset] != byte { return false }
            offset &+= 1
        }
        return true
    }
}

/// A 64-bit signature of a record's field names: one bit per name, hashed.
public enum KeySignature {
    /// A name's bit, from its first and last bytes and its length only: three reads per name,
    /// whatever its length (a signature only has to say "surely absent"; collisions are allowed).
    @inline(__always)
    static func bit(first: UInt8, last: UInt8, count: Int) -> UInt64 {
        let packed = UInt64(first) << 24 | UInt64(last) << 16 | UInt64(truncatingIfNeeded: count & 0xFFFF)
        return 1 << ((packed &* 0x9E37_79B9_7F4A_7C15) >> 58)
    }

    @inline(__always)
    public static func bit<C: Collection<UInt8>>(_ key: C) -> UInt64 {
        guard let first = key.first else { return 1 }
        var last = first
        for byte in key { last = byte }
        return bit(first: first, last: last, count: key.count)
    }

    @inline(__always)
    public static func bit(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        guard let first = key.first else { return 1 }
        return bit(first: first, last: key[key.count &- 1], count: key.count)
    }

    /// The bits of `a0`…`a(count-1)`, EXECVE's argument names.
    public static func arguments(_ count: Int) -> UInt64 {
        if count < argumentMasks.count { return argumentMasks[count] }
        var mask = argumentMasks[argumentMasks.count - 1]
        for position in (argumentMasks.count - 1)..<count { mask |= bit("a\(position)".utf8) }
        return mask
    }

    /// `argumentMasks[n]`: the bits of the first n argument names.
    private static let argumentMasks: [UInt64] = {
        var masks: [UInt64] = [0]
        var mask: UInt64 = 0
        for position in 0..<4096 {
            mask |= bit("a\(position)".utf8)
            masks.append(mask)
        }
        return masks
    }()
}
