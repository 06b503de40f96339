import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// TLS for the agent's connections to the server (`https://` URLs), over Debian's OpenSSL: the
/// server's certificate is verified against `caFile` (else the system's trust store) and its name
/// (or IP address) against the URL's host; `certificateFile` and `keyFile` give the agent a client
/// certificate for servers that require one (mutual TLS). TLS 1.2 or newer.
public final class TLSContext: @unchecked Sendable {
    public struct Configuration: Sendable, Equatable {
        /// PEM file of the certificate authorities to trust; nil: the system's (/etc/ssl/certs).
        public var caFile: String?
        /// PEM client certificate (chain) and its key, for mutual TLS.
        public var certificateFile: String?
        public var keyFile: String?

        public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    // SSL_CTX is safe to share once set up: OpenSSL locks it internally.
    private let context: OpaquePointer

    public init(_ configuration: Configuration) throws(SinkError) {
        guard let method = TLS_client_method(), let context = SSL_CTX_new(method) else {
            throw SinkError(sink: "tls", reason: "cannot create a TLS context: \(Self.lastError())")
        }
        self.context = context
        _ = herdwatch_ssl_ctx_require_tls12(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let caFile = configuration.caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw SinkError(sink: "tls", reason: "cannot load CA file \(caFile): \(Self.lastError())")
            }
        } else {
            SSL_CTX_set_default_verify_paths(context)
        }
        switch (configuration.certificateFile, configuration.keyFile) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
                throw SinkError(sink: "tls", reason: "cannot load client certificate \(certificate): \(Self.lastError())")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(context) == 1 else {
                throw SinkError(sink: "tls", reason: "cannot load client key \(key) (or it does not match the certificate): \(Self.lastError())")
            }
        default:
            throw SinkError(sink: "tls", reason: "a client certificate needs both its certificate and its key file")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// Starts TLS on a connected socket: server name indication, the peer's certificate checked
    /// against `host` (a name or an IP address), the handshake.
    func session(descriptor: Int32, host: String, sink: String) throws(SinkError) -> TLSSession {
        guard let ssl = SSL_new(context) else { throw SinkError(sink: sink, reason: "TLS: \(Self.lastError())") }
        let session = TLSSession(ssl: ssl)
        SSL_set_fd(ssl, descriptor)
        var address = in6_addr()
        let isAddress = inet_pton(AF_INET, host, &address) == 1 || inet_pton(AF_INET6, host, &address) == 1
        if isAddress {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
        } else {
            _ = herdwatch_ssl_set_server_name(ssl, host)
            SSL_set1_host(ssl, host)
        }
        ERR_clear_error()
        guard SSL_connect(ssl) == 1 else {
            let verification = SSL_get_verify_result(ssl)
            let reason =
                verification != X509_V_OK
                ? "certificate of \(host) not accepted: \(String(cString: X509_verify_cert_error_string(verification)))"
                : Self.lastError()
            throw SinkError(sink: sink, reason: "TLS handshake with \(host) failed: \(reason)")
        }
        return session
    }

    /// The newest error on OpenSSL's queue, in words.
    static func lastError() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return errno != 0 ? String(cString: strerror(errno)) : "unknown error" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// One TLS connection (the socket stays owned by `TCPConnection`).
final class TLSSession {
    let ssl: OpaquePointer

    init(ssl: OpaquePointer) { self.ssl = ssl }

    deinit { SSL_free(ssl) }

    var hasBufferedBytes: Bool { SSL_pending(ssl) > 0 }

    /// Bytes written to the socket so far, TLS records and handshake included.
    var bytesOnWire: UInt64 { UInt64(BIO_number_written(SSL_get_wbio(ssl))) }

    /// Reads what the peer sent without waiting (the socket is made non-blocking for the call):
    /// true when it was only TLS's own records (session tickets, key updates) or nothing, false
    /// when the peer closed the connection, failed, or sent data a one-way stream never gets.
    func drainWithoutBlocking(descriptor: Int32) -> Bool {
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(descriptor, F_SETFL, flags) }
        var byte: UInt8 = 0
        ERR_clear_error()
        let count = SSL_read(ssl, &byte, 1)
        guard count <= 0 else { return false }
        return SSL_get_error(ssl, count) == SSL_ERROR_WANT_READ
    }

    func write(_ bytes: ArraySlice<UInt8>, sink: String) throws(SinkError) -> Int {
        ERR_clear_error()
        let count = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        guard count > 0 else { throw SinkError(sink: sink, reason: "TLS write: \(failure(count))") }
        return Int(count)
    }

    /// Some bytes; empty when the peer closed the connection.
    func read(into buffer: inout [UInt8], sink: String) throws(SinkError) -> Int {
        ERR_clear_error()
        let count = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
        if count > 0 { return Int(count) }
        let code = SSL_get_error(ssl, count)
        if code == SSL_ERROR_ZERO_RETURN { return 0 }
        if code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0 { return 0 }
        throw SinkError(sink: sink, reason: "TLS read: \(failure(count))")
    }

    func shutdown() { _ = SSL_shutdown(ssl) }

    private func failure(_ result: Int32) -> String {
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return "timed out"
        case SSL_ERROR_SYSCALL: return errno != 0 ? String(cString: strerror(errno)) : "connection closed"
        default: return TLSContext.lastError()
        }
    }
}
