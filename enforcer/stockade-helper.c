/* SPDX-License-Identifier: Apache-2.0 */
/* stockade-helper AGENT_PID: the broker's helper parent. The agent starts it once, with a
 * SOCK_SEQPACKET socket as fd 3, and sends it the vetted calls to perform (broker-actor.h);
 * it forks a helper per call, which performs it as the caller (broker_actor_run()) and
 * answers the agent directly. Libc only and small, so that a fork costs little: the agent
 * itself maps libcurl, OpenSSL and the rest. When the agent's end closes (the agent
 * stopped, or was killed), it starts what is still queued on its socket and exits; each
 * helper finishes its call and answers it on the container's notify fd itself, so that no
 * call is left unanswered by a killed agent. */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker-actor.h"
#include "helper.h"
#include "util.h"

/* At most this many helpers at once: the agent's limits are lower. */
#define CHILDREN_MAX 1024
/* Calls received and not started yet. */
#define QUEUE_MAX 256

static size_t n_children;

/* A message received, with its fds (the socket, the rules, then the job's). */
typedef struct Job {
        BrokerMessage m;
        int fds[BROKER_MESSAGE_FDS_MAX];
        size_t n_fds;
} Job;

static void job_close(Job *j) {
        for (size_t i = 0; i < j->n_fds; i++)
                safe_close(j->fds[i]);
        j->n_fds = 0;
}

static void children_reap(void) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
                n_children--;
}

/* Receives one message with its fds: its size, 0 at the end, or -errno. */
static ssize_t message_receive(BrokerMessage *m, int *fds, size_t *ret_n_fds) {
        struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
        union {
                char buf[CMSG_SPACE(BROKER_MESSAGE_FDS_MAX * sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof(control.buf) };
        ssize_t n = recvmsg(BROKER_HELPER_FD, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        *ret_n_fds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        memcpy(fds + *ret_n_fds, CMSG_DATA(c), k * sizeof(int));
                        *ret_n_fds += k;
                }
        if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                return -EBADMSG;
        return n;
}

/* In the helper: the container's rules, then the job. */
_noreturn_ static void helper_run(const BrokerMessage *m, int socket, int rules_fd) {
        BrokerRules rules;
        MountTable initial = {};
        char *blob = NULL;
        BrokerMountOp op = broker_mount_op(m->job.flags);
        bool with_initial = (m->job.syscall == BROKER_SYSCALL_MOUNT &&
                             (op == BROKER_MOUNT_REMOUNT || op == BROKER_MOUNT_REMOUNT_BIND || op == BROKER_MOUNT_MOVE)) ||
                            m->job.syscall == BROKER_SYSCALL_PIVOT_ROOT;
        int r = broker_rules_decode(rules_fd, with_initial, &rules, &blob, &initial);
        if (r < 0)
                helper_fail(socket, r, "cannot read the container's rules: %s", strerror(-r));
        rules.initial = &initial;
        broker_actor_run(socket, &m->job, &rules);
}

/* Forks the helper for job j and tells the agent its pidfd. */
static void job_start(Job *j) {
        BrokerMessage *m = &j->m;
        const int *fds = j->fds;
        size_t n_fds = j->n_fds, want = 2;
        for (size_t i = 0; i < _BROKER_FD_MAX; i++)
                want += !!(m->fd_mask & (1u << i));
        if (n_fds != want)
                return; /* the agent sees the socket closed: no answer */
        int socket = fds[0];
        size_t next = 2;
        for (size_t i = 0; i < _BROKER_FD_MAX; i++)
                m->job.fds[i] = m->fd_mask & (1u << i) ? fds[next++] : -EBADF;
        pid_t pid = n_children < CHILDREN_MAX ? fork() : (errno = EAGAIN, -1);
        if (pid < 0) {
                helper_send(socket, -EBADF, errno == ENOMEM ? -ENOMEM : -EAGAIN, "cannot start a helper");
                return;
        }
        if (pid == 0)
                helper_run(m, socket, fds[1]);
        n_children++;
        _cleanup_close_ int pidfd = pidfd_open(pid, 0);
        helper_send_detail(socket, pidfd, 0, BROKER_DETAIL_STARTED, "");
}

int main(int argc, char **argv) {
        pid_t agent = argc == 2 ? (pid_t) atoi(argv[1]) : 0;
        if (agent <= 0) {
                fprintf(stderr, "stockade: usage: stockade-helper AGENT_PID (started by stockaded)\n");
                return EXIT_FAILURE;
        }
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        /* Its socket is the agent's (socketpair() records who made it), even if the agent
         * was killed since: what it sent is still ours to start. */
        struct ucred peer;
        socklen_t size = sizeof(peer);
        if (getsockopt(BROKER_HELPER_FD, SOL_SOCKET, SO_PEERCRED, &peer, &size) < 0 || peer.pid != agent)
                return EXIT_FAILURE;
        (void) close_range(BROKER_HELPER_FD + 1, ~0U, 0);

        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        (void) sigprocmask(SIG_BLOCK, &chld, NULL);
        int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                fprintf(stderr, "stockade: stockade-helper: cannot watch its helpers: %m\n");
                return EXIT_FAILURE;
        }
        /* Messages are taken off the socket at once, so that the agent's sends seldom find
         * it full (it then keeps the call itself) and what it sent is ours, also if it is
         * killed. Their fds: up to 2 + _BROKER_FD_MAX each. */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &nofile);
        }
        static Job queue[QUEUE_MAX];
        size_t head = 0, queued = 0;
        bool eof = false;
        for (;;) {
                struct pollfd p[2] = { { .fd = eof || queued == ELEMENTSOF(queue) ? -1 : BROKER_HELPER_FD, .events = POLLIN },
                                       { .fd = sfd, .events = POLLIN } };
                if (poll(p, 2, queued > 0 && n_children < CHILDREN_MAX ? 0 : -1) < 0 && errno != EINTR)
                        return EXIT_FAILURE;
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) > 0)
                                ;
                        children_reap();
                }
                while (p[0].revents && !eof && queued < ELEMENTSOF(queue)) {
                        Job *j = &queue[(head + queued) % ELEMENTSOF(queue)];
                        ssize_t n = message_receive(&j->m, j->fds, &j->n_fds);
                        if (n == -EAGAIN)
                                break;
                        if (n == 0 || (n < 0 && n != -EINTR && n != -EBADMSG))
                                eof = true; /* the agent is gone: what is queued still runs */
                        else if (n == sizeof(j->m))
                                queued++;
                        else
                                job_close(j);
                }
                if (queued > 0 && n_children < CHILDREN_MAX) {
                        job_start(&queue[head]);
                        job_close(&queue[head]);
                        head = (head + 1) % ELEMENTSOF(queue);
                        queued--;
                }
                if (eof && queued == 0)
                        return EXIT_SUCCESS;
        }
}
