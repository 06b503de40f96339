import Foundation
import HerdwatchEvents
import Logging
import Testing

@testable import HerdwatchCollectors

@Suite struct AuthLogParserTests {
    let parser = AuthLogParser(year: 2026)

    func event(_ line: String) throws -> Event {
        try #require(parser.parse(line[...]), "no event from: \(line)")
    }

    @Test func acceptedSSHLoginWithClassicTimestamp() throws {
        let e = try event("Nov 23 10:15:02 web1 sshd[4242]: Accepted publickey for alice from 10.0.0.5 port 51234 ssh2: ED25519 SHA256:abc")
        #expect(e.kind == .userLogin && e.outcome == .success)
        #expect(e.user?.user?.name == "alice" && e.user?.user?.id == nil)
        #expect(e.source?.ip == "10.0.0.5" && e.source?.port == 51234)
        #expect(e.process?.name == "sshd" && e.process?.pid == 4242)
        #expect(e.host.name == "web1")
        #expect(e.module == "auth-log")
        #expect(e.timestamp == AuditTimestamp(seconds: 1_795_428_902, milliseconds: 0))
    }

    @Test func failedLoginForAnInvalidUserWithRFC3339Time() throws {
        let e = try event("2026-11-23T10:15:02.123456+01:00 web1 sshd[77]: Failed password for invalid user bob from 203.0.113.9 port 40022 ssh2")
        #expect(e.kind == .userLogin && e.outcome == .failure)
        #expect(e.user?.user?.name == "bob")
        #expect(e.source?.ip == "203.0.113.9" && e.source?.port == 40022)
        #expect(e.timestamp == AuditTimestamp(seconds: 1_795_428_902 - 3600, milliseconds: 123))
    }

    @Test func sudoCommandAndRefusal() throws {
        let ok = try event("Nov 23 10:16:00 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u")
        #expect(ok.kind == .userCommand && ok.outcome == .success)
        #expect(ok.user?.user?.name == "alice" && ok.user?.effective?.name == "root")
        #expect(ok.process?.commandLine == "/usr/bin/id -u")
        #expect(ok.process?.workingDirectory == "/home/alice")
        #expect(ok.audit?.tty == "pts/0")
        let refused = try event("Nov 23 10:16:05 web1 sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/cat /etc/shadow")
        #expect(refused.outcome == .failure)
        #expect(refused.audit?.result == "3 incorrect password attempts")
    }

    @Test func suAndPamSessions() throws {
        let su = try event("Nov 23 10:17:00 web1 su[900]: (to root) alice on pts/0")
        #expect(su.kind == .credentialChange && su.user?.user?.name == "alice" && su.user?.effective?.name == "root")
        let failed = try event("Nov 23 10:17:01 web1 su[901]: FAILED SU (to root) bob on pts/1")
        #expect(failed.outcome == .failure && failed.user?.user?.name == "bob")
        let opened = try event("Nov 23 10:17:02 web1 sshd[902]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)")
        #expect(opened.kind == .sessionStart && opened.user?.user?.name == "alice")
        let closed = try event("Nov 23 10:17:03 web1 sudo: pam_unix(sudo:session): session closed for user root")
        #expect(closed.kind == .sessionEnd && closed.user?.user?.name == "root")
        let authFailure = try event("Nov 23 10:17:04 web1 su[903]: pam_unix(su:auth): authentication failure; logname=bob uid=1001 euid=0 tty=pts/1 ruser=bob rhost=  user=root")
        #expect(authFailure.kind == .authentication && authFailure.outcome == .failure && authFailure.user?.user?.name == "root")
    }

    @Test(arguments: [
        "Nov 23 10:18:00 web1 CRON[1000]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        "Nov 23 10:18:00 web1 systemd-logind[500]: New session 7 of user alice.",
        "Nov 23 10:18:00 web1 sshd[1001]: Connection closed by 10.0.0.5 port 51234 [preauth]",
        "garbage without a header",
        "",
        "Nov 99 10:18:00 web1 sshd[1]: Accepted password for x from 1.2.3.4 port 1 ssh2",
    ])
    func otherLinesAreIgnoredOrHandled(line: String) {
        // CRON's session line is a session event; everything else here is not an event, and nothing traps.
        let result = parser.parse(line[...])
        if line.contains("CRON") { #expect(result?.kind == .sessionStart) } else if !line.hasPrefix("Nov 99") { #expect(result == nil) }
    }
}

@Suite struct AuthLogSourceTests {
    @Test func followsAppendsRotationAndTruncation() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-authlog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("auth.log").path
        let old = "Nov 23 09:00:00 h sshd[1]: Accepted password for olduser from 10.0.0.1 port 1 ssh2\n"
        try old.write(toFile: path, atomically: false, encoding: .utf8)
        let source = AuthLogSource(path: path, hostName: nil, logger: Logger(label: "test"))
        var events: [Event] = []
        try source.poll { events.append($0) }
        #expect(events.isEmpty, "history before the start is not replayed")

        func append(_ text: String) throws {
            let handle = try #require(FileHandle(forWritingAtPath: path))
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try handle.close()
        }
        try append("Nov 23 10:00:00 h sshd[2]: Accepted password for alice from 10.0.0.2 port 2 ssh2\nNov 23 10:00:01 h sshd[3]: Failed pass")
        try source.poll { events.append($0) }
        #expect(events.map { $0.user?.user?.name } == ["alice"])
        try append("word for bob from 10.0.0.3 port 3 ssh2\n")
        try source.poll { events.append($0) }
        #expect(events.map { $0.user?.user?.name } == ["alice", "bob"], "a line written in two parts is read whole")

        // Rotation: the file is renamed away and a new one created.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try "Nov 23 10:01:00 h sshd[4]: Accepted password for carol from 10.0.0.4 port 4 ssh2\n".write(
            toFile: path, atomically: false, encoding: .utf8)
        try source.poll { events.append($0) }
        #expect(events.last?.user?.user?.name == "carol")

        // Truncation (copytruncate).
        try "Nov 23 10:02:00 h sshd[5]: Accepted password for dave from 10.0.0.5 port 5 ssh2\n".write(
            toFile: path + ".tmp", atomically: false, encoding: .utf8)
        let truncate = try #require(FileHandle(forWritingAtPath: path))
        try truncate.truncate(atOffset: 0)
        try truncate.close()
        try source.poll { events.append($0) }
        try append("Nov 23 10:02:00 h sshd[5]: Accepted password for dave from 10.0.0.5 port 5 ssh2\n")
        try source.poll { events.append($0) }
        #expect(events.map { $0.user?.user?.name } == ["alice", "bob", "carol", "dave"])
    }
}
