// The kernel's process events connector (NETLINK_CONNECTOR, CN_IDX_PROC): a fork, exec or exit event for every
// process on the host, exact and without BPF (root only). ghostrun counts a run's processes from it when the
// sampler (which sees only processes alive at a sample) cannot.
#ifndef CGHOSTRUN_PROC_EVENTS_H
#define CGHOSTRUN_PROC_EVENTS_H

#include <stddef.h>
#include <stdint.h>

/// One event: for a fork, the parent and the child; for exec and exit, the process (in `child_*`).
struct ghostrun_proc_event {
    uint32_t what;  // GHOSTRUN_PROC_EVENT_*
    int32_t parent_pid;
    int32_t parent_tgid;
    int32_t child_pid;
    int32_t child_tgid;
};

extern const uint32_t GHOSTRUN_PROC_EVENT_FORK;
extern const uint32_t GHOSTRUN_PROC_EVENT_EXEC;
extern const uint32_t GHOSTRUN_PROC_EVENT_EXIT;

/// Opens a connector socket subscribed to process events, with a receive buffer of `buffer_bytes` (forced when
/// root may). Returns the descriptor (close-on-exec), or -errno.
int ghostrun_proc_events_open(int buffer_bytes);

/// Parses the netlink messages of one recv() into at most `max` events (fork, exec and exit only; others are
/// skipped). Returns how many were written.
int ghostrun_proc_events_parse(const void *buffer, size_t length, struct ghostrun_proc_event *events, int max);

#endif
