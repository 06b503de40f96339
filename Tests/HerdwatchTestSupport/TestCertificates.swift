import Foundation

/// Certificates for TLS tests, made by the openssl tool in `folder`: a CA (`ca.pem`), a server
/// certificate for 127.0.0.1 and localhost (`server.pem`, `server.key`), a client certificate
/// (`agent.pem`, `agent.key`), all signed by it, and a second CA that signed nothing (`other.pem`).
public struct TestCertificates: Sendable {
    public static let available = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
    public let folder: String

    public var ca: String { folder + "/ca.pem" }
    public var otherCA: String { folder + "/other.pem" }
    public var serverCertificate: String { folder + "/server.pem" }
    public var serverKey: String { folder + "/server.key" }
    public var clientCertificate: String { folder + "/agent.pem" }
    public var clientKey: String { folder + "/agent.key" }

    public init(in folder: String) throws {
        self.folder = folder
        let script = """
            set -e
            cd '\(folder)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=herdwatch-test-ca 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout agent.key -out agent.csr -subj /CN=web1 2>/dev/null
            printf 'extendedKeyUsage=clientAuth\\n' > agent.ext
            openssl x509 -req -in agent.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out agent.pem -days 2 -extfile agent.ext 2>/dev/null
            chmod 644 server.key
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CertificateError() }
    }

    public struct CertificateError: Error, CustomStringConvertible {
        public var description: String { "openssl could not make the test certificates" }
    }
}
