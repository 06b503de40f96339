import Foundation

/// An rsyslogd on 127.0.0.1 taking RFC 5424 over TCP (imtcp, octet-counted framing), writing each
/// message's MSG part as one line to `output`; started by the test, in a folder of its own. With
/// `tls`, over TLS (RFC 5425, the gtls driver of Debian's rsyslog-gnutls), clients not authenticated.
public final class RsyslogServer {
    public static let binary = ["/usr/sbin/rsyslogd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    public let folder: URL
    public let port: Int
    public var output: URL { folder.appendingPathComponent("messages.log") }
    private var pid: pid_t?

    public init(tls: TestCertificates? = nil) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-rsyslog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        port = NATSServer.freePort()
        let global =
            tls.map {
                """
                global(workDirectory="\(folder.path)" DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="\($0.ca)" \
                DefaultNetstreamDriverCertFile="\($0.serverCertificate)" DefaultNetstreamDriverKeyFile="\($0.serverKey)")
                module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
                """
            } ?? "global(workDirectory=\"\(folder.path)\")\nmodule(load=\"imtcp\")"
        try """
            \(global)
            input(type="imtcp" address="127.0.0.1" port="\(port)")
            template(name="message" type="string" string="%msg%\\n")
            *.* action(type="omfile" file="\(output.path)" template="message")
            """.write(to: folder.appendingPathComponent("rsyslog.conf"), atomically: true, encoding: .utf8)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: folder)
    }

    public func start() throws {
        pid = try spawnServer([
            Self.binary!, "-n", "-f", folder.appendingPathComponent("rsyslog.conf").path,
            "-i", folder.appendingPathComponent("rsyslogd.pid").path,
        ])
        for _ in 0..<100 where !NATSServer.accepts(port) { usleep(50_000) }
    }

    /// Stops it cleanly (SIGTERM: rsyslog writes out what it accepted).
    public func stop() {
        guard let pid else { return }
        stopServer(pid)
        self.pid = nil
    }

    /// The messages written so far, one per line.
    public func messages() -> [String] {
        ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n").map {
            String($0.drop { $0 == " " })
        }
    }
}
