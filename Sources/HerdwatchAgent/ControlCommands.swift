import Foundation
import HerdwatchEvents
import HerdwatchPolicy
import HerdwatchShipping

/// What the control socket understands, one line each, answered with one JSON object:
///
///     level                      the level in force, the base level, when it expires
///     level NAME SECONDS|-       set the level (for SECONDS, or `-` until changed again)
///     stats                      cost per level and class (last minute, this minute, since
///                                start) and each sink's lag
///
/// Errors come back as `{"error": "..."}`.
struct ControlCommands {
    let policy: TelemetryPolicy
    let spool: SharedSpool
    let sinks: [String]
    let hostName: String?
    let started: Int64

    func handle(_ request: String, now: Int64) -> (reply: String, events: [Event]) {
        let words = request.split(separator: " ").map(String.init)
        switch words.first {
        case "level" where words.count == 1:
            return (json(level(now: now)), [])
        case "level" where words.count == 3:
            var until: Int64?
            if words[2] != "-" {
                guard let seconds = Double(words[2]), seconds > 0, seconds < 1e9 else {
                    return (error("level: '\(words[2])' is not a number of seconds"), [])
                }
                until = now + Int64(seconds * 1000)
            }
            let previous = policy.profile.name
            do {
                let event = try policy.setLevel(words[1], until: until, requestedBy: "local", now: now)
                var reply = level(now: now)
                reply["previous"] = previous
                return (json(reply), [event])
            } catch {
                return (self.error("level: \(error)"), [])
            }
        case "stats" where words.count == 1:
            return (json(stats(now: now)), [])
        default:
            return (error("unknown request '\(request)': level [NAME SECONDS|-] or stats"), [])
        }
    }

    private func level(now: Int64) -> [String: Any] {
        var reply: [String: Any] = ["level": policy.profile.name, "base": policy.configuration.baseProfile]
        if let expires = policy.expiresAt {
            reply["expires_at"] = Self.timestamp(expires)
            reply["expires_in_seconds"] = Double(expires - now) / 1000
        }
        return reply
    }

    private func stats(now: Int64) -> [String: Any] {
        func table(_ counts: [CostLedger.Key: CostLedger.Counts]) -> [String: Any] {
            var byProfile: [String: [String: Any]] = [:]
            for (key, value) in counts {
                byProfile[key.profile, default: [:]][key.eventClass.rawValue] = [
                    "events_before": value.eventsBefore, "events_after": value.eventsAfter,
                    "bytes_before": value.bytesBefore, "bytes_after": value.bytesAfter,
                ]
            }
            return byProfile
        }
        var reply = level(now: now)
        reply["host"] = hostName ?? ""
        reply["uptime_seconds"] = Double(now - started) / 1000
        var cost: [String: Any] = [
            "total": table(policy.cost.totals()),
            "current_minute": table(policy.cost.currentMinute(now: now)),
            "current_minute_start": Self.timestamp(policy.cost.minuteStart),
        ]
        if let start = policy.cost.lastMinuteStart {
            cost["last_minute"] = table(policy.cost.lastMinute)
            cost["last_minute_start"] = Self.timestamp(start)
        }
        reply["cost"] = cost
        var sinkReport: [String: Any] = [:]
        for name in sinks {
            var entry: [String: Any] = [:]
            do {
                let lag = try spool.withLock { spool throws(SpoolError) in try spool.lag(for: name) }
                entry["lag_events"] = lag.records
                entry["lag_bytes"] = Int(lag.bytes)
                if let oldest = lag.oldest, let time = Self.eventTime(oldest) {
                    entry["oldest_age_seconds"] = Double(now - time) / 1000
                }
            } catch {
                entry["error"] = "\(error)"
            }
            sinkReport[name] = entry
        }
        reply["sinks"] = sinkReport
        let counts: [String: Int] = spool.withLock { spool in
            ["dropped_records": spool.droppedRecords, "dropped_must_keep_records": spool.droppedMustKeepRecords, "moved_records": spool.movedRecords]
        }
        reply["spool"] = counts
        return reply
    }

    /// `@timestamp` of a spooled event (the encoder writes it first).
    static func eventTime(_ payload: [UInt8]) -> Int64? {
        guard let text = SpooledEvent.firstString("@timestamp", in: payload) else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = formatter.date(from: text) else { return nil }
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    static func timestamp(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    private func json(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return error("reply not encodable")
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func error(_ message: String) -> String {
        json(["error": message])
    }
}
