/// What a profile does with one event class.
public enum Treatment: Sendable, Equatable, CustomStringConvertible {
    /// Every event.
    case full
    /// Whole process trees, a fraction `rate` of them (0 < rate < 1), chosen by a hash of the tree's
    /// root so the same trees are chosen in every class and on every run.
    case sample(Double)
    /// No events: one count per key (executable, destination, path) and action every interval.
    case aggregate(intervalMilliseconds: Int64)
    /// Nothing.
    case off

    /// `full`, `off`, `sample(0.1)` or `sample(10%)`, `aggregate(60s)`.
    public init(parsing text: String) throws(PolicyError) {
        let trimmed = text.filter { $0 != " " }
        func argument(_ name: String) -> Substring? {
            guard trimmed.hasPrefix(name + "("), trimmed.hasSuffix(")") else { return nil }
            return trimmed.dropFirst(name.count + 1).dropLast()
        }
        if trimmed == "full" {
            self = .full
        } else if trimmed == "off" {
            self = .off
        } else if let rate = argument("sample") {
            let value: Double? = rate.hasSuffix("%") ? Double(rate.dropLast()).map { $0 / 100 } : Double(rate)
            guard let value, value > 0, value <= 1 else {
                throw PolicyError("'\(text)': the sample rate must be above 0 and at most 1 (or 100%)")
            }
            self = value == 1 ? .full : .sample(value)
        } else if let interval = argument("aggregate") {
            guard let milliseconds = PolicyDuration.milliseconds(String(interval)), milliseconds >= 1000 else {
                throw PolicyError("'\(text)': the aggregation interval must be a duration of 1s or more (30s, 5m)")
            }
            self = .aggregate(intervalMilliseconds: milliseconds)
        } else {
            throw PolicyError("'\(text)' is not a treatment: full, sample(RATE), aggregate(INTERVAL) or off")
        }
    }

    public var description: String {
        switch self {
        case .full: "full"
        case .off: "off"
        case .sample(let rate): "sample(\(rate))"
        case .aggregate(let interval): "aggregate(\(PolicyDuration.text(interval)))"
        }
    }
}

/// Durations as people write them: `500ms`, `30s`, `5m`, `2h`, `1d` (a bare number is seconds).
public enum PolicyDuration {
    public static func milliseconds(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "ms" before "s": "500ms" must not read as 500m + s.
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let value = Double(number), value >= 0, value * Double(scale) < 1e15 else { return nil }
            return Int64(value * Double(scale))
        }
        guard let seconds = Double(text), seconds >= 0, seconds < 1e12 else { return nil }
        return Int64(seconds * 1000)
    }

    public static func text(_ milliseconds: Int64) -> String {
        if milliseconds % 86_400_000 == 0 { return "\(milliseconds / 86_400_000)d" }
        if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }
}

public struct PolicyError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
