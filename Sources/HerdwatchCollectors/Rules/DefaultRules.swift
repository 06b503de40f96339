/// The rule sets the agent ships, by profile. `herdwatch-agent rules --profile NAME` prints them, so
/// they can be copied, edited and passed back with `--rules FILE`.
public enum DefaultRules {
    /// Long-lived, mutable hosts ("pets"): full process, network, identity and tampering coverage.
    public static let pet = """
        # Herdwatch default rules for the "pet" profile: long-lived, mutable hosts.
        # Loaded by herdwatch-agent when it owns the kernel's audit socket; removed when it stops.

        # Every program started (64- and 32-bit).
        -a always,exit -F arch=b64 -S execve,execveat -k exec
        -a always,exit -F arch=b32 -S execve,execveat -k exec

        # Network: outbound connections, accepted connections, listening sockets.
        -a always,exit -F arch=b64 -S connect -k net-connect
        -a always,exit -F arch=b64 -S accept,accept4 -k net-accept
        -a always,exit -F arch=b64 -S bind,listen -k net-listen

        # Privilege changes and injection.
        -a always,exit -F arch=b64 -S setuid,setgid,setreuid,setregid,setresuid,setresgid,setfsuid,setfsgid,setgroups,capset -k privilege
        -a always,exit -F arch=b64 -S ptrace -k ptrace

        # Kernel modules and mounts.
        -a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k modules
        -a always,exit -F arch=b64 -S mount,umount2 -k mount

        # Files removed or renamed by people (not daemons).
        -a always,exit -F arch=b64 -S unlink,unlinkat,rename,renameat,renameat2 -F auid>=1000 -F auid!=unset -k delete

        # Access refused: probing.
        -a always,exit -F arch=b64 -S open,openat,openat2,creat,truncate,ftruncate -F exit=-EACCES -k access-denied
        -a always,exit -F arch=b64 -S open,openat,openat2,creat,truncate,ftruncate -F exit=-EPERM -k access-denied

        # Identity, privilege and remote-access configuration.
        -w /etc/passwd -p wa -k identity
        -w /etc/shadow -p wa -k identity
        -w /etc/group -p wa -k identity
        -w /etc/gshadow -p wa -k identity
        -w /etc/sudoers -p wa -k privilege-config
        -w /etc/ssh/sshd_config -p wa -k sshd-config
        -w /root/.ssh -p wa -k ssh-keys
        -w /etc/cron.d -p wa -k persistence
        -w /etc/systemd/system -p wa -k persistence
        -w /etc/ld.so.preload -p wa -k persistence
        """

    /// Immutable, replaceable hosts ("cattle"): what a change to the image would look like, little else.
    public static let cattle = """
        # Herdwatch default rules for the "cattle" profile: immutable, replaceable hosts.
        # Programs started (sampled by process tree under the cattle policy; a program new to the
        # host is always kept), connections to IPv4/IPv6 addresses (counted per destination), and
        # what is never sampled: privilege changes, injection, kernel modules, identity files.
        -a always,exit -F arch=b64 -S execve,execveat -k exec
        -a always,exit -F arch=b64 -S connect -F a2=16 -k net-connect
        -a always,exit -F arch=b64 -S connect -F a2=28 -k net-connect
        -a always,exit -F arch=b64 -S setuid,setgid,setreuid,setregid,setresuid,setresgid,setgroups,capset -k privilege
        -a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k modules
        -a always,exit -F arch=b64 -S ptrace -k ptrace
        -w /etc/passwd -p wa -k identity
        -w /etc/shadow -p wa -k identity
        -w /etc/sudoers -p wa -k privilege-config
        -w /etc/ld.so.preload -p wa -k persistence
        """

    public static func named(_ profile: String) -> String? {
        switch profile {
        case "pet": pet
        case "cattle": cattle
        default: nil
        }
    }
}
