/// Encodes events as Elastic Common Schema JSON, one object per event.
///
/// The layout is documented field by field in docs/ecs-mapping.md. Raw audit records go under
/// `auditd.records` unchanged (values unquoted, nothing decoded), so nothing the kernel said is lost.
public struct ECSEncoder: Sendable {
    /// Whether to write `auditd.records` (the raw records). On by default.
    public var includeRawRecords: Bool

    public init(includeRawRecords: Bool = true) {
        self.includeRawRecords = includeRawRecords
    }

    /// Appends the event's JSON (no trailing newline) to `writer`.
    public func encode(_ event: Event, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("@timestamp")
        writer.beginValue()
        writer.appendTimestamp(event.timestamp)

        writer.key("event")
        writer.beginObject()
        writer.key("kind")
        writer.string(event.kind == .agentHeartbeat || event.kind == .telemetryAggregate ? "metric" : "event")
        writer.key("module")
        writer.string(event.module)
        writer.key("category")
        writer.staticStrings(event.kind.categories)
        writer.key("type")
        writer.staticStrings(event.kind.types)
        writer.key("action")
        if let name = event.specificAction {
            writer.string(name)
        } else {
            writer.string(event.kind.action)
        }
        writer.key("outcome")
        writer.string(event.outcome.name)
        if let audit = event.audit {
            writer.key("sequence")
            writer.number(audit.sequence)
        }
        writer.member("id", event.id)
        writer.endObject()

        if let name = event.host.name {
            writer.key("host")
            writer.beginObject()
            writer.member("name", name)
            writer.endObject()
        }
        if let message = event.message { writer.member("message", message) }
        if !event.tags.isEmpty {
            writer.key("tags")
            writer.strings(event.tags)
        }
        if let process = event.process { encode(process, into: &writer) }
        if let container = event.containerID {
            writer.key("container")
            writer.beginObject()
            writer.member("id", container)
            writer.endObject()
        }
        if let user = event.user { encode(user, into: &writer) }
        if let file = event.file { encode(file, into: &writer) }
        if let source = event.source { encode(source, as: "source", into: &writer) }
        if let destination = event.destination { encode(destination, as: "destination", into: &writer) }
        if let network = event.network {
            writer.key("network")
            writer.beginObject()
            writer.member("type", network.type)
            writer.member("direction", network.direction)
            writer.endObject()
        }
        if let code = event.errorCode {
            writer.key("error")
            writer.beginObject()
            writer.member("code", code)
            writer.endObject()
        }
        if let audit = event.audit { encode(audit, into: &writer) }
        if event.agentHealth != nil {
            // ECS's agent fields, on the heartbeat only: the hosts registry reads the version there.
            writer.key("agent")
            writer.beginObject()
            writer.member("type", "herdwatch")
            writer.member("version", HerdwatchVersion.string)
            writer.endObject()
        }
        if event.agentHealth != nil || event.loss != nil || event.sampling != nil || event.firstSeen
            || event.aggregate != nil || event.levelChange != nil || event.response != nil
        {
            // One `herdwatch` object for the fields ECS has no place for.
            writer.key("herdwatch")
            writer.beginObject()
            if let health = event.agentHealth { encode(health, into: &writer) }
            if let loss = event.loss { encode(loss, into: &writer) }
            if let sampling = event.sampling { encode(sampling, into: &writer) }
            if event.firstSeen {
                writer.key("first_seen")
                writer.bool(true)
            }
            if let aggregate = event.aggregate { encode(aggregate, into: &writer) }
            if let change = event.levelChange { encode(change, into: &writer) }
            if let response = event.response { encode(response, into: &writer) }
            writer.endObject()
        }
        writer.endObject()
    }

    /// The event's JSON as bytes (no trailing newline).
    public func encode(_ event: Event) -> [UInt8] {
        var writer = JSONWriter()
        encode(event, into: &writer)
        return writer.bytes
    }

    private func encode(_ health: Event.AgentHealth, into writer: inout JSONWriter) {
        writer.key("agent")
        writer.beginObject()
        writer.key("interval_seconds")
        writer.decimal(health.intervalSeconds)
        writer.key("events_per_second")
        writer.beginObject()
        for (source, rate) in health.eventsPerSecond.sorted(by: { $0.key < $1.key }) {
            writer.key(source)
            writer.decimal(rate)
        }
        writer.endObject()
        writer.member("events_total", health.eventsTotal)
        writer.member("lost_total", health.lostTotal)
        writer.member("rss_bytes", health.residentBytes)
        writer.key("cpu_percent")
        writer.decimal(health.cpuPercent)
        writer.key("uptime_seconds")
        writer.decimal(health.uptimeSeconds)
        writer.member("profile", health.profile)
        if !health.cost.isEmpty {
            writer.key("cost")
            writer.beginObject()
            for line in health.cost {
                writer.key(line.eventClass)
                writer.beginObject()
                writer.member("events_before", line.eventsBefore)
                writer.member("events_after", line.eventsAfter)
                writer.member("bytes_before", line.bytesBefore)
                writer.member("bytes_after", line.bytesAfter)
                writer.endObject()
            }
            writer.endObject()
        }
        writer.endObject()
    }

    private func encode(_ sampling: Event.Sampling, into writer: inout JSONWriter) {
        writer.key("sampling")
        writer.beginObject()
        writer.key("rate")
        writer.decimal(sampling.rate)
        writer.member("tree_id", sampling.treeID)
        if sampling.promoted {
            writer.key("promoted")
            writer.bool(true)
        }
        writer.endObject()
    }

    private func encode(_ aggregate: Event.Aggregate, into writer: inout JSONWriter) {
        writer.key("aggregate")
        writer.beginObject()
        writer.member("class", aggregate.eventClass)
        writer.member("key", aggregate.key)
        writer.member("count", aggregate.count)
        writer.timestampMember("window_start", milliseconds: aggregate.windowStart)
        writer.timestampMember("window_end", milliseconds: aggregate.windowEnd)
        writer.endObject()
    }

    private func encode(_ change: Event.LevelChange, into writer: inout JSONWriter) {
        writer.key("level")
        writer.beginObject()
        writer.member("previous", change.previous)
        writer.member("current", change.current)
        writer.member("reason", change.reason)
        writer.member("requested_by", change.requestedBy)
        if let expires = change.expiresAt {
            writer.timestampMember("expires_at", milliseconds: expires)
        }
        writer.endObject()
    }

    private func encode(_ response: Event.ResponseAction, into writer: inout JSONWriter) {
        writer.key("response")
        writer.beginObject()
        writer.member("command_id", response.commandID)
        writer.member("action", response.action)
        writer.member("target", response.target)
        writer.member("status", response.status)
        writer.member("detail", response.detail)
        writer.member("refusal", response.refusal)
        writer.member("requested_by", response.requestedBy)
        writer.endObject()
    }

    private func encode(_ loss: Event.Loss, into writer: inout JSONWriter) {
        writer.key("loss")
        writer.beginObject()
        writer.member("source", loss.source)
        writer.member("count", loss.count)
        writer.member("unit", loss.unit)
        writer.timestampMember("window_start", milliseconds: loss.windowStart)
        writer.timestampMember("window_end", milliseconds: loss.windowEnd)
        writer.endObject()
    }

    private func encode(_ process: Event.Process, into writer: inout JSONWriter) {
        writer.key("process")
        writer.beginObject()
        writer.member("pid", process.pid)
        writer.member("name", process.name)
        writer.member("executable", process.executable)
        if let args = process.args {
            writer.key("args")
            writer.strings(args)
            writer.member("args_count", process.argsCount ?? args.count)
        }
        writer.member("command_line", process.commandLine)
        writer.member("title", process.title)
        writer.member("working_directory", process.workingDirectory)
        writer.member("exit_code", process.exitCode)
        writer.member("entity_id", process.entityID)
        if process.parentPID != nil || process.parent != nil {
            writer.key("parent")
            writer.beginObject()
            writer.member("pid", process.parentPID)
            if let parent = process.parent {
                writer.member("entity_id", parent.entityID)
                writer.member("name", parent.name)
                writer.member("executable", parent.executable)
                if let args = parent.args {
                    writer.key("args")
                    writer.strings(args)
                }
            }
            writer.endObject()
        }
        if process.sessionLeaderEntityID != nil || process.sessionLeaderPID != nil {
            writer.key("session_leader")
            writer.beginObject()
            writer.member("pid", process.sessionLeaderPID)
            writer.member("entity_id", process.sessionLeaderEntityID)
            writer.endObject()
        }
        if !process.ancestry.isEmpty {
            writer.key("Ext")
            writer.beginObject()
            writer.key("ancestry")
            writer.strings(process.ancestry)
            writer.endObject()
        }
        writer.endObject()
    }

    private func encode(_ user: Event.User, into writer: inout JSONWriter) {
        writer.key("user")
        writer.beginObject()
        if let identity = user.user {
            writer.member("id", identity.id)
            writer.member("name", identity.name)
        }
        if let group = user.group { encode(group, as: "group", into: &writer) }
        encode(user.effective, group: user.effectiveGroup, as: "effective", into: &writer)
        encode(user.saved, group: user.savedGroup, as: "saved", into: &writer)
        encode(user.filesystem, group: user.filesystemGroup, as: "filesystem", into: &writer)
        if let audit = user.audit { encode(audit, as: "audit", into: &writer) }
        writer.endObject()
    }

    private func encode(
        _ identity: Event.Identity?, group: Event.Identity?, as name: StaticString, into writer: inout JSONWriter
    ) {
        guard identity != nil || group != nil else { return }
        writer.key(name)
        writer.beginObject()
        if let identity {
            writer.member("id", identity.id)
            writer.member("name", identity.name)
        }
        if let group { encode(group, as: "group", into: &writer) }
        writer.endObject()
    }

    private func encode(_ identity: Event.Identity, as name: StaticString, into writer: inout JSONWriter) {
        writer.key(name)
        writer.beginObject()
        writer.member("id", identity.id)
        writer.member("name", identity.name)
        writer.endObject()
    }

    private func encode(_ file: Event.File, into writer: inout JSONWriter) {
        writer.key("file")
        writer.beginObject()
        writer.member("path", file.path)
        writer.member("inode", file.inode)
        writer.member("device", file.device)
        writer.member("mode", file.mode)
        writer.member("type", file.type)
        writer.member("uid", file.uid)
        writer.member("gid", file.gid)
        writer.member("owner", file.owner)
        writer.member("group", file.group)
        writer.endObject()
    }

    private func encode(_ endpoint: Event.Endpoint, as name: StaticString, into writer: inout JSONWriter) {
        writer.key(name)
        writer.beginObject()
        writer.member("ip", endpoint.ip)
        writer.member("port", endpoint.port)
        writer.member("address", endpoint.address ?? endpoint.ip)
        writer.member("domain", endpoint.domain)
        writer.endObject()
    }

    private func encode(_ audit: Event.Audit, into writer: inout JSONWriter) {
        writer.key("auditd")
        writer.beginObject()
        writer.member("sequence", audit.sequence)
        writer.member("node", audit.node)
        writer.member("record_type", audit.recordType)
        writer.member("syscall", audit.syscall)
        writer.member("arch", audit.arch)
        writer.member("result", audit.result)
        writer.member("session", audit.session)
        writer.member("tty", audit.tty)
        if !audit.paths.isEmpty {
            writer.key("paths")
            writer.beginArray()
            for path in audit.paths {
                writer.beginObject()
                writer.member("name", path.name)
                writer.member("nametype", path.nameType)
                writer.member("inode", path.inode)
                writer.member("mode", path.mode)
                writer.endObject()
            }
            writer.endArray()
        }
        if includeRawRecords {
            writer.key("records")
            writer.beginArray()
            for record in audit.records { encode(record, into: &writer) }
            writer.endArray()
        }
        writer.endObject()
    }

    private func encode(_ record: AuditRecord, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("type")
        writer.string(record.typeName)
        var hasEnriched = false
        record.bytes.withUnsafeBufferPointer { bytes in
            for field in record.fields {
                if field.isEnriched {
                    hasEnriched = true
                    continue
                }
                writer.rawMember(bytes, field)
            }
            if hasEnriched {
                writer.key("enriched")
                writer.beginObject()
                for field in record.fields where field.isEnriched { writer.rawMember(bytes, field) }
                writer.endObject()
            }
        }
        writer.endObject()
    }


}

extension JSONWriter {
    /// `"name":"2026-11-23T10:00:00.123Z"` for a time in milliseconds since the epoch.
    public mutating func timestampMember(_ name: StaticString, milliseconds: Int64) {
        key(name)
        beginValue()
        appendTimestamp(AuditTimestamp(milliseconds: milliseconds))
    }

    /// `"key":"value"` straight from a record's bytes.
    @inline(__always)
    mutating func rawMember(_ bytes: UnsafeBufferPointer<UInt8>, _ field: AuditField) {
        separate()
        let key = UnsafeBufferPointer(rebasing: bytes[Int(field.keyStart)..<Int(field.keyEnd)])
        let value = UnsafeBufferPointer(rebasing: bytes[Int(field.valueStart)..<Int(field.valueEnd)])
        // Nearly every field of a kernel record is plain: tested a word at a time, then copied with
        // its quotes and colon in one go.
        if Self.isPlain(key), Self.isPlain(value) {
            storage.appendQuotedPair(key, value)
            return
        }
        appendEscaped(buffer: key)
        storage.append(UInt8(ascii: ":"))
        appendEscaped(buffer: value)
    }

    @inlinable
    mutating func staticStrings(_ values: [StaticString]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    @inlinable
    mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    /// Writes `"2017-04-12T22:48:09.295Z"`.
    mutating func appendTimestamp(_ timestamp: AuditTimestamp) {
        let civil = CivilTime(secondsSinceEpoch: timestamp.seconds)
        storage.append(UInt8(ascii: "\""))
        appendPadded(civil.year, width: 4)
        storage.append(UInt8(ascii: "-"))
        appendPadded(civil.month, width: 2)
        storage.append(UInt8(ascii: "-"))
        appendPadded(civil.day, width: 2)
        storage.append(UInt8(ascii: "T"))
        appendPadded(civil.hour, width: 2)
        storage.append(UInt8(ascii: ":"))
        appendPadded(civil.minute, width: 2)
        storage.append(UInt8(ascii: ":"))
        appendPadded(civil.second, width: 2)
        storage.append(UInt8(ascii: "."))
        appendPadded(Int64(timestamp.milliseconds), width: 3)
        storage.append(UInt8(ascii: "Z"))
        storage.append(UInt8(ascii: "\""))
    }

    private mutating func appendPadded(_ value: Int64, width: Int) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var remaining = value < 0 ? 0 : value
        if remaining >= divisor * 10 {
            appendUnsigned(UInt64(remaining))
            return
        }
        while divisor > 0 {
            storage.append(UInt8(ascii: "0") + UInt8(remaining / divisor))
            remaining %= divisor
            divisor /= 10
        }
    }
}

/// UTC calendar fields from a Unix time, without Foundation (Howard Hinnant's days-to-civil algorithm).
public struct CivilTime: Sendable, Equatable {
    public var year: Int64
    public var month: Int64
    public var day: Int64
    public var hour: Int64
    public var minute: Int64
    public var second: Int64

    public init(secondsSinceEpoch: Int64) {
        var days = secondsSinceEpoch / 86_400
        var secondsOfDay = secondsSinceEpoch % 86_400
        if secondsOfDay < 0 {
            secondsOfDay += 86_400
            days -= 1
        }
        hour = secondsOfDay / 3600
        minute = secondsOfDay % 3600 / 60
        second = secondsOfDay % 60
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }
}

extension CivilTime {
    /// `2026-11-23T10:00:00.123Z` (fraction of any length optional; `Z` or an offset such as
    /// `+02:00`) in milliseconds since the epoch.
    public static func milliseconds(iso8601 text: String) -> Int64? {
        var text = text
        return text.withUTF8 { milliseconds(iso8601: UnsafeRawBufferPointer($0)) }
    }

    /// The same, from the text's UTF-8 bytes.
    public static func milliseconds(iso8601 bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return nil }
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
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        // Days since the epoch (civil calendar, proleptic Gregorian): the inverse of `init(secondsSinceEpoch:)`.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146097 + dayOfEra - 719468
        return ((days * 24 + hour) * 60 + minute - offsetMinutes) * 60_000 + second * 1000 + millisecond
    }
}
