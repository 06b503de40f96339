import Foundation
import HerdwatchAudit
import HerdwatchEvents
import Testing

@testable import HerdwatchCollectors

/// Debian's auditd, started privately for a test (its own config and log in a temporary folder)
/// and stopped by its pid afterwards.
final class PrivateAuditd {
    let folder: URL
    private(set) var pid: pid_t = 0

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-auditd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("plugins"), withIntermediateDirectories: true)
        let configuration = """
            local_events = yes
            write_logs = yes
            log_file = \(folder.path)/audit.log
            log_group = root
            log_format = RAW
            flush = none
            num_logs = 2
            max_log_file = 100
            max_log_file_action = ignore
            space_left = 2
            space_left_action = ignore
            admin_space_left = 1
            admin_space_left_action = ignore
            disk_full_action = ignore
            disk_error_action = ignore
            plugin_dir = \(folder.path)/plugins
            q_depth = 2000
            overflow_action = ignore
            """
        let file = folder.appendingPathComponent("auditd.conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        pid = try spawnWithDefaultSignals("/usr/sbin/auditd", ["-n", "-c", folder.path])
        // Wait until it has registered as the audit daemon.
        let netlink = try AuditNetlink(mode: .unicast)
        for _ in 0..<100 {
            if try netlink.status().pid == UInt32(pid) { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                break
            }
            usleep(100_000)
        }
        stop()
        throw AuditNetlinkError("auditd did not register", code: ETIMEDOUT)
    }

    /// SIGTERM, then SIGKILL if it has not exited within five seconds.
    func stop() {
        if pid > 0 {
            ChildProcess.terminate(pid, gracePeriodSeconds: 5)
            pid = 0
        }
        try? FileManager.default.removeItem(at: folder)
    }
}

/// A program started with default signal handling (see `ChildProcess`), output discarded,
/// standard error to `standardError`.
func spawnWithDefaultSignals(_ path: String, _ arguments: [String], standardError: String = "/dev/null") throws -> pid_t {
    try ChildProcess.spawn([path] + arguments, standardError: .file(standardError)).pid
}

@Suite(.serialized) struct AuditdTests {
    static let available = LiveAuditTests.available && FileManager.default.isExecutableFile(atPath: "/usr/sbin/auditd")

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem and Debian's auditd"))
    func multicastBesideAuditdSeesTheSameExec() throws {
        try withKernelAudit {
            let auditd = try PrivateAuditd()
            defer { auditd.stop() }
            // auditd owns the rules: add one as an administrator would (any netlink client may).
            let key = "hw-mc-\(getpid())"
            let (lines, _) = AuditRuleParser().parse("-a always,exit -F arch=b64 -S execve -F key=\(key)", source: "t")
            guard case .add(let rule)? = lines.first?.command else { Issue.record("rule"); return }
            let control = try AuditNetlink(mode: .unicast)
            try control.setEnabled(1)
            try control.addRule(rule.kernelData())
            defer { try? control.deleteRule(rule.kernelData()) }

            let collector = try collector("")  // auto mode
            try collector.start()
            defer { collector.stop() }
            #expect(collector.mode == .multicast)

            let marker = "herdwatch-mc-\(UUID().uuidString)"
            let pid = try runProgram("/bin/true", [marker])
            let event = try waitForEvent(collector) { $0.process?.args?.contains(marker) == true }
            let exec = try #require(event, "no exec event for \(marker) over multicast")
            #expect(exec.process?.pid == Int64(pid))
            #expect(exec.tags == [key])
            // auditd is still the daemon, and still has its rule.
            #expect(try control.status().pid == UInt32(auditd.pid))
            collector.stop()
            #expect(try control.listRules().contains(rule.kernelData()))
        }
    }

    @Test(.enabled(if: available, "needs root, the kernel's audit subsystem and Debian's auditd"))
    func unicastRefusesWhenAnotherDaemonOwnsTheSocket() throws {
        try withKernelAudit {
            let auditd = try PrivateAuditd()
            defer { auditd.stop() }
            let collector = try collector("-a always,exit -F arch=b64 -S execve -F key=hw-refused", mode: .unicast)
            #expect {
                try collector.start()
            } throws: { error in
                let text = "\(error)"
                return text.contains("pid \(auditd.pid)") && text.contains("multicast")
            }
            #expect(try AuditNetlink(mode: .unicast).status().pid == UInt32(auditd.pid))
        }
    }
}
