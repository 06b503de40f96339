/// What happened, in the terms a security team asks about.
///
/// Every kind maps to ECS `event.category`, `event.type` and `event.action`; see docs/ecs-mapping.md.
/// Nothing is dropped because the model lacks a case: `.syscall` carries any other syscall and `.other`
/// any other audit record type.
public enum EventKind: Sendable, Hashable {
    case processStart
    case processExit
    case fileOpen
    case fileCreate
    case fileWrite
    case fileDelete
    case fileRename
    case fileChmod
    case fileChown
    case fileAttributes
    case fileLink
    case networkConnect
    case networkAccept
    case networkBind
    case networkListen
    case userLogin
    case userLogout
    /// An authentication attempt (USER_AUTH, USER_ERR); `Event.outcome` tells success from failure.
    case authentication
    /// An account or authorization check (USER_ACCT).
    case authorization
    case sessionStart
    case sessionEnd
    /// A command run through sudo (USER_CMD).
    case userCommand
    /// Credentials acquired, refreshed or disposed (CRED_ACQ, CRED_REFR, CRED_DISP) — su and sudo.
    case credentialChange
    /// The login uid of a process was set (LOGIN).
    case loginUIDChange
    /// A process changed its identity: setuid, setresgid, setgroups, capset, ...
    case privilegeChange
    /// Users or groups were added, removed or changed (ADD_USER, USER_MGMT, GRP_MGMT, ...).
    case accountChange
    case moduleLoad
    case moduleUnload
    case ptrace
    case mount
    case unmount
    /// The kernel's audit configuration changed (CONFIG_CHANGE): rules added or removed, auditing toggled.
    case auditConfigChange
    /// The audit daemon started, stopped, rotated or reconfigured (DAEMON_*).
    case auditDaemon
    /// An access denied by a mandatory access control (SELinux AVC, AppArmor).
    case accessDenied
    /// The agent's periodic health report; see `Event.agentHealth`.
    case agentHeartbeat
    /// The host's monitoring level (telemetry profile) changed; see `Event.levelChange`.
    case levelChange
    /// Events counted instead of sent, by the telemetry policy; see `Event.aggregate`.
    case telemetryAggregate
    /// The agent carried out or refused a command from the server (kill, block, isolate, level);
    /// see `Event.response`.
    case responseAction
    /// The agent lost telemetry (kernel lost counter, socket overflow, events cut short); see `Event.loss`.
    case telemetryLoss
    /// Any syscall the model has no dedicated case for; the name is in `Event.audit.syscall`.
    case syscall
    /// Any other record type; the name is in `Event.audit.recordType`.
    case other
}

extension EventKind {
    /// ECS `event.category` values.
    public var categories: [StaticString] {
        switch self {
        case .processStart, .processExit, .ptrace: ["process"]
        case .fileOpen, .fileCreate, .fileWrite, .fileDelete, .fileRename, .fileChmod, .fileChown,
            .fileAttributes, .fileLink:
            ["file"]
        case .networkConnect, .networkAccept, .networkBind, .networkListen: ["network"]
        case .userLogin, .userLogout, .authentication: ["authentication"]
        case .authorization: ["iam"]
        case .sessionStart, .sessionEnd: ["session"]
        case .userCommand: ["process"]
        case .credentialChange, .loginUIDChange: ["authentication"]
        case .privilegeChange: ["process"]
        case .accountChange: ["iam"]
        case .moduleLoad, .moduleUnload: ["driver"]
        case .mount, .unmount: ["file"]
        case .auditConfigChange, .auditDaemon: ["configuration"]
        case .accessDenied: ["intrusion_detection"]
        case .telemetryLoss, .agentHeartbeat, .telemetryAggregate: ["host"]
        case .levelChange: ["configuration"]
        case .responseAction: ["host"]
        case .syscall, .other: []
        }
    }

    /// ECS `event.type` values.
    public var types: [StaticString] {
        switch self {
        case .processStart: ["start"]
        case .processExit: ["end"]
        case .ptrace: ["access"]
        case .fileOpen: ["access"]
        case .fileCreate: ["creation"]
        case .fileWrite, .fileChmod, .fileChown, .fileAttributes, .fileRename: ["change"]
        case .fileDelete: ["deletion"]
        case .fileLink: ["creation"]
        case .networkConnect, .networkAccept, .networkBind, .networkListen: ["connection"]
        case .userLogin: ["start"]
        case .userLogout: ["end"]
        case .authentication: ["info"]
        case .authorization: ["access"]
        case .sessionStart: ["start"]
        case .sessionEnd: ["end"]
        case .userCommand: ["start"]
        case .credentialChange, .loginUIDChange: ["change"]
        case .privilegeChange: ["change"]
        case .accountChange: ["change"]
        case .moduleLoad: ["start"]
        case .moduleUnload: ["end"]
        case .mount: ["creation"]
        case .unmount: ["deletion"]
        case .auditConfigChange: ["change"]
        case .auditDaemon: ["change"]
        case .accessDenied: ["denied"]
        case .telemetryLoss, .agentHeartbeat, .telemetryAggregate: ["info"]
        case .levelChange: ["change"]
        case .responseAction: ["change"]
        case .syscall, .other: ["info"]
        }
    }

    /// ECS `event.action`, stable kebab-case names.
    public var action: StaticString {
        switch self {
        case .processStart: "process-started"
        case .processExit: "process-exited"
        case .fileOpen: "file-opened"
        case .fileCreate: "file-created"
        case .fileWrite: "file-modified"
        case .fileDelete: "file-deleted"
        case .fileRename: "file-renamed"
        case .fileChmod: "file-permissions-changed"
        case .fileChown: "file-owner-changed"
        case .fileAttributes: "file-attributes-changed"
        case .fileLink: "file-linked"
        case .networkConnect: "network-connected"
        case .networkAccept: "network-accepted"
        case .networkBind: "network-bound"
        case .networkListen: "network-listening"
        case .userLogin: "user-login"
        case .userLogout: "user-logout"
        case .authentication: "user-authenticated"
        case .authorization: "user-authorized"
        case .sessionStart: "session-started"
        case .sessionEnd: "session-ended"
        case .userCommand: "user-command"
        case .credentialChange: "credentials-changed"
        case .loginUIDChange: "login-uid-changed"
        case .privilegeChange: "privileges-changed"
        case .accountChange: "account-changed"
        case .moduleLoad: "module-loaded"
        case .moduleUnload: "module-unloaded"
        case .ptrace: "process-traced"
        case .mount: "filesystem-mounted"
        case .unmount: "filesystem-unmounted"
        case .auditConfigChange: "audit-config-changed"
        case .auditDaemon: "audit-daemon-changed"
        case .accessDenied: "access-denied"
        case .telemetryLoss: "telemetry-loss"
        case .agentHeartbeat: "agent-heartbeat"
        case .levelChange: "monitoring-level-changed"
        case .responseAction: "response-action"
        case .telemetryAggregate: "events-aggregated"
        case .syscall: "syscall"
        case .other: "audit-record"
        }
    }
}

/// ECS `event.outcome`.
public enum Outcome: Sendable, Hashable {
    case success
    case failure
    case unknown

    public var name: StaticString {
        switch self {
        case .success: "success"
        case .failure: "failure"
        case .unknown: "unknown"
        }
    }
}

extension Event {
    /// `event.action` where the kind has no name of its own: other syscalls by their name, other
    /// record types in lower case with dashes (`USER_AVC` → `user-avc`); nil for every other kind,
    /// whose action is `kind.action`.
    public var specificAction: String? {
        if kind == .syscall, let name = audit?.syscall { return name }
        if kind == .other, let type = audit?.recordType {
            return String(decoding: type.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : ($0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : $0) }, as: UTF8.self)
        }
        return nil
    }
}
