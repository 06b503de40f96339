import CPCRE2
import Foundation

/// One test of a field's value.
enum ValueTest: Sendable {
    case pattern(StringPattern)
    case regex(RegexPattern)
    case cidr(CIDRBlock)
    case compare(Comparison, Double)
    /// `field: null`: absent or empty.
    case null
    /// `field|exists: true/false`.
    case exists(Bool)
    /// `field|fieldref: other`: equal to another field of the same event.
    case fieldReference(FieldRef, cased: Bool)

    enum Comparison: String, Sendable {
        case lt, lte, gt, gte
    }

    /// Whether the test holds for one text value.
    func matches(_ text: String) -> Bool {
        switch self {
        case .pattern(let pattern): pattern.matches(text)
        case .regex(let regex): regex.matches(text)
        case .cidr(let block): block.contains(text)
        case .compare(let comparison, let bound):
            Double(text).map { value in
                switch comparison {
                case .lt: value < bound
                case .lte: value <= bound
                case .gt: value > bound
                case .gte: value >= bound
                }
            } ?? false
        case .null, .exists, .fieldReference: false
        }
    }
}

/// A field and the values it is compared with: any of them (or all, with `|all`).
struct FieldTest: Sendable {
    var field: FieldRef
    var tests: [ValueTest]
    var requiresAll: Bool
}

/// A detection item: a map (every field test holds), a list of maps (any map holds), or keywords.
enum Selection: Sendable {
    case maps([[FieldTest]])
    case keywords([ValueTest], requiresAll: Bool)
}

/// `re` values: PCRE2 (the regex dialect Sigma rules are written in), compiled once and JIT-compiled
/// where the platform allows. A compiled pattern is immutable; each match gets its own match data,
/// so one pattern serves any number of threads.
final class RegexPattern: @unchecked Sendable {
    let source: String
    private let code: OpaquePointer

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(_ source: String, ignoresCase: Bool, multiline: Bool, dotAll: Bool) throws {
        self.source = source
        var options = UInt32(PCRE2_UTF) | UInt32(PCRE2_UCP)
        if ignoresCase { options |= UInt32(PCRE2_CASELESS) }
        if multiline { options |= UInt32(PCRE2_MULTILINE) }
        if dotAll { options |= UInt32(PCRE2_DOTALL) }
        var errorCode: Int32 = 0
        var errorOffset = 0
        let compiled = source.utf8CString.withUnsafeBufferPointer { pattern in
            pattern.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: pattern.count) {
                pcre2_compile_8($0, pattern.count - 1, options, &errorCode, &errorOffset, nil)
            }
        }
        guard let compiled else {
            var message = [UInt8](repeating: 0, count: 256)
            let length = pcre2_get_error_message_8(errorCode, &message, message.count)
            let text = length > 0 ? String(decoding: message.prefix(Int(length)), as: UTF8.self) : "error \(errorCode)"
            throw Failure(description: "\(text) at offset \(errorOffset)")
        }
        _ = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE))
        code = compiled
    }

    deinit { pcre2_code_free_8(code) }

    func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let data = pcre2_match_data_create_from_pattern_8(code, nil) else { return false }
            defer { pcre2_match_data_free_8(data) }
            let empty: UInt8 = 0
            return withUnsafePointer(to: empty) { fallback in
                pcre2_match_8(code, bytes.baseAddress ?? fallback, bytes.count, 0, UInt32(PCRE2_NO_UTF_CHECK), data, nil) >= 0
            }
        }
    }
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `fe80::/10`).
struct CIDRBlock: Sendable {
    let network: [UInt8]
    let prefix: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let address = Self.parse(String(parts[0])) else { return nil }
        let bits = parts.count == 2 ? Int(parts[1]) : address.count * 8
        guard let bits, bits >= 0, bits <= address.count * 8 else { return nil }
        network = address
        prefix = bits
    }

    func contains(_ text: String) -> Bool {
        guard let address = Self.parse(text), address.count == network.count else { return false }
        var remaining = prefix
        for index in 0..<address.count where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if address[index] & mask != network[index] & mask { return false }
            remaining -= take
        }
        return true
    }

    static func parse(_ text: String) -> [UInt8]? {
        var storage = in6_addr()
        if text.contains(":") {
            guard inet_pton(AF_INET6, text, &storage) == 1 else { return nil }
            return withUnsafeBytes(of: storage) { Array($0) }
        }
        var v4 = in_addr()
        guard inet_pton(AF_INET, text, &v4) == 1 else { return nil }
        return withUnsafeBytes(of: v4) { Array($0) }
    }
}

/// One event's field values, each looked up once: every rule and index that reads a field of the
/// event (the command line, the executable's basename, ...) shares the first lookup.
final class EventValues {
    /// The fields looked up so far (a handful per event: a short list costs less to search, fill
    /// and free than a slot for every field of the program).
    private var known: [(field: Int32, value: FieldValue?)] = []
    /// Rule candidates found through indexes, reused from bucket to bucket (`takeHits`).
    private var hits: [Int] = []

    /// The (empty) candidates list, to fill and give back with `returnHits`; its storage is kept.
    @inline(__always)
    func takeHits() -> [Int] {
        var taken: [Int] = []
        swap(&taken, &hits)
        taken.removeAll(keepingCapacity: true)
        return taken
    }

    @inline(__always)
    func returnHits(_ list: [Int]) { hits = list }

    @inline(__always)
    func value(_ field: Int32, _ compute: () -> FieldValue?) -> FieldValue? {
        for entry in known where entry.field == field { return entry.value }
        let value = compute()
        known.append((field, value))
        return value
    }
}

/// Evaluates compiled rules against one subject: the whole event, or one of its audit records.
struct Evaluation<Subject: DetectionSubject> {
    let subject: Subject
    /// The audit record a `service: auditd` rule is looking at.
    let record: Int?
    let program: Program
    let values: EventValues

    init(subject: Subject, record: Int?, program: Program, values: EventValues) {
        self.subject = subject
        self.record = record
        self.program = program
        self.values = values
    }

    init(subject: Subject, record: Int?, program: Program) {
        self.init(subject: subject, record: record, program: program, values: EventValues())
    }

    /// The value of the program's field `index`.
    @inline(__always)
    func value(at index: Int32) -> FieldValue? {
        let position = Int(index)
        switch program.levels[position] {
        case .record:
            guard let record else { return nil }
            return subject.recordValue(at: record, key: program.recordKeys[position])
        case .keywords:
            if let record { return .strings(subject.recordValues(at: record)) }
        case .event:
            break
        }
        return values.value(index) { compute(program.fields[position]) }
    }

    func value(_ field: FieldRef) -> FieldValue? {
        if let index = program.fieldIndex[field] { return value(at: index) }
        return compute(field)
    }

    private func compute(_ field: FieldRef) -> FieldValue? {
        switch field {
        case .ecs(let ecs): return subject.value(of: ecs)
        case .record(let key):
            guard let record else { return nil }
            return subject.recordValue(at: record, key: key)
        case .initiated:
            switch subject.action {
            case "network-connected": return .string("true")
            case "network-accepted": return .string("false")
            default: return nil
            }
        case .keywordText:
            return .strings(keywordValues)
        case .imageName, .parentImageName:
            guard case .string(let path)? = subject.value(of: field == .imageName ? .processExecutable : .parentExecutable) else {
                return nil
            }
            let utf8 = path.utf8
            let start = utf8.lastIndex(of: UInt8(ascii: "/")).map { utf8.index(after: $0) } ?? utf8.startIndex
            return .string(StringPattern.lowercased(String(path[start...])))
        }
    }

    /// What keyword searches read: the record's values, or the event's own text.
    var keywordValues: [String] { record.map { subject.recordValues(at: $0) } ?? subject.keywordValues }

    /// Whether rule `index`'s condition holds.
    func holds(rule index: Int) -> Bool { holds(node: program.roots[index]) }

    func holds(node index: Int32) -> Bool {
        let node = program.nodes[Int(index)]
        switch node.kind {
        case .selection:
            return holds(selection: node.value)
        case .and:
            for offset in 0..<node.count where !holds(node: program.children[Int(node.start + offset)]) { return false }
            return true
        case .or:
            for offset in 0..<node.count where holds(node: program.children[Int(node.start + offset)]) { return true }
            return false
        case .not:
            return !holds(node: program.children[Int(node.start)])
        case .atLeast:
            var held: Int32 = 0
            for offset in 0..<node.count where holds(node: program.children[Int(node.start + offset)]) {
                held += 1
                if held >= node.value { return true }
            }
            return false
        }
    }

    func holds(selection index: Int32) -> Bool {
        let code = program.selections[Int(index)]
        if code.isKeywords {
            let values: [String] = if case .strings(let list)? = value(at: program.keywordField) { list } else { [] }
            for offset in 0..<code.count {
                let test = program.tests[Int(code.start + offset)]
                var found = false
                for value in values where holds(test, text: value) {
                    found = true
                    break
                }
                if found && !code.requiresAll { return true }
                if !found && code.requiresAll { return false }
            }
            return code.requiresAll
        }
        for offset in 0..<code.count {
            let map = program.maps[Int(code.start + offset)]
            var all = true
            for test in 0..<map.count where !holds(fieldTest: program.fieldTests[Int(map.start + test)]) {
                all = false
                break
            }
            if all { return true }
        }
        return false
    }

    func holds(fieldTest code: FieldTestCode) -> Bool {
        if code.bytewise, program.levels[Int(code.field)] == .record {
            guard let record else { return false }
            guard let bytes = subject.recordBytes(at: record, field: code.field, program: program) else { return false }
            for offset in 0..<code.count {
                let held = program.matches(program.tests[Int(code.start + offset)], bytes)
                if held && !code.requiresAll { return true }
                if !held && code.requiresAll { return false }
            }
            return code.requiresAll
        }
        let value = value(at: code.field)
        for offset in 0..<code.count {
            let held = holds(program.tests[Int(code.start + offset)], value)
            if held && !code.requiresAll { return true }
            if !held && code.requiresAll { return false }
        }
        return code.requiresAll
    }

    typealias FieldTestCode = Program.FieldTestCode

    func holds(_ test: Program.TestCode, _ value: FieldValue?) -> Bool {
        switch test.kind {
        case .null: return value?.isEmpty ?? true
        case .existsTrue: return value != nil
        case .existsFalse: return value == nil
        case .other:
            let other = program.others[Int(test.start)]
            if case .fieldReference(let reference, let cased) = other {
                guard let value, let wanted = self.value(reference) else { return false }
                let target = cased ? wanted.text : StringPattern.lowercased(wanted.text)
                return value.forEach { (cased ? $0 : StringPattern.lowercased($0)) == target }
            }
            guard let value else { return false }
            return value.forEach { other.matches($0) }
        default:
            guard let value else { return false }
            switch value {
            case .string(let text): return holds(test, text: text)
            default: return value.forEach { holds(test, text: $0) }
            }
        }
    }

    @inline(__always)
    func holds(_ test: Program.TestCode, text: String) -> Bool {
        if test.kind == .other { return program.others[Int(test.start)].matches(text) }
        var text = text
        return text.withUTF8 { program.matches(test, $0) }
    }
}
