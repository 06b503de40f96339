#ifndef HERDWATCH_CLINUXAUDIT_SHIM_H
#define HERDWATCH_CLINUXAUDIT_SHIM_H
// The kernel's audit, netlink and process-connector interfaces, from Debian's linux-libc-dev.
// Swift sees only constants and plain structs from here; HerdwatchCollectors wraps them.
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/audit.h>
#include <linux/connector.h>
#include <linux/cn_proc.h>
#include <linux/filter.h>

// glibc declares recvmmsg(2) and struct mmsghdr only under _GNU_SOURCE, which Swift's Glibc module
// is built without. The same layout and the same function, declared here: several netlink
// datagrams per system call.
struct herdwatch_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
int recvmmsg(int fd, struct herdwatch_mmsghdr *vector, unsigned int count, int flags, void *timeout);  // struct timespec *
#endif
