#if canImport(Glibc)
import Glibc
#endif

/// Child processes started with default signal handling: the caller's threads may block signals
/// (Dispatch and test runners do), and a child that inherited that mask would never see its SIGTERM.
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible {
        public var program: String
        public var code: Int32
        public var description: String { "cannot start \(program): \(String(cString: strerror(code)))" }
    }

    /// Where a standard stream of the child goes.
    public enum Output {
        /// A pipe whose read end `spawn` returns.
        case pipe
        /// /dev/null.
        case discard
        /// A file, created or truncated.
        case file(String)
        /// A file, created or appended to.
        case appending(String)
    }

    /// Starts `arguments[0]` with standard input from /dev/null. Returns its pid and, when
    /// `standardOutput` is `.pipe`, the read end of that pipe (close-on-exec).
    public static func spawn(_ arguments: [String], standardOutput: Output = .discard, standardError: Output = .discard)
        throws -> (pid: pid_t, output: Int32?)
    {
        var pipeEnds: [Int32] = [-1, -1]
        if case .pipe = standardOutput {
            guard pipe(&pipeEnds) == 0 else { throw Failure(program: arguments[0], code: errno) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (stream, output) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
            switch output {
            case .pipe:
                posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], stream)
            case .discard:
                posix_spawn_file_actions_addopen(&actions, stream, "/dev/null", O_WRONLY, 0)
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, stream, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            case .appending(let path):
                posix_spawn_file_actions_addopen(&actions, stream, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            }
        }
        if pipeEnds[0] >= 0 {
            posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
            posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
        }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else {
            if pipeEnds[0] >= 0 { close(pipeEnds[0]) }
            throw Failure(program: arguments[0], code: result)
        }
        if pipeEnds[0] >= 0 { _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC) }
        return (pid, pipeEnds[0] >= 0 ? pipeEnds[0] : nil)
    }

    /// `signal` (SIGTERM), then SIGKILL after `gracePeriodSeconds`; always reaped.
    public static func terminate(_ pid: pid_t, signal: Int32 = SIGTERM, gracePeriodSeconds: Int = 2) {
        kill(pid, signal)
        var status: Int32 = 0
        for _ in 0..<(gracePeriodSeconds * 10) {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(100_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }
}
