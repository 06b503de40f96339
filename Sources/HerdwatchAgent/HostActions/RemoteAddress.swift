#if canImport(Glibc)
import Glibc
#endif

/// An IP address, optionally with a port, validated strictly: it is written into nftables scripts,
/// so only the canonical text the C library prints for a parsed address ever reaches one.
///
/// Accepted: `1.2.3.4`, `::1`, `1.2.3.4:8123`, `[::1]:8123` (and `[::1]`). Not accepted: host
/// names, prefixes (`/24`), zone ids (`%eth0`), IPv4 with leading zeros or fewer than four parts,
/// port 0, or anything else around the address.
public struct RemoteAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case ipv4, ipv6
    }

    public let family: Family
    /// The address in canonical form (inet_ntop).
    public let host: String
    public let port: UInt16?

    /// Why a text is not an address.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var text: String
        public var reason: String
        public var description: String {
            let shown = text.count > 80 ? "\(text.prefix(80))…" : text
            return "not an address: \(shown.debugDescription): \(reason)"
        }
    }

    public init(host: String, port: UInt16? = nil) throws(Invalid) {
        let parsed = try Self.parseHost(Substring(host), whole: host)
        if port == 0 { throw Invalid(text: host, reason: "port 0") }
        self.family = parsed.family
        self.host = parsed.host
        self.port = port
    }

    public init(parsing text: String) throws(Invalid) {
        guard !text.isEmpty, text.utf8.count <= 64 else {
            throw Invalid(text: text, reason: text.isEmpty ? "empty" : "longer than any address")
        }
        var hostText = Substring(text)
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw Invalid(text: text, reason: "'[' without ']'") }
            hostText = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw Invalid(text: text, reason: "expected ':PORT' after ']'") }
                portText = rest.dropFirst()
            }
        } else if text.utf8.filter({ $0 == UInt8(ascii: ":") }).count == 1 {
            // One colon: IPv4:PORT (an IPv6 address has at least two).
            let colon = text.firstIndex(of: ":")!
            hostText = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        let parsed = try Self.parseHost(hostText, whole: text)
        if text.hasPrefix("["), parsed.family != .ipv6 {
            throw Invalid(text: text, reason: "brackets are for IPv6 addresses")
        }
        var port: UInt16?
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ (48...57).contains($0) }),
                let number = UInt16(portText), number > 0, portText.first != "0"
            else { throw Invalid(text: text, reason: "the port must be a number from 1 to 65535") }
            port = number
        }
        self.family = parsed.family
        self.host = parsed.host
        self.port = port
    }

    /// `1.2.3.4`, `::1`, `1.2.3.4:8123`, `[::1]:8123`.
    public var description: String {
        guard let port else { return host }
        return family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The address without its port.
    public var withoutPort: RemoteAddress { RemoteAddress(family: family, host: host, port: nil) }

    private init(family: Family, host: String, port: UInt16?) {
        self.family = family
        self.host = host
        self.port = port
    }

    /// Digits and '.', and for IPv6 also hex letters and ':'.
    private static func isAddressByte(_ byte: UInt8, ipv6: Bool) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."): return true
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: ":"): return ipv6
        default: return false
        }
    }

    private static func parseHost(_ text: Substring, whole: String) throws(Invalid) -> (family: Family, host: String) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw Invalid(text: whole, reason: "no address") }
        let isIPv6 = bytes.contains(UInt8(ascii: ":"))
        guard bytes.allSatisfy({ isAddressByte($0, ipv6: isIPv6) }) else {
            throw Invalid(text: whole, reason: "only an IPv4 or IPv6 address is accepted (digits, hex digits, '.', ':')")
        }
        if !isIPv6 {
            // inet_pton takes 4 decimal parts; refuse leading zeros, which other tools read as octal.
            let parts = bytes.split(separator: 46, omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && ($0.count == 1 || $0.first != 48) }) else {
                throw Invalid(text: whole, reason: "an IPv4 address is four decimal numbers without leading zeros")
            }
        }
        let family = isIPv6 ? AF_INET6 : AF_INET
        var binary = [UInt8](repeating: 0, count: 16)
        let result = String(text).withCString { inet_pton(family, $0, &binary) }
        guard result == 1 else { throw Invalid(text: whole, reason: isIPv6 ? "not a valid IPv6 address" : "not a valid IPv4 address") }
        var printed = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        guard inet_ntop(family, binary, &printed, socklen_t(printed.count)) != nil else {
            throw Invalid(text: whole, reason: "cannot print the address")
        }
        let canonical = String(decoding: printed.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (isIPv6 ? .ipv6 : .ipv4, canonical)
    }
}
