import Foundation
import Testing

@testable import HerdwatchDetection

#if canImport(Glibc)
import Glibc
#endif

/// The whole SigmaHQ Linux corpus (shared/corpus/sigma, read-only) loads and runs.
@Suite struct CorpusLoadTests {
    static let loaded = SigmaLoader.load(path: SigmaCorpus.root)

    static let ruleFiles: [String] = {
        guard let enumerator = FileManager.default.enumerator(atPath: SigmaCorpus.root) else { return [] }
        var files: [String] = []
        while let entry = enumerator.nextObject() as? String {
            if entry.hasSuffix(".yml") || entry.hasSuffix(".yaml") { files.append(SigmaCorpus.root + "/" + entry) }
        }
        return files.sorted()
    }()

    /// Rules that cannot run on Linux events and why: the web server logs no herdwatch source reads.
    static let expectedUnsupported: [String: String] = [
        "rules-emerging-threats/2025/Exploits/CVE-2025-31324/web_lnx_exploit_cve_2025_31324_sap_netviewer_webshell.yml": "webserver",
        "rules-emerging-threats/2025/Exploits/CVE-2025-31324/web_lnx_exploit_cve_2025_31324_sap_netviewer_webshell_uploaded.yml": "webserver",
    ]

    @Test func atLeast95PercentLoad() {
        let loaded = Self.loaded
        let total = loaded.rules.count + loaded.correlations.count + loaded.errors.count
        let runnable = loaded.rules.count + loaded.correlations.count
        #expect(total >= 240, "corpus not found at \(SigmaCorpus.root)")
        let unsupported = loaded.errors.map { "\($0)" }.joined(separator: "\n")
        #expect(Double(runnable) >= 0.95 * Double(total), "\(runnable) of \(total) load; unsupported:\n\(unsupported)")
    }

    @Test func everyErrorNamesItsFileAndAReason() {
        #expect(Self.loaded.errors.count == Self.expectedUnsupported.count)
        for error in Self.loaded.errors {
            #expect(!error.file.isEmpty && FileManager.default.fileExists(atPath: error.file), "\(error)")
            #expect(!error.reason.trimmingCharacters(in: .whitespaces).isEmpty, "\(error)")
            #expect(error.line != nil, "\(error)")
            #expect(error.rule != nil, "\(error)")
        }
    }

    @Test func unsupportedRulesAreTheExpectedOnes() {
        var found: [String: String] = [:]
        for error in Self.loaded.errors {
            found[String(error.file.dropFirst(SigmaCorpus.root.count + 1))] = error.reason
        }
        let listing = Self.loaded.errors.map { "\($0)" }.sorted().joined(separator: "\n")
        #expect(Set(found.keys) == Set(Self.expectedUnsupported.keys), "unsupported:\n\(listing)")
        for (file, word) in Self.expectedUnsupported {
            #expect(found[file]?.contains(word) == true, "\(file): \(found[file] ?? "loaded")")
        }
    }

    @Test func everyFileGivesRulesOrErrors() {
        let accounted = Set(Self.loaded.rules.map(\.file) + Self.loaded.correlations.map(\.file) + Self.loaded.errors.map(\.file))
        let silent = Self.ruleFiles.filter { !accounted.contains($0) }
        #expect(Self.loaded.files == Self.ruleFiles.count)
        #expect(silent.isEmpty, "files that gave neither a rule nor an error: \(silent)")
    }

    @Test func loadedRulesKeepTheirMetadata() throws {
        let rules = Self.loaded.rules
        #expect(Set(rules.map(\.id)).count == rules.count, "rule ids repeat")
        let rule = try #require(rules.first { $0.file.hasSuffix("/proc_creation_lnx_base64_decode.yml") })
        #expect(rule.id == "e2072cab-8c9a-459b-b63c-40ae79e27031")
        #expect(rule.status == "test")
        #expect(rule.title == "Decode Base64 Encoded Text")
        #expect(rule.level == .low)
        #expect(rule.route == .processCreation)
        #expect(rule.tags == ["attack.stealth", "attack.t1027"])
        // Services no herdwatch collector reads yet load with a warning, and only those.
        let warned = Set(rules.filter { $0.warning != nil }.map { ($0.file as NSString).deletingLastPathComponent.split(separator: "/").last! })
        #expect(warned == ["clamav", "cron", "guacamole", "syslog", "vsftpd"])
    }

    @Test func theWholeCorpusRunsOverEveryKindOfEvent() throws {
        let set = try RuleSet(rules: Self.loaded.rules, correlations: Self.loaded.correlations)
        var detector = Detector(ruleSet: set)
        let events = [
            ECS.process("/usr/bin/ls", ["ls", "-la"]), ECS.file("file-created", "/home/alice/notes.txt"),
            ECS.network("/usr/bin/curl", ip: "93.184.216.34", port: 443), ECS.authLog("Accepted publickey for alice from 10.0.0.5 port 51234 ssh2", outcome: "success"),
        ]
        for event in events {
            let alerts = detector.process(try #require(JSONSubject(json: event)))
            #expect(alerts.isEmpty, "benign event raised \(alerts.map(\.ruleTitle)): \(event)")
        }
        #expect(detector.eventsSeen == events.count)
    }
}

/// Events made from the corpus rules' own values, to try the indexes with the literals they hold.
enum Synthesized {
    enum Place { case exact, start, middle, end }

    /// A text `test` accepts (nil: none to make, or the field is better absent).
    static func value(_ test: ValueTest) -> (Place, String)? {
        switch test {
        case .pattern(let pattern):
            let text = String(decoding: pattern.literal, as: UTF8.self)
            switch pattern.shape {
            case .equals: return (.exact, text)
            case .prefix: return (.start, text)
            case .suffix: return (.end, text)
            case .contains: return (.middle, text)
            case .anything: return (.middle, "x")
            case .glob(let segments, let anchoredStart, let anchoredEnd):
                let bytes = segments.flatMap { $0.map { token -> UInt8 in if case .byte(let b) = token { b } else { UInt8(ascii: "x") } } }
                let text = String(decoding: bytes, as: UTF8.self)
                switch (anchoredStart, anchoredEnd) {
                case (true, true): return (.exact, text)
                case (true, false): return (.start, text)
                case (false, true): return (.end, text)
                case (false, false): return (.middle, text)
                }
            }
        case .cidr(let block):
            var buffer = [CChar](repeating: 0, count: 64)
            let family = block.network.count == 4 ? AF_INET : AF_INET6
            guard inet_ntop(family, block.network, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return (.exact, String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case .compare(let comparison, let bound):
            let offset = comparison == .gt ? 1.0 : comparison == .lt ? -1.0 : 0
            return (.exact, String(Int(bound + offset)))
        case .exists(true): return (.exact, "x")
        case .regex, .null, .exists(false), .fieldReference: return nil
        }
    }

    /// Field values that satisfy one map of a selection as far as they can be made.
    static func fields(_ map: [FieldTest]) -> [FieldRef: String] {
        var parts: [FieldRef: [(Place, String)]] = [:]
        for test in map {
            let made = test.requiresAll ? test.tests.compactMap(value) : test.tests.lazy.compactMap(value).first.map { [$0] } ?? []
            parts[test.field, default: []] += made
        }
        var fields: [FieldRef: String] = [:]
        for (field, list) in parts where !list.isEmpty {
            if let exact = list.first(where: { $0.0 == .exact }) {
                fields[field] = exact.1
            } else {
                let ordered = list.filter { $0.0 == .start } + list.filter { $0.0 == .middle } + list.filter { $0.0 == .end }
                fields[field] = ordered.map(\.1).joined(separator: " ")
            }
        }
        return fields
    }

    static func keywords(_ tests: [ValueTest], all: Bool) -> [String] {
        let made = tests.compactMap(value).map(\.1)
        return all ? made : Array(made.prefix(1))
    }

    static func set(_ object: inout [String: Any], _ path: [String], _ value: Any) {
        guard let first = path.first else { return }
        if path.count == 1 {
            object[first] = value
            return
        }
        var inner = object[first] as? [String: Any] ?? [:]
        set(&inner, Array(path.dropFirst()), value)
        object[first] = inner
    }

    /// One event of `route` carrying `fields` and `keywords`.
    static func event(_ route: Route, _ fields: [FieldRef: String], keywords: [String], id: String) -> String {
        var action = "process-started"
        var module = "auditd"
        switch route {
        case .processCreation, .herdwatch: action = "process-started"
        case .fileEvent, .fileCreate: action = "file-created"
        case .fileDelete: action = "file-deleted"
        case .fileChange: action = "file-modified"
        case .fileRename: action = "file-renamed"
        case .networkConnection: action = fields[.initiated] == "false" ? "network-accepted" : "network-connected"
        case .auth: (action, module) = ("user-login", "auth-log")
        case .anyLog: (action, module) = ("auth-log-message", "auth-log")
        case .auditd: action = "process-started"
        }
        var object = ECS.base(action, module: module, host: "web1", time: ECS.start, id: id)
        var record: [String: Any] = ["type": "SYSCALL"]
        var enriched: [String: String] = [:]
        var args: [Int: String] = [:]
        for (field, text) in fields {
            switch field {
            case .ecs(let ecs):
                let numeric = [ECSField.processPID, .parentPID, .sourcePort, .destinationPort, .processArgsCount, .processExitCode].contains(ecs)
                let value: Any = numeric ? (Int(text).map { $0 as Any } ?? text) : text
                set(&object, ecs.rawValue.split(separator: ".").map(String.init), value)
            case .record(let key):
                if key == "type" {
                    record["type"] = text.uppercased()
                } else if let index = RecordKeys.argumentIndex(key) {
                    args[index] = text
                } else if key.contains(where: \.isUppercase) {
                    enriched[key] = text
                } else {
                    record[key] = text
                }
            case .initiated, .imageName, .parentImageName, .keywordText: break
            }
        }
        if route == .auditd {
            var list = (0..<((args.keys.max() ?? -1) + 1)).map { args[$0] ?? "x" }
            if record["type"] as? String == "EXECVE" {
                list += keywords
            } else {
                for (index, keyword) in keywords.enumerated() { record["kw\(index)"] = keyword }
            }
            if !list.isEmpty {
                set(&object, ["process", "args"], list)
                for (index, arg) in list.enumerated() where record["type"] as? String == "EXECVE" { record["a\(index)"] = arg }
            }
            if !enriched.isEmpty { record["enriched"] = enriched }
            if let syscall = enriched["SYSCALL"] { set(&object, ["auditd", "syscall"], syscall) }
            set(&object, ["auditd", "records"], [record])
        } else if !keywords.isEmpty {
            object["message"] = keywords.joined(separator: " ")
        }
        return ECS.json(object)
    }

    /// For every rule: an event per map of each selection, and one with every selection not named filter*.
    static func events(_ rules: [SigmaRule]) -> [String] {
        var events: [String] = []
        for rule in rules {
            var combined: [FieldRef: String] = [:]
            var combinedKeywords: [String] = []
            for selection in rule.selections {
                switch selection {
                case .maps(let maps):
                    for map in maps {
                        events.append(event(rule.route, fields(map), keywords: [], id: "\(events.count)"))
                    }
                    if let first = maps.first { combined.merge(fields(first)) { old, _ in old } }
                case .keywords(let tests, let all):
                    let words = keywords(tests, all: all)
                    events.append(event(rule.route, [:], keywords: words, id: "\(events.count)"))
                    combinedKeywords += words
                }
            }
            events.append(event(rule.route, combined, keywords: combinedKeywords, id: "\(events.count)"))
        }
        return events
    }

    /// Whether `rule` holds for `subject` by its logsource and condition alone, without any index.
    static func reference(_ rule: SigmaRule, _ subject: JSONSubject) -> Bool {
        // The rule alone in a program of its own, evaluated without any index.
        let program = Program(rules: [rule])
        switch rule.route {
        case .auditd:
            return (0..<subject.recordCount).contains { Evaluation(subject: subject, record: $0, program: program).holds(rule: 0) }
        case .anyLog:
            guard subject.module == "auth-log" || subject.value(of: .message) != nil else { return false }
        case .herdwatch:
            break
        default:
            guard rule.route.actions?.contains(subject.action) == true else { return false }
        }
        return Evaluation(subject: subject, record: nil, program: program).holds(rule: 0)
    }
}

extension CorpusLoadTests {
    static let routingSet = try? RuleSet(rules: loaded.rules)

    /// Every `parts`th rule of a logsource, from `part` on (slices keep each test case short).
    struct Slice: Sendable, CustomTestStringConvertible {
        let route: Route
        let part: Int
        let parts: Int
        var testDescription: String { "\(route.rawValue) \(part + 1)/\(parts)" }
    }

    static let slices: [Slice] = [(Route.processCreation, 12), (.auditd, 4), (.fileEvent, 1), (.networkConnection, 1), (.auth, 1), (.anyLog, 1)]
        .flatMap { route, parts in (0..<parts).map { Slice(route: route, part: $0, parts: parts) } }

    /// The indexes (exact values, the shared literal scan, record types) find exactly the rules
    /// that evaluating every rule of the event's logsource finds, on events made from the values
    /// of the rules of one logsource.
    @Test(arguments: slices)
    func indexesFindWhatEvaluatingEveryRuleFinds(_ slice: Slice) throws {
        let rules = Self.loaded.rules
        var detector = Detector(ruleSet: try #require(Self.routingSet))
        let own = rules.filter { $0.route == slice.route }.enumerated().filter { $0.offset % slice.parts == slice.part }.map(\.element)
        let events = Synthesized.events(own)
        var fired = Set<String>()
        var mismatches: [String] = []
        for event in events {
            let subject = try #require(JSONSubject(json: event))
            let alerts = detector.process(subject).map(\.ruleID)
            #expect(Set(alerts).count == alerts.count, "one alert per rule: \(alerts)")
            let expected = Set(rules.filter { Synthesized.reference($0, subject) }.map(\.id))
            if Set(alerts) != expected {
                mismatches.append("missed \(expected.subtracting(alerts).sorted()), extra \(Set(alerts).subtracting(expected).sorted()): \(event)")
            }
            fired.formUnion(expected)
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) events:\n\(mismatches.prefix(10).joined(separator: "\n"))")
        // The synthesized events reach most of the route's rules, so the comparison means something.
        let reached = own.filter { fired.contains($0.id) }.count
        #expect(reached >= own.count / 2, "only \(reached) of \(own.count) rules fired on their own values")
    }
}
