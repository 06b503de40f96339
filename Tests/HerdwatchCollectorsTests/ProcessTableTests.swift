import Foundation
import HerdwatchEvents
import Testing

@testable import HerdwatchCollectors

@Suite struct ProcessTableTests {
    @Test func statWithSpacesAndParenthesesInTheName() throws {
        let line = Array("4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n".utf8)
        let parsed = try #require(ProcessTable.parseStat(line))
        #expect(parsed.name == "my (odd) name")
        #expect(parsed.parentPID == 17)
        #expect(parsed.startTicks == 987_654)
        #expect(ProcessTable.parseStat(Array("garbage".utf8)) == nil)
    }

    @Test(arguments: [
        ("0::/system.slice/docker-4f1c2a8e9b7d6c5a4f1c2a8e9b7d6c5a4f1c2a8e9b7d6c5a4f1c2a8e9b7d6c5a.scope\n",
         "4f1c2a8e9b7d6c5a4f1c2a8e9b7d6c5a4f1c2a8e9b7d6c5a4f1c2a8e9b7d6c5a"),
        ("12:pids:/kubepods/besteffort/pod1234/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", nil),
    ] as [(String, String?)])
    func containerIDFromCgroup(cgroup: String, expected: String?) {
        #expect(ProcessTable.containerID(cgroup: Array(cgroup.utf8)) == expected)
    }

    @Test func selfIsFoundWithAStableEntityIDAndAParent() throws {
        let table = ProcessTable()
        let me = try #require(table.read(pid: getpid()))
        #expect(me.parentPID == getppid())
        #expect(table.read(pid: getpid())?.entityID == me.entityID, "the id is computed the same way each time")
        #expect(me.entityID.hasPrefix(String(table.bootID.prefix(8))))
        var event = Event(timestamp: AuditTimestamp(milliseconds: 0), kind: .fileOpen)
        var process = Event.Process()
        process.pid = Int64(getpid())
        event.process = process
        table.enrich(&event, now: 0)
        #expect(event.process?.entityID == me.entityID)
        #expect(event.process?.parentPID == Int64(getppid()))
        #expect(event.process?.parent?.entityID == table.read(pid: getppid())?.entityID)
        #expect(event.process?.ancestry.first == event.process?.parent?.entityID)
        #expect((event.process?.ancestry.count ?? 0) >= 1)
    }

    @Test func kthreaddsChildrenAreKernelThreadsUntilTheyRunAProgram() throws {
        let table = ProcessTable(procRoot: "/nonexistent", bootID: "b00710d0")
        table.fork(child: 900, parent: 2, nanosecondsSinceBoot: 5_000_000_000, now: 0)
        table.fork(child: 901, parent: 1, nanosecondsSinceBoot: 5_000_000_000, now: 0)
        let started = try #require(table.entry(pid: 900)?.startedAt)
        #expect(table.isKernelThread(pid: 900, at: started))
        #expect(!table.isKernelThread(pid: 901, at: started), "a child of init is a process")
        #expect(!table.isKernelThread(pid: 902, at: started), "an unknown pid is not called a kernel thread")
        // A usermode helper: the kernel thread runs a program and is a process from then on.
        table.exec(pid: 900, executable: "/sbin/modprobe", args: ["/sbin/modprobe", "-q", "nf_tables"], name: "modprobe", at: started + 1)
        #expect(!table.isKernelThread(pid: 900, at: started + 1))
    }

    @Test func exitedProcessesLeaveAfterTheGracePeriodAndTheTableStaysBounded() {
        let table = ProcessTable(procRoot: "/nonexistent", bootID: "b00710d0", maximumEntries: 100, exitGraceMilliseconds: 1000)
        for pid in Int32(1)...500 {
            table.fork(child: pid, parent: 1, nanosecondsSinceBoot: UInt64(pid) * 1_000_000_000, now: 0)
            #expect(table.count <= 100)
        }
        #expect(table.evictions == 400)
        for pid in Int32(401)...450 { table.exit(pid: pid, now: 10_000) }
        table.expire(now: 10_500)
        #expect(table.count == 100)
        table.expire(now: 11_000)
        #expect(table.count == 50)
        #expect(table.entry(pid: 451)?.entityID == "b00710d0-451-\(451 * ProcessTable.clockTicksPerSecond)")
    }

    @Test func idsOfRunningProcessesAreTakenBackAfterARestart() throws {
        let before = ProcessTable()
        before.seed()
        var saved = before.runningEntries()
        let index = try #require(saved.firstIndex { $0.pid == getpid() })
        saved[index].entityID = "given-by-the-last-run"
        var gone = saved[index]
        gone.pid = 0x3FFF_FFF0  // no such process
        saved.append(gone)
        let encoded = try JSONEncoder().encode(saved)

        let after = ProcessTable()
        after.seed()
        let kept = after.restore(try JSONDecoder().decode([ProcessTable.Entry].self, from: encoded))
        #expect(after.entry(pid: getpid())?.entityID == "given-by-the-last-run")
        #expect(after.entry(pid: 0x3FFF_FFF0) == nil)
        #expect(kept == saved.count - 1 || kept >= saved.count / 2, "most processes still run")
    }
}
