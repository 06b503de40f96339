import Foundation
import Testing

@testable import HerdwatchDetection

/// ECS JSON events shaped as the agent writes them (docs/ecs-mapping.md), built from a few
/// parameters so that a near miss differs from its match in exactly one place.
enum ECS {
    static let start = "2026-11-23T10:00:00.000Z"

    static func json(_ object: [String: Any]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// `2026-11-23T10:00:00.000Z` plus `seconds`.
    static func time(_ seconds: Double) -> String {
        let milliseconds = Int((seconds * 1000).rounded())
        let total = 10 * 3_600_000 + milliseconds
        let hour = total / 3_600_000
        let minute = total / 60_000 % 60
        let second = total / 1000 % 60
        return String(format: "2026-11-23T%02d:%02d:%02d.%03dZ", hour, minute, second, total % 1000)
    }

    static func base(_ action: String, module: String = "auditd", host: String, time: String, id: String) -> [String: Any] {
        ["@timestamp": time, "event": ["action": action, "module": module, "id": id, "kind": "event"], "host": ["name": host]]
    }

    static func syscallRecord(_ number: String, exe: String, extra: [String: String] = [:], key: String? = nil) -> [String: Any] {
        var record: [String: Any] = [
            "type": "SYSCALL", "arch": "c000003e", "syscall": number, "success": "yes", "exit": "0", "a0": "0", "a1": "0",
            "ppid": "41", "pid": "42", "auid": "1000", "uid": "0", "gid": "0", "euid": "0", "comm": basename(exe), "exe": exe,
        ]
        if let key { record["key"] = key }
        for (name, value) in extra { record[name] = value }
        return record
    }

    static func basename(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }

    /// A `process-started` event (execve) with its SYSCALL, EXECVE and PATH records.
    static func process(
        _ executable: String, _ args: [String], commandLine: String? = nil, parent: String? = "/usr/bin/bash",
        parentArgs: [String]? = nil, user: String = "root", cwd: String? = "/root", host: String = "web1",
        time: String = start, id: String = "e-1"
    ) -> String {
        var object = base("process-started", host: host, time: time, id: id)
        var process: [String: Any] = [
            "pid": 42, "executable": executable, "name": basename(executable), "args": args, "args_count": args.count,
            "command_line": commandLine ?? args.joined(separator: " "),
        ]
        if let cwd { process["working_directory"] = cwd }
        if let parent {
            process["parent"] = ["pid": 41, "executable": parent, "name": basename(parent), "args": parentArgs ?? [basename(parent)]]
        }
        object["process"] = process
        object["user"] = ["id": user == "root" ? "0" : "1000", "name": user, "effective": ["name": user]]
        var execve: [String: Any] = ["type": "EXECVE", "argc": "\(args.count)"]
        for (index, arg) in args.enumerated() { execve["a\(index)"] = arg }
        object["auditd"] = [
            "syscall": "execve", "record_type": "SYSCALL", "result": "success",
            "records": [
                syscallRecord("59", exe: executable, key: "exec"), execve,
                ["type": "PATH", "item": "0", "name": executable, "nametype": "NORMAL"],
            ],
            "paths": [["name": executable, "nametype": "NORMAL"]],
        ]
        return json(object)
    }

    /// A file event (`file-created`, `file-modified`, ...): the PATH of the object, CREATE for creations.
    static func file(
        _ action: String, _ path: String, by executable: String = "/usr/bin/vi", nametype: String? = nil,
        host: String = "web1", time: String = start, id: String = "f-1"
    ) -> String {
        var object = base(action, host: host, time: time, id: id)
        object["file"] = ["path": path, "type": "file"]
        object["process"] = ["pid": 43, "executable": executable, "name": basename(executable)]
        object["user"] = ["id": "0", "name": "root"]
        let type = nametype ?? (action == "file-created" ? "CREATE" : action == "file-deleted" ? "DELETE" : "NORMAL")
        let syscall = action == "file-deleted" ? ("87", "unlink") : action == "file-renamed" ? ("82", "rename") : ("257", "openat")
        let parent = path.split(separator: "/").dropLast().joined(separator: "/")
        object["auditd"] = [
            "syscall": syscall.1, "record_type": "SYSCALL", "result": "success",
            "records": [
                syscallRecord(syscall.0, exe: executable, key: "files"),
                ["type": "CWD", "cwd": "/root"],
                ["type": "PATH", "item": "0", "name": "/" + parent + "/", "nametype": "PARENT"],
                ["type": "PATH", "item": "1", "name": path, "nametype": type],
            ],
            "paths": [["name": "/" + parent + "/", "nametype": "PARENT"], ["name": path, "nametype": type]],
        ]
        return json(object)
    }

    /// A `network-connected` (or `network-accepted`) event.
    static func network(
        _ executable: String, ip: String, port: Int, domain: String? = nil, action: String = "network-connected",
        host: String = "web1", time: String = start, id: String = "n-1"
    ) -> String {
        var object = base(action, host: host, time: time, id: id)
        var peer: [String: Any] = ["ip": ip, "address": ip, "port": port]
        if let domain { peer["domain"] = domain }
        // The same destination for an accept, so that a near miss differs in the action alone.
        object["destination"] = peer
        if action == "network-accepted" { object["source"] = peer }
        object["network"] = ["direction": action == "network-connected" ? "egress" : "ingress", "type": ip.contains(":") ? "ipv6" : "ipv4"]
        object["process"] = ["pid": 44, "executable": executable, "name": basename(executable)]
        object["user"] = ["id": "0", "name": "root"]
        let syscall = action == "network-connected" ? ("42", "connect") : ("43", "accept")
        object["auditd"] = [
            "syscall": syscall.1, "record_type": "SYSCALL", "result": "success",
            "records": [syscallRecord(syscall.0, exe: executable, key: "net"), ["type": "SOCKADDR", "saddr": "0200115C7F0000010000000000000000"]],
        ]
        return json(object)
    }

    /// A line of the auth log (sshd, sudo, su, useradd ...) as the auth-log source reports it.
    static func authLog(
        _ message: String, action: String = "user-login", program: String = "sshd", outcome: String = "failure",
        user: String? = "alice", effectiveUser: String? = nil, commandLine: String? = nil, sourceIP: String? = nil,
        host: String = "web1", time: String = start, id: String = "a-1"
    ) -> String {
        var object = base(action, module: "auth-log", host: host, time: time, id: id)
        var event = object["event"] as! [String: Any]
        event["outcome"] = outcome
        object["event"] = event
        object["message"] = message
        var process: [String: Any] = ["pid": 900, "name": program]
        if let commandLine { process["command_line"] = commandLine }
        object["process"] = process
        var userObject: [String: Any] = [:]
        if let user { userObject["name"] = user }
        if let effectiveUser { userObject["effective"] = ["name": effectiveUser] }
        if !userObject.isEmpty { object["user"] = userObject }
        if let sourceIP { object["source"] = ["ip": sourceIP, "address": sourceIP] }
        return json(object)
    }

    /// An audit event of any kind given its records (`service: auditd` rules read them one by one).
    static func audit(
        _ action: String, syscall: String? = nil, records: [[String: Any]], process: [String: Any]? = nil,
        user: [String: Any] = ["id": "0", "name": "root"], host: String = "web1", time: String = start, id: String = "r-1"
    ) -> String {
        var object = base(action, host: host, time: time, id: id)
        var auditd: [String: Any] = ["records": records, "record_type": records.first?["type"] ?? "SYSCALL"]
        if let syscall { auditd["syscall"] = syscall }
        object["auditd"] = auditd
        if let process { object["process"] = process }
        object["user"] = user
        return json(object)
    }
}

/// Loading rules from text and running them over events.
enum Rules {
    /// A whole rule around a detection block (given without indentation).
    static func rule(
        _ detection: String, logsource: String = "product: linux\ncategory: process_creation", id: String = "rule-under-test",
        extra: String = ""
    ) -> String {
        """
        title: Rule under test
        id: \(id)
        status: test
        \(extra)logsource:
        \(indent(logsource))
        detection:
        \(indent(detection))
        level: high

        """
    }

    static func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "    " + $0 }.joined(separator: "\n")
    }

    /// Loads YAML that must load cleanly.
    static func load(_ yaml: String, file: String = "inline.yml", sourceLocation: SourceLocation = #_sourceLocation) throws -> SigmaLoader.Result {
        let result = SigmaLoader.load(yaml: yaml, file: file)
        try #require(result.errors.isEmpty, "rule did not load: \(result.errors.map(\.description))", sourceLocation: sourceLocation)
        return result
    }

    /// A detector over the rules and correlations in `yaml`.
    static func detector(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Detector {
        let result = try load(yaml, sourceLocation: sourceLocation)
        return Detector(ruleSet: try RuleSet(rules: result.rules, correlations: result.correlations))
    }

    /// The rule ids of the alerts one event raises.
    static func alerts(_ detector: inout Detector, _ event: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let subject = try #require(JSONSubject(json: event), "not a JSON object: \(event)", sourceLocation: sourceLocation)
        return detector.process(subject).map(\.ruleID)
    }

    /// Whether a single-rule YAML (id `rule-under-test`) raises its alert for `event`.
    static func fires(_ yaml: String, on event: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        var detector = try detector(yaml, sourceLocation: sourceLocation)
        let ids = try alerts(&detector, event, sourceLocation: sourceLocation)
        return ids.contains("rule-under-test")
    }
}

/// The SigmaHQ Linux rules in the shared corpus beside the checkout (read-only).
enum SigmaCorpus {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let root = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/sigma").path

    static func path(_ relative: String) -> String { root + "/" + relative }
}
