import HerdwatchEvents

/// Turns sshd, sudo and su lines of the system's auth log into the same login, session and command
/// events the audit path produces (`event.module: auth-log`).
///
/// Both syslog time formats are read: the classic `Nov 23 10:00:00 host prog[pid]: text` (the year
/// is supplied by the caller) and rsyslog's high-precision RFC 3339 form
/// `2026-11-23T10:00:00.123456+00:00 host prog[pid]: text`, Debian 12's default.
public struct AuthLogParser: Sendable {
    public var year: Int
    public var hostName: String?

    public init(year: Int, hostName: String? = nil) {
        self.year = year
        self.hostName = hostName
    }

    struct Header {
        var milliseconds: Int64
        var host: Substring
        var program: Substring
        var pid: Int64?
        var message: Substring
    }

    /// The event a line describes, or nil for lines that are not about logins, sessions, sudo or su.
    public func parse(_ line: Substring) -> Event? {
        guard let header = Self.header(line, year: year) else { return nil }
        return parse(
            program: header.program, pid: header.pid, host: header.host, milliseconds: header.milliseconds,
            message: header.message)
    }

    /// The event one message describes, when its parts come separately (the journal's fields).
    public func parse(program: Substring, pid: Int64?, host: Substring?, milliseconds: Int64, message: Substring) -> Event? {
        var event: Event?
        switch program {
        case "sshd": event = sshd(message)
        case "sudo": event = sudo(message)
        case "su": event = su(message)
        default: event = nil
        }
        if event == nil, message.hasPrefix("pam_unix(") { event = pam(message) }
        guard var result = event else { return nil }
        result.timestamp = AuditTimestamp(milliseconds: milliseconds)
        result.module = "auth-log"
        result.host.name = hostName ?? host.map(String.init)
        var process = result.process ?? Event.Process()
        process.name = String(program)
        process.pid = pid
        result.process = process
        result.message = String(message)
        return result
    }

    // MARK: Programs

    private func sshd(_ text: Substring) -> Event? {
        // Accepted publickey for alice from 10.0.0.5 port 51234 ssh2: RSA SHA256:...
        // Failed password for invalid user bob from 203.0.113.9 port 40022 ssh2
        for (prefix, outcome) in [("Accepted ", Outcome.success), ("Failed ", .failure)] where text.hasPrefix(prefix) {
            let words = text.split(separator: " ")
            guard let forIndex = words.firstIndex(of: "for"), forIndex + 1 < words.count else { return nil }
            var nameIndex = forIndex + 1
            if words[nameIndex] == "invalid", nameIndex + 2 < words.count, words[nameIndex + 1] == "user" {
                nameIndex += 2
            }
            var event = Event(timestamp: AuditTimestamp(milliseconds: 0), kind: .userLogin, outcome: outcome)
            event.user = Self.user(named: words[nameIndex])
            event.source = Self.endpoint(words)
            return event
        }
        // Invalid user bob from 203.0.113.9 port 40022
        if text.hasPrefix("Invalid user ") {
            let words = text.split(separator: " ")
            var event = Event(timestamp: AuditTimestamp(milliseconds: 0), kind: .authentication, outcome: .failure)
            if words.count > 2, words[2] != "from" { event.user = Self.user(named: words[2]) }
            event.source = Self.endpoint(words)
            return event
        }
        return nil
    }

    private func sudo(_ text: Substring) -> Event? {
        //   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u
        //   alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls
        //   alice : user NOT in sudoers ; TTY=pts/0 ; ...
        let trimmed = text.drop { $0 == " " }
        guard let colon = trimmed.firstRange(of: " : ") else { return nil }
        let name = trimmed[..<colon.lowerBound]
        let parts = trimmed[colon.upperBound...].components(separatedBy: " ; ")
        var fields: [String: Substring] = [:]
        var problem: Substring?
        for part in parts {
            if let equals = part.firstIndex(of: "="), part[..<equals].allSatisfy({ $0.isUppercase }) {
                fields[String(part[..<equals])] = part[part.index(after: equals)...]
            } else {
                problem = part
            }
        }
        guard let command = fields["COMMAND"] else { return nil }
        var event = Event(
            timestamp: AuditTimestamp(milliseconds: 0), kind: .userCommand, outcome: problem == nil ? .success : .failure)
        var user = Self.user(named: name)
        if let target = fields["USER"] { user.effective = Event.Identity(id: nil, name: String(target)) }
        event.user = user
        var process = Event.Process()
        process.commandLine = String(command)
        process.workingDirectory = fields["PWD"].map(String.init)
        event.process = process
        var audit = Event.Audit(sequence: 0, recordType: "SUDO", records: [])
        audit.tty = fields["TTY"].map(String.init)
        audit.result = problem.map(String.init) ?? "success"
        event.audit = audit
        return event
    }

    private func su(_ text: Substring) -> Event? {
        // Debian: "(to root) alice on pts/0"; older: "Successful su for root by alice",
        // "FAILED SU (to root) alice on pts/0".
        var outcome = Outcome.success
        var rest = text
        if rest.hasPrefix("FAILED SU ") {
            outcome = .failure
            rest = rest.dropFirst("FAILED SU ".count)
        }
        if rest.hasPrefix("(to ") {
            let words = rest.dropFirst(4).split(separator: " ")
            guard words.count >= 2 else { return nil }
            let target = words[0].hasSuffix(")") ? words[0].dropLast() : words[0]
            return suEvent(by: words[1], to: target, outcome: outcome)
        }
        if rest.hasPrefix("Successful su for ") {
            let words = rest.split(separator: " ")
            guard words.count >= 6 else { return nil }
            return suEvent(by: words[5], to: words[3], outcome: .success)
        }
        return nil
    }

    private func suEvent(by name: Substring, to target: Substring, outcome: Outcome) -> Event {
        var event = Event(timestamp: AuditTimestamp(milliseconds: 0), kind: .credentialChange, outcome: outcome)
        var user = Self.user(named: name)
        user.effective = Event.Identity(id: nil, name: String(target))
        event.user = user
        return event
    }

    private func pam(_ text: Substring) -> Event? {
        // pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)
        // pam_unix(sudo:session): session closed for user root
        // pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/0 ruser=alice rhost=  user=root
        if let range = text.firstRange(of: "session opened for user ") ?? text.firstRange(of: "session closed for user ") {
            let opened = text[range].contains("opened")
            var name = text[range.upperBound...].prefix { $0 != " " && $0 != "(" }
            if name.hasSuffix(",") { name = name.dropLast() }
            var event = Event(
                timestamp: AuditTimestamp(milliseconds: 0), kind: opened ? .sessionStart : .sessionEnd, outcome: .success)
            event.user = Self.user(named: name)
            return event
        }
        if text.contains("): authentication failure;") {
            var event = Event(timestamp: AuditTimestamp(milliseconds: 0), kind: .authentication, outcome: .failure)
            let pairs = text.split(separator: " ").compactMap { word -> (Substring, Substring)? in
                guard let equals = word.firstIndex(of: "=") else { return nil }
                return (word[..<equals], word[word.index(after: equals)...])
            }
            let values = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
            if let target = values["user"], !target.isEmpty {
                event.user = Self.user(named: target)
            } else if let logname = values["logname"], !logname.isEmpty {
                event.user = Self.user(named: logname)
            }
            if let host = values["rhost"], !host.isEmpty {
                var source = Event.Endpoint()
                if host.contains(".") || host.contains(":") { source.ip = String(host) } else { source.domain = String(host) }
                event.source = source
            }
            return event
        }
        return nil
    }

    // MARK: Pieces

    static func user(named name: Substring) -> Event.User {
        var user = Event.User()
        user.user = Event.Identity(id: nil, name: String(name))
        return user
    }

    /// `from ADDRESS port PORT` anywhere in the words.
    static func endpoint(_ words: [Substring]) -> Event.Endpoint? {
        guard let from = words.firstIndex(of: "from"), from + 1 < words.count else { return nil }
        var endpoint = Event.Endpoint()
        endpoint.ip = String(words[from + 1])
        if from + 3 < words.count, words[from + 2] == "port", let port = Int(words[from + 3]) { endpoint.port = port }
        return endpoint
    }

    static let months: [Substring: Int] = [
        "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10,
        "Nov": 11, "Dec": 12,
    ]

    static func header(_ line: Substring, year: Int) -> Header? {
        let words = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        let milliseconds: Int64
        var rest: ArraySlice<Substring>
        if let first = words.first, first.count >= 19, first.dropFirst(4).first == "-",
            let time = rfc3339(first)
        {
            milliseconds = time
            rest = words.dropFirst()
            // Re-split: the message keeps its own spacing.
        } else if words.count >= 5, let month = months[words[0]], let day = Int(words[1]),
            let time = clock(words[2])
        {
            milliseconds = (civilDays(year: year, month: month, day: day) * 86_400 + time) * 1000
            rest = words.dropFirst(3)
        } else {
            return nil
        }
        guard rest.count >= 2 else { return nil }
        let host = rest[rest.startIndex]
        let tag = rest[rest.startIndex + 1]
        guard tag.hasSuffix(":") else { return nil }
        var program = tag.dropLast()
        var pid: Int64?
        if let open = program.firstIndex(of: "["), program.hasSuffix("]") {
            pid = Int64(program[program.index(after: open)..<program.index(before: program.endIndex)])
            program = program[..<open]
        }
        // The message: everything after "tag: " in the original line.
        guard let tagRange = line.firstRange(of: tag) else { return nil }
        var message = line[tagRange.upperBound...]
        if message.first == " " { message = message.dropFirst() }
        return Header(milliseconds: milliseconds, host: host, program: program, pid: pid, message: message)
    }

    /// `HH:MM:SS` → seconds of the day.
    static func clock(_ text: Substring) -> Int64? {
        let parts = text.split(separator: ":")
        guard parts.count == 3, let hours = Int64(parts[0]), let minutes = Int64(parts[1]),
            let seconds = Int64(parts[2].prefix(2))
        else { return nil }
        return hours * 3600 + minutes * 60 + seconds
    }

    /// `2026-11-23T10:00:00.123456+01:00` → milliseconds since the epoch (UTC).
    static func rfc3339(_ text: Substring) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[from..<(from + count)] {
                guard byte >= 48 && byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes.count >= 19, let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
            let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2)
        else { return nil }
        var index = 19
        var fraction = 0
        var digits = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 3 {
                    fraction = fraction * 10 + Int(bytes[index] - 48)
                    digits += 1
                }
                index += 1
            }
            while digits < 3 {
                fraction *= 10
                digits += 1
            }
        }
        var offset = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            guard let hours = number(index + 1, 2), let minutes = number(index + 4, 2) else { return nil }
            offset = (hours * 60 + minutes) * 60 * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
        }
        let seconds = civilDays(year: year, month: month, day: day) * 86_400
            + Int64(hour * 3600 + minute * 60 + second) - Int64(offset)
        return seconds * 1000 + Int64(fraction)
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date.
    static func civilDays(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension Substring {
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: separator) {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}
