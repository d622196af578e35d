// Layouts shared by the BPF program (bpf/ghostrun.bpf.c, compiled with clang -target bpf against vmlinux.h)
// and ghostrun (the loader and Swift). One definition, fixed-width fields, sizes checked on both sides.
#ifndef GHOSTRUN_BPF_SHARED_H
#define GHOSTRUN_BPF_SHARED_H

#ifdef __bpf__
// vmlinux.h defines the kernel's __u32/__u64/... .
#else
#include <linux/types.h>
#endif

#define GHOSTRUN_BPF_COMM_LEN 16
#define GHOSTRUN_BPF_EXE_LEN 256
#define GHOSTRUN_BPF_PATH_LEN 256
#define GHOSTRUN_BPF_ERRNO_PATH_LEN 192

/// Maps' capacities: a go build of a large module runs a few hundred processes and ~80 distinct syscalls each.
#define GHOSTRUN_BPF_MAX_CALL_KEYS 65536
#define GHOSTRUN_BPF_MAX_ERROR_KEYS 16384
#define GHOSTRUN_BPF_MAX_PROCESSES 16384
#define GHOSTRUN_BPF_RINGBUF_BYTES (8u << 20)
/// Runs observed at once by one ghostrun process (one slot each).
#define GHOSTRUN_BPF_MAX_RUNS 64

/// Indexes of the `counters` array map.
enum ghostrun_bpf_counter {
    GHOSTRUN_BPF_FORKS = 0,     // new processes (not threads)
    GHOSTRUN_BPF_THREADS = 1,   // new threads
    GHOSTRUN_BPF_EXECS = 2,
    GHOSTRUN_BPF_EXITS = 3,     // processes whose last thread exited
    GHOSTRUN_BPF_CALLS = 4,     // syscalls counted
    GHOSTRUN_BPF_LOST_RECORDS = 5,  // ring-buffer records that did not fit
    GHOSTRUN_BPF_LOST_KEYS = 6,     // calls, errors or processes a full map could not hold
    GHOSTRUN_BPF_COUNTER_COUNT = 8,  // per run: the run's counters are at slot * COUNTER_COUNT
};

/// Value of `runs`, keyed by the run's cgroup v2 id (u64): the slot that keys everything of the run.
struct ghostrun_bpf_run {
    __u32 slot;
    /// Nonzero: the run's calls also go to the ring buffer (`--trace-out`).
    __u32 emit_records;
};

/// Key of `calls`: a run, a process (thread group) and a syscall number.
struct ghostrun_bpf_call_key {
    __u32 slot;
    __u32 tgid;
    __s32 nr;
    __u32 pad;
};

/// Key of `processes`.
struct ghostrun_bpf_process_key {
    __u32 slot;
    __u32 tgid;
};

struct ghostrun_bpf_call_value {
    __u64 calls;
    __u64 errors;
    /// bpf_ktime_get_ns (CLOCK_MONOTONIC) of the first call.
    __u64 first_ns;
};

/// Key of `errors`: which process got which errno from which syscall.
struct ghostrun_bpf_error_key {
    __u32 slot;
    __u32 tgid;
    __s32 nr;
    __s32 err;
};

struct ghostrun_bpf_error_value {
    __u64 count;
    __u64 first_ns;
    __u32 first_tid;
    __u32 pad;
    /// The path argument of the first such call, for file syscalls ("" otherwise).
    char path[GHOSTRUN_BPF_ERRNO_PATH_LEN];
};

/// Restrictions of a task as the kernel holds them (read at fork and at each exec).
struct ghostrun_bpf_attestation {
    __u64 cap_eff;
    __u64 cap_prm;
    __u64 cap_bnd;
    __u64 cap_inh;
    __u64 cap_amb;
    __u32 uid;
    __u32 euid;
    __u32 gid;
    __u32 no_new_privs;
    __s32 seccomp_mode;
    __s32 seccomp_filters;
    __u32 ns_mnt;
    __u32 ns_pid;
    __u32 ns_net;
    __u32 ns_uts;
    __u32 ns_ipc;
    __u32 ns_user;
    __u32 ns_cgroup;
    __u32 pad;
};

/// Value of `processes`, keyed by tgid.
struct ghostrun_bpf_process {
    __u32 tgid;
    __u32 ppid;
    __u64 fork_ns;
    __u64 exec_ns;  // last exec, 0 if none
    __u64 exit_ns;  // 0 while alive
    __s32 exit_code;  // wait status as the kernel keeps it (code << 8 | signal)
    __u32 execs;
    __u32 threads;  // threads created (the first one not included)
    __u32 pad;
    char comm[GHOSTRUN_BPF_COMM_LEN];
    char exe[GHOSTRUN_BPF_EXE_LEN];
    struct ghostrun_bpf_attestation attestation;
};

/// A `--trace-out` record from the ring buffer: one syscall as it returned.
struct ghostrun_bpf_call_record {
    __u64 ns;
    __u32 tgid;
    __u32 tid;
    __s32 nr;
    __u32 slot;
    __s64 ret;
    char comm[GHOSTRUN_BPF_COMM_LEN];
    char path[GHOSTRUN_BPF_PATH_LEN];
};

_Static_assert(sizeof(struct ghostrun_bpf_run) == 8, "run layout");
_Static_assert(sizeof(struct ghostrun_bpf_call_key) == 16, "call key layout");
_Static_assert(sizeof(struct ghostrun_bpf_process_key) == 8, "process key layout");
_Static_assert(sizeof(struct ghostrun_bpf_call_value) == 24, "call value layout");
_Static_assert(sizeof(struct ghostrun_bpf_error_key) == 16, "error key layout");
_Static_assert(sizeof(struct ghostrun_bpf_error_value) == 24 + GHOSTRUN_BPF_ERRNO_PATH_LEN, "error value layout");
_Static_assert(sizeof(struct ghostrun_bpf_attestation) == 5 * 8 + 14 * 4, "attestation layout");
_Static_assert(sizeof(struct ghostrun_bpf_process) ==
                   48 + GHOSTRUN_BPF_COMM_LEN + GHOSTRUN_BPF_EXE_LEN + sizeof(struct ghostrun_bpf_attestation),
               "process layout");
_Static_assert(sizeof(struct ghostrun_bpf_call_record) == 32 + GHOSTRUN_BPF_COMM_LEN + GHOSTRUN_BPF_PATH_LEN,
               "call record layout");

#endif
