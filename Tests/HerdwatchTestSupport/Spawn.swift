import HerdwatchCollectors

#if canImport(Glibc)
import Glibc
#endif

/// Starts a server process with an empty signal mask and default signal handlers (a test thread
/// may block SIGTERM, and a child would inherit that), its standard error appended to `log`.
public func spawnServer(_ arguments: [String], log: String = "/dev/null") throws -> pid_t {
    try ChildProcess.spawn(arguments, standardError: .appending(log)).pid
}

/// Signals a server and reaps it; SIGKILL after `seconds`.
public func stopServer(_ pid: pid_t, signal: Int32 = SIGTERM, seconds: Int = 10) {
    ChildProcess.terminate(pid, signal: signal, gracePeriodSeconds: seconds)
}
