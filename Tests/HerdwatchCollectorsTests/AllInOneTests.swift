import Foundation
import HerdwatchTestSupport
import Testing

@testable import HerdwatchCollectors

/// `herdwatch run`, the README's main job: agent and server in one process on this host's kernel.
@Suite(.serialized) struct AllInOneTests {
    @Test(.enabled(if: AgentTests.available && FileManager.default.isExecutableFile(atPath: ShippingLiveTests.herdwatch), "needs root, the kernel's audit subsystem and the built binaries"))
    func runCollectsStoresDetectsAndServesTheUI() throws {
        try withKernelAudit {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-run-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let state = folder.appendingPathComponent("state").path
            let port = NATSServer.freePort()
            let netlink = try AuditNetlink(mode: .unicast)
            let run = try spawnWithDefaultSignals(
                ShippingLiveTests.herdwatch, ["run", "--state-dir", state, "--listen", "127.0.0.1:\(port)", "--mode", "unicast"],
                standardError: folder.appendingPathComponent("run.log").path)
            var stopped = false
            defer { if !stopped { stopServer(run, signal: SIGKILL) } }
            waitUntil(seconds: 10) { NATSServer.accepts(port) && (try? netlink.status().pid) == UInt32(run) }
            waitUntil(seconds: 5) { (try? netlink.listRules().isEmpty == false) ?? false }
            usleep(300_000)

            let marker = "herdwatch-run-\(UUID().uuidString)"
            let tool = folder.appendingPathComponent("tool").path
            try "".write(toFile: tool, atomically: true, encoding: .utf8)
            DetectionLiveTests.run(["/bin/true", marker])
            DetectionLiveTests.run(["/bin/chmod", "u+s", tool])

            func get(_ path: String) -> Data {
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments = ["-s", "--max-time", "5", "http://127.0.0.1:\(port)\(path)"]
                let pipe = Pipe()
                curl.standardOutput = pipe
                guard (try? curl.run()) != nil else { return Data() }
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                curl.waitUntilExit()
                return data
            }
            func api(_ sql: String) -> [[Any]] {
                let data = get("/api/v1/query?sql=" + sql.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
                return object?["rows"] as? [[Any]] ?? []
            }
            var started: [[Any]] = []
            waitUntil(seconds: 10) {
                started = api("SELECT pid, entity_id, parent_entity_id FROM processes WHERE action = 'process-started' AND command_line = '/bin/true \(marker)'")
                return !started.isEmpty
            }
            #expect(started.count == 1, "the marked exec is stored once")
            #expect((started.first?[1] as? String)?.isEmpty == false && (started.first?[2] as? String)?.isEmpty == false)
            var alerts: [[Any]] = []
            waitUntil(seconds: 10) {
                alerts = api("SELECT rule_title, executable FROM alerts WHERE rule_id = '58e9946e-5146-47c6-b8a5-8325cb372943'")
                return !alerts.isEmpty
            }
            #expect(alerts.first?[1] as? String == "/usr/bin/chmod", "the built-in rule fired on chmod u+s")
            // The default response: the alert written to notifications.jsonl, the level raised by a
            // signed command the agent carried out.
            var responses: [[Any]] = []
            waitUntil(seconds: 10) {
                responses = api(
                    "SELECT action, status FROM responses WHERE policy = 'notify-and-raise' AND rule_id = '58e9946e-5146-47c6-b8a5-8325cb372943' ORDER BY action")
                return responses.count == 2 && responses.allSatisfy { $0[1] as? String == "succeeded" }
            }
            #expect(responses.map { "\($0[0]):\($0[1])" } == ["notify:succeeded", "raise-level:succeeded"], "\(responses)")
            let notifications = (try? String(contentsOfFile: state + "/notifications.jsonl", encoding: .utf8)) ?? ""
            #expect(notifications.contains("58e9946e-5146-47c6-b8a5-8325cb372943"), "the alert was written to notifications.jsonl")
            // The agent's own audit rules (loaded at start, swapped by the level change) are not
            // taken for someone else's.
            let changes = api("SELECT count(*) FROM events WHERE action = 'audit-config-changed'")
            #expect((changes.first?.first as? Int ?? 0) > 0, "the agent's rule changes are stored")
            let ruleAlerts = api(
                "SELECT rule_title, executable FROM alerts WHERE rule_id IN ('8a4e6c1d-2b3f-4e5a-9c7d-1f0e2d3c4b5a', 'd234c278-098e-4a41-a5f9-76b7326b4513')")
            #expect(ruleAlerts.isEmpty, "alerts on the agent's own rule changes: \(ruleAlerts)")
            let hosts = api("SELECT name, level FROM hosts")
            #expect(hosts.count == 1, "\(hosts)")
            // The UI answers.
            let page = String(decoding: get("/hosts"), as: UTF8.self)
            #expect(page.contains("<table id=\"hosts\">"))

            kill(run, SIGTERM)
            var status: Int32 = 0
            waitUntil(seconds: 15) { waitpid(run, &status, WNOHANG) == run }
            stopped = true
            #expect(status == 0, "a clean stop: \((try? String(contentsOfFile: folder.appendingPathComponent("run.log").path, encoding: .utf8)) ?? "")")
            #expect((try? netlink.status().pid) == 0)
            #expect((try? netlink.listRules().isEmpty) == true, "the agent removed its rules")
        }
    }
}
