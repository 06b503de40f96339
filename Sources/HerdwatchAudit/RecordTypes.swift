import HerdwatchEvents

/// Record type numbers and names, from the generated `RecordTypeTable` (linux/audit.h, libaudit.h).
public enum RecordTypes {
    public static let syscall: UInt16 = 1300
    public static let path: UInt16 = 1302
    public static let ipc: UInt16 = 1303
    public static let socketcall: UInt16 = 1304
    public static let configChange: UInt16 = 1305
    public static let sockaddr: UInt16 = 1306
    public static let cwd: UInt16 = 1307
    public static let execve: UInt16 = 1309
    public static let eoe: UInt16 = 1320
    public static let proctitle: UInt16 = 1327
    public static let kernModule: UInt16 = 1330
    public static let login: UInt16 = 1006
    public static let avc: UInt16 = 1400
    public static let userAVC: UInt16 = 1107

    private static let names: [UInt16: String] = Dictionary(
        RecordTypeTable.entries.map { ($0.0, $0.1) }, uniquingKeysWith: { first, _ in first })

    /// Open-addressing table from name to (number, name), indexed by the name's FNV-1a hash: a lookup
    /// hashes the bytes once, probes a slot or two and allocates nothing.
    private struct NameSlot {
        var hash: UInt64
        var number: UInt16
        var name: String
        var bytes: [UInt8]
    }
    private static let slotMask = 1023
    private static let byName: [NameSlot?] = {
        var slots = [NameSlot?](repeating: nil, count: slotMask + 1)
        precondition(RecordTypeTable.entries.count * 2 < slots.count)
        var seen = Set<UInt16>()
        for (number, name) in RecordTypeTable.entries {
            let bytes = Array(name.utf8)
            let hash = fnv1a(bytes[...])
            var index = Int(truncatingIfNeeded: hash) & slotMask
            while let slot = slots[index] {
                if slot.bytes == bytes { break }
                index = (index + 1) & slotMask
            }
            guard slots[index] == nil else { continue }
            // A number with several names keeps its first (canonical) name for printing.
            let canonical = seen.insert(number).inserted ? name : Self.name(of: number)
            slots[index] = NameSlot(hash: hash, number: number, name: canonical, bytes: bytes)
        }
        return slots
    }()

    /// The number and canonical name for a record type name, e.g. `SYSCALL` → (1300, "SYSCALL").
    public static func lookup(name: ArraySlice<UInt8>) -> (number: UInt16, name: String)? {
        let hash = fnv1a(name)
        var index = Int(truncatingIfNeeded: hash) & slotMask
        return byName.withUnsafeBufferPointer { slots in
            while let slot = slots[index] {
                if slot.hash == hash, slot.bytes[...] == name { return (slot.number, slot.name) }
                index = (index + 1) & slotMask
            }
            return nil
        }
    }

    /// The name auditd prints for a type number: `SYSCALL`, or `UNKNOWN[1234]`.
    public static func name(of type: UInt16) -> String {
        names[type] ?? "UNKNOWN[\(type)]"
    }

    public static func number(ofName name: ArraySlice<UInt8>) -> UInt16? { lookup(name: name)?.number }

    /// Record types that form an event on their own: user-space messages (1100–1299, 2100–2999) and
    /// AUDIT_KERNEL. Kernel records of a syscall event end with PROCTITLE or EOE instead.
    @inline(__always)
    public static func isSingleRecordEvent(_ type: UInt16) -> Bool {
        (1100..<1300).contains(type) || (2100..<3000).contains(type) || type == 2000
    }

    @inline(__always)
    static func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}
