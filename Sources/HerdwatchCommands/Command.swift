import Crypto
import Foundation

/// An order from the server to one agent: raise the monitoring level, kill a process, block an
/// address, isolate the host. Commands are rare, so they are plain JSON; what makes them safe is
/// the envelope (`SignedCommand`) and the agent's checks (`CommandVerifier`).
public struct Command: Sendable, Codable, Equatable {
    /// Unique per command; the agent refuses an id it has seen (replay).
    public var id: String
    /// The host it is for: an agent refuses commands for another host.
    public var host: String
    /// `level`, `kill`, `block`, `unblock`, `isolate`, `release`.
    public var action: String
    /// The action's arguments (`level`: name, seconds; `kill`: entity_id; `block`: address, seconds;
    /// `isolate`: server, seconds).
    public var arguments: [String: String]
    /// Milliseconds since the epoch.
    public var issuedAt: Int64
    public var expiresAt: Int64
    /// Who asked: `policy NAME`, `user NAME`.
    public var requestedBy: String

    public init(
        id: String = Command.newID(), host: String, action: String, arguments: [String: String] = [:], issuedAt: Int64,
        lifetimeMilliseconds: Int64 = 60_000, requestedBy: String
    ) {
        self.id = id
        self.host = host
        self.action = action
        self.arguments = arguments
        self.issuedAt = issuedAt
        self.expiresAt = issuedAt + lifetimeMilliseconds
        self.requestedBy = requestedBy
    }

    enum CodingKeys: String, CodingKey {
        case id, host, action, arguments
        case issuedAt = "issued_at"
        case expiresAt = "expires_at"
        case requestedBy = "requested_by"
    }

    /// What the command acts on: the process (`kill`), the address (`block`, `unblock`) or the
    /// level (`level`); nil for the host itself (`isolate`, `release`).
    public var target: String? { arguments["entity_id"] ?? arguments["address"] ?? arguments["level"] }

    /// 128 random bits, hex.
    public static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}

/// A command as it travels: the exact payload bytes (base64) and the server's Ed25519 signature
/// over them. The agent checks the signature over the bytes it received, before it reads them.
public struct SignedCommand: Sendable, Codable, Equatable {
    public var payload: String
    public var signature: String

    public init(payload: String, signature: String) {
        self.payload = payload
        self.signature = signature
    }
}

/// The server's signing key. Its public half goes into each agent's configuration.
public struct CommandSigner: Sendable {
    private let key: Curve25519.Signing.PrivateKey

    public init() { key = Curve25519.Signing.PrivateKey() }

    /// A key saved by `base64Representation`.
    public init(base64 text: String) throws(CommandKeyError) {
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { throw CommandKeyError(reason: "not a base64 Ed25519 private key (32 bytes)") }
        self.key = key
    }

    /// The key in `STATE_DIR/command-signing.key`, made on first use (mode 0600).
    public static func loadOrCreate(path: String) throws(CommandKeyError) -> CommandSigner {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            do {
                return try CommandSigner(base64: text)
            } catch {
                throw CommandKeyError(reason: "\(path): \(error.reason)")
            }
        }
        let signer = CommandSigner()
        let created = FileManager.default.createFile(
            atPath: path, contents: Data((signer.base64Representation + "\n").utf8), attributes: [.posixPermissions: 0o600])
        guard created else { throw CommandKeyError(reason: "cannot write a new signing key to \(path)") }
        return signer
    }

    public var base64Representation: String { key.rawRepresentation.base64EncodedString() }
    /// What agents are configured with (`commands.server_key`).
    public var publicKeyBase64: String { key.publicKey.rawRepresentation.base64EncodedString() }

    public func sign(_ command: Command) -> SignedCommand {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let payload = (try? encoder.encode(command)) ?? Data()
        let signature = (try? key.signature(for: payload)) ?? Data()
        return SignedCommand(payload: payload.base64EncodedString(), signature: signature.base64EncodedString())
    }
}

public struct CommandKeyError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// Why an agent refused a command. Every refusal is reported as an event.
public enum CommandRefusal: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case badSignature
    case wrongHost(String)
    case expired(agoMilliseconds: Int64)
    case notYetValid(inMilliseconds: Int64)
    case lifetimeTooLong(milliseconds: Int64)
    case replayed
    case notAccepted(String)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed command: \(why)"
        case .badSignature: "signature does not verify with the server key"
        case .wrongHost(let host): "command is for host '\(host)', not this one"
        case .expired(let ago): "command expired \(ago) ms ago"
        case .notYetValid(let ahead): "command issued \(ahead) ms in the future"
        case .lifetimeTooLong(let lifetime): "command lifetime \(lifetime / 1000) s exceeds the maximum"
        case .replayed: "command id already seen (replay)"
        case .notAccepted(let action): "action '\(action)' is not accepted by this agent's configuration"
        }
    }

    /// A short stable name for queries: `bad-signature`, `replayed`, ...
    public var code: String {
        switch self {
        case .malformed: "malformed"
        case .badSignature: "bad-signature"
        case .wrongHost: "wrong-host"
        case .expired: "expired"
        case .notYetValid: "not-yet-valid"
        case .lifetimeTooLong: "lifetime-too-long"
        case .replayed: "replayed"
        case .notAccepted: "not-accepted"
        }
    }
}

/// The agent's checks, in order: the signature over the received bytes, the payload, the target
/// host, the validity window (with `clockSkew` of tolerance), the id never seen before, and the
/// action allowed by the agent's own configuration. Seen ids are kept (and persisted) until their
/// command expires, so the ledger stays small: commands live at most `maximumLifetime`.
public struct CommandVerifier: Sendable {
    public var hostName: String
    public var acceptedActions: Set<String>
    public var clockSkewMilliseconds: Int64 = 30_000
    public var maximumLifetimeMilliseconds: Int64 = 3_600_000
    private let key: Curve25519.Signing.PublicKey

    public init(publicKeyBase64: String, hostName: String, acceptedActions: Set<String>) throws(CommandKeyError) {
        guard let raw = Data(base64Encoded: publicKeyBase64.trimmingCharacters(in: .whitespacesAndNewlines)),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw CommandKeyError(reason: "server key: not a base64 Ed25519 public key (32 bytes)") }
        self.key = key
        self.hostName = hostName
        self.acceptedActions = acceptedActions
    }

    /// The command, or why it is refused. `partial`: what could be read of a refused command
    /// (its id and action, for the report), nil when the signature did not verify.
    public func verify(_ signed: SignedCommand, now: Int64, ledger: inout NonceLedger) -> Result<Command, Refused> {
        guard let payload = Data(base64Encoded: signed.payload), let signature = Data(base64Encoded: signed.signature) else {
            return .failure(Refused(reason: .malformed("payload or signature is not base64"), command: nil))
        }
        guard key.isValidSignature(signature, for: payload) else {
            return .failure(Refused(reason: .badSignature, command: nil))
        }
        let command: Command
        do {
            command = try JSONDecoder().decode(Command.self, from: payload)
        } catch {
            return .failure(Refused(reason: .malformed("payload is not a command: \(error)"), command: nil))
        }
        guard (1...64).contains(command.id.utf8.count), command.id.utf8.allSatisfy({ Self.isIDByte($0) }) else {
            return .failure(Refused(reason: .malformed("command id must be 1-64 letters, digits or '-'"), command: nil))
        }
        func refuse(_ reason: CommandRefusal) -> Result<Command, Refused> { .failure(Refused(reason: reason, command: command)) }
        guard command.host == hostName else { return refuse(.wrongHost(command.host)) }
        guard now <= command.expiresAt else { return refuse(.expired(agoMilliseconds: now - command.expiresAt)) }
        guard command.issuedAt <= now + clockSkewMilliseconds else { return refuse(.notYetValid(inMilliseconds: command.issuedAt - now)) }
        let lifetime = command.expiresAt - command.issuedAt
        guard lifetime <= maximumLifetimeMilliseconds else { return refuse(.lifetimeTooLong(milliseconds: lifetime)) }
        guard ledger.admit(command.id, until: command.expiresAt + clockSkewMilliseconds, now: now) else { return refuse(.replayed) }
        guard acceptedActions.contains(command.action) else { return refuse(.notAccepted(command.action)) }
        return .success(command)
    }

    static func isIDByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
    }

    public struct Refused: Error, Sendable {
        public var reason: CommandRefusal
        /// The command when its signature verified (so its id can be reported back).
        public var command: Command?
    }
}

/// Command ids seen and not yet expired, in memory and appended to a file so that a restarted
/// agent still refuses a replay. The file is rewritten without the expired ids when it loads.
public struct NonceLedger: Sendable {
    private var seen: [String: Int64] = [:]
    private let path: String?

    /// `path`: where to keep the ids across restarts (nil: memory only).
    public init(path: String?, now: Int64) {
        self.path = path
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let until = Int64(parts[1]), until >= now else { continue }
            seen[String(parts[0])] = until
        }
        let kept = seen.map { "\($0.key) \($0.value)\n" }.joined()
        try? kept.write(toFile: path, atomically: true, encoding: .utf8)
    }

    public var count: Int { seen.count }

    /// True the first time an id is seen; it is kept until `until`.
    mutating func admit(_ id: String, until: Int64, now: Int64) -> Bool {
        if seen.count > 1024 { seen = seen.filter { $0.value >= now } }
        guard seen[id].map({ $0 < now }) ?? true else { return false }
        seen[id] = until
        if let path, let handle = FileHandle(forWritingAtPath: path) ?? Self.create(path) {
            handle.seekToEndOfFile()
            handle.write(Data("\(id) \(until)\n".utf8))
            try? handle.synchronize()
            try? handle.close()
        }
        return true
    }

    private static func create(_ path: String) -> FileHandle? {
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        return FileHandle(forWritingAtPath: path)
    }
}
