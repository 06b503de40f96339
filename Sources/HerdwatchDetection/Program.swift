/// Every rule of a rule set lowered into flat arrays of plain values: evaluating walks indices and
/// compares bytes from one literal pool, and never copies a reference-counted payload (enum cases
/// holding arrays and strings cost a retain and a release at every step of a tree walk).
/// Public only as a type subjects receive (`recordBytes`): its members are internal.
public final class Program: @unchecked Sendable {
    // @unchecked: every property is written in `init` only.

    struct Node {
        enum Kind: UInt8 { case selection, and, or, not, atLeast }
        var kind: Kind
        /// selection: its index; atLeast: the count.
        var value: Int32
        /// Children: a range of `children`.
        var start: Int32
        var count: Int32
    }

    struct SelectionCode {
        var isKeywords: Bool
        var requiresAll: Bool
        /// Maps: a range of `maps`; keywords: a range of `tests`.
        var start: Int32
        var count: Int32
    }

    struct FieldTestCode {
        var field: Int32
        var requiresAll: Bool
        /// Every test compares plain bytes (equals, prefix, suffix, contains, anything): a record
        /// field can be tested where it lies, without a `String`.
        var bytewise: Bool
        /// A range of `tests`.
        var start: Int32
        var count: Int32
    }

    struct TestCode {
        enum Kind: UInt8 { case equals, prefix, suffix, contains, anything, other, null, existsTrue, existsFalse }
        var kind: Kind
        var cased: Bool
        /// equals…contains: a range of `pool`; other: an index into `others`.
        var start: Int32
        var count: Int32
    }

    // The arrays a rule walk reads are plain buffers owned by the program: reading an array
    // property of a class retains and releases its storage at every step.
    let nodes: UnsafeBufferPointer<Node>
    let children: UnsafeBufferPointer<Int32>
    let selections: UnsafeBufferPointer<SelectionCode>
    /// Ranges of `fieldTests`, one per map.
    let maps: UnsafeBufferPointer<(start: Int32, count: Int32)>
    let fieldTests: UnsafeBufferPointer<FieldTestCode>
    let tests: UnsafeBufferPointer<TestCode>
    let fields: [FieldRef]
    /// Per field: where its value comes from, and for record fields the key (copying a `FieldRef`
    /// to read it would retain its string at every test).
    let levels: UnsafeBufferPointer<FieldLevel>
    let recordKeys: [String]
    let recordKeyInfo: UnsafeBufferPointer<RecordKey>
    /// Field indexes by reference, rules' fields and the indexes' alike.
    let fieldIndex: [FieldRef: Int32]
    /// The index of `.keywordText`.
    let keywordField: Int32
    let others: [ValueTest]
    let pool: UnsafeMutableBufferPointer<UInt8>
    /// Each rule's condition.
    let roots: UnsafeBufferPointer<Int32>

    enum FieldLevel: UInt8 {
        /// One value per event: looked up once and kept for every rule and index that reads it.
        case event
        /// A raw record field: one value per audit record.
        case record
        /// Keyword text: the record's values on a record, the event's text on the whole event.
        case keywords
    }

    /// `extraFields`: fields the indexes read that rules may not (basenames, keyword text).
    init(rules: [SigmaRule], extraFields: [FieldRef] = []) {
        var builder = Builder()
        builder.add(rules)
        for field in extraFields { _ = builder.field(field) }
        keywordField = builder.field(.keywordText)
        nodes = ownedBuffer(builder.nodes)
        children = ownedBuffer(builder.children)
        selections = ownedBuffer(builder.selections)
        maps = ownedBuffer(builder.maps)
        fieldTests = ownedBuffer(builder.fieldTests)
        tests = ownedBuffer(builder.tests)
        fields = builder.fields
        fieldIndex = builder.fieldIndex
        levels = ownedBuffer(
            builder.fields.map { field in
                switch field {
                case .record: .record
                case .keywordText: .keywords
                case .ecs, .initiated, .imageName, .parentImageName: .event
                }
            })
        recordKeys = builder.fields.map { if case .record(let key) = $0 { key } else { "" } }
        recordKeyInfo = ownedBuffer(recordKeys.map(RecordKey.init))
        others = builder.others
        roots = ownedBuffer(builder.roots)
        pool = .allocate(capacity: max(builder.bytes.count, 1))
        _ = pool.initialize(from: builder.bytes)
    }

    deinit {
        pool.deallocate()
        nodes.deallocate()
        children.deallocate()
        selections.deallocate()
        maps.deallocate()
        fieldTests.deallocate()
        tests.deallocate()
        levels.deallocate()
        recordKeyInfo.deallocate()
        roots.deallocate()
    }

    private struct Builder {
        var nodes: [Node] = []
        var children: [Int32] = []
        var selections: [SelectionCode] = []
        var maps: [(start: Int32, count: Int32)] = []
        var fieldTests: [FieldTestCode] = []
        var tests: [TestCode] = []
        var fields: [FieldRef] = []
        var others: [ValueTest] = []
        var roots: [Int32] = []
        var bytes: [UInt8] = []
        var fieldIndex: [FieldRef: Int32] = [:]

    mutating func field(_ ref: FieldRef) -> Int32 {
        if let index = fieldIndex[ref] { return index }
        fields.append(ref)
        fieldIndex[ref] = Int32(fields.count - 1)
        return Int32(fields.count - 1)
    }

    mutating func add(_ rules: [SigmaRule]) {
        func test(_ value: ValueTest) -> TestCode {
            switch value {
            case .pattern(let pattern):
                let kind: TestCode.Kind
                switch pattern.shape {
                case .equals: kind = .equals
                case .prefix: kind = .prefix
                case .suffix: kind = .suffix
                case .contains: kind = .contains
                case .anything: kind = .anything
                case .glob:
                    others.append(value)
                    return TestCode(kind: .other, cased: pattern.cased, start: Int32(others.count - 1), count: 0)
                }
                let start = Int32(bytes.count)
                bytes += pattern.literal
                return TestCode(kind: kind, cased: pattern.cased, start: start, count: Int32(pattern.literal.count))
            case .null: return TestCode(kind: .null, cased: false, start: 0, count: 0)
            case .exists(let wanted): return TestCode(kind: wanted ? .existsTrue : .existsFalse, cased: false, start: 0, count: 0)
            default:
                others.append(value)
                return TestCode(kind: .other, cased: false, start: Int32(others.count - 1), count: 0)
            }
        }
        for rule in rules {
            let base = Int32(selections.count)
            for selection in rule.selections {
                switch selection {
                case .keywords(let values, let requiresAll):
                    let start = Int32(tests.count)
                    for value in values { tests.append(test(value)) }
                    selections.append(SelectionCode(isKeywords: true, requiresAll: requiresAll, start: start, count: Int32(values.count)))
                case .maps(let list):
                    // Field tests are laid out first, then their maps.
                    var ranges: [(Int32, Int32)] = []
                    for map in list {
                        let mapStart = Int32(fieldTests.count)
                        var codes: [FieldTestCode] = []
                        for item in map {
                            let start = Int32(tests.count)
                            for value in item.tests { tests.append(test(value)) }
                            let bytewise = tests[Int(start)...].allSatisfy { $0.kind.rawValue <= TestCode.Kind.anything.rawValue }
                            codes.append(
                                FieldTestCode(
                                    field: field(item.field), requiresAll: item.requiresAll, bytewise: bytewise && !item.tests.isEmpty,
                                    start: start, count: Int32(item.tests.count)))
                        }
                        fieldTests += codes
                        ranges.append((mapStart, Int32(map.count)))
                    }
                    let start = Int32(maps.count)
                    maps += ranges.map { (start: $0.0, count: $0.1) }
                    selections.append(SelectionCode(isKeywords: false, requiresAll: false, start: start, count: Int32(ranges.count)))
                }
            }
            roots.append(lower(rule.condition, base: base))
        }
    }

    private mutating func lower(_ node: ConditionNode, base: Int32) -> Int32 {
        func add(_ kind: Node.Kind, value: Int32, _ list: [ConditionNode]) -> Int32 {
            let lowered = list.map { lower($0, base: base) }
            let start = Int32(children.count)
            children += lowered
            nodes.append(Node(kind: kind, value: value, start: start, count: Int32(lowered.count)))
            return Int32(nodes.count - 1)
        }
        switch node {
        case .selection(let index):
            nodes.append(Node(kind: .selection, value: base + Int32(index), start: 0, count: 0))
            return Int32(nodes.count - 1)
        case .and(let list): return add(.and, value: 0, list)
        case .or(let list): return add(.or, value: 0, list)
        case .not(let inner): return add(.not, value: 0, [inner])
        case .atLeast(let count, let list): return add(.atLeast, value: Int32(count), list)
        }
    }
    }

    /// Whether a plain test holds for `text`.
    @inline(__always)
    func matches(_ code: TestCode, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        let literal = UnsafeBufferPointer(rebasing: pool[Int(code.start)..<Int(code.start + code.count)])
        switch code.kind {
        case .equals: return text.count == literal.count && Self.equal(text, 0, literal, code.cased)
        case .prefix: return text.count >= literal.count && Self.equal(text, 0, literal, code.cased)
        case .suffix: return text.count >= literal.count && Self.equal(text, text.count - literal.count, literal, code.cased)
        case .contains: return Self.contains(text, literal, code.cased)
        case .anything: return true
        default: return false
        }
    }

    @inline(__always)
    static func equal(_ text: UnsafeBufferPointer<UInt8>, _ offset: Int, _ literal: UnsafeBufferPointer<UInt8>, _ cased: Bool) -> Bool {
        var index = 0
        if cased {
            while index < literal.count {
                if text[offset &+ index] != literal[index] { return false }
                index &+= 1
            }
        } else {
            while index < literal.count {
                if StringPattern.fold(text[offset &+ index]) != literal[index] { return false }
                index &+= 1
            }
        }
        return true
    }

    static func contains(_ text: UnsafeBufferPointer<UInt8>, _ literal: UnsafeBufferPointer<UInt8>, _ cased: Bool) -> Bool {
        guard let first = literal.first else { return true }
        guard text.count >= literal.count else { return false }
        let last = text.count - literal.count
        var offset = 0
        while offset <= last {
            let byte = cased ? text[offset] : StringPattern.fold(text[offset])
            if byte == first && equal(text, offset, literal, cased) { return true }
            offset &+= 1
        }
        return false
    }
}

/// A new buffer holding `elements` (plain values), for a class to read without retaining an
/// array's storage at each access; the class frees it in its `deinit`.
func ownedBuffer<Element: BitwiseCopyable>(_ elements: [Element]) -> UnsafeBufferPointer<Element> {
    let buffer = UnsafeMutableBufferPointer<Element>.allocate(capacity: max(elements.count, 1))
    _ = buffer.initialize(from: elements)
    return UnsafeBufferPointer(rebasing: buffer[0..<elements.count])
}
