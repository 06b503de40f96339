/// Where a rule's field is read from in an event.
public enum FieldRef: Sendable, Hashable {
    case ecs(ECSField)
    /// A raw audit record field (`service: auditd` rules): `type`, `a0`, `exe`, `SYSCALL`, ...
    case record(String)
    /// Sigma's `Initiated` (network_connection): `true` for connects, `false` for accepts.
    case initiated
    /// The basename of the process executable, lower-cased (used to index rules, not by rules).
    case imageName
    /// The same for the parent's executable.
    case parentImageName
    /// What keyword searches read: a record's values, or the event's message and command line.
    case keywordText

    public var name: String {
        switch self {
        case .ecs(let field): field.rawValue
        case .record(let key): "auditd record field \(key)"
        case .initiated: "Initiated (from event.action)"
        case .imageName: "basename of process.executable"
        case .parentImageName: "basename of process.parent.executable"
        case .keywordText: "keyword text"
        }
    }
}

/// The events a Sigma logsource describes, as our events express them.
public enum Route: String, Sendable, Hashable, CaseIterable {
    /// `category: process_creation`: `process-started` events.
    case processCreation = "process_creation"
    /// `category: file_event`: files created, modified, renamed or linked.
    case fileEvent = "file_event"
    case fileCreate = "file_create"
    case fileDelete = "file_delete"
    case fileChange = "file_change"
    case fileRename = "file_rename"
    /// `category: network_connection`: connects and accepts.
    case networkConnection = "network_connection"
    /// `service: auditd`: every raw audit record of every audit event, one at a time.
    case auditd
    /// `service: auth`, `sshd`, `sudo`, `su`, `login`: every auth-log event, and the login,
    /// authentication and sudo events the kernel's user-space records give.
    case auth
    /// `product: linux` with no category or service, and `service: syslog`: any log line we read
    /// (auth log messages) and any event's message.
    case anyLog = "linux"
    /// Herdwatch's own events by their ECS fields (`product: herdwatch`): every event.
    case herdwatch

    /// Event actions this route receives (nil: every event).
    var actions: Set<String>? {
        switch self {
        case .processCreation: ["process-started"]
        case .fileEvent: ["file-created", "file-modified", "file-renamed", "file-linked"]
        case .fileCreate: ["file-created", "file-linked"]
        case .fileDelete: ["file-deleted"]
        case .fileChange: ["file-modified", "file-permissions-changed", "file-owner-changed", "file-attributes-changed"]
        case .fileRename: ["file-renamed"]
        case .networkConnection: ["network-connected", "network-accepted"]
        case .auth:
            ["user-login", "user-logout", "user-authenticated", "user-authorized", "user-command", "credentials-changed",
             "session-started", "session-ended"]
        case .auditd, .anyLog, .herdwatch: nil
        }
    }
}

/// Sigma taxonomy → Herdwatch events: which events a logsource means and where each field is read.
/// docs/sigma.md documents the table.
public enum FieldMapping {
    public struct Unsupported: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Services the auth-log collector and the kernel's user-space records cover.
    static let authServices: Set<String> = ["auth", "sshd", "sudo", "su", "login", "passwd", "pam"]
    /// Services whose logs herdwatch reads no source for: rules load (and run on events that carry
    /// such lines, e.g. imported ones) but the check report warns.
    static let unreadServices: Set<String> = ["syslog", "cron", "clamav", "vsftpd", "guacamole", "auditd-daemon"]

    /// The route for a logsource, or why none exists.
    public static func route(product: String?, category: String?, service: String?) throws -> (Route, warning: String?) {
        if let product, product != "linux" && product != "herdwatch" {
            throw Unsupported(description: "logsource product '\(product)': herdwatch collects Linux events only")
        }
        if product == "herdwatch" && category == nil && service == nil { return (.herdwatch, nil) }
        if let category {
            switch category {
            case "process_creation": return (.processCreation, nil)
            case "file_event": return (.fileEvent, nil)
            case "file_create": return (.fileCreate, nil)
            case "file_delete": return (.fileDelete, nil)
            case "file_change": return (.fileChange, nil)
            case "file_rename": return (.fileRename, nil)
            case "network_connection": return (.networkConnection, nil)
            default:
                throw Unsupported(description: "logsource category '\(category)': no herdwatch source produces it")
            }
        }
        if let service {
            if service == "auditd" { return (.auditd, nil) }
            if authServices.contains(service) { return (.auth, nil) }
            if unreadServices.contains(service) {
                return (.anyLog, "logsource service '\(service)': no herdwatch collector reads these logs yet; the rule runs on events that carry such messages")
            }
            throw Unsupported(description: "logsource service '\(service)': no herdwatch source produces it")
        }
        return (.anyLog, nil)
    }

    /// Where `name` is read for rules of `route`.
    public static func field(_ name: String, route: Route) throws -> FieldRef {
        if let field = ECSField(rawValue: name) { return .ecs(field) }
        switch route {
        case .auditd:
            // Raw record fields: lower-case audit names and upper-case interpretations.
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 != UInt8(ascii: ".") }) else {
                throw Unsupported(description: "field '\(name)' is not an audit record field")
            }
            return .record(name)
        case .processCreation:
            if let field = processFields[name] { return .ecs(field) }
        case .fileEvent, .fileCreate, .fileDelete, .fileChange, .fileRename:
            if let field = fileFields[name] ?? processFields[name] { return .ecs(field) }
        case .networkConnection:
            if name == "Initiated" { return .initiated }
            if let field = networkFields[name] ?? processFields[name] { return .ecs(field) }
        case .auth, .anyLog:
            if let field = authFields[name] { return .ecs(field) }
        case .herdwatch:
            break
        }
        if windowsOnly.contains(name) {
            throw Unsupported(description: "field '\(name)' is Windows metadata (PE header, integrity level) Linux events do not have")
        }
        throw Unsupported(description: "field '\(name)' has no mapping for logsource \(route.rawValue)")
    }

    static let processFields: [String: ECSField] = [
        "Image": .processExecutable,
        "CommandLine": .processCommandLine,
        "ParentImage": .parentExecutable,
        "ParentCommandLine": .parentCommandLine,
        "User": .userName,
        "CurrentDirectory": .processWorkingDirectory,
        "ProcessId": .processPID,
        "ParentProcessId": .parentPID,
        "ProcessGuid": .processEntityID,
        "ParentProcessGuid": .parentEntityID,
        "LogonId": .auditSession,
        "TerminalSessionId": .auditSession,
        "ParentUser": .userAuditName,
    ]

    static let fileFields: [String: ECSField] = [
        "TargetFilename": .filePath,
    ]

    static let networkFields: [String: ECSField] = [
        "DestinationIp": .destinationIP,
        "DestinationPort": .destinationPort,
        "DestinationHostname": .destinationDomain,
        "SourceIp": .sourceIP,
        "SourcePort": .sourcePort,
        "SourceHostname": .sourceDomain,
    ]

    static let authFields: [String: ECSField] = [
        // sudo's USER= (the account the command runs as): the effective user of the sudo event.
        "USER": .userEffectiveName,
        "User": .userName,
        "SourceIp": .sourceIP,
        "Image": .processExecutable,
    ]

    static let windowsOnly: Set<String> = [
        "OriginalFileName", "Hashes", "Imphash", "IntegrityLevel", "Company", "Description", "Product",
        "FileVersion", "Signed", "Signature", "SignatureStatus",
    ]
}
