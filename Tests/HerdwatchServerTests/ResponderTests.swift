import Foundation
import HerdwatchCommands
import HerdwatchDetection
import HerdwatchStore
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import HerdwatchServer

@Suite struct ResponderTests {
    static let now: Int64 = 1_780_000_000_000

    static func alert(
        rule: String = "rule-1", title: String = "Reverse Shell", level: RuleLevel = .high, host: String = "web1",
        entity: String? = "abcd1234-4242-777", destination: String? = "10.0.0.9:4444", event: String = "e1"
    ) -> Alert {
        Alert(
            ruleID: rule, ruleTitle: title, level: level, tags: ["attack.execution"], ruleFile: "test.yml", correlation: nil, host: host,
            timeMilliseconds: now, eventIDs: [event], entityID: entity, pid: 4242, executable: "/bin/bash", commandLine: "bash -i",
            userName: "root", recordType: nil, destination: destination)
    }

    /// A responder over a fresh SQLite store; the notifier is shut down afterwards.
    func withResponder(
        _ yaml: String, tags: [String: HostTags] = ["web1": ["role": "web"]],
        _ test: (Responder, EventStore, CommandIssuer, String) async throws -> Void
    ) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-respond-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try EventStore(path: folder.appendingPathComponent("events.db").path)
        let issuer = CommandIssuer(signer: CommandSigner())
        let notifier = Notifier(logger: Logger(label: "test"))
        let configuration = try ResponseConfiguration.load(text: yaml.replacingOccurrences(of: "FOLDER", with: folder.path), file: "responses.yaml")
        let responder = Responder(
            configuration: configuration, issuer: issuer, store: store, hostTags: tags, notifier: notifier, logger: Logger(label: "test"))
        do {
            try await test(responder, store, issuer, folder.path)
        } catch {
            await notifier.shutdown()
            throw error
        }
        await notifier.shutdown()
    }

    func rows(_ store: EventStore, _ sql: String) throws -> [[String]] {
        try store.query(sql).rows.map { $0.map { value in
            switch value {
            case .text(let text): text
            case .integer(let number): String(number)
            case .null: "NULL"
            default: "\(value)"
            }
        } }
    }

    @Test func aMatchingPolicySendsASignedCommandAndRecordsItFirst() async throws {
        let yaml = """
            policies:
              - name: contain
                match: {rules: ["*reverse shell*"], level: medium, hosts: role=web}
                actions:
                  - raise: {level: pet, for: 10m}
                  - kill: {}
                  - block: {for: 5m}
            """
        try await withResponder(yaml) { responder, store, issuer, _ in
            let recorded = await responder.handle(Self.alert(), now: Self.now)
            #expect(recorded.map(\.action) == ["raise-level", "kill", "block"])
            #expect(recorded.allSatisfy { $0.status == "sent" && $0.commandID != nil })
            #expect(recorded.map(\.target) == ["pet", "abcd1234-4242-777", "10.0.0.9:4444"])
            let entries = await issuer.queue.take(host: "web1", after: 0, wait: .zero) { Self.now }
            #expect(entries.count == 3)
            // The agent's view: each verifies with the server's public key.
            var ledger = NonceLedger(path: nil, now: Self.now)
            let verifier = try CommandVerifier(
                publicKeyBase64: issuer.signer.publicKeyBase64, hostName: "web1", acceptedActions: ["level", "kill", "block"])
            let commands = entries.compactMap { try? verifier.verify($0.command, now: Self.now + 5, ledger: &ledger).get() }
            #expect(commands.map(\.action) == ["level", "kill", "block"])
            #expect(commands[0].arguments == ["level": "pet", "seconds": "600"])
            #expect(commands.map(\.id) == recorded.compactMap(\.commandID))
            #expect(commands.allSatisfy { $0.requestedBy == "policy contain" })
            let stored = try rows(store, "SELECT policy, action, status FROM responses ORDER BY action")
            #expect(stored == [["contain", "block", "sent"], ["contain", "kill", "sent"], ["contain", "raise-level", "sent"]])
        }
    }

    @Test func policiesThatDoNotMatchDoNothing() async throws {
        let yaml = """
            policies:
              - name: only-db
                match: {hosts: role=db}
                actions: [{kill: {}}]
              - name: only-critical
                match: {level: critical}
                actions: [{kill: {}}]
              - name: other-rule
                match: {rules: [rule-9]}
                actions: [{kill: {}}]
              - name: other-tag
                match: {tags: [attack.persistence]}
                actions: [{kill: {}}]
            """
        try await withResponder(yaml) { responder, store, issuer, _ in
            #expect(await responder.handle(Self.alert(), now: Self.now).isEmpty)
            #expect(issuer.queue.pendingCount(host: "web1") == 0)
        }
    }

    @Test func dryRunRecordsAndSendsNothingAndRateLimitsAreCounted() async throws {
        let yaml = """
            policies:
              - name: rehearse
                dry_run: true
                match: {level: low}
                actions: [{kill: {}}]
              - name: limited
                rate_limit: {max: 2, per: 1m}
                actions: [{raise: {level: pet, for: 60}}]
            """
        try await withResponder(yaml) { responder, store, issuer, _ in
            var statuses: [String] = []
            for index in 0..<3 {
                statuses += await responder.handle(Self.alert(event: "e\(index)"), now: Self.now + Int64(index)).map(\.status)
            }
            #expect(statuses == ["dry-run", "sent", "dry-run", "sent", "dry-run", "rate-limited"])
            #expect(issuer.queue.pendingCount(host: "web1") == 2)
            // A minute later the policy may act again.
            #expect(await responder.handle(Self.alert(event: "e9"), now: Self.now + 61_000).map(\.status) == ["dry-run", "sent"])
            let dryRuns = try rows(store, "SELECT count(*) FROM responses WHERE dry_run = 1")
            #expect(dryRuns == [["4"]])
        }
    }

    @Test func actionsWithoutATargetFailWithTheReason() async throws {
        let yaml = """
            policies:
              - name: p
                actions: [{kill: {}}, {block: {}}]
            """
        try await withResponder(yaml) { responder, _, issuer, _ in
            let recorded = await responder.handle(Self.alert(entity: nil, destination: nil), now: Self.now)
            #expect(recorded.map(\.status) == ["failed", "failed"])
            #expect(recorded[0].detail?.contains("no process") == true)
            #expect(recorded[1].detail?.contains("remote address") == true)
            #expect(issuer.queue.pendingCount(host: "web1") == 0)
        }
    }

    @Test func bounceRunsTheOperatorsProgramWithTheHostsIdentity() async throws {
        let yaml = """
            policies:
              - name: replace
                actions: [{bounce: {command: FOLDER/replace.sh, timeout: 10s}}]
              - name: too-slow
                actions: [{bounce: {command: FOLDER/slow.sh, timeout: 1s}}]
            """
        try await withResponder(yaml, tags: ["web1": ["role": "web", "instance-id": "i-0abc"]]) { responder, _, _, directory in
            try "#!/bin/sh\necho \"$1 $HERDWATCH_TAG_INSTANCE_ID $HERDWATCH_RULE_TITLE\" > \(directory)/bounced\necho replaced\n"
                .write(toFile: "\(directory)/replace.sh", atomically: true, encoding: .utf8)
            try "#!/bin/sh\nsleep 30\n".write(toFile: "\(directory)/slow.sh", atomically: true, encoding: .utf8)
            chmod("\(directory)/replace.sh", 0o755)
            chmod("\(directory)/slow.sh", 0o755)
            let started = ContinuousClock.now
            let recorded = await responder.handle(Self.alert(), now: Self.now)
            #expect(ContinuousClock.now - started < .seconds(10), "the timeout did not stop the slow program")
            #expect(recorded.map(\.status) == ["succeeded", "failed"])
            #expect(recorded[0].detail?.hasSuffix("exit 0: replaced") == true, "\(recorded[0].detail ?? "")")
            #expect(recorded[1].detail?.contains("stopped after its timeout of 1 s") == true, "\(recorded[1].detail ?? "")")
            let written = try String(contentsOfFile: "\(directory)/bounced", encoding: .utf8)
            #expect(written == "web1 i-0abc Reverse Shell\n")
        }
    }

    @Test func notifyWritesTheAlertToAFile() async throws {
        let yaml = """
            policies:
              - name: tell
                actions: [{notify: {kind: file, path: FOLDER/notifications.jsonl}}]
            """
        try await withResponder(yaml) { responder, _, _, directory in
            let recorded = await responder.handle(Self.alert(), now: Self.now)
            #expect(recorded.map(\.status) == ["succeeded"])
            let line = try String(contentsOfFile: "\(directory)/notifications.jsonl", encoding: .utf8)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["rule_title"] as? String == "Reverse Shell" && object["policy"] as? String == "tell")
            #expect(object["dry_run"] as? Bool == false, "\(line)")
        }
    }

    /// The agent's `response-action` events complete the records; a refusal is an alert.
    @Test func agentReportsCompleteTheRecordsAndRefusalsRaiseAlerts() async throws {
        let yaml = """
            policies:
              - name: contain
                actions: [{kill: {}}]
            """
        try await withResponder(yaml) { responder, store, _, _ in
            let recorded = await responder.handle(Self.alert(), now: Self.now)
            let id = try #require(recorded.first?.commandID)
            let done = #"{"@timestamp":"2026-11-23T10:00:01.000Z","event":{"action":"response-action","id":"r1"},"host":{"name":"web1"},"herdwatch":{"response":{"command_id":"\#(id)","action":"kill","status":"succeeded","detail":"killed pid 4242"}}}"#
            let refused = #"{"@timestamp":"2026-11-23T10:00:02.000Z","event":{"action":"response-action","id":"r2"},"host":{"name":"web1"},"herdwatch":{"response":{"status":"refused","refusal":"bad-signature","detail":"signature does not verify with the server key"}}}"#
            let alerts = await responder.observe([done, "{}", refused].compactMap { JSONSubject(json: Substring($0)) })
            let completed = try rows(store, "SELECT status, detail FROM responses")
            #expect(completed == [["succeeded", "killed pid 4242"]])
            #expect(alerts.map(\.ruleTitle) == ["Agent Refused A Server Command"])
            #expect(alerts.first?.host == "web1" && alerts.first?.commandLine?.hasPrefix("bad-signature") == true)
        }
    }

    @Test(arguments: [
        ("policies: []\nextra: 1", "extra: unknown key"),
        ("policies:\n  - actions: [{kill: {}}]", "policies[0].name: required"),
        ("policies:\n  - name: a\n    actions: []", "policies[0] (a).actions"),
        ("policies:\n  - name: a\n    actions: [{explode: {}}]", "'explode' is not an action"),
        ("policies:\n  - name: a\n    actions: [{raise: {for: soon}}]", "raise.for: 'soon' is not a duration"),
        ("policies:\n  - name: a\n    actions: [{kill: {now: true}}]", "kill.now: unknown option"),
        ("policies:\n  - name: a\n    actions: [{bounce: {command: relative.sh}}]", "bounce.command: required"),
        ("policies:\n  - name: a\n    actions: [{notify: {kind: webhook}}]", "notify"),
        ("policies:\n  - name: a\n    match: {level: severe}\n    actions: [{kill: {}}]", "match.level"),
        ("policies:\n  - name: a\n    rate_limit: {max: 0, per: 1m}\n    actions: [{kill: {}}]", "rate_limit"),
        ("policies:\n  - name: a\n    actions: [{kill: {}}]\n  - name: a\n    actions: [{kill: {}}]", "a second policy named 'a'"),
    ])
    func badPolicyFilesNameTheFileThePolicyAndTheKey(yaml: String, expected: String) {
        do {
            _ = try ResponseConfiguration.load(text: yaml, file: "responses.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("responses.yaml: ") && text.contains(expected), "\(text)")
        }
    }

    @Test func titlesMatchWithWildcardsIgnoringCase() {
        #expect(ResponsePolicy.glob("*reverse shell*", "Netcat Reverse Shell Spawned"))
        #expect(ResponsePolicy.glob("rule-1", "RULE-1"))
        #expect(ResponsePolicy.glob("a*b*c", "axxbyyc"))
        #expect(!ResponsePolicy.glob("a*b*c", "axxbyy"))
        #expect(!ResponsePolicy.glob("shell", "reverse shell"))
        #expect(ResponsePolicy.glob("*", ""))
    }

    /// The agents' long poll: a held request answers as soon as a command is queued for its host,
    /// not for another; `after` acknowledges; an unknown token is refused.
    @Test func theCommandPollAnswersWhenACommandArrives() async throws {
        let issuer = CommandIssuer(signer: CommandSigner())
        let router = Router()
        CommandRoutes.add(to: router, queue: issuer.queue, ingest: IngestConfiguration(tokens: ["web1-token-0123456789": "web1"]))
        try await Application(router: router).test(.router) { client in
            let unauthorized = try await client.execute(uri: "/api/v1/commands", method: .get) { $0.status }
            #expect(unauthorized == .unauthorized)
            let headers: HTTPFields = [.authorization: "Bearer web1-token-0123456789"]
            let started = ContinuousClock.now
            async let reply = client.execute(uri: "/api/v1/commands?wait=10", method: .get, headers: headers) { response in
                (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
            }
            try await Task.sleep(for: .milliseconds(200))
            issuer.send(issuer.prepare(host: "db1", action: "level", arguments: [:], requestedBy: "test", now: Self.now))
            issuer.send(issuer.prepare(host: "web1", action: "level", arguments: ["level": "pet"], requestedBy: "test", now: Int64(Date().timeIntervalSince1970 * 1000)))
            let object = try await reply
            // Answered when the command came, not when the 10 s wait ran out (with room for a loaded machine).
            #expect(ContinuousClock.now - started < .seconds(8))
            let commands = try #require(object["commands"] as? [[String: Any]])
            #expect(commands.count == 1)
            let epoch = try #require(object["epoch"] as? String)
            let sequence = try #require(commands.first?["seq"] as? Int)
            // Acknowledged: the next poll gets nothing (after waiting its 0 s).
            let next = try await client.execute(uri: "/api/v1/commands?epoch=\(epoch)&after=\(sequence)&wait=0", method: .get, headers: headers) {
                ((try? JSONSerialization.jsonObject(with: Data(buffer: $0.body))) as? [String: Any])?["commands"] as? [Any]
            }
            #expect(next?.isEmpty == true)
            #expect(issuer.queue.pendingCount(host: "db1") == 1)
        }
    }
}

/// Commands an operator sends by hand: recorded as `manual` responses with who asked, signed and
/// queued; bad requests, unknown hosts and posts from other sites refused.
@Suite struct ManualCommandTests {
    func withPages(users: UserDirectory? = nil, _ test: @Sendable (any TestClientProtocol, EventStore, CommandIssuer) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-manual-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try EventStore(path: folder.appendingPathComponent("events.db").path)
        let issuer = CommandIssuer(signer: CommandSigner())
        let router = Router()
        WebRoutes.add(
            to: router, store: store, configuration: WebConfiguration(users: users), commands: issuer, hosts: ["web1"],
            logger: Logger(label: "test"))
        try await Application(router: router).test(.router) { client in try await test(client, store, issuer) }
    }

    func post(_ client: any TestClientProtocol, _ host: String, _ body: String, headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, String) {
        var fields = headers
        if fields[.contentType] == nil { fields[.contentType] = "application/json" }
        return try await client.execute(uri: "/api/v1/hosts/\(host)/commands", method: .post, headers: fields, body: ByteBuffer(string: body)) {
            ($0.status, String(buffer: $0.body))
        }
    }

    @Test func anOperatorsCommandIsRecordedSignedAndQueued() async throws {
        try await withPages { client, store, issuer in
            let (status, reply) = try await post(client, "web1", #"{"action": "isolate", "seconds": 600}"#)
            #expect(status == .accepted, "\(reply)")
            let entries = await issuer.queue.take(host: "web1", after: 0, wait: .zero) { Int64(Date().timeIntervalSince1970 * 1000) }
            var ledger = NonceLedger(path: nil, now: Int64(Date().timeIntervalSince1970 * 1000))
            let verifier = try CommandVerifier(publicKeyBase64: issuer.signer.publicKeyBase64, hostName: "web1", acceptedActions: ["isolate"])
            let command = try verifier.verify(try #require(entries.first).command, now: Int64(Date().timeIntervalSince1970 * 1000), ledger: &ledger).get()
            #expect(command.arguments == ["seconds": "600"] && command.requestedBy.hasPrefix("user "))
            let rows = try store.query("SELECT policy, action, target, status, detail, command_id FROM responses").rows
            #expect(rows.count == 1)
            #expect(rows.first?.prefix(4).map(\.description) == ["manual", "isolate", "web1", "sent"])
            #expect(rows.first?[5].description == command.id)
            // A form from the UI's buttons: the same, then back to the host's responses.
            let (formStatus, _) = try await post(
                client, "web1", "action=kill&entity_id=abcd1234-42-7", headers: [.contentType: "application/x-www-form-urlencoded"])
            #expect(formStatus == .seeOther)
            #expect(issuer.queue.pendingCount(host: "web1") == 2)
        }
    }

    @Test(arguments: [
        ("web1", #"{"action": "explode"}"#, HTTPResponse.Status.badRequest),
        ("web1", #"{"action": "kill"}"#, .badRequest),
        ("web1", #"{"action": "block"}"#, .badRequest),
        ("web1", #"{"action": "level", "level": "pet", "seconds": -5}"#, .badRequest),
        ("web1", "not json", .badRequest),
        ("db9", #"{"action": "release"}"#, .notFound),
    ])
    func badCommandsAreRefusedWithTheReason(host: String, body: String, expected: HTTPResponse.Status) async throws {
        try await withPages { client, store, issuer in
            let (status, reply) = try await post(client, host, body)
            #expect(status == expected, "\(reply)")
            #expect(reply.contains("\"error\""))
            #expect(issuer.queue.pendingCount(host: host) == 0)
            let recorded = try store.query("SELECT count(*) FROM responses").rows
            #expect(recorded == [[.integer(0)]])
        }
    }

    @Test func theHostsPageHasTheButtons() async throws {
        try await withPages { client, store, _ in
            try await store.register(hosts: ["web1": ["role": "web"]])
            let page = try await client.execute(uri: "/hosts", method: .get) { String(buffer: $0.body) }
            #expect(page.contains("action=\"/api/v1/hosts/web1/commands\""))
            #expect(page.contains(">Isolate</button>") && page.contains(">Release</button>"))
        }
    }

    @Test func aPostFromAnotherSiteIsRefused() async throws {
        try await withPages { client, _, issuer in
            let (status, _) = try await post(
                client, "web1", "action=release", headers: [.contentType: "application/x-www-form-urlencoded", .origin: "http://evil.example"])
            #expect(status == .forbidden)
            #expect(issuer.queue.pendingCount(host: "web1") == 0)
        }
    }

    @Test func theSignedInUserIsWhoAsked() async throws {
        let hash = try #require(PasswordHash.make("s3cret"))
        let users = try UserDirectory(parsing: "alice \(hash)\n", file: "users")
        try await withPages(users: users) { client, store, _ in
            let basic = "Basic " + Data("alice:s3cret".utf8).base64EncodedString()
            // A client cannot claim to be someone else.
            let (status, reply) = try await post(
                client, "web1", #"{"action": "release"}"#,
                headers: [.authorization: basic, ManualCommands.userHeader: "mallory"])
            #expect(status == .accepted, "\(reply)")
            let detail = try store.query("SELECT detail FROM responses").rows
            #expect(detail == [[.text("by alice")]])
            let (anonymous, _) = try await post(client, "web1", #"{"action": "release"}"#)
            #expect(anonymous == .unauthorized)
        }
    }
}
