import Foundation
import Synchronization
import Testing

@testable import HerdwatchShipping

@Suite struct SpoolTests {
    func folder() throws -> String {
        // Two levels that do not exist yet: the spool makes them.
        FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-spool-\(UUID().uuidString)/spool").path
    }

    func record(_ index: Int, size: Int = 40) -> [UInt8] {
        Array("event-\(index)-".utf8) + [UInt8](repeating: UInt8(65 + index % 26), count: size)
    }

    @Test func crc32cKnownValue() {
        // The standard check value of CRC-32C over "123456789".
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.tableChecksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// The processor's instruction and the tables agree at every length and alignment (records
    /// written by one are read by the other on another machine).
    @Test func crc32cInstructionAndTablesAgree() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<4200).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096, 4099] {
            for start in 0..<9 {
                let slice = Array(bytes[start..<(start + length)])
                #expect(CRC32C.checksum(slice) == CRC32C.tableChecksum(slice), "length \(length) from \(start)")
            }
        }
    }

    /// A sink's thread sleeps until records are written, not a poll interval: appending alone
    /// (still in memory) wakes no one, the flush that writes them does.
    @Test func waitingForWritesWakesOnTheFlushThatWritesRecords() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let shared = try SharedSpool(configuration: Spool.Configuration(directory: directory))
        let seen = shared.writes
        let started = Date()
        #expect(shared.waitForWrite(after: seen, timeoutMilliseconds: 100) == seen, "nothing written: the wait times out")
        #expect(Date().timeIntervalSince(started) >= 0.09)

        try shared.withLock { spool throws(SpoolError) in _ = try spool.append(record(1)) }
        #expect(shared.writes == seen, "an append is not a write")
        final class Flag: Sendable { let value = Atomic(false) }
        let woke = Flag()
        let waiter = Thread {
            let after = shared.waitForWrite(after: seen, timeoutMilliseconds: 10_000)
            woke.value.store(after > seen, ordering: .relaxed)
        }
        waiter.start()
        usleep(50_000)
        let flushed = Date()
        try shared.withLock { spool throws(SpoolError) in try spool.flush() }
        while !woke.value.load(ordering: .relaxed), Date().timeIntervalSince(flushed) < 5 { usleep(1_000) }
        let wokeUp = woke.value.load(ordering: .relaxed)
        #expect(wokeUp, "the waiter did not wake on the write")
        #expect(Date().timeIntervalSince(flushed) < 1, "woken \(Date().timeIntervalSince(flushed)) s after the write")
        let records = try shared.withLock { spool throws(SpoolError) in try spool.read(after: spool.start) }
        #expect(records.map(\.payload) == [record(1)])
    }

    @Test func recordsComeBackInOrderAcrossSegments() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        var configuration = Spool.Configuration(directory: directory)
        configuration.segmentBytes = 1000
        let spool = try Spool(configuration: configuration)
        for index in 0..<100 { try spool.append(record(index)) }
        try spool.flush()
        var payloads: [[UInt8]] = []
        var position = spool.cursor(for: "http")
        while true {
            let batch = try spool.read(after: position, maximumRecords: 7)
            guard let last = batch.last else { break }
            payloads += batch.map(\.payload)
            position = last.next
        }
        #expect(payloads == (0..<100).map { record($0) })
        #expect(try Spool.listSegments(directory).count > 5, "segments rolled over")
        // What is behind a cursor, counted from the segments' sizes, is what reading it counts.
        for through in [0, 1, 33, 99, 100] {
            var cursor = spool.start
            if through > 0 { cursor = try spool.read(after: spool.start, maximumRecords: through).last!.next }
            try spool.acknowledge(sink: "count-\(through)", through: cursor)
            #expect(spool.unsentBytes(for: "count-\(through)") == (try spool.lag(for: "count-\(through)")).bytes, "after \(through)")
        }
        #expect(spool.unsentBytes(for: "count-100") == 0 && spool.unsentBytes(for: "new") > 0)
    }

    @Test func cursorsSurviveReopeningAndSinksAreIndependent() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        do {
            let spool = try Spool(configuration: Spool.Configuration(directory: directory))
            for index in 0..<10 { try spool.append(record(index)) }
            try spool.flush()
            let firstFour = try spool.read(after: spool.cursor(for: "nats"), maximumRecords: 4)
            try spool.acknowledge(sink: "nats", through: firstFour.last!.next)
        }
        let reopened = try Spool(configuration: Spool.Configuration(directory: directory))
        #expect(reopened.recovery.records == 10 && reopened.recovery.truncatedBytes == 0)
        let rest = try reopened.read(after: reopened.cursor(for: "nats"))
        #expect(rest.map(\.payload) == (4..<10).map { record($0) })
        let all = try reopened.read(after: reopened.cursor(for: "syslog"))
        #expect(all.count == 10, "a sink with no cursor starts at the beginning")
    }

    /// The cursor is rewritten in place, in two slots taken in turn: a torn or corrupt newest slot
    /// leaves the one before (events repeat, none is skipped); a text cursor of an earlier release
    /// is read and replaced.
    @Test func cursorSlotsSurviveATornWriteAndOldCursorsAreRead() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let path = directory + "/cursor-http"
        var positions: [SpoolPosition] = []
        do {
            let spool = try Spool(configuration: Spool.Configuration(directory: directory))
            for index in 0..<10 { try spool.append(record(index)) }
            try spool.flush()
            for record in try spool.read(after: spool.cursor(for: "http"), maximumRecords: 3) {
                try spool.acknowledge(sink: "http", through: record.next)
                positions.append(record.next)
            }
        }
        #expect(Spool.readCursor(path) == positions[2])
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == 2 * CursorFile.slotSize)
        // Three writes: sequences 1, 2, 3; the third went to slot 1 (odd). Damage it.
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[CursorFile.slotSize + 9] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(Spool.readCursor(path) == positions[1])
        let reopened = try Spool(configuration: Spool.Configuration(directory: directory))
        #expect(reopened.cursor(for: "http") == positions[1])
        // Both slots unreadable: no cursor (a sink then starts from the oldest record).
        bytes[9] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(Spool.readCursor(path) == nil)

        // An earlier release's text cursor.
        try Data("\(positions[0].segment) \(positions[0].offset)\n".utf8).write(to: URL(fileURLWithPath: path))
        do {
            let spool = try Spool(configuration: Spool.Configuration(directory: directory))
            #expect(spool.cursor(for: "http") == positions[0])
            try spool.acknowledge(sink: "http", through: positions[2])
        }
        #expect(Spool.readCursor(path) == positions[2])
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == 2 * CursorFile.slotSize)
    }

    @Test(arguments: ["torn-header", "torn-payload", "bad-checksum", "garbage"])
    func aDamagedTailIsCutAndNothingBeforeItIsLost(damage: String) throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        do {
            let spool = try Spool(configuration: Spool.Configuration(directory: directory))
            for index in 0..<20 { try spool.append(record(index)) }
            try spool.flush()
        }
        let segment = directory + "/" + (try Spool.listSegments(directory).map { String(format: "%016llx.seg", $0) }.last!)
        let handle = try #require(FileHandle(forUpdatingAtPath: segment))
        let size = try handle.seekToEnd()
        switch damage {
        case "torn-header":
            handle.write(Data([12, 0, 0]))  // 3 bytes of a header
        case "torn-payload":
            handle.write(Data([200, 0, 0, 0, 1, 2, 3, 4]) + Data(repeating: 7, count: 50))  // says 200, has 50
        case "bad-checksum":
            // Flip a byte in the last record's payload.
            try handle.seek(toOffset: size - 3)
            handle.write(Data([0xFF]))
        default:
            handle.write(Data((0..<100).map { UInt8($0 * 37 % 251) }))
        }
        try handle.close()

        let reopened = try Spool(configuration: Spool.Configuration(directory: directory))
        let expected = damage == "bad-checksum" ? 19 : 20
        #expect(reopened.recovery.records == expected)
        #expect(reopened.recovery.truncatedBytes > 0)
        #expect(reopened.recovery.reason != nil)
        let payloads = try reopened.read(after: reopened.start).map(\.payload)
        #expect(payloads == (0..<expected).map { record($0) })
        // Appending after the repair works and reads back.
        try reopened.append(record(99))
        try reopened.flush()
        #expect(try reopened.read(after: reopened.start).last?.payload == record(99))
    }

    @Test func aFullSpoolDropsTheOldestAndCountsExactly() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        var configuration = Spool.Configuration(directory: directory)
        configuration.segmentBytes = 560  // ten 56-byte records per segment
        configuration.maximumBytes = 3 * 560
        let spool = try Spool(configuration: configuration)
        // One sink has read the first 5 records; nothing else is acknowledged.
        for index in 0..<5 { try spool.append(record(index)) }
        try spool.flush()
        let five = try spool.read(after: spool.cursor(for: "http"), maximumRecords: 5)
        try spool.acknowledge(sink: "http", through: five.last!.next)
        for index in 5..<60 { try spool.append(record(index)) }
        try spool.flush()
        let left = try spool.read(after: spool.start, maximumRecords: 1000).map(\.payload)
        let firstKept = try #require(left.first)
        let firstIndex = (0..<60).first { record($0) == firstKept }!
        #expect(left == (firstIndex..<60).map { record($0) }, "what is kept is a contiguous tail")
        #expect(spool.droppedRecords == firstIndex - 5, "dropped = deleted records the sink had not acknowledged")
        #expect(firstIndex > 5)
    }

    /// Every fifth record is must-keep: when the spool overflows, ordinary records go (oldest first,
    /// counted exactly) and every must-keep record is still there to deliver, also across a reopen.
    @Test func aFullSpoolDropsOrdinaryRecordsBeforeMustKeepOnes() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        var configuration = Spool.Configuration(directory: directory)
        configuration.segmentBytes = 560
        configuration.maximumBytes = 4 * 560
        let count = 200
        let mustKeep = Set(stride(from: 0, to: count, by: 5))
        do {
            let spool = try Spool(configuration: configuration)
            for index in 0..<count {
                try spool.append(record(index), mustKeep: mustKeep.contains(index))
                if index % 7 == 0 { try spool.flush() }
            }
            try spool.flush()
            let left = try spool.read(after: spool.cursor(for: "http"), maximumRecords: 10_000).map(\.payload)
            let indices = left.map { payload in (0..<count).first { record($0) == payload }! }
            #expect(Set(indices).isSuperset(of: mustKeep), "must-keep lost: \(mustKeep.subtracting(indices).sorted())")
            let ordinary = indices.filter { !mustKeep.contains($0) }
            #expect(ordinary == ordinary.sorted() && !ordinary.isEmpty, "the ordinary records left are the newest, in order")
            let droppedOrdinary = (0..<count).filter { !mustKeep.contains($0) }.count - ordinary.count
            #expect(spool.droppedRecords == droppedOrdinary && droppedOrdinary > 0, "dropped \(spool.droppedRecords), expected \(droppedOrdinary)")
            #expect(spool.droppedMustKeepRecords == 0 && spool.movedRecords > 0)
            #expect(Set(indices).count == indices.count, "each record once")
        }
        let reopened = try Spool(configuration: configuration)
        let again = try reopened.read(after: reopened.cursor(for: "http"), maximumRecords: 10_000).map(\.payload)
        #expect(Set(again).isSuperset(of: mustKeep.map { record($0) }))
    }
}
