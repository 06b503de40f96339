import CLinuxAudit

/// One kernel audit rule, as `auditctl -a`/`-w` describes it, resolved to numbers and ready to be
/// encoded as the kernel's `struct audit_rule_data`.
public struct AuditRule: Sendable, Hashable {
    /// The filter list the rule belongs to (`-a LIST,ACTION`).
    public enum List: UInt32, Sendable, CaseIterable {
        case user = 0  // AUDIT_FILTER_USER
        case task = 1  // AUDIT_FILTER_TASK
        case exit = 4  // AUDIT_FILTER_EXIT
        case exclude = 5  // AUDIT_FILTER_EXCLUDE
        case filesystem = 6  // AUDIT_FILTER_FS
        case ioUringExit = 7  // AUDIT_FILTER_URING_EXIT

        /// The names auditctl accepts.
        public init?(name: String) {
            switch name {
            case "user": self = .user
            case "task": self = .task
            case "exit": self = .exit
            case "exclude": self = .exclude
            case "filesystem": self = .filesystem
            case "io_uring", "uring": self = .ioUringExit
            default: return nil
            }
        }
    }

    public enum Action: UInt32, Sendable {
        case never = 0  // AUDIT_NEVER
        case always = 2  // AUDIT_ALWAYS
    }

    /// Comparison operators, with the kernel's `fieldflags` values.
    public enum Operator: UInt32, Sendable, CaseIterable {
        case equal = 0x4000_0000
        case notEqual = 0x3000_0000
        case lessThan = 0x1000_0000
        case greaterThan = 0x2000_0000
        case lessThanOrEqual = 0x5000_0000
        case greaterThanOrEqual = 0x6000_0000
        /// `-F a0&0x100`: any of the bits set.
        case bitMask = 0x0800_0000
        /// `-F a0&=0x100`: all of the bits set.
        case bitTest = 0x4800_0000

        /// Spellings, longest first so `<=` wins over `<`.
        static let spellings: [(String, Operator)] = [
            ("!=", .notEqual), ("<=", .lessThanOrEqual), (">=", .greaterThanOrEqual), ("&=", .bitTest),
            ("=", .equal), ("<", .lessThan), (">", .greaterThan), ("&", .bitMask),
        ]
    }

    public struct Field: Sendable, Hashable {
        public enum Value: Sendable, Hashable {
            case number(UInt32)
            /// Strings (paths, SELinux labels, executables) travel in the rule's buffer.
            case string([UInt8])
        }
        public var id: UInt32
        public var op: Operator
        public var value: Value

        public init(id: UInt32, op: Operator, value: Value) {
            self.id = id
            self.op = op
            self.value = value
        }
    }

    public enum SyscallSet: Sendable, Hashable {
        case all
        case numbers([Int])
    }

    public var list: List
    public var action: Action
    /// `-A`: insert at the head of the list instead of the tail.
    public var prepend = false
    public var syscalls: SyscallSet = .all
    public var fields: [Field] = []
    /// `-k`/`-F key=`: joined with 0x01 into one key field, as auditctl does.
    public var keys: [String] = []

    public init(list: List, action: Action) {
        self.list = list
        self.action = action
    }

    static let maximumFields = Int(AUDIT_MAX_FIELDS)
    static let maskWords = Int(AUDIT_BITMASK_SIZE)
    // struct audit_rule_data: flags, action, field_count, mask[], fields[], values[], fieldflags[],
    // buflen, then the buffer.
    static let fieldsOffset = 12 + 4 * maskWords
    static let valuesOffset = fieldsOffset + 4 * maximumFields
    static let flagsOffset = valuesOffset + 4 * maximumFields
    static let headerSize = flagsOffset + 4 * maximumFields + 4

    /// `struct audit_rule_data` followed by its string buffer, in host byte order, unpadded.
    public func kernelData() -> [UInt8] {
        var allFields = fields
        if !keys.isEmpty {
            let joined = Array(keys.joined(separator: "\u{1}").utf8)
            allFields.append(Field(id: UInt32(AUDIT_FILTERKEY), op: .equal, value: .string(joined)))
        }
        precondition(allFields.count <= Self.maximumFields, "validated by the parser")
        var buffer: [UInt8] = []
        for field in allFields { if case .string(let bytes) = field.value { buffer += bytes } }

        var data = [UInt8](repeating: 0, count: Self.headerSize + buffer.count)
        func put(_ value: UInt32, at offset: Int) {
            withUnsafeBytes(of: value) { bytes in
                for index in 0..<4 { data[offset + index] = bytes[index] }
            }
        }
        put(list.rawValue | (prepend ? UInt32(AUDIT_FILTER_PREPEND) : 0), at: 0)
        put(action.rawValue, at: 4)
        put(UInt32(allFields.count), at: 8)
        switch syscalls {
        case .all:
            // As libaudit does: every syscall bit, and in the last word only the low 16 bits (the kernel
            // keeps the top of the mask for syscall classes).
            for word in 0..<(Self.maskWords - 1) { put(.max, at: 12 + 4 * word) }
            put(0xFFFF, at: 12 + 4 * (Self.maskWords - 1))
        case .numbers(let numbers):
            var mask = [UInt32](repeating: 0, count: Self.maskWords)
            for number in numbers where number >= 0 && number < 32 * Self.maskWords {
                mask[number / 32] |= 1 << UInt32(number % 32)
            }
            for word in 0..<Self.maskWords { put(mask[word], at: 12 + 4 * word) }
        }
        let (fieldsOffset, valuesOffset, flagsOffset) = (Self.fieldsOffset, Self.valuesOffset, Self.flagsOffset)
        for (index, field) in allFields.enumerated() {
            put(field.id, at: fieldsOffset + 4 * index)
            switch field.value {
            case .number(let value): put(value, at: valuesOffset + 4 * index)
            case .string(let bytes): put(UInt32(bytes.count), at: valuesOffset + 4 * index)
            }
            put(field.op.rawValue, at: flagsOffset + 4 * index)
        }
        put(UInt32(buffer.count), at: flagsOffset + 4 * Self.maximumFields)
        data.replaceSubrange(Self.headerSize..., with: buffer)
        return data
    }
}
