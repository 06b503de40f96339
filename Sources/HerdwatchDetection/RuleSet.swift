/// Compiled rules, routed: an event meets only the rules of the logsources it belongs to, and
/// within a logsource only the rules whose indexed field it can satisfy (process rules by the
/// executable's basename, auditd rules by record type and, for EXECVE, by `a0`).
public struct RuleSet: Sendable {
    public let rules: [SigmaRule]
    public let correlations: [CorrelationRule]
    /// For each rule, the correlations (and positions in them) that use it.
    let uses: [[(correlation: Int, position: Int)]]

    /// Rules of one route, found through indexes where possible: exact values of a field (the
    /// executable's basename, a record's `a0`, `name`, `SYSCALL`), literals one of which must occur
    /// in a field (one shared scan of the command line), and the rest, which every event meets.
    struct Bucket: Sendable {
        var exact: [(field: FieldRef, table: [String: [Int]])] = []
        var substring: (field: FieldRef, index: LiteralIndex, rules: [[Int]])?
        var always: [Int] = []
        var isEmpty: Bool { exact.isEmpty && substring == nil && always.isEmpty }

        func candidates<S: DetectionSubject>(_ evaluation: Evaluation<S>, _ body: (Int) -> Void) {
            for index in always { body(index) }
            for (field, table) in exact {
                guard let value = evaluation.value(field) else { continue }
                _ = value.forEach { text in
                    if let list = table[field == .imageName ? text : StringPattern.lowercased(text)] {
                        for index in list { body(index) }
                    }
                    return false
                }
            }
            if let (field, index, rules) = substring, let value = evaluation.value(field) {
                var hits: [Int] = []
                _ = value.forEach { text in
                    index.scan(text) { literal in hits.append(contentsOf: rules[literal]) }
                    return false
                }
                guard !hits.isEmpty else { return }
                hits.sort()
                var previous = -1
                for rule in hits where rule != previous {
                    body(rule)
                    previous = rule
                }
            }
        }

        /// Indexes `members` (rule indices) by the fields that cover most of them.
        init(_ members: [Int], rules: [SigmaRule], exactFields: [FieldRef], substringFields: [FieldRef]) {
            var remaining = members
            while !remaining.isEmpty {
                var best: (field: FieldRef, covered: [(Int, Set<String>)])?
                for field in exactFields where !exact.contains(where: { $0.field == field }) {
                    let covered = remaining.compactMap { index in
                        RuleSet.necessaryValues(rules[index].condition, rules[index].selections, field: field).map { (index, $0) }
                    }
                    if covered.count > (best?.covered.count ?? 1) { best = (field, covered) }
                }
                guard let best else { break }
                var table: [String: [Int]] = [:]
                for (index, values) in best.covered { for value in values { table[value, default: []].append(index) } }
                exact.append((best.field, table))
                let done = Set(best.covered.map(\.0))
                remaining.removeAll { done.contains($0) }
            }
            var bestSubstring: (field: FieldRef, covered: [(Int, Set<String>)])?
            for field in substringFields {
                let covered = remaining.compactMap { index in
                    RuleSet.necessaryLiterals(rules[index].condition, rules[index].selections, field: field).map { (index, $0) }
                }
                if covered.count > (bestSubstring?.covered.count ?? 1) { bestSubstring = (field, covered) }
            }
            if let (field, covered) = bestSubstring {
                var literals: [[UInt8]] = []
                var owners: [[Int]] = []
                var ids: [String: Int] = [:]
                for (index, set) in covered {
                    for literal in set {
                        if let id = ids[literal] {
                            owners[id].append(index)
                        } else {
                            ids[literal] = literals.count
                            literals.append(Array(literal.utf8))
                            owners.append([index])
                        }
                    }
                }
                substring = (field, LiteralIndex(literals: literals), owners)
                let done = Set(covered.map(\.0))
                remaining.removeAll { done.contains($0) }
            }
            always = remaining
        }

        init() {}
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
        var byRoute: [Route: [Int]] = [:]
        var byType: [String: [Int]] = [:]
        var anyType: [Int] = []
        for (index, rule) in rules.enumerated() {
            if rule.route == .auditd {
                if let types = Self.necessaryValues(rule.condition, rule.selections, field: .record("type")) {
                    for type in types { byType[type, default: []].append(index) }
                } else {
                    anyType.append(index)
                }
            } else {
                byRoute[rule.route, default: []].append(index)
            }
        }
        let processFields: [FieldRef] = [.imageName, .ecs(.parentExecutable), .ecs(.userName)]
        let recordFields: [FieldRef] = ["a0", "a1", "name", "SYSCALL", "syscall", "exe", "comm", "key"].map { .record($0) }
        for (route, members) in byRoute {
            eventBuckets[route] = Bucket(
                members, rules: rules, exactFields: processFields + [.ecs(.filePath), .ecs(.destinationPort)],
                substringFields: [.ecs(.processCommandLine), .ecs(.filePath), .ecs(.message), .ecs(.processExecutable)])
        }
        for (type, members) in byType {
            recordBuckets[type] = Bucket(members, rules: rules, exactFields: recordFields, substringFields: recordFields)
        }
        anyRecord = Bucket(anyType, rules: rules, exactFields: recordFields, substringFields: recordFields)
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
                    guard field == .imageName else {
                        values = []
                        break
                    }
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

    /// Literals (folded) one of which must occur in `field` for the condition to hold.
    static func necessaryLiterals(_ node: ConditionNode, _ selections: [Selection], field: FieldRef) -> Set<String>? {
        switch node {
        case .selection(let index):
            guard case .maps(let maps) = selections[index] else { return nil }
            var union = Set<String>()
            for map in maps {
                guard let literals = necessaryLiterals(map, field: field) else { return nil }
                union.formUnion(literals)
            }
            return union
        case .and(let nodes):
            // The set whose shortest literal is longest: the most selective.
            return nodes.compactMap { necessaryLiterals($0, selections, field: field) }
                .max { ($0.map(\.utf8.count).min() ?? 0) < ($1.map(\.utf8.count).min() ?? 0) }
        case .or(let nodes):
            var union = Set<String>()
            for node in nodes {
                guard let literals = necessaryLiterals(node, selections, field: field) else { return nil }
                union.formUnion(literals)
            }
            return union
        case .not, .atLeast:
            return nil
        }
    }

    static func necessaryLiterals(_ map: [FieldTest], field: FieldRef) -> Set<String>? {
        var best: Set<String>?
        for test in map where test.field == field {
            var literals: [String] = []
            for item in test.tests {
                guard case .pattern(let pattern) = item, !pattern.cased, pattern.literal.count >= 2 else {
                    literals = []
                    break
                }
                switch pattern.shape {
                case .equals, .prefix, .suffix, .contains: literals.append(String(decoding: pattern.literal, as: UTF8.self))
                default: literals = []
                }
                if literals.isEmpty { break }
            }
            guard !literals.isEmpty else { continue }
            // With |all every literal is needed: the longest one alone is enough to require.
            let set: Set<String> = test.requiresAll ? [literals.max { $0.utf8.count < $1.utf8.count }!] : Set(literals)
            if best == nil || (set.map(\.utf8.count).min()! > best!.map(\.utf8.count).min()!) { best = set }
        }
        return best
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

extension RuleSet {
    /// How rules are routed: per logsource and record type, how many are indexed and how many every
    /// event of it meets (`herdwatch rules check --routing`).
    public var routing: [(String, indexed: Int, always: Int)] {
        var rows: [(String, indexed: Int, always: Int)] = []
        func count(_ bucket: Bucket) -> Int {
            var rules = Set(bucket.exact.flatMap { $0.table.values.joined() })
            if let substring = bucket.substring { rules.formUnion(substring.rules.joined()) }
            return rules.count
        }
        for (route, bucket) in eventBuckets.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            rows.append((route.rawValue, count(bucket), bucket.always.count))
        }
        for (type, bucket) in recordBuckets.sorted(by: { $0.key < $1.key }) {
            rows.append(("auditd record \(type)", count(bucket), bucket.always.count))
        }
        rows.append(("auditd any record", count(anyRecord), anyRecord.always.count))
        return rows
    }
}
