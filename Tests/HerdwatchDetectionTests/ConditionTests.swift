import Testing

@testable import HerdwatchDetection

/// A condition over selections that each look for one word of the command line, and for each
/// command line whether the condition holds.
struct ConditionCase: Sendable, CustomTestStringConvertible {
    let condition: String
    let expectations: [(line: String, fires: Bool)]
    /// Selection name → the word it looks for.
    let selections: [(String, String)]

    init(_ condition: String, _ expectations: [(String, Bool)], selections: [(String, String)] = ConditionCase.abc) {
        self.condition = condition
        self.expectations = expectations.map { (line: $0.0, fires: $0.1) }
        self.selections = selections
    }

    static let abc = [("a", "alpha"), ("b", "beta"), ("c", "gamma")]
    static let prefixed = [("sel_a", "alpha"), ("sel_b", "beta"), ("sel_c", "gamma"), ("other", "delta")]
    static let underscored = [("a", "alpha"), ("b", "beta"), ("_never", "nowhere")]

    var testDescription: String { condition }

    var yaml: String {
        var detection = ""
        for (name, word) in selections { detection += "\(name):\n    CommandLine|contains: '\(word)'\n" }
        detection += "condition: " + condition
        return Rules.rule(detection)
    }
}

enum ConditionCases {
    static let all: [ConditionCase] = [
        // and binds tighter than or
        ConditionCase("a or b and c", [("alpha", true), ("beta", false), ("beta gamma", true), ("gamma", false)]),
        ConditionCase("a and b or c", [("gamma", true), ("alpha", false), ("alpha beta", true)]),
        // not binds tighter than and
        ConditionCase("not a and b", [("beta", true), ("alpha beta", false), ("alpha", false), ("none", false)]),
        ConditionCase("a and not b or c", [("alpha", true), ("alpha beta", false), ("alpha beta gamma", true)]),
        ConditionCase("not a or b", [("none", true), ("alpha", false), ("alpha beta", true)]),
        ConditionCase("not not a", [("alpha", true), ("none", false)]),
        // parentheses
        ConditionCase("(a or b) and c", [("alpha", false), ("alpha gamma", true), ("beta gamma", true), ("gamma", false)]),
        ConditionCase("not (a or b)", [("gamma", true), ("alpha", false), ("beta", false)]),
        ConditionCase("not (a and (b or not c))", [("alpha", false), ("alpha gamma", true), ("alpha beta gamma", false), ("none", true)]),
        ConditionCase("((a))", [("alpha", true), ("beta", false)]),
        ConditionCase("a and(b or c)", [("alpha beta", true), ("alpha", false)]),
        // x of
        ConditionCase(
            "1 of sel_*", [("beta", true), ("delta", false), ("none", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "any of sel_*", [("gamma", true), ("delta", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "all of sel_*", [("alpha beta gamma", true), ("alpha beta", false), ("alpha beta delta", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "2 of sel_*", [("alpha gamma", true), ("alpha", false), ("alpha delta", false), ("alpha beta gamma", true)],
            selections: ConditionCase.prefixed),
        ConditionCase(
            "3 of them", [("alpha beta delta", true), ("alpha beta", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "1 of them", [("delta", true), ("none", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "all of them", [("alpha beta gamma delta", true), ("alpha beta gamma", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "1 of sel_* and not other", [("alpha", true), ("alpha delta", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "not 1 of sel_*", [("delta", true), ("beta", false)], selections: ConditionCase.prefixed),
        ConditionCase(
            "all of sel_a", [("alpha", true), ("beta", false)], selections: ConditionCase.prefixed),
        // them leaves out names that start with _
        ConditionCase("all of them", [("alpha beta", true), ("alpha", false)], selections: ConditionCase.underscored),
        ConditionCase("1 of them", [("nowhere", false), ("beta", true)], selections: ConditionCase.underscored),
        ConditionCase("all of them or _never", [("nowhere", true)], selections: ConditionCase.underscored),
    ]
}

@Suite struct ConditionTests {
    @Test(arguments: ConditionCases.all)
    func condition(_ test: ConditionCase) throws {
        var detector = try Rules.detector(test.yaml)
        for (index, expectation) in test.expectations.enumerated() {
            let event = ECS.process("/usr/bin/sh", ["sh", "-c", expectation.line], id: "e-\(index)")
            let fired = try Rules.alerts(&detector, event).contains("rule-under-test")
            #expect(fired == expectation.fires, "'\(test.condition)' on '\(expectation.line)'")
        }
    }

    @Test func listOfConditionsIsAnyOfThem() throws {
        let yaml = Rules.rule(
            """
            a:
                CommandLine|contains: 'alpha'
            b:
                CommandLine|contains: 'beta'
            c:
                CommandLine|contains: 'gamma'
            condition:
                - a and b
                - c
            """)
        var detector = try Rules.detector(yaml)
        for (line, fires) in [("alpha beta", true), ("gamma", true), ("alpha", false), ("beta", false)] {
            let fired = try Rules.alerts(&detector, ECS.process("/usr/bin/sh", ["sh", "-c", line])) == ["rule-under-test"]
            #expect(fired == fires, "\(line)")
        }
    }

    @Test func multiLineConditionReadsAsOne() throws {
        let yaml = Rules.rule(
            """
            a:
                CommandLine|contains: 'alpha'
            b:
                CommandLine|contains: 'beta'
            condition:
                a and
                (
                    not b
                )
            """)
        var detector = try Rules.detector(yaml)
        #expect(try Rules.alerts(&detector, ECS.process("/usr/bin/sh", ["sh", "-c", "alpha"])) == ["rule-under-test"])
        #expect(try Rules.alerts(&detector, ECS.process("/usr/bin/sh", ["sh", "-c", "alpha beta"])) == [])
    }

    /// The parsed shape, not just the outcome: precedence is not > and > or.
    @Test func precedenceTree() throws {
        var parser = try ConditionParser("a or not b and c", selections: ["a", "b", "c"])
        #expect(try parser.parse() == .or([.selection(0), .and([.not(.selection(1)), .selection(2)])]))
        var grouped = try ConditionParser("(a or not b) and c", selections: ["a", "b", "c"])
        #expect(try grouped.parse() == .and([.or([.selection(0), .not(.selection(1))]), .selection(2)]))
        var counted = try ConditionParser("2 of x* and all of them", selections: ["x1", "x2", "_x3", "y"])
        #expect(
            try counted.parse()
                == .and([.atLeast(2, [.selection(0), .selection(1)]), .and([.selection(0), .selection(1), .selection(3)])]))
    }
}
