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
    /// Every value of the record, decoded, for keyword searches.
    func recordValues(at index: Int) -> [String]
    /// The event's own text for keyword searches outside auditd: the message, command line, paths.
    var keywordValues: [String] { get }
    /// When the event happened, in milliseconds since the epoch (correlation windows use it).
    var timeMilliseconds: Int64 { get }
}

extension DetectionSubject {
    public var action: String { value(of: .eventAction)?.text ?? "" }
    public var module: String { value(of: .eventModule)?.text ?? "" }
}

/// A 64-bit signature of a record's field names: one bit per name, hashed.
public enum KeySignature {
    @inline(__always)
    public static func bit<C: Collection<UInt8>>(_ key: C) -> UInt64 {
        guard let first = key.first else { return 1 }
        var hash = UInt64(first) &* 31 &+ UInt64(key.count) &* 131
        for byte in key.dropFirst() { hash = hash &* 33 &+ UInt64(byte) }
        return 1 << (hash & 63)
    }
}
