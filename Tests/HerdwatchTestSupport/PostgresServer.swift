import Foundation
import HerdwatchCollectors

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL 15 server of the test's own: a new cluster (`initdb`, trust authentication) in a
/// temporary folder, listening on 127.0.0.1 on a free port with its Unix socket in that folder, and
/// a database `herdwatch`. As root it runs as the `postgres` user (initdb refuses root). It never
/// touches the system's clusters; `deinit` stops it by its PID (fast shutdown) and deletes the
/// folder, also when starting failed half-way.
///
/// `@unchecked Sendable`: its one mutable property, the PID, changes only in `init` and `stop()`,
/// which a test calls from one task.
public final class PostgresServer: @unchecked Sendable {
    public static let binaries = "/usr/lib/postgresql/15/bin"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: "\(binaries)/initdb") }

    public struct Failure: Error, CustomStringConvertible {
        public var step: String
        public var log: String
        public var description: String { "PostgreSQL test server: \(step) failed\(log.isEmpty ? "" : ":\n\(log)")" }
    }

    public let folder: URL
    public let port: Int
    public let database = "herdwatch"
    public var data: String { folder.appendingPathComponent("data").path }
    /// For `PostgresStore.Configuration(url:)`.
    public var url: String { "postgres://postgres@127.0.0.1:\(port)/\(database)" }
    private var runner: pid_t?
    /// `runuser -u postgres --` when running as root.
    private let asServerUser: [String]

    public init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-pg-\(UUID().uuidString)")
        port = NATSServer.freePort()
        if getuid() == 0 {
            asServerUser = [["/usr/sbin/runuser", "/sbin/runuser"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "runuser", "-u", "postgres", "--"]
        } else {
            asServerUser = []
        }
        do {
            try start()
        } catch {
            stop()
            try? FileManager.default.removeItem(at: folder)
            throw error
        }
    }

    /// Starts a server on a thread of its own: initdb and the wait for the server block for
    /// seconds, and Swift concurrency's threads (one per core) belong to the tests.
    public static func start() async throws -> PostgresServer {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try PostgresServer() }) }.start()
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: folder)
    }

    private func start() throws {
        guard Self.available else { throw Failure(step: "finding \(Self.binaries)/initdb (apt-get install postgresql)", log: "") }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if !asServerUser.isEmpty {
            guard let account = getpwnam("postgres") else { throw Failure(step: "finding the postgres user", log: "") }
            guard chown(folder.path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                throw Failure(step: "chown \(folder.path) to postgres", log: String(cString: strerror(errno)))
            }
        }
        let log = folder.appendingPathComponent("server.log").path
        try run(
            asServerUser + ["\(Self.binaries)/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            step: "initdb", log: log)
        runner = try spawnServer(
            asServerUser + [
                "\(Self.binaries)/postgres", "-D", data, "-h", "127.0.0.1", "-p", "\(port)", "-k", folder.path,
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=50",
            ], log: log)
        // Ready when it answers; then the database.
        var ready = false
        for _ in 0..<300 where !ready {
            ready = (try? run(["\(Self.binaries)/pg_isready", "-q", "-h", "127.0.0.1", "-p", "\(port)"], step: "pg_isready", log: "/dev/null")) != nil
            if !ready { usleep(100_000) }
        }
        guard ready else { throw Failure(step: "waiting for the server on port \(port)", log: Self.tail(log)) }
        try execute("CREATE DATABASE \(database)", in: "postgres")
    }

    /// Runs SQL with psql as the superuser (for a test's own setup, not through the store).
    public func execute(_ sql: String, in database: String? = nil) throws {
        let log = folder.appendingPathComponent("psql.log").path
        try run(
            ["\(Self.binaries)/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres",
             "-d", database ?? self.database, "-c", sql],
            step: "psql -c \(sql)", log: log)
    }

    /// Fast shutdown (SIGINT) of the postmaster whose PID the data folder names, then the process
    /// the test started is reaped (SIGKILL after 15 s).
    public func stop() {
        guard let runner else { return }
        self.runner = nil
        let pidFile = (try? String(contentsOfFile: "\(data)/postmaster.pid", encoding: .utf8)) ?? ""
        if let line = pidFile.split(separator: "\n").first, let postmaster = pid_t(line), postmaster > 0 {
            kill(postmaster, SIGINT)
            var status: Int32 = 0
            for _ in 0..<150 {
                if waitpid(runner, &status, WNOHANG) == runner { return }
                usleep(100_000)
            }
            kill(postmaster, SIGQUIT)
        }
        stopServer(runner, signal: SIGINT, seconds: 5)
    }

    /// Runs a program to its end; throws with the log's end unless it exits 0.
    @discardableResult
    private func run(_ arguments: [String], step: String, log: String) throws -> Int32 {
        let child = try ChildProcess.spawn(arguments, standardOutput: .appending(log), standardError: .appending(log))
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else { throw Failure(step: step, log: Self.tail(log)) }
        return code
    }

    private static func tail(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").suffix(15).joined(separator: "\n")
    }
}
