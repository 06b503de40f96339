/* audit-floor: the least a consumer of kernel audit records can do, as a floor for
 * scripts/bench-agent. It registers itself as the audit daemon (unicast, like auditd and
 * herdwatch-agent --mode unicast), receives every record with recvmmsg and throws it away; with
 * --connector it also listens to the proc connector (fork, exec, exit, ...) as herdwatch-agent does.
 * Its CPU time is what the kernel charges a process for handing it the records: no parsing, no
 * output. On SIGTERM or SIGINT it releases the audit pid and prints the counts.
 *
 * With --interval MS it sleeps that long after each read (records queue in the socket meanwhile),
 * so it wakes at most 1000/MS times a second instead of once per record.
 *
 *   audit-floor [--connector] [--interval MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 9000

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int set_audit_pid(int fd, unsigned pid) {
    struct {
        struct nlmsghdr header;
        struct audit_status status;
    } request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = AUDIT_SET;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    request.header.nlmsg_seq = pid + 1;
    request.status.mask = AUDIT_STATUS_PID;
    request.status.pid = pid;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -1;
    return 0;
}

static int open_connector(void) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) return -1;
    struct sockaddr_nl local = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = 0};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) return -1;
    struct {
        struct nlmsghdr header;
        struct cn_msg message;
        enum proc_cn_mcast_op op;
    } __attribute__((packed)) request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = NLMSG_DONE;
    request.header.nlmsg_pid = getpid();
    request.message.id.idx = CN_IDX_PROC;
    request.message.id.val = CN_VAL_PROC;
    request.message.len = sizeof(enum proc_cn_mcast_op);
    request.op = PROC_CN_MCAST_LISTEN;
    if (send(fd, &request, sizeof request, 0) < 0) return -1;
    return fd;
}

static char buffers[BATCH][SLOT];

/* Reads what is queued on fd; returns the number of messages, or -1 when the socket failed. */
static long drain(int fd) {
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    for (int i = 0; i < BATCH; i++) {
        vectors[i].iov_base = buffers[i];
        vectors[i].iov_len = SLOT;
        memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    long total = 0;
    for (;;) {
        int got = recvmmsg(fd, messages, BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR) return total;
            if (errno == ENOBUFS) continue;
            return -1;
        }
        total += got;
        if (got < BATCH) return total;
    }
}

int main(int argc, char **argv) {
    int connector = 0;
    long interval = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--connector") == 0) connector = 1;
        else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) interval = atol(argv[++i]);
        else { fprintf(stderr, "usage: audit-floor [--connector] [--interval MS]\n"); return 2; }
    }
    int audit = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (audit < 0) { perror("audit-floor: audit socket"); return 1; }
    int size = 4 << 20;
    setsockopt(audit, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    if (set_audit_pid(audit, (unsigned)getpid()) < 0) { perror("audit-floor: AUDIT_SET pid"); return 1; }
    int proc = -1;
    if (connector && (proc = open_connector()) < 0) { perror("audit-floor: proc connector"); return 1; }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    long records = 0, events = 0;
    struct pollfd fds[2] = {{.fd = audit, .events = POLLIN}, {.fd = proc, .events = POLLIN}};
    while (!stop) {
        if (poll(fds, proc >= 0 ? 2 : 1, 1000) < 0 && errno != EINTR) break;
        long got = drain(audit);
        if (got < 0) { perror("audit-floor: audit recv"); break; }
        records += got;
        if (proc >= 0) {
            got = drain(proc);
            if (got < 0) { perror("audit-floor: connector recv"); break; }
            events += got;
        }
        if (interval > 0) {
            struct timespec pause = {.tv_sec = interval / 1000, .tv_nsec = interval % 1000 * 1000000};
            nanosleep(&pause, NULL);
        }
    }
    set_audit_pid(audit, 0);
    fprintf(stderr, "audit-floor: %ld audit messages, %ld connector messages\n", records, events);
    return 0;
}
