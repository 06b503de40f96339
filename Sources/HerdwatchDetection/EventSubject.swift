import HerdwatchAudit
import HerdwatchEvents

/// Rules read an `Event` (replay, the agent) straight from its typed fields and raw records.
extension Event: DetectionSubject {
    public func value(of field: ECSField) -> FieldValue? {
        switch field {
        case .eventAction: return .string(kind.action.description)
        case .eventCategory: return .strings(kind.categories.map(\.description))
        case .eventType: return .strings(kind.types.map(\.description))
        case .eventOutcome: return .string(outcome.name.description)
        case .eventModule: return .string(module)
        case .eventID: return id.map(FieldValue.string)
        case .hostName: return host.name.map(FieldValue.string)
        case .message: return message.map(FieldValue.string)
        case .tags: return tags.isEmpty ? nil : .strings(tags)
        case .errorCode: return errorCode.map(FieldValue.string)
        case .containerID: return containerID.map(FieldValue.string)
        case .processPID: return process?.pid.map(FieldValue.number)
        case .processName: return process?.name.map(FieldValue.string)
        case .processExecutable: return process?.executable.map(FieldValue.string)
        case .processCommandLine:
            if let line = process?.commandLine { return .string(line) }
            return process?.args.map { .string($0.joined(separator: " ")) }
        case .processArgs: return process?.args.map(FieldValue.strings)
        case .processArgsCount: return (process?.argsCount ?? process?.args?.count).map { .number(Int64($0)) }
        case .processTitle: return process?.title.map(FieldValue.string)
        case .processWorkingDirectory: return process?.workingDirectory.map(FieldValue.string)
        case .processEntityID: return process?.entityID.map(FieldValue.string)
        case .processExitCode: return process?.exitCode.map(FieldValue.number)
        case .parentPID: return process?.parentPID.map(FieldValue.number)
        case .parentName: return process?.parent?.name.map(FieldValue.string)
        case .parentExecutable: return process?.parent?.executable.map(FieldValue.string)
        case .parentArgs: return process?.parent?.args.map(FieldValue.strings)
        case .parentCommandLine: return process?.parent?.args.map { .string($0.joined(separator: " ")) }
        case .parentEntityID: return process?.parent?.entityID.map(FieldValue.string)
        case .sessionLeaderEntityID: return process?.sessionLeaderEntityID.map(FieldValue.string)
        case .ancestry: return process.flatMap { $0.ancestry.isEmpty ? nil : .strings($0.ancestry) }
        case .userID: return user?.user?.id.map(FieldValue.string)
        case .userName: return user?.user?.name.map(FieldValue.string)
        case .userGroupID: return user?.group?.id.map(FieldValue.string)
        case .userGroupName: return user?.group?.name.map(FieldValue.string)
        case .userEffectiveID: return user?.effective?.id.map(FieldValue.string)
        case .userEffectiveName: return user?.effective?.name.map(FieldValue.string)
        case .userAuditID: return user?.audit?.id.map(FieldValue.string)
        case .userAuditName: return user?.audit?.name.map(FieldValue.string)
        case .filePath: return file?.path.map(FieldValue.string)
        case .fileMode: return file?.mode.map(FieldValue.string)
        case .fileType: return file?.type.map(FieldValue.string)
        case .fileUID: return file?.uid.map(FieldValue.string)
        case .fileOwner: return file?.owner.map(FieldValue.string)
        case .fileInode: return file?.inode.map(FieldValue.string)
        case .sourceIP: return source?.ip.map(FieldValue.string)
        case .sourcePort: return source?.port.map { .number(Int64($0)) }
        case .sourceAddress: return (source?.address ?? source?.ip).map(FieldValue.string)
        case .sourceDomain: return source?.domain.map(FieldValue.string)
        case .destinationIP: return destination?.ip.map(FieldValue.string)
        case .destinationPort: return destination?.port.map { .number(Int64($0)) }
        case .destinationAddress: return (destination?.address ?? destination?.ip).map(FieldValue.string)
        case .destinationDomain: return destination?.domain.map(FieldValue.string)
        case .networkType: return network?.type.map(FieldValue.string)
        case .networkDirection: return network?.direction.map(FieldValue.string)
        case .auditRecordType: return audit.map { .string($0.recordType) }
        case .auditSyscall: return audit?.syscall.map(FieldValue.string)
        case .auditArch: return audit?.arch.map(FieldValue.string)
        case .auditResult: return audit?.result.map(FieldValue.string)
        case .auditSession: return audit?.session.map(FieldValue.string)
        case .auditTTY: return audit?.tty.map(FieldValue.string)
        case .auditPathNames:
            guard let paths = audit?.paths, !paths.isEmpty else { return nil }
            return .strings(paths.compactMap(\.name))
        case .firstSeen: return .bool(firstSeen)
        case .agentLostTotal: return agentHealth.map { .number(Int64($0.lostTotal)) }
        case .lossCount: return loss.map { .number(Int64($0.count)) }
        }
    }

    public var recordCount: Int { audit?.records.count ?? 0 }

    public var timeMilliseconds: Int64 { timestamp.totalMilliseconds }

    public func recordType(at index: Int) -> String { audit!.records[index].typeName }

    public func recordValue(at index: Int, key: String) -> FieldValue? {
        guard let audit else { return nil }
        let record = audit.records[index]
        if key == "type" { return .string(record.typeName) }
        // EXECVE arguments: the event already holds them reassembled and decoded.
        if record.type == 1309, let args = process?.args, let position = RecordKeys.argumentIndex(key) {
            return position < args.count ? .string(args[position]) : nil
        }
        let isInterpretation = key.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
        if let field = RecordKeys.find(key, in: record, enriched: isInterpretation) {
            let raw = record.value(field)
            if isInterpretation || field.quoting != .none || !RecordKeys.mayBeHex(key, recordType: record.type) {
                return .string(raw.string)
            }
            if let bytes = AuditDecoding.hexBytes(raw) { return .string(String(decoding: bytes, as: UTF8.self)) }
            return .string(raw.string)
        }
        guard isInterpretation else { return nil }
        // RAW logs and live records carry no interpretations: take them from the event.
        switch key {
        case "SYSCALL": return record.type == 1300 ? audit.syscall.map(FieldValue.string) : nil
        case "ARCH": return record.type == 1300 ? audit.arch.map(FieldValue.string) : nil
        case "UID": return user?.user?.name.map(FieldValue.string)
        case "EUID": return user?.effective?.name.map(FieldValue.string)
        case "AUID": return user?.audit?.name.map(FieldValue.string)
        case "GID": return user?.group?.name.map(FieldValue.string)
        default: return nil
        }
    }

    public func recordValues(at index: Int) -> [String] {
        guard let audit else { return [] }
        let record = audit.records[index]
        if record.type == 1309, let args = process?.args { return args }
        var values: [String] = []
        values.reserveCapacity(record.fields.count)
        for field in record.fields where !field.isEnriched {
            let raw = record.value(field)
            if field.quoting == .none, let bytes = AuditDecoding.hexBytes(raw),
                RecordKeys.mayBeHex(record.key(field), recordType: record.type)
            {
                values.append(String(decoding: bytes, as: UTF8.self))
            } else {
                values.append(raw.string)
            }
        }
        return values
    }

    public var keywordValues: [String] {
        var values: [String] = []
        if let message { values.append(message) }
        if let line = process?.commandLine ?? process?.args?.joined(separator: " ") { values.append(line) }
        if let path = file?.path { values.append(path) }
        return values
    }
}

/// Looking up raw record fields by a rule's field name.
enum RecordKeys {
    /// `a0`, `a12` → 0, 12 (EXECVE arguments).
    static func argumentIndex(_ key: String) -> Int? {
        let utf8 = key.utf8
        guard utf8.count >= 2, utf8.first == UInt8(ascii: "a") else { return nil }
        var value = 0
        for byte in utf8.dropFirst() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static func find(_ key: String, in record: AuditRecord, enriched: Bool) -> AuditField? {
        if enriched && !record.hasEnrichedFields { return nil }
        var key = key
        return key.withUTF8 { wanted in
            for field in record.fields where field.isEnriched == enriched {
                let name = record.key(field)
                if name.count == wanted.count && name.elementsEqual(wanted) { return field }
            }
            return nil
        }
    }

    /// Fields the kernel writes with `audit_log_untrustedstring` (hex when not printable).
    /// EXECVE's `aN` are strings; SYSCALL's are hex numbers and stay as written.
    static func mayBeHex<C: Collection<UInt8>>(_ key: C, recordType: UInt16) -> Bool {
        mayBeHex(String(decoding: key, as: UTF8.self), recordType: recordType)
    }

    static func mayBeHex(_ key: String, recordType: UInt16) -> Bool {
        hexKeys.contains(key) || (recordType == 1309 && argumentIndex(key) != nil)
    }

    static let hexKeys: Set<String> = [
        "exe", "comm", "name", "cwd", "proctitle", "key", "path", "dir", "watch", "ocomm", "cmd", "acct",
        "data", "new", "old", "file", "root_dir",
    ]
}
