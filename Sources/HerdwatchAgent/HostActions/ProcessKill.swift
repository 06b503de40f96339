import CLinuxProcess
import HerdwatchCollectors

#if canImport(Glibc)
import Glibc
#endif

/// Kills a process named by its entity id (`BOOTID8-PID-STARTTICKS`, see
/// `ProcessTable.entityID(pid:startTicks:)`), never another process that got its pid.
///
/// The order closes the race with pid reuse: a pidfd is opened first and pins the process that has
/// the pid at that moment; then /proc/PID/stat must show the id's start tick (were that process to
/// end and its pid go to another before the read, the tick would differ and nothing is sent); the
/// signal then goes through the pidfd, which can only reach the pinned process.
public enum ProcessKill {
    /// Sends SIGKILL to the process `entityID` names. `bootID` is this boot's id
    /// (/proc/sys/kernel/random/boot_id when nil).
    ///
    /// A generation suffix (`-N`, given by the process table when a pid was reused within one
    /// clock tick) is accepted; the kernel's start times cannot tell such twins apart, so the id
    /// matches the live process with that pid and start tick.
    public static func kill(entityID: String, bootID: String? = nil) -> KillOutcome {
        let target: Target
        switch Target.parse(entityID) {
        case .success(let parsed): target = parsed
        case .failure(let problem): return .badEntityID(entityID, reason: problem.reason)
        }
        if target.pid == 1 { return .refused(entityID, reason: "pid 1 is init") }
        if target.pid == getpid() { return .refused(entityID, reason: "it is the agent itself") }
        if target.pid == 2 { return .refused(entityID, reason: "pid 2 is the kernel's thread creator") }

        guard let boot = bootID ?? ProcessTable.readBootID() else {
            return .failed(entityID, operation: "read /proc/sys/kernel/random/boot_id", code: errno)
        }
        guard boot.utf8.count >= 8, target.bootPrefix == String(boot.prefix(8)) else {
            return .notRunning(entityID, because: .otherBoot(current: String(boot.prefix(8))))
        }

        let pidfd = herdwatch_pidfd_open(target.pid, 0)
        guard pidfd >= 0 else {
            let code = errno
            return code == ESRCH ? .notRunning(entityID, because: .exited) : .failed(entityID, operation: "pidfd_open", code: code)
        }
        defer { close(pidfd) }

        guard let stat = ProcessTable.readFile("/proc/\(target.pid)/stat"), !stat.isEmpty else {
            // The pinned process ended (and was reaped) after pidfd_open.
            return .notRunning(entityID, because: .exited)
        }
        guard let parsed = ProcessTable.parseStat(stat) else {
            return .failed(entityID, operation: "parse /proc/\(target.pid)/stat", code: EINVAL)
        }
        guard parsed.startTicks == target.startTicks else {
            return .notRunning(entityID, because: .pidReused(currentStartTicks: parsed.startTicks))
        }
        if state(stat) == UInt8(ascii: "Z") || state(stat) == UInt8(ascii: "X") {
            return .notRunning(entityID, because: .exited)
        }
        if parsed.parentPID == 2 { return .refused(entityID, reason: "it is a kernel thread") }

        guard herdwatch_pidfd_send_signal(pidfd, SIGKILL) == 0 else {
            let code = errno
            return code == ESRCH
                ? .notRunning(entityID, because: .exited) : .failed(entityID, operation: "pidfd_send_signal", code: code)
        }
        return .killed(entityID, pid: target.pid)
    }

    /// The state letter of a /proc/PID/stat line (the field after the name's last ')').
    private static func state(_ stat: [UInt8]) -> UInt8? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return nil }
        return stat[close + 2]
    }

    struct Target {
        var bootPrefix: String
        var pid: Int32
        var startTicks: UInt64

        struct Problem: Error {
            var reason: String
        }

        /// `BOOTID8-PID-STARTTICKS` with an optional `-GENERATION`: 8 lowercase hex digits, then
        /// plain decimal numbers (no sign, no leading zero).
        static func parse(_ text: String) -> Result<Target, Problem> {
            let parts = Array(text.utf8).split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
            guard parts.count == 3 || parts.count == 4 else {
                return .failure(Problem(reason: "expected BOOTID8-PID-STARTTICKS, found \(parts.count) part(s) separated by '-'"))
            }
            let boot = parts[0]
            guard boot.count == 8, boot.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                return .failure(Problem(reason: "the boot id prefix must be 8 lowercase hex digits"))
            }
            guard let pid = decimal(parts[1]), pid > 0, pid <= UInt64(Int32.max) else {
                return .failure(Problem(reason: "the pid must be a decimal number from 1 to \(Int32.max)"))
            }
            guard let ticks = decimal(parts[2]) else {
                return .failure(Problem(reason: "the start ticks must be a decimal number"))
            }
            if parts.count == 4 {
                guard let generation = decimal(parts[3]), generation > 0 else {
                    return .failure(Problem(reason: "the generation suffix must be a decimal number from 1"))
                }
            }
            return .success(Target(bootPrefix: String(decoding: boot, as: UTF8.self), pid: Int32(pid), startTicks: ticks))
        }

        private static func decimal(_ digits: ArraySlice<UInt8>) -> UInt64? {
            guard !digits.isEmpty, digits.count <= 20, digits.count == 1 || digits.first != UInt8(ascii: "0") else { return nil }
            var value: UInt64 = 0
            for digit in digits {
                guard (48...57).contains(digit) else { return nil }
                let (times, overflow) = value.multipliedReportingOverflow(by: 10)
                let (sum, carry) = times.addingReportingOverflow(UInt64(digit - 48))
                guard !overflow, !carry else { return nil }
                value = sum
            }
            return value
        }
    }
}

/// What `ProcessKill.kill` did, with the entity id it was asked about.
public enum KillOutcome: Sendable, Equatable, CustomStringConvertible {
    public enum Absence: Sendable, Equatable {
        /// No process has the pid (or only its zombie is left).
        case exited
        /// Another process has the pid now (it started at another clock tick).
        case pidReused(currentStartTicks: UInt64)
        /// The id is from another boot (`current` is this boot's id prefix).
        case otherBoot(current: String)
    }

    case killed(String, pid: Int32)
    case notRunning(String, because: Absence)
    case badEntityID(String, reason: String)
    case refused(String, reason: String)
    /// A system call failed (`code` is its errno).
    case failed(String, operation: String, code: Int32)

    /// True only when the signal was delivered.
    public var succeeded: Bool {
        if case .killed = self { return true }
        return false
    }

    public var entityID: String {
        switch self {
        case .killed(let id, _), .notRunning(let id, _), .badEntityID(let id, _), .refused(let id, _), .failed(let id, _, _):
            return id
        }
    }

    public var description: String {
        switch self {
        case .killed(let id, let pid):
            return "killed \(id) (pid \(pid), SIGKILL)"
        case .notRunning(let id, .exited):
            return "not running: \(id) has exited"
        case .notRunning(let id, .pidReused(let ticks)):
            return "not running: \(id) has exited and its pid now belongs to another process (started at tick \(ticks)); nothing was sent"
        case .notRunning(let id, .otherBoot(let current)):
            return "not running: \(id) is from another boot (this boot's id begins \(current))"
        case .badEntityID(let id, let reason):
            // Escaped and cut short: the text came from outside.
            let shown = id.count > 80 ? "\(id.prefix(80))…" : id
            return "bad entity id \(shown.debugDescription): \(reason)"
        case .refused(let id, let reason):
            return "refused to kill \(id): \(reason)"
        case .failed(let id, let operation, let code):
            return "cannot kill \(id): \(operation) failed: \(String(cString: strerror(code)))"
        }
    }
}
