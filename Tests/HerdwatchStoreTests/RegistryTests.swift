import Foundation
import Testing

import HerdwatchEvents
@testable import HerdwatchStore

/// The hosts registry (tags, heartbeat figures), tag selectors, and retention by day, in both engines.
@Suite struct RegistryTests {
    func heartbeat(host: String, second: Int, profile: String, uptime: Int? = nil) -> Substring {
        Substring(
            #"{"@timestamp":"2026-11-23T10:00:\#(String(format: "%02d", second)).000Z","event":{"kind":"metric","module":"agent","category":["host"],"action":"agent-heartbeat","id":"hb-\#(host)-\#(second)"},"host":{"name":"\#(host)"},"agent":{"type":"herdwatch","version":"0.9.0"},"herdwatch":{"agent":{\#(uptime.map { #""uptime_seconds":\#($0),"# } ?? "")"interval_seconds":10,"events_per_second":{"auditd":20.5,"proc-connector":4.5},"lost_total":3,"rss_bytes":1000,"cpu_percent":1.5,"profile":"\#(profile)","cost":{"process":{"events_before":10,"events_after":5,"bytes_before":2000,"bytes_after":1000},"network":{"events_before":1,"events_after":1,"bytes_before":100,"bytes_after":100}}}}}"#
        )
    }

    @Test(arguments: Engine.allCases)
    func tagsSelectHostsAndHeartbeatsFillTheRegistry(engine: Engine) async throws {
        let heartbeats = [
            heartbeat(host: "web1", second: 5, profile: "pet"), heartbeat(host: "web1", second: 9, profile: "cattle"),
            heartbeat(host: "web1", second: 7, profile: "pet"),
        ]
        try await engine.withStore { store in
            try await store.register(hosts: ["web1": ["role": "web", "env": "prod"], "web2": ["role": "web", "env": "dev"], "db1": ["role": "db", "env": "prod"], "spare": [:]])
            _ = try await store.ingest([
                event("a", host: "web1", second: 1), event("b", host: "web2", second: 2), event("c", host: "db1", second: 3), heartbeats[0],
            ])
            func hosts(_ scope: String) async throws -> [[QueryValue]] {
                var options = QueryOptions()
                options.hosts = HostScope(parsing: scope)
                return try await store.query("SELECT DISTINCT host FROM events ORDER BY host", options: options).rows
            }
            #expect(try await hosts("role=web") == [[.text("web1")], [.text("web2")]])
            #expect(try await hosts("role=web,env=prod") == [[.text("web1")]])
            #expect(try await hosts("env=prod") == [[.text("db1")], [.text("web1")]])
            #expect(try await hosts("db1,web2") == [[.text("db1")], [.text("web2")]])
            #expect(try await hosts("web1,role=db").isEmpty, "names and tags must both hold")
            #expect(try await hosts("role=nothing").isEmpty)
            #expect(try await hosts("all").count == 3)

            let registry = try await store.read(
                "SELECT name, tags, level, agent_version, events_per_second, bytes_per_day, lost_total, events, first_seen FROM hosts ORDER BY name")
            #expect(registry.rows[0] == [.text("db1"), .text("env=prod,role=db"), .null, .null, .null, .null, .null, .integer(1), .text("2026-11-23T10:00:03.000Z")])
            #expect(registry.rows[1] == [.text("spare"), .null, .null, .null, .null, .null, .null, .integer(0), .null], "registered, never seen")
            #expect(registry.rows[2] == [.text("web1"), .text("env=prod,role=web"), .text("pet"), .text("0.9.0"), .real(25), .real(1100.0 / 10 * 86_400), .integer(3), .integer(2), .text("2026-11-23T10:00:01.000Z")])
            // A host registered but never seen does not count as gone silent.
            #expect(try await store.hosts(silentSince: Int64.max).map(\.name).sorted() == ["db1", "web1", "web2"])
            // An older heartbeat arriving late does not overwrite a newer one.
            _ = try await store.ingest([heartbeats[1], heartbeats[2]])
            #expect(try await store.read("SELECT level FROM hosts WHERE name = 'web1'").rows == [[.text("cattle")]])
        }
    }

    /// The first heartbeat after a start (uptime about one interval) counts the start's own events:
    /// it sets no cost per day; the next one does, and a restart keeps the figure it had.
    @Test(arguments: Engine.allCases)
    func theFirstHeartbeatAfterAStartSetsNoCostPerDay(engine: Engine) async throws {
        try await engine.withStore { store in
            func costPerDay() async throws -> QueryValue? {
                try await store.read("SELECT bytes_per_day FROM hosts WHERE name = 'web1'").rows.first?.first
            }
            _ = try await store.ingest([heartbeat(host: "web1", second: 10, profile: "pet", uptime: 10)])
            #expect(try await costPerDay() == .null)
            _ = try await store.ingest([heartbeat(host: "web1", second: 20, profile: "pet", uptime: 20)])
            #expect(try await costPerDay() == .real(1100.0 / 10 * 86_400))
            _ = try await store.ingest([heartbeat(host: "web1", second: 40, profile: "pet", uptime: 12)])
            #expect(try await costPerDay() == .real(1100.0 / 10 * 86_400), "after a restart, the figure from before stays")
            #expect(try await store.read("SELECT level FROM hosts WHERE name = 'web1'").rows == [[.text("pet")]])
        }
    }

    /// The registry as the agent fills it: a heartbeat as the agent encodes it, not a hand-written line.
    @Test(arguments: Engine.allCases)
    func anAgentsHeartbeatGivesTheRegistryItsVersionAndFigures(engine: Engine) async throws {
        var heartbeat = Event(timestamp: AuditTimestamp(milliseconds: 1_795_000_000_000), kind: .agentHeartbeat, outcome: .success)
        heartbeat.id = "hb-1"
        heartbeat.host.name = "web9"
        var health = Event.AgentHealth(
            intervalSeconds: 60, eventsPerSecond: ["auditd": 12.5], eventsTotal: 750, lostTotal: 2, residentBytes: 50_000_000,
            cpuPercent: 1.5, uptimeSeconds: 600)
        health.profile = "pet"
        heartbeat.agentHealth = health
        let line = String(decoding: ECSEncoder().encode(heartbeat), as: UTF8.self)
        try await engine.withStore { store in
            _ = try await store.ingest([Substring(line)])
            let registry = try await store.read("SELECT name, level, agent_version, events_per_second, lost_total, cpu_percent FROM hosts")
            #expect(registry.rows == [[.text("web9"), .text("pet"), .text(HerdwatchVersion.string), .real(12.5), .integer(2), .real(1.5)]], "\(line)")
        }
    }

    @Test(arguments: Engine.allCases)
    func retentionDropsWholeDaysBeforeTheCutoff(engine: Engine) async throws {
        func event(_ id: String, day: Int, hour: Int) -> Substring {
            Substring(#"{"@timestamp":"2026-11-\#(day)T\#(String(format: "%02d", hour)):00:00.000Z","event":{"kind":"event","action":"process-started","id":"\#(id)"},"host":{"name":"h"}}"#)
        }
        let cutoff = try #require(CivilTime.milliseconds(iso8601: "2026-11-22T15:00:00Z"))
        let lines = [event("a", day: 20, hour: 1), event("b", day: 20, hour: 23), event("c", day: 21, hour: 0), event("d", day: 22, hour: 12), event("e", day: 23, hour: 0)]
        try await engine.withStore { store in
            _ = try await store.ingest(lines)
            // A cutoff in the middle of the 22nd keeps the whole 22nd.
            #expect(try await store.dropDays(before: cutoff) == 2)
            #expect(try await store.read("SELECT id FROM events ORDER BY id").rows == [[.text("d")], [.text("e")]])
        }
        // Responses go with their days too, also when no day of events is dropped.
        try await engine.withStore { store in
            func response(_ id: String, _ time: String) throws -> StoredResponse {
                StoredResponse(id: id, time: try #require(CivilTime.milliseconds(iso8601: time)), host: "h", policy: "manual", action: "notify", status: "sent")
            }
            try await store.record(responses: [try response("r20", "2026-11-20T23:59:59Z"), try response("r22", "2026-11-22T00:00:00Z")])
            #expect(try await store.dropDays(before: cutoff) == 0)
            #expect(try await store.read("SELECT id FROM responses").rows == [[.text("r22")]])
        }
    }

    @Test(arguments: Engine.allCases)
    func parentExecutableIsAColumn(engine: Engine) async throws {
        try await engine.withStore { store in
            _ = try await store.ingest([
                #"{"@timestamp":"2026-11-23T10:00:00Z","event":{"action":"process-started","category":["process"],"id":"x"},"host":{"name":"h"},"process":{"executable":"/usr/bin/curl","parent":{"executable":"/usr/sbin/nginx","entity_id":"p"}}}"#
            ])
            let rare = try #require(try await store.hunt(named: "rare-parent-child"))
            #expect(try await store.read(rare.sql).rows.first?.prefix(2) == [.text("/usr/sbin/nginx"), .text("/usr/bin/curl")])
        }
    }
}
