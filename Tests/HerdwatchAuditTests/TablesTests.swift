import Testing
@testable import HerdwatchAudit

// Spot checks of the tables that scripts/gen-tables.py generates from the kernel and audit headers.

private func number(of name: String, in table: [String]) -> Int? {
    table.firstIndex(of: name)
}

@Test func x86_64SyscallNumbers() {
    let table = SyscallTable.x86_64
    #expect(table[0] == "read")
    #expect(table[2] == "open")
    #expect(table[42] == "connect")
    #expect(table[59] == "execve")
    #expect(number(of: "execve", in: table) == 59)
    // x32 syscalls (512 and up) are not part of the x86_64 table.
    #expect(table.count < 512)
}

@Test func i386SyscallNumbers() {
    let table = SyscallTable.i386
    #expect(table[11] == "execve")
    #expect(table[102] == "socketcall")
    #expect(number(of: "socketcall", in: table) == 102)
}

@Test func aarch64SyscallNumbers() {
    let table = SyscallTable.aarch64
    #expect(table[56] == "openat")
    #expect(table[203] == "connect")
    #expect(table[220] == "clone")
    #expect(table[221] == "execve")
    #expect(table[25] == "fcntl")
    // The generic table has no open or fork, and uses the 64-bit names.
    #expect(!table.contains("open"))
    #expect(!table.contains("fork"))
    #expect(!table.contains("fcntl64"))
}

@Test func unusedSyscallNumbersAreEmpty() {
    // asm-generic reserves 244...259 for arch-specific syscalls; arm64 uses none of them.
    #expect(SyscallTable.aarch64[244] == "")
    for table in [SyscallTable.x86_64, SyscallTable.i386, SyscallTable.aarch64] {
        #expect(!table.isEmpty)
        #expect(table.last != "")
        let named = table.filter { !$0.isEmpty }
        #expect(Set(named).count == named.count, "a syscall name appears twice")
    }
}

@Test func errnoNames() {
    let names = ErrnoTable.names
    #expect(names[0] == "")
    #expect(names[1] == "EPERM")
    #expect(names[2] == "ENOENT")
    #expect(names[11] == "EAGAIN")
    #expect(names[13] == "EACCES")
    #expect(names[35] == "EDEADLK")
    #expect(names[111] == "ECONNREFUSED")
    #expect(!names.contains("EWOULDBLOCK"))
    #expect(!names.contains("EDEADLOCK"))
}

@Test func recordTypes() {
    let byNumber = Dictionary(uniqueKeysWithValues: RecordTypeTable.entries.map { ($0.0, $0.1) })
    let expected: [(UInt16, String)] = [
        (1006, "LOGIN"), (1112, "USER_LOGIN"), (1123, "USER_CMD"), (1200, "DAEMON_START"),
        (1300, "SYSCALL"), (1302, "PATH"), (1305, "CONFIG_CHANGE"), (1306, "SOCKADDR"),
        (1307, "CWD"), (1309, "EXECVE"), (1320, "EOE"), (1327, "PROCTITLE"), (1400, "AVC"),
    ]
    for (number, name) in expected {
        #expect(byNumber[number] == name, "record type \(number)")
    }
}

@Test func recordTypesAreSortedAndUnique() {
    let entries = RecordTypeTable.entries
    #expect(!entries.isEmpty)
    for (previous, next) in zip(entries, entries.dropFirst()) {
        #expect(previous.0 < next.0, "\(previous.0) before \(next.0)")
    }
    let names = entries.map { $0.1 }
    #expect(Set(names).count == names.count)
    #expect(Set(entries.map { $0.0 }).count == entries.count)
    // Range markers such as FIRST_USER_MSG are not record types.
    #expect(!names.contains { $0.hasPrefix("FIRST_") || $0.hasPrefix("LAST_") })
}

@Test func auditArchValues() {
    #expect(AuditArch.x86_64 == 0xc000_003e)
    #expect(AuditArch.i386 == 0x4000_0003)
    #expect(AuditArch.aarch64 == 0xc000_00b7)
}
