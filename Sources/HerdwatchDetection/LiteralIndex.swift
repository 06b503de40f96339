/// Many literals searched in one pass over a text: an Aho–Corasick automaton over folded bytes,
/// expanded into a full transition table so that each byte of the text costs two table reads.
/// Bytes are first mapped to classes (case folded; every byte no literal has is one class), which
/// keeps the table to states × classes entries: small enough to stay in cache while command lines
/// of kilobytes are scanned.
///
/// Each literal carries where it must be (anywhere, at the start, at the end of the value) and the
/// rules it indexes, so one scan of a value serves every anchor and yields rule numbers directly.
/// When no literal may be anywhere, only the first and last bytes of a value (as many as the
/// longest start and end literals) are read.
final class LiteralIndex: @unchecked Sendable {
    // @unchecked: the buffers are written in `init` only.
    struct Literal {
        var bytes: [UInt8]
        var anchor: RuleSet.Anchor
        var rules: [Int]
    }

    /// `classes[byte]`: the byte's class (its folded form's).
    // Plain buffers, freed in `deinit`: reading an array property would retain its storage at every scan.
    private let classes: UnsafeBufferPointer<UInt8>
    private let classCount: Int
    /// `table[row + class]`, where `row` is a state times `classCount`: the next state's row (kept
    /// premultiplied, so that the byte loop's chain of dependent steps has no multiplication), with
    /// `outputFlag` set when literals end there.
    private let table: UnsafeBufferPointer<UInt32>
    private static let outputFlag: UInt32 = 1 << 31
    /// Literals that end at each state (including through failure links): state s's are
    /// `outputs[outputStarts[s]..<outputStarts[s + 1]]`.
    private let outputStarts: UnsafeBufferPointer<Int32>
    private let outputs: UnsafeBufferPointer<Output>
    /// Every literal's rules, one list after another.
    private let rulePool: UnsafeBufferPointer<Int>
    /// The longest literal anchored at the start, and at the end; whether any may be anywhere.
    let startWindow: Int
    let endWindow: Int
    let hasUnanchored: Bool

    /// One literal as a state reports it.
    private struct Output: BitwiseCopyable {
        /// 0 anywhere; otherwise the anchor's check: `start` needs the literal to end `length`
        /// bytes into the value, `end` needs it to end with the value.
        var anchor: UInt8
        var length: Int32
        var rulesStart: Int32
        var rulesEnd: Int32
    }

    init(literals: [Literal]) {
        // Byte classes: 0 for bytes in no literal, then one per distinct (folded) byte.
        var classes = [UInt8](repeating: 0, count: 256)
        var count = 1
        for literal in literals {
            for byte in literal.bytes where classes[Int(byte)] == 0 {
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
            for byte in literal.bytes {
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
        precondition(states * width < Int(Self.outputFlag))
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
        var rulePool: [Int] = []
        var ruleRanges: [Range<Int32>] = []
        for literal in literals {
            let first = Int32(rulePool.count)
            rulePool += literal.rules
            ruleRanges.append(first..<Int32(rulePool.count))
        }
        var starts: [Int32] = [0]
        var outputs: [Output] = []
        for list in ends {
            for id in list {
                let literal = literals[Int(id)]
                let anchor: UInt8 = switch literal.anchor {
                case .anywhere: 0
                case .start: 1
                case .end: 2
                }
                let rules = ruleRanges[Int(id)]
                outputs.append(
                    Output(anchor: anchor, length: Int32(literal.bytes.count), rulesStart: rules.lowerBound, rulesEnd: rules.upperBound))
            }
            starts.append(Int32(outputs.count))
        }
        self.classes = ownedBuffer(classes)
        classCount = width
        table = ownedBuffer(next.map { UInt32($0 * width) | (ends[$0].isEmpty ? 0 : Self.outputFlag) })
        outputStarts = ownedBuffer(starts)
        self.outputs = ownedBuffer(outputs)
        self.rulePool = ownedBuffer(rulePool)
        startWindow = literals.filter { $0.anchor == .start }.map(\.bytes.count).max() ?? 0
        endWindow = literals.filter { $0.anchor == .end }.map(\.bytes.count).max() ?? 0
        hasUnanchored = literals.contains { $0.anchor == .anywhere }
    }

    deinit {
        classes.deallocate()
        table.deallocate()
        outputStarts.deallocate()
        outputs.deallocate()
        rulePool.deallocate()
    }

    /// Every rule of a literal found in `bytes` where its anchor allows (folded as they are read),
    /// appended to `hits`, once per occurrence.
    func scan(_ bytes: UnsafeBufferPointer<UInt8>, into hits: inout [Int]) {
        let count = bytes.count
        if hasUnanchored || count <= startWindow + endWindow {
            scan(bytes, from: 0, to: count, into: &hits)
            return
        }
        if startWindow > 0 { scan(bytes, from: 0, to: startWindow, into: &hits) }
        if endWindow > 0 { scan(bytes, from: count - endWindow, to: count, into: &hits) }
    }

    private func scan(_ bytes: UnsafeBufferPointer<UInt8>, from lower: Int, to upper: Int, into hits: inout [Int]) {
        guard let base = bytes.baseAddress, lower < upper else { return }
        let classes = classes.baseAddress!
        let table = table.baseAddress!
        let width = classCount
        var position = lower
        var row = 0
        while position < upper {
            let entry = table[row &+ Int(classes[Int(base[position])])]
            row = Int(entry & ~Self.outputFlag)
            position &+= 1
            if entry & Self.outputFlag != 0 { report(row / width, at: position, of: bytes.count, into: &hits) }
        }
    }

    /// The rules of the literals ending at `state`, `end` bytes into a value of `count` bytes.
    private func report(_ state: Int, at end: Int, of count: Int, into hits: inout [Int]) {
        for position in Int(outputStarts[state])..<Int(outputStarts[state + 1]) {
            let output = outputs[position]
            switch output.anchor {
            case 1 where end != Int(output.length): continue
            case 2 where end != count: continue
            default: break
            }
            for rule in Int(output.rulesStart)..<Int(output.rulesEnd) { hits.append(rulePool[rule]) }
        }
    }

    /// Every rule some literal indexes.
    var rules: [Int] { Array(rulePool) }
}

/// Exact values (folded) → rule lists, looked up by a text's bytes, folded as they are hashed: no
/// lower-cased copy and no `String` hashing per lookup. A class, so that reading it from a bucket
/// retains one reference rather than each of its arrays.
final class ExactTable: @unchecked Sendable {
    // @unchecked: the buffers are written in `init` only.
    /// Every key's bytes, one after another; `ranges[i]` is key i's (start, count).
    private let pool: UnsafeBufferPointer<UInt8>
    private let ranges: UnsafeBufferPointer<(start: Int32, count: Int32)>
    private let lists: [[Int]]
    /// Open addressing: an index into `ranges`, or -1.
    private let slots: UnsafeBufferPointer<Int32>
    private let mask: Int
    /// Whether some key has a byte outside ASCII (then such texts are lower-cased with Unicode's
    /// rules before the lookup; otherwise they cannot equal a key under ASCII folding).
    private let hasWideKeys: Bool
    /// Bit n set when some key is n bytes long (bit 63: 63 or more), so that most texts are turned
    /// away before they are hashed.
    private let lengths: UInt64

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
        self.slots = ownedBuffer(slots)
        self.pool = ownedBuffer(pool)
        self.ranges = ownedBuffer(ranges)
        hasWideKeys = pool.contains { $0 >= 0x80 }
        lengths = ranges.reduce(0) { $0 | Self.lengthBit(Int($1.count)) }
    }

    deinit {
        pool.deallocate()
        ranges.deallocate()
        slots.deallocate()
    }

    @inline(__always)
    private static func lengthBit(_ count: Int) -> UInt64 { 1 << UInt64(min(count, 63)) }

    var values: [[Int]] { lists }

    /// The rules listed under `text`, compared case-insensitively (keys are folded).
    func lookup(_ text: String) -> [Int]? {
        var text = text
        return text.withUTF8 { lookup($0) }
    }

    /// The same for bytes, which need not be valid UTF-8.
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int]? {
        guard hasWideKeys, bytes.contains(where: { $0 >= 0x80 }) else {
            return lengths & Self.lengthBit(bytes.count) == 0 ? nil : find(bytes)
        }
        // Keys were lower-cased with Unicode's rules; so is such a text.
        var folded = StringPattern.lowercased(String(decoding: bytes, as: UTF8.self))
        return folded.withUTF8 { find($0) }
    }

    @inline(__always)
    private func find(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int]? {
        var slot = Self.hash(bytes) & mask
        while true {
            let index = Int(slots[slot])
            if index < 0 { return nil }
            let range = ranges[index]
            if Int(range.count) == bytes.count {
                var offset = 0
                let start = Int(range.start)
                while offset < bytes.count && StringPattern.fold(bytes[offset]) == pool[start &+ offset] { offset &+= 1 }
                if offset == bytes.count { return lists[index] }
            }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(StringPattern.fold(byte))) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ (hash >> 29))
    }
}
