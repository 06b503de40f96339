import CCrypt
import Foundation
import Synchronization

/// Who may use the web UI and the query API when the server listens beyond 127.0.0.1: a users file
/// of `NAME HASH` lines, the hash in crypt(3) form as in /etc/shadow (`$y$...` yescrypt from
/// `herdwatch passwd`, `mkpasswd -m yescrypt` or `openssl passwd -6`).
public struct UserDirectory: Sendable {
    private var hashes: [String: String]

    public init(hashes: [String: String]) { self.hashes = hashes }

    /// Reads a users file; a malformed line is named with its file and line.
    public init(parsing text: String, file: String) throws {
        hashes = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let name = words.first, !name.hasPrefix("#") else { continue }
            guard words.count == 2, words[1].hasPrefix("$") else {
                throw IngestSetupError(description: "\(file):\(index + 1): expected 'NAME HASH' with a crypt(3) hash ($y$..., $6$...)")
            }
            hashes[String(name)] = String(words[1])
        }
    }

    public var isEmpty: Bool { hashes.isEmpty }

    /// Whether `password` is `name`'s; an unknown name costs the same time as a wrong password.
    public func verify(name: String, password: String) -> Bool {
        let stored = hashes[name]
        let computed = PasswordHash.hash(password, setting: stored ?? PasswordHash.decoySetting)
        guard let stored, let computed else { return false }
        return constantTimeEqual(Array(stored.utf8), Array(computed.utf8))
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// crypt(3) through libxcrypt.
public enum PasswordHash {
    static let decoySetting = "$y$j9T$herdwatchdecoysalt$"

    /// A new yescrypt hash of `password` with a random salt.
    public static func make(_ password: String) -> String? {
        var setting = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        guard crypt_gensalt_rn("$y$", 0, nil, 0, &setting, Int32(setting.count)) != nil else { return nil }
        return hash(password, setting: String(decoding: setting.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// `password` hashed with the method and salt of `setting` (a full hash works as its own setting).
    static func hash(_ password: String, setting: String) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data) else { return nil }
        let text = String(cString: result)
        // libxcrypt signals failure with a string starting with '*'.
        return text.hasPrefix("*") ? nil : text
    }
}

/// Signed-in users: random session ids (in a cookie) that expire after `lifetime` of no use.
public final class Sessions: Sendable {
    private let sessions = Mutex<[String: (user: String, expires: Date)]>([:])
    private let lifetime: TimeInterval

    public init(lifetime: TimeInterval = 8 * 3600) { self.lifetime = lifetime }

    public func open(user: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: "-")
        let expires = Date().addingTimeInterval(lifetime)
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expires > Date() }
            sessions[id] = (user, expires)
        }
        return id
    }

    /// The user of a live session (and the session lives on), or nil.
    public func user(of id: String) -> String? {
        sessions.withLock { sessions in
            guard let session = sessions[id], session.expires > Date() else {
                sessions[id] = nil
                return nil
            }
            sessions[id] = (session.user, Date().addingTimeInterval(lifetime))
            return session.user
        }
    }

    public func close(_ id: String) { sessions.withLock { $0[id] = nil } }
}
