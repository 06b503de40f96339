import HerdwatchEvents

/// An alert: a rule matched one event, or a correlation completed over several.
public struct Alert: Sendable {
    public var ruleID: String
    public var ruleTitle: String
    public var level: RuleLevel
    public var tags: [String]
    public var ruleFile: String
    /// `event_count`, `value_count`, `temporal`, `temporal_ordered` for correlations; nil for a
    /// single-event rule.
    public var correlation: String?
    public var host: String?
    /// The (last) matching event's time, in milliseconds since the epoch.
    public var timeMilliseconds: Int64
    /// Ids of the matching events (`event.id`), oldest first; nil where an event had none.
    public var eventIDs: [String?]
    /// The matching (last) event's process, to open its tree.
    public var entityID: String?
    public var pid: Int64?
    public var executable: String?
    public var commandLine: String?
    public var userName: String?
    /// Which audit record matched (its type), for `service: auditd` rules.
    public var recordType: String?
    /// The matching event's remote end, `IP` or `IP:PORT` (`[IPv6]:PORT`): what a block response blocks.
    public var destination: String?

    public init(
        ruleID: String, ruleTitle: String, level: RuleLevel, tags: [String], ruleFile: String, correlation: String?,
        host: String?, timeMilliseconds: Int64, eventIDs: [String?], entityID: String?, pid: Int64?, executable: String?,
        commandLine: String?, userName: String?, recordType: String?, destination: String? = nil
    ) {
        self.ruleID = ruleID
        self.ruleTitle = ruleTitle
        self.level = level
        self.tags = tags
        self.ruleFile = ruleFile
        self.correlation = correlation
        self.host = host
        self.timeMilliseconds = timeMilliseconds
        self.eventIDs = eventIDs
        self.entityID = entityID
        self.pid = pid
        self.executable = executable
        self.commandLine = commandLine
        self.userName = userName
        self.recordType = recordType
        self.destination = destination
    }
}

/// Runs a rule set over a stream: matches, correlations (state per host and group, bounded), alerts.
/// One detector per stream; not shared between tasks.
public struct Detector: Sendable {
    public let ruleSet: RuleSet
    private var states: [CorrelationState]
    private var scratch: [(rule: Int, record: Int?)] = []
    public private(set) var eventsSeen = 0
    public private(set) var matchesSeen = 0

    public init(ruleSet: RuleSet, maximumGroupsPerCorrelation: Int = 10_000) {
        self.ruleSet = ruleSet
        states = ruleSet.correlations.map { _ in CorrelationState(maximumGroups: maximumGroupsPerCorrelation) }
    }

    /// The alerts an event raises, in rule order (correlations after the rules they complete).
    public mutating func process(_ event: Event) -> [Alert] {
        withUnsafePointer(to: event) { run(EventSubject($0)) }
    }

    /// The alerts an ECS JSON event (as the server receives it) raises.
    public mutating func process(_ event: JSONSubject) -> [Alert] { run(event) }

    mutating func run<S: DetectionSubject>(_ subject: S) -> [Alert] {
        eventsSeen += 1
        scratch.removeAll(keepingCapacity: true)
        ruleSet.matches(subject, into: &scratch)
        guard !scratch.isEmpty else { return [] }
        if scratch.count > 1 { scratch.sort { $0.rule < $1.rule } }
        matchesSeen += scratch.count
        var alerts: [Alert] = []
        let host = subject.value(of: .hostName)?.text
        let eventID = subject.value(of: .eventID)?.text
        let time = subject.timeMilliseconds
        for (index, record) in scratch {
            let rule = ruleSet.rules[index]
            if rule.generatesAlerts {
                alerts.append(
                    Self.alert(
                        subject, record: record, id: rule.id, title: rule.title, level: rule.level, tags: rule.tags,
                        file: rule.file, correlation: nil, eventIDs: [eventID]))
            }
            for (correlationIndex, position) in ruleSet.uses[index] {
                feed(
                    correlationIndex, position: position, subject: subject, record: record, referenceID: rule.id,
                    route: rule.route, host: host, eventID: eventID, time: time, into: &alerts)
            }
        }
        return alerts
    }

    /// Records a match (of a rule, or of a correlation a correlation builds on) in a correlation;
    /// when that completes it, raises its alert and feeds the correlations built on it.
    private mutating func feed<S: DetectionSubject>(
        _ correlationIndex: Int, position: Int, subject: S, record: Int?, referenceID: String, route: Route, host: String?,
        eventID: String?, time: Int64, into alerts: inout [Alert], depth: Int = 0
    ) {
        let correlation = ruleSet.correlations[correlationIndex]
        let evaluation = Evaluation(subject: subject, record: record, program: ruleSet.program)
        func read(_ field: String) -> String? {
            let reference = correlation.ruleReferences[position]
            let name = correlation.aliases[field]?[reference] ?? correlation.aliases[field]?[referenceID] ?? field
            guard let ref = try? FieldMapping.field(name, route: route), let value = evaluation.value(ref), !value.isEmpty else {
                return nil
            }
            return value.text
        }
        var key = host ?? ""
        for field in correlation.groupBy { key += "\u{1F}" + (read(field) ?? "") }
        // value_count: an event without the field brings no value.
        let counted = correlation.countedField.flatMap(read)
        guard
            let events = states[correlationIndex].record(
                correlation, position: position, key: key, time: time, eventID: eventID, countedValue: counted)
        else { return }
        if ruleSet.correlationGenerates[correlationIndex] {
            alerts.append(
                Self.alert(
                    subject, record: record, id: correlation.id, title: correlation.title, level: correlation.level,
                    tags: correlation.tags, file: correlation.file, correlation: correlation.kind.rawValue, eventIDs: events))
        }
        // Correlations of correlations; the depth bound guards against a cycle.
        guard depth < 8 else { return }
        for (outer, outerPosition) in ruleSet.correlationUses[correlationIndex] {
            feed(
                outer, position: outerPosition, subject: subject, record: record, referenceID: correlation.id, route: route,
                host: host, eventID: eventID, time: time, into: &alerts, depth: depth + 1)
        }
    }

    static func alert<S: DetectionSubject>(
        _ subject: S, record: Int?, id: String, title: String, level: RuleLevel, tags: [String], file: String,
        correlation: String?, eventIDs: [String?]
    ) -> Alert {
        let pid: Int64? = if case .number(let value)? = subject.value(of: .processPID) { value } else { nil }
        return Alert(
            ruleID: id, ruleTitle: title, level: level, tags: tags, ruleFile: file, correlation: correlation,
            host: subject.value(of: .hostName)?.text, timeMilliseconds: subject.timeMilliseconds, eventIDs: eventIDs,
            entityID: subject.value(of: .processEntityID)?.text, pid: pid,
            executable: subject.value(of: .processExecutable)?.text, commandLine: subject.value(of: .processCommandLine)?.text,
            userName: subject.value(of: .userName)?.text, recordType: record.map { subject.recordType(at: $0) },
            destination: Self.destination(subject))
    }

    /// `destination.ip` with `destination.port` when there is one.
    static func destination<S: DetectionSubject>(_ subject: S) -> String? {
        guard let ip = subject.value(of: .destinationIP)?.text, !ip.isEmpty else { return nil }
        guard case .number(let port)? = subject.value(of: .destinationPort), port > 0 else { return ip }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

extension RuleLevel {
    /// ECS `event.severity`: 21 low … 99 critical (the scale Elastic's detection rules use).
    public var severity: Int {
        switch self {
        case .informational: 1
        case .low: 21
        case .medium: 47
        case .high: 73
        case .critical: 99
        }
    }
}

extension Alert {
    /// One JSON line in ECS terms: `event.kind: alert`, `rule.*`, the event's host, process and user,
    /// and `herdwatch.alert.*` (level, matching event ids, correlation type, rule file).
    public func json() -> String {
        var writer = JSONWriter(capacity: 512)
        writer.beginObject()
        writer.timestampMember("@timestamp", milliseconds: timeMilliseconds)
        writer.key("event")
        writer.beginObject()
        writer.member("kind", "alert")
        writer.member("severity", level.severity)
        writer.member("module", "herdwatch-detection")
        writer.endObject()
        writer.key("rule")
        writer.beginObject()
        writer.member("id", ruleID)
        writer.member("name", ruleTitle)
        writer.member("ruleset", "sigma")
        writer.endObject()
        if let host {
            writer.key("host")
            writer.beginObject()
            writer.member("name", host)
            writer.endObject()
        }
        if entityID != nil || pid != nil || executable != nil {
            writer.key("process")
            writer.beginObject()
            writer.member("entity_id", entityID)
            writer.member("pid", pid)
            writer.member("executable", executable)
            writer.member("command_line", commandLine)
            writer.endObject()
        }
        if let userName {
            writer.key("user")
            writer.beginObject()
            writer.member("name", userName)
            writer.endObject()
        }
        if let destination {
            writer.key("destination")
            writer.beginObject()
            writer.member("address", destination)
            writer.endObject()
        }
        if !tags.isEmpty {
            writer.key("tags")
            writer.beginArray()
            for tag in tags { writer.string(tag) }
            writer.endArray()
        }
        writer.key("herdwatch")
        writer.beginObject()
        writer.key("alert")
        writer.beginObject()
        writer.member("level", level.rawValue)
        writer.member("correlation", correlation)
        writer.member("record_type", recordType)
        writer.member("rule_file", ruleFile)
        writer.key("events")
        writer.beginArray()
        for id in eventIDs {
            if let id { writer.string(id) } else { writer.string("") }
        }
        writer.endArray()
        writer.endObject()
        writer.endObject()
        writer.endObject()
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}
