/// Many literals searched in one pass over a text: an Aho–Corasick automaton over folded bytes,
/// expanded into a full transition table so that each byte of the text costs one table read.
final class LiteralIndex: Sendable {
    /// `table[state << 8 | byte]`: the next state.
    private let table: [UInt32]
    /// Literal ids that end at each state (including through failure links): state s's are
    /// `outputIDs[outputStarts[s]..<outputStarts[s + 1]]`. Flat, so that the scan reads plain
    /// integers per byte instead of retaining an inner array.
    private let outputStarts: [Int32]
    private let outputIDs: [Int32]

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
        var starts: [Int32] = [0]
        var ids: [Int32] = []
        for list in ends {
            ids += list
            starts.append(Int32(ids.count))
        }
        outputStarts = starts
        outputIDs = ids
    }

    /// Calls `found` with the id of every literal occurrence in `text` (folded as it is read).
    func scan(_ text: String, _ found: (Int) -> Void) {
        var text = text
        text.withUTF8 { scan($0, found) }
    }

    func scan(_ bytes: UnsafeBufferPointer<UInt8>, _ found: (Int) -> Void) {
        table.withUnsafeBufferPointer { table in
            outputStarts.withUnsafeBufferPointer { starts in
                var state = 0
                for raw in bytes {
                    state = Int(table[state << 8 | Int(StringPattern.fold(raw))])
                    let start = Int(starts[state])
                    let end = Int(starts[state &+ 1])
                    if start != end {
                        for position in start..<end { found(Int(outputIDs[position])) }
                    }
                }
            }
        }
    }
}

/// Exact values (folded) → rule lists, looked up by a text's bytes, folded as they are hashed: no
/// lower-cased copy and no `String` hashing per lookup. A class, so that reading it from a bucket
/// retains one reference rather than each of its arrays.
final class ExactTable: Sendable {
    /// Every key's bytes, one after another; `ranges[i]` is key i's (start, count).
    private let pool: [UInt8]
    private let ranges: [(start: Int32, count: Int32)]
    private let lists: [[Int]]
    /// Open addressing: an index into `ranges`, or -1.
    private let slots: [Int32]
    private let mask: Int
    /// Whether some key has a byte outside ASCII (then such texts are lower-cased with Unicode's
    /// rules before the lookup; otherwise they cannot equal a key under ASCII folding).
    private let hasWideKeys: Bool

    init(_ entries: [String: [Int]]) {
        let sorted = entries.sorted { $0.key < $1.key }
        var pool: [UInt8] = []
        var ranges: [(start: Int32, count: Int32)] = []
        for (key, _) in sorted {
            ranges.append((Int32(pool.count), Int32(key.utf8.count)))
            pool += key.utf8
        }
        lists = sorted.map(\.value)
        var capacity = 8
        while capacity < ranges.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        var slots = [Int32](repeating: -1, count: capacity)
        pool.withUnsafeBufferPointer { pool in
            for (index, range) in ranges.enumerated() {
                let key = UnsafeBufferPointer(rebasing: pool[Int(range.start)..<Int(range.start + range.count)])
                var slot = Self.hash(key) & (capacity - 1)
                while slots[slot] >= 0 { slot = (slot + 1) & (capacity - 1) }
                slots[slot] = Int32(index)
            }
        }
        self.slots = slots
        self.pool = pool
        self.ranges = ranges
        hasWideKeys = pool.contains { $0 >= 0x80 }
    }

    var values: [[Int]] { lists }

    /// The rules listed under `text`, compared case-insensitively (keys are folded).
    func lookup(_ text: String) -> [Int]? {
        var text = text
        if text.utf8.contains(where: { $0 >= 0x80 }) {
            // Keys were lower-cased with Unicode's rules; so is such a text.
            guard hasWideKeys else { return nil }
            text = StringPattern.lowercased(text)
        }
        return text.withUTF8 { find($0) }
    }

    /// The same for bytes, which need not be valid UTF-8.
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int]? {
        if hasWideKeys, bytes.contains(where: { $0 >= 0x80 }) {
            return lookup(String(decoding: bytes, as: UTF8.self))
        }
        return find(bytes)
    }

    @inline(__always)
    private func find(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int]? {
        let found: Int? = pool.withUnsafeBufferPointer { pool in
            slots.withUnsafeBufferPointer { slots in
                var slot = Self.hash(bytes) & mask
                while true {
                    let index = Int(slots[slot])
                    if index < 0 { return nil }
                    let range = ranges[index]
                    if Int(range.count) == bytes.count {
                        var offset = 0
                        let start = Int(range.start)
                        while offset < bytes.count && StringPattern.fold(bytes[offset]) == pool[start &+ offset] { offset &+= 1 }
                        if offset == bytes.count { return index }
                    }
                    slot = (slot + 1) & mask
                }
            }
        }
        return found.map { lists[$0] }
    }

    @inline(__always)
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(StringPattern.fold(byte))) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ (hash >> 29))
    }
}
