// Seccomp user notification: the ioctl and struct details the supervisor needs, and the fd hand-over.
#include "CGhostrun.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

_Static_assert(sizeof(struct seccomp_data) == 64, "seccomp_data layout");

int ghostrun_notify_sizes(int *notif_size, int *resp_size) {
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) return -errno;
    // The kernel may be newer than these headers: use the larger of the two sizes.
    *notif_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : (int)sizeof(struct seccomp_notif);
    *resp_size = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) ? sizes.seccomp_notif_resp
                                                                               : (int)sizeof(struct seccomp_notif_resp);
    return 0;
}

int ghostrun_notify_receive(int listener, void *buffer, int buffer_size, ghostrun_notification *out) {
    memset(buffer, 0, (size_t)buffer_size);  // the kernel insists on a zeroed struct
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buffer) != 0) return -errno;
    const struct seccomp_notif *notif = buffer;
    out->id = notif->id;
    out->pid = (int32_t)notif->pid;
    out->nr = notif->data.nr;
    for (int i = 0; i < 6; i++) out->args[i] = notif->data.args[i];
    return 0;
}

int ghostrun_notify_respond(int listener, void *buffer, int buffer_size, uint64_t id, int32_t error, int allow) {
    memset(buffer, 0, (size_t)buffer_size);
    struct seccomp_notif_resp *resp = buffer;
    resp->id = id;
    if (allow) {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
        resp->error = -error;
        resp->val = 0;
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) != 0) return -errno;
    return 0;
}

int ghostrun_notify_id_valid(int listener, uint64_t id) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int ghostrun_notify_wait(int listener, int timeout_ms) {
    struct pollfd pfd = {.fd = listener, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    if (n == 0) return 0;
    if (pfd.revents & POLLIN) return 1;
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) return -EPIPE;  // no process uses the filter any more
    return 0;
}

long ghostrun_read_remote_string(int pid, uint64_t address, char *buffer, int size) {
    if (size <= 1 || address == 0) return -EFAULT;
    // Read page by page: a path may end just before an unmapped page.
    long total = 0;
    while (total < size - 1) {
        uint64_t at = address + (uint64_t)total;
        size_t to_page_end = 4096 - (size_t)(at % 4096);
        size_t want = (size_t)(size - 1 - total) < to_page_end ? (size_t)(size - 1 - total) : to_page_end;
        struct iovec local = {.iov_base = buffer + total, .iov_len = want};
        struct iovec remote = {.iov_base = (void *)(uintptr_t)at, .iov_len = want};
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) {
            if (total > 0) break;
            return -errno;
        }
        void *nul = memchr(buffer + total, 0, (size_t)n);
        total += n;
        if (nul != NULL) return (char *)nul - buffer;
    }
    buffer[total] = '\0';
    return total;
}

int ghostrun_receive_fd(int socket_fd, int timeout_ms) {
    struct pollfd pfd = {.fd = socket_fd, .events = POLLIN};
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready <= 0) return ready == 0 ? -ETIMEDOUT : -errno;
    char data;
    struct iovec iov = {.iov_base = &data, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) return n == 0 ? -EPIPE : -errno;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS) return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    return fd;
}

int ghostrun_socketpair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }

// Linux 6.6 added synchronous wake-ups: the notifying task and the supervisor hand the CPU to each other instead
// of going through the scheduler, which is most of a notification's cost. Older headers lack the names.
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

int ghostrun_notify_sync_wakeup(int listener) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0 ? 0 : -errno;
}
