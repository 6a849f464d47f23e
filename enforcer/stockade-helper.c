/* SPDX-License-Identifier: Apache-2.0 */
/* stockade-helper AGENT_PID: the broker's helper parent. The agent starts it once, with a
 * SOCK_SEQPACKET socket as fd 3, and sends it the vetted calls to perform (broker-actor.h);
 * it forks a helper per call, which performs it as the caller (broker_actor_run()) and
 * answers the agent directly, or where the agent asks a kept helper, to which the agent then
 * sends calls of that caller's kind itself (broker-actor.h). Libc only and small, so that a fork costs little: the agent
 * itself maps libcurl, OpenSSL and the rest. When the agent's end closes (the agent
 * stopped, or was killed), it starts what is still queued on its socket and exits; each
 * helper finishes its call and answers it on the container's notify fd itself, so that no
 * call is left unanswered by a killed agent. */
#include <fcntl.h>
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
#include "mount-util.h"
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

/* Receives one message with its fds: its size, 0 at the end, or -errno. */
static ssize_t message_receive(int fd, BrokerMessage *m, int *fds, size_t *ret_n_fds) {
        struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
        union {
                char buf[CMSG_SPACE(BROKER_MESSAGE_FDS_MAX * sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof(control.buf) };
        ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
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

/* Points j's job at the fds that came with it (the socket, the rules, then those fd_mask
 * names); false if they are not all there. */
static bool job_map(Job *j) {
        size_t want = 2, next = 2;
        for (size_t i = 0; i < _BROKER_FD_MAX; i++)
                want += !!(j->m.fd_mask & (1u << i));
        if (j->n_fds != want)
                return false;
        for (size_t i = 0; i < _BROKER_FD_MAX; i++)
                j->m.job.fds[i] = j->m.fd_mask & (1u << i) ? j->fds[next++] : -EBADF;
        return true;
}

/* Whether q is checked against the mounts the container started with. */
static bool needs_initial(const BrokerJob *q) {
        BrokerMountOp op = broker_mount_op(q->flags);
        return (q->syscall == BROKER_SYSCALL_MOUNT &&
                (op == BROKER_MOUNT_REMOUNT || op == BROKER_MOUNT_REMOUNT_BIND || op == BROKER_MOUNT_MOVE)) ||
               q->syscall == BROKER_SYSCALL_PIVOT_ROOT;
}

/* The container's rules, from j's memfd; on failure the helper answers and exits. */
static void rules_read(const Job *j, bool with_initial, BrokerRules *ret, char **ret_blob, MountTable *ret_initial) {
        int r = broker_rules_decode(j->fds[1], with_initial, ret, ret_blob, ret_initial);
        if (r < 0)
                helper_fail(j->fds[0], r, "cannot read the container's rules: %s", strerror(-r));
        ret->initial = ret_initial;
}

/* In a helper forked for one job. */
_noreturn_ static void helper_run(const Job *j) {
        BrokerRules rules;
        MountTable initial = {};
        char *blob = NULL;
        rules_read(j, needs_initial(&j->m.job), &rules, &blob, &initial);
        broker_actor_run(j->fds[0], &j->m.job, &rules);
}

static void children_reap(void) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
                n_children--;
}

/* ---- kept helpers (broker_job_keepable()) ---- */

/* A kept helper ends when its first caller does, after KEPT_IDLE_MS without a job, or when
 * the agent closes its end of the channel. */
#define KEPT_IDLE_MS 2000

/* In a kept helper: performs j (its fds mapped) with its container's rules and closes them.
 * For the first job (ret_caller not NULL) it enters the caller's first and returns a pidfd
 * of it. */
static void kept_serve(int channel, int offer, Job *j, const BrokerRules *rules, int *ret_caller) {
        if (ret_caller) {
                j->fds[1] = safe_close(j->fds[1]); /* before its number is given out again */
                broker_actor_keep(j->fds[0], &j->m.job, channel, offer);
                *ret_caller = fcntl(j->m.job.fds[BROKER_FD_PIDFD], F_DUPFD_CLOEXEC, 3);
        }
        broker_actor_serve(j->fds[0], &j->m.job, rules);
        job_close(j);
}

/* A kept helper's life, from its first job on, with its end of the channel and the agent's
 * (offer), which its first answer hands over. At its end it stops taking jobs (the agent
 * then sends them to the parent) and performs those already sent. */
_noreturn_ static void kept_run(Job *first, int channel, int offer) {
        _cleanup_close_ int caller = -EBADF;
        /* Its jobs are all of one container (the agent keeps it for that one): the rules,
         * which do not change, are read once. */
        BrokerRules rules;
        MountTable initial = {};
        char *blob = NULL;
        rules_read(first, true, &rules, &blob, &initial);
        kept_serve(channel, offer, first, &rules, &caller);
        safe_close(offer);
        Job j = {};
        for (;;) {
                struct pollfd p[2] = { { .fd = channel, .events = POLLIN }, { .fd = caller, .events = POLLIN } };
                int n = poll(p, 2, KEPT_IDLE_MS);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || p[1].revents || (p[0].revents & ~POLLIN))
                        break;
                ssize_t k = message_receive(channel, &j.m, j.fds, &j.n_fds);
                if (k == 0)
                        break;
                if (k == sizeof(j.m) && job_map(&j))
                        kept_serve(channel, -EBADF, &j, &rules, NULL);
                else if (k > 0 || k == -EBADMSG)
                        job_close(&j);
        }
        (void) shutdown(channel, SHUT_RD);
        while (message_receive(channel, &j.m, j.fds, &j.n_fds) == sizeof(j.m)) {
                if (job_map(&j))
                        kept_serve(channel, -EBADF, &j, &rules, NULL);
                else
                        job_close(&j);
        }
        _exit(EXIT_SUCCESS);
}

/* Starts job j in a helper forked for it, a kept one where the agent asks; tells the agent
 * the helper's pidfd. */
static void job_start(Job *j) {
        if (!job_map(j))
                return; /* the agent sees the socket closed: no answer */
        int socket = j->fds[0], pair[2] = { -EBADF, -EBADF };
        bool keep = j->m.keep && broker_job_keepable(&j->m.job) &&
                    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0;
        pid_t pid = n_children < CHILDREN_MAX ? fork() : (errno = EAGAIN, -1);
        if (pid == 0) {
                if (keep)
                        kept_run(j, pair[1], pair[0]);
                helper_run(j);
        }
        int error = errno;
        safe_close(pair[0]);
        safe_close(pair[1]);
        if (pid < 0) {
                helper_send(socket, -EBADF, error == ENOMEM ? -ENOMEM : -EAGAIN, "cannot start a helper");
                return;
        }
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
        /* Each job is allocated while it waits: a fork copies what the parent has touched. */
        static Job *queue[QUEUE_MAX];
        size_t head = 0, queued = 0;
        bool eof = false;
        for (;;) {
                struct pollfd p[2] = { { .fd = eof || queued == ELEMENTSOF(queue) ? -1 : BROKER_HELPER_FD, .events = POLLIN },
                                       { .fd = sfd, .events = POLLIN } };
                if (poll(p, ELEMENTSOF(p), queued > 0 && n_children < CHILDREN_MAX ? 0 : -1) < 0 && errno != EINTR)
                        return EXIT_FAILURE;
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) > 0)
                                ;
                        children_reap();
                }
                while (p[0].revents && !eof && queued < ELEMENTSOF(queue)) {
                        _cleanup_free_ Job *j = malloc(sizeof(Job));
                        if (!j)
                                break; /* left on the socket until there is memory */
                        j->n_fds = 0;
                        ssize_t n = message_receive(BROKER_HELPER_FD, &j->m, j->fds, &j->n_fds);
                        if (n == -EAGAIN)
                                break;
                        if (n == 0 || (n < 0 && n != -EINTR && n != -EBADMSG))
                                eof = true; /* the agent is gone: what is queued still runs */
                        else if (n == sizeof(j->m))
                                queue[(head + queued++) % ELEMENTSOF(queue)] = TAKE_PTR(j);
                        else
                                job_close(j);
                }
                if (queued > 0 && n_children < CHILDREN_MAX) {
                        job_start(queue[head]);
                        job_close(queue[head]);
                        free(queue[head]);
                        head = (head + 1) % ELEMENTSOF(queue);
                        queued--;
                }
                if (eof && queued == 0)
                        return EXIT_SUCCESS;
        }
}
