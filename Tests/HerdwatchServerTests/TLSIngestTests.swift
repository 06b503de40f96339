import Dispatch
import Foundation
import HerdwatchShipping
import HerdwatchStore
import HerdwatchTestSupport
import Testing

@testable import HerdwatchServer

/// The agent's HTTP sink over TLS (OpenSSL) to `herdwatch server` serving HTTPS (swift-nio-ssl),
/// with certificates made by the openssl tool for the test: the server's certificate is verified
/// (a server signed by another CA is refused), and with mutual TLS the server refuses an agent
/// without a client certificate of its CA.
@Suite(.serialized) struct TLSIngestTests {
    static let available = TestCertificates.available
    static let token = "web1-token-0123456789"

    /// `herdwatch server` on 127.0.0.1 with HTTPS, for the duration of `test` (given its port).
    func withServer(clientCA: Bool, _ test: (Int, String, EventStore) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try TestCertificates(in: folder)
        let store = try EventStore(path: folder + "/events.db")
        var settings = ServerRuntime.Settings(ingest: IngestConfiguration(tokens: [Self.token: "web1"]))
        settings.tls = TLSFiles(certificate: folder + "/server.pem", key: folder + "/server.key", clientCA: clientCA ? folder + "/ca.pem" : nil)
        try await withRunningServer(settings: settings, store: store) { port in try await test(port, folder, store) }
    }

    /// One batch through the agent's sink (blocking I/O, on a thread of its own): nil when the
    /// server acknowledged it, else the sink's error.
    func send(port: Int, tls: TLSContext.Configuration, id: String) async -> String? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let sink = HTTPSink(configuration: try HTTPSink.Configuration(url: "https://127.0.0.1:\(port)", token: Self.token, tls: tls))
                    let line = #"{"@timestamp":"2026-12-02T10:00:00.000Z","event":{"kind":"event","action":"process-started","id":"\#(id)"},"host":{"name":"web1"},"process":{"pid":1,"executable":"/usr/bin/true"}}"#
                    _ = try sink.send([(payload: Array(line.utf8), next: SpoolPosition(segment: 0, offset: 0))])
                    _ = try sink.confirmed()
                    continuation.resume(returning: nil)
                } catch {
                    continuation.resume(returning: "\(error)")
                }
            }
        }
    }

    @Test(.enabled(if: available, "needs the openssl tool"))
    func theAgentVerifiesTheServerCertificate() async throws {
        try await withServer(clientCA: false) { port, folder, store in
            let trusted = await send(port: port, tls: .init(caFile: folder + "/ca.pem"), id: "tls-1")
            #expect(trusted == nil, "\(trusted ?? "")")
            let stored = try store.query("SELECT count(*) FROM events").rows
            #expect(stored == [[.integer(1)]])
            // A server whose certificate another CA signed is refused before anything is sent.
            let untrusted = await send(port: port, tls: .init(caFile: folder + "/other.pem"), id: "tls-2")
            guard let error = untrusted else {
                Issue.record("a server signed by an untrusted CA was accepted")
                return
            }
            #expect(error.contains("certificate"), "\(error)")
            let after = try store.query("SELECT count(*) FROM events").rows
            #expect(after == [[.integer(1)]])
        }
    }

    @Test(.enabled(if: available, "needs the openssl tool"))
    func mutualTLSRefusesAnAgentWithoutAClientCertificate() async throws {
        try await withServer(clientCA: true) { port, folder, store in
            let anonymous = await send(port: port, tls: .init(caFile: folder + "/ca.pem"), id: "mtls-1")
            #expect(anonymous != nil, "an agent without a client certificate got in")
            #expect(anonymous?.contains("certificate required") == true, "\(anonymous ?? "")")
            let known = await send(
                port: port, tls: .init(caFile: folder + "/ca.pem", certificateFile: folder + "/agent.pem", keyFile: folder + "/agent.key"),
                id: "mtls-2")
            #expect(known == nil, "\(known ?? "")")
            let stored = try store.query("SELECT count(*) FROM events").rows
            #expect(stored == [[.integer(1)]])
        }
    }

    @Test func badTLSFilesAreClearErrors() {
        #expect(throws: SinkError.self) { try TLSContext(.init(caFile: "/nonexistent/ca.pem")) }
        #expect(throws: SinkError.self) { try TLSContext(.init(certificateFile: "/nonexistent/agent.pem")) }
        #expect(throws: SinkError.self) { try HTTPSink.Configuration(url: "ftp://127.0.0.1:1", token: "x") }
    }
}
