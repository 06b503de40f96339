import Foundation
import Testing

@testable import HerdwatchDetection

/// The built-in pack against events shaped as the agent emits them (Fixtures/builtin-events.jsonl):
/// each event raises exactly the alerts its `herdwatch_test.expect` lists; near misses raise none.
@Suite struct BuiltinPackTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/builtin-events.jsonl")

    @Test func everyBuiltinRuleLoads() throws {
        let loaded = BuiltinRules.load()
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.rules.count >= 25)
        #expect(loaded.correlations.count >= 3)
        _ = try RuleSet(rules: loaded.rules, correlations: loaded.correlations)
    }

    @Test func fixtureEventsRaiseExactlyTheirExpectedAlerts() throws {
        let loaded = BuiltinRules.load()
        var detector = Detector(ruleSet: try RuleSet(rules: loaded.rules, correlations: loaded.correlations))
        let text = try String(contentsOf: Self.fixture, encoding: .utf8)
        var fired = Set<String>()
        var checked = 0
        for (number, line) in text.split(separator: "\n").enumerated() {
            let subject = try #require(JSONSubject(json: line), "line \(number + 1) is not JSON")
            let expected = ((subject.object["herdwatch_test"] as? [String: Any])?["expect"] as? [String]) ?? []
            let alerts = detector.process(subject).map(\.ruleID)
            #expect(alerts.sorted() == expected.sorted(), "line \(number + 1): expected \(expected), got \(alerts)")
            fired.formUnion(alerts)
            checked += 1
        }
        #expect(checked >= 100)
        // Every alerting rule of the pack is shown firing at least once.
        let alerting = Set(loaded.rules.filter(\.generatesAlerts).map(\.id))
        let generating = try RuleSet(rules: loaded.rules, correlations: loaded.correlations)
        let rulesThatAlert = Set(generating.rules.filter(\.generatesAlerts).map(\.id))
        #expect(rulesThatAlert.subtracting(fired).isEmpty, "never fired: \(rulesThatAlert.subtracting(fired).sorted())")
        _ = alerting
    }

    /// Ten failed logins then a success for the same account: both correlations fire, the chained
    /// one only after the success; another account's success does not complete it.
    @Test func failedLoginsThenASuccessFireTheChainedCorrelation() throws {
        let loaded = BuiltinRules.load()
        var detector = Detector(ruleSet: try RuleSet(rules: loaded.rules, correlations: loaded.correlations))
        func login(_ second: Int, _ user: String, _ outcome: String, _ id: String) -> JSONSubject {
            JSONSubject(json: """
                {"@timestamp":"2026-11-23T10:00:\(String(format: "%02d", second)).000Z","event":{"action":"user-login","module":"auth-log","outcome":"\(outcome)","id":"\(id)"},"host":{"name":"web1"},"user":{"name":"\(user)"},"message":"sshd login"}
                """)!
        }
        var titles: [String] = []
        for second in 0..<10 { titles += detector.process(login(second, "alice", "failure", "f\(second)")).map(\.ruleTitle) }
        #expect(titles == ["Many Failed Logins For One Account"])
        #expect(detector.process(login(20, "bob", "success", "b")).isEmpty)
        let final = detector.process(login(30, "alice", "success", "s"))
        #expect(final.map(\.ruleTitle) == ["Successful Login After Many Failures"])
        #expect(final.first?.eventIDs == ["f9", "s"])
    }
}
