// The code between fork and exec. Only async-signal-safe calls after fork; nothing allocated.
#include "CGhostrun.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

_Static_assert(sizeof(ghostrun_bpf_insn) == sizeof(struct sock_filter), "BPF instruction layout");

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/// A record the child writes to the report pipe: a failure (`skipped_op` -1; the child then exits), or a notice
/// that the mount step `skipped_op` found its host mount gone and that mount was skipped (the child goes on).
typedef struct {
    int error;
    int skipped_op;
    char step[GHOSTRUN_STEP_LEN];
} child_failure;

static void copy_step(char *dst, const char *src) {
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < GHOSTRUN_STEP_LEN; i++) dst[i] = src[i];
    dst[i] = '\0';
}

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

static void child_notice_skipped(int report_fd, const char *step, int op) {
    child_failure notice;
    memset(&notice, 0, sizeof notice);
    notice.error = errno;
    notice.skipped_op = op;
    copy_step(notice.step, step);
    write_all(report_fd, &notice, sizeof notice);
}

/// `skipped_op` of the record that says the child is about to freeze its cgroup and exec once thawed.
#define GHOSTRUN_REPORT_EXEC_FROZEN (-2)

static void child_notice_exec_frozen(int report_fd) {
    child_failure notice;
    memset(&notice, 0, sizeof notice);
    notice.skipped_op = GHOSTRUN_REPORT_EXEC_FROZEN;
    copy_step(notice.step, "freeze-before-exec");
    write_all(report_fd, &notice, sizeof notice);
}

__attribute__((noreturn)) static void child_fail(int report_fd, const char *step) {
    child_failure failure;
    memset(&failure, 0, sizeof failure);
    failure.error = errno;
    failure.skipped_op = -1;
    copy_step(failure.step, step);
    write_all(report_fd, &failure, sizeof failure);
    _exit(127);
}

static int apply_capsets(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)effective;
    data[0].permitted = (uint32_t)permitted;
    data[0].inheritable = (uint32_t)inheritable;
    data[1].effective = (uint32_t)(effective >> 32);
    data[1].permitted = (uint32_t)(permitted >> 32);
    data[1].inheritable = (uint32_t)(inheritable >> 32);
    return (int)syscall(SYS_capset, &header, data);
}

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define GHOSTRUN_OPEN_TREE_CLONE 1
#define GHOSTRUN_MOVE_MOUNT_F_EMPTY_PATH 0x00000004

/// struct mount_attr (MOUNT_ATTR_SIZE_VER0), mirrored: <linux/mount.h> conflicts with <sys/mount.h>.
struct ghostrun_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

/// mkdir -p for an absolute path, with a stack copy (nothing allocated after fork).
static int make_directories(const char *path) {
    char buffer[4096];
    size_t length = 0;
    while (path[length] != '\0') {
        if (length + 1 >= sizeof buffer) {
            errno = ENAMETOOLONG;
            return -1;
        }
        buffer[length] = path[length];
        length++;
    }
    buffer[length] = '\0';
    for (size_t i = 1; i <= length; i++) {
        if (buffer[i] != '/' && buffer[i] != '\0') continue;
        char saved = buffer[i];
        buffer[i] = '\0';
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST) return -1;
        buffer[i] = saved;
    }
    return 0;
}

_Static_assert(GHOSTRUN_MOUNT_RDONLY == 0x1 && GHOSTRUN_MOUNT_NOSUID == 0x2 && GHOSTRUN_MOUNT_NODEV == 0x4 &&
                   GHOSTRUN_MOUNT_NOEXEC == 0x8,
               "MOUNT_ATTR_* values");

static unsigned long mount_flags(uint64_t flags) {
    unsigned long result = 0;
    if (flags & GHOSTRUN_MOUNT_RDONLY) result |= MS_RDONLY;
    if (flags & GHOSTRUN_MOUNT_NOSUID) result |= MS_NOSUID;
    if (flags & GHOSTRUN_MOUNT_NODEV) result |= MS_NODEV;
    if (flags & GHOSTRUN_MOUNT_NOEXEC) result |= MS_NOEXEC;
    return result;
}

/// One mount step. Returns 0, or -1 with errno set.
static int mount_step(const ghostrun_mount_op *op, int kept[GHOSTRUN_MAX_KEPT_TREES]) {
    int slot_ok = op->slot >= 0 && op->slot < GHOSTRUN_MAX_KEPT_TREES;
    switch (op->kind) {
    case GHOSTRUN_MOUNT_TMPFS:
        return mount("tmpfs", op->target, "tmpfs", mount_flags(op->flags), op->data);
    case GHOSTRUN_MOUNT_BIND:
        return mount(op->source, op->target, NULL, MS_BIND | MS_REC, NULL);
    case GHOSTRUN_MOUNT_SETATTR: {
        struct ghostrun_mount_attr attr = {.attr_set = op->flags};
        return syscall(SYS_mount_setattr, AT_FDCWD, op->target, AT_RECURSIVE, &attr, sizeof attr) == 0 ? 0 : -1;
    }
    case GHOSTRUN_MOUNT_KEEP:
        if (!slot_ok) {
            errno = EINVAL;
            return -1;
        }
        kept[op->slot] = (int)syscall(SYS_open_tree, AT_FDCWD, op->target,
                                      GHOSTRUN_OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC);
        return kept[op->slot] < 0 ? -1 : 0;
    case GHOSTRUN_MOUNT_RESTORE:
        if (!slot_ok || kept[op->slot] < 0) {
            errno = EINVAL;
            return -1;
        }
        if (make_directories(op->target) != 0) return -1;
        if (syscall(SYS_move_mount, kept[op->slot], "", AT_FDCWD, op->target, GHOSTRUN_MOVE_MOUNT_F_EMPTY_PATH) != 0) {
            return -1;
        }
        close(kept[op->slot]);
        kept[op->slot] = -1;
        return 0;
    case GHOSTRUN_MOUNT_MKDIR:
        return make_directories(op->target);
    case GHOSTRUN_MOUNT_OVERLAY:
        return mount("overlay", op->target, "overlay", mount_flags(op->flags), op->data);
    case GHOSTRUN_MOUNT_BIND_ONE:
        return mount(op->source, op->target, NULL, MS_BIND, NULL);
    case GHOSTRUN_MOUNT_PIVOT:
        // pivot_root(".", "."): the old root ends up stacked on the new one and is detached at once, so
        // nothing of the host's tree stays reachable but what was bound into the new root.
        if (chdir(op->target) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 ||
            chdir("/") != 0) {
            return -1;
        }
        return 0;
    default:
        errno = EINVAL;
        return -1;
    }
}

/// Whether a failed step of a replicated host mount means that mount went away after the plan read the mount
/// table (another program unmounted it and removed its directory): the mount is skipped, not the run.
static int host_mount_vanished(int error) {
    return error == ENOENT || error == ENOTDIR || error == ESTALE;
}

static void apply_mounts(const ghostrun_spawn_config *c, int report_fd) {
    int kept[GHOSTRUN_MAX_KEPT_TREES];
    for (int i = 0; i < GHOSTRUN_MAX_KEPT_TREES; i++) kept[i] = -1;
    int skipping = -1;
    for (int i = 0; i < c->mount_op_count; i++) {
        const ghostrun_mount_op *op = &c->mount_ops[i];
        if (op->group >= 0 && op->group == skipping) continue;
        if (mount_step(op, kept) == 0) continue;
        if (op->group >= 0 && host_mount_vanished(errno)) {
            child_notice_skipped(report_fd, op->step, i);
            skipping = op->group;
            continue;
        }
        child_fail(report_fd, op->step);
    }
    for (int i = 0; i < GHOSTRUN_MAX_KEPT_TREES; i++) {
        if (kept[i] >= 0) close(kept[i]);
    }
}

/// Brings `lo` up in the child's new network namespace: SIOCGIFFLAGS/SIOCSIFFLAGS are plain ioctls.
static int loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    memcpy(request.ifr_name, "lo", 3);
    int status = ioctl(fd, SIOCGIFFLAGS, &request);
    if (status == 0) {
        request.ifr_flags |= IFF_UP;
        status = ioctl(fd, SIOCSIFFLAGS, &request);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return status;
}

__attribute__((noreturn)) static void run_child(const ghostrun_spawn_config *c, int report_fd, pid_t parent,
                                               int created_in_cgroup) {
    // Signal state: dispositions back to default (ignored signals survive execve), then unblock.
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = SIG_DFL;
        sigaction(sig, &action, NULL);  // fails harmlessly for the realtime signals libc reserves
    }
    sigset_t empty;
    sigemptyset(&empty);
    if (sigprocmask(SIG_SETMASK, &empty, NULL) != 0) child_fail(report_fd, "sigprocmask");

    if (setpgid(0, 0) != 0) child_fail(report_fd, "setpgid");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(report_fd, "pdeathsig");
    if (getppid() != parent) _exit(127);  // ghostrun died between fork and prctl

    // Join the run's cgroups before anything the target could observe; "0" means this process.
    for (int i = 0; i < c->cgroup_fd_count; i++) {
        if (created_in_cgroup && i == c->cgroup_into_index) continue;
        if (write(c->cgroup_fds[i], "0", 1) != 1) child_fail(report_fd, "join-cgroup");
    }

    // Move the listener socket out of the way before rlimits can forbid high descriptors.
    if (c->listener_socket >= 0 && c->listener_socket != c->listener_socket_target) {
        if (dup3(c->listener_socket, c->listener_socket_target, O_CLOEXEC) < 0) child_fail(report_fd, "listener-socket");
    }

    int fds[3] = {c->stdin_fd, c->stdout_fd, c->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0 && fds[i] != i && dup2(fds[i], i) < 0) child_fail(report_fd, "dup2");
    }
    // No descriptor of ghostrun's but stdio and the report pipe (already close-on-exec) survives.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < 1024; fd++) {
            if (fd != report_fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }

    // Namespaces while ghostrun's capabilities are intact; the mounts before chdir so the workdir is the new view.
    if (c->join_network_namespace >= 0 && setns(c->join_network_namespace, CLONE_NEWNET) != 0) {
        child_fail(report_fd, "setns-network");
    }
    int unshare_flags = (c->new_mount_namespace ? CLONE_NEWNS : 0) | (c->new_network_namespace ? CLONE_NEWNET : 0);
    if (unshare_flags != 0) {
        if (unshare(unshare_flags) != 0) child_fail(report_fd, "unshare");
        if (c->new_mount_namespace && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
            child_fail(report_fd, "mount-private");
        }
        if (c->new_network_namespace && c->loopback_up && loopback_up() != 0) child_fail(report_fd, "loopback-up");
    }
    if (c->mount_op_count > 0) apply_mounts(c, report_fd);

    if (c->workdir != NULL && chdir(c->workdir) != 0) child_fail(report_fd, "chdir");

    for (int i = 0; i < c->rlimit_count; i++) {
        if (setrlimit(c->rlimit_resources[i], &c->rlimits[i]) != 0) child_fail(report_fd, "setrlimit");
    }

    // Landlock before the capability and user changes: ghostrun's CAP_SYS_ADMIN allows it without no_new_privs,
    // and the domain is inherited by everything the go command starts.
    if (c->landlock_ruleset >= 0) {
        for (int i = 0; i < c->landlock_rule_count; i++) {
            int status = ghostrun_landlock_add_path(c->landlock_ruleset, c->landlock_paths[i], c->landlock_access[i]);
            if (status < 0) {
                errno = -status;
                child_fail(report_fd, "landlock-rule");
            }
        }
        if (syscall(SYS_landlock_restrict_self, c->landlock_ruleset, 0U) != 0) child_fail(report_fd, "landlock");
        close(c->landlock_ruleset);
    }

    // The seccomp filter needs no_new_privs or CAP_SYS_ADMIN at load time. When the scenario
    // asks for neither, CAP_SYS_ADMIN stays effective until the filter is loaded.
    const uint64_t sys_admin = 1ULL << CAP_SYS_ADMIN;
    int hold_sys_admin = c->filter != NULL && !c->no_new_privs && c->set_capabilities &&
                         (c->cap_effective & sys_admin) == 0;

    if (c->set_capabilities) {
        // Bounding set first: dropping needs CAP_SETPCAP, which we still hold.
        for (int cap = 0; cap <= c->last_cap && cap < 64; cap++) {
            if ((c->cap_bounding & (1ULL << cap)) == 0 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
                child_fail(report_fd, "capbset-drop");
            }
        }
        if (c->switch_ids && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) child_fail(report_fd, "keepcaps");
    }

    if (c->switch_ids) {
        if (setgroups((size_t)c->group_count, c->groups) != 0) child_fail(report_fd, "setgroups");
        if (setgid(c->gid) != 0) child_fail(report_fd, "setgid");
        if (setuid(c->uid) != 0) child_fail(report_fd, "setuid");
    }

    if (c->set_capabilities) {
        uint64_t effective = c->cap_effective | (hold_sys_admin ? sys_admin : 0);
        uint64_t permitted = c->cap_permitted | (hold_sys_admin ? sys_admin : 0);
        if (apply_capsets(effective, permitted, c->cap_inheritable) != 0) child_fail(report_fd, "capset");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) child_fail(report_fd, "ambient-clear");
        for (int cap = 0; cap <= c->last_cap && cap < 64; cap++) {
            if ((c->cap_ambient & (1ULL << cap)) != 0 &&
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
                child_fail(report_fd, "ambient-raise");
            }
        }
    }

    if (c->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report_fd, "no-new-privs");

    if (c->filter != NULL) {
        struct sock_fprog program = {.len = c->filter_len, .filter = (struct sock_filter *)c->filter};
        long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, c->seccomp_flags, &program);
        if (listener < 0) child_fail(report_fd, "seccomp");
        if ((c->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) != 0 && c->listener_socket >= 0) {
            // The filter lets exactly this sendmsg through (fd == listener_socket_target). Once sent, the listener
            // lives on in the socket even after exec closes this copy.
            char byte = 'L';
            struct iovec iov = {.iov_base = &byte, .iov_len = 1};
            union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } control;
            memset(&control, 0, sizeof control);
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                 .msg_controllen = sizeof control.buf};
            struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            int fd = (int)listener;
            memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
            if (sendmsg(c->listener_socket_target, &msg, 0) != 1) child_fail(report_fd, "send-listener");
        }
        if (hold_sys_admin && apply_capsets(c->cap_effective, c->cap_permitted, c->cap_inheritable) != 0) {
            child_fail(report_fd, "capset-after-seccomp");
        }
    }

    if (c->freeze_before_exec_fd >= 0) {
        // The parent stops reading at this notice and returns the pid: the exec happens once the cgroup is thawed.
        child_notice_exec_frozen(report_fd);
        if (write(c->freeze_before_exec_fd, "1", 1) != 1) {
            // Not frozen: the exec goes ahead and the monitor's first round freezes the cgroup instead.
        }
        execve(c->path, c->argv, c->envp);
        _exit(127);  // nobody reads the report pipe any more
    }
    execve(c->path, c->argv, c->envp);
    child_fail(report_fd, "execve");
}

int ghostrun_spawn(const ghostrun_spawn_config *config, pid_t *pid_out, char *step_out) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        copy_step(step_out, "pipe");
        return errno;
    }
    // Block every signal across fork so no handler of the parent runs in the child.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_t parent = getpid();
    pid_t pid = -1;
    int created_in_cgroup = 0;
    if (config->cgroup_into_fd >= 0) {
        // clone3 as a plain fork (no CLONE_VM): the child is a copy that runs only async-signal-safe code, as
        // after fork(), but starts inside the run's cgroup.
        struct ghostrun_clone_args {
            uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
                set_tid_size, cgroup;
        } args;
        memset(&args, 0, sizeof args);
        args.flags = 0x200000000ULL;  // CLONE_INTO_CGROUP (Linux 5.7)
        args.exit_signal = SIGCHLD;
        args.cgroup = (uint64_t)config->cgroup_into_fd;
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        if (pid >= 0) created_in_cgroup = 1;
    }
    if (pid < 0) pid = fork();
    if (pid == 0) {
        close(report[0]);
        run_child(config, report[1], parent, created_in_cgroup);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        copy_step(step_out, "fork");
        return fork_errno;
    }

    // Records until EOF (execve closed the pipe): notices of skipped host mounts, then at most one failure.
    child_failure failure;
    size_t got = 0;
    for (;;) {
        got = 0;
        while (got < sizeof failure) {
            ssize_t n = read(report[0], (char *)&failure + got, sizeof failure - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got == sizeof failure && failure.skipped_op == GHOSTRUN_REPORT_EXEC_FROZEN) {
            got = 0;  // success: the child froze its cgroup and execs when thawed
            break;
        }
        if (got < sizeof failure || failure.skipped_op < 0) break;
        if (config->skipped_ops != NULL && config->skipped_count != NULL &&
            *config->skipped_count < config->mount_op_count) {
            config->skipped_ops[*config->skipped_count] = failure.skipped_op;
            config->skipped_errors[*config->skipped_count] = failure.error;
            *config->skipped_count += 1;
        }
    }
    close(report[0]);
    if (got == 0) {
        *pid_out = pid;
        return 0;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got < sizeof failure) {
        copy_step(step_out, "report");
        return EIO;
    }
    failure.step[GHOSTRUN_STEP_LEN - 1] = '\0';
    copy_step(step_out, failure.step);
    return failure.error;
}

int ghostrun_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? -errno : (int)abi;
}

int ghostrun_landlock_create_ruleset(uint64_t handled_access_fs) {
    struct landlock_ruleset_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.handled_access_fs = handled_access_fs;
    // Only the first field: an older kernel rejects a larger struct with unknown non-zero fields, and file-system
    // rights are all this ruleset restricts.
    long fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr.handled_access_fs, 0U);
    return fd < 0 ? -errno : (int)fd;
}

int ghostrun_landlock_add_path(int ruleset, const char *path, uint64_t allowed_access) {
    int parent = open(path, O_PATH | O_CLOEXEC);
    if (parent < 0) return -errno;
    struct landlock_path_beneath_attr rule = {.allowed_access = allowed_access, .parent_fd = parent};
    long status = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0U);
    int saved = errno;
    close(parent);
    return status < 0 ? -saved : 0;
}

int ghostrun_seccomp(unsigned int operation, unsigned int flags, void *args) {
    return (int)syscall(SYS_seccomp, operation, flags, args);
}

int ghostrun_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

int ghostrun_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int ghostrun_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

void ghostrun_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

long ghostrun_getxattr(const char *path, const char *name, void *value, unsigned long size) {
    return (long)getxattr(path, name, value, size);
}

int ghostrun_setxattr(const char *path, const char *name, const void *value, unsigned long size) {
    return setxattr(path, name, value, size, 0);
}

int ghostrun_memfd(const char *name) { return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */); }


pid_t ghostrun_spawn_reaper(const char *path, char *const *argv, int read_fd) {
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_t pid = fork();
    if (pid == 0) {
        // Its own session: a Ctrl-C aimed at ghostrun's process group must not reach the reaper.
        setsid();
        struct sigaction ignore;
        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        sigaction(SIGINT, &ignore, NULL);
        sigaction(SIGTERM, &ignore, NULL);
        sigaction(SIGHUP, &ignore, NULL);
        sigaction(SIGPIPE, &ignore, NULL);
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        // Every other descriptor closes at exec; the pipe's write ends are close-on-exec already
        // in ghostrun, but this copy of them must go now or the read below never sees EOF.
        for (int fd = 3; fd < 1024; fd++) {
            if (fd != read_fd && fd != 2) close(fd);
        }
        // The read end is close-on-exec in ghostrun (no other child may inherit it); only this copy survives exec.
        if (fcntl(read_fd, F_SETFD, 0) != 0) _exit(127);
        char buffer[64];
        for (;;) {
            ssize_t n = read(read_fd, buffer, sizeof buffer);
            if (n == 0) break;
            if (n < 0 && errno != EINTR) break;
        }
        execv(path, argv);
        _exit(127);
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return pid;
}

int ghostrun_openat_beneath(int dirfd, const char *path, int flags, unsigned int mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// MARK: - Stall server

#include <netinet/in.h>
#include <poll.h>

typedef struct {
    uint32_t addresses[GHOSTRUN_MAX_STALL];
    uint16_t ports[GHOSTRUN_MAX_STALL];
    int count;
    int stop_read;
    int ready_write;
    int *accepted;
} stall_args;

typedef struct {
    int error;
    int namespace_fd;
    char step[GHOSTRUN_STEP_LEN];
} stall_ready;

static void *stall_thread(void *raw) {
    stall_args args = *(stall_args *)raw;
    free(raw);
    ghostrun_set_thread_name("ghostrun-stall");
    stall_ready ready;
    memset(&ready, 0, sizeof ready);
    ready.namespace_fd = -1;
    int listeners[GHOSTRUN_MAX_STALL];
    int listener_count = 0;
    int held[1024];
    int held_count = 0;
    // This thread alone enters the new namespace; ghostrun's other threads stay in the host's.
    if (unshare(CLONE_NEWNET) != 0) {
        ready.error = errno;
        copy_step(ready.step, "stall-unshare");
    } else if (loopback_up() != 0) {
        ready.error = errno;
        copy_step(ready.step, "stall-loopback-up");
    } else if ((ready.namespace_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) {
        ready.error = errno;
        copy_step(ready.step, "stall-namespace");
    } else {
        for (int i = 0; i < args.count; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = args.ports[i]};
            address.sin_addr.s_addr = args.addresses[i];
            int one = 1;
            if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
                bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 128) != 0) {
                ready.error = errno;
                copy_step(ready.step, "stall-listen");
                if (fd >= 0) close(fd);
                break;
            }
            listeners[listener_count++] = fd;
        }
    }
    int failed = ready.error != 0;
    write_all(args.ready_write, &ready, sizeof ready);
    close(args.ready_write);
    while (!failed) {
        struct pollfd fds[GHOSTRUN_MAX_STALL + 1];
        fds[0].fd = args.stop_read;
        fds[0].events = POLLIN;
        for (int i = 0; i < listener_count; i++) {
            fds[i + 1].fd = listeners[i];
            fds[i + 1].events = POLLIN;
        }
        if (poll(fds, (nfds_t)listener_count + 1, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents != 0) break;
        for (int i = 0; i < listener_count; i++) {
            if (fds[i + 1].revents == 0) continue;
            int connection = accept4(listeners[i], NULL, NULL, SOCK_CLOEXEC);
            if (connection < 0) continue;
            __atomic_add_fetch(args.accepted, 1, __ATOMIC_RELAXED);
            // Held open and never read or answered: the client waits, as on a proxy that hangs.
            if (held_count < (int)(sizeof held / sizeof held[0])) {
                held[held_count++] = connection;
            } else {
                close(connection);
            }
        }
    }
    for (int i = 0; i < held_count; i++) close(held[i]);
    for (int i = 0; i < listener_count; i++) close(listeners[i]);
    close(args.stop_read);
    return NULL;
}

static void close_pipes(const int first[2], const int second[2]) {
    close(first[0]);
    close(first[1]);
    close(second[0]);
    close(second[1]);
}

int ghostrun_stall_start(const uint32_t *addresses, const uint16_t *ports, int count, ghostrun_stall *out,
                         char *step_out) {
    if (count < 0 || count > GHOSTRUN_MAX_STALL) {
        copy_step(step_out, "stall-endpoints");
        return E2BIG;
    }
    int stop[2], ready_pipe[2];
    if (pipe2(stop, O_CLOEXEC) != 0) {
        copy_step(step_out, "stall-pipe");
        return errno;
    }
    if (pipe2(ready_pipe, O_CLOEXEC) != 0) {
        int saved = errno;
        close(stop[0]);
        close(stop[1]);
        copy_step(step_out, "stall-pipe");
        return saved;
    }
    stall_args *args = calloc(1, sizeof *args);
    if (args == NULL) {
        close_pipes(stop, ready_pipe);
        copy_step(step_out, "stall-alloc");
        return ENOMEM;
    }
    __atomic_store_n(&out->accepted, 0, __ATOMIC_RELAXED);
    args->count = count;
    for (int i = 0; i < count; i++) {
        args->addresses[i] = addresses[i];
        args->ports[i] = ports[i];
    }
    args->stop_read = stop[0];
    args->ready_write = ready_pipe[1];
    args->accepted = &out->accepted;
    pthread_t thread;
    int status = pthread_create(&thread, NULL, stall_thread, args);
    if (status != 0) {
        free(args);
        close_pipes(stop, ready_pipe);
        copy_step(step_out, "stall-thread");
        return status;
    }
    // A short read (the thread died before reporting) leaves no descriptor to close.
    stall_ready ready;
    memset(&ready, 0, sizeof ready);
    ready.namespace_fd = -1;
    size_t got = 0;
    while (got < sizeof ready) {
        ssize_t n = read(ready_pipe[0], (char *)&ready + got, sizeof ready - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(ready_pipe[0]);
    out->thread = (unsigned long)thread;
    out->stop_fd = stop[1];
    out->namespace_fd = got < sizeof ready ? -1 : ready.namespace_fd;
    if (got < sizeof ready || ready.error != 0) {
        ghostrun_stall_stop(out);
        copy_step(step_out, got < sizeof ready ? "stall-report" : ready.step);
        return got < sizeof ready ? EIO : ready.error;
    }
    return 0;
}

int ghostrun_stall_accepted(const ghostrun_stall *stall) { return __atomic_load_n(&stall->accepted, __ATOMIC_RELAXED); }

void ghostrun_stall_stop(ghostrun_stall *stall) {
    if (stall->stop_fd >= 0) {
        // Closing the write end wakes the thread's poll (POLLHUP) without any SIGPIPE if it has already ended.
        close(stall->stop_fd);
        stall->stop_fd = -1;
        pthread_join((pthread_t)stall->thread, NULL);
    }
    if (stall->namespace_fd >= 0) {
        close(stall->namespace_fd);
        stall->namespace_fd = -1;
    }
}
