#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection with connect, send and receive timeouts, for the sinks; with TLS
/// when given a `TLSContext`.
struct TCPConnection {
    let descriptor: Int32
    private(set) var tls: TLSSession?

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Connects to the first address of `host` that answers within `timeoutMilliseconds`, then
    /// starts TLS over it when `tls` is given.
    init(host: String, port: Int, timeoutMilliseconds: Int32, sink: String, tls: TLSContext? = nil) throws(SinkError) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw SinkError(sink: sink, reason: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        var failure = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let socket = Glibc.socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { continue }
            // Connect without blocking longer than the timeout, then block with timeouts.
            let flags = fcntl(socket, F_GETFL)
            _ = fcntl(socket, F_SETFL, flags | O_NONBLOCK)
            var result = Glibc.connect(socket, address.pointee.ai_addr, address.pointee.ai_addrlen)
            if result != 0 && errno == EINPROGRESS {
                var poller = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if poll(&poller, 1, timeoutMilliseconds) == 1,
                    getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0
                {
                    result = 0
                } else {
                    errno = error != 0 ? error : ETIMEDOUT
                }
            }
            guard result == 0 else {
                failure = String(cString: strerror(errno))
                Glibc.close(socket)
                continue
            }
            _ = fcntl(socket, F_SETFL, flags)
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            descriptor = socket
            if let tls {
                do {
                    self.tls = try tls.session(descriptor: socket, host: host, sink: sink)
                } catch {
                    Glibc.close(socket)
                    throw error
                }
            }
            return
        }
        throw SinkError(sink: sink, reason: "cannot connect to \(host):\(port): \(failure)")
    }

    func send(_ bytes: [UInt8], sink: String) throws(SinkError) {
        var offset = 0
        if let tls {
            while offset < bytes.count { offset += try tls.write(bytes[offset...], sink: sink) }
            return
        }
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SinkError(sink: sink, reason: "write: \(String(cString: strerror(errno)))")
            }
            offset += count
        }
    }

    /// Some bytes (at most `maximum`); empty when the peer closed.
    func receive(maximum: Int = 65_536, sink: String) throws(SinkError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maximum)
        if let tls {
            let count = try tls.read(into: &buffer, sink: sink)
            return Array(buffer[0..<count])
        }
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SinkError(sink: sink, reason: "read: \(String(cString: strerror(errno)))")
            }
            return Array(buffer[0..<count])
        }
    }

    /// True when bytes (or the peer's close) are waiting, false after `timeoutMilliseconds`.
    func waitReadable(timeoutMilliseconds: Int32) -> Bool {
        if tls?.hasBufferedBytes == true { return true }
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, timeoutMilliseconds) > 0
    }

    func close() {
        tls?.shutdown()
        Glibc.close(descriptor)
    }
}
