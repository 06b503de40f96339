import Foundation

/// Rules read an event the server received: an ECS JSON object as `JSONSerialization` parsed it.
/// Raw records come from `auditd.records` (values as written, quotes removed); EXECVE arguments from
/// `process.args`, which hold them decoded.
// @unchecked Sendable: the parsed object is never mutated after init.
public struct JSONSubject: DetectionSubject, @unchecked Sendable {
    public let object: [String: Any]
    private let records: [[String: Any]]

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

    /// `2026-11-23T10:00:00.123Z` (fraction of any length optional; `Z` or an offset such as
    /// `+02:00`) in milliseconds since the epoch.
    public static func milliseconds(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " ") else {
            return nil
        }
        func number(_ start: Int, _ count: Int) -> Int64? {
            guard start + count <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[start..<start + count] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2)
        else { return nil }
        // A fraction of any length (milliseconds kept), then Z or an offset (±HH:MM or ±HHMM).
        var index = 19
        var millisecond: Int64 = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                if digits < 3 { millisecond = millisecond * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { millisecond *= 10 } }
        }
        var offsetMinutes: Int64 = 0
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
            index += 1
        } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            let colon = index + 3 < bytes.count && bytes[index + 3] == UInt8(ascii: ":")
            guard let hours = number(index + 1, 2), let minutes = number(index + (colon ? 4 : 3), 2) else { return nil }
            offsetMinutes = sign * (hours * 60 + minutes)
            index += colon ? 6 : 5
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        // Days since the epoch (civil calendar, proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146097 + dayOfEra - 719468
        return ((days * 24 + hour) * 60 + minute - offsetMinutes) * 60_000 + second * 1000 + millisecond
    }

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
        guard RecordKeys.mayBeHex(key, recordType: type == "EXECVE" ? 1309 : 0), text.utf8.count >= 2,
            text.utf8.count % 2 == 0,
            text.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "F")) })
        else { return text }
        var bytes: [UInt8] = []
        var high: UInt8?
        for byte in text.utf8 {
            let nibble = byte <= UInt8(ascii: "9") ? byte - UInt8(ascii: "0") : byte - UInt8(ascii: "A") + 10
            if let first = high {
                bytes.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return String(decoding: bytes, as: UTF8.self)
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
