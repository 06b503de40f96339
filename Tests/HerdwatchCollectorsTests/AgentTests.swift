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
                ["run", "--mode", "unicast", "--rules", rules.path, "--output", output.path, "--heartbeat-interval", "0.3"],
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

            kill(pid, SIGTERM)
            var status: Int32 = 0
            for _ in 0..<100 where !exited {
                exited = waitpid(pid, &status, WNOHANG) == pid
                if !exited { usleep(100_000) }
            }
            #expect(exited, "agent did not stop on SIGTERM")
            #expect(status == 0, "exit status \(status)")
            let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(logText.contains("test.rules:3"), "the broken rule is reported with its line: \(logText)")
            #expect(try netlink.status().pid == 0)
            #expect(try netlink.listRules().allSatisfy { !AuditRuleData.keys(of: $0).contains(key) })
        }
    }
}
