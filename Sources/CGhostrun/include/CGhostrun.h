// CGhostrun: only what must be C — the code between fork and exec, and raw syscalls libc lacks.
// Everything the child needs is prepared by the Swift caller before ghostrun_spawn is called;
// the child makes async-signal-safe calls only and allocates nothing.
#ifndef CGHOSTRUN_H
#define CGHOSTRUN_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/resource.h>

#include "CGhostrunKernel.h"
#include "CGhostrunProcEvents.h"

#define GHOSTRUN_MAX_CGROUP_FDS 8
#define GHOSTRUN_MAX_RLIMITS 16
#define GHOSTRUN_MAX_GROUPS 64
#define GHOSTRUN_STEP_LEN 32
#define GHOSTRUN_MAX_KEPT_TREES 4

/// What one step of the child's mount setup does (`ghostrun_mount_op.kind`).
#define GHOSTRUN_MOUNT_TMPFS 1    ///< mount("tmpfs", target, "tmpfs", flags, data)
#define GHOSTRUN_MOUNT_BIND 2     ///< mount(source, target, NULL, MS_BIND | MS_REC, NULL)
#define GHOSTRUN_MOUNT_SETATTR 3  ///< mount_setattr(target, AT_RECURSIVE) setting `flags`
#define GHOSTRUN_MOUNT_KEEP 4     ///< open_tree(target, OPEN_TREE_CLONE | AT_RECURSIVE) into kept slot `slot`
#define GHOSTRUN_MOUNT_RESTORE 5  ///< mkdir -p target, then move_mount the tree kept in `slot` onto it
#define GHOSTRUN_MOUNT_MKDIR 6    ///< mkdir -p target (mode 0755)
#define GHOSTRUN_MOUNT_OVERLAY 7  ///< mount("overlay", target, "overlay", flags, data): data holds the layers
#define GHOSTRUN_MOUNT_BIND_ONE 8 ///< mount(source, target, NULL, MS_BIND, NULL): that mount only, its flags kept
#define GHOSTRUN_MOUNT_PIVOT 9    ///< chdir target, pivot_root(".", "."), detach the old root, chdir "/"

/// Mount flags of a step, the values of the kernel's MOUNT_ATTR_* (spawn.c checks them).
#define GHOSTRUN_MOUNT_RDONLY 0x1
#define GHOSTRUN_MOUNT_NOSUID 0x2
#define GHOSTRUN_MOUNT_NODEV 0x4
#define GHOSTRUN_MOUNT_NOEXEC 0x8

/// One mount step in the child's private mount namespace, prepared by Swift; `step` names it in a failure.
typedef struct ghostrun_mount_op {
    int kind;
    int slot;
    const char *source;
    const char *target;
    const char *data;
    uint64_t flags;
    /// -1, or the replicated host mount this step belongs to: when a step of a group fails because the host mount
    /// went away (ENOENT, ENOTDIR, ESTALE), the group's remaining steps are skipped and the parent told.
    int group;
    char step[GHOSTRUN_STEP_LEN];
} ghostrun_mount_op;

/// A classic BPF program, mirrored from <linux/filter.h> so Swift can build it without that header.
typedef struct ghostrun_bpf_insn {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
} ghostrun_bpf_insn;

typedef struct ghostrun_spawn_config {
    const char *path;            ///< absolute path of the program
    char *const *argv;           ///< NULL-terminated
    char *const *envp;           ///< NULL-terminated
    const char *workdir;         ///< chdir target, or NULL

    int stdin_fd, stdout_fd, stderr_fd;

    /// Open O_WRONLY fds of `cgroup.procs` files; the child writes "0" to each before anything else.
    int cgroup_fd_count;
    int cgroup_fds[GHOSTRUN_MAX_CGROUP_FDS];
    /// The run's cgroup v2 directory, or -1: the child is created in it with clone3(CLONE_INTO_CGROUP), which
    /// skips the migration a write to cgroup.procs costs (7 ms measured here: the threadgroup rwsem's RCU sync),
    /// and then `cgroup_fds[cgroup_into_index]` is not written. Kernels without it fall back to fork + write.
    int cgroup_into_fd;
    int cgroup_into_index;

    int rlimit_count;
    int rlimit_resources[GHOSTRUN_MAX_RLIMITS];
    struct rlimit rlimits[GHOSTRUN_MAX_RLIMITS];

    int switch_ids;              ///< 1: setgroups/setgid/setuid below
    uid_t uid;
    gid_t gid;
    int group_count;
    gid_t groups[GHOSTRUN_MAX_GROUPS];

    int set_capabilities;        ///< 1: apply the sets below
    int last_cap;                ///< highest capability number the kernel knows
    uint64_t cap_bounding;       ///< capabilities kept in the bounding set
    uint64_t cap_effective;
    uint64_t cap_permitted;
    uint64_t cap_inheritable;
    uint64_t cap_ambient;

    int no_new_privs;

    const ghostrun_bpf_insn *filter;  ///< seccomp filter, or NULL
    unsigned short filter_len;
    unsigned int seccomp_flags;

    /// User notification: when `seccomp_flags` has SECCOMP_FILTER_FLAG_NEW_LISTENER, the listener fd is sent with
    /// SCM_RIGHTS over `listener_socket`, first moved to `listener_socket_target` (a high fd number the filter
    /// lets sendmsg through on, so the hand-over is never itself notified). -1 when unused.
    int listener_socket;
    int listener_socket_target;

    /// 1: unshare a mount namespace before the mount steps; the child first makes every mount private so nothing
    /// it mounts propagates to the host.
    int new_mount_namespace;
    /// 1: unshare a network namespace (only `lo`, down).
    int new_network_namespace;
    /// 1: bring `lo` up in the new network namespace (`sandbox.network: loopback`).
    int loopback_up;
    const ghostrun_mount_op *mount_ops;
    int mount_op_count;
    /// Filled by ghostrun_spawn in the parent (room for `mount_op_count`, or NULL): the index and errno of the step
    /// at which each skipped group stopped, and how many.
    int *skipped_ops;
    int *skipped_errors;
    int *skipped_count;

    /// A Landlock ruleset created by the parent (`ghostrun_landlock_create_ruleset`), or -1. The child adds the
    /// rules after the mount steps (a rule holds the inode it was opened on, and a hermetic run's files are the
    /// overlay's, not the host's), then calls landlock_restrict_self while it still holds ghostrun's CAP_SYS_ADMIN.
    int landlock_ruleset;
    /// The ruleset's trees and the rights each allows, `landlock_rule_count` of each.
    const char *const *landlock_paths;
    const uint64_t *landlock_access;
    int landlock_rule_count;
    /// A network namespace to join with setns instead of creating one (the stall server's), or -1.
    int join_network_namespace;
    /// The run's cgroup v2 `cgroup.freeze`, opened for writing, or -1. The child freezes its cgroup right before
    /// execve (`freeze: {after: 0ms}`): it tells the parent the exec follows, writes "1", and is frozen on its way
    /// back from the write, so not one instruction of the program runs before the freeze, however loaded the host.
    int freeze_before_exec_fd;
} ghostrun_spawn_config;

#define GHOSTRUN_MAX_STALL 16

/// Stall endpoints served inside a network namespace of their own (lo up), which the run's child joins.
typedef struct ghostrun_stall {
    int namespace_fd;   ///< /proc/thread-self/ns/net of the serving thread (O_CLOEXEC)
    int stop_fd;        ///< write end: one byte (or close) stops the server
    unsigned long thread;
    int accepted;       ///< connections accepted so far (read after ghostrun_stall_stop)
} ghostrun_stall;

/// Starts a thread that unshares a network namespace, brings lo up, listens on each IPv4 address/port (network
/// byte order) and accepts every connection without ever answering. Returns 0, or an errno with `step_out` named.
int ghostrun_stall_start(const uint32_t *addresses, const uint16_t *ports, int count, ghostrun_stall *out,
                         char *step_out);
/// Stops the thread; it closes every socket it holds and the namespace goes with the last process in it.
void ghostrun_stall_stop(ghostrun_stall *stall);
/// `accepted`, read atomically: the serving thread increments it while the run goes on.
int ghostrun_stall_accepted(const ghostrun_stall *stall);

/// Names the calling thread (PR_SET_NAME, at most 15 bytes): `/proc/self/task/TID/comm`, what tests and
/// `top -H` show. Foundation's `Thread.name` does not reach the kernel on Linux.
void ghostrun_set_thread_name(const char *name);

/// One seccomp user notification, copied out of the kernel's struct.
typedef struct ghostrun_notification {
    uint64_t id;
    int32_t pid;
    int32_t nr;
    uint64_t args[6];
} ghostrun_notification;

/// SECCOMP_GET_NOTIF_SIZES; returns 0 or -errno.
int ghostrun_notify_sizes(int *notif_size, int *resp_size);
/// SECCOMP_IOCTL_NOTIF_RECV into `buffer` (of the kernel's notif size); returns 0 or -errno.
int ghostrun_notify_receive(int listener, void *buffer, int buffer_size, ghostrun_notification *out);
/// SECCOMP_IOCTL_NOTIF_SEND: `allow` continues the syscall in the kernel, otherwise it fails with `error`.
int ghostrun_notify_respond(int listener, void *buffer, int buffer_size, uint64_t id, int32_t error, int allow);
/// SECCOMP_IOCTL_NOTIF_ID_VALID: whether the notifying task is still waiting (its memory was really its own).
int ghostrun_notify_id_valid(int listener, uint64_t id);
/// SECCOMP_IOCTL_NOTIF_SET_FLAGS(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP), Linux 6.6+; 0 or -errno.
int ghostrun_notify_sync_wakeup(int listener);
/// poll(2) on the listener: 1 readable, 0 timeout, -EPIPE when no task uses the filter any more.
int ghostrun_notify_wait(int listener, int timeout_ms);
/// Reads a NUL-terminated string from another process with process_vm_readv; returns its length or -errno.
long ghostrun_read_remote_string(int pid, uint64_t address, char *buffer, int size);
/// Receives one fd sent with SCM_RIGHTS; returns it, or -errno (-ETIMEDOUT).
int ghostrun_receive_fd(int socket_fd, int timeout_ms);
/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC).
int ghostrun_socketpair(int fds[2]);

/// Forks and execs according to `config`. Returns 0 and sets `*pid_out` when execve succeeded.
/// On failure returns the errno and copies the failing step's name into `step_out`; if the
/// failure happened in the child, the child has been reaped already.
int ghostrun_spawn(const ghostrun_spawn_config *config, pid_t *pid_out, char *step_out);

/// Landlock: the kernel's ABI version (>= 1), or -errno (EOPNOTSUPP: disabled at boot, ENOSYS: not built).
int ghostrun_landlock_abi(void);
/// landlock_create_ruleset handling these file-system rights; an O_CLOEXEC fd or -errno.
int ghostrun_landlock_create_ruleset(uint64_t handled_access_fs);
/// landlock_add_rule(LANDLOCK_RULE_PATH_BENEATH) for the tree at `path` (opened O_PATH here); 0 or -errno.
int ghostrun_landlock_add_path(int ruleset, const char *path, uint64_t allowed_access);

/// seccomp(2), which glibc does not wrap.
int ghostrun_seccomp(unsigned int operation, unsigned int flags, void *args);

/// pipe2(2) with O_CLOEXEC (Glibc does not export pipe2 to Swift).
int ghostrun_pipe_cloexec(int fds[2]);

/// getxattr(2) and setxattr(2) (Glibc's module does not export <sys/xattr.h> to Swift): systemd's delegation
/// mark and ghostrun's record of controllers it enabled, on cgroup directories. -1 with errno on failure.
long ghostrun_getxattr(const char *path, const char *name, void *value, unsigned long size);
int ghostrun_setxattr(const char *path, const char *name, const void *value, unsigned long size);

/// memfd_create(2) with MFD_CLOEXEC, for exporting libseccomp's program.
int ghostrun_memfd(const char *name);

/// pidfd_open(2) and pidfd_send_signal(2).
int ghostrun_pidfd_open(pid_t pid, unsigned int flags);
int ghostrun_pidfd_send_signal(int pidfd, int sig);

/// Names and numbers of errno values known to this libc, for scenario parsing.
const char *ghostrun_errno_name(int index, int *value_out);

/// Fork a watchdog: the child blocks reading `read_fd` until it reaches end of file (every
/// writer, in particular ghostrun, is gone), then execs `argv`. Used so a killed ghostrun still
/// gets its cgroups and temporary directories cleaned up.
pid_t ghostrun_spawn_reaper(const char *path, char *const *argv, int read_fd);

#endif

/// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS (Linux 5.6+): `path` is resolved beneath `dirfd` and
/// no step may leave it, through `..`, an absolute symlink or a /proc magic link. Glibc has no wrapper.
/// Returns the descriptor, or -1 with errno set.
int ghostrun_openat_beneath(int dirfd, const char *path, int flags, unsigned int mode);
