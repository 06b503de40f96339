import Foundation
import HerdwatchPipeline
import Testing

/// One event of each kind a security team leans on, checked against ECS JSON that a person read
/// field by field against the raw records (Fixtures/reviewed/*.json). The goldens in CorpusTests guard
/// everything else; these guard the interpretation itself.
///
/// After an intended change: `HERDWATCH_UPDATE_GOLDEN=1 swift test --filter ReviewedEventsTests`, then
/// review each changed file by hand before committing it.
@Suite struct ReviewedEventsTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// Relative to the package root, or `corpus:` + a path in ../shared/corpus/audit-logs.
        var log: String
        var sequence: Int
        var description: String { name }
    }

    static let cases: [Case] = [
        // EXECVE with hex-encoded arguments (non-ASCII text) and a glob that was not expanded.
        Case(name: "execve-hex-args", log: "samples/audit-sample.log", sequence: 299_668),
        // connect(2) to 127.0.0.1:46793: SOCKADDR fam=inet.
        Case(name: "connect-ipv4", log: "samples/audit-sample.log", sequence: 299_646),
        // connect(2) to [::1]:39121: SOCKADDR fam=inet6.
        Case(name: "connect-ipv6", log: "samples/audit-sample.log", sequence: 299_682),
        // rename(2) across directories: four PATH records (two PARENT, DELETE, CREATE), UTF-8 names.
        Case(name: "rename-paths", log: "samples/audit-sample.log", sequence: 299_689),
        // auditctl adding a rule with key "exec".
        Case(name: "config-change-add-rule", log: "samples/audit-sample.log", sequence: 299_612),
        // sshd login accepted, from a remote address with a reverse name.
        Case(name: "login-success", log: "corpus:go-libaudit/auparse/testdata/audit-rhel7.log", sequence: 421),
        // sshd login refused for "(invalid user)", account name hex-encoded.
        Case(name: "login-failure", log: "corpus:go-libaudit/auparse/testdata/audit-ubuntu16.log", sequence: 19_955),
        // sudo running a command given hex-encoded.
        Case(name: "sudo-command", log: "corpus:go-libaudit/auparse/testdata/audit-rhel7.log", sequence: 475),
    ]

    static func path(_ log: String) -> String {
        if log.hasPrefix("corpus:") {
            return Corpus.auditLogs.appendingPathComponent(String(log.dropFirst("corpus:".count))).path
        }
        return Corpus.packageRoot.appendingPathComponent(log).path
    }

    @Test(arguments: cases)
    func reviewedEvent(_ item: Case) throws {
        let (_, lines, failed) = try Corpus.replay([Self.path(item.log)]) { $0.includeRawRecords = false }
        #expect(failed == 0)
        let events = try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? NSDictionary) }
        let matching = events.filter { (($0["event"] as? NSDictionary)?["sequence"] as? Int) == item.sequence }
        let event = try #require(matching.first, "no event with sequence \(item.sequence) in \(item.log)")
        #expect(matching.count == 1)

        let fixture = Corpus.fixtures.appendingPathComponent("reviewed/\(item.name).json")
        if ProcessInfo.processInfo.environment["HERDWATCH_UPDATE_GOLDEN"] == "1" {
            let data = try JSONSerialization.data(withJSONObject: event, options: [.prettyPrinted, .sortedKeys])
            try (String(decoding: data, as: UTF8.self) + "\n").write(to: fixture, atomically: true, encoding: .utf8)
            return
        }
        let expected = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? NSDictionary,
            "missing fixture \(fixture.path)")
        if expected != event {
            let actual = try JSONSerialization.data(withJSONObject: event, options: [.prettyPrinted, .sortedKeys])
            Issue.record("\(item.name) differs from \(fixture.lastPathComponent); got:\n\(String(decoding: actual, as: UTF8.self))")
        }
    }
}
