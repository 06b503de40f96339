/// Many literals searched in one pass over a text: an Aho–Corasick automaton over folded bytes,
/// expanded into a full transition table so that each byte of the text costs one table read.
struct LiteralIndex: Sendable {
    /// `table[state << 8 | byte]`: the next state.
    private let table: [UInt32]
    /// Literal ids that end at each state (including through failure links).
    private let outputs: [[Int32]]

    init(literals: [[UInt8]]) {
        // The trie, with sparse children.
        var children: [[UInt8: Int]] = [[:]]
        var ends: [[Int32]] = [[]]
        for (id, literal) in literals.enumerated() {
            var state = 0
            for byte in literal {
                if let next = children[state][byte] {
                    state = next
                } else {
                    children.append([:])
                    ends.append([])
                    children[state][byte] = children.count - 1
                    state = children.count - 1
                }
            }
            ends[state].append(Int32(id))
        }
        // Breadth first: failure links, then every transition resolved.
        let count = children.count
        var table = [UInt32](repeating: 0, count: count << 8)
        var failure = [Int](repeating: 0, count: count)
        var queue: [Int] = []
        for byte in 0..<256 {
            if let next = children[0][UInt8(byte)] {
                table[byte] = UInt32(next)
                queue.append(next)
            }
        }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            ends[state] += ends[failure[state]]
            for byte in 0..<256 {
                if let next = children[state][UInt8(byte)] {
                    failure[next] = Int(table[failure[state] << 8 | byte])
                    table[state << 8 | byte] = UInt32(next)
                    queue.append(next)
                } else {
                    table[state << 8 | byte] = table[failure[state] << 8 | byte]
                }
            }
        }
        self.table = table
        outputs = ends
    }

    /// Calls `found` with the id of every literal occurrence in `text` (folded as it is read).
    func scan(_ text: String, _ found: (Int) -> Void) {
        var text = text
        text.withUTF8 { bytes in
            table.withUnsafeBufferPointer { table in
                var state = 0
                for raw in bytes {
                    state = Int(table[state << 8 | Int(StringPattern.fold(raw))])
                    if !outputs[state].isEmpty {
                        for id in outputs[state] { found(Int(id)) }
                    }
                }
            }
        }
    }
}
