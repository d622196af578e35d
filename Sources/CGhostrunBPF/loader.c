#include "CGhostrunBPF.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

// scripts/build-bpf.sh generates the skeleton (the compiled program embedded as bytes) before `swift build`; a
// build without it still compiles, and loading then fails with a message saying how to build it.
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

int ghostrun_bpf_update(int map_fd, const void *key, const void *value, uint64_t flags) {
    return bpf_map_update_elem(map_fd, key, value, flags) == 0 ? 0 : -errno;
}

int ghostrun_bpf_delete(int map_fd, const void *key) {
    return bpf_map_delete_elem(map_fd, key) == 0 ? 0 : -errno;
}

#if GHOSTRUN_BPF_HAVE_SKELETON

struct ghostrun_bpf_tracer {
    struct ghostrun_bpf *skeleton;
    struct ring_buffer *ring;
    ghostrun_bpf_record_handler handler;
    void *context;
};

// libbpf reports through a process-wide print callback; the thread that is loading keeps the last warning so
// the failure says why (a verifier message, a missing BTF...).
static __thread char *capture_buffer;
static __thread size_t capture_length;

static int capture_print(enum libbpf_print_level level, const char *format, va_list arguments) {
    if (getenv("GHOSTRUN_BPF_DEBUG")) {
        va_list copy;
        va_copy(copy, arguments);
        vfprintf(stderr, format, copy);
        va_end(copy);
    }
    if (level == LIBBPF_DEBUG || !capture_buffer || capture_length == 0) return 0;
    if (vsnprintf(capture_buffer, capture_length, format, arguments) > 0) {
        for (char *c = capture_buffer; *c; c++)
            if (*c == '\n') *c = ' ';
    }
    return 0;
}

static void begin_capture(char *message, size_t message_length) {
    static int print_set;
    if (!__atomic_exchange_n(&print_set, 1, __ATOMIC_SEQ_CST)) libbpf_set_print(capture_print);
    if (message_length) message[0] = 0;
    capture_buffer = message;
    capture_length = message_length;
}

static int end_capture(int status, const char *step, char *message, size_t message_length) {
    capture_buffer = NULL;
    if (status == 0) return 0;
    if (status > 0) status = -status;
    if (message_length) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", message);
        snprintf(message, message_length, "%s: %s%s%s", step, strerror(-status), detail[0] ? " — " : "", detail);
    }
    return status;
}

int ghostrun_bpf_load(ghostrun_bpf_tracer **out, char *message, size_t message_length) {
    *out = NULL;
    begin_capture(message, message_length);
    struct ghostrun_bpf_tracer *tracer = calloc(1, sizeof(*tracer));
    if (!tracer) return end_capture(-ENOMEM, "load", message, message_length);
    tracer->skeleton = ghostrun_bpf__open();
    if (!tracer->skeleton) {
        int status = end_capture(-errno ? -errno : -EINVAL, "open", message, message_length);
        free(tracer);
        return status;
    }
    int status = ghostrun_bpf__load(tracer->skeleton);
    if (status) {
        status = end_capture(status, "load", message, message_length);
        ghostrun_bpf_unload(tracer);
        return status;
    }
    end_capture(0, "", message, message_length);
    *out = tracer;
    return 0;
}

int ghostrun_bpf_attach(ghostrun_bpf_tracer *tracer, char *message, size_t message_length) {
    begin_capture(message, message_length);
    return end_capture(ghostrun_bpf__attach(tracer->skeleton), "attach", message, message_length);
}

void ghostrun_bpf_detach(ghostrun_bpf_tracer *tracer) { ghostrun_bpf__detach(tracer->skeleton); }

int ghostrun_bpf_map_fd(ghostrun_bpf_tracer *tracer, enum ghostrun_bpf_map map) {
    switch (map) {
    case GHOSTRUN_BPF_MAP_CALLS: return bpf_map__fd(tracer->skeleton->maps.calls);
    case GHOSTRUN_BPF_MAP_ERRORS: return bpf_map__fd(tracer->skeleton->maps.errors);
    case GHOSTRUN_BPF_MAP_PROCESSES: return bpf_map__fd(tracer->skeleton->maps.processes);
    case GHOSTRUN_BPF_MAP_COUNTERS: return bpf_map__fd(tracer->skeleton->maps.counters);
    case GHOSTRUN_BPF_MAP_RUNS: return bpf_map__fd(tracer->skeleton->maps.runs);
    }
    return -EINVAL;
}

static int ring_callback(void *context, void *data, size_t size) {
    struct ghostrun_bpf_tracer *tracer = context;
    if (size < sizeof(struct ghostrun_bpf_call_record) || !tracer->handler) return 0;
    return tracer->handler(tracer->context, data);
}

int ghostrun_bpf_records_fd(ghostrun_bpf_tracer *tracer, ghostrun_bpf_record_handler handler, void *context) {
    tracer->handler = handler;
    tracer->context = context;
    if (!tracer->ring) {
        tracer->ring = ring_buffer__new(bpf_map__fd(tracer->skeleton->maps.records), ring_callback, tracer, NULL);
        if (!tracer->ring) return -errno;
    }
    return ring_buffer__epoll_fd(tracer->ring);
}

int ghostrun_bpf_consume_records(ghostrun_bpf_tracer *tracer) {
    if (!tracer->ring) return 0;
    return ring_buffer__consume(tracer->ring);
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

void ghostrun_bpf_unload(ghostrun_bpf_tracer *tracer) {
    if (!tracer) return;
    if (tracer->ring) ring_buffer__free(tracer->ring);
    if (tracer->skeleton) ghostrun_bpf__destroy(tracer->skeleton);
    free(tracer);
}

#else

struct ghostrun_bpf_tracer {
    int unused;
};

int ghostrun_bpf_load(ghostrun_bpf_tracer **out, char *message, size_t message_length) {
    *out = NULL;
    if (message_length)
        snprintf(message, message_length,
                 "this ghostrun was built without its BPF program (run scripts/bootstrap.sh, which builds it, then "
                 "swift build)");
    return -ENOSYS;
}

int ghostrun_bpf_attach(ghostrun_bpf_tracer *tracer, char *message, size_t message_length) {
    (void)tracer;
    (void)message;
    (void)message_length;
    return -ENOSYS;
}

void ghostrun_bpf_detach(ghostrun_bpf_tracer *tracer) { (void)tracer; }

int ghostrun_bpf_map_fd(ghostrun_bpf_tracer *tracer, enum ghostrun_bpf_map map) {
    (void)tracer;
    (void)map;
    return -ENOSYS;
}

int ghostrun_bpf_records_fd(ghostrun_bpf_tracer *tracer, ghostrun_bpf_record_handler handler, void *context) {
    (void)tracer;
    (void)handler;
    (void)context;
    return -ENOSYS;
}

int ghostrun_bpf_consume_records(ghostrun_bpf_tracer *tracer) {
    (void)tracer;
    return -ENOSYS;
}

int ghostrun_bpf_program_ids(ghostrun_bpf_tracer *tracer, uint32_t *ids, int capacity) {
    (void)tracer;
    (void)ids;
    (void)capacity;
    return 0;
}

void ghostrun_bpf_unload(ghostrun_bpf_tracer *tracer) { (void)tracer; }

#endif
