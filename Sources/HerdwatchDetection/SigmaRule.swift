import Foundation
import Yams

/// Sigma's severity levels, in order.
import HerdwatchEvents

public enum RuleLevel: String, Sendable, Comparable, CaseIterable {
    case informational, low, medium, high, critical

    var order: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.order < rhs.order }
}

/// A rule that could not be loaded: which file, where in it, and why.
public struct RuleError: Error, Sendable, CustomStringConvertible, Hashable {
    public var file: String
    public var line: Int?
    /// The rule's title or id, when the document got that far.
    public var rule: String?
    public var reason: String

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if let rule { text += " (\(rule))" }
        return text + ": " + reason
    }
}

/// A compiled Sigma detection rule.
public struct SigmaRule: Sendable {
    public var id: String
    /// Sigma's `name`, by which correlations may refer to it.
    public var name: String?
    public var title: String
    public var level: RuleLevel
    public var status: String?
    public var description: String?
    public var tags: [String]
    public var references: [String]
    public var file: String
    public var route: Route
    /// Set when the rule loads but may never see an event here (a log nothing collects).
    public var warning: String?
    /// False for rules only a correlation uses (Sigma's `generate`): they match but raise no alert.
    public var generatesAlerts = true
    var selections: [Selection]
    var condition: ConditionNode
}

/// Loads Sigma YAML (one file may hold several documents) into rules and correlations.
public enum SigmaLoader {
    public struct Result: Sendable {
        public var rules: [SigmaRule] = []
        public var correlations: [CorrelationRule] = []
        public var errors: [RuleError] = []
        /// Files read.
        public var files = 0
        public init() {}

        /// Moves correlations that cannot run here (a rule they name is not loaded, a field they group
        /// by has no mapping) to `errors`, so that one bad correlation never stops the other rules.
        /// Call it once everything is loaded: a correlation may name rules of another file.
        public func resolvingCorrelations() -> Result {
            var result = self
            var kept = correlations
            while true {
                var rejected: [Int: RuleError] = [:]
                for index in kept.indices {
                    do {
                        _ = try RuleSet(rules: rules, correlations: [kept[index]] + kept.indices.filter { $0 != index }.map { kept[$0] })
                    } catch let error as RuleError where error.file == kept[index].file && error.rule == kept[index].title {
                        rejected[index] = error
                    } catch {}
                }
                guard !rejected.isEmpty else { break }
                result.errors += rejected.sorted { $0.key < $1.key }.map(\.value)
                kept = kept.indices.filter { rejected[$0] == nil }.map { kept[$0] }
            }
            result.correlations = kept
            return result
        }

        public mutating func append(_ other: Result) {
            rules += other.rules
            correlations += other.correlations
            errors += other.errors
            files += other.files
        }
    }

    /// Every `.yml`/`.yaml` file under `path` (or the file itself), in a stable order.
    public static func load(path: String) -> Result {
        var result = Result()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            result.errors.append(RuleError(file: path, reason: "no such file or directory"))
            return result
        }
        var files: [String] = []
        if isDirectory.boolValue {
            let enumerator = FileManager.default.enumerator(atPath: path)
            while let entry = enumerator?.nextObject() as? String {
                if entry.hasSuffix(".yml") || entry.hasSuffix(".yaml") { files.append(path + "/" + entry) }
            }
            files.sort()
        } else {
            files = [path]
        }
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                result.errors.append(RuleError(file: file, reason: "cannot read the file as UTF-8"))
                continue
            }
            result.append(load(yaml: text, file: file))
        }
        return result
    }

    public static func load(yaml text: String, file: String) -> Result {
        var result = Result()
        result.files = 1
        do {
            var documents = try Yams.compose_all(yaml: text)
            defer {
                // The sequence stops at a syntax error and keeps it; the documents before it stand.
                if let error = documents.error {
                    result.errors.append(RuleError(file: file, line: SigmaLoader.line(of: error), reason: "not valid YAML: \(error)"))
                }
            }
            while let document = documents.next() {
                guard let map = document.mapping else {
                    result.errors.append(RuleError(file: file, line: document.mark?.line, reason: "a rule must be a YAML mapping"))
                    continue
                }
                let title = map["title"]?.string ?? map["id"]?.string
                do {
                    if map["correlation"] != nil {
                        result.correlations.append(try CorrelationRule(map, file: file))
                    } else if let action = map["action"]?.string {
                        throw RuleError(
                            file: file, line: document.mark?.line, rule: title,
                            reason: "rule collection action '\(action)' (Sigma 1.0 multi-document collections) is not supported; write each rule whole")
                    } else {
                        result.rules.append(try compile(map, file: file))
                    }
                } catch var error as RuleError {
                    error.rule = error.rule ?? title
                    result.errors.append(error)
                }
            }
        } catch {
            result.errors.append(RuleError(file: file, line: line(of: error), reason: "not valid YAML: \(error)"))
        }
        return result
    }

    /// The line a Yams error names (`…:4:5: error: …`), when it names one.
    static func line(of error: any Error) -> Int? {
        if case .scanner(_, _, let mark, _)? = error as? YamlError { return mark.line }
        if case .parser(_, _, let mark, _)? = error as? YamlError { return mark.line }
        return nil
    }

    static func compile(_ map: Node.Mapping, file: String) throws -> SigmaRule {
        let line = map.mark?.line
        func fail(_ reason: String, at node: Node? = nil) -> RuleError {
            RuleError(file: file, line: node?.mark?.line ?? line, rule: map["title"]?.string, reason: reason)
        }
        guard let title = map["title"]?.string, !title.isEmpty else { throw fail("no title") }
        guard let logsource = map["logsource"]?.mapping else { throw fail("no logsource") }
        guard let detection = map["detection"]?.mapping else { throw fail("no detection") }
        let product = logsource["product"]?.string
        let category = logsource["category"]?.string
        let service = logsource["service"]?.string
        let route: Route
        let warning: String?
        do {
            (route, warning) = try FieldMapping.route(product: product, category: category, service: service)
        } catch let error as FieldMapping.Unsupported {
            throw fail(error.description, at: map["logsource"])
        }
        let levelText = map["level"]?.string ?? "medium"
        guard let level = RuleLevel(rawValue: levelText) else { throw fail("unknown level '\(levelText)'", at: map["level"]) }

        var names: [String] = []
        var selections: [Selection] = []
        var conditions: [String] = []
        for (key, value) in detection {
            guard let name = key.string else { throw fail("a detection key must be a name", at: key) }
            if name == "condition" {
                if let text = value.string {
                    conditions = [text]
                } else if let list = value.sequence {
                    conditions = list.compactMap(\.string)
                } else {
                    throw fail("condition must be a string or a list of strings", at: value)
                }
                continue
            }
            if name == "timeframe" {
                throw fail("'timeframe' in detection (Sigma 1.0 aggregation) is not supported; write a correlation rule", at: key)
            }
            do {
                selections.append(try selection(value, route: route))
            } catch let error as FieldMapping.Unsupported {
                throw fail("selection '\(name)': \(error.description)", at: value)
            } catch let error as CompileFailure {
                throw fail("selection '\(name)': \(error.description)", at: value)
            }
            names.append(name)
        }
        guard !conditions.isEmpty else { throw fail("detection has no condition", at: map["detection"]) }
        var nodes: [ConditionNode] = []
        for text in conditions {
            do {
                var parser = try ConditionParser(text, selections: names)
                nodes.append(try parser.parse())
            } catch let error as ConditionParser.Failure {
                throw fail(error.description, at: detection["condition"])
            }
        }
        let id = map["id"]?.string ?? title
        return SigmaRule(
            id: id, name: map["name"]?.string, title: title, level: level, status: map["status"]?.string,
            description: map["description"]?.string, tags: map["tags"]?.sequence?.compactMap(\.string) ?? [],
            references: map["references"]?.sequence?.compactMap(\.string) ?? [], file: file, route: route,
            warning: warning, selections: selections, condition: nodes.count == 1 ? nodes[0] : .or(nodes))
    }

    struct CompileFailure: Error, CustomStringConvertible {
        var description: String
    }

    static func selection(_ node: Node, route: Route) throws -> Selection {
        switch node {
        case .mapping(let map):
            // `'|all': [...]` (or another modifier chain with no field): keywords.
            if map.count == 1, let key = map.first?.key.string, key.hasPrefix("|") {
                let modifiers = Modifiers(try key.split(separator: "|").map { try Modifier(String($0)) })
                let tests = try valueTests(values(map.first!.value), modifiers: modifiers, route: route, keyword: true)
                return .keywords(tests, requiresAll: modifiers.has(.all))
            }
            return .maps([try fieldTests(map, route: route)])
        case .sequence(let list):
            if list.allSatisfy({ $0.mapping != nil }) {
                return .maps(try list.map { try fieldTests($0.mapping!, route: route) })
            }
            if list.allSatisfy({ $0.scalar != nil }) {
                return .keywords(try valueTests(list.map(scalarValue), modifiers: Modifiers([]), route: route, keyword: true), requiresAll: false)
            }
            throw CompileFailure(description: "a list must hold only maps or only keywords")
        case .scalar:
            return .keywords(try valueTests([scalarValue(node)], modifiers: Modifiers([]), route: route, keyword: true), requiresAll: false)
        case .alias:
            throw CompileFailure(description: "YAML aliases are not supported in detections")
        }
    }

    /// nil is YAML null.
    static func scalarValue(_ node: Node) -> String? {
        guard case .scalar(let scalar) = node else { return nil }
        if scalar.style == .plain && node.null != nil { return nil }
        return scalar.string
    }

    static func values(_ node: Node) throws -> [String?] {
        switch node {
        case .scalar: return [scalarValue(node)]
        case .sequence(let list):
            return try list.map { item in
                guard item.scalar != nil else { throw CompileFailure(description: "a value list may hold only plain values") }
                return scalarValue(item)
            }
        default: throw CompileFailure(description: "a field's value must be a value or a list of values")
        }
    }

    static func fieldTests(_ map: Node.Mapping, route: Route) throws -> [FieldTest] {
        try map.map { key, value in
            guard let spec = key.string else { throw CompileFailure(description: "a field name must be a string") }
            let parts = spec.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            let modifiers = Modifiers(try parts.dropFirst().map { try Modifier($0) })
            guard !parts[0].isEmpty else { throw CompileFailure(description: "modifiers '\(spec)' without a field in a map of fields") }
            let field = try FieldMapping.field(parts[0], route: route)
            let tests = try valueTests(try values(value), modifiers: modifiers, route: route, keyword: false)
            return FieldTest(field: field, tests: tests, requiresAll: modifiers.has(.all))
        }
    }

    static func valueTests(_ values: [String?], modifiers: Modifiers, route: Route, keyword: Bool) throws -> [ValueTest] {
        guard !values.isEmpty else { throw CompileFailure(description: "an empty list of values matches nothing; remove it or give values") }
        if modifiers.has(.exists) {
            guard values.count == 1, let text = values[0], let flag = Bool(text.lowercased()) else {
                throw CompileFailure(description: "'exists' takes true or false")
            }
            return [.exists(flag)]
        }
        if modifiers.has(.cidr) {
            return try values.map { value in
                guard let value, let block = CIDRBlock(value) else {
                    throw CompileFailure(description: "'cidr': '\(values.compactMap { $0 }.joined(separator: ","))' is not a network")
                }
                return .cidr(block)
            }
        }
        if let comparison = modifiers.comparison {
            return try values.map { value in
                guard let value, let number = Double(value) else {
                    throw CompileFailure(description: "'\(comparison.rawValue)' needs a number, not '\(values.compactMap { $0 }.joined())'")
                }
                return .compare(comparison, number)
            }
        }
        if modifiers.has(.fieldref) {
            return try values.map { value in
                guard let value else { throw CompileFailure(description: "'fieldref' needs a field name") }
                return .fieldReference(try FieldMapping.field(value, route: route), cased: modifiers.has(.cased))
            }
        }
        if modifiers.has(.re) {
            return try values.map { value in
                guard let value else { throw CompileFailure(description: "'re' needs a pattern") }
                do {
                    return .regex(
                        try RegexPattern(
                            value, ignoresCase: modifiers.has(.i), multiline: modifiers.has(.m), dotAll: modifiers.has(.s)))
                } catch {
                    throw CompileFailure(description: "'re': '\(value)' is not a regular expression this engine reads: \(error)")
                }
            }
        }
        var tests: [ValueTest] = []
        for value in values {
            guard var texts = value.map({ [$0] }) else {
                tests.append(.null)
                continue
            }
            if modifiers.has(.expand) && texts[0].contains("%") {
                throw CompileFailure(description: "'expand': placeholder '\(texts[0])' is not defined (herdwatch has no placeholder values configured)")
            }
            if modifiers.has(.windash) { texts = texts.flatMap(windash) }
            var cased = modifiers.has(.cased)
            let encoding = modifiers.wideEncoding
            if encoding != nil && !(modifiers.has(.base64) || modifiers.has(.base64offset)) {
                throw CompileFailure(description: "'wide'/'utf16' without 'base64' cannot match Linux events (their text is UTF-8)")
            }
            if modifiers.has(.base64) {
                texts = texts.map { Data(encode($0, encoding)).base64EncodedString() }
                cased = true
            } else if modifiers.has(.base64offset) {
                texts = texts.flatMap { base64Offsets(encode($0, encoding)) }
                cased = true
            }
            for text in texts {
                var sigma = text
                if modifiers.has(.base64) || modifiers.has(.base64offset) {
                    // Encoded text holds no wildcards of its own.
                    sigma = sigma.replacingOccurrences(of: "\\", with: "\\\\")
                }
                let addsTrailingWildcard = keyword || modifiers.has(.contains) || modifiers.has(.startswith)
                if addsTrailingWildcard && sigma.reversed().prefix(while: { $0 == "\\" }).count % 2 == 1 {
                    // A lone trailing backslash is literal; before an added `*` it would escape it.
                    sigma += "\\"
                }
                if keyword || modifiers.has(.contains) {
                    sigma = "*" + sigma + "*"
                } else if modifiers.has(.startswith) {
                    sigma += "*"
                } else if modifiers.has(.endswith) {
                    sigma = "*" + sigma
                }
                tests.append(.pattern(StringPattern(sigma: sigma, cased: cased)))
            }
        }
        return tests
    }

    static func encode(_ text: String, _ encoding: Modifier?) -> [UInt8] {
        switch encoding {
        case .utf16le?, .wide?: return text.utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
        case .utf16be?: return text.utf16.flatMap { [UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0)] }
        case .utf16?: return [0xFF, 0xFE] + text.utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
        default: return Array(text.utf8)
        }
    }

    /// The three encodings of `bytes` as it can appear inside a longer base64 text, with the
    /// characters that depend on its neighbours cut off.
    static func base64Offsets(_ bytes: [UInt8]) -> [String] {
        let startCut = [0, 2, 3]
        let endCut = [0, 3, 2]
        return (0..<3).map { shift in
            let encoded = Array(Data(Array(repeating: UInt8(ascii: " "), count: shift) + bytes).base64EncodedString().utf8)
            let end = encoded.count - endCut[(bytes.count + shift) % 3]
            let start = startCut[shift]
            return start < end ? String(decoding: encoded[start..<end], as: UTF8.self) : ""
        }
    }

    /// `-x` and `/x` as Windows tools accept either, and the dashes people paste (– — ―).
    static func windash(_ text: String) -> [String] {
        let dashes: [Character] = ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"]
        var variants = [""]
        var previous: Character = " "
        for character in text {
            if (character == "-" || character == "/") && (previous == " " || variants[0].isEmpty) && variants.count < 125 {
                variants = variants.flatMap { prefix in dashes.map { prefix + String($0) } }
            } else {
                variants = variants.map { $0 + String(character) }
            }
            previous = character
        }
        return variants
    }
}

/// The value modifiers of the Sigma specification.
enum Modifier: String, Sendable {
    case contains, startswith, endswith, all, re, i, m, s
    case base64, base64offset, wide, utf16le, utf16be, utf16, windash
    case cidr, exists, lt, lte, gt, gte, fieldref, cased, expand

    init(_ text: String) throws {
        guard let modifier = Modifier(rawValue: text) else {
            throw SigmaLoader.CompileFailure(description: "unknown value modifier '\(text)'")
        }
        self = modifier
    }
}

struct Modifiers {
    let list: [Modifier]
    init(_ list: [Modifier]) { self.list = list }
    func has(_ modifier: Modifier) -> Bool { list.contains(modifier) }
    var comparison: ValueTest.Comparison? { list.lazy.compactMap { ValueTest.Comparison(rawValue: $0.rawValue) }.first }
    var wideEncoding: Modifier? { list.first { [.wide, .utf16le, .utf16be, .utf16].contains($0) } }
}
