import Foundation
import Testing

@testable import HerdwatchDetection

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
