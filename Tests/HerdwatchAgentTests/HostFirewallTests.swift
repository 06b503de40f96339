import HerdwatchAgent
import HerdwatchCollectors
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Blocking and isolation on the real kernel, against listeners on 127.0.0.1 started by the
/// tests. The tables have test names (herdwatch_test_*) and are deleted at the end of each test.
@Suite(.serialized, .enabled(if: firewallAvailable, "needs root and /usr/sbin/nft"))
struct HostFirewallTests {
    let firewall: HostFirewall

    init() throws {
        firewall = try HostFirewall(
            .init(blockTable: "herdwatch_test_block_\(getpid())", isolationTable: "herdwatch_test_isolate_\(getpid())"))
    }

    @Test func blockEndsByItself() throws {
        let listener = try LoopbackListener()
        let other = try LoopbackListener()
        defer { _ = try? firewall.removeBlockTable() }
        #expect(connects(to: listener.port))

        let address = try RemoteAddress(parsing: "127.0.0.1:\(listener.port)")
        try firewall.block(address, for: .seconds(2))
        let start = SystemClockMilliseconds.now()
        #expect(!connects(to: listener.port, within: 300), "blocked")
        #expect(connects(to: other.port), "another port on the same address still connects")
        let blocks = try firewall.blocked()
        #expect(blocks.map(\.address) == [address])
        #expect(blocks.first?.timeout == .seconds(2))
        #expect(blocks.first.map { $0.remaining <= .seconds(2) && $0.remaining > .zero } == true, "\(blocks)")

        waitUntil(seconds: 6) { connects(to: listener.port, within: 200) }
        #expect(connects(to: listener.port), "the kernel ended the block")
        #expect(SystemClockMilliseconds.now() - start >= 1500, "not before its time")
        #expect(try firewall.blocked().isEmpty)
    }

    @Test func unblockEndsABlockEarly() throws {
        let listener = try LoopbackListener()
        defer { _ = try? firewall.removeBlockTable() }
        let address = try RemoteAddress(parsing: "127.0.0.1:\(listener.port)")
        try firewall.block(address, for: .seconds(60))
        #expect(!connects(to: listener.port, within: 300))
        #expect(try firewall.unblock(address))
        #expect(connects(to: listener.port))
        #expect(try firewall.unblock(address) == false, "no longer blocked")
        #expect(try firewall.blocked().isEmpty)
    }

    @Test func blockingAgainSetsTheTimeLeft() throws {
        defer { _ = try? firewall.removeBlockTable() }
        let address = try RemoteAddress(parsing: "192.0.2.1")
        try firewall.block(address, for: .seconds(600))
        try firewall.block(address, for: .milliseconds(90_500))
        try firewall.block(address, for: .seconds(90))  // creating the table again changes nothing
        let blocks = try firewall.blocked()
        #expect(blocks.count == 1)
        #expect(blocks.first?.timeout == .seconds(90), "\(blocks)")
    }

    @Test func blocksEveryKindOfAddress() throws {
        defer { _ = try? firewall.removeBlockTable() }
        let addresses = try ["192.0.2.7", "192.0.2.8:443", "2001:db8::7", "[2001:db8::8]:8123", "[::1]:9"].map(RemoteAddress.init(parsing:))
        for address in addresses { try firewall.block(address, for: .seconds(30)) }
        let blocks = try firewall.blocked()
        #expect(Set(blocks.map(\.address)) == Set(addresses), "\(blocks)")
        #expect(blocks.allSatisfy { $0.timeout == .seconds(30) && $0.remaining <= .seconds(30) })
        try firewall.unblock(addresses[3])
        #expect(Set(try firewall.blocked().map(\.address)) == Set(addresses).subtracting([addresses[3]]))
    }

    @Test func refusesDurationsOutOfRange() throws {
        defer { _ = try? firewall.removeBlockTable() }
        let address = try RemoteAddress(parsing: "192.0.2.1")
        #expect(throws: FirewallError.self) { try firewall.block(address, for: .zero) }
        #expect(throws: FirewallError.self) { try firewall.block(address, for: .seconds(-5)) }
        #expect(throws: FirewallError.self) { try firewall.block(address, for: .seconds(31 * 86_400)) }
        #expect(try firewall.blocked().isEmpty)
    }

    @Test func isolationLetsOnlyTheServerThrough() throws {
        let server = try LoopbackListener()
        let other = try LoopbackListener()
        // Were this process to die while the host is isolated, a watchdog releases it after 15 s.
        let table = firewall.configuration.isolationTable
        // (SIGTERM ends it and its sleep.)
        let watchdog = try ChildProcess.spawn([
            "/bin/sh", "-c", "trap 'kill $!; exit 0' TERM; sleep 15 & wait $!; exec /usr/sbin/nft delete table inet \(table)",
        ]).pid
        defer {
            _ = try? firewall.release()
            ChildProcess.terminate(watchdog)
        }
        #expect(try firewall.isolated() == false)
        #expect(connects(to: other.port))

        try firewall.isolate(server: RemoteAddress(parsing: "127.0.0.1:\(server.port)"))
        let isolated = try firewall.isolated()
        let serverConnects = connects(to: server.port)
        let otherConnects = connects(to: other.port, within: 300)
        let released = try firewall.release()
        #expect(isolated)
        #expect(serverConnects, "the server is reachable")
        #expect(!otherConnects, "nothing else is")
        #expect(released)
        #expect(connects(to: other.port), "released")
        #expect(try firewall.isolated() == false)
        #expect(try firewall.release() == false)
    }

    @Test func isolationNeedsThePort() throws {
        #expect(throws: FirewallError.portRequired(try RemoteAddress(parsing: "127.0.0.1"))) {
            try firewall.isolate(server: RemoteAddress(parsing: "127.0.0.1"))
        }
        #expect(try firewall.isolated() == false)
    }

    @Test func missingNftSaysSo() throws {
        var configuration = firewall.configuration
        configuration.nft = "/nonexistent/nft"
        let broken = try HostFirewall(configuration)
        let address = try RemoteAddress(parsing: "192.0.2.1")
        do {
            try broken.block(address, for: .seconds(1))
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("cannot run /nonexistent/nft"), "\(error)")
        }
    }
}

enum SystemClockMilliseconds {
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
