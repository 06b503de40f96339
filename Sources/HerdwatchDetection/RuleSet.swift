/// Compiled rules, routed: an event meets only the rules of the logsources it belongs to, and
/// within a logsource only the rules whose indexed field it can satisfy (process rules by the
/// executable's basename, auditd rules by record type and, for EXECVE, by `a0`).
public struct RuleSet: Sendable {
    public let rules: [SigmaRule]
    public let correlations: [CorrelationRule]
    /// For each rule, the correlations (and positions in them) that use it.
    let uses: [[(correlation: Int, position: Int)]]

    /// Rules of one route, indexed by one field's exact (folded) value.
    struct Bucket: Sendable {
        var indexed: [String: [Int]] = [:]
        var always: [Int] = []
        var field: FieldRef?
        var isEmpty: Bool { indexed.isEmpty && always.isEmpty }

        func candidates<S: DetectionSubject>(_ evaluation: Evaluation<S>, _ body: (Int) -> Void) {
            for index in always { body(index) }
            guard !indexed.isEmpty, let field, let value = evaluation.value(field) else { return }
            _ = value.forEach { text in
                if let list = indexed[field == .imageName ? text : StringPattern.lowercased(text)] {
                    for index in list { body(index) }
                }
                return false
            }
        }
    }

    var eventBuckets: [Route: Bucket] = [:]
    /// auditd rules by lower-cased record type; `anyRecord` for rules that can match any type.
    var recordBuckets: [String: Bucket] = [:]
    var anyRecord = Bucket()
    /// Routes by event action.
    var routesByAction: [String: [Route]] = [:]

    public init(rules: [SigmaRule], correlations: [CorrelationRule] = []) throws {
        var rules = rules
        var uses = Array(repeating: [(correlation: Int, position: Int)](), count: rules.count)
        var generating = Array(repeating: false, count: rules.count)
        var referenced = Array(repeating: false, count: rules.count)
        for (correlationIndex, correlation) in correlations.enumerated() {
            for (position, reference) in correlation.ruleReferences.enumerated() {
                let matches = rules.indices.filter { rules[$0].id == reference || rules[$0].name == reference }
                guard !matches.isEmpty else {
                    throw RuleError(
                        file: correlation.file, rule: correlation.title,
                        reason: "correlation refers to rule '\(reference)', which is not loaded")
                }
                for index in matches {
                    uses[index].append((correlationIndex, position))
                    referenced[index] = true
                    if correlation.generate { generating[index] = true }
                }
            }
            for field in correlation.groupBy + [correlation.countedField].compactMap({ $0 }) {
                for reference in correlation.ruleReferences {
                    guard let rule = rules.first(where: { $0.id == reference || $0.name == reference }) else { continue }
                    let name = correlation.aliases[field]?[reference] ?? field
                    do {
                        _ = try FieldMapping.field(name, route: rule.route)
                    } catch let error as FieldMapping.Unsupported {
                        throw RuleError(file: correlation.file, rule: correlation.title, reason: "group-by/field: \(error.description)")
                    }
                }
            }
        }
        for index in rules.indices where referenced[index] { rules[index].generatesAlerts = generating[index] }
        self.rules = rules
        self.correlations = correlations
        self.uses = uses

        for route in Route.allCases {
            for action in route.actions ?? [] { routesByAction[action, default: []].append(route) }
        }
        for (index, rule) in rules.enumerated() {
            if rule.route == .auditd {
                if let types = Self.necessaryValues(rule.condition, rule.selections, field: .record("type")) {
                    for type in types {
                        Self.add(index, rule, to: &recordBuckets[type, default: Bucket()], field: type == "execve" ? .record("a0") : nil)
                    }
                } else {
                    Self.add(index, rule, to: &anyRecord, field: nil)
                }
            } else {
                Self.add(index, rule, to: &eventBuckets[rule.route, default: Bucket()], field: rule.route == .processCreation ? .imageName : nil)
            }
        }
    }

    static func add(_ index: Int, _ rule: SigmaRule, to bucket: inout Bucket, field: FieldRef?) {
        if let field, let values = necessaryValues(rule.condition, rule.selections, field: field) {
            bucket.field = field
            for value in values { bucket.indexed[value, default: []].append(index) }
        } else {
            bucket.always.append(index)
        }
    }

    /// Values `field` must have (folded) for the condition to hold, or nil when no such set is known.
    static func necessaryValues(_ node: ConditionNode, _ selections: [Selection], field: FieldRef) -> Set<String>? {
        switch node {
        case .selection(let index):
            guard case .maps(let maps) = selections[index] else { return nil }
            var union = Set<String>()
            for map in maps {
                guard let values = necessaryValues(map, field: field) else { return nil }
                union.formUnion(values)
            }
            return union
        case .and(let nodes):
            return nodes.compactMap { necessaryValues($0, selections, field: field) }.min { $0.count < $1.count }
        case .or(let nodes):
            var union = Set<String>()
            for node in nodes {
                guard let values = necessaryValues(node, selections, field: field) else { return nil }
                union.formUnion(values)
            }
            return union
        case .not, .atLeast:
            return nil
        }
    }

    static func necessaryValues(_ map: [FieldTest], field: FieldRef) -> Set<String>? {
        let target: FieldRef = field == .imageName ? .ecs(.processExecutable) : field
        for test in map where test.field == target && !test.requiresAll {
            var values = Set<String>()
            for item in test.tests {
                guard case .pattern(let pattern) = item, !pattern.cased else { values = []; break }
                let literal = String(decoding: pattern.literal, as: UTF8.self)
                switch pattern.shape {
                case .equals where field != .imageName:
                    values.insert(literal)
                case .equals where literal.contains("/"), .suffix where literal.contains("/"):
                    values.insert(String(literal.split(separator: "/", omittingEmptySubsequences: false).last!))
                default:
                    values = []
                }
                if values.isEmpty { break }
            }
            if !values.isEmpty && !values.contains("") { return values }
        }
        return nil
    }

    /// The rules that match `subject`: (rule index, the audit record that matched for auditd rules).
    public func matches<S: DetectionSubject>(_ subject: S, into result: inout [(rule: Int, record: Int?)]) {
        let whole = Evaluation(subject: subject, record: nil)
        let action = subject.action
        func run(_ bucket: Bucket) {
            bucket.candidates(whole) { index in
                if whole.holds(rules[index].condition, rules[index].selections) { result.append((index, nil)) }
            }
        }
        if let routes = routesByAction[action] {
            for route in routes { if let bucket = eventBuckets[route] { run(bucket) } }
        }
        if let bucket = eventBuckets[.herdwatch] { run(bucket) }
        if let bucket = eventBuckets[.anyLog], subject.module == "auth-log" || subject.value(of: .message) != nil { run(bucket) }
        let records = subject.recordCount
        guard records > 0, !(recordBuckets.isEmpty && anyRecord.isEmpty) else { return }
        for record in 0..<records {
            let evaluation = Evaluation(subject: subject, record: record)
            let type = StringPattern.lowercased(subject.recordType(at: record))
            var seen = Set<Int>()
            func check(_ index: Int) {
                // One match per rule and event: the first record that satisfies it.
                guard !result.contains(where: { $0.rule == index }), seen.insert(index).inserted else { return }
                if evaluation.holds(rules[index].condition, rules[index].selections) { result.append((index, record)) }
            }
            if let bucket = recordBuckets[type] { bucket.candidates(evaluation, check) }
            anyRecord.candidates(evaluation, check)
        }
    }
}
