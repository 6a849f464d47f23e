/* SPDX-License-Identifier: Apache-2.0 */
/* stockade-helper AGENT_PID: the broker's helper parent. The agent starts it once, with a
 * SOCK_SEQPACKET socket as fd 3, and sends it the vetted calls to perform (broker-actor.h);
 * it forks a helper per call, which performs it as the caller (broker_actor_run()) and
 * answers the agent directly. Libc only and small, so that a fork costs little: the agent
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
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

/* Sends m with its fds, as the agent sent it. */
static int message_send(int fd, const BrokerMessage *m, const int *fds, size_t n_fds) {
        struct iovec iov = { .iov_base = (void *) m, .iov_len = sizeof(*m) };
        union {
                char buf[CMSG_SPACE(BROKER_MESSAGE_FDS_MAX * sizeof(int))];
                struct cmsghdr align;
        } control = {};
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = CMSG_SPACE(n_fds * sizeof(int)) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        *c = (struct cmsghdr) { .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS, .cmsg_len = CMSG_LEN(n_fds * sizeof(int)) };
        memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
        return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t) sizeof(*m) ? 0 : -errno;
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

/* The container's rules, from j's memfd; on failure the helper answers and exits. */
static void rules_read(const Job *j, BrokerRules *ret, char **ret_blob, MountTable *ret_initial) {
        const BrokerJob *q = &j->m.job;
        BrokerMountOp op = broker_mount_op(q->flags);
        bool with_initial = (q->syscall == BROKER_SYSCALL_MOUNT &&
                             (op == BROKER_MOUNT_REMOUNT || op == BROKER_MOUNT_REMOUNT_BIND || op == BROKER_MOUNT_MOVE)) ||
                            q->syscall == BROKER_SYSCALL_PIVOT_ROOT;
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
        rules_read(j, &rules, &blob, &initial);
        broker_actor_run(j->fds[0], &j->m.job, &rules);
}

/* ---- kept helpers (broker_job_keepable()) ---- */

/* At most this many at once; each ends when its first caller does, after KEPT_IDLE_MS
 * without a call, or with the agent's end of our socket. */
#define KEPT_MAX 32
#define KEPT_IDLE_MS 2000

/* What a kept helper's callers share: their namespaces, root and credentials. */
typedef struct KeptKey {
        uint64_t ns[6];
        dev_t root_dev;
        ino_t root_ino;
        uint64_t root_mnt;
        BrokerCredentials creds;
} KeptKey;

typedef struct Kept {
        KeptKey key;
        pid_t pid; /* 0: a free slot */
        int channel; /* jobs to it; a byte back after each */
        bool busy;
} Kept;

static Kept kept[KEPT_MAX];

/* The key of q's caller; false if it cannot be read or the caller is gone (its pid then
 * named another). */
static bool job_key(const BrokerJob *q, KeptKey *ret) {
        static const char *const names[] = { "user", "mnt", "net", "ipc", "uts", "cgroup" };
        _Static_assert(ELEMENTSOF(names) == ELEMENTSOF(ret->ns), "one inode per namespace");
        memset(ret, 0, sizeof(*ret));
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) q->pid, names[i]);
                if (ns_inode(AT_FDCWD, path, &ret->ns[i]) < 0)
                        return false;
        }
        struct statx stx;
        if (statx(q->fds[BROKER_FD_ROOT], "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &stx) < 0 ||
            !(stx.stx_mask & STATX_MNT_ID))
                return false;
        ret->root_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
        ret->root_ino = stx.stx_ino;
        ret->root_mnt = stx.stx_mnt_id;
        const BrokerCredentials *cr = &q->creds;
        if (cr->n_groups > BROKER_GROUPS_MAX)
                return false;
        memcpy(ret->creds.uid, cr->uid, sizeof(cr->uid));
        memcpy(ret->creds.gid, cr->gid, sizeof(cr->gid));
        memcpy(ret->creds.groups, cr->groups, cr->n_groups * sizeof(gid_t));
        ret->creds.n_groups = cr->n_groups;
        ret->creds.cap_inh = cr->cap_inh;
        ret->creds.cap_prm = cr->cap_prm;
        ret->creds.cap_eff = cr->cap_eff;
        return pidfd_send_signal(q->fds[BROKER_FD_PIDFD], 0, NULL, 0) == 0;
}

static void kept_drop(Kept *k) {
        safe_close(k->channel);
        *k = (Kept) { .channel = -EBADF };
}

static void children_reap(void) {
        pid_t pid;
        while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
                n_children--;
                for (size_t i = 0; i < KEPT_MAX; i++)
                        if (kept[i].pid == pid)
                                kept_drop(&kept[i]);
        }
}

/* Reads what kept helper k said: done with its job, or gone. */
static void kept_heard(Kept *k, short revents) {
        char c;
        ssize_t n = recv(k->channel, &c, 1, MSG_DONTWAIT);
        if (n == 1)
                k->busy = false;
        else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (revents & (POLLHUP | POLLERR)))
                kept_drop(k);
}

/* In a kept helper: performs j (its fds mapped) and closes them; broker_actor_serve() says
 * when it is done. For the first job (ret_caller not NULL) it enters the caller's first and
 * returns a pidfd of it. */
static void kept_serve(int channel, Job *j, int *ret_caller) {
        BrokerRules rules;
        MountTable initial = {};
        _cleanup_free_ char *blob = NULL;
        rules_read(j, &rules, &blob, &initial);
        if (ret_caller) {
                j->fds[1] = safe_close(j->fds[1]); /* before its number is given out again */
                broker_actor_keep(j->fds[0], &j->m.job, channel);
                *ret_caller = fcntl(j->m.job.fds[BROKER_FD_PIDFD], F_DUPFD_CLOEXEC, 3);
        }
        broker_actor_serve(j->fds[0], &j->m.job, &rules);
        mount_table_done(&initial);
        job_close(j);
}

/* A kept helper's life, from its first job on. At its end it stops taking jobs (the parent
 * then forks for them) and performs those already sent. */
_noreturn_ static void kept_run(Job *first, int channel) {
        _cleanup_close_ int caller = -EBADF;
        kept_serve(channel, first, &caller);
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
                        kept_serve(channel, &j, NULL);
                else if (k > 0 || k == -EBADMSG)
                        job_close(&j);
        }
        (void) shutdown(channel, SHUT_RD);
        while (message_receive(channel, &j.m, j.fds, &j.n_fds) == sizeof(j.m)) {
                if (job_map(&j))
                        kept_serve(channel, &j, NULL);
                else
                        job_close(&j);
        }
        _exit(EXIT_SUCCESS);
}

/* The caller's mount table, read here into a memfd that takes the place of j's: a kept
 * helper is in the caller's cgroup namespace when it reads it, and cgroup roots are to show
 * as in the agent's (broker_actor_run() reads it before it joins the caller's). */
static int mountinfo_snapshot(Job *j) {
        int *fd = &j->m.job.fds[BROKER_FD_MOUNTINFO];
        if (*fd < 0)
                return 0;
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r = read_full_fd(*fd, MOUNTINFO_MAX, &text, &size);
        _cleanup_close_ int memfd = r < 0 ? r : RET_NERRNO(memfd_create("mountinfo", MFD_CLOEXEC));
        if (memfd < 0)
                return memfd;
        if ((r = write_all(memfd, text, size)) < 0)
                return r;
        for (size_t i = 0; i < j->n_fds; i++)
                if (j->fds[i] == *fd) {
                        safe_close(j->fds[i]);
                        j->fds[i] = *fd = TAKE_FD(memfd);
                        return 0;
                }
        return -EBADF;
}

/* Whether the calling thread pid made one of the last RECENT_MAX calls forked for; notes it
 * if not. A kept helper is started for a caller's second call: one for a process that makes
 * a single call (a mount(8) in a shell loop) would end with it. */
#define RECENT_MAX 64
static bool calls_again(pid_t pid) {
        static pid_t recent[RECENT_MAX];
        static size_t next;
        for (size_t i = 0; i < RECENT_MAX; i++)
                if (recent[i] == pid)
                        return true;
        recent[next++ % RECENT_MAX] = pid;
        return false;
}

/* Hands j to the kept helper of its caller's key, starting one if there is none and a
 * slot is free; the pid of the helper it went to, 0 if it went to none. */
static pid_t kept_start(Job *j) {
        KeptKey key;
        if (!broker_job_keepable(&j->m.job) || !job_key(&j->m.job, &key))
                return 0;
        Kept *k = NULL, *free_slot = NULL;
        for (size_t i = 0; i < KEPT_MAX && !k; i++)
                if (kept[i].pid == 0)
                        free_slot = free_slot ?: &kept[i];
                else if (memcmp(&kept[i].key, &key, sizeof(key)) == 0)
                        k = &kept[i];
        /* A kept helper takes one job at a time; a new one is for a caller's second call. */
        if (k ? k->busy : (!calls_again(j->m.job.pid) || !free_slot || n_children >= CHILDREN_MAX))
                return 0;
        if (mountinfo_snapshot(j) < 0)
                return 0;
        if (k) {
                if (message_send(k->channel, &j->m, j->fds, j->n_fds) < 0) {
                        kept_drop(k); /* it is ending */
                        return 0;
                }
                k->busy = true;
                return k->pid;
        }
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return 0;
        pid_t pid = fork();
        if (pid < 0) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return 0;
        }
        if (pid == 0)
                kept_run(j, pair[1]);
        safe_close(pair[1]);
        n_children++;
        *free_slot = (Kept) { .key = key, .pid = pid, .channel = pair[0], .busy = true };
        return pid;
}

/* Starts job j: with a kept helper where it may, else in a helper forked for it; tells the
 * agent the helper's pidfd. */
static void job_start(Job *j) {
        if (!job_map(j))
                return; /* the agent sees the socket closed: no answer */
        int socket = j->fds[0];
        pid_t pid = kept_start(j);
        if (pid == 0) {
                pid = n_children < CHILDREN_MAX ? fork() : (errno = EAGAIN, -1);
                if (pid < 0) {
                        helper_send(socket, -EBADF, errno == ENOMEM ? -ENOMEM : -EAGAIN, "cannot start a helper");
                        return;
                }
                if (pid == 0)
                        helper_run(j);
                n_children++;
        }
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
                struct pollfd p[2 + KEPT_MAX] = { { .fd = eof || queued == ELEMENTSOF(queue) ? -1 : BROKER_HELPER_FD, .events = POLLIN },
                                                  { .fd = sfd, .events = POLLIN } };
                for (size_t i = 0; i < KEPT_MAX; i++)
                        p[2 + i] = (struct pollfd) { .fd = kept[i].pid ? kept[i].channel : -1, .events = POLLIN };
                if (poll(p, ELEMENTSOF(p), queued > 0 && n_children < CHILDREN_MAX ? 0 : -1) < 0 && errno != EINTR)
                        return EXIT_FAILURE;
                for (size_t i = 0; i < KEPT_MAX; i++)
                        if (p[2 + i].revents && kept[i].pid)
                                kept_heard(&kept[i], p[2 + i].revents);
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
