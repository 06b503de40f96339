#ifndef HERDWATCH_CLINUXAUDIT_SHIM_H
#define HERDWATCH_CLINUXAUDIT_SHIM_H
// The kernel's audit, netlink and process-connector interfaces, from Debian's linux-libc-dev.
// Swift sees only constants and plain structs from here; HerdwatchCollectors wraps them.
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/audit.h>
#include <linux/connector.h>
#include <linux/cn_proc.h>
#endif
