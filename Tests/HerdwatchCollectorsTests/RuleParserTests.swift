import HerdwatchAudit
import Testing

@testable import HerdwatchCollectors

@Suite struct RuleParserTests {
    let parser = AuditRuleParser(
        machineArch: Syscalls.x86_64Arch, userID: { $0 == "alice" ? 1000 : nil }, groupID: { $0 == "wheel" ? 10 : nil },
        isDirectory: { $0 == "/etc" })

    func command(_ line: String) throws -> AuditRuleCommand {
        let (lines, errors) = parser.parse(line, source: "test.rules")
        #expect(errors.isEmpty, "\(errors)")
        return try #require(lines.first?.command)
    }

    @Test func settings() throws {
        #expect(try command("-e 1") == .setEnabled(1))
        #expect(try command("-b 8192") == .setBacklogLimit(8192))
        #expect(try command("-f 1") == .setFailure(1))
        #expect(try command("-r 0") == .setRateLimit(0))
        #expect(try command("--backlog_wait_time 0") == .setBacklogWaitTime(0))
        #expect(try command("-D") == .deleteAll(key: nil))
        #expect(try command("-D -k exec") == .deleteAll(key: "exec"))
        #expect(try command("--loginuid-immutable") == .makeLoginUIDImmutable)
    }

    @Test func ruleWithNamesResolved() throws {
        guard case .add(let rule) = try command(
            "-a exit,always -F arch=b64 -S execve,execveat -F auid=alice -F egid=wheel -F exit=-EACCES -k exec -k proc")
        else { Issue.record("not a rule"); return }
        #expect(rule.list == .exit && rule.action == .always)
        #expect(rule.syscalls == .numbers([59, 322]))
        #expect(rule.fields.map(\.value) == [.number(Syscalls.x86_64Arch), .number(1000), .number(10), .number(UInt32(bitPattern: -13))])
        #expect(rule.keys == ["exec", "proc"])
    }

    @Test func watchOfADirectoryBecomesDir() throws {
        guard case .add(let rule) = try command("-w /etc -p wa -k etc") else { Issue.record("not a rule"); return }
        #expect(rule.fields.first?.id == 107)  // AUDIT_DIR
        #expect(rule.fields.first?.value == .string(Array("/etc".utf8)))
        guard case .delete(let removed) = try command("-W /etc -p wa -k etc") else { Issue.record("not a delete"); return }
        #expect(removed == rule)
    }

    @Test(arguments: [
        ("-a always,exit -F nosuchfield=1", "unknown field 'nosuchfield'"),
        ("-a always,exit -S nosuchcall", "unknown syscall 'nosuchcall'"),
        ("-a always,user -S execve", "-S only applies to the exit and io_uring lists"),
        ("-a always,entry -S execve", "the entry list was removed"),
        ("-a sometimes,exit", "unknown list or action"),
        ("-w etc/passwd", "watch path must be absolute"),
        ("-w /etc/passwd -p rwq", "permissions are r, w, x and a"),
        ("-a always,exit -F uid=nobody-here", "unknown user 'nobody-here'"),
        ("-a always,exit -F path=\"/unterminated", "unterminated quote"),
        ("-a always,exit -F success=maybe", "success wants 0 or 1"),
        ("-a always,exclude -F msgtype=NOT_A_TYPE", "unknown record type 'NOT_A_TYPE'"),
        ("-e 3", "-e wants a number from 0 to 2"),
        ("-b", "-b needs an argument"),
        ("-l", "cannot start a rule line"),
        ("-a always,exit -C uid!=pid", "cannot compare uid with pid"),
    ])
    func rejectsWithAReason(line: String, reason: String) {
        let (lines, errors) = parser.parse("# comment\n\n\(line)\n-e 1\n", source: "bad.rules")
        #expect(errors.count == 1)
        #expect(errors.first?.line == 3)
        #expect(errors.first?.source == "bad.rules")
        #expect(errors.first?.reason.contains(reason) == true, "\(errors.first?.reason ?? "no error")")
        #expect(lines.map(\.command) == [.setEnabled(1)], "the line after a bad one still loads")
    }
}

@Suite struct DefaultRulesTests {
    @Test(arguments: ["pet", "cattle"])
    func profileRulesParseCleanly(profile: String) throws {
        let text = try #require(DefaultRules.named(profile))
        let (lines, errors) = AuditRuleParser(machineArch: Syscalls.x86_64Arch).parse(text, source: profile)
        #expect(errors.isEmpty, "\(errors)")
        #expect(lines.count >= 5)
        #expect(lines.contains { if case .add(let rule) = $0.command { rule.keys == ["exec"] } else { false } })
    }
}
