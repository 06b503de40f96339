import Foundation
import Testing

@testable import HerdwatchDetection

/// A rule that must not load: the lines its error may point at, and words its reason must hold.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let lines: ClosedRange<Int>
    let reason: [String]

    var testDescription: String { name }
    var file: String { "bad/\(name.replacingOccurrences(of: " ", with: "-")).yml" }
}

private let head = """
    title: Bad rule
    logsource:
        product: linux
        category: process_creation
    detection:

    """

enum MalformedCases {
    // Line numbers: `head` is lines 1-5 (detection: on 5), so the first selection starts on 6.
    static let rules: [MalformedCase] = [
        MalformedCase(
            name: "not a mapping", yaml: "- title: Bad rule\n- detection: none\n", lines: 1...1, reason: ["mapping"]),
        MalformedCase(
            name: "no detection",
            yaml: "title: Bad rule\nid: bad-1\nlogsource:\n    product: linux\n    category: process_creation\nlevel: high\n",
            lines: 1...1, reason: ["no detection"]),
        MalformedCase(
            name: "no condition", yaml: head + "    selection:\n        Image|endswith: '/sh'\nlevel: high\n", lines: 5...6,
            reason: ["no condition"]),
        MalformedCase(
            name: "unknown selection in condition",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n    condition: selection and not filter\n", lines: 8...8,
            reason: ["'filter'", "not a selection"]),
        MalformedCase(
            name: "unbalanced parenthesis",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n    condition: (selection and selection\n", lines: 8...8,
            reason: ["')'"]),
        MalformedCase(
            name: "condition ends early",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n    condition: selection and\n", lines: 8...8,
            reason: ["ends"]),
        MalformedCase(
            name: "of a pattern no selection matches",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n    condition: selection and not 1 of filter_*\n", lines: 8...8,
            reason: ["filter_*"]),
        MalformedCase(
            name: "unknown modifier",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n        CommandLine|containz: 'x'\n    condition: selection\n",
            lines: 6...8, reason: ["'containz'", "modifier", "selection"]),
        MalformedCase(
            name: "unmapped field",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n        ProcessTitle: 'x'\n    condition: selection\n", lines: 6...8,
            reason: ["'ProcessTitle'", "process_creation"]),
        MalformedCase(
            name: "windows only field", yaml: head + "    selection:\n        OriginalFileName: 'cmd.exe'\n    condition: selection\n",
            lines: 6...7, reason: ["'OriginalFileName'", "Windows"]),
        MalformedCase(
            name: "unsupported category",
            yaml: "title: Bad rule\nlogsource:\n    category: webserver\n    product: linux\ndetection:\n    selection:\n        cs-method: POST\n    condition: selection\n",
            lines: 2...3, reason: ["webserver"]),
        MalformedCase(
            name: "unsupported product",
            yaml: "title: Bad rule\nlogsource:\n    product: windows\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '\\cmd.exe'\n    condition: selection\n",
            lines: 2...3, reason: ["windows"]),
        MalformedCase(
            name: "unsupported service",
            yaml: "title: Bad rule\nlogsource:\n    product: linux\n    service: nginx\ndetection:\n    keywords:\n        - 'x'\n    condition: keywords\n",
            lines: 2...4, reason: ["nginx"]),
        MalformedCase(
            name: "bad cidr",
            yaml: "title: Bad rule\nlogsource:\n    product: linux\n    category: network_connection\ndetection:\n    selection:\n        DestinationIp|cidr: '10.0.0.0/33'\n    condition: selection\n",
            lines: 6...7, reason: ["cidr", "10.0.0.0/33"]),
        MalformedCase(
            name: "bad cidr address",
            yaml: "title: Bad rule\nlogsource:\n    product: linux\n    category: network_connection\ndetection:\n    selection:\n        DestinationIp|cidr: '10.0.300.0/24'\n    condition: selection\n",
            lines: 6...7, reason: ["cidr", "10.0.300.0/24"]),
        MalformedCase(
            name: "bad regex", yaml: head + "    selection:\n        CommandLine|re: 'a(unclosed'\n    condition: selection\n", lines: 6...7,
            reason: ["'re'", "a(unclosed"]),
        MalformedCase(
            name: "exists maybe", yaml: head + "    selection:\n        CurrentDirectory|exists: maybe\n    condition: selection\n", lines: 6...7,
            reason: ["exists", "true or false"]),
        MalformedCase(
            name: "placeholder herdwatch cannot expand",
            yaml: head + "    selection:\n        User|expand: '%Administrators%'\n    condition: selection\n", lines: 6...7,
            reason: ["expand", "%Administrators%"]),
        MalformedCase(
            name: "comparison without a number", yaml: head + "    selection:\n        ProcessId|gt: many\n    condition: selection\n", lines: 6...7,
            reason: ["'gt'", "many"]),
        MalformedCase(
            name: "deprecated count aggregation",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n    condition: selection | count() by User > 5\n", lines: 8...8,
            reason: ["count()", "deprecated", "correlation"]),
        MalformedCase(
            name: "deprecated timeframe",
            yaml: head + "    selection:\n        Image|endswith: '/sh'\n    timeframe: 5m\n    condition: selection\n", lines: 8...8,
            reason: ["timeframe", "correlation"]),
        MalformedCase(
            name: "unknown level", yaml: head + "    selection:\n        Image|endswith: '/sh'\n    condition: selection\nlevel: severe\n",
            lines: 9...9, reason: ["severe"]),
        MalformedCase(
            name: "mixed list", yaml: head + "    selection:\n        - 'keyword'\n        - Image: '/bin/sh'\n    condition: selection\n",
            lines: 6...8, reason: ["list"]),
        MalformedCase(
            name: "correlation of an unknown type",
            yaml: "title: Bad rule\ncorrelation:\n    type: event_counter\n    rules:\n        - a\n    timespan: 5m\n    condition:\n        gte: 3\n",
            lines: 3...3, reason: ["event_counter"]),
        MalformedCase(
            name: "correlation with a bad timespan",
            yaml: "title: Bad rule\ncorrelation:\n    type: event_count\n    rules:\n        - a\n    timespan: 5 minutes\n    condition:\n        gte: 3\n",
            lines: 6...6, reason: ["timespan", "5 minutes"]),
        MalformedCase(
            name: "event_count without a condition",
            yaml: "title: Bad rule\ncorrelation:\n    type: event_count\n    rules:\n        - a\n    timespan: 5m\n", lines: 1...6,
            reason: ["event_count", "condition"]),
    ]
}

/// A temporary directory of rule files, removed afterwards.
struct RuleDirectory: ~Copyable {
    let path: String

    init(_ files: [String: String]) throws {
        path = NSTemporaryDirectory() + "herdwatch-rules-\(getpid())-\(UUID().uuidString)"
        for (name, text) in files {
            let file = path + "/" + name
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct MalformedRuleTests {
    @Test(arguments: MalformedCases.rules)
    func badRuleIsReportedPrecisely(_ test: MalformedCase) throws {
        let result = SigmaLoader.load(yaml: test.yaml, file: test.file)
        #expect(result.rules.isEmpty && result.correlations.isEmpty)
        let error = try #require(result.errors.first, "no error for:\n\(test.yaml)")
        #expect(result.errors.count == 1, "\(result.errors)")
        #expect(error.file == test.file)
        let line = try #require(error.line, "no line: \(error)")
        #expect(test.lines.contains(line), "line \(line), expected \(test.lines): \(error)")
        for word in test.reason {
            #expect(error.reason.contains(word), "reason '\(error.reason)' does not say '\(word)'")
        }
        if test.name != "not a mapping" {
            #expect(error.rule == "Bad rule")
        }
        #expect(error.description.hasPrefix("\(test.file):\(line)"))
    }

    @Test func textThatIsNotYAMLIsReported() throws {
        let yaml = "title: Bad rule\ndetection:\n    selection:\n        Image: '/bin/sh\n"
        let result = SigmaLoader.load(yaml: yaml, file: "broken.yml")
        #expect(result.rules.isEmpty)
        let error = try #require(result.errors.first)
        #expect(error.file == "broken.yml")
        #expect(error.reason.contains("YAML"))
        let line = try #require(error.line)
        #expect((4...5).contains(line))
    }

    @Test func aSyntaxErrorAfterAGoodDocumentIsReported() {
        let yaml = Rules.rule("selection:\n    Image|endswith: '/sh'\ncondition: selection") + "---\ntitle: [broken\n"
        let result = SigmaLoader.load(yaml: yaml, file: "two.yml")
        #expect(result.rules.map(\.id) == ["rule-under-test"])
        #expect(result.errors.map(\.file) == ["two.yml"])
    }

    @Test func correlationOfAMissingRule() throws {
        let yaml = """
            title: Bad correlation
            id: bad-correlation
            correlation:
                type: event_count
                rules:
                    - missing_rule
                timespan: 5m
                condition:
                    gte: 3

            """
        let result = try Rules.load(Rules.rule("selection:\n    Image|endswith: '/sh'\ncondition: selection") + "---\n" + yaml, file: "corr.yml")
        let error = try #require(#expect(throws: RuleError.self) { try RuleSet(rules: result.rules, correlations: result.correlations) })
        #expect(error.file == "corr.yml")
        #expect(error.rule == "Bad correlation")
        #expect(error.reason.contains("'missing_rule'"))
        let line = try #require(error.line)
        #expect((16...19).contains(line))
    }

    @Test func correlationGroupingByAnUnmappedField() throws {
        let yaml = Rules.rule("selection:\n    Image|endswith: '/sh'\ncondition: selection", extra: "name: shell\n") + """
            ---
            title: Bad grouping
            correlation:
                type: event_count
                rules:
                    - shell
                group-by:
                    - NoSuchField
                timespan: 5m
                condition:
                    gte: 3

            """
        let result = try Rules.load(yaml, file: "group.yml")
        let error = try #require(#expect(throws: RuleError.self) { try RuleSet(rules: result.rules, correlations: result.correlations) })
        #expect(error.file == "group.yml")
        #expect(error.reason.contains("NoSuchField"))
    }

    static let goodRule = Rules.rule("selection:\n    Image|endswith: '/good'\ncondition: selection", id: "good-1")

    @Test func badFilesNeverStopTheGoodOnes() throws {
        let directory = try RuleDirectory([
            "a-good.yml": Self.goodRule,
            "nested/deeper/good.yaml": Rules.rule("selection:\n    Image|endswith: '/also-good'\ncondition: selection", id: "good-2"),
            "b-bad-modifier.yml": Rules.rule("selection:\n    Image|endswith|sideways: '/x'\ncondition: selection", id: "bad-1"),
            "c-webserver.yml": Rules.rule("selection:\n    cs-method: POST\ncondition: selection", logsource: "category: webserver", id: "bad-2"),
            "d-mixed.yml": Rules.rule("selection:\n    Image|endswith: '/third'\ncondition: selection", id: "good-3") + "---\n"
                + Rules.rule("selection:\n    Image|endswith: '/x'\ncondition: selection and nothing", id: "bad-3"),
            "e-not-a-rule.yml": "just a sentence\n",
            "notes.txt": "not a rule file: ignored",
        ])
        let result = SigmaLoader.load(path: directory.path)
        #expect(Set(result.rules.map(\.id)) == ["good-1", "good-2", "good-3"])
        #expect(result.files == 6)
        let errored = result.errors.map { ($0.file as NSString).lastPathComponent }.sorted()
        #expect(errored == ["b-bad-modifier.yml", "c-webserver.yml", "d-mixed.yml", "e-not-a-rule.yml"], "\(result.errors)")
        #expect(result.errors.allSatisfy { $0.file.hasPrefix(directory.path + "/") && !$0.reason.isEmpty })

        var detector = Detector(ruleSet: try RuleSet(rules: result.rules, correlations: result.correlations))
        #expect(try Rules.alerts(&detector, ECS.process("/opt/good", ["good"])) == ["good-1"])
        #expect(try Rules.alerts(&detector, ECS.process("/opt/also-good", ["also-good"])) == ["good-2"])
        #expect(try Rules.alerts(&detector, ECS.process("/opt/third", ["third"])) == ["good-3"])
    }

    @Test func aFileThatIsNotYAMLNeverStopsTheGoodOnes() throws {
        let directory = try RuleDirectory(["good.yml": Self.goodRule, "broken.yml": "title: Bad rule\ndetection: [unclosed\n"])
        let result = SigmaLoader.load(path: directory.path)
        #expect(result.rules.map(\.id) == ["good-1"])
        #expect(result.errors.map { ($0.file as NSString).lastPathComponent } == ["broken.yml"])
    }

    @Test func aCorrelationOfAMissingRuleNeverStopsTheGoodOnes() throws {
        let dangling = """
            title: Dangling
            correlation:
                type: event_count
                rules:
                    - not_loaded
                timespan: 5m
                condition:
                    gte: 3

            """
        let directory = try RuleDirectory(["good.yml": Self.goodRule, "dangling.yml": dangling])
        let result = SigmaLoader.load(path: directory.path).resolvingCorrelations()
        #expect(result.rules.map(\.id) == ["good-1"])
        var detector = Detector(ruleSet: try RuleSet(rules: result.rules, correlations: result.correlations))
        #expect(try Rules.alerts(&detector, ECS.process("/opt/good", ["good"])) == ["good-1"])
        #expect(result.errors.contains { $0.file.hasSuffix("/dangling.yml") && $0.reason.contains("not_loaded") })
    }

    @Test func aMissingPathIsReported() {
        let result = SigmaLoader.load(path: "/nonexistent/herdwatch-rules")
        #expect(result.rules.isEmpty)
        #expect(result.errors.map(\.file) == ["/nonexistent/herdwatch-rules"])
    }
}
