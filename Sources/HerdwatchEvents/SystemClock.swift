#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two clocks the stages read: wall time for event timestamps, monotonic time for intervals.
public enum SystemClock {
    /// Milliseconds since the epoch (CLOCK_REALTIME).
    public static func wallMilliseconds() -> Int64 { milliseconds(CLOCK_REALTIME) }

    /// Milliseconds on a clock that never goes back (CLOCK_MONOTONIC), for timeouts and intervals.
    public static func monotonicMilliseconds() -> Int64 { milliseconds(CLOCK_MONOTONIC) }

    /// Nanoseconds on the monotonic clock, for timing stages.
    public static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    private static func milliseconds(_ clock: clockid_t) -> Int64 {
        var time = timespec()
        clock_gettime(clock, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
