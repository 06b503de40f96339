import HerdwatchEvents

/// The classes a telemetry profile decides about, one per kind of activity.
public enum EventClass: String, CaseIterable, Sendable, Comparable {
    case process
    case file
    case network
    /// Logins, logouts, authentication attempts (failures included), sessions.
    case login
    /// Identity changes (setuid, capset), sudo and su, account changes, ptrace, denials.
    case privilege
    /// Kernel modules loaded or removed.
    case module
    /// The kernel's audit configuration and the audit daemon.
    case auditConfig = "audit-config"
    /// The agent itself: heartbeats, telemetry loss, level changes, aggregates.
    case health
    /// Everything else: other syscalls and record types.
    case other

    public init(_ kind: EventKind) {
        switch kind {
        case .processStart, .processExit: self = .process
        case .fileOpen, .fileCreate, .fileWrite, .fileDelete, .fileRename, .fileChmod, .fileChown, .fileAttributes,
            .fileLink, .mount, .unmount:
            self = .file
        case .networkConnect, .networkAccept, .networkBind, .networkListen: self = .network
        case .userLogin, .userLogout, .authentication, .authorization, .sessionStart, .sessionEnd, .loginUIDChange:
            self = .login
        case .privilegeChange, .userCommand, .credentialChange, .accountChange, .ptrace, .accessDenied:
            self = .privilege
        case .moduleLoad, .moduleUnload: self = .module
        case .auditConfigChange, .auditDaemon: self = .auditConfig
        case .agentHeartbeat, .telemetryLoss, .levelChange, .telemetryAggregate, .responseAction: self = .health
        case .syscall, .other: self = .other
        }
    }

    /// Never sampled, aggregated or turned off, whatever a profile says; configuration can only add
    /// to this list.
    public static let alwaysKept: Set<EventClass> = [.login, .privilege, .module, .auditConfig, .health]

    public static func < (a: EventClass, b: EventClass) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
