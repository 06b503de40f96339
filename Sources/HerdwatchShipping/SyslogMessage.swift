/// One RFC 5424 syslog message, `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`, and its
/// octet-counted TCP framing (RFC 6587 section 3.4.1, `LENGTH SP MESSAGE`). The agent's syslog sink
/// and the server's notify action both write through it.
///
/// Header fields are made valid rather than refused: characters outside printable US-ASCII (spaces
/// included) are dropped, each field is cut to its RFC length, and an empty field becomes the nil
/// value `-`. Structured-data values are escaped (`"`, `\`, `]`).
public struct SyslogMessage: Sendable {
    /// Facility number: 16 is local0, 10 authpriv.
    public var facility: Int
    /// Severity 0 (emergency) to 7 (debug); 6 is informational.
    public var severity: Int
    /// RFC 3339 time (`2026-11-23T10:00:00.123Z`), or nil for `-`.
    public var timestamp: String?
    public var hostName: String?
    public var appName: String?
    public var processID: String?
    public var messageID: String?
    public var structuredData: [StructuredDataElement]
    /// MSG: the body, sent as is (UTF-8 JSON here).
    public var message: [UInt8]

    /// `[ID NAME="VALUE" ...]`.
    public struct StructuredDataElement: Sendable, Equatable {
        public var id: String
        public var parameters: [(name: String, value: String)]

        public init(id: String, parameters: [(name: String, value: String)]) {
            self.id = id
            self.parameters = parameters
        }

        public static func == (left: Self, right: Self) -> Bool {
            left.id == right.id && left.parameters.map(\.name) == right.parameters.map(\.name)
                && left.parameters.map(\.value) == right.parameters.map(\.value)
        }
    }

    public init(
        facility: Int = 16, severity: Int = 6, timestamp: String? = nil, hostName: String? = nil, appName: String? = nil,
        processID: String? = nil, messageID: String? = nil, structuredData: [StructuredDataElement] = [], message: [UInt8]
    ) {
        self.facility = facility
        self.severity = severity
        self.timestamp = timestamp
        self.hostName = hostName
        self.appName = appName
        self.processID = processID
        self.messageID = messageID
        self.structuredData = structuredData
        self.message = message
    }

    /// The message without framing (one UDP datagram).
    public var bytes: [UInt8] {
        let priority = min(max(facility, 0), 23) * 8 + min(max(severity, 0), 7)
        var header = "<\(priority)>1 \(Self.field(timestamp, 64)) \(Self.field(hostName, 255)) \(Self.field(appName, 48)) "
        header += "\(Self.field(processID, 128)) \(Self.field(messageID, 32)) "
        if structuredData.isEmpty {
            header += "-"
        } else {
            for element in structuredData {
                // SD-NAME: printable US-ASCII except `=`, space, `]` and `"`, at most 32.
                let id = Self.field(element.id, 32, excluding: "= ]\"")
                header += "[\(id)"
                for parameter in element.parameters {
                    header += " \(Self.field(parameter.name, 32, excluding: "= ]\""))=\"\(Self.escaped(parameter.value))\""
                }
                header += "]"
            }
        }
        header += " "
        return Array(header.utf8) + message
    }

    /// `LENGTH SP MESSAGE`: the count is in bytes.
    public var octetCounted: [UInt8] {
        let body = bytes
        return Array("\(body.count) ".utf8) + body
    }

    /// Printable US-ASCII without spaces (and without `excluded`), at most `maximum`, or `-`.
    static func field(_ value: String?, _ maximum: Int, excluding excluded: String = "") -> String {
        guard var value else { return "-" }
        var bytes: [UInt8] = []
        value.withUTF8 { appendField(UnsafeRawBufferPointer($0), maximum, excluding: Array(excluded.utf8), to: &bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `field(value, maximum)` appended as bytes (nil: `-`). A byte outside 33...126 is dropped,
    /// as a scalar outside printable US-ASCII is: every byte of a multi-byte UTF-8 scalar is 0x80 or
    /// above. The syslog sink builds each message's header this way, without making strings.
    static func appendField(_ value: UnsafeRawBufferPointer?, _ maximum: Int, excluding excluded: [UInt8] = [], to bytes: inout [UInt8]) {
        let start = bytes.count
        if let value, maximum > 0 {
            for byte in value where byte > 32 && byte < 127 && !excluded.contains(byte) {
                bytes.append(byte)
                if bytes.count - start == maximum { break }
            }
        }
        if bytes.count == start { bytes.append(UInt8(ascii: "-")) }
    }

    /// PARAM-VALUE: UTF-8 with `"`, `\` and `]` escaped by a backslash.
    static func escaped(_ value: String) -> String {
        var result = ""
        result.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            if character == "\"" || character == "\\" || character == "]" { result.unicodeScalars.append("\\") }
            result.unicodeScalars.append(character)
        }
        return result
    }
}
