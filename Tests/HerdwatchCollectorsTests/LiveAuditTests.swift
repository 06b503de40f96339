import CLinuxAudit
import Foundation
import HerdwatchAudit
import HerdwatchEvents
import Logging
import Synchronization
import Testing

@testable import HerdwatchCollectors

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's audit state before a test, put back after it whatever happened: settings, rules,
/// and the audit daemon pid.
struct KernelAuditState {
    let status: AuditStatus
    let rules: [[UInt8]]

    static func save() throws -> KernelAuditState {
        let netlink = try AuditNetlink(mode: .unicast)
        return KernelAuditState(status: try netlink.status(), rules: try netlink.listRules())
    }

    func restore() {
        do {
            let netlink = try AuditNetlink(mode: .unicast)
            let now = try netlink.status()
            // Our own pid may still be registered if a test failed half-way.
            if now.pid == UInt32(getpid()) || (now.pid != 0 && kill(pid_t(now.pid), 0) != 0) {
                try? netlink.unregister()
            }
            for rule in try netlink.listRules() where !rules.contains(rule) { try netlink.deleteRule(rule) }
            let present = try netlink.listRules()
            for rule in rules where !present.contains(rule) { try netlink.addRule(rule) }
            let mask = UInt32(
                AUDIT_STATUS_ENABLED | AUDIT_STATUS_FAILURE | AUDIT_STATUS_RATE_LIMIT | AUDIT_STATUS_BACKLOG_LIMIT
                    | AUDIT_STATUS_BACKLOG_WAIT_TIME)
            if status.enabled != 2 { try netlink.set(status, mask: mask) }
        } catch {
            Issue.record("could not restore the kernel's audit state: \(error)")
        }
    }
}

/// Only one test at a time may touch the kernel's audit settings.
let kernelAuditLock = Mutex(())

func withKernelAudit(_ body: () throws -> Void) throws {
    try kernelAuditLock.withLock { _ in
        let state = try KernelAuditState.save()
        defer { state.restore() }
        try body()
    }
}

/// Runs a program and returns its pid once it has exited. posix_spawn and waitpid, not Foundation's
/// Process: its waitUntilExit was seen to miss a child's exit and wait forever (the child a zombie).
@discardableResult
func runProgram(_ path: String, _ arguments: [String]) throws -> Int32 {
    let pid = try ChildProcess.spawn([path] + arguments).pid
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return pid
}

func collector(_ rules: String, mode: AuditNetlink.Mode? = nil, configure: (inout AuditCollector.Configuration) -> Void = { _ in })
    throws -> AuditCollector
{
    var configuration = AuditCollector.Configuration()
    configuration.mode = mode
    let (lines, errors) = AuditRuleParser().parse(rules, source: "test.rules")
    #expect(errors.isEmpty, "\(errors)")
    configuration.rules = lines
    configure(&configuration)
    var logger = Logger(label: "test")
    logger.logLevel = .error
    return AuditCollector(configuration: configuration, logger: logger)
}

/// Polls until `match` finds an event, or the time is up.
func waitForEvent(_ collector: AuditCollector, seconds: Double = 10, where match: (Event) -> Bool) throws -> Event? {
    let deadline = Date().addingTimeInterval(seconds)
    var found: Event?
    while found == nil, Date() < deadline {
        try collector.poll(timeoutMilliseconds: 100) { event in
            if found == nil, match(event) { found = event }
        }
    }
    return found
}

/// Polls until `done` holds for the events seen so far, or the time is up.
func collectEvents(_ collector: AuditCollector, seconds: Double = 10, until done: ([Event]) -> Bool) throws -> [Event] {
    let deadline = Date().addingTimeInterval(seconds)
    var events: [Event] = []
    while !done(events), Date() < deadline {
        try collector.poll(timeoutMilliseconds: 100) { events.append($0) }
    }
    return events
}

@Suite(.serialized) struct LiveAuditTests {
    static let available: Bool = {
        guard getuid() == 0 else { return false }
        return (try? AuditNetlink(mode: .unicast).status()) != nil
    }()

    @Test(.enabled(if: available, "needs root and the kernel's audit subsystem"))
    func unicastCollectsAnExecWithPidArgsAndKey() throws {
        try withKernelAudit {
            let key = "hw-test-\(getpid())"
            let marker = "herdwatch-\(UUID().uuidString)"
            let collector = try collector("-a always,exit -F arch=b64 -S execve -F key=\(key)\n", mode: .unicast)
            try collector.start()
            defer { collector.stop() }
            #expect(collector.mode == .unicast)
            #expect(collector.ruleErrors.isEmpty)
            let status = try AuditNetlink(mode: .unicast).status()
            #expect(status.pid == UInt32(getpid()))
            #expect(status.enabled == 1)
            #expect(status.backlogWaitTime == 0)

            let pid = try runProgram("/bin/true", [marker, "with space"])
            let event = try waitForEvent(collector) { $0.process?.args?.contains(marker) == true }
            let exec = try #require(event, "no exec event for \(marker)")
            #expect(exec.kind == .processStart)
            #expect(exec.process?.pid == Int64(pid))
            #expect(exec.process?.parentPID == Int64(getpid()))
            #expect(exec.process?.args == ["/bin/true", marker, "with space"])
            #expect(exec.process?.executable == "/usr/bin/true")
            #expect(exec.tags == [key])
            #expect(exec.user?.user?.id == "0")
            #expect(exec.user?.user?.name == nil || exec.user?.user?.name == "root")

            collector.stop()
            let after = try AuditNetlink(mode: .unicast)
            #expect(try after.status().pid == 0)
            #expect(try after.listRules().allSatisfy { !AuditRuleData.keys(of: $0).contains(key) })
        }
    }

    @Test(.enabled(if: available, "needs root and the kernel's audit subsystem"))
    func kernelStateIsRestoredAfterStop() throws {
        try withKernelAudit {
            let before = try AuditNetlink(mode: .unicast).status()
            let collector = try collector("-b 321\n-a always,exit -F arch=b64 -S openat -F key=hw-restore\n", mode: .unicast)
            try collector.start()
            let during = try AuditNetlink(mode: .unicast).status()
            #expect(during.backlogLimit == 321)
            collector.stop()
            let netlink = try AuditNetlink(mode: .unicast)
            let after = try netlink.status()
            #expect(after.enabled == before.enabled)
            #expect(after.backlogLimit == before.backlogLimit)
            #expect(after.backlogWaitTime == before.backlogWaitTime)
            #expect(after.pid == 0)
            #expect(try netlink.listRules().allSatisfy { !AuditRuleData.keys(of: $0).contains("hw-restore") })
        }
    }

    @Test(.enabled(if: available, "needs root and the kernel's audit subsystem"))
    func rejectedRuleIsReportedAndTheRestLoad() throws {
        try withKernelAudit {
            // The kernel refuses a watch on a relative-looking path the parser cannot catch:
            // a msgtype field on the exit list is valid syntax but refused by the kernel.
            let rules = """
                -a always,exit -F arch=b64 -S execve -F key=hw-good
                -a always,exit -F arch=b64 -S execve -F key=hw-good
                """
            let collector = try collector(rules, mode: .unicast)
            try collector.start()
            defer { collector.stop() }
            // The duplicate is refused with EEXIST, reported with its line.
            #expect(collector.ruleErrors.count == 1)
            #expect(collector.ruleErrors.first?.line == 2)
            #expect(collector.ruleErrors.first?.reason.contains("File exists") == true)
        }
    }

    @Test(.enabled(if: available, "needs root and the kernel's audit subsystem"))
    func lossIsReportedAsAnEvent() throws {
        try withKernelAudit {
            let collector = try collector(
                "-b 2\n-a always,exit -F arch=b64 -S execve -F key=hw-storm\n", mode: .unicast
            ) { $0.receiveBufferBytes = 4096 }
            try collector.start()
            defer { collector.stop() }
            // An exec storm while nobody reads: the socket fills, the kernel's queue passes its
            // backlog limit of 2 and it drops records.
            for _ in 0..<300 { try runProgram("/bin/true", ["storm"]) }
            var loss: Event?
            let deadline = Date().addingTimeInterval(10)
            while loss == nil, Date() < deadline {
                try collector.poll(timeoutMilliseconds: 200) { event in
                    if event.kind == .telemetryLoss, event.loss?.source == "kernel-audit" { loss = event }
                }
            }
            let event = try #require(loss, "no telemetry-loss event after an exec storm")
            #expect((event.loss?.count ?? 0) > 0)
            #expect(event.loss?.unit == "records")
            let json = String(decoding: ECSEncoder().encode(event), as: UTF8.self)
            #expect(json.contains("\"action\":\"telemetry-loss\""))
            #expect(json.contains("\"loss\":{\"source\":\"kernel-audit\""))
        }
    }

    @Test(.enabled(if: available, "needs root and the kernel's audit subsystem"))
    func entityIDsSurvivePIDReuseAndParentLinksStayRight() throws {
        try withKernelAudit {
            let collector = try collector("-a always,exit -F arch=b64 -S execve -F key=hw-reuse\n", mode: .unicast)
            try collector.start()
            defer { collector.stop() }
            let table = try #require(collector.processes)
            let me = try #require(table.read(pid: getpid()))

            let first = "herdwatch-reuse-1-\(UUID().uuidString)"
            let second = "herdwatch-reuse-2-\(UUID().uuidString)"
            let firstPID = try runProgram("/bin/true", [first])
            // Steer the kernel's next pid back to the one just freed (root may write ns_last_pid);
            // other threads may take it first, so try a few times.
            // A pid reused within the same millisecond cannot be told apart by time; on a real host
            // reuse takes a trip around pid_max, so leave a realistic few tens of milliseconds.
            usleep(30_000)
            var secondPID: Int32 = 0
            for _ in 0..<50 where secondPID != firstPID {
                try? "\(firstPID - 1)".write(toFile: "/proc/sys/kernel/ns_last_pid", atomically: false, encoding: .utf8)
                secondPID = try runProgram("/bin/true", [second])
            }
            try #require(secondPID == firstPID, "could not get pid \(firstPID) reused")

            let events = try collectEvents(collector) { events in
                events.contains { $0.process?.args?.contains(first) == true }
                    && events.contains { $0.process?.args?.contains(second) == true }
            }
            let one = try #require(events.first { $0.process?.args?.contains(first) == true && $0.kind == .processStart })
            let two = try #require(events.first { $0.process?.args?.contains(second) == true && $0.kind == .processStart })
            #expect(one.process?.pid == two.process?.pid)
            let oneID = try #require(one.process?.entityID)
            let twoID = try #require(two.process?.entityID)
            #expect(oneID != twoID, "a reused pid must get a new entity id")
            for event in [one, two] {
                #expect(event.process?.parentPID == Int64(getpid()))
                #expect(event.process?.parent?.entityID == me.entityID)
                #expect(event.process?.parent?.executable == me.executable)
                #expect(event.process?.ancestry.first == me.entityID)
            }
            // Their exits come from the proc connector, each with its own process's entity id.
            let more = try collectEvents(collector, seconds: 3) { later in
                (events + later).filter { $0.kind == .processExit && $0.process?.pid == Int64(firstPID) }.count >= 2
            }
            let exits = (events + more).filter { $0.kind == .processExit && $0.process?.pid == Int64(firstPID) }
            #expect(Set(exits.compactMap { $0.process?.entityID }) == [oneID, twoID])
            #expect(exits.allSatisfy { $0.module == "proc-connector" && $0.process?.exitCode == 0 })
        }
    }

    @Test(.enabled(if: available, "needs root and the kernel's audit subsystem"))
    func connectWatchedFileWriteAndUserCommandArriveAsECSEvents() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-watch-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let watched = folder.appendingPathComponent("watched.conf")
            try "before\n".write(to: watched, atomically: false, encoding: .utf8)
            let rules = """
                -a always,exit -F arch=b64 -S connect -F key=hw-net
                -w \(watched.path) -p wa -k hw-watch
                """
            let collector = try collector(rules, mode: .unicast)
            try collector.start()
            defer { collector.stop() }
            #expect(collector.ruleErrors.isEmpty, "\(collector.ruleErrors)")

            // A TCP connection to a listener of our own on 127.0.0.1.
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(listener) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
            listen(listener, 1)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
            }
            let port = Int(UInt16(bigEndian: address.sin_port))
            // From a child: the kernel never audits the audit daemon's own syscalls (this process).
            let connector = try runProgram("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"])

            // A write to the watched file, by another process.
            try runProgram("/bin/sh", ["-c", "echo changed >> '\(watched.path)'"])

            // A sudo-like USER_CMD record, sent the way sudo's PAM stack does (no sudo needed).
            let command = "herdwatch-usercmd-\(UUID().uuidString)"
            let hex = command.utf8.map { String(format: "%02X", $0) }.joined()
            try AuditNetlink(mode: .unicast).sendUserMessage(
                type: 1123, text: "cwd=\"/root\" cmd=\(hex) exe=\"/usr/bin/sudo\" terminal=pts/0 res=success")

            let events = try collectEvents(collector) { events in
                events.contains { $0.kind == .networkConnect && $0.destination?.port == port }
                    && events.contains { $0.tags.contains("hw-watch") }
                    && events.contains { $0.kind == .userCommand && $0.process?.commandLine == command }
            }
            let connectEvent = events.first(where: { $0.kind == .networkConnect && $0.destination?.port == port })
            let network = try #require(connectEvent)
            #expect(network.destination?.ip == "127.0.0.1")
            #expect(network.process?.pid == Int64(connector))
            #expect(network.process?.parentPID == Int64(getpid()))
            #expect(network.process?.entityID != nil)
            #expect(network.tags == ["hw-net"])
            let writeEvent = events.first(where: { $0.tags.contains("hw-watch") })
            let fileChange = try #require(writeEvent)
            #expect(fileChange.file?.path == watched.path)
            #expect(fileChange.process?.parent?.entityID == table(collector).read(pid: getpid())?.entityID)
            let sudoEvent = events.first(where: { $0.kind == .userCommand && $0.process?.commandLine == command })
            let userCommand = try #require(sudoEvent)
            #expect(userCommand.process?.workingDirectory == "/root")
            #expect(userCommand.outcome == .success)
            #expect(userCommand.process?.pid == Int64(getpid()))
        }
    }

    @Test(.enabled(if: available && FileManager.default.isExecutableFile(atPath: "/sbin/auditctl"), "needs root, audit and auditctl"))
    func ownRuleChangesNameTheAgentAndOthersDoNot() throws {
        try withKernelAudit {
            let key = "hw-own-\(getpid())"
            let keyed = "-a always,exit -F arch=b64 -S execve -F key=\(key)"
            let watch = "-w /etc/hostname -p wa -k \(key)-watch"
            let collector = try collector("\(keyed)\n\(watch)\n-a always,exit -F arch=b64 -S fchmodat\n", mode: .unicast)
            try collector.start()
            defer { collector.stop() }
            // Someone else adds and removes a rule while the agent runs. The kernel's record of a rule
            // change names no process; the agent names itself in its own, and leaves others' alone
            // (auditctl's come with the record of its system call when that call is audited).
            let outside = ["always,exit", "-F", "arch=b64", "-S", "fchown", "-k", "\(key)-outside"]
            try runProgram("/sbin/auditctl", ["-a"] + outside)
            try runProgram("/sbin/auditctl", ["-d"] + outside)
            // The agent drops its unkeyed rule (as on SIGHUP or a change of level).
            let (kept, errors) = AuditRuleParser().parse("\(keyed)\n\(watch)\n", source: "test.rules")
            #expect(errors.isEmpty)
            collector.replaceRules(kept)

            func change(_ event: Event) -> (operation: String, key: String)? {
                guard event.kind == .auditConfigChange, let record = event.audit?.records.first,
                    let operation = record.value("op")
                else { return nil }
                return (String(decoding: operation, as: UTF8.self), AuditDecoding.untrustedString(record, "key") ?? "(null)")
            }
            let events = try collectEvents(collector) { events in
                events.compactMap(change).filter { $0.operation == "remove_rule" }.count >= 2
            }
            let changes = events.compactMap { event in change(event).map { ($0.operation, $0.key, event.process?.pid) } }
            let me = Int64(getpid())
            for expected in [("add_rule", key), ("add_rule", "\(key)-watch"), ("add_rule", "(null)"), ("remove_rule", "(null)")] {
                let found = changes.filter { $0.0 == expected.0 && $0.1 == expected.1 }
                #expect(found.count == 1 && found.first?.2 == me, "\(expected): \(found)")
            }
            for operation in ["add_rule", "remove_rule"] {
                let found = changes.filter { $0.0 == operation && $0.1 == "\(key)-outside" }
                #expect(found.count == 1 && found.first?.2 != me, "auditctl's \(operation): \(found)")
            }
            let own = try #require(events.first { change($0)?.key == key })
            #expect(own.process?.executable == (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")))
            #expect(own.process?.entityID != nil)
        }
    }
}

func table(_ collector: AuditCollector) -> ProcessTable { collector.processes ?? ProcessTable() }
