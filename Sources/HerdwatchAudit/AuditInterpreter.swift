import HerdwatchEvents

/// Resolves numeric ids to names on a live host (replay takes names from ENRICHED fields instead).
public protocol UserNameResolver: Sendable {
    func userName(uid: UInt32) -> String?
    func groupName(gid: UInt32) -> String?
}

/// Turns the records of one audit event into a typed `Event`: names the syscall and architecture,
/// decodes hex strings, sockaddr and proctitle, reassembles EXECVE arguments, resolves paths against
/// the working directory, and classifies the event (see `EventKind`).
public struct AuditInterpreter: Sendable {
    /// Used as `host.name` when a record has no `node=`.
    public var hostName: String?
    public var userNames: (any UserNameResolver)?

    public init(hostName: String? = nil, userNames: (any UserNameResolver)? = nil) {
        self.hostName = hostName
        self.userNames = userNames
    }

    public func interpret(_ assembled: AssembledEvent) -> Event {
        let records = assembled.records
        let first = records[0]
        var syscallRecord: AuditRecord?
        var primary: AuditRecord?  // the record that decides the kind, when it is not the syscall
        var execveRecords: [AuditRecord] = []
        var pathRecords: [AuditRecord] = []
        var cwd: String?
        var sockaddr: SocketAddress?
        var proctitle: AuditRecord?
        for record in records {
            switch record.type {
            case RecordTypes.syscall where syscallRecord == nil: syscallRecord = record
            case RecordTypes.execve: execveRecords.append(record)
            case RecordTypes.path: pathRecords.append(record)
            case RecordTypes.cwd: cwd = AuditDecoding.untrustedString(record, "cwd")
            case RecordTypes.sockaddr:
                if sockaddr == nil, let value = record.value("saddr") { sockaddr = SocketAddress(hex: value) }
            case RecordTypes.proctitle: proctitle = record
            default:
                if primary == nil, Self.decidesKind(record.type) { primary = record }
            }
        }

        var event = Event(timestamp: assembled.timestamp, kind: .other)
        let node = first.node.map { $0.string }
        event.host.name = node ?? hostName
        var audit = Event.Audit(sequence: assembled.serial, recordType: (primary ?? syscallRecord ?? first).typeName, records: records)
        audit.node = node

        var syscallName: String?
        if let syscall = syscallRecord {
            let arch = syscall.value("arch")?.hexadecimal.map { UInt32(truncatingIfNeeded: $0) }
            audit.arch = arch.flatMap(Syscalls.archName) ?? syscall.enrichedValue("ARCH")?.string
            if let number = syscall.value("syscall")?.decimal {
                syscallName = arch.flatMap { Syscalls.name(arch: $0, number: number) }
                    ?? syscall.enrichedValue("SYSCALL")?.string ?? String(number)
            }
            audit.syscall = syscallName
            if let success = syscall.value("success") {
                event.outcome = success.equals("yes") ? .success : .failure
                audit.result = success.equals("yes") ? "success" : "fail"
            }
            if event.outcome == .failure, let exit = syscall.value("exit")?.signedDecimal {
                event.errorCode = Syscalls.errnoName(returnValue: exit)
                // A non-blocking connect (curl, browsers, most daemons) answers EINPROGRESS and
                // completes in the background: the connection is under way, not refused, and its
                // result is not in the record (Falco counts these as connections too).
                if event.errorCode == "EINPROGRESS", syscallName == "connect" { event.outcome = .unknown }
            }
            event.process = processInfo(syscall)
            event.user = userInfo(syscall)
            audit.session = sessionValue(syscall)
            audit.tty = AuditDecoding.plainString(syscall, "tty")
            event.tags = keys(syscall)
        } else {
            event.process = processInfo(first)
            event.user = userInfo(first)
            audit.session = sessionValue(first)
            if let result = first.value("res") {
                event.outcome = Self.outcome(result)
                audit.result = event.outcome == .success ? "success" : event.outcome == .failure ? "fail" : result.string
            }
        }
        if let cwd { event.process = (event.process ?? .init()).with { $0.workingDirectory = cwd } }
        if let proctitle, let title = AuditDecoding.proctitle(proctitle) {
            event.process = (event.process ?? .init()).with { $0.title = title }
        }

        // Kind.
        if let primary {
            event.kind = Self.kind(ofRecord: primary)
            applyRecordDetails(primary, to: &event, audit: &audit)
        } else if syscallRecord != nil {
            event.kind = syscallName.flatMap { Self.syscallKinds[$0] } ?? .syscall
            if event.kind == .processExit, let status = syscallRecord?.value("a0")?.hexadecimal {
                event.process?.exitCode = Int64(Int32(truncatingIfNeeded: status))
            }
        } else {
            event.kind = Self.kind(ofRecord: first)
            applyRecordDetails(first, to: &event, audit: &audit)
        }

        // Paths.
        audit.paths = pathRecords.map { record in
            var path = Event.Path()
            path.name = AuditDecoding.untrustedString(record, "name").map { resolve($0, cwd: cwd) }
            path.nameType = AuditDecoding.plainString(record, "nametype") ?? AuditDecoding.plainString(record, "objtype")
            path.inode = AuditDecoding.plainString(record, "inode")
            path.mode = record.value("mode").flatMap { FileMode(octal: $0) }.map { $0.permissions }
            return path
        }

        switch event.kind {
        case .processStart:
            var process = event.process ?? .init()
            let (args, argc) = Self.execArguments(execveRecords)
            if let args {
                process.args = args
                process.argsCount = argc ?? args.count
                process.commandLine = args.joined(separator: " ")
            } else if let proctitle, let args = AuditDecoding.proctitleArguments(proctitle) {
                process.args = args
                process.commandLine = args.joined(separator: " ")
            }
            event.process = process
        case .fileOpen, .fileCreate, .fileWrite, .fileDelete, .fileRename, .fileChmod, .fileChown, .fileAttributes,
            .fileLink, .mount, .unmount:
            event.file = fileInfo(pathRecords, kind: event.kind, cwd: cwd, syscall: syscallRecord, syscallName: syscallName)
            if event.kind == .fileOpen, let file = event.file, file.path != nil,
                let syscall = syscallRecord, let name = syscallName
            {
                event.kind = Self.openKind(syscall, name: name, paths: pathRecords)
                _ = file
            }
        case .networkConnect, .networkAccept, .networkBind, .networkListen:
            if let sockaddr {
                var endpoint = Event.Endpoint()
                switch sockaddr.family {
                case .ipv4(let address, let port), .ipv6(let address, let port):
                    endpoint.ip = address
                    endpoint.port = port
                case .unix(let path, let abstract):
                    endpoint.address = abstract ? "@" + path : path
                case .netlink(let pid, _):
                    endpoint.address = "netlink:\(pid)"
                case .other:
                    break
                }
                var network = Event.Network()
                network.type = sockaddr.networkType
                switch event.kind {
                case .networkConnect:
                    event.destination = endpoint
                    network.direction = "egress"
                case .networkAccept:
                    event.source = endpoint
                    network.direction = "ingress"
                default:
                    event.source = endpoint
                }
                event.network = network
            }
        default:
            break
        }
        if event.kind == .moduleLoad || event.kind == .moduleUnload,
            let module = records.first(where: { $0.type == RecordTypes.kernModule }),
            let name = AuditDecoding.untrustedString(module, "name")
        {
            event.message = "kernel module \(name)"
        }
        event.audit = audit
        return event
    }

    // MARK: Process and user

    private func processInfo(_ record: AuditRecord) -> Event.Process? {
        var process = Event.Process()
        var any = false
        if let pid = record.value("pid")?.signedDecimal {
            process.pid = pid
            any = true
        }
        if let ppid = record.value("ppid")?.signedDecimal { process.parentPID = ppid }
        if let comm = AuditDecoding.untrustedString(record, "comm") {
            process.name = comm
            any = true
        }
        if let exe = AuditDecoding.untrustedString(record, "exe") {
            process.executable = exe
            any = true
            if process.name == nil, let slash = exe.lastIndex(of: "/") {
                process.name = String(exe[exe.index(after: slash)...])
            }
        }
        return any ? process : nil
    }

    private func userInfo(_ record: AuditRecord) -> Event.User? {
        var user = Event.User()
        // Real, effective, saved and filesystem ids are nearly always the same: each name is
        // looked up once per record.
        var names = ResolvedNames()
        user.user = identity(record, "uid", "UID", group: false, &names)
        user.group = identity(record, "gid", "GID", group: true, &names)
        user.effective = identity(record, "euid", "EUID", group: false, &names)
        user.effectiveGroup = identity(record, "egid", "EGID", group: true, &names)
        user.saved = identity(record, "suid", "SUID", group: false, &names)
        user.savedGroup = identity(record, "sgid", "SGID", group: true, &names)
        user.filesystem = identity(record, "fsuid", "FSUID", group: false, &names)
        user.filesystemGroup = identity(record, "fsgid", "FSGID", group: true, &names)
        user.audit = identity(record, "auid", "AUID", group: false, &names)
        // User-space messages name the account acted on: acct="alice" or id=1000.
        if record.type != RecordTypes.syscall {
            // The account's id is only known when the record gives it: `uid=` is the id of the process
            // that wrote the message (sshd as root, su as the caller), not of the account.
            if let account = AuditDecoding.untrustedString(record, "acct") {
                var id: String?
                if let value = record.value("id")?.decimal, value != 4_294_967_295 { id = String(value) }
                user.user = Event.Identity(id: id, name: account)
            } else if let id = record.value("id")?.decimal, id != 4_294_967_295,
                record.type >= 1100 && record.type < 1300
            {
                user.user = Event.Identity(id: String(id), name: record.enrichedValue("ID")?.string)
            }
        }
        if user.user == nil && user.group == nil && user.audit == nil && user.effective == nil { return nil }
        return user
    }

    /// The last user and group name the resolver gave for one record.
    private struct ResolvedNames {
        var user: (id: UInt64, name: String?)?
        var group: (id: UInt64, name: String?)?
    }

    private func identity(
        _ record: AuditRecord, _ key: StaticString, _ enrichedKey: StaticString, group: Bool, _ names: inout ResolvedNames
    ) -> Event.Identity? {
        guard let raw = record.value(key), let id = raw.decimal, id != 4_294_967_295 else { return nil }
        if let name = record.enrichedValue(enrichedKey)?.string { return Event.Identity(id: raw.string, name: name) }
        guard let resolver = userNames, id <= UInt64(UInt32.max) else { return Event.Identity(id: raw.string, name: nil) }
        if let last = group ? names.group : names.user, last.id == id { return Event.Identity(id: raw.string, name: last.name) }
        let name = group ? resolver.groupName(gid: UInt32(id)) : resolver.userName(uid: UInt32(id))
        if group { names.group = (id, name) } else { names.user = (id, name) }
        return Event.Identity(id: raw.string, name: name)
    }

    private func sessionValue(_ record: AuditRecord) -> String? {
        guard let value = record.value("ses"), let number = value.decimal, number != 4_294_967_295 else { return nil }
        return String(number)
    }

    /// `key="exec"`, or several keys hex-encoded and separated by \x01.
    private func keys(_ record: AuditRecord) -> [String] {
        guard let field = record.field("key") else { return [] }
        let value = record.value(field)
        if field.quoting != .none { return [value.string] }
        if AuditDecoding.isAbsent(value) { return [] }
        guard let bytes = AuditDecoding.hexBytes(value) else { return [value.string] }
        return bytes.split(separator: 1).map { $0.string }
    }

    // MARK: User-space and other records

    private func applyRecordDetails(_ record: AuditRecord, to event: inout Event, audit: inout Event.Audit) {
        if let result = record.value("res") {
            event.outcome = Self.outcome(result)
            audit.result = result.string
        }
        switch record.type {
        case 1100..<1300, 2100..<3000:
            var process = event.process ?? .init()
            if let exe = AuditDecoding.untrustedString(record, "exe") {
                process.executable = exe
                if process.name == nil, let slash = exe.lastIndex(of: "/") {
                    process.name = String(exe[exe.index(after: slash)...])
                }
            }
            if record.type == 1123 {  // USER_CMD: the command sudo ran
                process.commandLine = AuditDecoding.untrustedString(record, "cmd")
                if let cwd = AuditDecoding.untrustedString(record, "cwd") { process.workingDirectory = cwd }
            }
            event.process = process
            let address = AuditDecoding.plainString(record, "addr")
            let hostname = AuditDecoding.plainString(record, "hostname")
            if address != nil || hostname != nil {
                var source = Event.Endpoint()
                if let address, address.contains(".") || address.contains(":") { source.ip = address } else { source.address = address }
                if let hostname, hostname != address { source.domain = hostname }
                event.source = source
            }
            if let terminal = AuditDecoding.plainString(record, "terminal") { audit.tty = terminal }
        default:
            break
        }
    }

    static func outcome(_ result: ArraySlice<UInt8>) -> Outcome {
        if result.equals("success") || result.equals("yes") || result.equals("1") { return .success }
        if result.equals("failed") || result.equals("no") || result.equals("0") || result.equals("fail") {
            return .failure
        }
        return .unknown
    }

    /// Record types that, when present in an event, say more about it than its SYSCALL record.
    static func decidesKind(_ type: UInt16) -> Bool {
        switch type {
        case RecordTypes.configChange, RecordTypes.login, RecordTypes.avc, 1401 /* SELINUX_ERR */, 1500..<1600,
            1100..<1300, 2100..<3000:
            true
        default:
            false
        }
    }

    static func kind(ofRecord record: AuditRecord) -> EventKind {
        switch record.type {
        case 1112: return .userLogin  // USER_LOGIN
        case 1113: return .userLogout  // USER_LOGOUT
        case 1100, 1109: return .authentication  // USER_AUTH, USER_ERR
        case 1101: return .authorization  // USER_ACCT
        case 1105: return .sessionStart  // USER_START
        case 1106: return .sessionEnd  // USER_END
        case 1123: return .userCommand  // USER_CMD
        case 1103, 1104, 1110: return .credentialChange  // CRED_ACQ, CRED_DISP, CRED_REFR
        case 1006: return .loginUIDChange  // LOGIN
        case 1102, 1108, 1114...1117, 1119, 1125, 1132, 1133, 1135, 1136:
            // USER_MGMT, USER_CHAUTHTOK, ADD/DEL_USER, ADD/DEL_GROUP, CHGRP_ID, CHUSER_ID, GRP_MGMT,
            // GRP_CHAUTHTOK, ACCT_LOCK, ACCT_UNLOCK
            return .accountChange
        case 2300: return .privilegeChange  // USER_ROLE_CHANGE
        case 1107:  // USER_AVC
            return record.bytes.firstRange(of: Array("denied".utf8)) != nil ? .accessDenied : .other
        case RecordTypes.configChange: return .auditConfigChange
        case 1200...1209: return .auditDaemon  // DAEMON_*
        case RecordTypes.avc, 1401:
            if let result = record.value("seresult") { return result.equals("denied") ? .accessDenied : .other }
            if let apparmor = record.value("apparmor") { return apparmor.equals("DENIED") ? .accessDenied : .other }
            return record.type == 1401 ? .accessDenied : .other
        case 1503: return .accessDenied  // APPARMOR_DENIED
        case 1500..<1600:
            if let apparmor = record.value("apparmor"), apparmor.equals("DENIED") { return .accessDenied }
            return .other
        default: return .other
        }
    }

    static let syscallKinds: [String: EventKind] = {
        var table: [String: EventKind] = [:]
        func add(_ kind: EventKind, _ names: String...) { for name in names { table[name] = kind } }
        add(.processStart, "execve", "execveat")
        add(.processExit, "exit", "exit_group")
        add(.fileOpen, "open", "openat", "openat2", "open_by_handle_at")
        add(.fileCreate, "creat", "mkdir", "mkdirat", "mknod", "mknodat")
        add(.fileWrite, "truncate", "ftruncate", "truncate64", "ftruncate64", "write", "pwrite64", "writev", "pwritev",
            "pwritev2")
        add(.fileDelete, "unlink", "unlinkat", "rmdir")
        add(.fileRename, "rename", "renameat", "renameat2")
        add(.fileChmod, "chmod", "fchmod", "fchmodat", "fchmodat2")
        add(.fileChown, "chown", "fchown", "lchown", "fchownat", "chown32", "fchown32", "lchown32")
        add(.fileAttributes, "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
            "utime", "utimes", "utimensat", "futimesat")
        add(.fileLink, "link", "linkat", "symlink", "symlinkat")
        add(.networkConnect, "connect")
        add(.networkAccept, "accept", "accept4")
        add(.networkBind, "bind")
        add(.networkListen, "listen")
        add(.privilegeChange, "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
            "setfsgid", "setgroups", "capset", "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32",
            "setresgid32", "setfsuid32", "setfsgid32", "setgroups32")
        add(.moduleLoad, "init_module", "finit_module")
        add(.moduleUnload, "delete_module")
        add(.ptrace, "ptrace")
        add(.mount, "mount", "fsmount", "move_mount", "mount_setattr")
        add(.unmount, "umount", "umount2")
        return table
    }()

    // MARK: Exec arguments

    /// Reassembles argv from EXECVE records: `a0="ls"`, hex `a1=2D6C`, and long arguments split as
    /// `a2_len=9000 a2[0]=... a2[1]=...` (always hex), possibly over several records.
    static func execArguments(_ records: [AuditRecord]) -> ([String]?, Int?) {
        guard !records.isEmpty else { return (nil, nil) }
        var argc: Int?
        var args: [String?] = []
        var chunks: [Int: [UInt8]] = [:]
        for record in records {
            for field in record.fields where !field.isEnriched {
                let key = record.key(field)
                guard let firstByte = key.first else { continue }
                if firstByte == UInt8(ascii: "a"), key.equals("argc") {
                    argc = record.value(field).decimal.map { Int(clamping: $0) }
                    continue
                }
                guard firstByte == UInt8(ascii: "a") else { continue }
                // aN, aN_len, aN[i]
                var index = key.startIndex + 1
                var number = 0
                var digits = 0
                while index < key.endIndex, let digit = key[index].asciiDigit, digits < 7 {
                    number = number * 10 + digit
                    digits += 1
                    index += 1
                }
                guard digits > 0 else { continue }
                let value = record.value(field)
                if index == key.endIndex {
                    let decoded: String
                    if field.quoting != .none {
                        decoded = value.string
                    } else if let bytes = AuditDecoding.hexBytes(value) {
                        decoded = String(decoding: bytes, as: UTF8.self)
                    } else {
                        decoded = value.string
                    }
                    set(&args, number, decoded)
                } else if key[index] == UInt8(ascii: "[") {
                    if let bytes = AuditDecoding.hexBytes(value) {
                        chunks[number, default: []].append(contentsOf: bytes)
                    } else {
                        chunks[number, default: []].append(contentsOf: value)
                    }
                }
                // aN_len only announces the chunks.
            }
        }
        for (number, bytes) in chunks { set(&args, number, String(decoding: bytes, as: UTF8.self)) }
        guard !args.isEmpty else { return ([], argc) }
        return (args.map { $0 ?? "" }, argc)
    }

    private static func set(_ args: inout [String?], _ index: Int, _ value: String) {
        guard index < 1_000_000 else { return }
        if index >= args.count { args.append(contentsOf: repeatElement(nil, count: index - args.count + 1)) }
        args[index] = value
    }

    // MARK: Files

    private func fileInfo(
        _ paths: [AuditRecord], kind: EventKind, cwd: String?, syscall: AuditRecord?, syscallName: String?
    ) -> Event.File? {
        guard !paths.isEmpty else { return nil }
        func nameType(_ record: AuditRecord) -> ArraySlice<UInt8>? { record.value("nametype") ?? record.value("objtype") }
        let wanted: StaticString? =
            switch kind {
            case .fileCreate, .fileLink: "CREATE"
            case .fileDelete: "DELETE"
            case .fileRename: "CREATE"
            default: nil
            }
        var chosen: AuditRecord?
        if let wanted { chosen = paths.first { nameType($0)?.equals(wanted) == true } }
        if chosen == nil { chosen = paths.first { !(nameType($0)?.equals("PARENT") ?? false) } ?? paths.last }
        guard let record = chosen else { return nil }
        var file = Event.File()
        file.path = AuditDecoding.untrustedString(record, "name").map { resolve($0, cwd: cwd) }
        if kind == .fileRename, let old = paths.first(where: { nameType($0)?.equals("DELETE") == true }) {
            file.previousPath = AuditDecoding.untrustedString(old, "name").map { resolve($0, cwd: cwd) }
        }
        file.inode = AuditDecoding.plainString(record, "inode")
        file.device = AuditDecoding.plainString(record, "dev")
        if let mode = record.value("mode").flatMap({ FileMode(octal: $0) }) {
            file.mode = mode.permissions
            file.type = mode.typeName
        }
        if let uid = record.value("ouid")?.decimal {
            file.uid = String(uid)
            file.owner = record.enrichedValue("OUID")?.string ?? userNames?.userName(uid: UInt32(truncatingIfNeeded: uid))
        }
        if let gid = record.value("ogid")?.decimal {
            file.gid = String(gid)
            file.group = record.enrichedValue("OGID")?.string ?? userNames?.groupName(gid: UInt32(truncatingIfNeeded: gid))
        }
        return file
    }

    /// open/openat classified by flags and PATH nametype: created, opened for writing, or read.
    static func openKind(_ syscall: AuditRecord, name: String, paths: [AuditRecord]) -> EventKind {
        if paths.contains(where: { ($0.value("nametype") ?? $0.value("objtype"))?.equals("CREATE") == true }) {
            return .fileCreate
        }
        let flagsKey: StaticString = name == "open" ? "a1" : "a2"
        guard name != "openat2", let flags = syscall.value(flagsKey)?.hexadecimal else { return .fileOpen }
        let accessMode = flags & 0o3
        let truncate = flags & 0o1000 != 0
        return accessMode != 0 || truncate ? .fileWrite : .fileOpen
    }

    private func resolve(_ name: String, cwd: String?) -> String {
        guard let cwd, !name.hasPrefix("/") else { return name }
        var relative = Substring(name)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        if relative == "." { return cwd }
        return cwd.hasSuffix("/") ? cwd + relative : cwd + "/" + relative
    }
}

extension UInt8 {
    @inline(__always)
    var asciiDigit: Int? {
        self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") ? Int(self - UInt8(ascii: "0")) : nil
    }
}

extension Event.Process {
    func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }
}
