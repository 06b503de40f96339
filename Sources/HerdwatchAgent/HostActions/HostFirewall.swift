import HerdwatchCollectors

#if canImport(Glibc)
import Glibc
#endif

/// Blocking remote addresses and isolating the host, with nftables (`nft`, Debian's `nftables`).
///
/// Blocks live in table `inet herdwatch`: four sets with `flags timeout` (IPv4 and IPv6 addresses,
/// and address . port pairs) and chains on the input, output and forward hooks that drop traffic
/// to and from their members. Every element carries a kernel timeout, so a block ends on time
/// even when the agent is gone.
///
/// Isolation is a table of its own (`inet herdwatch_isolate`) whose chains drop everything
/// (loopback included) except TCP to and from the herdwatch server's address and port; `release`
/// deletes it. Its expiry is the caller's business.
///
/// Every change is one `nft -f -` transaction: it applies whole or not at all.
public struct HostFirewall: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// The blocks' table (family inet).
        public var blockTable = "herdwatch"
        /// The isolation table (family inet).
        public var isolationTable = "herdwatch_isolate"
        public var nft = "/usr/sbin/nft"
        /// The longest block; longer ones must be renewed.
        public var maximumBlock: Duration = .seconds(30 * 86_400)

        public init() {}

        public init(blockTable: String, isolationTable: String, nft: String = "/usr/sbin/nft") {
            self.blockTable = blockTable
            self.isolationTable = isolationTable
            self.nft = nft
        }
    }

    /// A block in force.
    public struct Block: Sendable, Equatable, CustomStringConvertible {
        public var address: RemoteAddress
        /// The length it was given.
        public var timeout: Duration
        /// The time left.
        public var remaining: Duration

        public var description: String {
            "\(address) (\(Self.text(remaining)) of \(Self.text(timeout)) left)"
        }

        static func text(_ duration: Duration) -> String {
            let milliseconds = HostFirewall.milliseconds(duration)
            return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds / 1000).\(pad(milliseconds % 1000))s"
        }

        private static func pad(_ value: Int64) -> String {
            let digits = String(value)
            return String(repeating: "0", count: 3 - digits.count) + digits
        }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration = Configuration()) throws(FirewallError) {
        for name in [configuration.blockTable, configuration.isolationTable] where !Self.isIdentifier(name) {
            throw .invalidTableName(name)
        }
        guard configuration.blockTable != configuration.isolationTable else {
            throw .invalidTableName(configuration.isolationTable)
        }
        self.configuration = configuration
    }

    // MARK: Blocks

    /// Blocks traffic to and from `address` (every port, or only its port, TCP and UDP) for
    /// `duration` (1 ms to `maximumBlock`), creating the table when it is missing. Blocking an
    /// address again sets its time left to `duration`.
    public func block(_ address: RemoteAddress, for duration: Duration) throws(FirewallError) {
        let milliseconds = Self.milliseconds(duration)
        guard milliseconds >= 1 else { throw .invalidDuration(duration, reason: "shorter than 1 ms") }
        guard duration <= configuration.maximumBlock else {
            throw .invalidDuration(duration, reason: "longer than the maximum of \(Block.text(configuration.maximumBlock))")
        }
        let (set, element) = member(address)
        let table = "inet \(configuration.blockTable)"
        // add, delete, add: the second add sets the timeout of an element that was already there.
        let script =
            blockTableScript()
            + """
            add element \(table) \(set) { \(element) }
            delete element \(table) \(set) { \(element) }
            add element \(table) \(set) { \(element) timeout \(milliseconds / 1000)s\(milliseconds % 1000)ms }

            """
        try run(script, operation: "block \(address) for \(Block.text(duration))")
    }

    /// Ends a block; false when `address` was not blocked.
    @discardableResult
    public func unblock(_ address: RemoteAddress) throws(FirewallError) -> Bool {
        guard try blocked().contains(where: { $0.address == address }) else { return false }
        let (set, element) = member(address)
        let table = "inet \(configuration.blockTable)"
        // add then delete: no error when it expired in between.
        try run(
            "add element \(table) \(set) { \(element) }\ndelete element \(table) \(set) { \(element) }\n",
            operation: "unblock \(address)")
        return true
    }

    /// The blocks in force, with their time left; none when the table is missing.
    public func blocked() throws(FirewallError) -> [Block] {
        guard try tableExists(configuration.blockTable) else { return [] }
        let listing = try run(
            nil, arguments: ["list", "table", "inet", configuration.blockTable], operation: "list the blocks")
        return Self.parseBlocks(listing)
    }

    /// Deletes the blocks' table (every block with it); false when it was missing.
    @discardableResult
    public func removeBlockTable() throws(FirewallError) -> Bool {
        try deleteTable(configuration.blockTable, operation: "remove the block table")
    }

    // MARK: Isolation

    /// Drops all traffic of the host, loopback and forwarded included, except TCP to and from
    /// `server` (which must have a port). Replaces an earlier isolation in the same transaction.
    ///
    /// Both directions are allowed in each chain, so that isolation also holds when the server
    /// runs on this host (`herdwatch run`, or tests on 127.0.0.1). For an IPv6 server, neighbour
    /// and router discovery stay open too: without them the server's address cannot be reached.
    public func isolate(server: RemoteAddress) throws(FirewallError) {
        guard let port = server.port else { throw .portRequired(server) }
        let ip = server.family == .ipv4 ? "ip" : "ip6"
        let discovery =
            server.family == .ipv6
            ? "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept\n" : ""
        let table = "inet \(configuration.isolationTable)"
        let script = """
            add table \(table)
            delete table \(table)
            table \(table) {
                chain input {
                    type filter hook input priority filter - 10; policy drop;
                    \(ip) saddr \(server.host) tcp sport \(port) accept
                    \(ip) daddr \(server.host) tcp dport \(port) accept
                    \(discovery)
                }
                chain output {
                    type filter hook output priority filter - 10; policy drop;
                    \(ip) daddr \(server.host) tcp dport \(port) accept
                    \(ip) saddr \(server.host) tcp sport \(port) accept
                    \(discovery)
                }
                chain forward {
                    type filter hook forward priority filter - 10; policy drop;
                }
            }

            """
        try run(script, operation: "isolate the host (server \(server))")
    }

    /// Ends the isolation; false when the host was not isolated.
    @discardableResult
    public func release() throws(FirewallError) -> Bool {
        try deleteTable(configuration.isolationTable, operation: "release the host")
    }

    /// Whether the isolation table is in place.
    public func isolated() throws(FirewallError) -> Bool {
        try tableExists(configuration.isolationTable)
    }

    // MARK: nft

    /// The block table, its sets and chains: `add` leaves what exists (and the sets' elements);
    /// the chains are flushed and refilled, so the rules are never doubled.
    private func blockTableScript() -> String {
        let table = "inet \(configuration.blockTable)"
        var script = "add table \(table)\n"
        for (set, type) in [
            ("v4", "ipv4_addr"), ("v6", "ipv6_addr"), ("v4port", "ipv4_addr . inet_service"),
            ("v6port", "ipv6_addr . inet_service"),
        ] {
            script += "add set \(table) \(set) { type \(type); flags timeout; }\n"
        }
        let hooks = [("input", ["saddr"], ["sport"]), ("output", ["daddr"], ["dport"]), ("forward", ["saddr", "daddr"], ["sport", "dport"])]
        for (chain, addresses, ports) in hooks {
            script += "add chain \(table) \(chain) { type filter hook \(chain) priority filter; policy accept; }\n"
            script += "flush chain \(table) \(chain)\n"
            for (address, port) in zip(addresses, ports) {
                script += "add rule \(table) \(chain) ip \(address) @v4 drop\n"
                script += "add rule \(table) \(chain) ip6 \(address) @v6 drop\n"
                script += "add rule \(table) \(chain) meta l4proto { tcp, udp } ip \(address) . th \(port) @v4port drop\n"
                script += "add rule \(table) \(chain) meta l4proto { tcp, udp } ip6 \(address) . th \(port) @v6port drop\n"
            }
        }
        return script
    }

    /// The set and the element text for an address (canonical, so safe in a script).
    private func member(_ address: RemoteAddress) -> (set: String, element: String) {
        let family = address.family == .ipv4 ? "v4" : "v6"
        guard let port = address.port else { return (family, address.host) }
        return (family + "port", "\(address.host) . \(port)")
    }

    private func tableExists(_ name: String) throws(FirewallError) -> Bool {
        let listing = try run(nil, arguments: ["list", "tables", "inet"], operation: "list the tables")
        return listing.split(separator: "\n").contains { $0 == "table inet \(name)" }
    }

    private func deleteTable(_ name: String, operation: String) throws(FirewallError) -> Bool {
        guard try tableExists(name) else { return false }
        // add then delete: no error when it went away in between.
        try run("add table inet \(name)\ndelete table inet \(name)\n", operation: operation)
        return true
    }

    /// Runs nft with `script` on its standard input (`-f -`), or with `arguments`; returns what it printed.
    @discardableResult
    private func run(_ script: String?, arguments: [String] = [], operation: String) throws(FirewallError) -> String {
        let completion: ChildProcess.Completion
        do {
            completion = try ChildProcess.run(
                [configuration.nft] + (script == nil ? arguments : ["-f", "-"]), input: Array((script ?? "").utf8))
        } catch let failure as ChildProcess.Failure {
            throw .cannotRun(program: configuration.nft, code: failure.code)
        } catch {
            throw .cannotRun(program: configuration.nft, code: EIO)
        }
        guard completion.succeeded else {
            var message = String(decoding: completion.error.isEmpty ? completion.output : completion.error, as: UTF8.self)
            while message.last?.isWhitespace == true { message.removeLast() }
            if message.count > 2000 { message = String(message.prefix(2000)) + "…" }
            throw .nftFailed(operation: operation, status: completion.status, message: message)
        }
        return String(decoding: completion.output, as: UTF8.self)
    }

    // MARK: Parsing

    /// The elements of the four sets in `nft list table` output, e.g.
    /// `elements = { 127.0.0.1 . 8123 timeout 2s expires 1s996ms, ... }`, possibly over several lines.
    static func parseBlocks(_ listing: String) -> [Block] {
        var blocks: [Block] = []
        var collecting = false
        var text = ""
        for line in listing.split(separator: "\n") {
            var rest = Substring(line)
            if !collecting {
                guard let start = line.firstRange(of: "elements = {") else { continue }
                rest = line[start.upperBound...]
                collecting = true
            }
            if let end = rest.firstIndex(of: "}") {
                text += " " + rest[..<end]
                blocks += parseElements(text)
                text = ""
                collecting = false
            } else {
                text += " " + rest
            }
        }
        return blocks
    }

    private static func parseElements(_ text: String) -> [Block] {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" })
        var blocks: [Block] = []
        var index = 0
        while index < tokens.count {
            let host = String(tokens[index])
            index += 1
            var port: UInt16?
            if index + 1 < tokens.count, tokens[index] == "." {
                port = UInt16(tokens[index + 1])
                index += 2
            }
            var timeout: Duration?
            var remaining: Duration?
            while index + 1 < tokens.count, tokens[index] == "timeout" || tokens[index] == "expires" {
                let value = parseDuration(tokens[index + 1])
                if tokens[index] == "timeout" { timeout = value } else { remaining = value }
                index += 2
            }
            if let address = try? RemoteAddress(host: host, port: port), let timeout {
                blocks.append(Block(address: address, timeout: timeout, remaining: remaining ?? timeout))
            }
        }
        return blocks
    }

    /// nft's durations: `1d2h3m4s500ms`, `25d`, `3600s`.
    static func parseDuration(_ text: Substring) -> Duration? {
        var milliseconds: Int64 = 0
        var bytes = text.utf8[...]
        guard !bytes.isEmpty else { return nil }
        while !bytes.isEmpty {
            let digits = bytes.prefix { (48...57).contains($0) }
            bytes = bytes.dropFirst(digits.count)
            let unit = bytes.prefix { (97...122).contains($0) }
            bytes = bytes.dropFirst(unit.count)
            guard !digits.isEmpty, digits.count < 12, let value = Int64(String(decoding: digits, as: UTF8.self)) else { return nil }
            switch String(decoding: unit, as: UTF8.self) {
            case "d": milliseconds += value * 86_400_000
            case "h": milliseconds += value * 3_600_000
            case "m": milliseconds += value * 60_000
            case "s": milliseconds += value * 1000
            case "ms": milliseconds += value
            default: return nil
            }
        }
        return .milliseconds(milliseconds)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds < Int64.max / 1000 else { return Int64.max }
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// A letter, then letters, digits and '_' (at most 64): what nft takes unquoted.
    private static func isIdentifier(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 64 else { return false }
        let letter: (UInt8) -> Bool = { (65...90).contains($0) || (97...122).contains($0) }
        return letter(first) && bytes.allSatisfy { letter($0) || (48...57).contains($0) || $0 == UInt8(ascii: "_") }
    }
}

/// Why a firewall action failed.
public enum FirewallError: Error, Equatable, CustomStringConvertible {
    /// A table name that is not a plain identifier, or the same name for both tables.
    case invalidTableName(String)
    case invalidDuration(Duration, reason: String)
    /// Isolation needs the server's port.
    case portRequired(RemoteAddress)
    /// nft could not be started (`code`: errno).
    case cannotRun(program: String, code: Int32)
    /// nft refused the change or the listing; `message` is what it said.
    case nftFailed(operation: String, status: Int32, message: String)

    public var description: String {
        switch self {
        case .invalidTableName(let name):
            return "invalid nftables table name \(name.debugDescription): a letter, then letters, digits or '_' (at most 64), different for blocks and isolation"
        case .invalidDuration(let duration, let reason):
            return "invalid block duration \(duration): \(reason)"
        case .portRequired(let server):
            return "cannot isolate the host: the server address \(server) has no port"
        case .cannotRun(let program, let code):
            let hint = code == ENOENT ? " (install Debian's nftables package)" : ""
            return "cannot run \(program): \(String(cString: strerror(code)))\(hint)"
        case .nftFailed(let operation, let status, let message):
            return "cannot \(operation): nft exited with status \(status): \(message)"
        }
    }
}
