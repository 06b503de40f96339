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

/// `re` values: Swift's regex engine, compiled once. `Regex` is not Sendable; a compiled one is
/// immutable and only read.
final class RegexPattern: @unchecked Sendable {
    let source: String
    private let regex: Regex<AnyRegexOutput>

    init(_ source: String, ignoresCase: Bool, multiline: Bool, dotAll: Bool) throws {
        self.source = source
        var regex = try Regex(source)
        if ignoresCase { regex = regex.ignoresCase() }
        if multiline { regex = regex.anchorsMatchLineEndings() }
        if dotAll { regex = regex.dotMatchesNewlines() }
        self.regex = regex
    }

    func matches(_ text: String) -> Bool { (try? regex.firstMatch(in: text)) != nil }
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

/// Evaluates compiled rules against one subject: the whole event, or one of its audit records.
struct Evaluation<Subject: DetectionSubject> {
    let subject: Subject
    /// The audit record a `service: auditd` rule is looking at.
    let record: Int?

    func value(_ field: FieldRef) -> FieldValue? {
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
        case .imageName:
            guard case .string(let path)? = subject.value(of: .processExecutable) else { return nil }
            return .string(StringPattern.lowercased(String(path.split(separator: "/").last ?? "")))
        }
    }

    func holds(_ node: ConditionNode, _ selections: [Selection]) -> Bool {
        switch node {
        case .selection(let index): return holds(selections[index])
        case .and(let nodes):
            for node in nodes where !holds(node, selections) { return false }
            return true
        case .or(let nodes):
            for node in nodes where holds(node, selections) { return true }
            return false
        case .not(let node): return !holds(node, selections)
        case .atLeast(let count, let nodes):
            var held = 0
            for node in nodes where holds(node, selections) {
                held += 1
                if held >= count { return true }
            }
            return false
        }
    }

    func holds(_ selection: Selection) -> Bool {
        switch selection {
        case .maps(let maps):
            for map in maps where map.allSatisfy(holds) { return true }
            return false
        case .keywords(let tests, let requiresAll):
            let values = record.map { subject.recordValues(at: $0) } ?? subject.keywordValues
            if requiresAll {
                return tests.allSatisfy { test in values.contains { test.matches($0) } }
            }
            return tests.contains { test in values.contains { test.matches($0) } }
        }
    }

    func holds(_ test: FieldTest) -> Bool {
        let value = value(test.field)
        if test.requiresAll {
            for item in test.tests where !holds(item, value) { return false }
            return true
        }
        for item in test.tests where holds(item, value) { return true }
        return false
    }

    func holds(_ test: ValueTest, _ value: FieldValue?) -> Bool {
        switch test {
        case .null: return value?.isEmpty ?? true
        case .exists(let wanted): return (value != nil) == wanted
        case .fieldReference(let other, let cased):
            guard let value, let reference = self.value(other) else { return false }
            let wanted = cased ? reference.text : StringPattern.lowercased(reference.text)
            return value.forEach { (cased ? $0 : StringPattern.lowercased($0)) == wanted }
        default:
            guard let value else { return false }
            return value.forEach { test.matches($0) }
        }
    }
}
