import HerdwatchEvents
import Testing

@testable import HerdwatchAudit

/// Parses log lines, assembles them and interprets the single resulting event.
private func event(_ lines: [String], interpreter: AuditInterpreter = AuditInterpreter()) -> Event {
    var assembler = AuditEventAssembler()
    var events: [AssembledEvent] = []
    for line in lines {
        assembler.add(try! AuditRecordParser().parse(line: Array(line.utf8))) { events.append($0) }
    }
    assembler.flushAll { events.append($0) }
    precondition(events.count == 1, "expected one event, got \(events.count)")
    return interpreter.interpret(events[0])
}

private func hex(_ text: String) -> String {
    text.utf8.map { String($0, radix: 16, uppercase: true).count == 1 ? "0" + String($0, radix: 16, uppercase: true) : String($0, radix: 16, uppercase: true) }.joined()
}

@Suite struct InterpreterTests {
    @Test func execveWithHexArguments() {
        let e = event([
            #"type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 auid=1000 uid=0 gid=0 euid=0 tty=pts0 ses=3 comm="sh" exe="/bin/sh" key="exec""#,
            "type=EXECVE msg=audit(1.000:1): argc=3 a0=\"sh\" a1=\"-c\" a2=\(hex("echo 'a b'"))",
            #"type=CWD msg=audit(1.000:1): cwd="/root""#,
            #"type=PROCTITLE msg=audit(1.000:1): proctitle=7368002D63006563686F"#,
        ])
        #expect(e.kind == .processStart)
        #expect(e.outcome == .success)
        #expect(e.process?.args == ["sh", "-c", "echo 'a b'"])
        #expect(e.process?.commandLine == "sh -c echo 'a b'")
        #expect(e.process?.argsCount == 3)
        #expect(e.process?.pid == 100)
        #expect(e.process?.parentPID == 1)
        #expect(e.process?.executable == "/bin/sh")
        #expect(e.process?.workingDirectory == "/root")
        #expect(e.process?.title == "sh -c echo")
        #expect(e.audit?.syscall == "execve")
        #expect(e.audit?.arch == "x86_64")
        #expect(e.audit?.session == "3")
        #expect(e.user?.audit?.id == "1000")
        #expect(e.tags == ["exec"])
    }

    @Test func chunkedArgumentsOverSeveralRecords() {
        let long = String(repeating: "A", count: 300)
        let part1 = hex(String(long.prefix(200)))
        let part2 = hex(String(long.dropFirst(200)))
        let e = event([
            #"type=SYSCALL msg=audit(1.000:2): arch=c000003e syscall=59 success=yes exit=0 pid=5"#,
            "type=EXECVE msg=audit(1.000:2): argc=3 a0=\"echo\" a1_len=300 a1[0]=\(part1)",
            "type=EXECVE msg=audit(1.000:2): a1[1]=\(part2) a2=\"end\"",
        ])
        #expect(e.process?.args == ["echo", long, "end"])
    }

    @Test func thousandsOfArguments() {
        let count = 5000
        var body = "argc=\(count)"
        for index in 0..<count { body += " a\(index)=\"\(index)\"" }
        let e = event([
            #"type=SYSCALL msg=audit(1.000:3): arch=c000003e syscall=59 success=yes exit=0 pid=5"#,
            "type=EXECVE msg=audit(1.000:3): \(body)",
        ])
        #expect(e.process?.args?.count == count)
        #expect(e.process?.args?.last == "4999")
    }

    @Test func connectIPv4() {
        let e = event([
            #"type=SYSCALL msg=audit(1492037289.295:58): arch=c000003e syscall=42 success=no exit=-115 a0=6 pid=1172 comm="google_accounts" exe=2F7573722F62696E2F707974686F6E322E37"#,
            "type=SOCKADDR msg=audit(1492037289.295:58): saddr=02000050A9FEA9FE0000000000000000",
        ])
        #expect(e.kind == .networkConnect)
        // A non-blocking connect under way: neither a success nor a refusal yet.
        #expect(e.outcome == .unknown)
        #expect(e.errorCode == "EINPROGRESS")
        #expect(e.audit?.result == "fail")
        #expect(e.destination?.ip == "169.254.169.254")
        #expect(e.destination?.port == 80)
        #expect(e.network?.type == "ipv4")
        #expect(e.network?.direction == "egress")
        #expect(e.process?.executable == "/usr/bin/python2.7")
    }

    @Test func refusedConnectIsAFailure() {
        let e = event([
            #"type=SYSCALL msg=audit(1.000:5): arch=c000003e syscall=42 success=no exit=-111 a0=3 pid=9"#,
            "type=SOCKADDR msg=audit(1.000:5): saddr=02001F907F0000010000000000000000",
        ])
        #expect(e.kind == .networkConnect)
        #expect(e.outcome == .failure)
        #expect(e.errorCode == "ECONNREFUSED")
        #expect(e.destination?.ip == "127.0.0.1" && e.destination?.port == 8080)
    }

    @Test func connectIPv6() {
        let e = event([
            #"type=SYSCALL msg=audit(1.000:4): arch=c000003e syscall=42 success=yes exit=0 pid=9"#,
            "type=SOCKADDR msg=audit(1.000:4): saddr=0A0001BB0000000020010DB8000000000000000000000001" + "00000000",
        ])
        #expect(e.destination?.ip == "2001:db8::1")
        #expect(e.destination?.port == 443)
        #expect(e.network?.type == "ipv6")
    }

    @Test(arguments: [
        ("0A000016000000000000000000000000000000000000000100000000", "::1"),
        ("0A00001600000000" + "00000000000000000000FFFF7F000001" + "00000000", "::ffff:127.0.0.1"),
        ("0A0000160000000000000000000000000000000000000000" + "00000000", "::"),
        ("0A000016000000002001000000000001000000000000000100000000", "2001:0:0:1::1"),
    ])
    func ipv6Text(saddr: String, expected: String) {
        guard case .ipv6(let address, _) = SocketAddress(hex: Array(saddr.utf8)[...])?.family else {
            Issue.record("not ipv6")
            return
        }
        #expect(address == expected)
    }

    @Test func unixSocket() {
        let path = hex("/run/x.sock")
        let abstract = "0100" + "00" + hex("abstract")
        #expect(SocketAddress(hex: Array(("0100" + path + "00").utf8)[...])?.family == .unix(path: "/run/x.sock", abstract: false))
        #expect(SocketAddress(hex: Array(abstract.utf8)[...])?.family == .unix(path: "abstract", abstract: true))
        #expect(SocketAddress(hex: Array("0".utf8)[...]) == nil)
    }

    @Test func renameHasOldAndNewPath() {
        let e = event([
            #"type=SYSCALL msg=audit(1.000:5): arch=c000003e syscall=82 success=yes exit=0 pid=7"#,
            #"type=CWD msg=audit(1.000:5): cwd="/home/u""#,
            #"type=PATH msg=audit(1.000:5): item=0 name="/home/u/" inode=1 mode=040755 nametype=PARENT"#,
            #"type=PATH msg=audit(1.000:5): item=1 name="/tmp/" inode=2 mode=041777 nametype=PARENT"#,
            #"type=PATH msg=audit(1.000:5): item=2 name="a.txt" inode=3 mode=0100644 ouid=1000 ogid=1000 nametype=DELETE"#,
            #"type=PATH msg=audit(1.000:5): item=3 name="/tmp/b.txt" inode=3 mode=0100644 ouid=1000 ogid=1000 nametype=CREATE"#,
        ])
        #expect(e.kind == .fileRename)
        #expect(e.file?.path == "/tmp/b.txt")
        #expect(e.file?.previousPath == "/home/u/a.txt")
        #expect(e.file?.mode == "0644")
        #expect(e.file?.type == "file")
        #expect(e.file?.uid == "1000")
        #expect(e.audit?.paths.count == 4)
    }

    @Test func openatFlagsDecideTheKind() {
        func open(_ flags: String, nametype: String = "NORMAL") -> EventKind {
            event([
                "type=SYSCALL msg=audit(1.000:6): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=1 a2=\(flags) pid=1",
                "type=PATH msg=audit(1.000:6): item=0 name=\"/etc/passwd\" inode=1 mode=0100644 nametype=\(nametype)",
            ]).kind
        }
        #expect(open("0") == .fileOpen)
        #expect(open("80000") == .fileOpen)  // O_CLOEXEC
        #expect(open("1") == .fileWrite)  // O_WRONLY
        #expect(open("242") == .fileWrite)  // O_RDWR|O_CREAT|O_TRUNC
        #expect(open("241", nametype: "CREATE") == .fileCreate)
    }

    @Test func sshLoginFailure() {
        let e = event([
            #"type=USER_LOGIN msg=audit(1.000:7): pid=2000 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct="alice" exe="/usr/sbin/sshd" hostname=10.0.0.5 addr=10.0.0.5 terminal=ssh res=failed'"#
        ])
        #expect(e.kind == .userLogin)
        #expect(e.outcome == .failure)
        #expect(e.user?.user?.name == "alice")
        #expect(e.user?.audit == nil)  // 4294967295 is "unset"
        #expect(e.source?.ip == "10.0.0.5")
        #expect(e.process?.executable == "/usr/sbin/sshd")
        #expect(e.audit?.session == nil)
    }

    @Test func sudoCommand() {
        let e = event([
            "type=USER_CMD msg=audit(1.000:8): pid=3 uid=1000 auid=1000 ses=2 msg='cwd=\"/home/u\" cmd=\(hex("ls -la /root")) exe=\"/usr/bin/sudo\" terminal=pts/0 res=success'"
        ])
        #expect(e.kind == .userCommand)
        #expect(e.process?.commandLine == "ls -la /root")
        #expect(e.process?.workingDirectory == "/home/u")
        #expect(e.audit?.tty == "pts/0")
        #expect(e.outcome == .success)
    }

    @Test func configChangeDecidesOverSyscall() {
        let e = event([
            #"type=CONFIG_CHANGE msg=audit(1.000:9): auid=0 ses=1 op=remove_rule key="exec" list=4 res=1"#,
            #"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=44 success=yes exit=1080 pid=99 comm="auditctl" exe="/sbin/auditctl""#,
            #"type=PROCTITLE msg=audit(1.000:9): proctitle=617564697463746C002D44"#,
        ])
        #expect(e.kind == .auditConfigChange)
        #expect(e.audit?.syscall == "sendto")
        #expect(e.process?.title == "auditctl -D")
        #expect(e.outcome == .success)
    }

    @Test func enrichedNames() {
        let e = event([
            "type=SYSCALL msg=audit(1.000:10): arch=c000003e syscall=105 success=yes exit=0 pid=4 uid=1000 auid=1000 euid=0\u{1D}ARCH=x86_64 SYSCALL=setuid AUID=\"alice\" UID=\"alice\" EUID=\"root\""
        ])
        #expect(e.kind == .privilegeChange)
        #expect(e.user?.user == Event.Identity(id: "1000", name: "alice"))
        #expect(e.user?.effective == Event.Identity(id: "0", name: "root"))
        #expect(e.user?.audit?.name == "alice")
    }

    @Test func resolvedNamesFollowEachID() {
        // sudo's shape: real ids 1000, effective, saved and filesystem ids 0, login uid 1000.
        let e = event(
            [
                #"type=SYSCALL msg=audit(1.000:12): arch=c000003e syscall=59 success=yes exit=0 pid=5 ppid=4 auid=1000 uid=1000 gid=1000 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=1000 comm="id" exe="/usr/bin/id""#
            ], interpreter: AuditInterpreter(userNames: FixedNames()))
        let user = e.user
        #expect(user?.user == Event.Identity(id: "1000", name: "alice"))
        #expect(user?.group == Event.Identity(id: "1000", name: "staff"))
        #expect(user?.effective == Event.Identity(id: "0", name: "root"))
        #expect(user?.saved == Event.Identity(id: "0", name: "root"))
        #expect(user?.filesystem == Event.Identity(id: "0", name: "root"))
        #expect(user?.effectiveGroup == Event.Identity(id: "0", name: "wheel"))
        #expect(user?.savedGroup == Event.Identity(id: "0", name: "wheel"))
        #expect(user?.filesystemGroup == Event.Identity(id: "1000", name: "staff"))
        #expect(user?.audit == Event.Identity(id: "1000", name: "alice"))
    }

    @Test(arguments: [
        "proctitle=7368002D63006563686F", "proctitle=6C730000", "proctitle=61000062", "proctitle=00",
        #"proctitle="bash""#, "proctitle=(null)", "proctitle=6C7", "proctitle=C3A9002D78",
    ])
    func titleIsTheArgumentsJoined(_ field: String) throws {
        let record = try AuditRecordParser().parse(line: Array("type=PROCTITLE msg=audit(1.000:13): \(field)".utf8))
        #expect(AuditDecoding.proctitle(record) == AuditDecoding.proctitleArguments(record)?.joined(separator: " "))
    }

    @Test func unknownRecordTypeIsKept() {
        let e = event(["type=UNKNOWN[1999] msg=audit(1.000:11): pid=1 foo=bar"])
        #expect(e.kind == .other)
        #expect(e.audit?.recordType == "UNKNOWN[1999]")
        #expect(e.audit?.records.count == 1)
    }

    @Test func multipleKeys() {
        let e = event(["type=SYSCALL msg=audit(1.000:12): arch=c000003e syscall=2 success=yes exit=3 pid=1 key=\(hex("a"))01\(hex("b"))"])
        #expect(e.tags == ["a", "b"])
    }

    @Test func aarch64AndI386Names() {
        #expect(Syscalls.name(arch: AuditArch.aarch64, number: 221) == "execve")
        #expect(Syscalls.name(arch: AuditArch.i386, number: 11) == "execve")
        #expect(Syscalls.name(arch: 0x1234, number: 1) == nil)
        #expect(Syscalls.errnoName(returnValue: -13) == "EACCES")
        #expect(Syscalls.errnoName(returnValue: -100_000) == nil)
    }

    @Test func fileModes() {
        #expect(FileMode(octal: Array("0104755".utf8)[...])?.permissions == "4755")
        #expect(FileMode(octal: Array("040755".utf8)[...])?.typeName == "dir")
        #expect(FileMode(octal: Array("9".utf8)[...]) == nil)
    }
}

/// Users 0 and 1000 are root and alice, groups 0 and 1000 wheel and staff.
private struct FixedNames: UserNameResolver {
    func userName(uid: UInt32) -> String? { [0: "root", 1000: "alice"][uid] }
    func groupName(gid: UInt32) -> String? { [0: "wheel", 1000: "staff"][gid] }
}
