#ifndef HERDWATCH_CLINUXPROCESS_SHIM_H
#define HERDWATCH_CLINUXPROCESS_SHIM_H
// Process file descriptors (Linux 5.3+) and thread ids: syscall(2) is variadic, so Swift cannot call it; these
// wrappers can. They return -1 and set errno on failure, as the system calls do.
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline int herdwatch_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

static inline int herdwatch_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, (siginfo_t *)0, 0u);
}

/// The calling thread's id, for setpriority(2) on one thread.
static inline pid_t herdwatch_gettid(void) {
    return (pid_t)syscall(SYS_gettid);
}
#endif
