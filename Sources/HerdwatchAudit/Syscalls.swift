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
