import HerdwatchAgent
import HerdwatchCollectors
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Killing by entity id on the real kernel, with `sleep` children the tests start.
@Suite(.serialized) struct ProcessKillTests {
    let table = ProcessTable()

    /// A `sleep 60` child and its entity id.
    func sleeper() throws -> (pid: pid_t, entityID: String, startTicks: UInt64) {
        let pid = try ChildProcess.spawn(["/bin/sleep", "60"]).pid
        let stat = try #require(ProcessTable.readFile("/proc/\(pid)/stat"))
        let ticks = try #require(ProcessTable.parseStat(stat)).startTicks
        return (pid, table.entityID(pid: pid, startTicks: ticks), ticks)
    }

    func isAlive(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return Glibc.kill(pid, 0) == 0 && waitpid(pid, &status, WNOHANG) == 0
    }

    @Test func killsTheProcessItNames() throws {
        let child = try sleeper()
        let outcome = ProcessKill.kill(entityID: child.entityID)
        #expect(outcome == .killed(child.entityID, pid: child.pid), "\(outcome)")
        #expect(outcome.succeeded)
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, 0) == child.pid)
        #expect(status & 0x7f == SIGKILL, "ended by SIGKILL (wait status \(status))")
    }

    @Test func leavesAProcessWithAnotherStartTickAlone() throws {
        let child = try sleeper()
        defer { ChildProcess.terminate(child.pid) }
        let stale = table.entityID(pid: child.pid, startTicks: child.startTicks - 1)
        let outcome = ProcessKill.kill(entityID: stale)
        #expect(outcome == .notRunning(stale, because: .pidReused(currentStartTicks: child.startTicks)), "\(outcome)")
        #expect(!outcome.succeeded)
        #expect(outcome.description.contains("another process"))
        usleep(100_000)
        #expect(isAlive(child.pid), "the process with the reused pid survives")
    }

    @Test func saysWhenTheProcessHasExited() throws {
        let child = try sleeper()
        ChildProcess.terminate(child.pid, signal: SIGKILL)
        let outcome = ProcessKill.kill(entityID: child.entityID)
        // Unless the pid went to another process in the meantime.
        if case .notRunning(_, .pidReused) = outcome { return }
        #expect(outcome == .notRunning(child.entityID, because: .exited), "\(outcome)")
    }

    @Test func refusesAnIDFromAnotherBoot() throws {
        let child = try sleeper()
        defer { ChildProcess.terminate(child.pid) }
        let otherBoot = table.bootID.hasPrefix("00000000") ? "11111111" : "00000000"
        let id = "\(otherBoot)-\(child.pid)-\(child.startTicks)"
        let outcome = ProcessKill.kill(entityID: id)
        #expect(outcome == .notRunning(id, because: .otherBoot(current: String(table.bootID.prefix(8)))), "\(outcome)")
        #expect(isAlive(child.pid))
    }

    @Test func acceptsAGenerationSuffix() throws {
        let child = try sleeper()
        let outcome = ProcessKill.kill(entityID: child.entityID + "-2")
        #expect(outcome.succeeded, "\(outcome)")
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, 0) == child.pid)
    }

    @Test func refusesInitTheAgentAndKernelThreads() throws {
        let initTicks = try #require(ProcessTable.readFile("/proc/1/stat").flatMap(ProcessTable.parseStat)).startTicks
        let initID = table.entityID(pid: 1, startTicks: initTicks)
        #expect(ProcessKill.kill(entityID: initID) == .refused(initID, reason: "pid 1 is init"))
        let me = getpid()
        let myTicks = try #require(ProcessTable.readFile("/proc/\(me)/stat").flatMap(ProcessTable.parseStat)).startTicks
        let myID = table.entityID(pid: me, startTicks: myTicks)
        #expect(ProcessKill.kill(entityID: myID) == .refused(myID, reason: "it is the agent itself"))
        // A kernel thread: a child of kthreadd (pid 2).
        for pid in Int32(3)...Int32(400) {
            guard let stat = ProcessTable.readFile("/proc/\(pid)/stat").flatMap(ProcessTable.parseStat), stat.parentPID == 2
            else { continue }
            let id = table.entityID(pid: pid, startTicks: stat.startTicks)
            #expect(ProcessKill.kill(entityID: id) == .refused(id, reason: "it is a kernel thread"))
            break
        }
    }

    @Test(arguments: [
        "", "garbage", "1234567-10-10", "zzzzzzzz-10-10", "0123ABCD-10-10", "0123abcd--10", "0123abcd-0-10",
        "0123abcd-+10-10", "0123abcd-010-10", "0123abcd-10-", "0123abcd-10-1x", "0123abcd-10-10-0", "0123abcd-10-10-2-3",
        "0123abcd-99999999999-10", "0123abcd-10-18446744073709551616", " 0123abcd-10-10", "0123abcd-10-10\n",
        "0123abcd-10-10; reboot", "0123abcd-٣-10",
    ])
    func refusesMalformedIDs(_ id: String) {
        let outcome = ProcessKill.kill(entityID: id)
        guard case .badEntityID(id, let reason) = outcome else {
            Issue.record("\(id.debugDescription): \(outcome)")
            return
        }
        #expect(!reason.isEmpty)
        #expect(!outcome.succeeded)
        #expect(outcome.description.hasPrefix("bad entity id "))
    }
}
