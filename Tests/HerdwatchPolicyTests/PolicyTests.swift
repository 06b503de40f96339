import Foundation
import HerdwatchEvents
import Testing

@testable import HerdwatchPolicy

/// A process event in tree `tree` (its session leader) for process `pid`.
func processEvent(tree: Int, pid: Int, kind: EventKind = .processStart, executable: String = "/usr/bin/true") -> Event {
    var event = Event(timestamp: AuditTimestamp(milliseconds: 1_000), kind: kind, outcome: .success)
    var process = Event.Process()
    process.pid = Int64(pid)
    process.entityID = "boot-\(pid)-1"
    process.sessionLeaderEntityID = "boot-\(tree)-1"
    process.sessionLeaderPID = Int64(tree)
    process.executable = executable
    event.process = process
    return event
}

func cattlePolicy(executables: ExecutableRegistry? = nil, configure: (inout PolicyConfiguration) -> Void = { _ in }) throws -> TelemetryPolicy {
    var configuration = PolicyConfiguration()
    configuration.baseProfile = "cattle"
    configure(&configuration)
    return try TelemetryPolicy(configuration: configuration, executables: executables, now: 0)
}

@Suite struct TreatmentTests {
    @Test func treatmentsParse() throws {
        #expect(try Treatment(parsing: "full") == .full)
        #expect(try Treatment(parsing: "off") == .off)
        #expect(try Treatment(parsing: "sample(0.25)") == .sample(0.25))
        #expect(try Treatment(parsing: "sample( 5% )") == .sample(0.05))
        #expect(try Treatment(parsing: "sample(100%)") == .full)
        #expect(try Treatment(parsing: "aggregate(90s)") == .aggregate(intervalMilliseconds: 90_000))
        #expect(try Treatment(parsing: "aggregate(5m)") == .aggregate(intervalMilliseconds: 300_000))
        for bad in ["sample(0)", "sample(1.5)", "sample(x)", "aggregate(10ms)", "aggregate()", "keep", ""] {
            #expect(throws: PolicyError.self, "\(bad)") { try Treatment(parsing: bad) }
        }
        #expect(PolicyDuration.milliseconds("500ms") == 500)
        #expect(PolicyDuration.milliseconds("30m") == 1_800_000)
        #expect(PolicyDuration.milliseconds("2h") == 7_200_000)
        #expect(PolicyDuration.milliseconds("1d") == 86_400_000)
        #expect(PolicyDuration.milliseconds("45") == 45_000)
        #expect(PolicyDuration.milliseconds("-1s") == nil)
        #expect(PolicyDuration.milliseconds("soon") == nil)
    }

    @Test func everyKindHasAClassAndTheSecurityClassesAreAlwaysKept() {
        #expect(EventClass(.userLogin) == .login)
        #expect(EventClass(.authentication) == .login)
        #expect(EventClass(.userCommand) == .privilege)
        #expect(EventClass(.privilegeChange) == .privilege)
        #expect(EventClass(.moduleLoad) == .module)
        #expect(EventClass(.auditConfigChange) == .auditConfig)
        #expect(EventClass(.telemetryLoss) == .health)
        #expect(EventClass(.levelChange) == .health)
        #expect(EventClass(.networkConnect) == .network)
        #expect(EventClass(.fileWrite) == .file)
        #expect(EventClass(.syscall) == .other)
        #expect(EventClass.alwaysKept == [.login, .privilege, .module, .auditConfig, .health])
    }

    @Test func theAlwaysKeptListOnlyGrows() throws {
        var configuration = PolicyConfiguration()
        configuration.profiles["quiet"] = Profile(name: "quiet", treatments: [.login: .sample(0.5)], builtinRules: "cattle")
        #expect(throws: PolicyError("profile 'quiet': login events are always kept; 'sample(0.5)' is not allowed for them")) {
            try configuration.validate()
        }
        configuration.profiles["quiet"] = Profile(name: "quiet", treatments: [.file: .off], builtinRules: "cattle")
        try configuration.validate()
        configuration.keepAlways([.file])
        #expect(throws: PolicyError.self) { try configuration.validate() }
        configuration.baseProfile = "nope"
        #expect(throws: PolicyError.self) { try configuration.validate() }
    }
}

@Suite struct SamplingTests {
    /// 2,000 trees of five processes each, events interleaved: every tree is kept or dropped whole,
    /// about one in ten is kept, and kept events say the rate and the tree.
    @Test func treesAreKeptOrDroppedWhole() throws {
        let policy = try cattlePolicy()
        var kept: [Int: Int] = [:]
        var seen: [Int: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        var events: [(Int, Event)] = []
        for tree in 0..<2000 {
            let leader = 10_000 + tree * 10
            for child in 0..<5 {
                events.append((tree, processEvent(tree: leader, pid: leader + child)))
                events.append((tree, processEvent(tree: leader, pid: leader + child, kind: .processExit)))
            }
        }
        events.shuffle(using: &generator)
        for (tree, event) in events {
            var event = event
            seen[tree, default: 0] += 1
            if policy.admit(&event, now: 1).kept {
                kept[tree, default: 0] += 1
                #expect(event.sampling?.rate == 0.1)
                #expect(event.sampling?.treeID == event.process?.sessionLeaderEntityID)
            }
        }
        for (tree, count) in kept { #expect(count == seen[tree], "tree \(tree) kept in part") }
        #expect((160...240).contains(kept.count), "kept \(kept.count) of 2000 trees at rate 0.1")
    }

    @Test func decisionsAreTheSameOnEveryRunAndNestedAcrossRates() throws {
        let first = try cattlePolicy()
        let second = try cattlePolicy()
        let wider = try cattlePolicy { $0.profiles["cattle"]?.treatments[.process] = .sample(0.5) }
        for tree in 0..<500 {
            var a = processEvent(tree: tree, pid: tree)
            var b = a
            var c = a
            let keptA = first.admit(&a, now: 1).kept
            #expect(keptA == second.admit(&b, now: 1).kept)
            // A tree kept at 10% is kept at 50%: classes with different rates stay coherent.
            if keptA { #expect(wider.admit(&c, now: 1).kept) }
        }
    }

    @Test func mustKeepEventsAreKeptAndPromoteTheirTree() throws {
        let policy = try cattlePolicy { $0.mustKeepTags = ["identity"] }
        // A tree the rate drops.
        let tree = (0..<1000).first { TelemetryPolicy.unitHash("boot-\($0)-1") >= 0.1 }!
        var before = processEvent(tree: tree, pid: tree + 1)
        #expect(!policy.admit(&before, now: 1).kept)
        for kind in [EventKind.userLogin, .authentication, .privilegeChange, .userCommand, .moduleLoad, .auditConfigChange, .telemetryLoss] {
            var event = processEvent(tree: tree, pid: tree + 2, kind: kind)
            #expect(policy.admit(&event, now: 1).kept, "\(kind)")
            #expect(event.sampling == nil)
        }
        // From now on the tree is kept, marked as promoted.
        var after = processEvent(tree: tree, pid: tree + 3)
        #expect(policy.admit(&after, now: 1).kept)
        #expect(after.sampling == Event.Sampling(rate: 0.1, treeID: "boot-\(tree)-1", promoted: true))

        let other = (0..<1000).first { $0 != tree && TelemetryPolicy.unitHash("boot-\($0)-1") >= 0.1 }!
        var tagged = processEvent(tree: other, pid: other, kind: .fileWrite)
        tagged.tags = ["identity"]
        #expect(policy.admit(&tagged, now: 1).kept)
    }

    @Test func offDropsAndFullKeeps() throws {
        let policy = try cattlePolicy {
            $0.profiles["cattle"]?.treatments[.file] = .off
            $0.mustKeepExecutables = ["/usr/sbin/sshd"]
        }
        var file = processEvent(tree: 1, pid: 1, kind: .fileOpen)
        #expect(policy.admit(&file, now: 1) == .drop(.file))
        var sshd = processEvent(tree: 1, pid: 1, kind: .fileOpen, executable: "/usr/sbin/sshd")
        #expect(policy.admit(&sshd, now: 1) == .keep(.file))
        var module = processEvent(tree: 1, pid: 1, kind: .moduleLoad)
        #expect(policy.admit(&module, now: 1) == .keep(.module))
    }
}

@Suite struct FirstSeenTests {
    @Test func aNewProgramIsKeptAndFlaggedOncePerHost() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-seen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("executables").path
        let registry = ExecutableRegistry(path: path, baseline: ["/usr/bin/true"])
        let policy = try cattlePolicy(executables: registry) { $0.profiles["cattle"]?.treatments[.process] = .off }

        var known = processEvent(tree: 5, pid: 5)
        #expect(!policy.admit(&known, now: 1).kept)
        var new = processEvent(tree: 5, pid: 6, executable: "/tmp/dropper")
        #expect(policy.admit(&new, now: 1).kept)
        #expect(new.firstSeen)
        var again = processEvent(tree: 7, pid: 7, executable: "/tmp/dropper")
        #expect(!policy.admit(&again, now: 1).kept)
        #expect(!again.firstSeen)

        // Across a restart, with another baseline: the host remembers both.
        let reopened = ExecutableRegistry(path: path, baseline: [String]())
        #expect(reopened.contains("/usr/bin/true") && reopened.contains("/tmp/dropper"))
        #expect(reopened.observe("/usr/bin/new"))
        #expect(!reopened.observe("/usr/bin/new"))
    }
}

@Suite struct AggregationTests {
    @Test func connectionsAreCountedPerProgramAndDestination() throws {
        let policy = try cattlePolicy()
        policy.hostName = "web1"
        for index in 0..<100 {
            var event = processEvent(tree: 1, pid: 1, kind: .networkConnect, executable: "/usr/bin/curl")
            var destination = Event.Endpoint()
            destination.ip = index % 10 < 7 ? "10.0.0.1" : "10.0.0.2"
            destination.port = 443
            event.destination = destination
            #expect(policy.admit(&event, now: 1000 + Int64(index)) == .drop(.network))
        }
        #expect(policy.tick(now: 30_000).isEmpty)
        let counts = policy.tick(now: 61_000)
        #expect(counts.count == 2)
        #expect(counts.map { $0.aggregate?.count } == [70, 30])
        #expect(counts.first?.aggregate?.key == "network-connected /usr/bin/curl 10.0.0.1:443")
        #expect(counts.first?.destination?.ip == "10.0.0.1")
        #expect(counts.first?.kind == .telemetryAggregate)
        #expect(counts.first?.host.name == "web1")
        #expect(counts.first?.aggregate?.windowStart == 1000)
        #expect(policy.tick(now: 200_000).isEmpty)
        let json = String(decoding: ECSEncoder().encode(counts[0]), as: UTF8.self)
        #expect(json.contains(#""aggregate":{"class":"network","key":"network-connected /usr/bin/curl 10.0.0.1:443","count":70"#))
    }
}

@Suite struct EscalationTests {
    @Test func aRaisedLevelKeepsEverythingAndFallsBackWhenItExpires() throws {
        let policy = try cattlePolicy()
        let tree = (0..<1000).first { TelemetryPolicy.unitHash("boot-\($0)-1") >= 0.1 }!
        var event = processEvent(tree: tree, pid: tree)
        #expect(!policy.admit(&event, now: 1).kept)

        let raised = try policy.setLevel("pet", until: 1_800_000, requestedBy: "local", now: 1000)
        #expect(raised.kind == .levelChange)
        #expect(raised.levelChange == Event.LevelChange(previous: "cattle", current: "pet", reason: "escalation", requestedBy: "local", expiresAt: 1_800_000))
        #expect(policy.profile.name == "pet")
        event = processEvent(tree: tree, pid: tree)
        #expect(policy.admit(&event, now: 2000).kept)
        #expect(event.sampling == nil)

        #expect(policy.tick(now: 1_799_999).filter { $0.kind == .levelChange }.isEmpty)
        let expiry = policy.tick(now: 1_800_000)
        #expect(expiry.first?.levelChange?.reason == "expiry")
        #expect(expiry.first?.levelChange?.current == "cattle")
        #expect(policy.profile.name == "cattle" && policy.expiresAt == nil)

        #expect(throws: PolicyError.self) { try policy.setLevel("gold", until: nil, requestedBy: "local", now: 1) }
        #expect(throws: PolicyError.self) { try policy.setLevel("pet", until: 5, requestedBy: "local", now: 10) }
        let reset = try policy.setLevel("cattle", until: nil, requestedBy: "local", now: 3)
        #expect(reset.levelChange?.reason == "reset")
    }

    @Test func aRestartedAgentResumesARaisedLevelUntilItExpires() throws {
        let policy = try cattlePolicy()
        #expect(policy.resume("pet", until: 100, now: 200) == nil)
        #expect(policy.resume("cattle", until: nil, now: 200) == nil)
        let resumed = try #require(policy.resume("pet", until: 5000, now: 200))
        #expect(resumed.levelChange?.reason == "restart")
        #expect(policy.expiresAt == 5000)
    }
}

@Suite struct CostTests {
    @Test func eachProfileAndClassKeepsItsOwnCounts() {
        let ledger = CostLedger(now: 0)
        // Classes in turn and profiles switching back and forth: no two may share counts.
        for round in 1...3 {
            for profile in ["pet", "cattle"] {
                for (offset, eventClass) in EventClass.allCases.enumerated() {
                    ledger.record(eventClass, profile: profile, bytes: 100 * (offset + 1) + (profile == "pet" ? 1 : 2), kept: round != 2, now: 10)
                }
            }
        }
        let totals = ledger.totals()
        #expect(totals.count == 2 * EventClass.allCases.count)
        for (offset, eventClass) in EventClass.allCases.enumerated() {
            for (profile, extra) in [("pet", 1), ("cattle", 2)] {
                let size = 100 * (offset + 1) + extra
                let counts = totals[CostLedger.Key(profile: profile, eventClass: eventClass)]
                #expect(counts?.eventsBefore == 3 && counts?.eventsAfter == 2, "\(profile) \(eventClass)")
                #expect(counts?.bytesBefore == 3 * size && counts?.bytesAfter == 2 * size, "\(profile) \(eventClass)")
            }
        }
        #expect(ledger.currentMinute(now: 20) == totals)
    }

    @Test func costIsCountedBeforeAndAfterPerClassAndMinute() {
        let ledger = CostLedger(now: 60_000)
        ledger.record(.process, profile: "cattle", bytes: 1000, kept: true, now: 60_001)
        #expect(ledger.wantsMeasurement(.process) == false)
        // Dropped and not weighed: estimated from the class's mean.
        ledger.record(.process, profile: "cattle", bytes: nil, kept: false, now: 60_002)
        ledger.record(.process, profile: "cattle", bytes: 3000, kept: false, now: 60_003)
        ledger.recordProduced(.health, profile: "cattle", bytes: 200, now: 60_004)
        let totals = ledger.totals()[CostLedger.Key(profile: "cattle", eventClass: .process)]
        #expect(totals?.eventsBefore == 3 && totals?.eventsAfter == 1)
        #expect(totals?.bytesBefore == 1000 + 1000 + 3000 && totals?.bytesAfter == 1000)
        #expect(ledger.totals()[CostLedger.Key(profile: "cattle", eventClass: .health)]?.eventsBefore == 0)

        let beat = ledger.takeSinceHeartbeat()
        #expect(beat.map(\.eventClass) == ["process", "health"])
        #expect(beat.first == Event.ClassCost(eventClass: "process", eventsBefore: 3, eventsAfter: 1, bytesBefore: 5000, bytesAfter: 1000))
        #expect(ledger.takeSinceHeartbeat().isEmpty)

        // The next minute: the last one is complete.
        ledger.record(.file, profile: "pet", bytes: 10, kept: true, now: 125_000)
        #expect(ledger.lastMinuteStart == 60_000)
        #expect(ledger.lastMinute[CostLedger.Key(profile: "cattle", eventClass: .process)]?.eventsBefore == 3)
        #expect(ledger.currentMinute(now: 125_001).count == 1)
        // Every 16th dropped event of a class is weighed.
        for _ in 0..<15 { ledger.record(.process, profile: "cattle", bytes: nil, kept: false, now: 125_002) }
        #expect(ledger.wantsMeasurement(.process))
    }
}
