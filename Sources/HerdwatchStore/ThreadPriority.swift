import CLinuxProcess

#if canImport(Glibc)
import Glibc
#endif

/// Work run at a lower CPU priority on the calling thread, and the thread's priority put back
/// after. The server's journal loader stores behind what it has acknowledged: on a busy server
/// its SQLite writes and compression should yield the cores to the batches agents are waiting on.
///
/// Linux lets a thread lower its own priority, but raising it back needs CAP_SYS_NICE (root has
/// it) or a high enough RLIMIT_NICE. Without either, a pooled thread would stay lowered and slow
/// whatever ran on it next, so the work then runs at the thread's priority unchanged.
public enum ThreadPriority {
    static let which = __priority_which_t(PRIO_PROCESS.rawValue)

    /// The calling thread's nice value.
    static func current() -> Int32 { getpriority(which, id_t(herdwatch_gettid())) }

    /// Runs `body` 10 nice levels down: work that yields to the rest of the process but holds
    /// something others may wait for (the store's writes for the server's journal loader).
    public static func background<T>(_ body: () throws -> T) rethrows -> T {
        try lowered(by: 10, body)
    }

    /// Linux's SCHED_IDLE (not exported to Swift by Glibc's headers).
    static let idlePolicy: Int32 = 5

    /// The calling thread's scheduling policy.
    static func policy() -> Int32 { sched_getscheduler(herdwatch_gettid()) }

    /// Runs `body` under SCHED_IDLE: it gets a core only when nothing else of normal priority wants
    /// it. For work that holds nothing others wait on (the journal loader's parsing and compression):
    /// on a busy server the batch checks agents wait on get the cores, whatever nice 10 would leave.
    /// Putting the thread back needs CAP_SYS_NICE; without it, `background`.
    public static func idle<T>(_ body: () throws -> T) rethrows -> T {
        let thread = herdwatch_gettid()
        guard hasSysNice, sched_getscheduler(thread) == SCHED_OTHER else { return try background(body) }
        var parameters = sched_param(sched_priority: 0)
        guard sched_setscheduler(thread, idlePolicy, &parameters) == 0 else { return try background(body) }
        defer { sched_setscheduler(thread, SCHED_OTHER, &parameters) }
        return try body()
    }

    /// Runs `body` with the calling thread's nice value raised by `niceness` (a lower priority),
    /// when the priority can be put back afterwards.
    public static func lowered<T>(by niceness: Int32, _ body: () throws -> T) rethrows -> T {
        let thread = id_t(herdwatch_gettid())
        errno = 0
        let current = getpriority(which, thread)
        guard errno == 0, current < 19, canRaise(to: current) else { return try body() }
        guard setpriority(which, thread, min(current + niceness, 19)) == 0 else { return try body() }
        defer { setpriority(which, thread, current) }
        return try body()
    }

    /// Whether a thread of this process may set its nice value back down to `nice`.
    static func canRaise(to nice: Int32) -> Bool {
        if hasSysNice { return true }
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(__RLIMIT_NICE.rawValue), &limit) == 0 else { return false }
        // RLIMIT_NICE's ceiling is 20 - limit (see setrlimit(2)).
        return limit.rlim_cur == rlim_t.max || 20 - Int64(limit.rlim_cur) <= Int64(nice)
    }

    /// CAP_SYS_NICE (bit 23) in the effective set, from /proc/self/status.
    static let hasSysNice: Bool = {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("CapEff:") else { continue }
            let hex = text.dropFirst("CapEff:".count).filter(\.isHexDigit)
            return UInt64(hex, radix: 16).map { $0 & (1 << 23) != 0 } ?? false
        }
        return false
    }()
}
