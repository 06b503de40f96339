import Foundation
import PostgresNIO

extension PostgresStore {
    /// Where the database is and how to reach it. From a URL:
    /// `postgres://user[:password]@host[:port]/database[?sslmode=require][&host=/run/postgresql]`.
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 5432
        /// A Unix socket's directory (`/var/run/postgresql`): used instead of host and port.
        public var socketDirectory: String?
        public var username = "postgres"
        public var password: String?
        public var database = "herdwatch"
        /// TLS with the system's trust roots (`sslmode=require`); off by default (loopback, sockets).
        public var requireTLS = false
        /// Connections in the pool at most.
        public var maximumConnections = 10

        public init() {}

        /// The store at `url` (`postgres://` or `postgresql://`).
        public init(url text: String) throws(URLError) {
            guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
                scheme == "postgres" || scheme == "postgresql"
            else {
                throw URLError(url: text, reason: "not a postgres://user@host:port/database URL")
            }
            if let user = url.percentEncodedUser, !user.isEmpty { username = user.removingPercentEncoding ?? user }
            password = url.percentEncodedPassword.map { $0.removingPercentEncoding ?? $0 }
            if let host = url.host, !host.isEmpty { self.host = host }
            if let port = url.port {
                guard (1...65_535).contains(port) else { throw URLError(url: text, reason: "port \(port) is out of range") }
                self.port = port
            }
            let path = url.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !path.isEmpty { database = path }
            for item in url.queryItems ?? [] {
                switch (item.name, item.value ?? "") {
                case ("sslmode", "disable"), ("sslmode", "prefer"), ("sslmode", "allow"): requireTLS = false
                case ("sslmode", "require"), ("sslmode", "verify-ca"), ("sslmode", "verify-full"): requireTLS = true
                case ("host", let directory) where directory.hasPrefix("/"): socketDirectory = directory
                case ("pool", let size):
                    guard let size = Int(size), size > 0 else { throw URLError(url: text, reason: "pool=\(size): a number of connections") }
                    maximumConnections = size
                default:
                    throw URLError(url: text, reason: "unknown parameter '\(item.name)=\(item.value ?? "")' (sslmode, host, pool)")
                }
            }
        }

        /// `user@host:port/database`, for messages (never the password).
        public var redacted: String {
            "\(username)@\(socketDirectory ?? host):\(port)/\(database)"
        }

        /// For one connection outside the pool (`open`'s first try, which reports why it fails).
        func connection() throws -> PostgresConnection.Configuration {
            if let socketDirectory {
                return PostgresConnection.Configuration(
                    unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: username, password: password, database: database)
            }
            return PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database,
                tls: requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable)
        }

        var client: PostgresClient.Configuration {
            var configuration: PostgresClient.Configuration
            if let socketDirectory {
                configuration = PostgresClient.Configuration(
                    unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: username, password: password, database: database)
            } else {
                configuration = PostgresClient.Configuration(
                    host: host, port: port, username: username, password: password, database: database,
                    tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
            }
            configuration.options.maximumConnections = maximumConnections
            configuration.options.keepAliveBehavior = nil
            return configuration
        }
    }

    /// A database URL that cannot be used, and why.
    public struct URLError: Error, CustomStringConvertible {
        /// The URL with its password replaced.
        public var url: String
        public var reason: String

        init(url: String, reason: String) {
            var components = URLComponents(string: url)
            if components?.password != nil { components?.password = "***" }
            self.url = components?.string ?? "(unparsable URL)"
            self.reason = reason
        }

        public var description: String { "database URL '\(url)': \(reason)" }
    }
}
