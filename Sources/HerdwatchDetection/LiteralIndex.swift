/// Many literals searched in one pass over a text: an Aho–Corasick automaton over folded bytes,
/// expanded into a full transition table so that each byte of the text costs two table reads.
/// Bytes are first mapped to classes (case folded; every byte no literal has is one class), which
/// keeps the table to states × classes entries: small enough to stay in cache while command lines
/// of kilobytes are scanned.
final class LiteralIndex: Sendable {
    /// `classes[byte]`: the byte's class (its folded form's).
    private let classes: [UInt8]
    private let classCount: Int
    /// `table[state * classCount + class]`: the next state, with `outputFlag` set when literals end there.
    private let table: [UInt32]
    private static let outputFlag: UInt32 = 1 << 31
    /// Literal ids that end at each state (including through failure links): state s's are
    /// `outputIDs[outputStarts[s]..<outputStarts[s + 1]]`.
    private let outputStarts: [Int32]
    private let outputIDs: [Int32]

    init(literals: [[UInt8]]) {
        // Byte classes: 0 for bytes in no literal, then one per distinct (folded) byte.
        var classes = [UInt8](repeating: 0, count: 256)
        var count = 1
        for literal in literals {
            for byte in literal where classes[Int(byte)] == 0 {
                classes[Int(byte)] = UInt8(count)
                count += 1
            }
        }
        for byte in 0..<256 { classes[byte] = classes[Int(StringPattern.fold(UInt8(byte)))] }
        precondition(count <= 256)
        let width = count
        // The trie, with sparse children, over classes.
        var children: [[UInt8: Int]] = [[:]]
        var ends: [[Int32]] = [[]]
        for (id, literal) in literals.enumerated() {
            var state = 0
            for byte in literal {
                let symbol = classes[Int(byte)]
                if let next = children[state][symbol] {
                    state = next
                } else {
                    children.append([:])
                    ends.append([])
                    children[state][symbol] = children.count - 1
                    state = children.count - 1
                }
            }
            ends[state].append(Int32(id))
        }
        // Breadth first: failure links, then every transition resolved.
        let states = children.count
        precondition(states < Int(Self.outputFlag))
        var next = [Int](repeating: 0, count: states * width)
        var failure = [Int](repeating: 0, count: states)
        var queue: [Int] = []
        for symbol in 0..<width {
            if let child = children[0][UInt8(symbol)] {
                next[symbol] = child
                queue.append(child)
            }
        }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            ends[state] += ends[failure[state]]
            for symbol in 0..<width {
                if let child = children[state][UInt8(symbol)] {
                    failure[child] = next[failure[state] * width + symbol]
                    next[state * width + symbol] = child
                    queue.append(child)
                } else {
                    next[state * width + symbol] = next[failure[state] * width + symbol]
                }
            }
        }
        var starts: [Int32] = [0]
        var ids: [Int32] = []
        for list in ends {
            ids += list
            starts.append(Int32(ids.count))
        }
        self.classes = classes
        classCount = width
        table = next.map { UInt32($0) | (ends[$0].isEmpty ? 0 : Self.outputFlag) }
        outputStarts = starts
        outputIDs = ids
    }

    /// Calls `found` with the id of every literal occurrence in `bytes` (folded as they are read).
    func scan(_ bytes: UnsafeBufferPointer<UInt8>, _ found: (Int) -> Void) {
        guard let start = bytes.baseAddress else { return }
        let end = start + bytes.count
        classes.withUnsafeBufferPointer { classes in
            table.withUnsafeBufferPointer { table in
                let classes = classes.baseAddress!
                let table = table.baseAddress!
                let width = classCount
                var cursor = start
                var state = 0
                while cursor < end {
                    let entry = table[state &* width &+ Int(classes[Int(cursor.pointee)])]
                    state = Int(entry & ~Self.outputFlag)
                    cursor += 1
                    if entry & Self.outputFlag != 0 { report(state, found) }
                }
            }
        }
    }

    private func report(_ state: Int, _ found: (Int) -> Void) {
        for position in Int(outputStarts[state])..<Int(outputStarts[state + 1]) { found(Int(outputIDs[position])) }
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
        return text.withUTF8 { lookup($0) }
    }

    /// The same for bytes, which need not be valid UTF-8.
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int]? {
        guard hasWideKeys, bytes.contains(where: { $0 >= 0x80 }) else { return find(bytes) }
        // Keys were lower-cased with Unicode's rules; so is such a text.
        var folded = StringPattern.lowercased(String(decoding: bytes, as: UTF8.self))
        return folded.withUTF8 { find($0) }
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
