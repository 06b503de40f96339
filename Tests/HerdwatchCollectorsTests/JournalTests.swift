import Foundation
import HerdwatchEvents
import Logging
import Testing

@testable import HerdwatchCollectors

/// The journal source against a real systemd-journald: the host's, or one started for the test (and
/// stopped by its pid) when none runs.
@Suite(.serialized) struct JournalTests {
    static let journald = "/lib/systemd/systemd-journald"
    static let available =
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/journalctl")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-cat")
        && (FileManager.default.fileExists(atPath: "/run/systemd/journal/socket")
            || FileManager.default.isExecutableFile(atPath: journald))

    @Test(.enabled(if: available, "needs root, journalctl, systemd-cat and systemd-journald"))
    func sshdAndSudoMessagesFromTheJournal() throws {
        var started: pid_t = 0
        if !Self.journaldRunning() {
            started = try spawnWithDefaultSignals(Self.journald, [])
            for _ in 0..<50 where !Self.journaldRunning() { usleep(100_000) }
        }
        defer {
            if started > 0 { ChildProcess.terminate(started) }
        }
        try #require(Self.journaldRunning(), "journald did not start")

        var logger = Logger(label: "test")
        logger.logLevel = .error
        let source = try JournalSource(hostName: nil, logger: logger)
        defer { source.stop() }
        // journalctl opens the journal and seeks to its end before it sees anything: a login of a
        // probe user, repeated until one comes through, says it follows (a fixed sleep was not
        // always enough on a loaded machine).
        let probe = "hw-probe-\(UUID().uuidString.prefix(8).lowercased())"
        var following = false
        let readyBy = Date().addingTimeInterval(15)
        while !following, Date() < readyBy {
            try runProgram("/usr/bin/systemd-cat", ["-t", "sshd", "/bin/echo", "Accepted publickey for \(probe) from 192.0.2.1 port 1 ssh2: ED25519 SHA256:x"])
            for _ in 0..<5 where !following {
                usleep(100_000)
                try source.poll { event in if event.user?.user?.name == probe { following = true } }
            }
        }
        try #require(following, "the journal source never saw a message")

        let user = "hw-journal-\(UUID().uuidString.prefix(8).lowercased())"
        try runProgram("/usr/bin/systemd-cat", ["-t", "sshd", "/bin/echo", "Accepted publickey for \(user) from 192.0.2.7 port 50022 ssh2: ED25519 SHA256:x"])
        try runProgram("/usr/bin/systemd-cat", ["-t", "sudo", "/bin/echo", "  \(user) : TTY=pts/3 ; PWD=/srv ; USER=root ; COMMAND=/usr/bin/whoami"])
        try runProgram("/usr/bin/systemd-cat", ["-t", "cron", "/bin/echo", "not an auth message for \(user)"])

        var events: [Event] = []
        let deadline = Date().addingTimeInterval(10)
        while events.count < 2, Date() < deadline {
            try source.poll { event in if event.user?.user?.name != probe { events.append(event) } }
            usleep(100_000)
        }
        let login = try #require(events.first { $0.kind == .userLogin }, "no login from the journal")
        #expect(login.user?.user?.name == user)
        #expect(login.source?.ip == "192.0.2.7" && login.source?.port == 50022)
        #expect(login.module == "auth-log")
        #expect(abs(login.timestamp.totalMilliseconds - Int64(Date().timeIntervalSince1970 * 1000)) < 60_000)
        let sudo = try #require(events.first { $0.kind == .userCommand }, "no sudo command from the journal")
        #expect(sudo.process?.commandLine == "/usr/bin/whoami")
        #expect(sudo.user?.effective?.name == "root")
        #expect(events.count == 2, "only the sshd and sudo messages are events")
    }

    static func journaldRunning() -> Bool { JournalSource.journaldRunning() }
}
