import HerdwatchEvents
import Testing

@testable import HerdwatchAudit

private let parser = AuditRecordParser()

private func parse(_ line: String) throws -> AuditRecord {
    try parser.parse(line: Array(line.utf8))
}

private func values(_ record: AuditRecord) -> [String: String] {
    var result: [String: String] = [:]
    for field in record.fields where result[record.key(field).string] == nil {
        result[record.key(field).string] = record.value(field).string
    }
    return result
}

@Suite struct ParserTests {
    @Test func rawSyscallRecord() throws {
        let record = try parse(
            #"type=SYSCALL msg=audit(1492037291.036:59): arch=c000003e syscall=59 success=yes exit=0 a0=1522170 items=2 ppid=12041 pid=13393 auid=1000 tty=pts1 comm="grep" exe="/usr/bin/grep" key=(null)"#
        )
        #expect(record.type == 1300)
        #expect(record.typeName == "SYSCALL")
        #expect(record.timestamp == AuditTimestamp(seconds: 1_492_037_291, milliseconds: 36))
        #expect(record.serial == 59)
        #expect(record.node == nil)
        let fields = values(record)
        #expect(fields["arch"] == "c000003e")
        #expect(fields["comm"] == "grep")
        #expect(fields["key"] == "(null)")
        #expect(record.field("comm")?.quoting == .double)
        #expect(record.field("arch")?.quoting == AuditQuoting.none)
    }

    @Test func nodePrefix() throws {
        let record = try parse(
            #"node=auditdtest.a1959.org type=PROCTITLE msg=audit(1451781471.394:194433): proctitle="bash""#)
        #expect(record.node?.string == "auditdtest.a1959.org")
        #expect(record.type == RecordTypes.proctitle)
        #expect(values(record)["proctitle"] == "bash")
    }

    @Test func enrichedFormat() throws {
        let line =
            "type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=257 success=yes exit=3 uid=0 auid=1000 comm=\"cat\" key=\"files\"\u{1D}ARCH=x86_64 SYSCALL=openat AUID=\"alice\" UID=\"root\""
        let record = try parse(line)
        #expect(record.value("uid")?.string == "0")
        #expect(record.enrichedValue("UID")?.string == "root")
        #expect(record.enrichedValue("AUID")?.string == "alice")
        #expect(record.enrichedValue("SYSCALL")?.string == "openat")
        #expect(record.value("key")?.string == "files")
        // Enriched fields never shadow raw ones.
        #expect(record.field("ARCH") == nil)
    }

    @Test func netlinkForm() throws {
        let body = Array("audit(1700000000.5:7): cwd=\"/root\"\0".utf8)
        let record = try parser.parse(netlinkType: 1307, body: body)
        #expect(record.typeName == "CWD")
        #expect(record.timestamp.milliseconds == 500)
        #expect(record.serial == 7)
        #expect(record.value("cwd")?.string == "/root")
    }

    @Test func userMessageIsSplit() throws {
        let record = try parse(
            #"type=USER_ACCT msg=audit(1170021601.340:294): pid=13015 uid=0 auid=4294967295 subj=system_u:system_r:crond_t:s0-s0:c0.c1023 msg='PAM: accounting acct=root : exe="/usr/sbin/crond" hostname=? addr=? terminal=cron res=success'"#
        )
        let fields = values(record)
        #expect(fields["pid"] == "13015")
        #expect(fields["acct"] == "root")
        #expect(fields["exe"] == "/usr/sbin/crond")
        #expect(fields["terminal"] == "cron")
        #expect(fields["res"] == "success")
        #expect(fields["msg"] == nil)
    }

    @Test func freeTextMessageIsKept() throws {
        let record = try parse(#"type=USER msg=audit(1.000:1): pid=1 uid=0 msg='hello world'"#)
        #expect(record.value("msg")?.string == "hello world")
        #expect(record.field("msg")?.quoting == .single)
    }

    @Test func avcPrefix() throws {
        let record = try parse(
            #"type=AVC msg=audit(1170021493.977:293): avc:  denied  { read write } for  pid=13010 comm="pickup" name="maildrop" tclass=dir"#
        )
        #expect(record.value("seresult")?.string == "denied")
        #expect(record.value("seperms")?.string == "read write")
        #expect(record.value("pid")?.string == "13010")
        #expect(record.value("tclass")?.string == "dir")
    }

    @Test func unknownTypeNumber() throws {
        let record = try parse("type=UNKNOWN[1399] msg=audit(1.002:3): foo=bar")
        #expect(record.type == 1399)
        #expect(record.typeName == "UNKNOWN[1399]")
        let known = try parse("type=UNKNOWN[1300] msg=audit(1.002:3): foo=bar")
        #expect(known.typeName == "SYSCALL")
    }

    @Test func syslogPrefixIsSkipped() throws {
        let record = try parse(
            "Jan  1 00:00:00 web1 audispd: node=web1 type=CWD msg=audit(1.000:9): cwd=\"/\"")
        #expect(record.node?.string == "web1")
        #expect(record.type == RecordTypes.cwd)
    }

    @Test(arguments: [
        ("", AuditParseError.Reason.emptyLine),
        ("hello world", .missingType),
        ("type=SYSCALL", .missingHeader),
        ("type=SYSCALL msg=audit(abc:1): x=1", .malformedTimestamp),
        ("type=SYSCALL msg=audit(1.2345:1): x=1", .malformedTimestamp),
        ("type=SYSCALL msg=audit(1.234:): x=1", .malformedTimestamp),
        ("type=UNKNOWN[x] msg=audit(1.234:1): x=1", .unknownTypeNumber),
        ("type=SYSCALL msg=audit(99999999999999999999999.1:1): x=1", .malformedTimestamp),
    ])
    func malformedLines(line: String, reason: AuditParseError.Reason) {
        do {
            _ = try parser.parse(line: Array(line.utf8))
            Issue.record("parsed: \(line)")
        } catch {
            #expect(error.reason == reason, "\(line)")
        }
    }

    @Test func unterminatedQuoteReadsToEnd() throws {
        let record = try parse(#"type=CWD msg=audit(1.000:1): cwd="/tmp/x y"#)
        #expect(record.value("cwd")?.string == "/tmp/x y")
    }

    @Test func tooLongLine() {
        let small = AuditRecordParser(maximumLineLength: 64)
        let line = Array(("type=CWD msg=audit(1.000:1): cwd=\"" + String(repeating: "a", count: 100) + "\"").utf8)
        #expect(throws: AuditParseError.self) { try small.parse(line: line) }
    }
}

@Suite struct EnrichedSockaddrTests {
    @Test func bracedEnrichedValueStaysOneField() throws {
        let line =
            "type=SOCKADDR msg=audit(1795427213.253:299658): saddr=0A0014E9000000000000000000000000000000000000000100000000\u{1D}SADDR={ saddr_fam=inet6 laddr=::1 lport=5353 }"
        let record = try AuditRecordParser().parse(line: Array(line.utf8))
        #expect(record.fields.count == 2)
        #expect(record.enrichedValue("SADDR")?.string == "{ saddr_fam=inet6 laddr=::1 lport=5353 }")
    }
}
