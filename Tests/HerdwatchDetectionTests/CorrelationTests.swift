import Foundation
import Testing

@testable import HerdwatchDetection

/// Whether no event raised an alert.
private func noAlerts<S: Sequence<[Alert]>>(_ alerts: S) -> Bool { alerts.allSatisfy { $0.isEmpty } }

/// Sigma correlation rules over rules' matches; event times come from `@timestamp`.
@Suite struct CorrelationTests {
    static let failedLogin = """
        title: Failed login
        id: failed-login
        name: failed_login
        logsource:
            product: linux
            service: sshd
        detection:
            selection:
                event.action: user-login
                event.outcome: failure
            condition: selection
        level: low

        """

    static func bruteForce(generate: Bool? = nil, groupBy: String = "User") -> String {
        """
        ---
        title: SSH brute force
        id: brute-force
        correlation:
            type: event_count
            rules:
                - failed_login
            group-by:
                - \(groupBy)
            timespan: 5m
            condition:
                gte: 10
        \(generate.map { "    generate: \($0)\n" } ?? "")level: high

        """
    }

    static let spraying = """
        ---
        title: Password spraying
        id: spraying
        correlation:
            type: value_count
            rules:
                - failed_login
            group-by:
                - SourceIp
            timespan: 10m
            condition:
                field: User
                gte: 3
        level: high

        """

    /// A download into /tmp and an execution from /tmp, and a correlation of `type` over them.
    static func dropper(_ type: String, aliases: Bool = false) -> String {
        """
        title: Download to tmp
        id: download-tmp
        name: download
        logsource:
            product: linux
            category: file_event
        detection:
            selection:
                Image|endswith:
                    - '/curl'
                    - '/wget'
                TargetFilename|startswith: '/tmp/'
            condition: selection
        level: low
        ---
        title: Run from tmp
        id: exec-tmp
        name: exec_tmp
        logsource:
            product: linux
            category: process_creation
        detection:
            selection:
                Image|startswith: '/tmp/'
            condition: selection
        level: low
        ---
        title: Downloaded and run
        id: dropper
        correlation:
            type: \(type)
            rules:
                - download
                - exec_tmp
        \(aliases ? "    aliases:\n        payload:\n            download: file.path\n            exec_tmp: Image\n    group-by:\n        - payload\n" : "")    timespan: 1m
        level: critical

        """
    }

    static func failure(_ index: Int, at seconds: Double, user: String? = "alice", host: String = "web1", source: String = "203.0.113.9") -> String {
        ECS.authLog(
            "Failed password for \(user ?? "unknown") from \(source) port 40022 ssh2", user: user, sourceIP: source, host: host,
            time: ECS.time(seconds), id: "login-\(index)")
    }

    static func download(_ path: String, at seconds: Double, host: String = "web1") -> String {
        ECS.file("file-created", path, by: "/usr/bin/curl", host: host, time: ECS.time(seconds), id: "download")
    }

    static func run(_ path: String, at seconds: Double, host: String = "web1") -> String {
        ECS.process(path, [path], host: host, time: ECS.time(seconds), id: "run")
    }

    /// Every alert of every event, in order.
    static func alerts(_ yaml: String, _ events: [String]) throws -> [[Alert]] {
        var detector = try Rules.detector(yaml)
        return try events.map { try detector.process(#require(JSONSubject(json: $0))) }
    }

    // MARK: event_count

    @Test func tenFailuresWithinFiveMinutesFire() throws {
        let events = (0..<10).map { Self.failure($0, at: Double($0) * 20) }
        let alerts = try Self.alerts(Self.failedLogin + Self.bruteForce(), events)
        #expect(noAlerts(alerts.dropLast()), "fired before the tenth: \(alerts.map { $0.map(\.ruleID) })")
        let last = try #require(alerts.last)
        #expect(last.map(\.ruleID) == ["brute-force"])
        #expect(last.first?.correlation == "event_count")
        #expect(last.first?.level == .high)
        #expect(last.first?.host == "web1")
        #expect(last.first?.eventIDs == (0..<10).map { "login-\($0)" })
        #expect(last.first?.timeMilliseconds == JSONSubject.milliseconds(ECS.time(180)))
    }

    @Test func nineFailuresDoNotFire() throws {
        let events = (0..<9).map { Self.failure($0, at: Double($0) * 20) }
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.bruteForce(), events)))
    }

    @Test func tenFailuresSpreadOverMoreThanFiveMinutesDoNotFire() throws {
        // 40 s apart: the tenth comes 6 minutes after the first, and no 5 minutes hold ten.
        let events = (0..<10).map { Self.failure($0, at: Double($0) * 40) }
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.bruteForce(), events)))
        // Two more inside the last five minutes make ten of them.
        let more = events + [Self.failure(10, at: 370), Self.failure(11, at: 380)]
        let alerts = try Self.alerts(Self.failedLogin + Self.bruteForce(), more)
        #expect(alerts.map { $0.map(\.ruleID) } == Array(repeating: [], count: 11) + [["brute-force"]])
        #expect(alerts.last?.first?.eventIDs == (2..<12).map { "login-\($0)" })
    }

    @Test func timesComeFromTheTimestampNotFromArrival() throws {
        // Ten events processed at once, but stamped an hour apart, never make a burst.
        let events = (0..<10).map { Self.failure($0, at: Double($0) * 3600) }
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.bruteForce(), events)))
    }

    @Test func anotherHostDoesNotCount() throws {
        let events = (0..<9).map { Self.failure($0, at: Double($0) * 20) } + [Self.failure(9, at: 190, host: "web2")]
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.bruteForce(), events)))
    }

    @Test func anotherGroupDoesNotCount() throws {
        let events = (0..<9).map { Self.failure($0, at: Double($0) * 20) } + [Self.failure(9, at: 190, user: "bob")]
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.bruteForce(), events)))
        // Grouped by the source instead, bob's failure from the same address is the tenth.
        let bySource = try Self.alerts(Self.failedLogin + Self.bruteForce(groupBy: "SourceIp"), events)
        #expect(bySource.last?.map(\.ruleID) == ["brute-force"])
    }

    @Test func interleavedGroupsCountSeparately() throws {
        var events: [String] = []
        for index in 0..<10 {
            events.append(Self.failure(2 * index, at: Double(index) * 20, user: "alice"))
            events.append(Self.failure(2 * index + 1, at: Double(index) * 20 + 1, user: "bob"))
        }
        let alerts = try Self.alerts(Self.failedLogin + Self.bruteForce(), events)
        let fired = alerts.enumerated().filter { !$0.element.isEmpty }.map(\.offset)
        #expect(fired == [18, 19])
        #expect(alerts[18].first?.eventIDs == (0..<10).map { "login-\(2 * $0)" })
        #expect(alerts[19].first?.eventIDs == (0..<10).map { "login-\(2 * $0 + 1)" })
    }

    @Test func generateFalseHidesTheBaseRulesAlerts() throws {
        let events = (0..<10).map { Self.failure($0, at: Double($0) * 20) }
        for generate in [nil, false] as [Bool?] {
            let ids = try Self.alerts(Self.failedLogin + Self.bruteForce(generate: generate), events).flatMap { $0.map(\.ruleID) }
            #expect(ids == ["brute-force"], "generate: \(String(describing: generate))")
        }
        let shown = try Self.alerts(Self.failedLogin + Self.bruteForce(generate: true), events)
        #expect(shown.dropLast().map { $0.map(\.ruleID) } == Array(repeating: ["failed-login"], count: 9))
        #expect(shown.last?.map(\.ruleID) == ["failed-login", "brute-force"])
    }

    @Test func aRuleNoCorrelationUsesStillAlerts() throws {
        let yaml = Self.failedLogin + Self.bruteForce() + "---\n" + Rules.rule("selection:\n    event.action: user-login\ncondition: selection", logsource: "product: linux\nservice: sshd", id: "any-login")
        let alerts = try Self.alerts(yaml, [Self.failure(0, at: 0)])
        #expect(alerts.first?.map(\.ruleID) == ["any-login"])
    }

    // MARK: value_count

    @Test func threeUsersFromOneSourceFire() throws {
        let users = ["alice", "bob", "alice", "alice", "carol"]
        let events = users.enumerated().map { Self.failure($0.offset, at: Double($0.offset) * 30, user: $0.element) }
        let alerts = try Self.alerts(Self.failedLogin + Self.spraying, events)
        #expect(alerts.map { $0.map(\.ruleID) } == [[], [], [], [], ["spraying"]])
        #expect(alerts.last?.first?.correlation == "value_count")
    }

    @Test func oneUserManyTimesDoesNotFire() throws {
        let events = (0..<20).map { Self.failure($0, at: Double($0) * 5, user: "alice") }
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.spraying, events)))
    }

    @Test func threeUsersFromThreeSourcesDoNotFire() throws {
        let events = [
            Self.failure(0, at: 0, user: "alice", source: "203.0.113.1"), Self.failure(1, at: 10, user: "bob", source: "203.0.113.2"),
            Self.failure(2, at: 20, user: "carol", source: "203.0.113.3"),
        ]
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.spraying, events)))
    }

    @Test func threeUsersOutsideTheTimespanDoNotFire() throws {
        let events = [
            Self.failure(0, at: 0, user: "alice"), Self.failure(1, at: 300, user: "bob"), Self.failure(2, at: 601, user: "carol"),
        ]
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.spraying, events)))
    }

    @Test func anEventWithoutTheCountedFieldIsNoValue() throws {
        let events = [Self.failure(0, at: 0, user: "alice"), Self.failure(1, at: 10, user: "bob"), Self.failure(2, at: 20, user: nil)]
        #expect(try noAlerts(Self.alerts(Self.failedLogin + Self.spraying, events)))
    }

    // MARK: temporal

    @Test func temporalFiresInEitherOrder() throws {
        let yaml = Self.dropper("temporal")
        let forward = try Self.alerts(yaml, [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 30)])
        #expect(forward.map { $0.map(\.ruleID) } == [[], ["dropper"]])
        #expect(forward.last?.first?.correlation == "temporal")
        #expect(forward.last?.first?.eventIDs == ["download", "run"])
        let backward = try Self.alerts(yaml, [Self.run("/tmp/x", at: 0), Self.download("/tmp/x", at: 30)])
        #expect(backward.map { $0.map(\.ruleID) } == [[], ["dropper"]])
    }

    @Test func temporalOutsideTheTimespanDoesNotFire() throws {
        let alerts = try Self.alerts(Self.dropper("temporal"), [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 61)])
        #expect(noAlerts(alerts))
    }

    @Test func temporalNeedsEveryRule() throws {
        let alerts = try Self.alerts(Self.dropper("temporal"), [Self.download("/tmp/x", at: 0), Self.download("/tmp/y", at: 10)])
        #expect(noAlerts(alerts))
    }

    @Test func temporalOnAnotherHostDoesNotFire() throws {
        let alerts = try Self.alerts(Self.dropper("temporal"), [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 10, host: "web2")])
        #expect(noAlerts(alerts))
    }

    // MARK: temporal_ordered

    @Test func orderedFiresInOrderWithinTheTimespan() throws {
        let alerts = try Self.alerts(Self.dropper("temporal_ordered"), [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 59)])
        #expect(alerts.map { $0.map(\.ruleID) } == [[], ["dropper"]])
        #expect(alerts.last?.first?.correlation == "temporal_ordered")
        #expect(alerts.last?.first?.eventIDs == ["download", "run"])
    }

    @Test func orderedOutOfOrderDoesNotFire() throws {
        let alerts = try Self.alerts(Self.dropper("temporal_ordered"), [Self.run("/tmp/x", at: 0), Self.download("/tmp/x", at: 10)])
        #expect(noAlerts(alerts))
    }

    @Test func orderedOutsideTheTimespanDoesNotFire() throws {
        let alerts = try Self.alerts(Self.dropper("temporal_ordered"), [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 61)])
        #expect(noAlerts(alerts))
    }

    @Test func orderedLaterStartStillCounts() throws {
        // The first download is too old, a second one starts a chain the run completes.
        let events = [Self.download("/tmp/x", at: 0), Self.download("/tmp/x", at: 100), Self.run("/tmp/x", at: 130)]
        let alerts = try Self.alerts(Self.dropper("temporal_ordered"), events)
        #expect(alerts.map { $0.map(\.ruleID) } == [[], [], ["dropper"]])
    }

    @Test func orderedOnAnotherHostDoesNotFire() throws {
        let alerts = try Self.alerts(
            Self.dropper("temporal_ordered"), [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 10, host: "web2")])
        #expect(noAlerts(alerts))
    }

    // MARK: aliases

    @Test func aliasJoinsTheDownloadedFileToTheExecutedOne() throws {
        let yaml = Self.dropper("temporal_ordered", aliases: true)
        let same = try Self.alerts(yaml, [Self.download("/tmp/x", at: 0), Self.run("/tmp/x", at: 20)])
        #expect(same.map { $0.map(\.ruleID) } == [[], ["dropper"]])
        let other = try Self.alerts(yaml, [Self.download("/tmp/x", at: 0), Self.run("/tmp/y", at: 20)])
        #expect(noAlerts(other))
        // Each file its own group: y is downloaded later and run; x's chain stays open.
        let both = try Self.alerts(
            yaml, [Self.download("/tmp/x", at: 0), Self.download("/tmp/y", at: 5), Self.run("/tmp/y", at: 10), Self.run("/tmp/x", at: 15)])
        #expect(both.map { $0.map(\.ruleID) } == [[], [], ["dropper"], ["dropper"]])
    }

    @Test func aliasWithTemporal() throws {
        let yaml = Self.dropper("temporal", aliases: true)
        let backward = try Self.alerts(yaml, [Self.run("/tmp/x", at: 0), Self.download("/tmp/x", at: 20)])
        #expect(backward.map { $0.map(\.ruleID) } == [[], ["dropper"]])
        let other = try Self.alerts(yaml, [Self.run("/tmp/x", at: 0), Self.download("/tmp/y", at: 20)])
        #expect(noAlerts(other))
    }

    @Test func baseRulesOfACorrelationRaiseNoAlertsOfTheirOwn() throws {
        let alerts = try Self.alerts(Self.dropper("temporal"), [Self.download("/tmp/x", at: 0), Self.run("/tmp/y", at: 120)])
        #expect(noAlerts(alerts))
    }
}

extension CorrelationTests {
    /// `@timestamp` in milliseconds since the epoch, as Foundation reads it.
    static func foundation(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let date = formatter.date(from: text) ?? plain.date(from: text) else { return nil }
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    @Test(arguments: [
        "1970-01-01T00:00:00.000Z", "2000-02-29T12:34:56.789Z", "2000-03-01T00:00:00.000Z", "2026-11-23T10:00:00.000Z",
        "2026-12-31T23:59:59.999Z", "2027-01-01T00:00:00.000Z", "2028-02-29T23:59:50.000Z", "2100-03-01T00:00:00.000Z",
        "2026-11-23T10:00:00Z", "2026-11-23T10:00:00.123456Z",
    ])
    func timestampsAreReadInUTC(_ text: String) throws {
        let expected = try #require(Self.foundation(text))
        #expect(JSONSubject.milliseconds(text) == expected)
    }

    @Test func timestampsOfOtherPrecisionsAndOffsets() throws {
        #expect(JSONSubject.milliseconds("2026-11-23T10:00:00.5Z") == Self.foundation("2026-11-23T10:00:00.500Z"))
        #expect(JSONSubject.milliseconds("2026-11-23T10:00:00.25Z") == Self.foundation("2026-11-23T10:00:00.250Z"))
        let offset = JSONSubject.milliseconds("2026-11-23T12:00:00.000+02:00")
        #expect(offset == nil || offset == Self.foundation("2026-11-23T10:00:00.000Z"))
    }

    @Test func windowsSpanDayAndYearBoundaries() throws {
        let yaml = Self.dropper("temporal_ordered")
        let download = { (time: String) in ECS.file("file-created", "/tmp/x", by: "/usr/bin/curl", time: time, id: "download") }
        let run = { (time: String) in ECS.process("/tmp/x", ["/tmp/x"], time: time, id: "run") }
        for (first, second, fires) in [
            ("2026-12-31T23:59:50.000Z", "2027-01-01T00:00:20.000Z", true), ("2028-02-28T23:59:40.000Z", "2028-02-29T00:00:30.000Z", true),
            ("2028-02-29T23:59:30.000Z", "2028-03-01T00:00:31.000Z", false), ("2026-11-23T10:00:00.000Z", "2026-11-24T10:00:00.000Z", false),
        ] {
            let alerts = try Self.alerts(yaml, [download(first), run(second)])
            #expect(alerts.last?.map(\.ruleID) == (fires ? ["dropper"] : []), "\(first) → \(second)")
        }
    }

    @Test func correlationMayNameRulesByID() throws {
        let yaml = Self.failedLogin + Self.bruteForce().replacingOccurrences(of: "- failed_login", with: "- failed-login")
        let alerts = try Self.alerts(yaml, (0..<10).map { Self.failure($0, at: Double($0)) })
        #expect(alerts.flatMap { $0.map(\.ruleID) } == ["brute-force"])
    }

    /// Detector.process documents its alerts "in rule order (correlations after the rules they complete)".
    @Test func alertsComeInRuleOrder() throws {
        var yaml = ""
        // Two rules indexed by the executable's basename, one that every process event meets, then
        // one found through the command line's literal scan (it needs a second rule of its kind).
        for (index, detection) in [
            "Image|endswith: '/curl'", "CurrentDirectory: '/tmp'", "Image|endswith: '/wget'", "CommandLine|contains: 'http://'",
            "CommandLine|contains: 'ftp://'",
        ].enumerated() {
            yaml += Rules.rule("selection:\n    \(detection)\ncondition: selection", id: "rule-\(index)") + "---\n"
        }
        yaml.removeLast(4)
        var detector = try Rules.detector(yaml)
        let ids = try Rules.alerts(&detector, ECS.process("/usr/bin/curl", ["curl", "http://a"], cwd: "/tmp"))
        #expect(Set(ids) == ["rule-0", "rule-1", "rule-3"])
        #expect(ids == ["rule-0", "rule-1", "rule-3"])
    }
}

extension CorrelationTests {
    /// The specification's example "Multiple Failed Logins Followed by Successful Login": a
    /// correlation may refer to another correlation ("Correlations can be chained").
    @Test func correlationsChain() throws {
        let yaml = """
            title: Multiple failed logins followed by a successful login
            id: brute-force-success
            correlation:
                type: temporal_ordered
                rules:
                    - multiple_failed_login
                    - successful_login
                group-by:
                    - User
                timespan: 10m
            level: high
            ---
            title: Multiple failed logins
            id: multiple-failed
            name: multiple_failed_login
            correlation:
                type: event_count
                rules:
                    - failed_login
                group-by:
                    - User
                timespan: 10m
                condition:
                    gte: 10
            ---
            title: Successful login
            id: successful-login
            name: successful_login
            logsource:
                product: linux
                service: sshd
            detection:
                selection:
                    event.action: user-login
                    event.outcome: success
                condition: selection
            ---

            """ + Self.failedLogin
        let loaded = try Rules.load(yaml)
        #expect(loaded.correlations.count == 2 && loaded.rules.count == 2)
        let events = (0..<10).map { Self.failure($0, at: Double($0) * 10) }
            + [ECS.authLog("Accepted password for alice from 203.0.113.9 port 40022 ssh2", outcome: "success", time: ECS.time(120), id: "ok")]
        var detector = Detector(ruleSet: try RuleSet(rules: loaded.rules, correlations: loaded.correlations))
        let alerts = try events.map { try detector.process(#require(JSONSubject(json: $0))).map(\.ruleID) }
        #expect(alerts.last?.contains("brute-force-success") == true, "\(alerts)")
    }
}
