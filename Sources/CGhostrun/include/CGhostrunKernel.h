// Kernel constants and structs Swift needs, taken from the kernel's UAPI headers in kernel.c.
//
// The header itself includes no <linux/*> header: Glibc's Swift module and libseccomp's header already pull some
// of them in, and a second textual copy in this module would give Swift two definitions of the same types.
// So the constants are `extern const` values defined in kernel.c from the kernel's own macros (no literal is
// written twice), and every mirrored struct is checked there with `_Static_assert` against the kernel's layout.
#ifndef CGHOSTRUN_KERNEL_H
#define CGHOSTRUN_KERNEL_H

#include <stdint.h>

// MARK: seccomp filter return actions (SECCOMP_RET_*), <linux/seccomp.h>
extern const uint32_t GHOSTRUN_SECCOMP_RET_KILL_PROCESS;
extern const uint32_t GHOSTRUN_SECCOMP_RET_KILL_THREAD;
extern const uint32_t GHOSTRUN_SECCOMP_RET_TRAP;
extern const uint32_t GHOSTRUN_SECCOMP_RET_ERRNO;
extern const uint32_t GHOSTRUN_SECCOMP_RET_USER_NOTIF;
extern const uint32_t GHOSTRUN_SECCOMP_RET_TRACE;
extern const uint32_t GHOSTRUN_SECCOMP_RET_LOG;
extern const uint32_t GHOSTRUN_SECCOMP_RET_ALLOW;
/// Mask of the action bits of a filter return value (the rest is the action's data, e.g. the errno).
extern const uint32_t GHOSTRUN_SECCOMP_RET_ACTION_FULL;
extern const uint32_t GHOSTRUN_SECCOMP_RET_DATA;

// MARK: seccomp(2) filter flags (SECCOMP_FILTER_FLAG_*)
extern const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_TSYNC;
extern const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_LOG;
extern const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_SPEC_ALLOW;
extern const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER;
extern const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
/// Linux 5.19+; defined in kernel.c when the build host's headers are older.
extern const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

// MARK: seccomp(2) operations
extern const uint32_t GHOSTRUN_SECCOMP_SET_MODE_FILTER;
extern const uint32_t GHOSTRUN_SECCOMP_GET_ACTION_AVAIL;

// MARK: resource limits (RLIMIT_*), <sys/resource.h>
// Glibc declares them as an enum Swift imports as `__rlimit_resource`, not as the plain int getrlimit takes.
extern const int GHOSTRUN_RLIMIT_CPU;
extern const int GHOSTRUN_RLIMIT_FSIZE;
extern const int GHOSTRUN_RLIMIT_DATA;
extern const int GHOSTRUN_RLIMIT_STACK;
extern const int GHOSTRUN_RLIMIT_CORE;
extern const int GHOSTRUN_RLIMIT_RSS;
extern const int GHOSTRUN_RLIMIT_NPROC;
/// open(2) O_PATH and AT_EMPTY_PATH, which Glibc does not export to Swift.
extern const int GHOSTRUN_O_PATH;
extern const int GHOSTRUN_AT_EMPTY_PATH;
extern const int GHOSTRUN_RLIMIT_NOFILE;
extern const int GHOSTRUN_RLIMIT_MEMLOCK;
extern const int GHOSTRUN_RLIMIT_AS;
extern const int GHOSTRUN_RLIMIT_LOCKS;
extern const int GHOSTRUN_RLIMIT_SIGPENDING;
extern const int GHOSTRUN_RLIMIT_MSGQUEUE;
extern const int GHOSTRUN_RLIMIT_NICE;
extern const int GHOSTRUN_RLIMIT_RTPRIO;
extern const int GHOSTRUN_RLIMIT_RTTIME;

// MARK: netlink and audit, <linux/netlink.h> and <linux/audit.h>
extern const int GHOSTRUN_NETLINK_AUDIT;
/// The multicast group that receives a copy of every audit record (needs CAP_AUDIT_READ).
extern const uint32_t GHOSTRUN_AUDIT_NLGRP_READLOG;
/// The audit message type of a seccomp record (`type=1326`).
extern const uint16_t GHOSTRUN_AUDIT_SECCOMP;
/// NLMSG_ALIGNTO: netlink messages in one datagram start on multiples of it.
extern const uint32_t GHOSTRUN_NLMSG_ALIGNTO;

/// struct sockaddr_nl, which Glibc's Swift module does not import.
typedef struct ghostrun_sockaddr_nl {
    uint16_t nl_family;
    uint16_t nl_pad;
    uint32_t nl_pid;
    uint32_t nl_groups;
} ghostrun_sockaddr_nl;

/// struct nlmsghdr: the header of each message in a netlink datagram.
typedef struct ghostrun_nlmsghdr {
    uint32_t nlmsg_len;
    uint16_t nlmsg_type;
    uint16_t nlmsg_flags;
    uint32_t nlmsg_seq;
    uint32_t nlmsg_pid;
} ghostrun_nlmsghdr;

#endif
