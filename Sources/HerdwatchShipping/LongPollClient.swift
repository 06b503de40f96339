/// GET requests that the server may hold open (the agent's command poll), over a kept-alive
/// HTTP/1.1 connection with the host's token. While waiting it checks `shouldStop` every 200 ms,
/// so a held request never delays the agent's shutdown.
public final class LongPollClient {
    public let configuration: HTTPSink.Configuration
    private var connection: TCPConnection?
    private let name: String

    /// `name`: how errors name this client (`commands`).
    public init(configuration: HTTPSink.Configuration, name: String) {
        self.configuration = configuration
        self.name = name
    }

    deinit { reset() }

    /// Status and body of `GET path`; the reply may take up to `timeoutMilliseconds`.
    public func get(_ path: String, timeoutMilliseconds: Int64, shouldStop: () -> Bool) throws(SinkError) -> (status: Int, body: [UInt8]) {
        let head = """
            GET \(path) HTTP/1.1\r
            Host: \(configuration.host):\(configuration.port)\r
            Authorization: Bearer \(configuration.token)\r
            Accept: application/json\r
            \r

            """
        if connection == nil {
            connection = try TCPConnection(
                host: configuration.host, port: configuration.port, timeoutMilliseconds: configuration.timeoutMilliseconds, sink: name,
                tls: configuration.tls)
        }
        let connection = connection!
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        let name = self.name
        do {
            try connection.send(Array(head.utf8), sink: name)
            // One request at a time: nothing can follow its reply.
            var buffered: [UInt8] = []
            let reply = try HTTPResponseReader.read(connection, sink: name, buffered: &buffered) { () throws(SinkError) in
                while !connection.waitReadable(timeoutMilliseconds: 200) {
                    if shouldStop() { throw SinkError(sink: name, reason: "stopping") }
                    if ContinuousClock.now > deadline { throw SinkError(sink: name, reason: "no reply within \(timeoutMilliseconds) ms") }
                }
            }
            if !reply.keepAlive { reset() }
            return (reply.status, reply.body)
        } catch {
            reset()
            throw error
        }
    }

    public func reset() {
        connection?.close()
        connection = nil
    }
}
