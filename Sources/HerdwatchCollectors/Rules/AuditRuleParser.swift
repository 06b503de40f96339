import CLinuxAudit
import HerdwatchAudit

#if canImport(Glibc)
import Glibc
#endif

/// What one line of an audit rule file asks for.
public enum AuditRuleCommand: Sendable, Hashable {
    /// `-a` / `-A` / `-w`
    case add(AuditRule)
    /// `-d` / `-W`
    case delete(AuditRule)
    /// `-D`, optionally only the rules with a key (`-D -k KEY`).
    case deleteAll(key: String?)
    /// `-e 0|1|2` (2 locks the configuration until reboot).
    case setEnabled(UInt32)
    /// `-f 0|1|2`: silent, printk, panic.
    case setFailure(UInt32)
    /// `-b N`
    case setBacklogLimit(UInt32)
    /// `--backlog_wait_time N`
    case setBacklogWaitTime(UInt32)
    /// `-r N` messages per second
    case setRateLimit(UInt32)
    /// `--loginuid-immutable`
    case makeLoginUIDImmutable
    /// `--reset-lost`
    case resetLostCounter
    /// `-i`: keep going past rules the kernel rejects (this file only)
    case ignoreErrors
    /// `-c`: continue loading past errors
    case continueOnErrors
}

/// A rule-file line that cannot be loaded: which file, which line, and why.
public struct AuditRuleError: Error, Sendable, Hashable, CustomStringConvertible {
    public var source: String
    public var line: Int
    public var reason: String

    public init(source: String, line: Int, reason: String) {
        self.source = source
        self.line = line
        self.reason = reason
    }

    public var description: String { "\(source):\(line): \(reason)" }
}

/// A command with the place it came from.
public struct AuditRuleLine: Sendable, Hashable {
    public var source: String
    public var line: Int
    public var text: String
    public var command: AuditRuleCommand
}

/// Reads rule files in auditctl syntax (`audit.rules(7)`) and resolves every name the kernel does not
/// know — syscall names for the rule's architecture, errno names, users, groups, record types,
/// permissions, file types — so the result can be encoded without shelling out to auditctl.
public struct AuditRuleParser: Sendable {
    /// The machine's own AUDIT_ARCH_* value: what `b64` means, and the syscall table for rules
    /// without `-F arch=`.
    public var machineArch: UInt32
    /// Names to ids; the host's user database by default.
    public var userID: @Sendable (String) -> UInt32?
    public var groupID: @Sendable (String) -> UInt32?
    /// Whether a watched path is a directory (`-w /etc/` watches the tree, as `dir=`); stat(2) by default.
    public var isDirectory: @Sendable (String) -> Bool

    public init(
        machineArch: UInt32 = AuditRuleParser.hostArch,
        userID: @escaping @Sendable (String) -> UInt32? = AuditRuleParser.systemUserID,
        groupID: @escaping @Sendable (String) -> UInt32? = AuditRuleParser.systemGroupID,
        isDirectory: @escaping @Sendable (String) -> Bool = AuditRuleParser.systemIsDirectory
    ) {
        self.machineArch = machineArch
        self.userID = userID
        self.groupID = groupID
        self.isDirectory = isDirectory
    }

    @Sendable public static func systemIsDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    public static var hostArch: UInt32 {
        #if arch(x86_64)
        Syscalls.x86_64Arch
        #elseif arch(arm64)
        Syscalls.aarch64Arch
        #else
        0
        #endif
    }

    @Sendable public static func systemUserID(_ name: String) -> UInt32? {
        guard let entry = getpwnam(name) else { return nil }
        return entry.pointee.pw_uid
    }

    @Sendable public static func systemGroupID(_ name: String) -> UInt32? {
        guard let entry = getgrnam(name) else { return nil }
        return entry.pointee.gr_gid
    }

    /// Parses a whole file. Comments (`#`) and blank lines are skipped; every other line yields a
    /// command or an error, and an error never stops the lines after it.
    public func parse(_ text: String, source: String) -> (lines: [AuditRuleLine], errors: [AuditRuleError]) {
        var lines: [AuditRuleLine] = []
        var errors: [AuditRuleError] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = raw.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let text = String(trimmed.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
            do {
                let command = try parse(line: text)
                lines.append(AuditRuleLine(source: source, line: index + 1, text: text, command: command))
            } catch {
                errors.append(AuditRuleError(source: source, line: index + 1, reason: error.reason))
            }
        }
        return (lines, errors)
    }

    struct Failure: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Parses one line (without comment).
    func parse(line: String) throws(Failure) -> AuditRuleCommand {
        let words = try Self.words(line)
        guard let first = words.first else { throw Failure("empty rule") }
        var index = 1
        func argument(_ option: String) throws(Failure) -> String {
            guard index < words.count else { throw Failure("\(option) needs an argument") }
            defer { index += 1 }
            return words[index]
        }
        func number(_ option: String, _ text: String, maximum: UInt32 = .max) throws(Failure) -> UInt32 {
            guard let value = UInt32(text), value <= maximum else {
                throw Failure("\(option) wants a number\(maximum < .max ? " from 0 to \(maximum)" : ""), not '\(text)'")
            }
            return value
        }

        switch first {
        case "-e":
            let value = try number("-e", try argument("-e"), maximum: 2)
            try expectEnd(words, index)
            return .setEnabled(value)
        case "-f":
            let value = try number("-f", try argument("-f"), maximum: 2)
            try expectEnd(words, index)
            return .setFailure(value)
        case "-b":
            let value = try number("-b", try argument("-b"))
            try expectEnd(words, index)
            return .setBacklogLimit(value)
        case "-r":
            let value = try number("-r", try argument("-r"))
            try expectEnd(words, index)
            return .setRateLimit(value)
        case "--backlog_wait_time":
            let value = try number("--backlog_wait_time", try argument("--backlog_wait_time"))
            try expectEnd(words, index)
            return .setBacklogWaitTime(value)
        case "--loginuid-immutable":
            try expectEnd(words, index)
            return .makeLoginUIDImmutable
        case "--reset-lost":
            try expectEnd(words, index)
            return .resetLostCounter
        case "-i":
            try expectEnd(words, index)
            return .ignoreErrors
        case "-c":
            try expectEnd(words, index)
            return .continueOnErrors
        case "-D":
            if index == words.count { return .deleteAll(key: nil) }
            guard words[index] == "-k" else { throw Failure("-D takes only -k KEY") }
            index += 1
            let key = try argument("-k")
            try expectEnd(words, index)
            return .deleteAll(key: key)
        case "-a", "-A", "-d", "-w", "-W":
            return try parseRule(words)
        case "-l", "-s", "-m", "-t", "-R", "-v", "-h", "--signal", "-q", "-S", "-F", "-k", "-p", "-C":
            throw Failure("'\(first)' cannot start a rule line (only -a, -A, -d, -w, -W, -D and settings can)")
        default:
            throw Failure("unknown option '\(first)'")
        }
    }

    private func expectEnd(_ words: [String], _ index: Int) throws(Failure) {
        guard index == words.count else { throw Failure("unexpected '\(words[index])'") }
    }

    // MARK: Rules

    private func parseRule(_ words: [String]) throws(Failure) -> AuditRuleCommand {
        var rule: AuditRule?
        var deleting = false
        var watchPath: String?
        var permissions: UInt32?
        var syscallNames: [String] = []
        var pendingFields: [(name: String, op: AuditRule.Operator, value: String)] = []
        var comparisons: [AuditRule.Field] = []
        var keys: [String] = []
        var arch: UInt32?
        // Fields in the order given; comparisons (-C) and -F share it.
        enum Item { case field(Int), comparison(Int) }
        var order: [Item] = []

        var index = 0
        func argument(_ option: String) throws(Failure) -> String {
            guard index + 1 < words.count else { throw Failure("\(option) needs an argument") }
            index += 1
            return words[index]
        }
        while index < words.count {
            let word = words[index]
            switch word {
            case "-a", "-A", "-d":
                guard rule == nil, watchPath == nil else { throw Failure("only one -a, -A, -d, -w or -W per line") }
                let spec = try argument(word)
                rule = try Self.listAndAction(spec)
                rule?.prepend = word == "-A"
                deleting = word == "-d"
            case "-w", "-W":
                guard rule == nil, watchPath == nil else { throw Failure("only one -a, -A, -d, -w or -W per line") }
                let path = try argument(word)
                guard path.hasPrefix("/") else { throw Failure("watch path must be absolute: '\(path)'") }
                watchPath = path
                deleting = word == "-W"
            case "-p":
                let text = try argument("-p")
                permissions = try Self.permissions(text)
                if rule != nil {
                    // In an -a rule, -p is -F perm=.
                    order.append(.field(pendingFields.count))
                    pendingFields.append(("perm", .equal, text))
                }
            case "-S":
                for name in try argument("-S").split(separator: ",") { syscallNames.append(String(name)) }
            case "-k":
                keys.append(try argument("-k"))
            case "-F":
                let expression = try argument("-F")
                let (name, op, value) = try Self.split(expression)
                if name == "key" {
                    guard op == .equal else { throw Failure("key only takes '='") }
                    keys.append(value)
                } else if name == "arch" {
                    guard op == .equal || op == .notEqual else { throw Failure("arch only takes '=' or '!='") }
                    arch = try resolveArch(value)
                    order.append(.field(pendingFields.count))
                    pendingFields.append((name, op, value))
                } else {
                    order.append(.field(pendingFields.count))
                    pendingFields.append((name, op, value))
                }
            case "-C":
                let expression = try argument("-C")
                order.append(.comparison(comparisons.count))
                comparisons.append(try Self.comparison(expression))
            default:
                throw Failure("unknown option '\(word)' in a rule")
            }
            index += 1
        }

        if let path = watchPath {
            guard syscallNames.isEmpty, pendingFields.isEmpty, comparisons.isEmpty else {
                throw Failure("-w takes only -p and -k")
            }
            var watch = AuditRule(list: .exit, action: .always)
            // As auditctl: trailing slashes go, and a directory is watched as a tree (dir=).
            var trimmed = Substring(path)
            while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
            let directory = trimmed.count < path.count || isDirectory(String(trimmed))
            watch.fields.append(
                AuditRule.Field(
                    id: UInt32(directory ? AUDIT_DIR : AUDIT_WATCH), op: .equal, value: .string(Array(trimmed.utf8))))
            watch.fields.append(
                AuditRule.Field(id: UInt32(AUDIT_PERM), op: .equal, value: .number(permissions ?? Self.allPermissions)))
            watch.keys = keys
            try Self.checkKeys(keys)
            return deleting ? .delete(watch) : .add(watch)
        }
        guard var rule else { throw Failure("no -a, -A or -d list,action") }

        let syscallArch = arch ?? machineArch
        if syscallNames.isEmpty || syscallNames.contains("all") {
            guard syscallNames.isEmpty || syscallNames == ["all"] else { throw Failure("-S all cannot be combined") }
            rule.syscalls = .all
        } else {
            guard rule.list == .exit || rule.list == .ioUringExit else {
                throw Failure("-S only applies to the exit and io_uring lists")
            }
            guard Syscalls.hasTable(arch: syscallArch) else {
                throw Failure("no syscall table for arch 0x\(String(syscallArch, radix: 16)) on this machine")
            }
            var numbers: [Int] = []
            for name in syscallNames {
                if let number = Syscalls.number(arch: syscallArch, name: name) {
                    numbers.append(number)
                } else if let number = Int(name), number >= 0, number <= Syscalls.maximumNumber(arch: syscallArch) ?? -1 {
                    numbers.append(number)
                } else {
                    throw Failure(
                        "unknown syscall '\(name)' for \(Syscalls.archName(syscallArch) ?? "this arch") (not in the tables generated from linux-libc-dev)")
                }
            }
            rule.syscalls = .numbers(numbers)
        }

        for item in order {
            switch item {
            case .comparison(let at): rule.fields.append(comparisons[at])
            case .field(let at):
                let (name, op, value) = pendingFields[at]
                rule.fields.append(try field(name, op, value, list: rule.list, arch: arch))
            }
        }
        try Self.checkKeys(keys)
        rule.keys = keys
        guard rule.fields.count + (keys.isEmpty ? 0 : 1) <= AuditRule.maximumFields else {
            throw Failure("more than \(AuditRule.maximumFields) fields")
        }
        return deleting ? .delete(rule) : .add(rule)
    }

    private static func checkKeys(_ keys: [String]) throws(Failure) {
        let length = keys.map { $0.utf8.count }.reduce(0, +) + max(0, keys.count - 1)
        guard length <= Int(AUDIT_MAX_KEY_LEN) else { throw Failure("key longer than \(AUDIT_MAX_KEY_LEN) bytes") }
        if keys.contains(where: \.isEmpty) { throw Failure("empty key") }
    }

    static func listAndAction(_ spec: String) throws(Failure) -> AuditRule {
        let parts = spec.split(separator: ",").map(String.init)
        guard parts.count == 2 else { throw Failure("expected LIST,ACTION, not '\(spec)'") }
        func action(_ word: String) -> AuditRule.Action? {
            switch word {
            case "always": .always
            case "never": .never
            default: nil
            }
        }
        if parts.contains("entry") { throw Failure("the entry list was removed from the kernel; use exit") }
        if let list = AuditRule.List(name: parts[0]), let action = action(parts[1]) {
            return AuditRule(list: list, action: action)
        }
        if let list = AuditRule.List(name: parts[1]), let action = action(parts[0]) {
            return AuditRule(list: list, action: action)
        }
        throw Failure("unknown list or action in '\(spec)'")
    }

    private func resolveArch(_ value: String) throws(Failure) -> UInt32 {
        switch value {
        case "b64":
            guard machineArch & 0x8000_0000 != 0 else { throw Failure("b64 on a 32-bit machine") }
            return machineArch
        case "b32":
            switch machineArch {
            case Syscalls.x86_64Arch: return Syscalls.i386Arch
            case Syscalls.aarch64Arch: return 0x4000_0028  // AUDIT_ARCH_ARM
            default: throw Failure("no 32-bit arch on this machine")
            }
        default:
            if let arch = Syscalls.arch(named: value) { return arch }
            if let number = Self.integer(value) { return number }
            throw Failure("unknown arch '\(value)'")
        }
    }

    // MARK: Fields

    enum Kind {
        case number, signedNumber, uid, gid, exit, success, messageType, permission, fileType, path, label, fileSystem
    }

    static let fieldTable: [String: (id: Int32, kind: Kind)] = [
        "pid": (AUDIT_PID, .number), "ppid": (AUDIT_PPID, .number),
        "uid": (AUDIT_UID, .uid), "euid": (AUDIT_EUID, .uid), "suid": (AUDIT_SUID, .uid), "fsuid": (AUDIT_FSUID, .uid),
        "auid": (AUDIT_LOGINUID, .uid), "loginuid": (AUDIT_LOGINUID, .uid), "obj_uid": (AUDIT_OBJ_UID, .uid),
        "gid": (AUDIT_GID, .gid), "egid": (AUDIT_EGID, .gid), "sgid": (AUDIT_SGID, .gid), "fsgid": (AUDIT_FSGID, .gid),
        "obj_gid": (AUDIT_OBJ_GID, .gid),
        "pers": (AUDIT_PERS, .number), "arch": (AUDIT_ARCH, .number), "msgtype": (AUDIT_MSGTYPE, .messageType),
        "subj_user": (AUDIT_SUBJ_USER, .label), "subj_role": (AUDIT_SUBJ_ROLE, .label),
        "subj_type": (AUDIT_SUBJ_TYPE, .label), "subj_sen": (AUDIT_SUBJ_SEN, .label),
        "subj_clr": (AUDIT_SUBJ_CLR, .label), "obj_user": (AUDIT_OBJ_USER, .label),
        "obj_role": (AUDIT_OBJ_ROLE, .label), "obj_type": (AUDIT_OBJ_TYPE, .label),
        "obj_lev_low": (AUDIT_OBJ_LEV_LOW, .label), "obj_lev_high": (AUDIT_OBJ_LEV_HIGH, .label),
        "loginuid_set": (AUDIT_LOGINUID_SET, .number), "sessionid": (AUDIT_SESSIONID, .number),
        "fstype": (AUDIT_FSTYPE, .fileSystem),
        "devmajor": (AUDIT_DEVMAJOR, .number), "devminor": (AUDIT_DEVMINOR, .number), "inode": (AUDIT_INODE, .number),
        "exit": (AUDIT_EXIT, .exit), "success": (AUDIT_SUCCESS, .success),
        "path": (AUDIT_WATCH, .path), "dir": (AUDIT_DIR, .path), "exe": (AUDIT_EXE, .path),
        "perm": (AUDIT_PERM, .permission), "filetype": (AUDIT_FILETYPE, .fileType),
        "saddr_fam": (AUDIT_SADDR_FAM, .number),
        "a0": (AUDIT_ARG0, .signedNumber), "a1": (AUDIT_ARG1, .signedNumber),
        "a2": (AUDIT_ARG2, .signedNumber), "a3": (AUDIT_ARG3, .signedNumber),
    ]

    private func field(
        _ name: String, _ op: AuditRule.Operator, _ value: String, list: AuditRule.List, arch: UInt32?
    ) throws(Failure) -> AuditRule.Field {
        guard let (id, kind) = Self.fieldTable[name] else { throw Failure("unknown field '\(name)'") }
        let fieldID = UInt32(id)
        func equality() throws(Failure) {
            guard op == .equal || op == .notEqual else { throw Failure("\(name) only takes '=' or '!='") }
        }
        let resolved: AuditRule.Field.Value
        switch kind {
        case .number:
            if name == "arch" {
                resolved = .number(try resolveArch(value))
            } else {
                guard let number = Self.integer(value) else { throw Failure("\(name) wants a number, not '\(value)'") }
                resolved = .number(number)
            }
        case .signedNumber:
            guard let number = Self.integer(value) else { throw Failure("\(name) wants a number, not '\(value)'") }
            resolved = .number(number)
        case .uid, .gid:
            if value == "unset" || value == "-1" {
                resolved = .number(.max)
            } else if let number = UInt32(value) {
                resolved = .number(number)
            } else if let number = kind == .uid ? userID(value) : groupID(value) {
                resolved = .number(number)
            } else {
                throw Failure("unknown \(kind == .uid ? "user" : "group") '\(value)' in \(name)")
            }
        case .exit:
            guard list == .exit || list == .ioUringExit else { throw Failure("exit only applies to the exit list") }
            if let number = Int32(value) {
                resolved = .number(UInt32(bitPattern: number))
            } else if value.hasPrefix("-"), let errno = Syscalls.errnoNumber(String(value.dropFirst())) {
                resolved = .number(UInt32(bitPattern: -Int32(errno)))
            } else if let errno = Syscalls.errnoNumber(value) {
                resolved = .number(UInt32(errno))
            } else {
                throw Failure("exit wants a number or -ERRNO name, not '\(value)'")
            }
        case .success:
            guard list == .exit || list == .ioUringExit else { throw Failure("success only applies to the exit list") }
            try equality()
            switch value {
            case "0", "no", "false": resolved = .number(0)
            case "1", "yes", "true": resolved = .number(1)
            default: throw Failure("success wants 0 or 1, not '\(value)'")
            }
        case .messageType:
            guard list == .exclude || list == .user else { throw Failure("msgtype only applies to the exclude and user lists") }
            if let number = UInt32(value) {
                resolved = .number(number)
            } else if let known = RecordTypes.lookup(name: Array(value.utf8)[...]) {
                resolved = .number(UInt32(known.number))
            } else {
                throw Failure("unknown record type '\(value)' in msgtype")
            }
        case .permission:
            try equality()
            resolved = .number(try Self.permissions(value))
        case .fileType:
            try equality()
            guard let type = Self.fileTypes[value] else { throw Failure("unknown filetype '\(value)'") }
            resolved = .number(type)
        case .path:
            try equality()
            guard value.hasPrefix("/") else { throw Failure("\(name) must be an absolute path: '\(value)'") }
            guard value.utf8.count < Int(PATH_MAX) else { throw Failure("\(name) longer than PATH_MAX") }
            resolved = .string(Array(value.utf8))
        case .label:
            try equality()
            resolved = .string(Array(value.utf8))
        case .fileSystem:
            try equality()
            switch value {
            case "debugfs": resolved = .number(0x6462_6720)
            case "tracefs": resolved = .number(0x7472_6163)
            default:
                guard let number = Self.integer(value) else { throw Failure("unknown fstype '\(value)'") }
                resolved = .number(number)
            }
        }
        return AuditRule.Field(id: fieldID, op: op, value: resolved)
    }

    static let allPermissions = UInt32(AUDIT_PERM_READ | AUDIT_PERM_WRITE | AUDIT_PERM_EXEC | AUDIT_PERM_ATTR)

    static func permissions(_ text: String) throws(Failure) -> UInt32 {
        var bits: UInt32 = 0
        for character in text {
            switch character {
            case "r": bits |= UInt32(AUDIT_PERM_READ)
            case "w": bits |= UInt32(AUDIT_PERM_WRITE)
            case "x": bits |= UInt32(AUDIT_PERM_EXEC)
            case "a": bits |= UInt32(AUDIT_PERM_ATTR)
            default: throw Failure("permissions are r, w, x and a, not '\(text)'")
            }
        }
        guard bits != 0 else { throw Failure("empty permissions") }
        return bits
    }

    static let fileTypes: [String: UInt32] = [
        "file": UInt32(S_IFREG), "dir": UInt32(S_IFDIR), "socket": UInt32(S_IFSOCK), "link": UInt32(S_IFLNK),
        "symlink": UInt32(S_IFLNK), "character": UInt32(S_IFCHR), "char": UInt32(S_IFCHR),
        "block": UInt32(S_IFBLK), "fifo": UInt32(S_IFIFO),
    ]

    /// `-C uid!=euid`: the comparison number comes from the pair of fields.
    static func comparison(_ expression: String) throws(Failure) -> AuditRule.Field {
        let (left, op, right) = try split(expression)
        guard op == .equal || op == .notEqual else { throw Failure("-C only takes '=' or '!='") }
        func normalized(_ name: String) -> String { name == "loginuid" ? "auid" : name }
        let pair = (normalized(left), normalized(right))
        let table: [String: Int32] = [
            "uid obj_uid": AUDIT_COMPARE_UID_TO_OBJ_UID, "gid obj_gid": AUDIT_COMPARE_GID_TO_OBJ_GID,
            "euid obj_uid": AUDIT_COMPARE_EUID_TO_OBJ_UID, "egid obj_gid": AUDIT_COMPARE_EGID_TO_OBJ_GID,
            "auid obj_uid": AUDIT_COMPARE_AUID_TO_OBJ_UID, "suid obj_uid": AUDIT_COMPARE_SUID_TO_OBJ_UID,
            "sgid obj_gid": AUDIT_COMPARE_SGID_TO_OBJ_GID, "fsuid obj_uid": AUDIT_COMPARE_FSUID_TO_OBJ_UID,
            "fsgid obj_gid": AUDIT_COMPARE_FSGID_TO_OBJ_GID, "uid auid": AUDIT_COMPARE_UID_TO_AUID,
            "uid euid": AUDIT_COMPARE_UID_TO_EUID, "uid fsuid": AUDIT_COMPARE_UID_TO_FSUID,
            "uid suid": AUDIT_COMPARE_UID_TO_SUID, "auid fsuid": AUDIT_COMPARE_AUID_TO_FSUID,
            "auid suid": AUDIT_COMPARE_AUID_TO_SUID, "auid euid": AUDIT_COMPARE_AUID_TO_EUID,
            "euid suid": AUDIT_COMPARE_EUID_TO_SUID, "euid fsuid": AUDIT_COMPARE_EUID_TO_FSUID,
            "suid fsuid": AUDIT_COMPARE_SUID_TO_FSUID, "gid egid": AUDIT_COMPARE_GID_TO_EGID,
            "gid fsgid": AUDIT_COMPARE_GID_TO_FSGID, "gid sgid": AUDIT_COMPARE_GID_TO_SGID,
            "egid fsgid": AUDIT_COMPARE_EGID_TO_FSGID, "egid sgid": AUDIT_COMPARE_EGID_TO_SGID,
            "sgid fsgid": AUDIT_COMPARE_SGID_TO_FSGID,
        ]
        guard let value = table["\(pair.0) \(pair.1)"] ?? table["\(pair.1) \(pair.0)"] else {
            throw Failure("cannot compare \(left) with \(right)")
        }
        return AuditRule.Field(id: UInt32(AUDIT_FIELD_COMPARE), op: op, value: .number(UInt32(value)))
    }

    /// `name OP value`, the operator found at its first position.
    static func split(_ expression: String) throws(Failure) -> (String, AuditRule.Operator, String) {
        let characters = Array(expression)
        for position in characters.indices where "=!<>&".contains(characters[position]) {
            for (spelling, op) in AuditRule.Operator.spellings
            where characters[position...].starts(with: spelling) {
                let name = String(characters[..<position])
                let value = String(characters[(position + spelling.count)...])
                guard !name.isEmpty else { throw Failure("missing field name in '\(expression)'") }
                guard !value.isEmpty else { throw Failure("missing value in '\(expression)'") }
                return (name, op, value)
            }
        }
        throw Failure("expected FIELD OP VALUE, not '\(expression)'")
    }

    /// Decimal, `0x` hex or negative decimal (as two's complement), as auditctl's strtol/strtoul take.
    static func integer(_ text: String) -> UInt32? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt32(text.dropFirst(2), radix: 16) }
        if let value = UInt32(text) { return value }
        if let value = Int32(text) { return UInt32(bitPattern: value) }
        return nil
    }

    /// Splits a line into words; "double" and 'single' quotes keep spaces inside a word.
    static func words(_ line: String) throws(Failure) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        guard quote == nil else { throw Failure("unterminated quote") }
        if inWord { words.append(current) }
        return words
    }
}
