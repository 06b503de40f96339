import Testing

@testable import HerdwatchAgent

/// The agent's YAML: the `nats:` and `spool:` sections, and bad values refused with the key and the reason.
@Suite struct ConfigurationTests {
    @Test func natsSectionIsRead() throws {
        let defaults = try AgentConfiguration.load(text: "nats: {url: nats://127.0.0.1:4222}\n", file: "agent.yaml")
        #expect(defaults.natsURL == "nats://127.0.0.1:4222")
        #expect(defaults.natsEventsPerMessage == 32)
        let one = try AgentConfiguration.load(
            text: "nats:\n  url: tls://bus:4222\n  stream: FLEET\n  events_per_message: 1\n", file: "agent.yaml")
        #expect(one.natsStream == "FLEET")
        #expect(one.natsEventsPerMessage == 1)
        #expect(defaults.natsCompression == .zstd)
        let plain = try AgentConfiguration.load(text: "nats:\n  url: nats://127.0.0.1:4222\n  compression: none\n", file: "agent.yaml")
        #expect(plain.natsCompression == .none)
        #expect {
            _ = try AgentConfiguration.load(text: "nats:\n  url: nats://127.0.0.1:4222\n  compression: gzip\n", file: "agent.yaml")
        } throws: { "\($0)".contains("agent.yaml") && "\($0)".contains("nats.compression") }
    }

    @Test(arguments: ["0", "1001", "2.5", "many"])
    func eventsPerMessageOutOfRangeIsRefused(_ value: String) {
        #expect {
            _ = try AgentConfiguration.load(text: "nats:\n  url: nats://127.0.0.1:4222\n  events_per_message: \(value)\n", file: "agent.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("agent.yaml") && text.contains("nats.events_per_message")
        }
    }

    /// The spool's sync policy: at every flush by default, else at most once per interval, or never.
    @Test func spoolSyncPolicyIsRead() throws {
        #expect(try AgentConfiguration.load(text: "heartbeat_seconds: 60\n", file: "agent.yaml").spoolSync == .everyFlush)
        #expect(try AgentConfiguration.load(text: "spool: {sync: batch}\n", file: "agent.yaml").spoolSync == .everyFlush)
        #expect(try AgentConfiguration.load(text: "spool: {sync: interval}\n", file: "agent.yaml").spoolSync == .interval(milliseconds: 1000))
        #expect(
            try AgentConfiguration.load(text: "spool: {sync: interval, sync_interval_ms: 250}\n", file: "agent.yaml").spoolSync
                == .interval(milliseconds: 250))
        #expect(try AgentConfiguration.load(text: "spool: {sync: never}\n", file: "agent.yaml").spoolSync == .never)
    }

    @Test(arguments: [
        ("spool: {sync: sometimes}", "spool.sync"), ("spool: {sync: interval, sync_interval_ms: 0}", "spool.sync_interval_ms"),
        ("spool: {sync: interval, sync_interval_ms: 1.5}", "spool.sync_interval_ms"), ("spool: {sync_interval_ms: 100}", "spool.sync_interval_ms"),
        ("spool: {sync: never, sync_interval_ms: 100}", "spool.sync_interval_ms"),
    ])
    func badSpoolSyncIsRefused(_ text: String, _ key: String) {
        #expect {
            _ = try AgentConfiguration.load(text: text + "\n", file: "agent.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("agent.yaml") && text.contains(key)
        }
    }

    /// The HTTP sink's connections: two by default, 1 to 8.
    @Test func httpConnectionsAreRead() throws {
        let http = "http:\n  url: http://127.0.0.1:8080\n  token_file: /etc/herdwatch/token\n"
        #expect(try AgentConfiguration.load(text: http, file: "agent.yaml").httpConnections == 2)
        #expect(try AgentConfiguration.load(text: http + "  connections: 1\n", file: "agent.yaml").httpConnections == 1)
        for bad in ["0", "9", "1.5"] {
            #expect {
                _ = try AgentConfiguration.load(text: http + "  connections: \(bad)\n", file: "agent.yaml")
            } throws: { error in
                "\(error)".contains("agent.yaml") && "\(error)".contains("http.connections")
            }
        }
    }
}
