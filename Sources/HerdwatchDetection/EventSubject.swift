import HerdwatchAudit
import HerdwatchEvents

/// Rules read an `Event` (replay, the agent) straight from its typed fields and raw records,
/// through one reference so that evaluating many rules never copies the event.
///
/// It reads the event through a pointer, without a copy of its own (copying an `Event` retains
/// every string and array in it): a subject lives only inside `Detector.process`, while the event
/// it points at is borrowed there.
final class EventSubject: DetectionSubject {
    private let pointer: UnsafePointer<Event>
    var event: Event {
        unsafeAddress { pointer }
    }
    /// The event's raw records and EXECVE arguments, held directly: reached through `event`, each
    /// access may copy the optional struct around them.
    let records: [AuditRecord]
    /// Unwrapped: `hasArgs` says whether the event had arguments.
    private let argumentList: [String]
    private let hasArgs: Bool
    private let scratch = ScratchBytes()

    init(_ pointer: UnsafePointer<Event>) {
        self.pointer = pointer
        records = pointer.pointee.audit?.records ?? []
        let args = pointer.pointee.process?.args
        argumentList = args ?? []
        hasArgs = args != nil
        keySignatures = .allocate(capacity: max(records.count, 1))
        keySignatures.initialize(repeating: 0, count: max(records.count, 1))
    }

    deinit { keySignatures.deallocate() }

    /// As the encoder writes it: other syscalls by name, other records by their type.
    var action: String {
        // `specificAction`, read field by field: calling the getter on the event through the
        // pointer copied the whole event first.
        let kind = event.kind
        if kind == .syscall, let name = event.audit?.syscall { return name }
        if kind == .other, event.audit != nil { return event.specificAction ?? kind.action.description }
        return kind.action.description
    }

    func value(of field: ECSField) -> FieldValue? {
        switch field {
        case .eventAction: return .string(action)
        case .eventCategory: return .strings(event.kind.categories.map(\.description))
        case .eventType: return .strings(event.kind.types.map(\.description))
        case .eventOutcome: return .string(event.outcome.name.description)
        case .eventModule: return .string(event.module)
        case .eventID: return event.id.map(FieldValue.string)
        case .hostName: return event.host.name.map(FieldValue.string)
        case .message: return event.message.map(FieldValue.string)
        case .tags: return event.tags.isEmpty ? nil : .strings(event.tags)
        case .errorCode: return event.errorCode.map(FieldValue.string)
        case .containerID: return event.containerID.map(FieldValue.string)
        case .processPID: return event.process?.pid.map(FieldValue.number)
        case .processName: return event.process?.name.map(FieldValue.string)
        case .processExecutable: return event.process?.executable.map(FieldValue.string)
        case .processCommandLine:
            if let line = event.process?.commandLine { return .string(line) }
            return event.process?.args.map { .string($0.joined(separator: " ")) }
        case .processArgs: return event.process?.args.map(FieldValue.strings)
        case .processArgsCount: return (event.process?.argsCount ?? event.process?.args?.count).map { .number(Int64($0)) }
        case .processTitle: return event.process?.title.map(FieldValue.string)
        case .processWorkingDirectory: return event.process?.workingDirectory.map(FieldValue.string)
        case .processEntityID: return event.process?.entityID.map(FieldValue.string)
        case .processExitCode: return event.process?.exitCode.map(FieldValue.number)
        case .parentPID: return event.process?.parentPID.map(FieldValue.number)
        case .parentName: return event.process?.parent?.name.map(FieldValue.string)
        case .parentExecutable: return event.process?.parent?.executable.map(FieldValue.string)
        case .parentArgs: return event.process?.parent?.args.map(FieldValue.strings)
        case .parentCommandLine: return event.process?.parent?.args.map { .string($0.joined(separator: " ")) }
        case .parentEntityID: return event.process?.parent?.entityID.map(FieldValue.string)
        case .sessionLeaderEntityID: return event.process?.sessionLeaderEntityID.map(FieldValue.string)
        case .ancestry: return event.process.flatMap { $0.ancestry.isEmpty ? nil : .strings($0.ancestry) }
        case .userID: return event.user?.user?.id.map(FieldValue.string)
        case .userName: return event.user?.user?.name.map(FieldValue.string)
        case .userGroupID: return event.user?.group?.id.map(FieldValue.string)
        case .userGroupName: return event.user?.group?.name.map(FieldValue.string)
        case .userEffectiveID: return event.user?.effective?.id.map(FieldValue.string)
        case .userEffectiveName: return event.user?.effective?.name.map(FieldValue.string)
        case .userAuditID: return event.user?.audit?.id.map(FieldValue.string)
        case .userAuditName: return event.user?.audit?.name.map(FieldValue.string)
        case .filePath: return event.file?.path.map(FieldValue.string)
        case .fileMode: return event.file?.mode.map(FieldValue.string)
        case .fileType: return event.file?.type.map(FieldValue.string)
        case .fileUID: return event.file?.uid.map(FieldValue.string)
        case .fileOwner: return event.file?.owner.map(FieldValue.string)
        case .fileInode: return event.file?.inode.map(FieldValue.string)
        case .sourceIP: return event.source?.ip.map(FieldValue.string)
        case .sourcePort: return event.source?.port.map { .number(Int64($0)) }
        case .sourceAddress: return (event.source?.address ?? event.source?.ip).map(FieldValue.string)
        case .sourceDomain: return event.source?.domain.map(FieldValue.string)
        case .destinationIP: return event.destination?.ip.map(FieldValue.string)
        case .destinationPort: return event.destination?.port.map { .number(Int64($0)) }
        case .destinationAddress: return (event.destination?.address ?? event.destination?.ip).map(FieldValue.string)
        case .destinationDomain: return event.destination?.domain.map(FieldValue.string)
        case .networkType: return event.network?.type.map(FieldValue.string)
        case .networkDirection: return event.network?.direction.map(FieldValue.string)
        case .auditRecordType: return event.audit.map { .string($0.recordType) }
        case .auditSyscall: return event.audit?.syscall.map(FieldValue.string)
        case .auditArch: return event.audit?.arch.map(FieldValue.string)
        case .auditResult: return event.audit?.result.map(FieldValue.string)
        case .auditSession: return event.audit?.session.map(FieldValue.string)
        case .auditTTY: return event.audit?.tty.map(FieldValue.string)
        case .auditPathNames:
            guard let paths = event.audit?.paths, !paths.isEmpty else { return nil }
            return .strings(paths.compactMap(\.name))
        case .firstSeen: return .bool(event.firstSeen)
        case .agentLostTotal: return event.agentHealth.map { .number(Int64($0.lostTotal)) }
        case .lossCount: return event.loss.map { .number(Int64($0.count)) }
        case .lossSource: return event.loss.map { .string($0.source) }
        }
    }

    var recordCount: Int { records.count }

    var timeMilliseconds: Int64 { event.timestamp.totalMilliseconds }

    func recordType(at index: Int) -> String { records[index].typeName }

    /// Per record: the fields already looked up (indexes and rules ask for the same ones: `type`,
    /// `a0`, `name`, `SYSCALL`; each lookup scans and decodes), and a 64-bit signature of the raw
    /// field names it has, so that asking for a field it lacks costs one bit test.
    private var recordCache: [[(key: String, value: FieldValue?)]] = []
    /// Per record, 0 until computed. A buffer of its own: read for every indexed field of every
    /// record, an array property would be checked for exclusive access at each read.
    private let keySignatures: UnsafeMutablePointer<UInt64>

    /// Field names of the record (EXECVE: `a0`…`aN` for every argument, however the kernel split
    /// them), computed once.
    func recordKeySignature(at index: Int) -> UInt64 {
        if keySignatures[index] == 0 {
            var signature: UInt64 = 1 << 63 | 1
            records.withUnsafeBufferPointer { records in
                let record = records.baseAddress! + index
                record.pointee.bytes.withUnsafeBufferPointer { bytes in
                    record.pointee.fields.withUnsafeBufferPointer { fields in
                        for field in fields where !field.isEnriched {
                            signature |= KeySignature.bit(UnsafeBufferPointer(rebasing: bytes[Int(field.keyStart)..<Int(field.keyEnd)]))
                        }
                    }
                }
                if record.pointee.type == 1309, hasArgs { signature |= KeySignature.arguments(argumentList.count) }
            }
            keySignatures[index] = signature
        }
        return keySignatures[index]
    }

    func recordValue(at index: Int, key: String) -> FieldValue? {
        if recordCache.isEmpty { recordCache = Array(repeating: [], count: records.count) }
        for entry in recordCache[index] where entry.key == key { return entry.value }
        if RecordKeys.isRaw(key) {
            var name = key
            if recordKeySignature(at: index) & name.withUTF8({ KeySignature.bit($0) }) == 0 { return nil }
        }
        let value = lookUp(index, key)
        if recordCache[index].count < 16 { recordCache[index].append((key, value)) }
        return value
    }

    /// Raw fields straight from the record's bytes (hex values decoded into a scratch copy), EXECVE
    /// arguments from the reassembled list; interpretations through `recordValue`.
    func recordBytes(at index: Int, field: Int32, program: Program) -> UnsafeBufferPointer<UInt8>? {
        let key = program.recordKeyInfo[Int(field)]
        guard key.isDirect else {
            guard let value = recordValue(at: index, key: program.recordKeys[Int(field)]) else { return nil }
            return scratch.copy(value.text)
        }
        // A field the record lacks costs one bit test.
        if recordKeySignature(at: index) & key.bit == 0 { return nil }
        // Through pointers: copying an `AuditRecord` (or a slice of its bytes) would retain its
        // storage. The record's bytes live as long as this subject.
        return records.withUnsafeBufferPointer { records -> UnsafeBufferPointer<UInt8>? in
            let type = records[index].type
            if type == 1309, hasArgs, key.argument >= 0 {
                guard key.argument < argumentList.count else { return nil }
                return scratch.copy(argumentList[key.argument])
            }
            return records[index].bytes.withUnsafeBufferPointer { bytes -> UnsafeBufferPointer<UInt8>? in
                records[index].fields.withUnsafeBufferPointer { fields -> UnsafeBufferPointer<UInt8>? in
                    for field in fields
                    where !field.isEnriched && Int(field.keyEnd &- field.keyStart) == key.count
                        && key.isName(in: bytes, at: Int(field.keyStart))
                    {
                        let value = UnsafeBufferPointer(rebasing: bytes[Int(field.valueStart)..<Int(field.valueEnd)])
                        if field.quoting == .none, key.hexCapable || (type == 1309 && key.argument >= 0),
                            let decoded = scratch.decodeHex(value)
                        {
                            return decoded
                        }
                        return value
                    }
                    return nil
                }
            }
        }
    }

    func recordTypeNumber(at index: Int) -> UInt16 {
        records.withUnsafeBufferPointer { $0[index].type }
    }

    private func lookUp(_ index: Int, _ key: String) -> FieldValue? {
        let record = records[index]
        if key == "type" { return .string(record.typeName) }
        // EXECVE arguments: the event already holds them reassembled and decoded.
        if record.type == 1309, hasArgs, let position = RecordKeys.argumentIndex(key) {
            return position < argumentList.count ? .string(argumentList[position]) : nil
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
        case "SYSCALL": return record.type == 1300 ? event.audit!.syscall.map(FieldValue.string) : nil
        case "ARCH": return record.type == 1300 ? event.audit!.arch.map(FieldValue.string) : nil
        case "UID": return event.user?.user?.name.map(FieldValue.string)
        case "EUID": return event.user?.effective?.name.map(FieldValue.string)
        case "AUID": return event.user?.audit?.name.map(FieldValue.string)
        case "GID": return event.user?.group?.name.map(FieldValue.string)
        default: return nil
        }
    }

    func recordValues(at index: Int) -> [String] {
        guard event.audit != nil else { return [] }
        let record = records[index]
        if record.type == 1309, hasArgs { return argumentList }
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

    var keywordValues: [String] {
        var values: [String] = []
        if let message = event.message { values.append(message) }
        if let line = event.process?.commandLine ?? event.process?.args?.joined(separator: " ") { values.append(line) }
        if let path = event.file?.path { values.append(path) }
        return values
    }
}

/// Looking up raw record fields by a rule's field name.
enum RecordKeys {
    /// A raw field name as the kernel writes it (lower case, `type` aside), as opposed to auditd's
    /// interpretations (`SYSCALL`, `UID`): the names a record's key signature covers.
    static func isRaw(_ key: String) -> Bool {
        key.utf8.first.map { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") } == true && key != "type"
    }

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
            record.bytes.withUnsafeBufferPointer { bytes in
                record.fields.withUnsafeBufferPointer { fields in
                    for field in fields where field.isEnriched == enriched && Int(field.keyEnd &- field.keyStart) == wanted.count {
                        var offset = 0
                        let start = Int(field.keyStart)
                        while offset < wanted.count && bytes[start &+ offset] == wanted[offset] { offset &+= 1 }
                        if offset == wanted.count { return field }
                    }
                    return nil
                }
            }
        }
    }

    /// Fields the kernel writes with `audit_log_untrustedstring` (hex when not printable).
    /// EXECVE's `aN` are strings; SYSCALL's are hex numbers and stay as written.
    static func mayBeHex<C: Collection<UInt8>>(_ key: C, recordType: UInt16) -> Bool {
        mayBeHex(String(decoding: key, as: UTF8.self), recordType: recordType)
    }

    static func mayBeHex(_ key: String, recordType: UInt16) -> Bool {
        switch key {
        case "exe", "comm", "name", "cwd", "proctitle", "key", "path", "dir", "watch", "ocomm", "cmd", "acct", "data", "new",
            "old", "file", "root_dir":
            true
        default: recordType == 1309 && argumentIndex(key) != nil
        }
    }

}
