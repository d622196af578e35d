// Loads ghostrun's BPF program (bpf/ghostrun.bpf.c, embedded as a libbpf skeleton) for one run and reads its maps.
// Everything the kernel gives back (programs, links, maps, the ring buffer) is a file descriptor owned by the
// tracer: closed by ghostrun_bpf_stop, or by the kernel when ghostrun dies, which detaches the programs.
#ifndef CGHOSTRUN_BPF_H
#define CGHOSTRUN_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "ghostrun_bpf_shared.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ghostrun_bpf_tracer ghostrun_bpf_tracer;

struct ghostrun_bpf_options {
    /// The run's cgroup v2 id (the inode number of its directory) and its depth below the v2 root.
    uint64_t cgroup_id;
    uint32_t cgroup_level;
    /// Nonzero: every call is also written to the ring buffer (`--trace-out`).
    uint32_t emit_records;
};

/// Nonzero when this build embeds the BPF object (scripts/build-bpf.sh ran before `swift build`).
int ghostrun_bpf_embedded(void);

/// Opens, loads and attaches the programs. Returns 0, or -errno with a one-line reason in `message`.
int ghostrun_bpf_start(const struct ghostrun_bpf_options *options, ghostrun_bpf_tracer **tracer, char *message,
                       size_t message_length);

enum ghostrun_bpf_map {
    GHOSTRUN_BPF_MAP_CALLS = 0,
    GHOSTRUN_BPF_MAP_ERRORS = 1,
    GHOSTRUN_BPF_MAP_PROCESSES = 2,
    GHOSTRUN_BPF_MAP_COUNTERS = 3,
};

/// The descriptor of one of the tracer's maps, for ghostrun_bpf_next_key / ghostrun_bpf_lookup.
int ghostrun_bpf_map_fd(ghostrun_bpf_tracer *tracer, enum ghostrun_bpf_map map);
/// bpf(BPF_MAP_GET_NEXT_KEY): 0, or -ENOENT after the last key. `key` NULL gives the first key.
int ghostrun_bpf_next_key(int map_fd, const void *key, void *next_key);
/// bpf(BPF_MAP_LOOKUP_ELEM): 0 or -errno.
int ghostrun_bpf_lookup(int map_fd, const void *key, void *value);

/// Called for each `--trace-out` record; a nonzero return stops the current poll.
typedef int (*ghostrun_bpf_record_handler)(void *context, const struct ghostrun_bpf_call_record *record);
/// Waits up to `timeout_ms` for records and hands each to `handler`. Returns how many, or -errno.
int ghostrun_bpf_poll_records(ghostrun_bpf_tracer *tracer, int timeout_ms, ghostrun_bpf_record_handler handler,
                              void *context);

/// The kernel's ids of the attached programs (for `bpftool prog show id N`), up to `capacity`; returns the count.
int ghostrun_bpf_program_ids(ghostrun_bpf_tracer *tracer, uint32_t *ids, int capacity);

/// Detaches and frees everything. NULL is allowed.
void ghostrun_bpf_stop(ghostrun_bpf_tracer *tracer);

#ifdef __cplusplus
}
#endif

#endif
