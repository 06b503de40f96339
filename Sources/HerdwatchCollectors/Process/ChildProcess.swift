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
        var pid: pid_t = 0
        let result = spawnWithDefaultSignals(arguments, pid: &pid) { (actions: inout posix_spawn_file_actions_t) in
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
        }
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else {
            if pipeEnds[0] >= 0 { close(pipeEnds[0]) }
            throw Failure(program: arguments[0], code: result)
        }
        if pipeEnds[0] >= 0 { _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC) }
        return (pid, pipeEnds[0] >= 0 ? pipeEnds[0] : nil)
    }

    /// How a program run by `run` ended, and what it wrote.
    public struct Completion: Sendable {
        /// The exit status, or 128 + the signal that ended it.
        public var status: Int32
        public var output: [UInt8]
        public var error: [UInt8]
        public var succeeded: Bool { status == 0 }
    }

    /// Runs `arguments[0]` to its end with `input` (at most 64 KiB) on its standard input, and
    /// collects its standard output and standard error. The input is in the pipe before the child
    /// starts, so a child that never reads it cannot block the caller or raise SIGPIPE.
    public static func run(_ arguments: [String], input: [UInt8] = []) throws -> Completion {
        guard input.count <= 65_536 else { throw Failure(program: arguments[0], code: E2BIG) }
        var inputEnds: [Int32] = [-1, -1]
        var outputEnds: [Int32] = [-1, -1]
        var errorEnds: [Int32] = [-1, -1]
        defer { for end in inputEnds + outputEnds + errorEnds where end >= 0 { close(end) } }
        guard pipe(&inputEnds) == 0, pipe(&outputEnds) == 0, pipe(&errorEnds) == 0 else {
            throw Failure(program: arguments[0], code: errno)
        }
        for end in inputEnds + outputEnds + errorEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        var written = 0
        while written < input.count {
            let count = input[written...].withUnsafeBytes { write(inputEnds[1], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw Failure(program: arguments[0], code: errno) }
            written += count
        }
        close(inputEnds[1])
        inputEnds[1] = -1

        var pid: pid_t = 0
        let result = spawnWithDefaultSignals(arguments, pid: &pid) { (actions: inout posix_spawn_file_actions_t) in
            // dup2 clears close-on-exec on the copies; the originals close at exec.
            posix_spawn_file_actions_adddup2(&actions, inputEnds[0], 0)
            posix_spawn_file_actions_adddup2(&actions, outputEnds[1], 1)
            posix_spawn_file_actions_adddup2(&actions, errorEnds[1], 2)
        }
        guard result == 0 else { throw Failure(program: arguments[0], code: result) }
        // The child's ends, so that its exit ends the reads below.
        close(outputEnds[1])
        outputEnds[1] = -1
        close(errorEnds[1])
        errorEnds[1] = -1

        var output: [UInt8] = []
        var error: [UInt8] = []
        var open = [outputEnds[0], errorEnds[0]]
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while open.contains(where: { $0 >= 0 }) {
            var polled = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&polled, nfds_t(polled.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in polled.indices where polled[index].fd >= 0 && polled[index].revents != 0 {
                let count = chunk.withUnsafeMutableBytes { read(polled[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if index == 0 { output += chunk[0..<count] } else { error += chunk[0..<count] }
                } else if count == 0 || errno != EINTR {
                    open[index] = -1
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift cannot import.
        let signal = status & 0x7f
        return Completion(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, output: output, error: error)
    }

    /// posix_spawn with an empty signal mask and default handlers (a test thread may block SIGTERM,
    /// and a child would inherit that); `files` sets up the child's descriptors.
    private static func spawnWithDefaultSignals(
        _ arguments: [String], pid: inout pid_t, files: (inout posix_spawn_file_actions_t) -> Void
    ) -> Int32 {
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
        files(&actions)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        return posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
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
