import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The spool shared between the collection loop (appending) and the sinks' threads (reading and
/// acknowledging). Every call holds the lock; reads are served from memory when the sink keeps up.
/// A call that writes records to the segment wakes the threads waiting in `waitForWrite`.
public final class SharedSpool: Sendable {
    private let spool: Mutex<Spool>
    private let written = WriteSignal()

    public init(configuration: Spool.Configuration) throws(SpoolError) {
        spool = Mutex(try Spool(configuration: configuration))
    }

    public func withLock<Result: Sendable, Failure: Error>(_ body: (Spool) throws(Failure) -> Result) throws(Failure) -> Result {
        let (result, wrote) = try spool.withLock { (spool: inout Spool) throws(Failure) -> (Result, Bool) in
            let before = spool.written
            let result = try body(spool)
            return (result, spool.written != before)
        }
        if wrote { written.notify() }
        return result
    }

    /// Counts the writes: take it before reading, then `waitForWrite(after:)` misses none.
    public var writes: UInt64 { written.generation }

    /// Waits until records are written after the `writes` count `seen`, or the time is up; returns
    /// the count then.
    @discardableResult
    public func waitForWrite(after seen: UInt64, timeoutMilliseconds: Int) -> UInt64 {
        written.wait(after: seen, timeoutMilliseconds: timeoutMilliseconds)
    }
}

/// A counter and a condition variable: `notify` counts and wakes every waiter.
final class WriteSignal: @unchecked Sendable {
    // Allocated once and never moved, as pthread objects must be; guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var count: UInt64 = 0

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    var generation: UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return count
    }

    func notify() {
        pthread_mutex_lock(mutex)
        count &+= 1
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    func wait(after seen: UInt64, timeoutMilliseconds: Int) -> UInt64 {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = deadline.tv_nsec + (timeoutMilliseconds % 1000) * 1_000_000
        deadline.tv_sec += timeoutMilliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while count == seen {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        return count
    }
}

/// A receiver the spool is shipped to, driven by a `SinkRunner` on a thread of its own.
public protocol SpoolSink: AnyObject {
    /// The spool cursor's name.
    var name: String { get }
    /// Sends records (the ones after those sent before) and returns the position through which the
    /// receiver has confirmed delivery, if that moved. Throws when the connection failed; what was
    /// not confirmed is sent again.
    func send(_ records: [(payload: [UInt8], next: SpoolPosition)]) throws -> SpoolPosition?
    /// Confirmations that arrived while nothing was sent.
    func confirmed() throws -> SpoolPosition?
    /// Forget the connection and what it had not confirmed.
    func reset()
}

/// Ships the spool to one sink: batches from the sink's cursor, and the cursor moves only when the
/// receiver confirmed delivery (at-least-once; `event.id` lets the receiver drop repeats). While
/// the receiver fails, events wait in the spool and sending is retried with backoff (100 ms
/// doubling to 5 s, with jitter); after a failure, sending starts again from the cursor.
public final class SinkRunner: @unchecked Sendable {
    private let sink: any SpoolSink
    private let spool: SharedSpool
    private let logger: Logger
    public let batchSize: Int
    public var name: String { sink.name }

    /// `sink` is used by the runner's thread only.
    public init(sink: any SpoolSink, spool: SharedSpool, batchSize: Int = 1000, logger: Logger) {
        self.sink = sink
        self.spool = spool
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Runs until `shouldStop` (checked at least every 250 ms while idle, every 100 ms while
    /// backing off). An idle runner sleeps until the spool writes records.
    public func run(shouldStop: () -> Bool) {
        let name = sink.name
        var backoff: Int64 = 100
        var failing = false
        var sentThrough: SpoolPosition?
        func pause(_ milliseconds: Int64) {
            var left = milliseconds
            while left > 0, !shouldStop() {
                usleep(UInt32(min(left, 100)) * 1000)
                left -= 100
            }
        }
        func acknowledge(_ position: SpoolPosition?) throws {
            guard let position else { return }
            try spool.withLock { spool throws(SpoolError) in try spool.acknowledge(sink: name, through: position) }
            if failing { logger.notice("sink delivering again", metadata: ["sink": "\(name)"]) }
            failing = false
            backoff = 100
        }
        while !shouldStop() {
            do {
                let from = sentThrough
                let writes = spool.writes
                let batch = try spool.withLock { spool throws(SpoolError) in
                    try spool.read(after: from ?? spool.cursor(for: name), maximumRecords: batchSize)
                }
                guard let last = batch.last else {
                    try acknowledge(try sink.confirmed())
                    spool.waitForWrite(after: writes, timeoutMilliseconds: 250)
                    continue
                }
                let confirmed = try sink.send(batch)
                sentThrough = last.next
                try acknowledge(confirmed)
            } catch {
                if !failing {
                    logger.error("sink failing; events wait in the spool", metadata: ["sink": "\(name)", "error": "\(error)"])
                }
                failing = true
                sink.reset()
                sentThrough = nil
                pause(backoff + Int64.random(in: 0...(backoff / 2)))
                backoff = min(backoff * 2, 5000)
            }
        }
    }
}

/// Members of a spooled ECS event, read without parsing the whole object.
public enum SpooledEvent {
    /// The string value of the first `"key":"…"` in the first 2 KiB (the encoder writes `event.id`
    /// and `event.action` before any other member of those names). Escapes are not decoded: ids and
    /// actions have none.
    public static func firstString(_ key: String, in payload: [UInt8]) -> String? {
        let pattern = Array("\"\(key)\":\"".utf8)
        return payload.withUnsafeBytes { payload in
            firstStringBytes(pattern: pattern, in: payload).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// The same as bytes, for `pattern` (`"KEY":"`, made once by the caller): found with memchr
    /// and memcmp, no string made.
    public static func firstStringBytes(pattern: [UInt8], in payload: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let window = min(payload.count, 2048)
        guard let base = payload.baseAddress, let first = pattern.first, window >= pattern.count else { return nil }
        var at = 0
        var found: Int?
        while at + pattern.count <= window, let hit = memchr(base + at, Int32(first), window - pattern.count + 1 - at) {
            let offset = UnsafeRawPointer(hit) - base
            if pattern.withUnsafeBytes({ memcmp(base + offset, $0.baseAddress!, pattern.count) }) == 0 {
                found = offset
                break
            }
            at = offset + 1
        }
        guard let found else { return nil }
        let start = found + pattern.count
        guard let end = memchr(base + start, Int32(UInt8(ascii: "\"")), payload.count - start) else { return nil }
        return UnsafeRawBufferPointer(rebasing: payload[start..<(UnsafeRawPointer(end) - base)])
    }
}

/// A blocking loop (a sink runner, a consumer) as a swift-service-lifecycle service, on a thread of
/// its own: graceful shutdown asks it to stop, and it returns once the loop has.
public final class LoopService: Service, Sendable {
    private let label: String
    private let loop: @Sendable (_ shouldStop: () -> Bool) -> Void
    private let stop = Atomic(false)

    public init(label: String, loop: @escaping @Sendable (_ shouldStop: () -> Bool) -> Void) {
        self.label = label
        self.loop = loop
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue(label: label).async {
                    self.loop { self.stop.load(ordering: .relaxed) }
                    continuation.resume()
                }
            }
        } onGracefulShutdown: {
            self.stop.store(true, ordering: .relaxed)
        }
    }
}
