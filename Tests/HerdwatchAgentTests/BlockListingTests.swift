import Testing

@testable import HerdwatchAgent

/// Reading the blocks back from `nft list table`.
@Suite struct BlockListingTests {
    @Test func readsElementsOverSeveralLines() throws {
        let listing = """
            table inet herdwatch {
            \tset v4 {
            \t\ttype ipv4_addr
            \t\tflags timeout
            \t\telements = { 192.0.2.1 timeout 1m40s expires 1m39s972ms,
            \t\t\t     192.0.2.2 timeout 25d expires 24d23h59m59s984ms }
            \t}

            \tset v6port {
            \t\ttype ipv6_addr . inet_service
            \t\tflags timeout
            \t\telements = { ::1 . 8123 timeout 2s500ms expires 2s472ms }
            \t}
            }
            """
        let blocks = HostFirewall.parseBlocks(listing)
        #expect(
            blocks == [
                .init(address: try .init(parsing: "192.0.2.1"), timeout: .seconds(100), remaining: .milliseconds(99_972)),
                .init(address: try .init(parsing: "192.0.2.2"), timeout: .seconds(25 * 86_400), remaining: .milliseconds(25 * 86_400_000 - 16)),
                .init(address: try .init(parsing: "[::1]:8123"), timeout: .milliseconds(2500), remaining: .milliseconds(2472)),
            ])
        #expect(blocks[2].description == "[::1]:8123 (2.472s of 2.500s left)")
    }

    @Test(arguments: [("3600s", 3_600_000), ("1h", 3_600_000), ("1d2h3m4s5ms", 93_784_005), ("999ms", 999)] as [(String, Int64)])
    func readsDurations(_ text: String, milliseconds: Int64) {
        #expect(HostFirewall.parseDuration(Substring(text)) == .milliseconds(milliseconds))
    }

    @Test(arguments: ["", "s", "5x", "5", "1h-2m", "99999999999999d"])
    func refusesOtherDurations(_ text: String) {
        #expect(HostFirewall.parseDuration(Substring(text)) == nil)
    }
}
