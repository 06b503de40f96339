import Foundation
import HerdwatchEvents
import PostgresNIO

/// One column of a batch as a PostgreSQL array parameter (`text[]`, `int8[]`, `float8[]`, NULL elements
/// allowed), for `INSERT … SELECT … FROM unnest($1, $2, …)`: a whole batch in one statement.
/// postgres-nio's own array encoding has no NULL elements, hence this one (the binary array format:
/// dimensions, has-NULL flag, element type, then per dimension its size and lower bound, then per
/// element its length, -1 for NULL, and its bytes).
struct ColumnArray: PostgresDynamicTypeEncodable {
    enum Kind {
        case text
        case integer
        case real

        var element: PostgresDataType {
            switch self {
            case .text: .text
            case .integer: .int8
            case .real: .float8
            }
        }
    }

    var kind: Kind
    var values: [ColumnValue]

    var psqlType: PostgresDataType {
        switch kind {
        case .text: .textArray
        case .integer: .int8Array
        case .real: .float8Array
        }
    }
    var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(Int32(values.isEmpty ? 0 : 1))
        // PostgreSQL reads NULLs from the lengths; the flag only has to be 0 or 1.
        buffer.writeInteger(Int32(values.contains(.null) ? 1 : 0))
        buffer.writeInteger(kind.element.rawValue)
        guard !values.isEmpty else { return }
        buffer.writeInteger(Int32(values.count))
        buffer.writeInteger(Int32(1))
        for value in values {
            switch (kind, value) {
            case (.text, .text(let text)):
                let bytes = Self.storable(text)
                buffer.writeInteger(Int32(bytes.utf8.count))
                buffer.writeString(bytes)
            case (.integer, .integer(let number)):
                buffer.writeInteger(Int32(8))
                buffer.writeInteger(number)
            case (.real, .real(let number)):
                buffer.writeInteger(Int32(8))
                buffer.writeInteger(number.bitPattern)
            case (.real, .integer(let number)):
                buffer.writeInteger(Int32(8))
                buffer.writeInteger(Double(number).bitPattern)
            case (.text, .integer(let number)):
                let text = String(number)
                buffer.writeInteger(Int32(text.utf8.count))
                buffer.writeString(text)
            case (.text, .real(let number)):
                let text = String(number)
                buffer.writeInteger(Int32(text.utf8.count))
                buffer.writeString(text)
            case (_, .null), (.integer, .real), (.integer, .text), (.real, .text):
                // A column's values are of its kind (see `PostgresSchema`); anything else is NULL.
                buffer.writeInteger(Int32(-1))
            }
        }
    }

    /// PostgreSQL text cannot hold NUL; a JSON `\u0000` in a field becomes U+FFFD in its column
    /// (the `json` column keeps the escape as written).
    static func storable(_ text: String) -> String {
        text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
    }
}

extension PostgresBindings {
    mutating func append(_ value: ColumnValue) {
        switch value {
        case .null: appendNull()
        case .integer(let number): append(number)
        case .real(let number): append(number)
        case .text(let text): append(ColumnArray.storable(text))
        }
    }
}

extension QueryValue {
    /// A result cell as the same values SQLite gives: integers (also booleans, 0 or 1), reals,
    /// text (also JSON, timestamps as ISO 8601, arrays as PostgreSQL writes them); other types as
    /// their size, like a blob.
    init(_ cell: PostgresCell) {
        guard var bytes = cell.bytes else {
            self = .null
            return
        }
        let count = bytes.readableBytes
        switch cell.dataType.rawValue {
        case PostgresDataType.bool.rawValue:
            self = .integer(bytes.readInteger(as: UInt8.self).map { $0 == 0 ? 0 : 1 } ?? 0)
        case PostgresDataType.int2.rawValue:
            self = bytes.readInteger(as: Int16.self).map { .integer(Int64($0)) } ?? .blob(count)
        case PostgresDataType.int4.rawValue:
            self = bytes.readInteger(as: Int32.self).map { .integer(Int64($0)) } ?? .blob(count)
        case PostgresDataType.oid.rawValue:
            self = bytes.readInteger(as: UInt32.self).map { .integer(Int64($0)) } ?? .blob(count)
        case PostgresDataType.int8.rawValue:
            self = bytes.readInteger(as: Int64.self).map { .integer($0) } ?? .blob(count)
        case PostgresDataType.float4.rawValue:
            self = bytes.readInteger(as: UInt32.self).map { .real(Double(Float(bitPattern: $0))) } ?? .blob(count)
        case PostgresDataType.float8.rawValue:
            self = bytes.readInteger(as: UInt64.self).map { .real(Double(bitPattern: $0)) } ?? .blob(count)
        case PostgresDataType.numeric.rawValue:
            // sum() and avg() of integers: an integer when it is one, as SQLite would give.
            if let decimal = try? cell.decode(Decimal.self) {
                let number = NSDecimalNumber(decimal: decimal)
                if decimal == Decimal(number.int64Value) {
                    self = .integer(number.int64Value)
                } else {
                    self = .real(number.doubleValue)
                }
            } else {
                self = .blob(count)
            }
        case PostgresDataType.text.rawValue, PostgresDataType.varchar.rawValue, PostgresDataType.bpchar.rawValue,
            PostgresDataType.name.rawValue, PostgresDataType.json.rawValue, PostgresDataType.xml.rawValue,
            PostgresDataType.char.rawValue, PostgresDataType.unknown.rawValue:
            self = .text(bytes.readString(length: count) ?? "")
        case PostgresDataType.jsonb.rawValue:
            // Binary jsonb: a version byte (1), then the text.
            _ = bytes.readInteger(as: UInt8.self)
            self = .text(bytes.readString(length: bytes.readableBytes) ?? "")
        case PostgresDataType.timestamp.rawValue, PostgresDataType.timestamptz.rawValue:
            // Microseconds since 2000-01-01 UTC.
            guard let micros = bytes.readInteger(as: Int64.self) else {
                self = .blob(count)
                return
            }
            let milliseconds = 946_684_800_000 + micros.dividedRoundingDown(by: 1000)
            self = .text(Self.iso8601(milliseconds: milliseconds))
        case PostgresDataType.date.rawValue:
            guard let days = bytes.readInteger(as: Int32.self) else {
                self = .blob(count)
                return
            }
            self = .text(String(Self.iso8601(milliseconds: 946_684_800_000 + Int64(days) * UTCDay.milliseconds).prefix(10)))
        case PostgresDataType.uuid.rawValue:
            self = (try? cell.decode(UUID.self)).map { .text($0.uuidString.lowercased()) } ?? .blob(count)
        case 2278:  // void: what a function that returns nothing returns
            self = .null
        default:
            if let strings = try? cell.decode([String].self) {
                self = .text("{" + strings.joined(separator: ",") + "}")
            } else if let numbers = try? cell.decode([Int64].self) {
                self = .text("{" + numbers.map(String.init).joined(separator: ",") + "}")
            } else {
                self = .blob(count)
            }
        }
    }

    /// `2026-11-23T10:00:02.000Z`, as the views write times.
    static func iso8601(milliseconds: Int64) -> String {
        let civil = CivilTime(secondsSinceEpoch: milliseconds.dividedRoundingDown(by: 1000))
        let fraction = milliseconds - milliseconds.dividedRoundingDown(by: 1000) * 1000
        func padded(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(padded(civil.year, 4))-\(padded(civil.month, 2))-\(padded(civil.day, 2))T\(padded(civil.hour, 2)):"
            + "\(padded(civil.minute, 2)):\(padded(civil.second, 2)).\(padded(fraction, 3))Z"
    }
}
