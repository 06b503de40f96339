import HerdwatchEvents

/// The records of one audit event, in arrival order.
public struct AssembledEvent: Sendable {
    public var timestamp: AuditTimestamp
    public var serial: UInt64
    public var records: [AuditRecord]
    /// Why the event was completed.
    public var completion: Completion

    public enum Completion: Sendable, Equatable {
        /// An EOE or PROCTITLE record, or a record type that is an event on its own.
        case complete
        /// No more records came within the timeout.
        case timedOut
        /// Flushed before its time to keep memory bounded (see `AuditEventAssembler.Configuration`).
        case flushedEarly
        /// The input ended.
        case endOfInput
    }
}

/// Groups records into events by (node, timestamp, serial).
///
/// An event completes on EOE or PROCTITLE (the kernel writes PROCTITLE last), at once for record
/// types that are events on their own, or — when a timeout is set — once the newest time seen is
/// `timeoutMilliseconds` past the event's own (live sources advance that time from the wall clock, so
/// a quiet stream never holds an event back). Records of different events may interleave and arrive
/// out of order. Memory is bounded: past `maximumInFlightEvents` or `maximumInFlightBytes` the oldest
/// pending event is flushed early, and counted.
///
/// Replay sets no timeout: auditd's logs carry no EOE records, old kernels write no PROCTITLE, and
/// records of one event may stand far apart in a log, so an event there stays open until the
/// in-flight window pushes it out or the input ends.
public struct AuditEventAssembler: Sendable {
    public struct Configuration: Sendable {
        /// How long, in the records' own time, an event waits for more records; nil: no time limit,
        /// only the in-flight window and the end of input complete an unterminated event.
        public var timeoutMilliseconds: Int64?
        public var maximumInFlightEvents: Int
        public var maximumInFlightBytes: Int
        /// Records beyond this in one event complete it early (an exec with a huge argument list).
        public var maximumRecordsPerEvent: Int

        public init(
            timeoutMilliseconds: Int64? = 2000, maximumInFlightEvents: Int = 8192,
            maximumInFlightBytes: Int = 32 << 20, maximumRecordsPerEvent: Int = 2048
        ) {
            self.timeoutMilliseconds = timeoutMilliseconds
            self.maximumInFlightEvents = maximumInFlightEvents
            self.maximumInFlightBytes = maximumInFlightBytes
            self.maximumRecordsPerEvent = maximumRecordsPerEvent
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var records = 0
        public var events = 0
        public var timedOut = 0
        public var flushedEarly = 0
        /// Records whose event had already been emitted; each was emitted as an event of its own.
        public var lateRecords = 0
        public init() {}
    }

    struct Key: Hashable {
        var node: UInt64
        var serial: UInt64
        var milliseconds: Int64

        // One word into the hasher instead of three: the serial alone nearly always tells events apart.
        func hash(into hasher: inout Hasher) {
            hasher.combine(serial &* 0x9E37_79B9_7F4A_7C15 ^ node ^ UInt64(bitPattern: milliseconds))
        }
    }

    struct Pending {
        var event: AssembledEvent
        var bytes: Int
        var order: UInt64
    }

    public let configuration: Configuration
    public private(set) var statistics = Statistics()
    private var pending = PendingTable<Pending>()
    /// Keys in order of first arrival, with the order number they were given; entries of events
    /// already completed are skipped when they come to the front.
    private var arrival = Ring<(Key, UInt64)>()
    /// `completed[order - completedBase]`: whether the event with that order number is done; follows
    /// `arrival`, so stale entries are recognised without a table lookup.
    private var completed = Ring<Bool>()
    private var completedBase: UInt64 = 0
    private var nextOrder: UInt64 = 0
    private var inFlightBytes = 0
    private var newestTimestamp: Int64 = .min
    /// Recently completed keys, direct-mapped by serial, to tell a late record from a new event.
    /// Serials are sequential, so the last 4096 completions rarely share a slot.
    private var recentlyCompleted = [Key?](repeating: nil, count: 4096)

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var inFlightEvents: Int { pending.count }

    /// Adds one record; calls `emit` for each event this completes (possibly none, possibly several).
    public mutating func add(_ record: consuming AuditRecord, emit: (AssembledEvent) throws -> Void) rethrows {
        statistics.records += 1
        let key = Key(
            node: record.nodeRange.map { RecordTypes.fnv1a(record.bytes[$0]) } ?? 0, serial: record.serial,
            milliseconds: record.timestamp.totalMilliseconds)
        if key.milliseconds > newestTimestamp { newestTimestamp = key.milliseconds }

        if record.type == RecordTypes.eoe {
            // EOE carries no data: it only ends its event.
            if let done = pending.removeValue(for: key) {
                try finish(done, key: key, completion: .complete, emit: emit)
            }
            try expire(emit: emit)
            return
        }

        let size = record.bytes.count + record.fields.count * MemoryLayout<AuditField>.stride + 64
        let completes = record.type == RecordTypes.proctitle || RecordTypes.isSingleRecordEvent(record.type)
        if let slot = pending.slot(of: key) {
            pending[slot: slot].event.records.append(consume record)
            pending[slot: slot].bytes += size
            inFlightBytes += size
            if completes {
                let entry = pending.remove(slot: slot)
                try finish(entry, key: key, completion: .complete, emit: emit)
            } else if pending[slot: slot].event.records.count >= configuration.maximumRecordsPerEvent {
                let entry = pending.remove(slot: slot)
                statistics.flushedEarly += 1
                try finish(entry, key: key, completion: .flushedEarly, emit: emit)
            }
        } else {
            if recentlyCompleted[Int(truncatingIfNeeded: key.serial) & 4095] == key { statistics.lateRecords += 1 }
            var records: [AuditRecord] = []
            if !completes { records.reserveCapacity(8) }  // SYSCALL, EXECVE, CWD, PATHs, PROCTITLE: one allocation
            let timestamp = record.timestamp
            records.append(consume record)
            let event = AssembledEvent(timestamp: timestamp, serial: key.serial, records: records, completion: .complete)
            let entry = Pending(event: event, bytes: size, order: nextOrder)
            inFlightBytes += size
            if completes {
                // Never queued, so it takes no order number.
                try finish(entry, key: key, completion: .complete, emit: emit)
            } else {
                pending.insert(entry, for: key)
                arrival.append((key, nextOrder))
                completed.append(false)
                nextOrder += 1
            }
        }
        try expire(emit: emit)
    }

    /// Completes events older than `timeout` relative to `now` (milliseconds since the epoch); live
    /// sources call this from a timer so quiet periods do not hold events back.
    public mutating func flush(olderThan now: Int64, emit: (AssembledEvent) throws -> Void) rethrows {
        if now > newestTimestamp { newestTimestamp = now }
        try expire(emit: emit)
    }

    /// Completes every pending event, oldest first (end of input).
    public mutating func flushAll(emit: (AssembledEvent) throws -> Void) rethrows {
        while let (key, order) = arrival.first {
            popArrival()
            guard let slot = pending.slot(of: key), pending[slot: slot].order == order else { continue }
            let entry = pending.remove(slot: slot)
            try finish(entry, key: key, completion: .endOfInput, emit: emit)
        }
    }

    private mutating func popArrival() {
        _ = arrival.popFirst()
        _ = completed.popFirst()
        completedBase += 1
    }

    private mutating func expire(emit: (AssembledEvent) throws -> Void) rethrows {
        while let (key, order) = arrival.first {
            if completed.first == true {
                popArrival()
                continue
            }
            let overCapacity =
                pending.count > configuration.maximumInFlightEvents || inFlightBytes > configuration.maximumInFlightBytes
            let expired = configuration.timeoutMilliseconds.map { newestTimestamp - key.milliseconds > $0 } ?? false
            guard overCapacity || expired else { return }
            popArrival()
            guard let entry = pending.removeValue(for: key) else { continue }
            assert(entry.order == order)
            if expired {
                statistics.timedOut += 1
                try finish(entry, key: key, completion: .timedOut, emit: emit)
            } else {
                statistics.flushedEarly += 1
                try finish(entry, key: key, completion: .flushedEarly, emit: emit)
            }
        }
    }

    private mutating func finish(
        _ entry: Pending, key: Key, completion: AssembledEvent.Completion, emit: (AssembledEvent) throws -> Void
    ) rethrows {
        inFlightBytes -= entry.bytes
        statistics.events += 1
        if entry.order >= completedBase, entry.order < nextOrder {
            completed[Int(entry.order - completedBase)] = true
        }
        recentlyCompleted[Int(truncatingIfNeeded: key.serial) & 4095] = key
        var event = entry.event
        event.completion = completion
        try emit(event)
    }
}

/// A FIFO queue over an array with a moving head; compacts when the head passes half the storage.
struct Ring<Element>: Sendable where Element: Sendable {
    private var storage: [Element] = []
    private var head = 0

    var count: Int { storage.count - head }
    var first: Element? { head < storage.count ? storage[head] : nil }

    subscript(offset: Int) -> Element {
        get { storage[head + offset] }
        set { storage[head + offset] = newValue }
    }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }
}

/// The assembler's pending events by key: open addressing with linear probing and backward-shift
/// deletion, hashed with one multiply of the serial (sequential serials spread evenly), so the
/// per-record lookup costs a few instructions instead of a SipHash round.
struct PendingTable<Value> {
    private var keys: [AuditEventAssembler.Key?]
    private var values: [Value?]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 64) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: nil, count: size)
        values = Array(repeating: nil, count: size)
        mask = size - 1
    }

    @inline(__always)
    private func home(_ key: AuditEventAssembler.Key) -> Int {
        let mixed = (key.serial ^ key.node ^ UInt64(bitPattern: key.milliseconds)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> 32) & mask
    }

    /// The slot holding `key`, if any.
    func slot(of key: AuditEventAssembler.Key) -> Int? {
        var index = home(key)
        while let candidate = keys[index] {
            if candidate == key { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    /// The value in an occupied slot, modified in place.
    subscript(slot slot: Int) -> Value {
        get { values[slot]! }
        _modify {
            var value = values[slot].take()!
            defer { values[slot] = value }
            yield &value
        }
    }

    subscript(key: AuditEventAssembler.Key) -> Value? {
        slot(of: key).map { values[$0]! }
    }

    /// Inserts a key that is not in the table.
    mutating func insert(_ value: Value, for key: AuditEventAssembler.Key) {
        if (count + 1) * 2 > keys.count { grow() }
        var index = home(key)
        while keys[index] != nil { index = (index + 1) & mask }
        keys[index] = key
        values[index] = value
        count += 1
    }

    mutating func remove(slot: Int) -> Value {
        let value = values[slot].take()!
        keys[slot] = nil
        count -= 1
        // Shift later members of the probe run back, so lookups never stop at a hole too early.
        var hole = slot
        var index = (slot + 1) & mask
        while let key = keys[index] {
            let want = home(key)
            // Move the entry if its home is not cyclically within (hole, index].
            let distanceToIndex = (index - want) & mask
            let distanceToHole = (hole - want) & mask
            if distanceToHole < distanceToIndex {
                keys[hole] = key
                values[hole] = values[index].take()
                keys[index] = nil
                hole = index
            }
            index = (index + 1) & mask
        }
        return value
    }

    mutating func removeValue(for key: AuditEventAssembler.Key) -> Value? {
        slot(of: key).map { remove(slot: $0) }
    }

    private mutating func grow() {
        let oldKeys = keys
        var oldValues = values
        let size = keys.count * 2
        keys = Array(repeating: nil, count: size)
        values = Array(repeating: nil, count: size)
        mask = size - 1
        count = 0
        for index in oldKeys.indices {
            if let key = oldKeys[index], let value = oldValues[index].take() { insert(value, for: key) }
        }
    }
}
extension PendingTable: Sendable where Value: Sendable {}
