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
///
/// The class owns the tables; `scanner` reads them. Buckets keep the scanner, a plain value:
/// using a class reference there cost a retain and a release per record and field.
final class LiteralIndex: Sendable {
    struct Literal {
        var bytes: [UInt8]
        var anchor: RuleSet.Anchor
        var rules: [Int]
    }

    let scanner: Scanner

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
        precondition(states * width < Int(Scanner.outputFlag))
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
        var outputs: [Scanner.Output] = []
        for list in ends {
            for id in list {
                let literal = literals[Int(id)]
                let rules = ruleRanges[Int(id)]
                outputs.append(
                    Scanner.Output(
                        anchor: literal.anchor, length: Int32(literal.bytes.count), rulesStart: rules.lowerBound,
                        rulesEnd: rules.upperBound))
            }
            starts.append(Int32(outputs.count))
        }
        scanner = Scanner(
            classes: ownedBuffer(classes), classCount: width,
            table: ownedBuffer(next.map { UInt32($0 * width) | (ends[$0].isEmpty ? 0 : Scanner.outputFlag) }),
            outputStarts: ownedBuffer(starts), outputs: ownedBuffer(outputs), rulePool: ownedBuffer(rulePool),
            startWindow: literals.filter { $0.anchor == .start }.map(\.bytes.count).max() ?? 0,
            endWindow: literals.filter { $0.anchor == .end }.map(\.bytes.count).max() ?? 0,
            hasUnanchored: literals.contains { $0.anchor == .anywhere })
    }

    deinit {
        scanner.classes.deallocate()
        scanner.table.deallocate()
        scanner.outputStarts.deallocate()
        scanner.outputs.deallocate()
        scanner.rulePool.deallocate()
    }

    /// Every rule some literal indexes.
    var rules: [Int] { Array(scanner.rulePool) }

    /// The automaton's tables, read in place; valid while its `LiteralIndex` lives.
    struct Scanner: @unchecked Sendable, BitwiseCopyable {
        // @unchecked: the buffers are never written after `LiteralIndex.init`.
        /// `classes[byte]`: the byte's class (its folded form's).
        let classes: UnsafeBufferPointer<UInt8>
        let classCount: Int
        /// `table[row + class]`, where `row` is a state times `classCount`: the next state's row
        /// (kept premultiplied, so that the byte loop's chain of dependent steps has no
        /// multiplication), with `outputFlag` set when literals end there.
        let table: UnsafeBufferPointer<UInt32>
        static let outputFlag: UInt32 = 1 << 31
        /// Literals that end at each state (including through failure links): state s's are
        /// `outputs[outputStarts[s]..<outputStarts[s + 1]]`.
        let outputStarts: UnsafeBufferPointer<Int32>
        let outputs: UnsafeBufferPointer<Output>
        /// Every literal's rules, one list after another.
        let rulePool: UnsafeBufferPointer<Int>
        /// The longest literal anchored at the start, and at the end; whether any may be anywhere.
        let startWindow: Int
        let endWindow: Int
        let hasUnanchored: Bool

        /// One literal as a state reports it.
        struct Output: BitwiseCopyable {
            /// `start` needs the literal to end `length` bytes into the value, `end` needs it to end
            /// with the value.
            var anchor: RuleSet.Anchor
            var length: Int32
            var rulesStart: Int32
            var rulesEnd: Int32
        }

        /// Every rule of a literal found in `bytes` where its anchor allows (folded as they are
        /// read), appended to `hits`, once per occurrence.
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
            var position = lower
            var row = 0
            while position < upper {
                let entry = table[row &+ Int(classes[Int(base[position])])]
                row = Int(entry & ~Self.outputFlag)
                position &+= 1
                if entry & Self.outputFlag != 0 { report(row / classCount, at: position, of: bytes.count, into: &hits) }
            }
        }

        /// The rules of the literals ending at `state`, `end` bytes into a value of `count` bytes.
        private func report(_ state: Int, at end: Int, of count: Int, into hits: inout [Int]) {
            for position in Int(outputStarts[state])..<Int(outputStarts[state + 1]) {
                let output = outputs[position]
                switch output.anchor {
                case .start where end != Int(output.length): continue
                case .end where end != count: continue
                default: break
                }
                for rule in Int(output.rulesStart)..<Int(output.rulesEnd) { hits.append(rulePool[rule]) }
            }
        }
    }
}

/// Exact values (folded) → rule lists, looked up by a text's bytes, folded as they are hashed: no
/// lower-cased copy and no `String` hashing per lookup. As with `LiteralIndex`, the class owns the
/// tables and buckets keep its `finder`, a plain value.
final class ExactTable: Sendable {
    let finder: Finder

    init(_ entries: [String: [Int]]) {
        let sorted = entries.sorted { $0.key < $1.key }
        var pool: [UInt8] = []
        var ranges: [(start: Int32, count: Int32)] = []
        var rulePool: [Int] = []
        var ruleRanges: [(start: Int32, count: Int32)] = []
        for (key, rules) in sorted {
            ranges.append((Int32(pool.count), Int32(key.utf8.count)))
            pool += key.utf8
            ruleRanges.append((Int32(rulePool.count), Int32(rules.count)))
            rulePool += rules
        }
        var capacity = 8
        while capacity < ranges.count * 2 { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        pool.withUnsafeBufferPointer { pool in
            for (index, range) in ranges.enumerated() {
                let key = UnsafeBufferPointer(rebasing: pool[Int(range.start)..<Int(range.start + range.count)])
                var slot = Finder.hash(key) & (capacity - 1)
                while slots[slot] >= 0 { slot = (slot + 1) & (capacity - 1) }
                slots[slot] = Int32(index)
            }
        }
        finder = Finder(
            pool: ownedBuffer(pool), ranges: ownedBuffer(ranges), slots: ownedBuffer(slots), mask: capacity - 1,
            rulePool: ownedBuffer(rulePool), ruleRanges: ownedBuffer(ruleRanges),
            hasWideKeys: pool.contains { $0 >= 0x80 },
            lengths: ranges.reduce(0) { $0 | Finder.lengthBit(Int($1.count)) })
    }

    deinit {
        finder.pool.deallocate()
        finder.ranges.deallocate()
        finder.slots.deallocate()
        finder.rulePool.deallocate()
        finder.ruleRanges.deallocate()
    }

    /// The rules listed under `text`, compared case-insensitively (keys are folded).
    func lookup(_ text: String) -> [Int]? {
        var text = text
        return text.withUTF8 { finder.lookup($0).map(Array.init) }
    }

    /// The table, read in place; valid while its `ExactTable` lives.
    struct Finder: @unchecked Sendable, BitwiseCopyable {
        // @unchecked: the buffers are never written after `ExactTable.init`.
        /// Every key's bytes, one after another; `ranges[i]` is key i's (start, count).
        let pool: UnsafeBufferPointer<UInt8>
        let ranges: UnsafeBufferPointer<(start: Int32, count: Int32)>
        /// Open addressing: an index into `ranges`, or -1.
        let slots: UnsafeBufferPointer<Int32>
        let mask: Int
        /// Key i's rules: `rulePool[ruleRanges[i]]`.
        let rulePool: UnsafeBufferPointer<Int>
        let ruleRanges: UnsafeBufferPointer<(start: Int32, count: Int32)>
        /// Whether some key has a byte outside ASCII (then such texts are lower-cased with
        /// Unicode's rules before the lookup; otherwise they cannot equal a key under ASCII folding).
        let hasWideKeys: Bool
        /// Bit n set when some key is n bytes long (bit 63: 63 or more), so that most texts are
        /// turned away before they are hashed.
        let lengths: UInt64

        @inline(__always)
        static func lengthBit(_ count: Int) -> UInt64 { 1 << UInt64(min(count, 63)) }

        /// The rules listed under `bytes` (which need not be valid UTF-8), compared case-insensitively.
        func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<Int>? {
            guard hasWideKeys, bytes.contains(where: { $0 >= 0x80 }) else {
                return lengths & Self.lengthBit(bytes.count) == 0 ? nil : find(bytes)
            }
            // Keys were lower-cased with Unicode's rules; so is such a text.
            var folded = StringPattern.lowercased(String(decoding: bytes, as: UTF8.self))
            return folded.withUTF8 { find($0) }
        }

        /// Same for text.
        func lookup(_ text: String) -> UnsafeBufferPointer<Int>? {
            var text = text
            return text.withUTF8 { lookup($0) }
        }

        @inline(__always)
        private func find(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<Int>? {
            var slot = Self.hash(bytes) & mask
            while true {
                let index = Int(slots[slot])
                if index < 0 { return nil }
                let range = ranges[index]
                if Int(range.count) == bytes.count {
                    var offset = 0
                    let start = Int(range.start)
                    while offset < bytes.count && StringPattern.fold(bytes[offset]) == pool[start &+ offset] { offset &+= 1 }
                    if offset == bytes.count {
                        let rules = ruleRanges[index]
                        return UnsafeBufferPointer(rebasing: rulePool[Int(rules.start)..<Int(rules.start + rules.count)])
                    }
                }
                slot = (slot + 1) & mask
            }
        }

        @inline(__always)
        static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(StringPattern.fold(byte))) &* 0x100_0000_01b3 }
            return Int(truncatingIfNeeded: hash ^ (hash >> 29))
        }
    }
}
