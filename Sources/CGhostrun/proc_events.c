// Process events connector: subscribe, and parse what the kernel sends. See CGhostrunProcEvents.h.
#include "CGhostrunProcEvents.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const uint32_t GHOSTRUN_PROC_EVENT_FORK = PROC_EVENT_FORK;
const uint32_t GHOSTRUN_PROC_EVENT_EXEC = PROC_EVENT_EXEC;
const uint32_t GHOSTRUN_PROC_EVENT_EXIT = PROC_EVENT_EXIT;

int ghostrun_proc_events_open(int buffer_bytes) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) return -errno;
    if (buffer_bytes > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) < 0) {
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    }
    struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = 0};
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    struct {
        struct nlmsghdr header;
        struct cn_msg message;
        enum proc_cn_mcast_op op;
    } __attribute__((packed)) request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = NLMSG_DONE;
    request.header.nlmsg_pid = 0;
    request.message.id.idx = CN_IDX_PROC;
    request.message.id.val = CN_VAL_PROC;
    request.message.len = sizeof(enum proc_cn_mcast_op);
    request.op = PROC_CN_MCAST_LISTEN;
    if (send(fd, &request, sizeof request, 0) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int ghostrun_proc_events_parse(const void *buffer, size_t length, struct ghostrun_proc_event *events, int max) {
    int count = 0;
    const struct nlmsghdr *header = buffer;
    size_t left = length;
    for (; NLMSG_OK(header, left) && count < max; header = NLMSG_NEXT(header, left)) {
        if (header->nlmsg_type == NLMSG_ERROR || header->nlmsg_type == NLMSG_NOOP) continue;
        const struct cn_msg *message = NLMSG_DATA(header);
        if (message->id.idx != CN_IDX_PROC || message->id.val != CN_VAL_PROC) continue;
        if (message->len < sizeof(struct proc_event) - sizeof(((struct proc_event *)0)->event_data)) continue;
        const struct proc_event *event = (const struct proc_event *)message->data;
        struct ghostrun_proc_event *out = &events[count];
        memset(out, 0, sizeof *out);
        switch (event->what) {
        case PROC_EVENT_FORK:
            out->parent_pid = event->event_data.fork.parent_pid;
            out->parent_tgid = event->event_data.fork.parent_tgid;
            out->child_pid = event->event_data.fork.child_pid;
            out->child_tgid = event->event_data.fork.child_tgid;
            break;
        case PROC_EVENT_EXEC:
            out->child_pid = event->event_data.exec.process_pid;
            out->child_tgid = event->event_data.exec.process_tgid;
            break;
        case PROC_EVENT_EXIT:
            out->child_pid = event->event_data.exit.process_pid;
            out->child_tgid = event->event_data.exit.process_tgid;
            break;
        default:
            continue;
        }
        out->what = event->what;
        count++;
    }
    return count;
}
