import Foundation
import HerdwatchDetection
import HerdwatchCompression
import HerdwatchShipping
import HerdwatchStore
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import HerdwatchServer

@Suite struct IngestTests {
    static let token = "web1-token-0123456789"

    /// One Sigma rule: every run of a program named `true` (the events of `event(_:host:)`).
    static let trueRunRule = """
        title: True run
        id: true-run
        level: high
        logsource: {product: linux, category: process_creation}
        detection:
            selection:
                Image|endswith: /true
            condition: selection
        """

    /// Detection over `store` with the rules of `yaml`.
    static func detection(rules yaml: String, store: any FleetStore) throws -> DetectionStage {
        let loaded = SigmaLoader.load(yaml: yaml, file: "test.yml")
        return DetectionStage(ruleSet: try RuleSet(rules: loaded.rules), store: store, logger: Logger(label: "test"))
    }

    func event(_ id: String, host: String = "web1") -> String {
        #"{"@timestamp":"2026-11-23T10:00:00.000Z","event":{"kind":"event","category":["process"],"action":"process-started","id":"\#(id)"},"host":{"name":"\#(host)"},"process":{"pid":1,"executable":"/usr/bin/true"}}"#
    }

    func withServer(
        rules: String? = nil, _ test: @Sendable (any TestClientProtocol, EventStore) async throws -> Void
    ) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-ingest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try EventStore(path: folder.appendingPathComponent("events.db").path)
        var configuration = IngestConfiguration(tokens: [Self.token: "web1", "db1-token-0123456789": "db1"])
        configuration.maximumBodyBytes = 64 * 1024
        let router = Router()
        let detection = try rules.map { try Self.detection(rules: $0, store: store) }
        IngestRoutes.add(to: router, store: store, configuration: configuration, detection: detection, logger: Logger(label: "test"))
        try await Application(router: router).test(.router) { client in try await test(client, store) }
    }

    func post(_ client: any TestClientProtocol, _ lines: [String], token: String? = token) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await post(client, body: Array(lines.joined(separator: "\n").utf8), token: token)
    }

    func post(
        _ client: any TestClientProtocol, body: [UInt8], encoding: String? = nil, token: String? = token
    ) async throws -> (HTTPResponse.Status, [String: Any]) {
        var headers: HTTPFields = [.contentType: "application/x-ndjson"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let encoding { headers[.contentEncoding] = encoding }
        return try await client.execute(uri: "/api/v1/events", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { response in
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
            return (response.status, object)
        }
    }

    @Test func aBatchIsStoredOnceAndAcknowledged() async throws {
        try await withServer { client, store in
            let (status, reply) = try await post(client, [event("a"), event("b")])
            #expect(status == .ok && reply["stored"] as? Int == 2)
            let (again, repeated) = try await post(client, [event("b"), event("c")])
            #expect(again == .ok && repeated["stored"] as? Int == 1 && repeated["duplicates"] as? Int == 1)
            #expect(try store.query("SELECT count(*) FROM events").rows == [[.integer(3)]])
        }
    }

    /// Detection runs on what a batch stored: an event a rule matches raises one alert, stored in the
    /// `alerts` view; the same batch again (a redelivery) raises nothing more.
    @Test func storedEventsMeetTheRulesOnce() async throws {
        try await withServer(rules: Self.trueRunRule) { client, store in
            #expect(try await post(client, [event("a"), event("b", host: "web1")]).0 == .ok)
            #expect(try await post(client, [event("a")]).0 == .ok)
            let alerts = try store.query("SELECT rule_id, host, event_ids, level FROM alerts ORDER BY event_ids")
            #expect(alerts.rows == [[.text("true-run"), .text("web1"), .text("a"), .text("high")], [.text("true-run"), .text("web1"), .text("b"), .text("high")]])
        }
    }

    /// The agent's default: zstd bodies. A damaged one, one that would decompress past the limit
    /// and an unknown encoding are refused with the reason, and store nothing.
    @Test func compressedBatchesAreStoredAndBadOnesRefused() async throws {
        try await withServer { client, store in
            let text = Array([event("z1"), event("z2")].joined(separator: "\n").utf8)
            let compressed = Zstd.Compressor().compress(text)
            let (status, reply) = try await post(client, body: compressed, encoding: "zstd")
            #expect(status == .ok && reply["stored"] as? Int == 2)
            let (corrupt, corruptReply) = try await post(client, body: Array(compressed.dropLast(4)) + [1, 2, 3, 4], encoding: "zstd")
            #expect(corrupt == .badRequest)
            #expect((corruptReply["error"] as? String)?.contains("zstd") == true, "\(corruptReply)")
            #expect(try await post(client, body: Array(compressed.prefix(compressed.count / 2)), encoding: "zstd").0 == .badRequest)
            // 100 MB of one byte: a few KB on the wire, far past the (64 KiB) limit once decompressed.
            let bomb = Zstd.Compressor().compress([UInt8](repeating: UInt8(ascii: " "), count: 100 << 20))
            #expect(bomb.count < 64 * 1024)
            #expect(try await post(client, body: bomb, encoding: "zstd").0 == .contentTooLarge)
            let (unknown, unknownReply) = try await post(client, body: text, encoding: "br")
            #expect(unknown == .unsupportedMediaType && (unknownReply["error"] as? String)?.contains("'br'") == true)
            #expect(try store.query("SELECT id FROM events ORDER BY id").rows == [[.text("z1")], [.text("z2")]])
        }
    }

    @Test func badBatchesAreRefusedWithTheReasonAndLoseNothingElse() async throws {
        try await withServer { client, store in
            #expect(try await post(client, [event("a")], token: nil).0 == .unauthorized)
            #expect(try await post(client, [event("a")], token: "not-a-known-token-000").0 == .unauthorized)
            let (malformed, reply) = try await post(client, [event("a"), "{not json", event("b")])
            #expect(malformed == .badRequest)
            let rejected = reply["rejected"] as? [[String: Any]]
            #expect(rejected?.first?["line"] as? Int == 2)
            // Another host's events with this host's token.
            let (spoofed, spoofReply) = try await post(client, [event("x", host: "db1")])
            #expect(spoofed == .badRequest)
            #expect(((spoofReply["rejected"] as? [[String: Any]])?.first?["reason"] as? String)?.contains("not the token's host") == true)
            let big = (0..<500).map { event("big-\($0)") }  // about 100 KB, over the 64 KiB limit
            #expect(try await post(client, big).0 == .contentTooLarge)
            // None of those stored anything; a good batch after them is stored.
            #expect(try store.query("SELECT count(*) FROM events").rows == [[.integer(0)]])
            #expect(try await post(client, [event("good")]).0 == .ok)
            #expect(try store.query("SELECT id FROM events").rows == [[.text("good")]])
        }
    }
}
