import HerdwatchAudit

/// Compiled rules, routed: an event meets only the rules of the logsources it belongs to, and
/// within a logsource only the rules whose indexed field it can satisfy (process rules by the
/// executable's basename, auditd rules by record type and, for EXECVE, by `a0`).
public struct RuleSet: Sendable {
    public let rules: [SigmaRule]
    public let correlations: [CorrelationRule]
    let program: Program
    /// For auditd rules: bits of raw record field names (`KeySignature`) one of which a record must
    /// have for the rule to hold there; 0 when nothing is known.
    let presenceMasks: [UInt64]
    /// For each rule, the correlations (and positions in them) that use it.
    let uses: [[(correlation: Int, position: Int)]]
    /// For each correlation, the correlations built on it.
    let correlationUses: [[(correlation: Int, position: Int)]]
    /// Whether a correlation raises its own alert (not when only another correlation uses it, unless
    /// that one says `generate: true`).
    let correlationGenerates: [Bool]

    /// Rules of one route, found through indexes where possible. A rule is indexed by what its
    /// condition needs: on every path through it, some field must have one of a few exact values
    /// (the executable's basename, a record's `a0`, `name`, `SYSCALL`) or contain one of a few
    /// literals (one shared scan of the command line). Each path may need a different field; the
    /// rule is then listed under each. Rules with a path that needs nothing indexable every event meets.
    // A class: an event reads its buckets from dictionaries, and copying a struct out would retain
    // each of its arrays.
    final class Bucket: @unchecked Sendable {
        // @unchecked: the entry buffers are written in `init` only.
        /// By the program's field index.
        let exact: UnsafeBufferPointer<ExactEntry>
        /// One literal index per field, for every anchor.
        let substrings: UnsafeBufferPointer<LiteralEntry>
        /// The tables and indexes the entries point at, kept alive here.
        private let owners: [any AnyObject & Sendable]

        // Entries hold plain views of their tables (owned by `owners`): walking a list of
        // references would retain and release each one, for every record of every event.
        struct ExactEntry: BitwiseCopyable {
            let field: Int32
            let isRecord: Bool
            let table: ExactTable.Finder
        }

        struct LiteralEntry: BitwiseCopyable {
            let field: Int32
            let isRecord: Bool
            let index: LiteralIndex.Scanner
        }
        let always: [Int]
        /// For record buckets: the signature bits (`KeySignature`) of the raw fields its indexes
        /// read, when every rule of it is indexed through raw fields; a record with none of them
        /// meets no rule here, which one bit test tells. 0 when that cannot be said.
        let recordMask: UInt64
        var isEmpty: Bool { exact.isEmpty && substrings.isEmpty && always.isEmpty }

        /// Whether record `record` of `subject` can meet a rule of this bucket.
        @inline(__always)
        func mayMatch<S: DetectionSubject>(_ subject: S, record: Int) -> Bool {
            recordMask == 0 || subject.recordKeySignature(at: record) & recordMask != 0
        }

        func candidates<S: DetectionSubject>(_ evaluation: Evaluation<S>, _ body: (Int) -> Void) {
            for index in always { body(index) }
            guard !exact.isEmpty || !substrings.isEmpty else { return }
            // The hits list is borrowed from the event's values for the whole call: appending to a
            // local array costs no exclusivity check per element.
            let values = evaluation.values
            var hits = values.takeHits()
            defer { values.returnHits(hits) }
            let program = evaluation.program
            for entry in exact {
                let field = entry.field
                if entry.isRecord {
                    guard let record = evaluation.record else { continue }
                    if let bytes = evaluation.subject.recordBytes(at: record, field: field, program: program),
                        let list = entry.table.lookup(bytes)
                    {
                        hits.append(contentsOf: list)
                    }
                    continue
                }
                guard let value = evaluation.value(at: field) else { continue }
                let table = entry.table
                _ = value.forEach { text in
                    if let list = table.lookup(text) { hits.append(contentsOf: list) }
                    return false
                }
            }
            for entry in substrings {
                if entry.isRecord {
                    guard let record = evaluation.record else { continue }
                    if let bytes = evaluation.subject.recordBytes(at: record, field: entry.field, program: program) {
                        entry.index.scan(bytes, into: &hits)
                    }
                    continue
                }
                guard let value = evaluation.value(at: entry.field) else { continue }
                let index = entry.index
                _ = value.forEach { text in
                    var text = text
                    text.withUTF8 { index.scan($0, into: &hits) }
                    return false
                }
            }
            switch hits.count {
            case 0: return
            case 1: return body(hits[0])
            default:
                // Each rule once, in rule order.
                hits.sort()
                var previous = -1
                for rule in hits where rule != previous {
                    body(rule)
                    previous = rule
                }
            }
        }

        /// `recordType`: the (folded) audit record type every event of this bucket has, so that
        /// selections for other types count as never holding.
        init(
            _ members: [Int], rules: [SigmaRule], program: Program, exactFields: [FieldRef], substringFields: [FieldRef],
            recordType: String? = nil
        ) {
            var tables: [FieldRef: [String: [Int]]] = [:]
            var literals: [FieldRef: [Anchor: [String: [Int]]]] = [:]
            var always: [Int] = []
            for index in members {
                let rule = rules[index]
                guard
                    let keys = RuleSet.indexKeys(
                        rule.condition, rule.selections, exactFields: exactFields, substringFields: substringFields,
                        recordType: recordType)
                else {
                    always.append(index)
                    continue
                }
                for key in keys {
                    if key.isLiteral {
                        literals[key.field, default: [:]][key.anchor, default: [:]][key.value, default: []].append(index)
                    } else {
                        tables[key.field, default: [:]][key.value, default: []].append(index)
                    }
                }
            }
            var owners: [any AnyObject & Sendable] = []
            exact = ownedBuffer(exactFields.compactMap { field in
                tables[field].map { entries in
                    let table = ExactTable(entries)
                    owners.append(table)
                    let index = program.fieldIndex[field]!
                    return ExactEntry(field: index, isRecord: program.levels[Int(index)] == .record, table: table.finder)
                }
            })
            self.always = always
            var mask: UInt64 = 0
            var masked = always.isEmpty
            for field in Set(tables.keys).union(literals.keys) {
                guard case .record = field else {
                    masked = false
                    continue
                }
                let info = program.recordKeyInfo[Int(program.fieldIndex[field]!)]
                if info.isDirect { mask |= info.bit } else { masked = false }
            }
            recordMask = masked ? mask : 0
            var substrings: [LiteralEntry] = []
            for field in substringFields {
                guard let byAnchor = literals[field] else { continue }
                var entries: [LiteralIndex.Literal] = []
                for anchor in Anchor.allCases {
                    for (text, rules) in (byAnchor[anchor] ?? [:]).sorted(by: { $0.key < $1.key }) {
                        entries.append(LiteralIndex.Literal(bytes: Array(text.utf8), anchor: anchor, rules: rules))
                    }
                }
                let index = LiteralIndex(literals: entries)
                owners.append(index)
                let fieldIndex = program.fieldIndex[field]!
                substrings.append(
                    LiteralEntry(field: fieldIndex, isRecord: program.levels[Int(fieldIndex)] == .record, index: index.scanner))
            }
            self.substrings = ownedBuffer(substrings)
            self.owners = owners
        }

        init() {
            exact = ownedBuffer([])
            substrings = ownedBuffer([])
            owners = []
            always = []
            recordMask = 0
        }

        deinit {
            exact.deallocate()
            substrings.deallocate()
        }
    }

    /// One indexable need: `field` equals `value` (folded), or contains it when `isLiteral` (at
    /// its start or end when `anchor` says so).
    struct IndexKey: Hashable {
        var field: FieldRef
        var value: String
        var isLiteral: Bool
        var anchor: Anchor = .anywhere
    }

    /// Where in a value a literal must be: a `startswith` literal at its start, an `endswith` one
    /// at its end. Only that end of a value is scanned for such literals, however long the value.
    enum Anchor: Hashable, CaseIterable, BitwiseCopyable {
        case anywhere, start, end
    }

    /// A literal a value must contain, and where.
    struct AnchoredLiteral: Hashable {
        var text: String
        var anchor: Anchor
    }

    /// Keys at least one of which holds whenever the condition does; nil when some path through the
    /// condition needs nothing indexable.
    static func indexKeys(
        _ node: ConditionNode, _ selections: [Selection], exactFields: [FieldRef], substringFields: [FieldRef], recordType: String?
    ) -> Set<IndexKey>? {
        let need = need(node, selections, recordType: recordType) { map in
            var best: Set<IndexKey>?
            for field in exactFields {
                if let values = necessaryValues(map, field: field) {
                    let keys = Set(values.map { IndexKey(field: field, value: $0, isLiteral: false) })
                    if best == nil || keyScore(keys) > keyScore(best!) { best = keys }
                }
            }
            for field in substringFields {
                if let values = necessaryLiterals(map, field: field) {
                    let keys = Set(values.map { IndexKey(field: field, value: $0.text, isLiteral: true, anchor: $0.anchor) })
                    if best == nil || keyScore(keys) > keyScore(best!) { best = keys }
                }
            }
            return best
        }
        if case .oneOf(let keys) = need { return keys }
        return nil
    }

    /// Exact values select better than literals; fewer and longer better than more and shorter.
    static func keyScore(_ keys: Set<IndexKey>) -> Double {
        let shortest = Double(keys.map(\.value.utf8.count).min() ?? 0)
        let literal = keys.contains { $0.isLiteral } ? 0.5 : 1
        return literal * min(shortest, 12) / Double(max(keys.count, 1)).squareRoot()
    }

    /// Fields whose exact values or literals index the rules of events and of records.
    static let processExactFields: [FieldRef] = [
        .imageName, .parentImageName, .ecs(.userName), .ecs(.filePath), .ecs(.destinationPort),
    ]
    static let processSubstringFields: [FieldRef] = [
        .keywordText, .ecs(.processCommandLine), .ecs(.filePath), .ecs(.message), .ecs(.processExecutable),
        .ecs(.parentCommandLine), .ecs(.destinationDomain),
    ]
    static let recordFields: [FieldRef] = ["a0", "a1", "name", "SYSCALL", "syscall", "exe", "comm", "key"].map { .record($0) }

    var eventBuckets: [Route: Bucket] = [:]
    /// auditd rules by lower-cased record type; `anyRecord` for rules that can match any type.
    var recordBuckets: [String: Bucket] = [:]
    var anyRecord = Bucket()
    /// `recordBuckets` by type number.
    var bucketsByNumber: [Bucket?] = []
    /// Routes by event action.
    var routesByAction: [String: [Route]] = [:]

    public init(rules: [SigmaRule], correlations: [CorrelationRule] = []) throws {
        var rules = rules
        var uses = Array(repeating: [(correlation: Int, position: Int)](), count: rules.count)
        var correlationUses = Array(repeating: [(correlation: Int, position: Int)](), count: correlations.count)
        var generating = Array(repeating: false, count: rules.count)
        var referenced = Array(repeating: false, count: rules.count)
        var correlationGenerates = Array(repeating: true, count: correlations.count)
        var correlationReferenced = Array(repeating: false, count: correlations.count)
        var correlationGenerating = Array(repeating: false, count: correlations.count)
        // A reference names a rule (by id or name) or another correlation.
        func baseRules(of reference: String, seen: Set<Int> = []) -> [SigmaRule] {
            let direct = rules.filter { $0.id == reference || $0.name == reference }
            if !direct.isEmpty { return direct }
            guard let inner = correlations.indices.first(where: { correlations[$0].id == reference || correlations[$0].name == reference }),
                !seen.contains(inner)
            else { return [] }
            return correlations[inner].ruleReferences.flatMap { baseRules(of: $0, seen: seen.union([inner])) }
        }
        for (correlationIndex, correlation) in correlations.enumerated() {
            for (position, reference) in correlation.ruleReferences.enumerated() {
                let matches = rules.indices.filter { rules[$0].id == reference || rules[$0].name == reference }
                let inner = correlations.indices.filter {
                    $0 != correlationIndex && (correlations[$0].id == reference || correlations[$0].name == reference)
                }
                guard !matches.isEmpty || !inner.isEmpty else {
                    throw RuleError(
                        file: correlation.file, line: correlation.line, rule: correlation.title,
                        reason: "correlation refers to rule '\(reference)', which is not loaded")
                }
                for index in matches {
                    uses[index].append((correlationIndex, position))
                    referenced[index] = true
                    if correlation.generate { generating[index] = true }
                }
                for index in inner {
                    correlationUses[index].append((correlationIndex, position))
                    correlationReferenced[index] = true
                    if correlation.generate { correlationGenerating[index] = true }
                }
            }
            for field in correlation.groupBy + [correlation.countedField].compactMap({ $0 }) {
                for reference in correlation.ruleReferences {
                    for rule in baseRules(of: reference) {
                        let name = correlation.aliases[field]?[reference] ?? correlation.aliases[field]?[rule.id] ?? field
                        do {
                            _ = try FieldMapping.field(name, route: rule.route)
                        } catch let error as FieldMapping.Unsupported {
                            throw RuleError(
                                file: correlation.file, line: correlation.line, rule: correlation.title,
                                reason: "group-by/field: \(error.description)")
                        }
                    }
                }
            }
        }
        for index in correlations.indices where correlationReferenced[index] {
            correlationGenerates[index] = correlationGenerating[index]
        }
        self.correlationUses = correlationUses
        self.correlationGenerates = correlationGenerates
        for index in rules.indices where referenced[index] { rules[index].generatesAlerts = generating[index] }
        self.rules = rules
        self.correlations = correlations
        program = Program(
            rules: rules, extraFields: Self.processExactFields + Self.processSubstringFields + Self.recordFields)
        presenceMasks = rules.map { rule in
            guard rule.route == .auditd else { return 0 }
            let keys: Set<String>? = Self.need(rule.condition, rule.selections, recordType: nil) { map in
                // A raw field a pattern (not null, not exists: false) is tested on must be there.
                for test in map {
                    guard case .record(let key) = test.field, RecordKeys.isRaw(key),
                        test.tests.allSatisfy({ if case .pattern = $0 { true } else if case .regex = $0 { true } else { false } })
                    else { continue }
                    return [key]
                }
                return nil
            }.set
            return keys.map { $0.reduce(0) { $0 | KeySignature.bit($1.utf8) } } ?? 0
        }
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
        // Record rules are indexed by any raw field they test, beside the usual ones.
        func recordFields(_ members: [Int]) -> [FieldRef] {
            var fields = Self.recordFields
            var seen = Set(fields)
            for index in members {
                for case .maps(let maps) in rules[index].selections {
                    for test in maps.joined() where test.field != .record("type") && !seen.contains(test.field) {
                        guard case .record = test.field else { continue }
                        seen.insert(test.field)
                        fields.append(test.field)
                    }
                }
            }
            return fields
        }
        for (route, members) in byRoute {
            eventBuckets[route] = Bucket(
                members, rules: rules, program: program, exactFields: Self.processExactFields,
                substringFields: Self.processSubstringFields)
        }
        for (type, members) in byType {
            let fields = recordFields(members)
            recordBuckets[type.uppercased()] = Bucket(
                members, rules: rules, program: program, exactFields: fields, substringFields: fields + [.keywordText],
                recordType: type)
        }
        for (name, bucket) in recordBuckets {
            guard let number = RecordTypes.number(ofName: ArraySlice(name.utf8)).map(Int.init) else { continue }
            if number >= bucketsByNumber.count { bucketsByNumber += Array(repeating: nil, count: number + 1 - bucketsByNumber.count) }
            bucketsByNumber[number] = bucket
        }
        let anyFields = recordFields(anyType)
        anyRecord = Bucket(anyType, rules: rules, program: program, exactFields: anyFields, substringFields: anyFields)
    }

    /// What a condition needs of one field: nothing known, one of these values (or literals), or
    /// it can never hold (every path goes through a selection for another record type).
    enum Need<Element: Hashable> {
        case unknown
        case oneOf(Set<Element>)
        case impossible

        var set: Set<Element>? {
            if case .oneOf(let values) = self { return values }
            return nil
        }
    }

    /// Values `field` must have (folded) for the condition to hold, or nil when no such set is known.
    static func necessaryValues(
        _ node: ConditionNode, _ selections: [Selection], field: FieldRef, recordType: String? = nil
    ) -> Set<String>? {
        need(node, selections, recordType: recordType) { necessaryValues($0, field: field) }.set
    }


    static func need<Element: Hashable>(
        _ node: ConditionNode, _ selections: [Selection], recordType: String?, _ ofMap: ([FieldTest]) -> Set<Element>?
    ) -> Need<Element> {
        switch node {
        case .selection(let index):
            if case .keywords(let tests, let requiresAll) = selections[index] {
                let map = [FieldTest(field: .keywordText, tests: tests, requiresAll: requiresAll)]
                return ofMap(map).map(Need.oneOf) ?? .unknown
            }
            guard case .maps(let maps) = selections[index] else { return .unknown }
            var union = Set<Element>()
            var possible = false
            for map in maps {
                if let recordType, excludes(map, recordType) { continue }
                possible = true
                guard let values = ofMap(map) else { return .unknown }
                union.formUnion(values)
            }
            return possible ? .oneOf(union) : .impossible
        case .and(let nodes):
            var best: Set<Element>?
            for node in nodes {
                switch need(node, selections, recordType: recordType, ofMap) {
                case .impossible: return .impossible
                case .oneOf(let values):
                    if best == nil || values.count < best!.count { best = values }
                case .unknown: break
                }
            }
            return best.map(Need.oneOf) ?? .unknown
        case .or(let nodes), .atLeast(1..., let nodes):
            // `1 of x*` (or more) needs one of them, as `or` does.
            var union = Set<Element>()
            var possible = false
            for node in nodes {
                switch need(node, selections, recordType: recordType, ofMap) {
                case .impossible: continue
                case .oneOf(let values):
                    possible = true
                    union.formUnion(values)
                case .unknown: return .unknown
                }
            }
            return possible ? .oneOf(union) : .impossible
        case .not, .atLeast:
            return .unknown
        }
    }

    /// Fewer, longer values select better.
    static func score(_ values: Set<String>) -> Double {
        Double(values.map(\.utf8.count).min() ?? 0) / Double(max(values.count, 1)).squareRoot()
    }

    /// Whether a map requires a record type other than `recordType`.
    static func excludes(_ map: [FieldTest], _ recordType: String) -> Bool {
        for test in map where test.field == .record("type") && !test.requiresAll {
            let types = test.tests.compactMap { item -> String? in
                if case .pattern(let pattern) = item { return pattern.equalityLiteral }
                return nil
            }
            if types.count == test.tests.count && !types.contains(recordType) { return true }
        }
        return false
    }

    static func necessaryValues(_ map: [FieldTest], field: FieldRef) -> Set<String>? {
        let target: FieldRef =
            switch field {
            case .imageName: .ecs(.processExecutable)
            case .parentImageName: .ecs(.parentExecutable)
            default: field
            }
        let basename = field == .imageName || field == .parentImageName
        for test in map where test.field == target && !test.requiresAll {
            var values = Set<String>()
            for item in test.tests {
                guard case .pattern(let pattern) = item, !pattern.cased else { values = []; break }
                let literal = String(decoding: pattern.literal, as: UTF8.self)
                switch pattern.shape {
                case .equals where !basename:
                    values.insert(literal)
                case .equals where literal.contains("/"), .suffix where literal.contains("/"):
                    guard basename else {
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

    static func necessaryLiterals(_ map: [FieldTest], field: FieldRef) -> Set<AnchoredLiteral>? {
        var best: Set<AnchoredLiteral>?
        for test in map where test.field == field {
            var literals: [AnchoredLiteral] = []
            for item in test.tests {
                guard case .pattern(let pattern) = item, !pattern.cased, pattern.literal.count >= 2 || isGlob(pattern) else {
                    literals = []
                    break
                }
                switch pattern.shape {
                case .equals, .prefix:
                    literals.append(AnchoredLiteral(text: String(decoding: pattern.literal, as: UTF8.self), anchor: .start))
                case .suffix:
                    literals.append(AnchoredLiteral(text: String(decoding: pattern.literal, as: UTF8.self), anchor: .end))
                case .contains:
                    literals.append(AnchoredLiteral(text: String(decoding: pattern.literal, as: UTF8.self), anchor: .anywhere))
                case .glob(let segments, _, _):
                    // The longest run of plain bytes between wildcards must occur.
                    var longest: [UInt8] = []
                    for segment in segments {
                        var run: [UInt8] = []
                        for token in segment + [.anyCharacter] {
                            if case .byte(let byte) = token {
                                run.append(byte)
                            } else {
                                if run.count > longest.count { longest = run }
                                run = []
                            }
                        }
                    }
                    if longest.count >= 3 {
                        literals.append(AnchoredLiteral(text: String(decoding: longest, as: UTF8.self), anchor: .anywhere))
                    } else {
                        literals = []
                    }
                default: literals = []
                }
                if literals.isEmpty { break }
            }
            guard !literals.isEmpty else { continue }
            // With |all every literal is needed: the longest one alone is enough to require.
            let set: Set<AnchoredLiteral> =
                test.requiresAll ? [literals.max { $0.text.utf8.count < $1.text.utf8.count }!] : Set(literals)
            if best == nil || score(Set(set.map(\.text))) > score(Set(best!.map(\.text))) { best = set }
        }
        return best
    }

    static func isGlob(_ pattern: StringPattern) -> Bool {
        if case .glob = pattern.shape { return true }
        return false
    }

    /// The rules that match `subject`: (rule index, the audit record that matched for auditd rules).
    public func matches<S: DetectionSubject>(_ subject: S, into result: inout [(rule: Int, record: Int?)]) {
        let values = EventValues()
        let whole = Evaluation(subject: subject, record: nil, program: program, values: values)
        let action = subject.action
        func run(_ bucket: Bucket) {
            bucket.candidates(whole) { index in
                if whole.holds(rule: index) { result.append((index, nil)) }
            }
        }
        let routes = routesByAction[action] ?? []
        for route in routes { if let bucket = eventBuckets[route] { run(bucket) } }
        let fromAuthLog = subject.module == "auth-log"
        // Every auth-log line is an auth event, whatever it says (keyword rules read its message).
        if fromAuthLog, !routes.contains(.auth), let bucket = eventBuckets[.auth] { run(bucket) }
        if let bucket = eventBuckets[.herdwatch] { run(bucket) }
        if let bucket = eventBuckets[.anyLog], fromAuthLog || subject.value(of: .message) != nil { run(bucket) }
        let records = subject.recordCount
        guard records > 0, !(recordBuckets.isEmpty && anyRecord.isEmpty) else { return }
        for record in 0..<records {
            let evaluation = Evaluation(subject: subject, record: record, program: program, values: values)
            func check(_ index: Int) {
                // One match per rule and event: the first record that satisfies it. (A bucket lists
                // a rule once; the type bucket and the any-type bucket never share one.)
                guard !result.contains(where: { $0.rule == index }) else { return }
                let mask = presenceMasks[index]
                if mask != 0 && subject.recordKeySignature(at: record) & mask == 0 { return }
                if evaluation.holds(rule: index) { result.append((index, record)) }
            }
            // By type number where the subject knows it; else by name as the kernel spells it.
            let number = Int(subject.recordTypeNumber(at: record))
            let bucket =
                number != 0
                ? (number < bucketsByNumber.count ? bucketsByNumber[number] : nil) : recordBuckets[subject.recordType(at: record)]
            if let bucket, bucket.mayMatch(subject, record: record) { bucket.candidates(evaluation, check) }
            if anyRecord.mayMatch(subject, record: record) { anyRecord.candidates(evaluation, check) }
        }
    }
}

extension RuleSet {
    /// How rules are routed: per logsource and record type, how many are indexed and how many every
    /// event of it meets (`herdwatch rules check --routing`).
    public var routing: [(String, indexed: Int, always: Int)] {
        var rows: [(String, indexed: Int, always: Int)] = []
        func count(_ bucket: Bucket) -> Int {
            var rules = Set(bucket.exact.flatMap { Array($0.table.rulePool) })
            for substring in bucket.substrings { rules.formUnion(substring.index.rulePool) }
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
