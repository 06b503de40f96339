import Foundation
import HerdwatchEvents
import Testing

@testable import HerdwatchCollectors

/// `herdwatch-agent run` as a user runs it: a process of its own, a rule file, SIGTERM to stop.
@Suite(.serialized) struct AgentTests {
    /// The agent binary built beside the test bundle.
    static let agent: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        if directory.lastPathComponent == "MacOS" || directory.pathExtension == "xctest" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("herdwatch-agent").path
    }()

    static let available = LiveAuditTests.available && FileManager.default.isExecutableFile(atPath: agent)

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem and the built agent"))
    func agentCollectsAndStopsCleanlyOnSIGTERM() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-agent-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let key = "hw-agent-\(getpid())"
            let rules = folder.appendingPathComponent("test.rules")
            try """
                # test rules
                -a always,exit -F arch=b64 -S execve -k \(key)
                -a always,exit -F arch=b64 -S execve -F nosuchfield=1 -k broken
                """.write(to: rules, atomically: true, encoding: .utf8)
            let output = folder.appendingPathComponent("events.jsonl")
            let log = folder.appendingPathComponent("agent.log")

            let pid = try spawnWithDefaultSignals(
                Self.agent,
                [
                    "run", "--mode", "unicast", "--rules", rules.path, "--output", output.path, "--heartbeat-interval", "0.3",
                    "--state-dir", folder.path,
                ],
                standardError: log.path)
            var exited = false
            defer {
                if !exited {
                    kill(pid, SIGKILL)
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                }
            }
            let netlink = try AuditNetlink(mode: .unicast)
            var registered = false
            for _ in 0..<100 where !registered {
                registered = try netlink.status().pid == UInt32(pid)
                if !registered { usleep(100_000) }
            }
            #expect(registered, "agent did not become the audit daemon: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            // It registers before it loads its rules: wait for them, or the exec below may go unaudited.
            waitUntil(seconds: 5) { (try? netlink.listRules().contains { AuditRuleData.keys(of: $0).contains(key) }) ?? false }

            let marker = "herdwatch-agent-test-\(UUID().uuidString)"
            let child = try runProgram("/bin/echo", [marker])
            var line: String?
            for _ in 0..<100 where line == nil {
                let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                line = text.split(separator: "\n").first { $0.contains(marker) }.map(String.init)
                if line == nil { usleep(100_000) }
            }
            let json = try #require(line, "the exec never reached the output file")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let process = object["process"] as? [String: Any]
            #expect(process?["pid"] as? Int == Int(child))
            #expect(process?["args"] as? [String] == ["/bin/echo", marker])
            #expect(object["tags"] as? [String] == [key])
            #expect((object["host"] as? [String: Any])?["name"] is String)

            // The agent reports on itself.
            var beat: [String: Any]?
            for _ in 0..<50 where beat == nil {
                let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                beat = text.split(separator: "\n").reversed().lazy
                    .filter { $0.contains("\"agent-heartbeat\"") && $0.contains("\"auditd\"") }
                    .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.first
                if beat == nil { usleep(100_000) }
            }
            let agent = try #require((beat?["herdwatch"] as? [String: Any])?["agent"] as? [String: Any], "no heartbeat")
            #expect((agent["rss_bytes"] as? Int ?? 0) > 1_000_000)
            #expect((agent["events_per_second"] as? [String: Any])?["auditd"] is NSNumber)
            #expect((beat?["event"] as? [String: Any])?["kind"] as? String == "metric")

            // SIGHUP reloads the rule files: the old key goes, the new one loads.
            let newKey = key + "-reloaded"
            try "-a always,exit -F arch=b64 -S execve -k \(newKey)\n".write(to: rules, atomically: true, encoding: .utf8)
            kill(pid, SIGHUP)
            var keys: [String] = []
            for _ in 0..<50 where !keys.contains(newKey) {
                keys = try netlink.listRules().flatMap { AuditRuleData.keys(of: $0) }
                if !keys.contains(newKey) { usleep(100_000) }
            }
            #expect(keys.contains(newKey) && !keys.contains(key), "rules after SIGHUP: \(keys)")

            let status = terminate(pid, within: 10)
            exited = status != nil
            #expect(exited, "agent did not stop on SIGTERM")
            #expect(status == 0, "exit status \(String(describing: status))")
            let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(logText.contains("test.rules:3"), "the broken rule is reported with its line: \(logText)")
            #expect(try netlink.status().pid == 0)
            #expect(try netlink.listRules().allSatisfy { AuditRuleData.keys(of: $0).allSatisfy { !$0.hasPrefix(key) } })
            let state = folder.appendingPathComponent("process-table.json")
            #expect(FileManager.default.fileExists(atPath: state.path), "the process table is saved on stop")
        }
    }

    /// An idle host costs about one wake-up a second, not twenty; the control socket and SIGTERM
    /// still end the agent's wait at once.
    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem and the built agent"))
    func idleAgentSleepsAndStillAnswersAtOnce() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-idle-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let key = "hw-idle-\(getpid())"
            let rules = folder.appendingPathComponent("idle.rules")
            try "-a always,exit -F arch=b64 -S execve -k \(key)\n".write(to: rules, atomically: true, encoding: .utf8)
            let pid = try spawnWithDefaultSignals(
                Self.agent,
                [
                    "run", "--mode", "unicast", "--rules", rules.path, "--output", folder.appendingPathComponent("events.jsonl").path,
                    "--auth-log", "none", "--state-dir", folder.path,
                ],
                standardError: folder.appendingPathComponent("agent.log").path)
            var exited = false
            defer {
                if !exited {
                    kill(pid, SIGKILL)
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                }
            }
            let netlink = try AuditNetlink(mode: .unicast)
            waitUntil(seconds: 10) { (try? netlink.listRules().contains { AuditRuleData.keys(of: $0).contains(key) }) ?? false }
            // Let the start settle (the rule change's own events, exits held back), then count how
            // often the agent's threads went to sleep over three seconds. No process is started
            // meanwhile: each would wake the agent through the proc connector.
            usleep(3_000_000)
            func sleeps() -> [String: Int] {
                let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
                var counts: [String: Int] = [:]
                for task in tasks {
                    let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)) ?? ""
                    let line = status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") }
                    counts[task] = line.flatMap { Int($0.split(separator: "\t").last.map(String.init) ?? "") }
                }
                return counts
            }
            let before = sleeps()
            usleep(3_000_000)
            let after = sleeps()
            let wakes = after.reduce(0) { total, task in total + max(0, task.value - (before[task.key] ?? 0)) }
            // Polling every 50 ms, as it did, is 60 and more.
            let byThread = after.map { "\($0.key): \($0.value - (before[$0.key] ?? 0))" }.sorted()
            #expect(wakes < 30, "the idle agent woke \(wakes) times in 3 s (by thread: \(byThread))")

            let asked = Date()
            let (status, reply) = try runAgent(["stats", "--state-dir", folder.path])
            #expect(status == 0 && reply.contains("level"), "stats: \(reply)")
            #expect(Date().timeIntervalSince(asked) < 0.5, "stats took \(Date().timeIntervalSince(asked)) s on an idle agent")

            usleep(300_000)
            let stopped = Date()
            let code = terminate(pid, within: 5)
            exited = code != nil
            #expect(code == 0, "exit status \(String(describing: code))")
            #expect(Date().timeIntervalSince(stopped) < 0.8, "stopping took \(Date().timeIntervalSince(stopped)) s on an idle agent")
            #expect(try netlink.status().pid == 0)
            // The kernel answers each status request from a thread of its own: those come and go
            // without events (they were one process-exited event a second).
            let text = (try? String(contentsOf: folder.appendingPathComponent("events.jsonl"), encoding: .utf8)) ?? ""
            let kernelThreadExits = text.split(separator: "\n").filter {
                $0.contains("\"process-exited\"") && $0.contains("\"parent\":{\"pid\":2,")
            }
            #expect(kernelThreadExits.isEmpty, "kernel threads reported: \(kernelThreadExits.prefix(2))")
        }
    }

    /// Runs the agent binary to completion and returns its exit status and standard output.
    func runAgent(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.agent)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: agent), "needs the built agent"))
    func configurationFileIsCheckedKeyByKey() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (status, defaults) = try runAgent(["config"])
        #expect(status == 0 && defaults.contains("heartbeat_seconds: 60"))
        let good = folder.appendingPathComponent("good.yml").path
        try defaults.write(toFile: good, atomically: true, encoding: .utf8)
        #expect(try runAgent(["config", "--check", good]).0 == 0, "the printed defaults must load")
        let cases = [
            ("audit:\n  mod: unicast\n", "key 'audit.mod': unknown key"),
            ("audit:\n  mode: sideways\n", "key 'audit.mode': 'sideways' is not one of"),
            ("heartbeat_seconds: soon\n", "key 'heartbeat_seconds': expected a number"),
            ("processes: [1, 2]\n", "key 'processes': expected a mapping"),
            ("audit: {rules: /etc/one.rules}\n", "key 'audit.rules': expected a list"),
            ("profile: gold\n", "key 'profile': profile 'gold' is not defined"),
            ("policy: {profiles: {web: {classes: {login: off}}}}\n", "profile 'web': login events are always kept; 'off' is not allowed"),
            ("policy: {profiles: {web: {classes: {process: sample(2)}}}}\n", "key 'policy.profiles.web.classes.process': 'sample(2)'"),
            ("policy: {profiles: {web: {classes: {disk: off}}}}\n", "key 'policy.profiles.web.classes.disk': not an event class"),
            ("policy: {profiles: {web: {rules: gold}}}\n", "key 'policy.profiles.web.rules': 'gold' is not a built-in rule set"),
            ("policy: {must_keep: {classes: [disk]}}\n", "key 'policy.must_keep.classes': 'disk' is not an event class"),
            ("policy: {first_seen: maybe}\n", "key 'policy.first_seen': expected true or false"),
            (": : :\n", "not valid YAML"),
        ]
        for (text, expected) in cases {
            let file = folder.appendingPathComponent("bad.yml").path
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let (status, output) = try runAgent(["config", "--check", file])
            #expect(status == 1)
            #expect(output.contains(expected), "\(text): \(output)")
        }
    }

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem and the built agent"))
    func spooledEventsSurviveAFailingOutputAndKill9() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-kill-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let key = "hw-kill-\(getpid())"
            let rules = folder.appendingPathComponent("kill.rules")
            try "-a always,exit -F arch=b64 -S execve -k \(key)\n".write(to: rules, atomically: true, encoding: .utf8)
            let output = folder.appendingPathComponent("events.jsonl")
            func arguments(_ output: String) -> [String] {
                [
                    "run", "--mode", "unicast", "--rules", rules.path, "--output", output, "--state-dir", folder.path,
                    "--heartbeat-interval", "0", "--auth-log", "none", "--process-events", "none",
                ]
            }
            let netlink = try AuditNetlink(mode: .unicast)
            func startAgent(_ output: String) throws -> pid_t {
                let pid = try spawnWithDefaultSignals(
                    Self.agent, arguments(output), standardError: folder.appendingPathComponent("agent-\(UUID().uuidString).log").path)
                waitUntil(seconds: 5) { (try? netlink.status().pid) == UInt32(pid) }
                waitUntil(seconds: 5) { (try? netlink.listRules().contains { AuditRuleData.keys(of: $0).contains(key) }) ?? false }
                return pid
            }
            func markers() -> [(id: String, marker: Int)] {
                let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                return text.split(separator: "\n").compactMap { line -> (String, Int)? in
                    guard line.contains("\"\(key)\""),
                        let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                        let id = (object["event"] as? [String: Any])?["id"] as? String,
                        let args = (object["process"] as? [String: Any])?["args"] as? [String],
                        let mark = args.last.flatMap({ $0.hasPrefix("MARK-") ? Int($0.dropFirst(5)) : nil })
                    else { return nil }
                    return (id, mark)
                }
            }
            func segmentBytes() -> Int {
                let spool = folder.appendingPathComponent("spool").path
                let names = (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []
                return names.filter { $0.hasSuffix(".seg") }.reduce(0) { total, name in
                    total + ((try? FileManager.default.attributesOfItem(atPath: spool + "/" + name)[.size] as? Int) ?? 0)
                }
            }

            let before = try netlink.status()
            // The output refuses every write (/dev/full): events can only wait in the spool.
            var agent = try startAgent("/dev/full")
            var status: Int32 = 0
            defer {
                kill(agent, SIGKILL)
                waitpid(agent, &status, 0)
            }
            let count = 100
            try runProgram("/bin/bash", ["-c", "for i in $(seq 1 \(count)); do /bin/true MARK-$i; done"])
            let spooled = segmentBytes
            waitUntil(seconds: 5) { spooled() > count * 1000 }
            usleep(300_000)  // the last batch reaches the disk (flushed every 50 ms)

            // Crash, then come back with an output that works.
            kill(agent, SIGKILL)
            waitpid(agent, &status, 0)
            agent = try startAgent(output.path)
            waitUntil(seconds: 10) { Set(markers().map(\.marker)).count >= count }
            kill(agent, SIGTERM)
            waitpid(agent, &status, 0)

            // The restarted agent put back the settings from before the crashed one, not its own.
            let after = try netlink.status()
            #expect(after.enabled == before.enabled && after.backlogLimit == before.backlogLimit)
            #expect(after.backlogWaitTime == before.backlogWaitTime && after.pid == 0)
            #expect(try netlink.listRules().allSatisfy { !AuditRuleData.keys(of: $0).contains(key) }, "adopted rule removed")

            let seen = markers()
            let distinct = Set(seen.map(\.marker))
            #expect(distinct == Set(1...count), "missing: \(Set(1...count).subtracting(distinct).sorted().prefix(20))")
            var idsByMarker: [Int: Set<String>] = [:]
            for (id, marker) in seen { idsByMarker[marker, default: []].insert(id) }
            #expect(idsByMarker.values.allSatisfy { $0.count == 1 }, "a repeated event carries the same id")
        }
    }

    /// A spool too small for what the agent collects while its output refuses writes: ordinary
    /// events are dropped oldest first and counted exactly in telemetry-loss events; every
    /// must-keep event (privilege changes, audit configuration, the loss reports) is delivered once
    /// the output works.
    @Test(.enabled(if: available && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root, the kernel's audit subsystem and the built agent"))
    func aFullSpoolDropsOrdinaryEventsFirstAndSaysHowMany() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-full-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let key = "hw-full-\(getpid())"
            let rules = folder.appendingPathComponent("full.rules")
            try """
                -a always,exit -F arch=b64 -S execve -k \(key)
                -a always,exit -F arch=b64 -S setresuid -k \(key)-priv
                """.write(to: rules, atomically: true, encoding: .utf8)
            let config = folder.appendingPathComponent("agent.yml")
            try "spool: {max_bytes: 65536, segment_bytes: 16384}\nheartbeat_seconds: 0\nauth_log: none\n"
                .write(to: config, atomically: true, encoding: .utf8)
            let output = folder.appendingPathComponent("events.jsonl")
            let netlink = try AuditNetlink(mode: .unicast)
            func startAgent(_ output: String) throws -> pid_t {
                let pid = try spawnWithDefaultSignals(
                    Self.agent,
                    ["run", "--mode", "unicast", "--config", config.path, "--rules", rules.path, "--output", output,
                     "--state-dir", folder.path, "--process-events", "none"],
                    standardError: folder.appendingPathComponent("agent-\(UUID().uuidString).log").path)
                waitUntil(seconds: 5) { (try? netlink.status().pid) == UInt32(pid) }
                waitUntil(seconds: 5) { (try? netlink.listRules().contains { AuditRuleData.keys(of: $0).contains(key) }) ?? false }
                waitUntil(seconds: 5) { (try? runAgent(["stats", "--state-dir", folder.path]).0) == 0 }
                return pid
            }
            func stop(_ pid: pid_t) {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }

            // The output refuses every write: events pile up in a 64 KiB spool.
            var agent = try startAgent("/dev/full")
            let count = 300
            _ = try runProgram(
                "/bin/bash",
                ["-c", "for i in $(seq 1 \(count)); do /bin/true MARK-$i; if [ $((i % 50)) = 0 ]; then /usr/bin/setpriv --reuid=65534 /bin/true PRIV-$i; fi; done"])
            usleep(1_000_000)
            stop(agent)

            // An output that works: the spool drains, and the second run's events follow.
            agent = try startAgent(output.path)
            usleep(1_500_000)
            stop(agent)

            let events = ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            func action(_ event: [String: Any]) -> String? { (event["event"] as? [String: Any])?["action"] as? String }
            // Event ids are MACHINE-START-SEQUENCE, the sequence counting every event a run spooled; the
            // first run's last event (its final loss report) carries its total.
            let ids = events.compactMap { ($0["event"] as? [String: Any])?["id"] as? String }.map { $0.split(separator: "-") }
            let firstStart = try #require(ids.compactMap { $0.count == 3 ? Int($0[1]) : nil }.min())
            let firstRun = ids.filter { $0.count == 3 && Int($0[1]) == firstStart }.compactMap { Int($0[2]) }
            let spooled = try #require(firstRun.max())
            let losses = events.compactMap { ($0["herdwatch"] as? [String: Any])?["loss"] as? [String: Any] }
                .filter { $0["source"] as? String == "spool" }
            let reported = losses.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
            #expect(!losses.isEmpty, "a full spool is reported")
            #expect(Set(firstRun).count == firstRun.count, "each event delivered once")
            #expect(reported == spooled - firstRun.count, "lost \(spooled - firstRun.count) of \(spooled), reported \(reported)")
            let marks = Set(events.compactMap { event -> String? in
                guard action(event) == "process-started" else { return nil }
                return ((event["process"] as? [String: Any])?["args"] as? [String])?.last.flatMap { $0.hasPrefix("MARK-") ? $0 : nil }
            })
            #expect(marks.count < count, "some ordinary events were dropped")
            // Must-keep survived: a privilege change for each setpriv run, and the audit
            // configuration changes of the first run.
            let privileged = Set(events.filter { action($0) == "privileges-changed" }.compactMap { ($0["process"] as? [String: Any])?["pid"] as? Int })
            #expect(privileged.count == count / 50, "privilege changes kept: \(privileged.count)")
            #expect(events.filter { action($0) == "audit-config-changed" }.count >= 4, "both runs' rule changes kept")
        }
    }
}

/// Sends SIGTERM and waits up to `seconds` for the process to exit: its wait status, or nil while
/// it still runs.
func terminate(_ pid: pid_t, within seconds: Double) -> Int32? {
    kill(pid, SIGTERM)
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(seconds)
    while waitpid(pid, &status, WNOHANG) != pid {
        guard Date() < deadline else { return nil }
        usleep(10_000)
    }
    return status
}

/// Polls `condition` every 50 ms until it holds or the time is up.
func waitUntil(seconds: Double, _ condition: () -> Bool) {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition(), Date() < deadline { usleep(50_000) }
}
