import Yams

/// A Sigma correlation rule: `event_count`, `value_count`, `temporal` or `temporal_ordered` over
/// other rules' matches, grouped by fields, within a timespan. Always grouped by host as well:
/// events of different hosts never correlate.
public struct CorrelationRule: Sendable {
    public enum Kind: String, Sendable {
        case eventCount = "event_count"
        case valueCount = "value_count"
        case temporal
        case temporalOrdered = "temporal_ordered"
    }

    public struct Bound: Sendable {
        var comparison: ValueTest.Comparison?
        var equals: Double?
        var value: Double
        func holds(_ count: Int) -> Bool {
            let count = Double(count)
            if equals != nil { return count == value }
            switch comparison {
            case .gt?: return count > value
            case .gte?: return count >= value
            case .lt?: return count < value
            case .lte?: return count <= value
            case nil: return false
            }
        }
    }

    public var id: String
    public var name: String?
    public var title: String
    public var level: RuleLevel
    public var kind: Kind
    /// Names or ids of the rules it correlates.
    public var ruleReferences: [String]
    public var groupBy: [String]
    public var timespanMilliseconds: Int64
    public var file: String
    /// The line of `rules:` in the file, for errors about what it refers to.
    public var line: Int?
    public var tags: [String]
    /// `generate`: whether the referenced rules also raise their own alerts.
    public var generate: Bool
    var bounds: [Bound]
    /// value_count: the field whose distinct values are counted.
    var countedField: String?
    /// alias → (rule name or id → field name).
    var aliases: [String: [String: String]]

    init(_ map: Node.Mapping, file: String) throws {
        let title = map["title"]?.string
        func fail(_ reason: String, at node: Node? = nil) -> RuleError {
            RuleError(file: file, line: node?.mark?.line ?? map.mark?.line, rule: title, reason: reason)
        }
        guard let title, !title.isEmpty else { throw fail("no title") }
        guard let body = map["correlation"]?.mapping else { throw fail("correlation must be a mapping") }
        guard let typeText = body["type"]?.string, let kind = Kind(rawValue: typeText) else {
            throw fail("correlation type '\(body["type"]?.string ?? "")' is not event_count, value_count, temporal or temporal_ordered", at: body["type"])
        }
        let references: [String]
        if let one = body["rules"]?.string {
            references = [one]
        } else if let list = body["rules"]?.sequence?.compactMap(\.string), !list.isEmpty {
            references = list
        } else {
            throw fail("correlation has no rules", at: body["rules"])
        }
        guard let span = body["timespan"]?.string ?? body["timeframe"]?.string, let milliseconds = Self.duration(span) else {
            throw fail("timespan '\(body["timespan"]?.string ?? "")' is not a duration like 30s, 5m, 1h, 1d", at: body["timespan"])
        }
        var groupBy: [String] = []
        if let one = body["group-by"]?.string {
            groupBy = [one]
        } else if let list = body["group-by"]?.sequence {
            groupBy = list.compactMap(\.string)
        }
        var bounds: [Bound] = []
        var counted: String?
        if let condition = body["condition"]?.mapping {
            for (key, value) in condition {
                guard let name = key.string else { continue }
                if name == "field" {
                    counted = value.string
                    continue
                }
                guard let number = value.string.flatMap(Double.init) else { throw fail("condition '\(name)' needs a number", at: value) }
                if name == "eq" {
                    bounds.append(Bound(comparison: nil, equals: number, value: number))
                } else if let comparison = ValueTest.Comparison(rawValue: name) {
                    bounds.append(Bound(comparison: comparison, equals: nil, value: number))
                } else {
                    throw fail("condition operator '\(name)' is not gt, gte, lt, lte or eq", at: key)
                }
            }
        }
        switch kind {
        case .eventCount, .valueCount:
            guard !bounds.isEmpty else { throw fail("\(kind.rawValue) needs a condition (gte: N, ...)", at: body["condition"]) }
            if kind == .valueCount && counted == nil { throw fail("value_count needs condition.field", at: body["condition"]) }
        case .temporal, .temporalOrdered:
            if bounds.isEmpty { bounds = [Bound(comparison: .gte, equals: nil, value: Double(references.count))] }
        }
        var aliases: [String: [String: String]] = [:]
        if let map = body["aliases"]?.mapping {
            for (alias, perRule) in map {
                guard let alias = alias.string, let perRule = perRule.mapping else { throw fail("aliases: each alias maps rule names to fields", at: body["aliases"]) }
                var fields: [String: String] = [:]
                for (rule, field) in perRule { if let rule = rule.string, let field = field.string { fields[rule] = field } }
                aliases[alias] = fields
            }
        }
        let levelText = map["level"]?.string ?? "medium"
        guard let level = RuleLevel(rawValue: levelText) else { throw fail("unknown level '\(levelText)'") }
        id = map["id"]?.string ?? title
        name = map["name"]?.string
        self.title = title
        self.level = level
        self.kind = kind
        ruleReferences = references
        self.groupBy = groupBy
        timespanMilliseconds = milliseconds
        self.file = file
        line = body["rules"]?.mark?.line ?? map.mark?.line
        tags = map["tags"]?.sequence?.compactMap(\.string) ?? []
        generate = body["generate"]?.bool ?? map["generate"]?.bool ?? false
        self.bounds = bounds
        countedField = counted
        self.aliases = aliases
    }

    /// `30s`, `5m`, `1h`, `2d`, `1w` in milliseconds.
    static func duration(_ text: String) -> Int64? {
        guard let unit = text.last, let number = Int64(text.dropLast()), number > 0 else { return nil }
        let scale: Int64
        switch unit {
        case "s": scale = 1000
        case "m": scale = 60_000
        case "h": scale = 3_600_000
        case "d": scale = 86_400_000
        case "w": scale = 7 * 86_400_000
        default: return nil
        }
        return number * scale
    }
}

/// One correlation's state: per host and group key, bounded in groups and in entries per group.
struct CorrelationState: Sendable {
    struct Group: Sendable {
        var lastUpdate: Int64 = 0
        /// event_count: times (and event ids) of matches inside the window, oldest first.
        var times: [(Int64, String?)] = []
        /// value_count: distinct value → last time seen.
        var values: [String: Int64] = [:]
        /// temporal: rule position → last time seen (and event id); temporal_ordered: position →
        /// the start time of the latest chain that has reached it.
        var seen: [Int: (time: Int64, start: Int64, event: String?)] = [:]
    }

    var groups: [String: Group] = [:]
    /// Beyond this many groups, the least recently updated ones go.
    let maximumGroups: Int
    let maximumEntries: Int

    init(maximumGroups: Int = 10_000, maximumEntries: Int = 1_000) {
        self.maximumGroups = maximumGroups
        self.maximumEntries = maximumEntries
    }

    /// Records a match of the rule at `position` in the correlation's list; returns the events that
    /// complete it, or nil.
    mutating func record(
        _ rule: CorrelationRule, position: Int, key: String, time: Int64, eventID: String?, countedValue: String?
    ) -> [String?]? {
        var group = groups[key] ?? Group()
        group.lastUpdate = max(group.lastUpdate, time)
        let windowStart = time - rule.timespanMilliseconds
        var fired: [String?]?
        switch rule.kind {
        case .eventCount:
            group.times.removeAll { $0.0 < windowStart }
            group.times.append((time, eventID))
            if group.times.count > maximumEntries { group.times.removeFirst(group.times.count - maximumEntries) }
            if rule.bounds.allSatisfy({ $0.holds(group.times.count) }) { fired = group.times.map(\.1) }
        case .valueCount:
            group.values = group.values.filter { $0.value >= windowStart }
            if let countedValue {
                group.values[countedValue] = time
                if group.values.count > maximumEntries, let oldest = group.values.min(by: { $0.value < $1.value }) {
                    group.values[oldest.key] = nil
                }
            }
            if rule.bounds.allSatisfy({ $0.holds(group.values.count) }) { fired = [eventID] }
        case .temporal:
            group.seen = group.seen.filter { $0.value.time >= windowStart }
            group.seen[position] = (time, time, eventID)
            if rule.bounds.allSatisfy({ $0.holds(group.seen.count) }) {
                fired = group.seen.sorted { $0.value.time < $1.value.time }.map(\.value.event)
            }
        case .temporalOrdered:
            group.seen = group.seen.filter { $0.value.start >= windowStart }
            if position == 0 {
                group.seen[0] = (time, time, eventID)
            } else if let previous = group.seen[position - 1] {
                group.seen[position] = (time, previous.start, eventID)
            }
            if let last = group.seen[rule.ruleReferences.count - 1], last.start >= windowStart {
                fired = (0..<rule.ruleReferences.count).map { group.seen[$0]?.event }
            }
        }
        if fired != nil {
            groups[key] = nil
        } else {
            groups[key] = group
            if groups.count > maximumGroups { evictOldest() }
        }
        return fired
    }

    private mutating func evictOldest() {
        let excess = groups.count - maximumGroups * 9 / 10
        guard excess > 0 else { return }
        let victims = groups.sorted { $0.value.lastUpdate < $1.value.lastUpdate }.prefix(excess).map(\.key)
        for key in victims { groups[key] = nil }
    }
}
