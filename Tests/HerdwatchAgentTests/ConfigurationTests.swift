import Testing

@testable import HerdwatchAgent

/// The agent's YAML: the `nats:` section, and its bad values refused with the key and the reason.
@Suite struct ConfigurationTests {
    @Test func natsSectionIsRead() throws {
        let defaults = try AgentConfiguration.load(text: "nats: {url: nats://127.0.0.1:4222}\n", file: "agent.yaml")
        #expect(defaults.natsURL == "nats://127.0.0.1:4222")
        #expect(defaults.natsEventsPerMessage == 32)
        let one = try AgentConfiguration.load(
            text: "nats:\n  url: tls://bus:4222\n  stream: FLEET\n  events_per_message: 1\n", file: "agent.yaml")
        #expect(one.natsStream == "FLEET")
        #expect(one.natsEventsPerMessage == 1)
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
}
