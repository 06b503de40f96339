/// Many literals searched in one pass over a text (Aho–Corasick over folded bytes): which of them
/// occur. Rules that need one of their literals in a field share one scan of it.
struct LiteralIndex: Sendable {
    /// Goto transitions per state, sparse: (byte, next state) pairs sorted by byte.
    private var transitions: [[(UInt8, Int32)]] = [[]]
    private var failure: [Int32] = [0]
    /// Literal ids that end at each state (including through failure links).
    private var outputs: [[Int32]] = [[]]
    private(set) var literalCount = 0

    init(literals: [[UInt8]]) {
        for (id, literal) in literals.enumerated() {
            var state = 0
            for byte in literal {
                if let next = child(state, byte) {
                    state = next
                } else {
                    transitions.append([])
                    failure.append(0)
                    outputs.append([])
                    let next = transitions.count - 1
                    insert(state, byte, next)
                    state = next
                }
            }
            outputs[state].append(Int32(id))
        }
        literalCount = literals.count
        // Breadth-first failure links.
        var queue: [Int] = transitions[0].map { Int($0.1) }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            for (byte, nextState) in transitions[state] {
                let next = Int(nextState)
                queue.append(next)
                var fallback = Int(failure[state])
                while fallback != 0 && child(fallback, byte) == nil { fallback = Int(failure[fallback]) }
                let link = state == 0 ? 0 : (child(fallback, byte) ?? 0)
                failure[next] = Int32(link == next ? 0 : link)
                outputs[next] += outputs[Int(failure[next])]
            }
        }
    }

    private func child(_ state: Int, _ byte: UInt8) -> Int? {
        for (key, next) in transitions[state] where key == byte { return Int(next) }
        return nil
    }

    private mutating func insert(_ state: Int, _ byte: UInt8, _ next: Int) {
        transitions[state].append((byte, Int32(next)))
        transitions[state].sort { $0.0 < $1.0 }
    }

    /// Calls `found` with the id of every literal occurrence in `text` (folded as it is read).
    func scan(_ text: String, _ found: (Int) -> Void) {
        var text = text
        text.withUTF8 { bytes in
            var state = 0
            for raw in bytes {
                let byte = StringPattern.fold(raw)
                while true {
                    if let next = child(state, byte) {
                        state = next
                        break
                    }
                    if state == 0 { break }
                    state = Int(failure[state])
                }
                for id in outputs[state] { found(Int(id)) }
            }
        }
    }
}
