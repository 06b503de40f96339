import Foundation
import HerdwatchTestSupport
import Testing

@testable import HerdwatchShipping

/// The syslog sink over TLS (RFC 5425) to a real rsyslog with the gtls driver, started by the test:
/// every message arrives, in order, and is confirmed by the bytes the receiver's TCP stack
/// acknowledged on the wire; a receiver whose certificate another CA signed is refused.
@Suite(.serialized) struct SyslogTLSTests {
    static let available =
        TestCertificates.available && RsyslogServer.binary != nil
        && FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so")

    func record(_ number: Int) -> (payload: [UInt8], next: SpoolPosition) {
        let line = #"{"@timestamp":"2026-12-02T10:00:00.000Z","event":{"kind":"event","action":"process-started","id":"tls-\#(number)"},"host":{"name":"web1"}}"#
        return (Array(line.utf8), SpoolPosition(segment: 1, offset: UInt64(number)))
    }

    @Test(.enabled(if: available, "needs the openssl tool and Debian's rsyslog with rsyslog-gnutls"))
    func messagesArriveOverTLSInOrderAndAreConfirmed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-syslog-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let certificates = try TestCertificates(in: folder)
        let receiver = try RsyslogServer(tls: certificates)
        defer { receiver.stop() }

        var configuration = SyslogSink.Configuration(host: "127.0.0.1", port: receiver.port)
        configuration.settleMilliseconds = 200
        configuration.tls = try TLSContext(.init(caFile: certificates.ca))
        let sink = SyslogSink(configuration: configuration, hostName: "web1")
        let count = 500
        var confirmed = try sink.send((1...250).map(record))
        confirmed = try sink.send((251...count).map(record)) ?? confirmed
        let deadline = Date().addingTimeInterval(10)
        while confirmed != SpoolPosition(segment: 1, offset: UInt64(count)), Date() < deadline {
            usleep(50_000)
            confirmed = try sink.confirmed() ?? confirmed
        }
        #expect(confirmed == SpoolPosition(segment: 1, offset: UInt64(count)), "confirmed up to \(String(describing: confirmed))")

        var ids: [String] = []
        let arrived = Date().addingTimeInterval(10)
        repeat {
            usleep(100_000)
            ids = receiver.messages().compactMap { line in
                ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]).flatMap {
                    ($0["event"] as? [String: Any])?["id"] as? String
                }
            }
        } while ids.count < count && Date() < arrived
        #expect(ids == (1...count).map { "tls-\($0)" }, "\(ids.count) of \(count) arrived")

        // A receiver that cannot prove who it is gets nothing.
        var untrusted = configuration
        untrusted.tls = try TLSContext(.init(caFile: certificates.otherCA))
        #expect {
            _ = try SyslogSink(configuration: untrusted, hostName: "web1").send([record(1)])
        } throws: { error in
            "\(error)".contains("certificate")
        }
    }
}
