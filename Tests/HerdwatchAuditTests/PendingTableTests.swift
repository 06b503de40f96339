import Testing

@testable import HerdwatchAudit

/// The assembler's hash table against a Dictionary, under random inserts and removals that crowd
/// the probe runs (few distinct nodes and times, serials in a narrow range), through several growths.
@Suite struct PendingTableTests {
    @Test(arguments: [1, 2, 3])
    func behavesLikeADictionary(seed: UInt64) {
        var generator = SplitMix(state: seed)
        var table = PendingTable<Int>(capacity: 4)
        var reference: [AuditEventAssembler.Key: Int] = [:]
        for step in 0..<50_000 {
            let key = AuditEventAssembler.Key(
                node: generator.next() % 3, serial: generator.next() % 2_000,
                milliseconds: Int64(generator.next() % 2))
            switch generator.next() % 3 {
            case 0 where reference[key] == nil:
                table.insert(step, for: key)
                reference[key] = step
            case 1:
                #expect(table.removeValue(for: key) == reference.removeValue(forKey: key))
            default:
                if let slot = table.slot(of: key) {
                    table[slot: slot] += 1
                    reference[key]! += 1
                }
                #expect(table[key] == reference[key])
            }
            #expect(table.count == reference.count)
        }
        for (key, value) in reference { #expect(table[key] == value) }
    }
}

private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
