#if canImport(Glibc)
import Glibc
#endif

/// Ends the collection loop's wait from another thread (a stop, a reload, a command from the
/// server): a non-blocking pipe the loop waits on beside its sources. `wake` writes a byte,
/// `reset` reads them all back; a full pipe already wakes, so a failed write loses nothing.
final class Waker: Sendable {
    private let reading: Int32
    private let writing: Int32

    init?() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return nil }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        reading = ends[0]
        writing = ends[1]
    }

    deinit {
        close(reading)
        close(writing)
    }

    /// The end to wait on: readable once `wake` was called and until `reset`.
    var pollDescriptor: Int32 { reading }

    func wake() {
        var byte: UInt8 = 1
        _ = write(writing, &byte, 1)
    }

    func reset() {
        var bytes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &bytes, { read(reading, $0.baseAddress, $0.count) }) > 0 {}
    }
}
