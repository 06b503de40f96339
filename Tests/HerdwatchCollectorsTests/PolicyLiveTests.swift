import Foundation
import HerdwatchEvents
import Testing

@testable import HerdwatchCollectors

/// The telemetry policy on the real kernel: one scripted workload under `cattle` and under `pet`,
/// and a level raised and expiring mid-run, through the agent binary.
@Suite(.serialized) struct PolicyLiveTests {
    /// Programs the workload runs, given to the agent as the image's baseline, so the only program
    /// new to the host is the drift tool.
    static let workloadPrograms = [
        "/usr/bin/bash", "/usr/bin/setsid", "/bin/sh", "/usr/bin/echo", "/usr/bin/true", "/usr/bin/setpriv",
        "/usr/bin/perl", "/usr/bin/seq", "/usr/bin/cp",
    ]
    static let available =
        AgentTests.available && workloadPrograms.allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }

    /// One agent run in its own state directory, with the events it wrote.
    struct AgentRun {
        let folder: URL
        let pid: pid_t
        let run: String
        var output: URL { folder.appendingPathComponent("events.jsonl") }

        func events() -> [[String: Any]] {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        func level(_ arguments: [String]) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: AgentTests.agent)
            process.arguments = ["level"] + arguments + ["--state-dir", folder.path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }

    func startAgent(profile: String, run: String) throws -> AgentRun {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-policy-\(run)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let baseline = folder.appendingPathComponent("baseline.txt")
        let programs = Self.workloadPrograms.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
        try (programs.joined(separator: "\n") + "\n").write(to: baseline, atomically: true, encoding: .utf8)
        let config = folder.appendingPathComponent("agent.yml")
        try """
            profile: \(profile)
            policy:
              baseline: [\(baseline.path)]
            heartbeat_seconds: 1
            auth_log: none
            """.write(to: config, atomically: true, encoding: .utf8)
        let pid = try spawnWithDefaultSignals(
            AgentTests.agent,
            ["run", "--mode", "unicast", "--config", config.path, "--output", folder.appendingPathComponent("events.jsonl").path,
             "--state-dir", folder.path],
            standardError: folder.appendingPathComponent("agent.log").path)
        let netlink = try AuditNetlink(mode: .unicast)
        waitUntil(seconds: 10) { (try? netlink.status().pid) == UInt32(pid) }
        // Ready when the control socket answers.
        let agentRun = AgentRun(folder: folder, pid: pid, run: run)
        waitUntil(seconds: 5) { (try? agentRun.level([]).status) == 0 }
        return agentRun
    }

    func stop(_ agent: AgentRun) {
        kill(agent.pid, SIGTERM)
        var status: Int32 = 0
        waitpid(agent.pid, &status, 0)
    }

    /// Trees `from...to`: each a session of its own (setsid) running five programs, three deep.
    /// Then the security-critical actions: a privilege change, a module removal attempt, a failed
    /// login message, and a program the host has never run.
    func workload(_ run: String, trees: ClosedRange<Int>, critical: Bool, folder: URL) throws {
        let script = """
            for i in $(/usr/bin/seq \(trees.lowerBound) \(trees.upperBound)); do
              /usr/bin/setsid /bin/sh -c "/usr/bin/echo hw-\(run)-tree-$i > /dev/null; /usr/bin/true hw-\(run)-tree-$i; /bin/sh -c '/usr/bin/true hw-\(run)-tree-$i-end'"
            done
            """
        _ = try runProgram("/usr/bin/bash", ["-c", script])
        guard critical else { return }
        _ = try runProgram("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/true", "hw-\(run)-priv"])
        _ = try runProgram("/usr/bin/perl", ["-e", "my $name = 'hw_\(run.prefix(8))_none'; syscall(176, $name, 0)"])
        try AuditNetlink(mode: .unicast).sendUserMessage(
            type: 1112, text: "op=login acct=\"hw-\(run)-login\" exe=\"/usr/sbin/sshd\" hostname=192.0.2.7 addr=192.0.2.7 terminal=ssh res=failed")
        let drift = folder.appendingPathComponent("hw-drift-\(run)").path
        _ = try runProgram("/usr/bin/cp", ["/usr/bin/true", drift])
        _ = try runProgram(drift, [])
    }

    /// Exec events of the workload's trees, by tree number (the setsid exec, which happens in the
    /// parent's session before setsid, left out).
    func execsByTree(_ events: [[String: Any]], run: String) -> [Int: [[String: Any]]] {
        var trees: [Int: [[String: Any]]] = [:]
        let prefix = "hw-\(run)-tree-"
        for event in events {
            guard (event["event"] as? [String: Any])?["action"] as? String == "process-started",
                let process = event["process"] as? [String: Any], process["executable"] as? String != "/usr/bin/setsid",
                let args = process["args"] as? [String]
            else { continue }
            let joined = args.joined(separator: " ")
            guard let range = joined.range(of: prefix) else { continue }
            let digits = joined[range.upperBound...].prefix { $0.isNumber }
            if let tree = Int(digits) { trees[tree, default: []].append(event) }
        }
        return trees
    }

    func actions(_ events: [[String: Any]]) -> [String] {
        events.compactMap { ($0["event"] as? [String: Any])?["action"] as? String }
    }

    /// Whether the workload's last action (the drift tool's exec) has come out: audit events come
    /// in order, so everything before it has too.
    func workloadDone(_ events: [[String: Any]], run: String, folder: URL) -> Bool {
        let drift = folder.appendingPathComponent("hw-drift-\(run)").path
        return events.contains { (($0["process"] as? [String: Any])?["executable"] as? String) == drift }
    }

    func mustKeepPresent(_ events: [[String: Any]], run: String, folder: URL) {
        func has(_ action: String, where test: ([String: Any]) -> Bool = { _ in true }) -> Bool {
            events.contains { ($0["event"] as? [String: Any])?["action"] as? String == action && test($0) }
        }
        func executable(_ event: [String: Any]) -> String? { (event["process"] as? [String: Any])?["executable"] as? String }
        #expect(has("privileges-changed") { executable($0) == "/usr/bin/setpriv" }, "privilege change kept")
        #expect(has("module-unloaded") { executable($0) == "/usr/bin/perl" }, "module removal kept")
        #expect(has("user-login") { ($0["user"] as? [String: Any])?["name"] as? String == "hw-\(run)-login" }, "failed login kept")
        #expect(has("audit-config-changed"), "audit configuration changes kept")
        #expect(has("agent-heartbeat"), "heartbeats kept")
        let drift = folder.appendingPathComponent("hw-drift-\(run)").path
        let first = events.first { executable($0) == drift && ($0["event"] as? [String: Any])?["action"] as? String == "process-started" }
        #expect((first?["herdwatch"] as? [String: Any])?["first_seen"] as? Bool == true, "a program new to the host is kept and flagged")
        let flagged = events.filter { ($0["herdwatch"] as? [String: Any])?["first_seen"] as? Bool == true }.compactMap(executable)
        #expect(flagged.allSatisfy { !$0.contains("hw-") || $0 == drift }, "only the drift tool is new: \(flagged)")
    }

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem, the built agent and the workload's programs"))
    func cattleSamplesWholeTreesPetKeepsEverythingAndTheLevelSwitchesWithinASecond() throws {
        try withKernelAudit {
            let treeCount = 100
            let netlink = try AuditNetlink(mode: .unicast)

            // Pet: every event of every tree.
            let petRun = "p\(UUID().uuidString.prefix(8))"
            let pet = try startAgent(profile: "pet", run: petRun)
            defer { try? FileManager.default.removeItem(at: pet.folder) }
            do {
                defer { stop(pet) }
                try workload(petRun, trees: 1...treeCount, critical: true, folder: pet.folder)
                waitUntil(seconds: 30) { workloadDone(pet.events(), run: petRun, folder: pet.folder) }
                usleep(1_500_000)  // a heartbeat, and stragglers
            }
            let petEvents = pet.events()
            let petTrees = execsByTree(petEvents, run: petRun)
            #expect(petTrees.count == treeCount && petTrees.values.allSatisfy { $0.count == 5 }, "pet keeps every tree whole")
            #expect(petTrees.values.joined().allSatisfy { $0["herdwatch"] == nil }, "pet does not sample")
            mustKeepPresent(petEvents, run: petRun, folder: pet.folder)

            // Cattle: whole trees or nothing, about one in ten, every must-keep event.
            let cattleRun = "c\(UUID().uuidString.prefix(8))"
            let cattle = try startAgent(profile: "cattle", run: cattleRun)
            defer { try? FileManager.default.removeItem(at: cattle.folder) }
            var requested: Date?
            var expiryRequested: Date?
            do {
                defer { stop(cattle) }
                try workload(cattleRun, trees: 1...treeCount, critical: true, folder: cattle.folder)
                waitUntil(seconds: 30) { workloadDone(cattle.events(), run: cattleRun, folder: cattle.folder) }
                usleep(1_500_000)

                // What it costs, by class, before and after the policy.
                let stats = Process()
                stats.executableURL = URL(fileURLWithPath: AgentTests.agent)
                stats.arguments = ["stats", "--json", "--state-dir", cattle.folder.path]
                let pipe = Pipe()
                stats.standardOutput = pipe
                try stats.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                stats.waitUntilExit()
                let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
                let total = ((report["cost"] as? [String: Any])?["total"] as? [String: Any])?["cattle"] as? [String: [String: Int]]
                let process = try #require(total?["process"], "stats: \(report)")
                #expect(process["events_before"]! > process["events_after"]! && process["events_after"]! > 0)
                #expect(process["bytes_before"]! > process["bytes_after"]!)
                #expect(total?["privilege"]?["events_before"] == total?["privilege"]?["events_after"])
                #expect((report["sinks"] as? [String: Any])?["output"] != nil)
                let beats = cattle.events().filter { ($0["event"] as? [String: Any])?["action"] as? String == "agent-heartbeat" }
                    .compactMap { ($0["herdwatch"] as? [String: Any])?["agent"] as? [String: Any] }
                #expect(!beats.isEmpty && beats.allSatisfy { $0["profile"] as? String == "cattle" })
                #expect(
                    beats.contains { (($0["cost"] as? [String: Any])?["process"] as? [String: Int])?["events_before"] ?? 0 > 0 },
                    "heartbeats carry the cost")

                // Raise to pet for 30 minutes: in force (rules included) when the command returns.
                requested = Date()
                let raised = try cattle.level(["pet", "--for", "30m"])
                let took = Date().timeIntervalSince(requested!)
                #expect(raised.status == 0 && raised.output.contains("cattle -> pet"), "\(raised.output)")
                #expect(took < 1, "level change took \(took) s")
                let keys = try netlink.listRules().flatMap { AuditRuleData.keys(of: $0) }
                #expect(keys.contains("net-listen") && keys.contains("identity"), "pet's rules loaded: \(keys)")
                try workload(cattleRun, trees: (treeCount + 1)...(treeCount + 50), critical: false, folder: cattle.folder)

                // A short raise that expires on its own, back to cattle's rules.
                expiryRequested = Date()
                #expect(try cattle.level(["pet", "--for", "1s"]).status == 0)
                waitUntil(seconds: 3) { actions(cattle.events()).filter { $0 == "monitoring-level-changed" }.count >= 3 }
                waitUntil(seconds: 2) { !((try? netlink.listRules().flatMap { AuditRuleData.keys(of: $0) }.contains("net-listen")) ?? true) }
                let after = try netlink.listRules().flatMap { AuditRuleData.keys(of: $0) }
                #expect(!after.contains("net-listen") && after.contains("exec"), "cattle's rules back after expiry: \(after)")
                usleep(1_500_000)
            }
            let cattleEvents = cattle.events()
            let trees = execsByTree(cattleEvents, run: cattleRun)
            let before = trees.filter { $0.key <= treeCount }
            #expect(before.values.allSatisfy { $0.count == 5 }, "cattle keeps trees whole: \(before.mapValues(\.count).filter { $0.value != 5 })")
            #expect(before.count >= 1 && before.count <= treeCount / 3, "cattle kept \(before.count) of \(treeCount) trees")
            #expect(
                before.values.joined().allSatisfy { (($0["herdwatch"] as? [String: Any])?["sampling"] as? [String: Any])?["rate"] as? Double == 0.1 },
                "sampled events carry the rate")
            // No orphans: a kept process's parent, if it is part of the workload, was kept too.
            let keptIDs = Set(trees.values.joined().compactMap { ($0["process"] as? [String: Any])?["entity_id"] as? String })
            for event in trees.values.joined() {
                let process = event["process"] as? [String: Any]
                let parentArgs = ((process?["parent"] as? [String: Any])?["args"] as? [String])?.joined(separator: " ") ?? ""
                // Tree members name their tree's number (the script above them has "$i").
                guard let marker = parentArgs.range(of: "hw-\(cattleRun)-tree-"),
                    parentArgs[marker.upperBound...].first?.isNumber == true, !parentArgs.hasPrefix("/usr/bin/setsid")
                else { continue }
                let parent = (process?["parent"] as? [String: Any])?["entity_id"] as? String
                #expect(
                    parent.map(keptIDs.contains) == true,
                    "orphan: \(process?["args"] ?? "") \(process?["entity_id"] ?? "") parent \(parent ?? "-") \(parentArgs)")
            }
            mustKeepPresent(cattleEvents, run: cattleRun, folder: cattle.folder)

            // While raised to pet: every tree, unsampled.
            let raisedTrees = trees.filter { $0.key > treeCount }
            #expect(raisedTrees.count == 50 && raisedTrees.values.allSatisfy { $0.count == 5 }, "raised level keeps every tree")

            // The changes are in the stream: raised, raised again, expired.
            let changes = cattleEvents.filter { ($0["event"] as? [String: Any])?["action"] as? String == "monitoring-level-changed" }
            let levels = changes.compactMap { ($0["herdwatch"] as? [String: Any])?["level"] as? [String: Any] }
            #expect(levels.map { $0["reason"] as? String ?? "" } == ["escalation", "escalation", "expiry"])
            #expect(levels.last?["current"] as? String == "cattle")
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let times = changes.compactMap { ($0["@timestamp"] as? String).flatMap(formatter.date(from:)) }
            if let requested, let expiryRequested, times.count == 3 {
                #expect(abs(times[0].timeIntervalSince(requested)) < 1, "escalation recorded within 1 s")
                let expiredAfter = times[2].timeIntervalSince(expiryRequested)
                #expect(expiredAfter >= 0.9 && expiredAfter < 2, "expiry after \(expiredAfter) s")
            }
        }
    }
}
