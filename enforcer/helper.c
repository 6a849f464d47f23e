/* SPDX-License-Identifier: Apache-2.0 */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "helper.h"
#include "util.h"

void helper_done(Helper *h) {
        if (h->pid > 0) {
                (void) kill(h->pid, SIGKILL);
                while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        h->socket = safe_close(h->socket);
        h->pid = 0;
}

static HelperAnswerHook answer_hook;

void helper_answer_hook(HelperAnswerHook hook) {
        answer_hook = hook;
}

int helper_start(HelperFn fn, const void *userdata, Helper *ret) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return -errno;
        }
        if (pid == 0) {
                safe_close(pair[0]);
                answer_hook = NULL;
                fn(pair[1], userdata);
                _exit(EXIT_SUCCESS);
        }
        safe_close(pair[1]);
        *ret = (Helper) { .pid = pid, .socket = pair[0] };
        return 0;
}

void helper_send(int socket, int fd, int error, const char *reason) {
        helper_send_detail(socket, fd, error, 0, reason);
}

void helper_send_detail(int socket, int fd, int error, int detail, const char *reason) {
        if (answer_hook)
                detail |= answer_hook(error, detail, &fd);
        HelperReply reply = { .error = error, .detail = detail };
        snprintf(reply.reason, sizeof(reply.reason), "%s", reason);
        struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control = {};
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (fd >= 0) {
                msg.msg_control = control.buf;
                msg.msg_controllen = sizeof(control.buf);
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        /* If the caller gave up on us, there is nobody left to tell. */
        (void) sendmsg(socket, &msg, MSG_NOSIGNAL);
}

void helper_fail(int socket, int error, const char *format, ...) {
        char reason[sizeof(((HelperReply *) NULL)->reason)];
        va_list ap;
        va_start(ap, format);
        vsnprintf(reason, sizeof(reason), format, ap);
        va_end(ap);
        helper_send(socket, -EBADF, error, reason);
        _exit(EXIT_FAILURE);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int helper_wait(Helper *h, int timeout_ms, const char *what, int *ret_fd, char **reterr) {
        int64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                int64_t left = deadline - now_ms();
                struct pollfd p = { .fd = h->socket, .events = POLLIN };
                int r = left <= 0 ? 0 : poll(&p, 1, (int) left);
                if (r > 0)
                        break;
                if (r == 0)
                        return error_set(reterr, -ETIMEDOUT, "%s: no answer within %d ms", what, timeout_ms);
                if (errno != EINTR)
                        return error_set(reterr, -errno, "%s: cannot wait for the helper: %m", what);
        }
        HelperReply reply;
        _cleanup_close_ int fd = -EBADF;
        int r = helper_read(h, &reply, &fd);
        if (r == -ECHILD)
                return error_set(reterr, r, "%s: the helper died without an answer", what);
        if (r == -EBADMSG)
                return error_set(reterr, r, "%s: garbled answer from the helper", what);
        if (r < 0)
                return error_set(reterr, r, "%s: cannot read the helper's answer: %s", what, strerror(-r));
        if (reply.error < 0)
                return error_set(reterr, reply.error, "%s", reply.reason);
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}

int helper_read(Helper *h, HelperReply *ret_reply, int *ret_fd) {
        HelperReply reply;
        struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(h->socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        _cleanup_close_ int fd = -EBADF;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(c), sizeof(int));
        if (n == 0)
                return -ECHILD;
        if ((size_t) n != sizeof(reply) || reply.error > 0 || reply.error < -4095 ||
            (msg.msg_flags & MSG_CTRUNC))
                return -EBADMSG;
        reply.reason[sizeof(reply.reason) - 1] = '\0';
        *ret_reply = reply;
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}
