import Foundation

/// Starts a server process with an empty signal mask and default signal handlers (a test thread
/// may block SIGTERM, and a child would inherit that), output to /dev/null or a file.
public func spawnServer(_ arguments: [String], log: String = "/dev/null") throws -> pid_t {
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
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let status = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
    guard status == 0 else {
        throw NSError(domain: "spawn", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "cannot start \(arguments[0])"])
    }
    return pid
}

/// Signals a server and reaps it; SIGKILL after `seconds`.
public func stopServer(_ pid: pid_t, signal: Int32 = SIGTERM, seconds: Double = 10) {
    kill(pid, signal)
    var status: Int32 = 0
    for _ in 0..<Int(seconds * 20) {
        if waitpid(pid, &status, WNOHANG) == pid { return }
        usleep(50_000)
    }
    kill(pid, SIGKILL)
    waitpid(pid, &status, 0)
}
