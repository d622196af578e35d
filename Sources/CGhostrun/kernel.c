// The values and layouts CGhostrunKernel.h promises, from the kernel's UAPI headers.
#include "CGhostrun.h"

#define _GNU_SOURCE 1
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/resource.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

const uint32_t GHOSTRUN_SECCOMP_RET_KILL_PROCESS = SECCOMP_RET_KILL_PROCESS;
const uint32_t GHOSTRUN_SECCOMP_RET_KILL_THREAD = SECCOMP_RET_KILL_THREAD;
const uint32_t GHOSTRUN_SECCOMP_RET_TRAP = SECCOMP_RET_TRAP;
const uint32_t GHOSTRUN_SECCOMP_RET_ERRNO = SECCOMP_RET_ERRNO;
const uint32_t GHOSTRUN_SECCOMP_RET_USER_NOTIF = SECCOMP_RET_USER_NOTIF;
const uint32_t GHOSTRUN_SECCOMP_RET_TRACE = SECCOMP_RET_TRACE;
const uint32_t GHOSTRUN_SECCOMP_RET_LOG = SECCOMP_RET_LOG;
const uint32_t GHOSTRUN_SECCOMP_RET_ALLOW = SECCOMP_RET_ALLOW;
const uint32_t GHOSTRUN_SECCOMP_RET_ACTION_FULL = SECCOMP_RET_ACTION_FULL;
const uint32_t GHOSTRUN_SECCOMP_RET_DATA = SECCOMP_RET_DATA;

const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_TSYNC = SECCOMP_FILTER_FLAG_TSYNC;
const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_LOG = SECCOMP_FILTER_FLAG_LOG;
const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_SPEC_ALLOW = SECCOMP_FILTER_FLAG_SPEC_ALLOW;
const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER = SECCOMP_FILTER_FLAG_NEW_LISTENER;
const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_TSYNC_ESRCH = SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
const uint32_t GHOSTRUN_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

const uint32_t GHOSTRUN_SECCOMP_SET_MODE_FILTER = SECCOMP_SET_MODE_FILTER;
const uint32_t GHOSTRUN_SECCOMP_GET_ACTION_AVAIL = SECCOMP_GET_ACTION_AVAIL;

const int GHOSTRUN_RLIMIT_CPU = RLIMIT_CPU;
const int GHOSTRUN_RLIMIT_FSIZE = RLIMIT_FSIZE;
const int GHOSTRUN_RLIMIT_DATA = RLIMIT_DATA;
const int GHOSTRUN_RLIMIT_STACK = RLIMIT_STACK;
const int GHOSTRUN_RLIMIT_CORE = RLIMIT_CORE;
const int GHOSTRUN_RLIMIT_RSS = RLIMIT_RSS;
const int GHOSTRUN_RLIMIT_NPROC = RLIMIT_NPROC;
const int GHOSTRUN_O_PATH = O_PATH;
const int GHOSTRUN_AT_EMPTY_PATH = AT_EMPTY_PATH;
const int GHOSTRUN_RLIMIT_NOFILE = RLIMIT_NOFILE;
const int GHOSTRUN_RLIMIT_MEMLOCK = RLIMIT_MEMLOCK;
const int GHOSTRUN_RLIMIT_AS = RLIMIT_AS;
const int GHOSTRUN_RLIMIT_LOCKS = RLIMIT_LOCKS;
const int GHOSTRUN_RLIMIT_SIGPENDING = RLIMIT_SIGPENDING;
const int GHOSTRUN_RLIMIT_MSGQUEUE = RLIMIT_MSGQUEUE;
const int GHOSTRUN_RLIMIT_NICE = RLIMIT_NICE;
const int GHOSTRUN_RLIMIT_RTPRIO = RLIMIT_RTPRIO;
const int GHOSTRUN_RLIMIT_RTTIME = RLIMIT_RTTIME;

const int GHOSTRUN_NETLINK_AUDIT = NETLINK_AUDIT;
const uint32_t GHOSTRUN_AUDIT_NLGRP_READLOG = AUDIT_NLGRP_READLOG;
const uint16_t GHOSTRUN_AUDIT_SECCOMP = AUDIT_SECCOMP;
const uint32_t GHOSTRUN_NLMSG_ALIGNTO = NLMSG_ALIGNTO;

// The mirrored structs must be the kernel's, field for field.
_Static_assert(sizeof(ghostrun_sockaddr_nl) == sizeof(struct sockaddr_nl), "sockaddr_nl size");
_Static_assert(offsetof(ghostrun_sockaddr_nl, nl_family) == offsetof(struct sockaddr_nl, nl_family), "nl_family");
_Static_assert(offsetof(ghostrun_sockaddr_nl, nl_pid) == offsetof(struct sockaddr_nl, nl_pid), "nl_pid");
_Static_assert(offsetof(ghostrun_sockaddr_nl, nl_groups) == offsetof(struct sockaddr_nl, nl_groups), "nl_groups");
_Static_assert(sizeof(ghostrun_nlmsghdr) == sizeof(struct nlmsghdr), "nlmsghdr size");
_Static_assert(sizeof(ghostrun_nlmsghdr) == NLMSG_HDRLEN, "nlmsghdr is already aligned");
_Static_assert(offsetof(ghostrun_nlmsghdr, nlmsg_len) == offsetof(struct nlmsghdr, nlmsg_len), "nlmsg_len");
_Static_assert(offsetof(ghostrun_nlmsghdr, nlmsg_type) == offsetof(struct nlmsghdr, nlmsg_type), "nlmsg_type");
_Static_assert(offsetof(ghostrun_nlmsghdr, nlmsg_flags) == offsetof(struct nlmsghdr, nlmsg_flags), "nlmsg_flags");
_Static_assert(offsetof(ghostrun_nlmsghdr, nlmsg_seq) == offsetof(struct nlmsghdr, nlmsg_seq), "nlmsg_seq");
_Static_assert(offsetof(ghostrun_nlmsghdr, nlmsg_pid) == offsetof(struct nlmsghdr, nlmsg_pid), "nlmsg_pid");
// The rlimit table in the spawn config holds one int per resource.
_Static_assert(RLIM_NLIMITS <= GHOSTRUN_MAX_RLIMITS, "every resource fits in the spawn config");
