/// Syscall, architecture and errno names from the generated tables.
public enum Syscalls {
    /// `x86_64`, `i386`, `aarch64` for the AUDIT_ARCH_* values of `arch=`.
    public static func archName(_ arch: UInt32) -> String? {
        switch arch {
        case AuditArch.x86_64: "x86_64"
        case AuditArch.i386: "i386"
        case AuditArch.aarch64: "aarch64"
        default: nil
        }
    }

    public static func name(arch: UInt32, number: UInt64) -> String? {
        let table: [String]
        switch arch {
        case AuditArch.x86_64: table = SyscallTable.x86_64
        case AuditArch.i386: table = SyscallTable.i386
        case AuditArch.aarch64: table = SyscallTable.aarch64
        default: return nil
        }
        guard number < UInt64(table.count) else { return nil }
        let name = table[Int(number)]
        return name.isEmpty ? nil : name
    }

    /// The errno name of a negative syscall return (`-13` → `EACCES`).
    public static func errnoName(returnValue: Int64) -> String? {
        guard returnValue < 0, returnValue > -Int64(ErrnoTable.names.count) else { return nil }
        let name = ErrnoTable.names[Int(-returnValue)]
        return name.isEmpty ? nil : name
    }
}

extension Syscalls {
    /// AUDIT_ARCH_* values for the architectures Herdwatch has syscall tables for.
    public static let x86_64Arch = AuditArch.x86_64
    public static let i386Arch = AuditArch.i386
    public static let aarch64Arch = AuditArch.aarch64

    /// The AUDIT_ARCH_* value for an architecture name as auditctl accepts it (`x86_64`, `i386`,
    /// `i686`, `aarch64`); `b32`/`b64` depend on the machine and are resolved by the caller.
    public static func arch(named name: String) -> UInt32? {
        switch name {
        case "x86_64": AuditArch.x86_64
        case "i386", "i486", "i586", "i686": AuditArch.i386
        case "aarch64", "arm64": AuditArch.aarch64
        default: nil
        }
    }

    private static let numbersByArch: [UInt32: [String: Int]] = {
        func index(_ table: [String]) -> [String: Int] {
            var numbers: [String: Int] = [:]
            for (number, name) in table.enumerated() where !name.isEmpty && numbers[name] == nil {
                numbers[name] = number
            }
            return numbers
        }
        return [
            AuditArch.x86_64: index(SyscallTable.x86_64), AuditArch.i386: index(SyscallTable.i386),
            AuditArch.aarch64: index(SyscallTable.aarch64),
        ]
    }()

    /// Whether Herdwatch has a syscall table for this AUDIT_ARCH_* value.
    public static func hasTable(arch: UInt32) -> Bool { numbersByArch[arch] != nil }

    /// The syscall number of `name` on `arch` (`execve` on x86_64 → 59).
    public static func number(arch: UInt32, name: String) -> Int? { numbersByArch[arch]?[name] }

    /// The highest syscall number on `arch`.
    public static func maximumNumber(arch: UInt32) -> Int? {
        switch arch {
        case AuditArch.x86_64: SyscallTable.x86_64.count - 1
        case AuditArch.i386: SyscallTable.i386.count - 1
        case AuditArch.aarch64: SyscallTable.aarch64.count - 1
        default: nil
        }
    }

    private static let errnoNumbers: [String: Int] = {
        var numbers: [String: Int] = [:]
        for (number, name) in ErrnoTable.names.enumerated() where !name.isEmpty { numbers[name] = number }
        numbers["EWOULDBLOCK"] = numbers["EAGAIN"]
        numbers["EDEADLOCK"] = numbers["EDEADLK"]
        return numbers
    }()

    /// The number of an errno name (`EACCES` → 13).
    public static func errnoNumber(_ name: String) -> Int? { errnoNumbers[name] }
}
