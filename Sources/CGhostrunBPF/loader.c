#include "CGhostrunBPF.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

// scripts/build-bpf.sh generates the skeleton (the compiled program embedded as bytes) before `swift build`; a
// build without it still compiles, and every start then fails with a message saying how to build it.
#if __has_include("generated/ghostrun_bpf.skel.h")
#include "generated/ghostrun_bpf.skel.h"
#define GHOSTRUN_BPF_HAVE_SKELETON 1
#else
#define GHOSTRUN_BPF_HAVE_SKELETON 0
#endif

int ghostrun_bpf_embedded(void) { return GHOSTRUN_BPF_HAVE_SKELETON; }

int ghostrun_bpf_next_key(int map_fd, const void *key, void *next_key) {
    return bpf_map_get_next_key(map_fd, key, next_key) == 0 ? 0 : -errno;
}

int ghostrun_bpf_lookup(int map_fd, const void *key, void *value) {
    return bpf_map_lookup_elem(map_fd, key, value) == 0 ? 0 : -errno;
}

#if GHOSTRUN_BPF_HAVE_SKELETON

struct ghostrun_bpf_tracer {
    struct ghostrun_bpf *skeleton;
    struct ring_buffer *ring;
    ghostrun_bpf_record_handler handler;
    void *context;
};

// libbpf reports through a process-wide print callback; the thread that is starting a tracer keeps the last
// warning so the failure says why (a verifier message, a missing BTF...).
static __thread char *capture_buffer;
static __thread size_t capture_length;

static int capture_print(enum libbpf_print_level level, const char *format, va_list arguments) {
    if (getenv("GHOSTRUN_BPF_DEBUG")) vfprintf(stderr, format, arguments);
    if (level == LIBBPF_DEBUG || !capture_buffer || capture_length == 0) return 0;
    int written = vsnprintf(capture_buffer, capture_length, format, arguments);
    if (written > 0) {
        // One line: the last one libbpf printed.
        for (char *c = capture_buffer; *c; c++)
            if (*c == '\n') *c = ' ';
    }
    return 0;
}

int ghostrun_bpf_start(const struct ghostrun_bpf_options *options, ghostrun_bpf_tracer **out, char *message,
                       size_t message_length) {
    *out = NULL;
    if (message_length) message[0] = 0;
    static int print_set;
    if (!__atomic_exchange_n(&print_set, 1, __ATOMIC_SEQ_CST)) libbpf_set_print(capture_print);
    capture_buffer = message;
    capture_length = message_length;

    struct ghostrun_bpf_tracer *tracer = calloc(1, sizeof(*tracer));
    if (!tracer) return -ENOMEM;
    int status = 0;
    const char *step = "open";
    tracer->skeleton = ghostrun_bpf__open();
    if (!tracer->skeleton) {
        status = -errno;
        goto fail;
    }
    tracer->skeleton->rodata->target_cgroup_id = options->cgroup_id;
    tracer->skeleton->rodata->target_cgroup_level = options->cgroup_level;
    tracer->skeleton->rodata->emit_records = options->emit_records;
    // Without records the ring buffer is never written: keep its memory small.
    if (!options->emit_records) bpf_map__set_max_entries(tracer->skeleton->maps.records, 4096);
    step = "load";
    status = ghostrun_bpf__load(tracer->skeleton);
    if (status) goto fail;
    step = "attach";
    status = ghostrun_bpf__attach(tracer->skeleton);
    if (status) goto fail;
    capture_buffer = NULL;
    *out = tracer;
    return 0;

fail:
    capture_buffer = NULL;
    if (status > 0) status = -status;
    if (status == 0) status = -EINVAL;
    if (message_length) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", message);
        snprintf(message, message_length, "%s: %s%s%s", step, strerror(-status), detail[0] ? " — " : "", detail);
    }
    ghostrun_bpf_stop(tracer);
    return status;
}

int ghostrun_bpf_map_fd(ghostrun_bpf_tracer *tracer, enum ghostrun_bpf_map map) {
    switch (map) {
    case GHOSTRUN_BPF_MAP_CALLS: return bpf_map__fd(tracer->skeleton->maps.calls);
    case GHOSTRUN_BPF_MAP_ERRORS: return bpf_map__fd(tracer->skeleton->maps.errors);
    case GHOSTRUN_BPF_MAP_PROCESSES: return bpf_map__fd(tracer->skeleton->maps.processes);
    case GHOSTRUN_BPF_MAP_COUNTERS: return bpf_map__fd(tracer->skeleton->maps.counters);
    }
    return -EINVAL;
}

static int ring_callback(void *context, void *data, size_t size) {
    struct ghostrun_bpf_tracer *tracer = context;
    if (size < sizeof(struct ghostrun_bpf_call_record) || !tracer->handler) return 0;
    return tracer->handler(tracer->context, data);
}

int ghostrun_bpf_poll_records(ghostrun_bpf_tracer *tracer, int timeout_ms, ghostrun_bpf_record_handler handler,
                              void *context) {
    tracer->handler = handler;
    tracer->context = context;
    if (!tracer->ring) {
        tracer->ring = ring_buffer__new(bpf_map__fd(tracer->skeleton->maps.records), ring_callback, tracer, NULL);
        if (!tracer->ring) return -errno;
    }
    int count = ring_buffer__poll(tracer->ring, timeout_ms);
    return count < 0 && count != -EINTR ? count : (count < 0 ? 0 : count);
}

int ghostrun_bpf_program_ids(ghostrun_bpf_tracer *tracer, uint32_t *ids, int capacity) {
    struct bpf_program *programs[] = {
        tracer->skeleton->progs.ghostrun_sys_enter, tracer->skeleton->progs.ghostrun_sys_exit,
        tracer->skeleton->progs.ghostrun_fork,      tracer->skeleton->progs.ghostrun_exec,
        tracer->skeleton->progs.ghostrun_exit,
    };
    int count = 0;
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]) && count < capacity; i++) {
        struct bpf_prog_info info;
        uint32_t length = sizeof(info);
        memset(&info, 0, sizeof(info));
        if (bpf_obj_get_info_by_fd(bpf_program__fd(programs[i]), &info, &length) == 0) ids[count++] = info.id;
    }
    return count;
}

void ghostrun_bpf_stop(ghostrun_bpf_tracer *tracer) {
    if (!tracer) return;
    if (tracer->ring) ring_buffer__free(tracer->ring);
    if (tracer->skeleton) ghostrun_bpf__destroy(tracer->skeleton);
    free(tracer);
}

#else

struct ghostrun_bpf_tracer {
    int unused;
};

int ghostrun_bpf_start(const struct ghostrun_bpf_options *options, ghostrun_bpf_tracer **out, char *message,
                       size_t message_length) {
    (void)options;
    *out = NULL;
    if (message_length)
        snprintf(message, message_length,
                 "this ghostrun was built without its BPF program (run scripts/bootstrap.sh, which builds it, then "
                 "swift build)");
    return -ENOSYS;
}

int ghostrun_bpf_map_fd(ghostrun_bpf_tracer *tracer, enum ghostrun_bpf_map map) {
    (void)tracer;
    (void)map;
    return -ENOSYS;
}

int ghostrun_bpf_poll_records(ghostrun_bpf_tracer *tracer, int timeout_ms, ghostrun_bpf_record_handler handler,
                              void *context) {
    (void)tracer;
    (void)timeout_ms;
    (void)handler;
    (void)context;
    return -ENOSYS;
}

int ghostrun_bpf_program_ids(ghostrun_bpf_tracer *tracer, uint32_t *ids, int capacity) {
    (void)tracer;
    (void)ids;
    (void)capacity;
    return 0;
}

void ghostrun_bpf_stop(ghostrun_bpf_tracer *tracer) { (void)tracer; }

#endif
