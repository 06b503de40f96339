import Testing

@testable import HerdwatchDetection

/// The indexes that pick candidate rules: a wrong answer here loses alerts without any rule test
/// noticing the engine is fast for the wrong reason.
@Suite struct IndexTests {
    private func hits(_ index: LiteralIndex, _ text: String) -> [Int] {
        var hits: [Int] = []
        var text = text
        text.withUTF8 { index.scanner.scan($0, into: &hits) }
        return hits.sorted()
    }

    @Test func anchorsAreCheckedInOneScan() {
        let index = LiteralIndex(literals: [
            .init(bytes: Array("curl".utf8), anchor: .anywhere, rules: [1]),
            .init(bytes: Array("/tmp/".utf8), anchor: .start, rules: [2]),
            .init(bytes: Array(".sh".utf8), anchor: .end, rules: [3]),
            .init(bytes: Array("curl".utf8), anchor: .start, rules: [4]),
        ])
        #expect(hits(index, "curl http://x | sh") == [1, 4])
        #expect(hits(index, "/usr/bin/curl") == [1])
        #expect(hits(index, "/tmp/run.sh") == [2, 3])
        #expect(hits(index, "/var/tmp/run.sh.bak") == [])
        // Folded as read; every occurrence reports (the caller removes repeats).
        #expect(hits(index, "CURL curl") == [1, 1, 4])
        #expect(hits(index, "") == [])
    }

    /// Without unanchored literals only the ends of a value are read, and a literal of one anchor
    /// found in the other end's window does not count.
    @Test func anchoredOnlyIndexesReadWindows() {
        let index = LiteralIndex(literals: [
            .init(bytes: Array("ab".utf8), anchor: .start, rules: [1]),
            .init(bytes: Array("yz".utf8), anchor: .end, rules: [2]),
            .init(bytes: Array("zz".utf8), anchor: .start, rules: [3]),
        ])
        #expect(!index.scanner.hasUnanchored)
        #expect(index.scanner.startWindow == 2 && index.scanner.endWindow == 2)
        let middle = String(repeating: "x", count: 100)
        #expect(hits(index, "ab" + middle + "yz") == [1, 2])
        #expect(hits(index, middle + "ab" + middle) == [])
        #expect(hits(index, "x" + middle + "zz") == [])
        #expect(hits(index, "abyz") == [1, 2])
        #expect(hits(index, "zyz") == [2])
    }

    @Test func exactTablesFoldAndCheckLengths() {
        let table = ExactTable(["bash": [1], "nc": [2, 3], "ncat": [4]])
        var text = "BASH"
        #expect(text.withUTF8 { table.finder.lookup($0).map(Array.init) } == [1])
        #expect(table.lookup("nc") == [2, 3])
        #expect(table.lookup("Ncat") == [4])
        #expect(table.lookup("nca") == nil)
        #expect(table.lookup(String(repeating: "n", count: 80)) == nil)
        #expect(table.lookup("") == nil)
    }
}
