import Foundation
import HerdwatchAudit
import HerdwatchEvents

/// Rules read an event the server received: an ECS JSON object as `JSONSerialization` parsed it.
/// Raw records come from `auditd.records` (values as written, quotes removed); EXECVE arguments from
/// `process.args`, which hold them decoded.
// @unchecked Sendable: the parsed object is never mutated after init.
public struct JSONSubject: DetectionSubject, @unchecked Sendable {
    public let object: [String: Any]
    private let records: [[String: Any]]
    private let scratch = ScratchBytes()

    public init(_ object: [String: Any]) {
        self.object = object
        records = ((object["auditd"] as? [String: Any])?["records"] as? [[String: Any]]) ?? []
    }

    /// Parses one ECS JSON line; nil when it is not a JSON object.
    public init?(json line: some StringProtocol) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        self.init(object)
    }

    private func lookup(_ path: String) -> Any? {
        var current: Any? = object
        for part in path.split(separator: ".") {
            guard let map = current as? [String: Any] else { return nil }
            current = map[String(part)]
        }
        return current
    }

    static func value(_ any: Any?) -> FieldValue? {
        switch any {
        case let text as String: return .string(text)
        case let number as NSNumber:
            // Booleans are NSNumbers too; their type code is 'c' (char).
            if String(cString: number.objCType) == "c" { return .bool(number.boolValue) }
            return .number(number.int64Value)
        case let list as [Any]: return .strings(list.map { "\($0)" })
        default: return nil
        }
    }

    public func value(of field: ECSField) -> FieldValue? {
        switch field {
        case .parentCommandLine:
            guard let args = lookup("process.parent.args") as? [Any] else { return nil }
            return .string(args.map { "\($0)" }.joined(separator: " "))
        case .processCommandLine:
            if let line = lookup("process.command_line") as? String { return .string(line) }
            return (lookup("process.args") as? [Any]).map { .string($0.map { "\($0)" }.joined(separator: " ")) }
        case .auditPathNames:
            guard let paths = lookup("auditd.paths") as? [[String: Any]] else { return nil }
            return .strings(paths.compactMap { $0["name"] as? String })
        case .sourceAddress, .destinationAddress:
            let side = field == .sourceAddress ? "source" : "destination"
            return Self.value(lookup("\(side).address") ?? lookup("\(side).ip"))
        case .agentLostTotal:
            return Self.value(lookup("herdwatch.agent.lost_total"))
        default:
            return Self.value(lookup(field.rawValue))
        }
    }

    public var recordCount: Int { records.count }

    public var timeMilliseconds: Int64 { (object["@timestamp"] as? String).flatMap(Self.milliseconds) ?? 0 }

    /// An ISO 8601 time in milliseconds since the epoch (`CivilTime.milliseconds(iso8601:)`).
    public static func milliseconds(_ text: String) -> Int64? { CivilTime.milliseconds(iso8601: text) }

    public func recordType(at index: Int) -> String { records[index]["type"] as? String ?? "" }

    public func recordValue(at index: Int, key: String) -> FieldValue? {
        let record = records[index]
        if key == "type" { return (record["type"] as? String).map(FieldValue.string) }
        if record["type"] as? String == "EXECVE", let position = RecordKeys.argumentIndex(key),
            let args = lookup("process.args") as? [Any]
        {
            return position < args.count ? .string("\(args[position])") : nil
        }
        let isInterpretation = key.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
        if isInterpretation {
            if let text = (record["enriched"] as? [String: Any])?[key] as? String { return .string(text) }
            switch key {
            case "SYSCALL": return record["type"] as? String == "SYSCALL" ? value(of: .auditSyscall) : nil
            case "ARCH": return record["type"] as? String == "SYSCALL" ? value(of: .auditArch) : nil
            case "UID": return value(of: .userName)
            case "EUID": return value(of: .userEffectiveName)
            case "AUID": return value(of: .userAuditName)
            case "GID": return value(of: .userGroupName)
            default: return nil
            }
        }
        guard let raw = record[key] else { return nil }
        let text = "\(raw)"
        return .string(Self.decoded(text, key: key, type: record["type"] as? String))
    }

    /// Raw values lost their quotes in JSON: a value of a hex-capable field that is all upper-case
    /// hex digits is taken as hex (the kernel writes quoted strings otherwise).
    static func decoded(_ text: String, key: String, type: String?) -> String {
        // The kernel writes upper-case hex; `hexBytes` checks the length and the digits.
        guard RecordKeys.mayBeHex(key, recordType: type == "EXECVE" ? 1309 : 0),
            !text.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f") }),
            let bytes = AuditDecoding.hexBytes(ArraySlice(text.utf8))
        else { return text }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func recordBytes(at index: Int, field: Int32, program: Program) -> UnsafeBufferPointer<UInt8>? {
        recordValue(at: index, key: program.recordKeys[Int(field)]).map { scratch.copy($0.text) }
    }

    public func recordKeySignature(at index: Int) -> UInt64 {
        var signature: UInt64 = 1 << 63 | 1
        for key in records[index].keys { signature |= KeySignature.bit(key.utf8) }
        if records[index]["type"] as? String == "EXECVE", let args = lookup("process.args") as? [Any] {
            for position in args.indices { signature |= KeySignature.bit("a\(position)".utf8) }
        }
        return signature
    }

    public func recordValues(at index: Int) -> [String] {
        let record = records[index]
        let type = record["type"] as? String
        if type == "EXECVE", let args = lookup("process.args") as? [Any] { return args.map { "\($0)" } }
        var values: [String] = []
        for (key, raw) in record where key != "enriched" && key != "type" {
            values.append(Self.decoded("\(raw)", key: key, type: type))
        }
        return values
    }

    public var keywordValues: [String] {
        var values: [String] = []
        if let message = object["message"] as? String { values.append(message) }
        if case .string(let line)? = value(of: .processCommandLine) { values.append(line) }
        if let path = lookup("file.path") as? String { values.append(path) }
        return values
    }
}
