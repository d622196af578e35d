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

/// Nonzero when this build embeds the BPF object (scripts/build-bpf.sh ran before `swift build`).
int ghostrun_bpf_embedded(void);

/// Opens and loads the programs and maps (not attached yet). Returns 0, or -errno with a one-line reason in
/// `message`.
int ghostrun_bpf_load(ghostrun_bpf_tracer **tracer, char *message, size_t message_length);

/// Attaches the programs to their tracepoints (links are descriptors too), or detaches them.
int ghostrun_bpf_attach(ghostrun_bpf_tracer *tracer, char *message, size_t message_length);
void ghostrun_bpf_detach(ghostrun_bpf_tracer *tracer);

enum ghostrun_bpf_map {
    GHOSTRUN_BPF_MAP_CALLS = 0,
    GHOSTRUN_BPF_MAP_ERRORS = 1,
    GHOSTRUN_BPF_MAP_PROCESSES = 2,
    GHOSTRUN_BPF_MAP_COUNTERS = 3,
    GHOSTRUN_BPF_MAP_RUNS = 4,
};

/// The descriptor of one of the tracer's maps.
int ghostrun_bpf_map_fd(ghostrun_bpf_tracer *tracer, enum ghostrun_bpf_map map);
/// bpf(BPF_MAP_GET_NEXT_KEY): 0, or -ENOENT after the last key. `key` NULL gives the first key.
int ghostrun_bpf_next_key(int map_fd, const void *key, void *next_key);
/// bpf(BPF_MAP_LOOKUP_ELEM), bpf(BPF_MAP_UPDATE_ELEM) (flags BPF_ANY = 0), bpf(BPF_MAP_DELETE_ELEM): 0 or -errno.
int ghostrun_bpf_lookup(int map_fd, const void *key, void *value);
int ghostrun_bpf_update(int map_fd, const void *key, const void *value, uint64_t flags);
int ghostrun_bpf_delete(int map_fd, const void *key);

/// Called for each `--trace-out` record; a nonzero return stops the current consume.
typedef int (*ghostrun_bpf_record_handler)(void *context, const struct ghostrun_bpf_call_record *record);
/// A descriptor that polls readable when the ring buffer has records (epoll), or -errno.
int ghostrun_bpf_records_fd(ghostrun_bpf_tracer *tracer, ghostrun_bpf_record_handler handler, void *context);
/// Hands every record available now to the handler given to ghostrun_bpf_records_fd, without waiting.
int ghostrun_bpf_consume_records(ghostrun_bpf_tracer *tracer);

/// The kernel's ids of the programs (for `bpftool prog show id N`), up to `capacity`; returns the count.
int ghostrun_bpf_program_ids(ghostrun_bpf_tracer *tracer, uint32_t *ids, int capacity);

/// Detaches and frees everything. NULL is allowed.
void ghostrun_bpf_unload(ghostrun_bpf_tracer *tracer);

#ifdef __cplusplus
}
#endif

#endif
