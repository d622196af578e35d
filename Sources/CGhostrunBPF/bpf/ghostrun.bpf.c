// ghostrun's observation program: counts every syscall of the runs' cgroups per (process, syscall) with its
// errors by errno, and follows the runs' processes (fork, exec, exit) with the restrictions each one runs under.
// One loaded copy serves every run of a ghostrun process: a run registers its cgroup id in `runs` and gets a
// slot, which keys all of its entries, so concurrent runs never see each other's calls.
// Built by scripts/build-bpf.sh (clang -target bpf, CO-RE against vmlinux.h from the running kernel's BTF) into
// a libbpf skeleton that the CGhostrunBPF target embeds. Attached through BTF raw tracepoints (tp_btf): no tracefs.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "../include/ghostrun_bpf_shared.h"

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, GHOSTRUN_BPF_MAX_RUNS);
    __type(key, __u64);
    __type(value, struct ghostrun_bpf_run);
} runs SEC(".maps");

// Not preallocated: a run creates its maps at start (preallocating megabytes costs milliseconds), and entries are
// only added on a first occurrence.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, GHOSTRUN_BPF_MAX_CALL_KEYS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ghostrun_bpf_call_key);
    __type(value, struct ghostrun_bpf_call_value);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, GHOSTRUN_BPF_MAX_ERROR_KEYS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ghostrun_bpf_error_key);
    __type(value, struct ghostrun_bpf_error_value);
} errors SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, GHOSTRUN_BPF_MAX_PROCESSES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ghostrun_bpf_process_key);
    __type(value, struct ghostrun_bpf_process);
} processes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, GHOSTRUN_BPF_COUNTER_COUNT * GHOSTRUN_BPF_MAX_RUNS);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, GHOSTRUN_BPF_RINGBUF_BYTES);
} records SEC(".maps");

// Scratch space for building a process entry (too big for the 512-byte stack).
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ghostrun_bpf_process);
} scratch SEC(".maps");

// x86_64 syscall numbers (the loader refuses other architectures).
#define NR_RT_SIGRETURN 15
#define NR_OPEN 2
#define NR_STAT 4
#define NR_LSTAT 6
#define NR_ACCESS 21
#define NR_EXECVE 59
#define NR_EXIT 60
#define NR_RENAME 82
#define NR_MKDIR 83
#define NR_UNLINK 87
#define NR_READLINK 89
#define NR_CHDIR 80
#define NR_OPENAT 257
#define NR_MKDIRAT 258
#define NR_NEWFSTATAT 262
#define NR_UNLINKAT 263
#define NR_LINKAT 265
#define NR_SYMLINKAT 266
#define NR_READLINKAT 267
#define NR_FACCESSAT 269
#define NR_EXIT_GROUP 231
#define NR_RENAMEAT2 316
#define NR_EXECVEAT 322
#define NR_STATX 332
#define NR_OPENAT2 437
#define NR_FACCESSAT2 439

/// The run the current task belongs to (its own cgroup is a run's), or NULL. ghostrun's go commands stay in the
/// run's cgroup; a process that moves into a child cgroup is no longer followed.
static __always_inline struct ghostrun_bpf_run *current_run(void) {
    __u64 cgroup = bpf_get_current_cgroup_id();
    return bpf_map_lookup_elem(&runs, &cgroup);
}

static __always_inline void bump(__u32 slot, __u32 counter, __u64 by) {
    __u32 index = slot * GHOSTRUN_BPF_COUNTER_COUNT + counter;
    __u64 *value = bpf_map_lookup_elem(&counters, &index);
    if (value) __sync_fetch_and_add(value, by);
}

static __always_inline void count_call(__u32 slot, __u32 tgid, __s32 nr, int failed, __u64 now) {
    struct ghostrun_bpf_call_key key = {.slot = slot, .tgid = tgid, .nr = nr, .pad = 0};
    struct ghostrun_bpf_call_value *value = bpf_map_lookup_elem(&calls, &key);
    if (!value) {
        struct ghostrun_bpf_call_value fresh = {.calls = 0, .errors = 0, .first_ns = now};
        // Another CPU may insert the same key first: then its entry is the one to add to.
        if (bpf_map_update_elem(&calls, &key, &fresh, BPF_NOEXIST) != 0 && !bpf_map_lookup_elem(&calls, &key)) {
            bump(slot, GHOSTRUN_BPF_LOST_KEYS, 1);
            return;
        }
        value = bpf_map_lookup_elem(&calls, &key);
        if (!value) return;
    }
    __sync_fetch_and_add(&value->calls, 1);
    if (failed) __sync_fetch_and_add(&value->errors, 1);
    bump(slot, GHOSTRUN_BPF_CALLS, 1);
}

/// Which argument of a file syscall is its path, or -1.
static __always_inline int path_argument(__s32 nr) {
    switch (nr) {
    case NR_OPENAT: case NR_OPENAT2: case NR_MKDIRAT: case NR_UNLINKAT: case NR_RENAMEAT2: case NR_LINKAT:
    case NR_EXECVEAT: case NR_FACCESSAT2: case NR_FACCESSAT: case NR_NEWFSTATAT: case NR_STATX:
    case NR_READLINKAT:
        return 1;
    case NR_SYMLINKAT:
        return 2;
    case NR_EXECVE: case NR_CHDIR: case NR_OPEN: case NR_STAT: case NR_LSTAT: case NR_ACCESS: case NR_MKDIR:
    case NR_UNLINK: case NR_RENAME: case NR_READLINK:
        return 0;
    }
    return -1;
}

/// The syscall's arguments are still in the registers at exit (x86_64 preserves them; only ax holds the result),
/// and the caller's memory is still mapped, except after a successful execve (whose path exec records anyway).
static __always_inline const char *path_pointer(struct pt_regs *regs, int argument) {
    switch (argument) {
    case 0: return (const char *)BPF_CORE_READ(regs, di);
    case 1: return (const char *)BPF_CORE_READ(regs, si);
    case 2: return (const char *)BPF_CORE_READ(regs, dx);
    }
    return 0;
}

static __always_inline void count_error(__u32 slot, __u32 tgid, __u32 tid, __s32 nr, __s32 err, __u64 now,
                                        struct pt_regs *regs) {
    struct ghostrun_bpf_error_key key = {.slot = slot, .tgid = tgid, .nr = nr, .err = err};
    struct ghostrun_bpf_error_value *value = bpf_map_lookup_elem(&errors, &key);
    if (value) {
        __sync_fetch_and_add(&value->count, 1);
        return;
    }
    // First time this process gets this errno from this syscall: keep when, which thread and the path.
    struct ghostrun_bpf_process *fresh_space;
    __u32 zero = 0;
    fresh_space = bpf_map_lookup_elem(&scratch, &zero);
    if (!fresh_space) return;
    struct ghostrun_bpf_error_value *fresh = (struct ghostrun_bpf_error_value *)fresh_space;
    fresh->count = 1;
    fresh->first_ns = now;
    fresh->first_tid = tid;
    fresh->pad = 0;
    fresh->path[0] = 0;
    int argument = path_argument(nr);
    if (argument >= 0) {
        const char *pointer = path_pointer(regs, argument);
        if (pointer) bpf_probe_read_user_str(fresh->path, sizeof(fresh->path), pointer);
    }
    if (bpf_map_update_elem(&errors, &key, fresh, BPF_NOEXIST) != 0) {
        value = bpf_map_lookup_elem(&errors, &key);
        if (value) __sync_fetch_and_add(&value->count, 1);
        else bump(slot, GHOSTRUN_BPF_LOST_KEYS, 1);
    }
}

static __always_inline void emit(__u32 slot, __u32 tgid, __u32 tid, __s32 nr, __s64 ret, __u64 now,
                                 struct pt_regs *regs) {
    struct ghostrun_bpf_call_record *record = bpf_ringbuf_reserve(&records, sizeof(*record), 0);
    if (!record) {
        bump(slot, GHOSTRUN_BPF_LOST_RECORDS, 1);
        return;
    }
    record->ns = now;
    record->tgid = tgid;
    record->tid = tid;
    record->nr = nr;
    record->slot = slot;
    record->ret = ret;
    bpf_get_current_comm(record->comm, sizeof(record->comm));
    record->path[0] = 0;
    int argument = regs ? path_argument(nr) : -1;
    if (argument >= 0) {
        const char *pointer = path_pointer(regs, argument);
        if (pointer) bpf_probe_read_user_str(record->path, sizeof(record->path), pointer);
    }
    bpf_ringbuf_submit(record, 0);
}

// exit and exit_group never return: they are counted on the way in.
SEC("tp_btf/sys_enter")
int BPF_PROG(ghostrun_sys_enter, struct pt_regs *regs, long id) {
    if (id != NR_EXIT_GROUP && id != NR_EXIT) return 0;
    struct ghostrun_bpf_run *run = current_run();
    if (!run) return 0;
    __u32 slot = run->slot;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 now = bpf_ktime_get_ns();
    count_call(slot, pid_tgid >> 32, id, 0, now);
    if (run->emit_records) emit(slot, pid_tgid >> 32, (__u32)pid_tgid, id, 0, now, 0);
    return 0;
}

// Every other call is counted on the way out, where its result is known. A call seccomp fails with an errno never
// reaches sys_enter, but it does come through here with that errno.
SEC("tp_btf/sys_exit")
int BPF_PROG(ghostrun_sys_exit, struct pt_regs *regs, long ret) {
    struct ghostrun_bpf_run *run = current_run();
    if (!run) return 0;
    __u32 slot = run->slot;
    __s32 nr = (__s32)BPF_CORE_READ(regs, orig_ax);
    // rt_sigreturn restores the interrupted context, orig_ax included (-1), and "returns" the restored ax.
    int sigreturn = nr < 0;
    if (sigreturn) nr = NR_RT_SIGRETURN;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
    __u64 now = bpf_ktime_get_ns();
    int failed = !sigreturn && ret < 0 && ret >= -4095;
    count_call(slot, tgid, nr, failed, now);
    if (failed) count_error(slot, tgid, tid, nr, (__s32)-ret, now, regs);
    if (run->emit_records) emit(slot, tgid, tid, nr, sigreturn ? 0 : ret, now, nr == NR_EXECVE && ret == 0 ? 0 : regs);
    return 0;
}

static __always_inline void attest(struct task_struct *task, struct ghostrun_bpf_attestation *a) {
    const struct cred *cred = BPF_CORE_READ(task, cred);
    // kernel_cap_t is one u64 since Linux 6.3 (two u32 before: the same 8 bytes on little-endian x86_64).
    bpf_core_read(&a->cap_eff, sizeof(a->cap_eff), &cred->cap_effective);
    bpf_core_read(&a->cap_prm, sizeof(a->cap_prm), &cred->cap_permitted);
    bpf_core_read(&a->cap_bnd, sizeof(a->cap_bnd), &cred->cap_bset);
    bpf_core_read(&a->cap_inh, sizeof(a->cap_inh), &cred->cap_inheritable);
    bpf_core_read(&a->cap_amb, sizeof(a->cap_amb), &cred->cap_ambient);
    a->uid = BPF_CORE_READ(cred, uid.val);
    a->euid = BPF_CORE_READ(cred, euid.val);
    a->gid = BPF_CORE_READ(cred, gid.val);
    // PFA_NO_NEW_PRIVS is bit 0 of atomic_flags.
    a->no_new_privs = BPF_CORE_READ(task, atomic_flags) & 1;
    a->seccomp_mode = BPF_CORE_READ(task, seccomp.mode);
    a->seccomp_filters = BPF_CORE_READ(task, seccomp.filter_count.counter);
    a->ns_mnt = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
    a->ns_pid = BPF_CORE_READ(task, nsproxy, pid_ns_for_children, ns.inum);
    a->ns_net = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
    a->ns_uts = BPF_CORE_READ(task, nsproxy, uts_ns, ns.inum);
    a->ns_ipc = BPF_CORE_READ(task, nsproxy, ipc_ns, ns.inum);
    a->ns_cgroup = BPF_CORE_READ(task, nsproxy, cgroup_ns, ns.inum);
    a->ns_user = BPF_CORE_READ(cred, user_ns, ns.inum);
    a->pad = 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ghostrun_fork, struct task_struct *parent, struct task_struct *child) {
    struct ghostrun_bpf_run *run = current_run();
    if (!run) return 0;
    __u32 slot = run->slot;
    __u32 parent_tgid = BPF_CORE_READ(parent, tgid);
    __u32 child_tgid = BPF_CORE_READ(child, tgid);
    struct ghostrun_bpf_process_key parent_key = {.slot = slot, .tgid = parent_tgid};
    struct ghostrun_bpf_process_key child_key = {.slot = slot, .tgid = child_tgid};
    if (child_tgid == parent_tgid) {
        bump(slot, GHOSTRUN_BPF_THREADS, 1);
        struct ghostrun_bpf_process *process = bpf_map_lookup_elem(&processes, &parent_key);
        if (process) __sync_fetch_and_add(&process->threads, 1);
        return 0;
    }
    bump(slot, GHOSTRUN_BPF_FORKS, 1);
    __u32 zero = 0;
    struct ghostrun_bpf_process *entry = bpf_map_lookup_elem(&scratch, &zero);
    if (!entry) return 0;
    __builtin_memset(entry, 0, sizeof(*entry));
    entry->tgid = child_tgid;
    entry->ppid = parent_tgid;
    entry->fork_ns = bpf_ktime_get_ns();
    BPF_CORE_READ_STR_INTO(&entry->comm, child, comm);
    // Until it execs, the child runs its parent's program.
    struct ghostrun_bpf_process *parent_entry = bpf_map_lookup_elem(&processes, &parent_key);
    if (parent_entry) __builtin_memcpy(entry->exe, parent_entry->exe, sizeof(entry->exe));
    attest(child, &entry->attestation);
    if (bpf_map_update_elem(&processes, &child_key, entry, BPF_ANY) != 0) bump(slot, GHOSTRUN_BPF_LOST_KEYS, 1);
    return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ghostrun_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm) {
    struct ghostrun_bpf_run *run = current_run();
    if (!run) return 0;
    __u32 slot = run->slot;
    bump(slot, GHOSTRUN_BPF_EXECS, 1);
    struct ghostrun_bpf_process_key key = {.slot = slot, .tgid = BPF_CORE_READ(task, tgid)};
    struct ghostrun_bpf_process *entry = bpf_map_lookup_elem(&processes, &key);
    if (!entry) {
        // The run's first process was forked before the program was attached: it enters the map at its exec.
        __u32 zero = 0;
        entry = bpf_map_lookup_elem(&scratch, &zero);
        if (!entry) return 0;
        __builtin_memset(entry, 0, sizeof(*entry));
        entry->tgid = key.tgid;
        entry->ppid = BPF_CORE_READ(task, real_parent, tgid);
        entry->fork_ns = 0;
        if (bpf_map_update_elem(&processes, &key, entry, BPF_NOEXIST) != 0) {
            bump(slot, GHOSTRUN_BPF_LOST_KEYS, 1);
        }
        entry = bpf_map_lookup_elem(&processes, &key);
        if (!entry) return 0;
    }
    entry->exec_ns = bpf_ktime_get_ns();
    entry->execs += 1;
    BPF_CORE_READ_STR_INTO(&entry->comm, task, comm);
    const char *filename = BPF_CORE_READ(bprm, filename);
    bpf_probe_read_kernel_str(entry->exe, sizeof(entry->exe), filename);
    attest(task, &entry->attestation);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ghostrun_exit, struct task_struct *task) {
    struct ghostrun_bpf_run *run = current_run();
    if (!run) return 0;
    // signal->live is already decremented here: 0 means the process's last thread is exiting. Threads of an
    // exit_group exit together and several may read 0: the exit time is claimed once (compare-and-swap).
    if (BPF_CORE_READ(task, signal, live.counter) != 0) return 0;
    __u32 slot = run->slot;
    struct ghostrun_bpf_process_key key = {.slot = slot, .tgid = BPF_CORE_READ(task, tgid)};
    struct ghostrun_bpf_process *entry = bpf_map_lookup_elem(&processes, &key);
    if (!entry) return 0;
    if (__sync_val_compare_and_swap(&entry->exit_ns, 0, bpf_ktime_get_ns()) != 0) return 0;
    bump(slot, GHOSTRUN_BPF_EXITS, 1);
    entry->exit_code = BPF_CORE_READ(task, signal, group_exit_code) ? BPF_CORE_READ(task, signal, group_exit_code)
                                                                    : BPF_CORE_READ(task, exit_code);
    return 0;
}
