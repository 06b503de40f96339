/// UTC days: what both engines partition, roll up and drop by.
enum UTCDay {
    static let milliseconds: Int64 = 86_400_000

    /// The day of `time` (milliseconds since the epoch), counted from 1970-01-01.
    static func of(_ time: Int64) -> Int64 { time.dividedRoundingDown(by: milliseconds) }
}

extension Int64 {
    /// Division that rounds towards minus infinity (times before 1970 fall in the right day).
    func dividedRoundingDown(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return self % divisor < 0 ? quotient - 1 : quotient
    }
}
