import HerdwatchAgent
import Testing

/// Addresses go into nftables scripts: only strict, canonical ones get through.
@Suite struct RemoteAddressTests {
    @Test(arguments: [
        ("1.2.3.4", "1.2.3.4", nil), ("127.0.0.1:8123", "127.0.0.1", 8123), ("::1", "::1", nil),
        ("[::1]:8123", "::1", 8123), ("[::1]", "::1", nil), ("2001:DB8:0:0::1", "2001:db8::1", nil),
        ("[2001:db8::1]:65535", "2001:db8::1", 65535), ("0.0.0.0:1", "0.0.0.0", 1),
    ] as [(String, String, UInt16?)])
    func parses(_ text: String, host: String, port: UInt16?) throws {
        let address = try RemoteAddress(parsing: text)
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.family == (host.contains(":") ? .ipv6 : .ipv4))
        #expect(try RemoteAddress(parsing: address.description) == address, "description round-trips")
    }

    @Test(arguments: [
        "1.2.3.4; flush ruleset", "1.2.3.4 }; flush ruleset; add element inet herdwatch v4 { 5.6.7.8",
        "1.2.3.4\nflush ruleset", "1.2.3.4:80; flush ruleset", "[::1]:80 ; flush ruleset", "$(reboot)", "1.2.3.4/0",
        "10.0.0.0/8", "example.com", "localhost", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1.2.3.4:", "1.2.3.4:0",
        "1.2.3.4:65536", "1.2.3.4:+80", "1.2.3.4:080", "[1.2.3.4]:80", "[::1", "[::1]80", "[::1]:", "::1:80:", "fe80::1%eth0",
        ":::", "1::2::3", "", " 1.2.3.4", "1.2.3.4 ", "١.٢.٣.٤", "\u{0}1.2.3.4", "gggg::1", "1.2.3.4\"",
        String(repeating: "1", count: 1000),
    ])
    func refuses(_ text: String) {
        #expect(throws: RemoteAddress.Invalid.self) { try RemoteAddress(parsing: text) }
    }

    @Test func saysWhatIsWrong() {
        do {
            _ = try RemoteAddress(parsing: "1.2.3.4; flush ruleset")
            Issue.record("accepted")
        } catch {
            #expect(error.text == "1.2.3.4; flush ruleset")
            #expect(error.description.hasPrefix("not an address: \"1.2.3.4; flush ruleset\": "))
        }
    }

    @Test func refusesBadTableNames() {
        for name in ["", "herdwatch; flush ruleset", "1table", "a-b", "a b", String(repeating: "a", count: 65)] {
            #expect(throws: FirewallError.invalidTableName(name)) {
                try HostFirewall(.init(blockTable: name, isolationTable: "herdwatch_test_isolate"))
            }
        }
        #expect(throws: FirewallError.self) { try HostFirewall(.init(blockTable: "same", isolationTable: "same")) }
    }
}
