/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/param.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "broker-actor.h"
#include "broker.h"
#include "helper.h"
#include "mount-util.h"
#include "procfs.h"
#include "spec.h"
#include "uidrange.h"
#include "util.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

#define SYSCALLS_MAX (2 * _BROKER_SYSCALL_MAX)
#define INITIAL_MOUNTINFO_MAX (2u << 20)
/* Room for the kernel's notification and response structures, which may grow. */
#define NOTIF_SIZE_MAX 256

typedef struct SyscallNumber {
        uint32_t arch;
        int nr;
        BrokerSyscall kind;
} SyscallNumber;

typedef union NotifBuffer {
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        char bytes[NOTIF_SIZE_MAX];
} NotifBuffer;

/* A slot of the journal (broker_journal_fd()) is free, holds a call of ours, or holds a
 * call kept from before a restart that no container has taken yet. */
typedef enum SlotState {
        SLOT_FREE,
        SLOT_USED,
        SLOT_KEPT,
} SlotState;

/* At most this many kept helpers (broker-actor.h) per container and in all. */
#define KEPT_PER_CONTAINER 4
#define KEPT_MAX 32
/* A kept helper is asked for on a caller's second call among the last RECENT_MAX: one
 * for a process that makes a single call (a mount(8) in a shell loop) would end with it. */
#define RECENT_MAX 64

/* What a kept helper's callers share: their namespaces, root and credentials. */
typedef struct KeptKey {
        uint64_t ns[6];
        dev_t root_dev;
        ino_t root_ino;
        uint64_t root_mnt;
        BrokerCredentials creds;
} KeptKey;

/* A recent caller's /proc directory and status, kept open so that its next call reads them
 * without walking a path from /proc. They name the thread, not its number: once it has
 * ended, reads through them fail, and a new thread with its pid gets a new entry. */
#define CALLERS_MAX 16

typedef struct Caller {
        pid_t pid;     /* 0: a free entry */
        int dir_fd;    /* /proc/PID (O_PATH) */
        int status_fd; /* /proc/PID/status, read again from offset 0 */
} Caller;

static void caller_forget(Caller *who) {
        safe_close(who->dir_fd);
        safe_close(who->status_fd);
        *who = (Caller) { .dir_fd = -EBADF, .status_fd = -EBADF };
}

typedef struct Kept {
        KeptKey key;
        int channel; /* the jobs' way to it; -EBADF: a free slot */
        int pidfd;
        BrokerPending *job; /* the job of ours it has, or NULL */
} Kept;

/* Where a job goes (kept_route()), and whose it is. */
typedef struct Route {
        Caller *who;
        Kept *kept;   /* the caller's kept helper, free for it, or NULL */
        KeptKey *key; /* the key of the kept helper asked of the helper parent, or NULL */
} Route;

static void route_done(Route *r) {
        free(r->key);
}

struct Broker {
        BrokerLimits limits;
        unsigned helpers, queued, kept;
        pid_t recent[RECENT_MAX]; /* callers of the last calls sent to the helper parent */
        size_t next_recent;
        Caller callers[CALLERS_MAX];
        size_t next_caller;
        char *helper_path;  /* stockade-helper */
        pid_t helper_pid;   /* the helper parent, started on the first call that needs it */
        int helper_socket;
        int emulation_fd;   /* the /proc emulation's mount (O_PATH), or -EBADF */
        int journal_fd;
        NotifBuffer *journal; /* BROKER_JOURNAL_SLOTS, mapped shared from journal_fd */
        uint8_t slots[BROKER_JOURNAL_SLOTS]; /* SlotState */
        size_t next_slot;     /* where the search for a free one starts */
};

/* A call waiting for a helper. */
typedef struct Queued {
        struct Queued *next;
        int notify_fd; /* our own duplicate */
        NotifBuffer *slot;
} Queued;

struct BrokerContainer {
        Broker *broker;
        char *id;
        pid_t init_pid;
        uint32_t base;
        char emulation_dir[BROKER_EMULATION_DIR_MAX]; /* its directory in the /proc emulation */
        int pidfd;
        int rules_fd; /* broker_rules_encode() */
        int userns_fd; /* its init's user namespace, pinned: no other takes its inode */
        uint64_t userns; /* its inode, 0 if it could not be pinned */
        char *uid_map, *gid_map; /* that namespace's, once read (written once, by the runtime) */
        SyscallNumber syscalls[SYSCALLS_MAX];
        size_t n_syscalls;
        unsigned helpers, queued;
        Queued *queue_first, *queue_last;
        Kept kept[KEPT_PER_CONTAINER];
};

struct BrokerPending {
        Helper helper;
        int helper_pidfd; /* once the helper parent said it started it */
        bool answered;    /* the helper answered (or was killed): it is gone or about to be */
        BrokerContainer *c;
        int notify_fd; /* our own duplicate */
        uint64_t id;
        pid_t pid;
        BrokerSyscall kind;
        Kept *kept;   /* the kept helper it was sent to, or NULL */
        KeptKey *key; /* where the helper parent was asked for a kept helper: its key */
};

/* ---- kept helpers (broker-actor.h) ---- */

/* The key of q's caller, read through its /proc directory; false if it cannot be read (also
 * where the caller has ended: the directory is its thread's, whatever has its pid now). */
static bool kept_key(const Caller *who, uint64_t userns, const BrokerJob *q, KeptKey *ret) {
        static const char *const names[] = { "ns/mnt", "ns/net", "ns/ipc", "ns/uts", "ns/cgroup" };
        _Static_assert(ELEMENTSOF(names) + 1 == ELEMENTSOF(ret->ns), "one inode per namespace");
        memset(ret, 0, sizeof(*ret));
        ret->ns[0] = userns;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (ns_inode(who->dir_fd, names[i], &ret->ns[i + 1]) < 0)
                        return false;
        struct statx stx;
        if (statx(who->dir_fd, "root", 0, STATX_INO | STATX_MNT_ID, &stx) < 0 ||
            !(stx.stx_mask & STATX_MNT_ID))
                return false;
        ret->root_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
        ret->root_ino = stx.stx_ino;
        ret->root_mnt = stx.stx_mnt_id;
        const BrokerCredentials *cr = &q->creds;
        memcpy(ret->creds.uid, cr->uid, sizeof(cr->uid));
        memcpy(ret->creds.gid, cr->gid, sizeof(cr->gid));
        memcpy(ret->creds.groups, cr->groups, cr->n_groups * sizeof(gid_t));
        ret->creds.n_groups = cr->n_groups;
        ret->creds.cap_inh = cr->cap_inh;
        ret->creds.cap_prm = cr->cap_prm;
        ret->creds.cap_eff = cr->cap_eff;
        return true;
}

/* Forgets k and ends its helper: closing our end would not end one that is stopped. */
static void kept_drop(BrokerContainer *c, Kept *k) {
        if (k->channel >= 0)
                c->broker->kept--;
        if (k->pidfd >= 0)
                (void) pidfd_send_signal(k->pidfd, SIGKILL, NULL, 0);
        safe_close(k->channel);
        safe_close(k->pidfd);
        *k = (Kept) { .channel = -EBADF, .pidfd = -EBADF };
}

/* Whether k's helper has ended (it closed its end). */
static bool kept_ended(const Kept *k) {
        struct pollfd p = { .fd = k->channel };
        return poll(&p, 1, 0) != 0;
}

/* Whether the calling thread pid made one of the last RECENT_MAX calls sent to the helper
 * parent; notes it if not. */
static bool calls_again(Broker *b, pid_t pid) {
        for (size_t i = 0; i < RECENT_MAX; i++)
                if (b->recent[i] == pid)
                        return true;
        b->recent[b->next_recent++ % RECENT_MAX] = pid;
        return false;
}

/* Whether k's job is done as far as the next call of its caller pid is concerned: the
 * helper answered the call (so pid could call again) with a success (after a failure it
 * ends), even if we have not read the answer yet. */
static bool kept_done(const Kept *k, pid_t pid) {
        HelperReply reply;
        return k->job->pid == pid && recv(k->job->helper.socket, &reply, sizeof(reply), MSG_PEEK | MSG_DONTWAIT) == sizeof(reply) &&
               reply.detail == BROKER_DETAIL_ANSWERED && reply.error == 0;
}

/* c's kept helper of key, or NULL. */
static Kept *kept_find(BrokerContainer *c, const KeptKey *key) {
        for (size_t i = 0; i < KEPT_PER_CONTAINER; i++)
                if (c->kept[i].channel >= 0 && memcmp(&c->kept[i].key, key, sizeof(*key)) == 0)
                        return &c->kept[i];
        return NULL;
}

/* A slot for a new kept helper in c, or NULL. */
static Kept *kept_slot(BrokerContainer *c) {
        Kept *free_slot = NULL;
        for (size_t i = 0; i < KEPT_PER_CONTAINER; i++) {
                Kept *k = &c->kept[i];
                if (k->channel >= 0 && !k->job && kept_ended(k))
                        kept_drop(c, k);
                if (k->channel < 0)
                        free_slot = free_slot ?: k;
        }
        return c->broker->kept < KEPT_MAX ? free_slot : NULL;
}

/* Where m goes: to c's kept helper of its caller's key where there is one and it is free
 * (ret->kept), else to the helper parent, asking it for a kept helper of that key (m->keep
 * and ret->key) for a caller's second call where there is room. A kept helper's mount table
 * (but an unmount's) is read here, in the agent's cgroup namespace. */
static void kept_route(BrokerContainer *c, const Caller *who, uint64_t userns, BrokerMessage *m, Route *ret) {
        ret->kept = NULL;
        ret->key = NULL;
        m->keep = false;
        BrokerJob *q = &m->job;
        KeptKey key;
        if (!broker_job_keepable(q) || !kept_key(who, userns, q, &key))
                return;
        Kept *k = kept_find(c, &key);
        /* A kept helper takes one job at a time: the parent forks for the others. */
        bool keep = !k && calls_again(c->broker, q->pid) && kept_slot(c);
        if (k ? k->job && !kept_done(k, q->pid) : !keep)
                return;
        int *fd = &q->fds[BROKER_FD_MOUNTINFO];
        if (*fd >= 0 && q->syscall != BROKER_SYSCALL_UMOUNT2) {
                _cleanup_free_ char *text = NULL;
                size_t size;
                int r = read_full_fd(*fd, MOUNTINFO_MAX, &text, &size);
                _cleanup_close_ int memfd = r < 0 ? r : RET_NERRNO(memfd_create("mountinfo", MFD_CLOEXEC));
                if (memfd < 0 || write_all(memfd, text, size) < 0) {
                        (void) lseek(*fd, 0, SEEK_SET); /* the helper reads it */
                        return;
                }
                safe_close(*fd);
                *fd = TAKE_FD(memfd);
        }
        if (k) {
                ret->kept = k;
                return;
        }
        ret->key = malloc(sizeof(key));
        if (ret->key) {
                *ret->key = key;
                m->keep = true;
        }
}

/* The first answer of the kept helper that p asked for came with its channel. */
static void kept_add(BrokerPending *p, int channel) {
        _cleanup_close_ int fd = channel;
        /* Unless one of its key came first. */
        Kept *k = p->key && p->c && p->helper_pidfd >= 0 && !kept_find(p->c, p->key) ? kept_slot(p->c) : NULL;
        if (!k) {
                if (p->helper_pidfd >= 0) /* not needed: it ends */
                        (void) pidfd_send_signal(p->helper_pidfd, SIGKILL, NULL, 0);
                return;
        }
        *k = (Kept) { .key = *p->key, .channel = TAKE_FD(fd), .pidfd = fcntl(p->helper_pidfd, F_DUPFD_CLOEXEC, 3) };
        p->c->broker->kept++;
        if (k->pidfd < 0)
                kept_drop(p->c, k);
}

/* ---- the container ---- */

static void syscalls_resolve(BrokerContainer *c) {
        uint32_t arches[2] = { seccomp_arch_native() };
        size_t n_arches = 1;
        /* 32-bit binaries in 64-bit containers: their pointers and flags fit the same code. */
        if (arches[0] == SCMP_ARCH_X86_64)
                arches[n_arches++] = SCMP_ARCH_X86;
        else if (arches[0] == SCMP_ARCH_AARCH64)
                arches[n_arches++] = SCMP_ARCH_ARM;
        for (size_t a = 0; a < n_arches; a++)
                for (BrokerSyscall s = BROKER_SYSCALL_UNKNOWN + 1; s < _BROKER_SYSCALL_MAX; s++) {
                        int nr = seccomp_syscall_resolve_name_arch(arches[a], broker_syscall_name(s));
                        if (nr < 0 || c->n_syscalls >= SYSCALLS_MAX)
                                continue; /* mknod does not exist on arm64 */
                        c->syscalls[c->n_syscalls++] = (SyscallNumber) { arches[a], nr, s };
                }
}

static BrokerSyscall syscall_classify(const BrokerContainer *c, uint32_t arch, int nr) {
        for (size_t i = 0; i < c->n_syscalls; i++)
                if (c->syscalls[i].arch == arch && c->syscalls[i].nr == nr)
                        return c->syscalls[i].kind;
        return BROKER_SYSCALL_UNKNOWN;
}

int broker_set_limits(Broker *b, const BrokerLimits *limits) {
        if (limits->helpers_per_container == 0 || limits->helpers == 0)
                return -EINVAL;
        b->limits = *limits;
        return 0;
}

/* stockade-helper next to our own executable (a build tree), else in libexec beside our bin. */
static char *helper_path_default(void) {
        char *path = exe_sibling("stockade-helper");
        if (!path)
                path = exe_sibling("../libexec/stockade/stockade-helper");
        return path ?: strdup(BROKER_HELPER_DEFAULT);
}

/* ---- the journal ----
 *
 * The kernel gives a notification once (SECCOMP_IOCTL_NOTIF_RECV): a call that an agent
 * received and had neither answered nor handed to the helper parent when it was killed
 * would wait for good. So the kernel writes each one straight into a slot of a memfd that
 * the fd store keeps, freed once the call is answered or handed over; the next agent finds
 * the calls still waiting there (SECCOMP_IOCTL_NOTIF_ID_VALID on the notify fds it adopts)
 * and handles them again. A slot in use has a caller (pid not 0). */

#define JOURNAL_SIZE (BROKER_JOURNAL_SLOTS * sizeof(NotifBuffer))

/* kept_fd: the journal of an agent before us, or -EBADF (a new one). */
static int journal_open(Broker *b, int kept_fd) {
        struct stat st;
        bool kept = kept_fd >= 0 && fstat(kept_fd, &st) >= 0 && S_ISREG(st.st_mode) && (size_t) st.st_size == JOURNAL_SIZE;
        _cleanup_close_ int fd = kept ? RET_NERRNO(fcntl(kept_fd, F_DUPFD_CLOEXEC, 3))
                                      : RET_NERRNO(memfd_create("stockade-calls", MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (fd < 0)
                return fd;
        if (!kept && (ftruncate(fd, JOURNAL_SIZE) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0))
                return -errno;
        void *p = mmap(NULL, JOURNAL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        b->journal = p;
        b->journal_fd = TAKE_FD(fd);
        for (size_t i = 0; kept && i < BROKER_JOURNAL_SLOTS; i++)
                if (b->journal[i].req.pid != 0)
                        b->slots[i] = SLOT_KEPT;
        return 0;
}

/* A free slot, zeroed for SECCOMP_IOCTL_NOTIF_RECV; NULL if there is none. */
static NotifBuffer *slot_take(Broker *b) {
        for (size_t n = 0; n < BROKER_JOURNAL_SLOTS; n++) {
                size_t i = (b->next_slot + n) % BROKER_JOURNAL_SLOTS;
                if (b->slots[i] == SLOT_FREE) {
                        b->next_slot = i + 1;
                        b->slots[i] = SLOT_USED;
                        memset(&b->journal[i], 0, sizeof(NotifBuffer));
                        return &b->journal[i];
                }
        }
        return NULL;
}

/* The call is answered or the helper parent's: gone from the journal. */
static void slot_release(Broker *b, NotifBuffer *slot) {
        memset(slot, 0, sizeof(*slot));
        b->slots[slot - b->journal] = SLOT_FREE;
}

int broker_journal_fd(const Broker *b) {
        return b->journal_fd;
}

void broker_journal_settle(Broker *b) {
        for (size_t i = 0; i < BROKER_JOURNAL_SLOTS; i++)
                if (b->slots[i] == SLOT_KEPT)
                        slot_release(b, &b->journal[i]);
}

int broker_new(const BrokerLimits *limits, int journal_fd, Broker **ret) {
        _cleanup_(broker_freep) Broker *b = calloc(1, sizeof(Broker));
        if (!b)
                return -ENOMEM;
        b->helper_socket = -EBADF;
        b->emulation_fd = -EBADF;
        b->journal_fd = -EBADF;
        for (size_t i = 0; i < CALLERS_MAX; i++)
                b->callers[i] = (Caller) { .dir_fd = -EBADF, .status_fd = -EBADF };
        int r = broker_set_limits(b, limits);
        if (r < 0)
                return r;
        r = journal_open(b, journal_fd);
        if (r < 0)
                return r;
        b->helper_path = helper_path_default();
        if (!b->helper_path)
                return -ENOMEM;
        *ret = TAKE_PTR(b);
        return 0;
}

int broker_set_helper(Broker *b, const char *path) {
        if (path[0] != '/')
                return -EINVAL;
        char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        free(b->helper_path);
        b->helper_path = copy;
        return 0;
}

const char *broker_helper(const Broker *b) {
        return b->helper_path;
}

static void helper_parent_stop(Broker *b) {
        b->helper_socket = safe_close(b->helper_socket);
        if (b->helper_pid > 0) {
                (void) kill(b->helper_pid, SIGKILL);
                while (waitpid(b->helper_pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        b->helper_pid = 0;
}

/* Whether the helper parent is stopped (by a signal or a tracer). */
static bool helper_parent_stopped(const Broker *b) {
        char path[64], stat[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) b->helper_pid);
        _cleanup_close_ int fd = b->helper_pid > 0 ? open(path, O_RDONLY | O_CLOEXEC) : -EBADF;
        ssize_t n = fd < 0 ? -1 : read(fd, stat, sizeof(stat) - 1);
        if (n <= 0)
                return false;
        stat[n] = '\0';
        const char *state = strrchr(stat, ')');
        return state && (state[1] == ' ') && (state[2] == 'T' || state[2] == 't');
}

/* How long the agent waits for room in the helper parent's queue (see
 * helper_parent_send()). */
#define HELPER_PARENT_WAIT_MS 500

/* Starts stockade-helper with its end of a socket as BROKER_HELPER_FD. */
static int helper_parent_start(Broker *b) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        _cleanup_close_ int ours = pair[0], theirs = pair[1];
        /* Not BROKER_HELPER_FD itself: dup2() onto itself would keep it close-on-exec. */
        if (theirs == BROKER_HELPER_FD) {
                theirs = RET_NERRNO(fcntl(pair[1], F_DUPFD_CLOEXEC, BROKER_HELPER_FD + 1));
                safe_close(pair[1]);
                if (theirs < 0)
                        return theirs;
        }
        struct timeval wait = { .tv_usec = HELPER_PARENT_WAIT_MS * 1000 };
        if (setsockopt(ours, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait)) < 0)
                return -errno;
        char agent[32];
        snprintf(agent, sizeof(agent), "%d", (int) getpid());
        char *argv[] = { (char *) "stockade-helper", agent, NULL }, *envp[] = { NULL };
        /* fork(), not posix_spawn(): its vfork() would hold the agent until the child execs,
         * and a child stopped before that (whatever stops the agent's children) never does.
         * The child makes only async-signal-safe calls. */
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (dup2(theirs, BROKER_HELPER_FD) >= 0)
                        execve(b->helper_path, argv, envp);
                _exit(127);
        }
        b->helper_pid = pid;
        b->helper_socket = TAKE_FD(ours);
        return 0;
}

/* Sends m with fds on socket (a SOCK_SEQPACKET socket): its sendmsg() result. */
static ssize_t message_send(int socket, const BrokerMessage *m, const int *fds, size_t n_fds, int flags) {
        union {
                char buf[CMSG_SPACE(BROKER_MESSAGE_FDS_MAX * sizeof(int))];
                struct cmsghdr align;
        } control = {};
        struct iovec iov = { .iov_base = (void *) m, .iov_len = sizeof(*m) };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                *c = (struct cmsghdr) { .cmsg_len = CMSG_LEN(n_fds * sizeof(int)), .cmsg_level = SOL_SOCKET,
                                        .cmsg_type = SCM_RIGHTS };
                memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
        }
        ssize_t n;
        while ((n = sendmsg(socket, &msg, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
                ;
        return n;
}

/* Sends m with fds to the helper parent, starting it (again) if needed. -EAGAIN: its queue
 * is full. */
static int helper_parent_send(Broker *b, const BrokerMessage *m, const int *fds, size_t n_fds) {
        for (int attempt = 0;; attempt++) {
                if (b->helper_socket < 0) {
                        int r = helper_parent_start(b);
                        if (r < 0)
                                return r;
                }
                /* Its queue holds net.unix.max_dgram_qlen messages (10 by default), which many
                 * containers' calls at once fill while the parent is not scheduled (poll()
                 * does not tell when a socketpair's peer is full). The send waits for room,
                 * at most HELPER_PARENT_WAIT_MS (SO_SNDTIMEO); the call stays in the journal
                 * until the send went through. */
                if (message_send(b->helper_socket, m, fds, n_fds, 0) >= 0)
                        return 0;
                int r = -errno;
                if (r == -EAGAIN || attempt > 0)
                        return r;
                helper_parent_stop(b); /* it died: once more with a new one */
        }
}

/* Closes our end: the helper parent starts what it holds and exits, which we wait for a
 * moment (it could be stopped: then it is killed). */
static void helper_parent_release(Broker *b) {
        b->helper_socket = safe_close(b->helper_socket);
        if (b->helper_pid <= 0)
                return;
        _cleanup_close_ int pidfd = RET_NERRNO(pidfd_open(b->helper_pid, 0));
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        if (pidfd >= 0 && poll(&p, 1, HELPER_PARENT_WAIT_MS) == 1) {
                (void) waitpid(b->helper_pid, NULL, 0);
                b->helper_pid = 0;
        } else
                helper_parent_stop(b);
}

Broker *broker_free(Broker *b) {
        if (!b)
                return NULL;
        assert(b->helpers == 0 && b->queued == 0);
        helper_parent_release(b);
        for (size_t i = 0; i < CALLERS_MAX; i++)
                caller_forget(&b->callers[i]);
        free(b->helper_path);
        safe_close(b->emulation_fd);
        if (b->journal)
                (void) munmap(b->journal, JOURNAL_SIZE);
        safe_close(b->journal_fd);
        free(b);
        return NULL;
}

void broker_container_set_emulation(BrokerContainer *c, const char *dir) {
        static_assert(PROCFS_DIR_NAME_MAX <= BROKER_EMULATION_DIR_MAX, "a directory name fits a job");
        snprintf(c->emulation_dir, sizeof(c->emulation_dir), "%s", dir);
}

int broker_set_emulation(Broker *b, const char *path) {
        int fd = -EBADF;
        if (path && (fd = RET_NERRNO(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC))) < 0)
                return fd;
        safe_close(b->emulation_fd);
        b->emulation_fd = fd;
        return 0;
}

const BrokerLimits *broker_limits(const Broker *b) {
        return &b->limits;
}

void broker_usage(const Broker *b, const BrokerContainer *c, unsigned *ret_helpers, unsigned *ret_queued) {
        *ret_helpers = c ? c->helpers : b->helpers;
        *ret_queued = c ? c->queued : b->queued;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

int broker_masked_paths(const char *bundle, char ***ret, size_t *ret_n, char **reterr) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size, n = 0;
        if (asprintf(&path, "%s/config.json", bundle) < 0)
                return -ENOMEM;
        int r = read_full_file(AT_FDCWD, path, SPEC_MAX_SIZE, &text, &size);
        if (r < 0)
                return error_set(reterr, r, "cannot read '%s': %s", path, strerror(-r));
        _cleanup_json_ cJSON *spec = cJSON_ParseWithLength(text, size);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "linux"), "maskedPaths");
        if (!spec || (list && !cJSON_IsArray(list)))
                return error_set(reterr, -EINVAL, "'%s': no valid spec", path);
        int count = cJSON_GetArraySize(list);
        if (count > BROKER_MASKED_MAX)
                return error_set(reterr, -E2BIG, "'%s': %d masked paths, at most %d", path, count, BROKER_MASKED_MAX);
        char **v = calloc((size_t) count + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
                if (!cJSON_IsString(item) || !(v[n] = strdup(item->valuestring))) {
                        strv_free(v, n);
                        return cJSON_IsString(item) ? -ENOMEM : error_set(reterr, -EINVAL, "'%s': a masked path is not a string", path);
                }
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

BrokerContainer *broker_container_free(BrokerContainer *c) {
        if (!c)
                return NULL;
        assert(c->helpers == 0);
        for (Queued *q = c->queue_first, *next; q; q = next) {
                next = q->next;
                /* Unanswered: an agent after us finds it in the journal (the slot's content
                 * stays until it is used again). */
                c->broker->slots[q->slot - c->broker->journal] = SLOT_FREE;
                safe_close(q->notify_fd);
                free(q);
        }
        c->broker->queued -= c->queued;
        for (size_t i = 0; i < KEPT_PER_CONTAINER; i++)
                kept_drop(c, &c->kept[i]);
        free(c->id);
        free(c->uid_map);
        free(c->gid_map);
        safe_close(c->userns_fd);
        safe_close(c->pidfd);
        safe_close(c->rules_fd);
        free(c);
        return NULL;
}

/* The container's rules: its masked paths and the mounts in init_pid's mount namespace. */
static int rules_record(pid_t init_pid, const char *const *masked, size_t n_masked, int *ret_fd) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int) init_pid);
        _cleanup_close_ int fd = RET_NERRNO(open(path, O_RDONLY | O_CLOEXEC));
        _cleanup_free_ char *mountinfo = NULL;
        size_t size;
        int r = fd < 0 ? fd : read_full_fd(fd, INITIAL_MOUNTINFO_MAX, &mountinfo, &size);
        MountTable initial = {};
        if (r >= 0) { /* checked here: the helpers read it only when they need it */
                char *copy = strdup(mountinfo);
                r = copy ? mount_table_parse(copy, &initial) : -ENOMEM;
                mount_table_done(&initial);
        }
        return r < 0 ? r : broker_rules_encode(masked, n_masked, mountinfo, ret_fd);
}

/* Takes a copy of rules kept from before a restart, once they read as rules. */
static int rules_adopt(int rules_fd, int *ret_fd) {
        BrokerRules rules;
        MountTable initial = {};
        char *blob = NULL;
        int r = broker_rules_decode(rules_fd, true, &rules, &blob, &initial);
        free(blob);
        mount_table_done(&initial);
        if (r < 0)
                return r;
        *ret_fd = RET_NERRNO(fcntl(rules_fd, F_DUPFD_CLOEXEC, 3));
        return *ret_fd < 0 ? *ret_fd : 0;
}

int broker_container_new(Broker *b, const char *id, pid_t init_pid, uint32_t base, const char *const *masked,
                         size_t n_masked, int rules_fd, BrokerContainer **ret, char **reterr) {
        if (n_masked > BROKER_MASKED_MAX)
                return error_set(reterr, -E2BIG, "container '%s': %zu masked paths, at most %d", id, n_masked,
                                 BROKER_MASKED_MAX);
        for (size_t i = 0; i < n_masked; i++)
                if (masked[i][0] != '/' || strlen(masked[i]) >= PATH_MAX)
                        return error_set(reterr, -EINVAL, "container '%s': masked path '%s' is not absolute",
                                         id, masked[i]);

        _cleanup_(broker_container_freep) BrokerContainer *c = calloc(1, sizeof(BrokerContainer));
        if (!c)
                return -ENOMEM;
        c->broker = b;
        c->pidfd = c->rules_fd = c->userns_fd = -EBADF;
        for (size_t i = 0; i < KEPT_PER_CONTAINER; i++)
                c->kept[i] = (Kept) { .channel = -EBADF, .pidfd = -EBADF };
        c->init_pid = init_pid;
        c->base = base;
        c->id = strdup(id);
        if (!c->id)
                return -ENOMEM;

        c->pidfd = RET_NERRNO(pidfd_open(init_pid, 0));
        if (c->pidfd < 0)
                return error_set(reterr, c->pidfd, "container '%s': cannot open process %d: %s", id,
                                 (int) init_pid, strerror(-c->pidfd));

        int r = rules_fd >= 0 ? rules_adopt(rules_fd, &c->rules_fd)
                              : rules_record(init_pid, masked, n_masked, &c->rules_fd);
        /* Held so that no other namespace takes its inode (maps_read()); without it the maps
         * are read at every call. Before the pid is checked again, as the rules. */
        char path[64];
        struct stat st;
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) init_pid);
        c->userns_fd = RET_NERRNO(open(path, O_RDONLY | O_CLOEXEC));
        if (c->userns_fd >= 0 && fstat(c->userns_fd, &st) >= 0)
                c->userns = st.st_ino;
        /* The pid could have been reused before we opened its files. */
        if (r >= 0)
                r = RET_NERRNO(pidfd_send_signal(c->pidfd, 0, NULL, 0));
        if (r < 0)
                return error_set(reterr, r, "container '%s': cannot %s of process %d: %s", id,
                                 rules_fd >= 0 ? "take the kept rules" : "read the mounts", (int) init_pid, strerror(-r));

        struct seccomp_notif_sizes sizes = {};
        r = RET_NERRNO(syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes));
        if (r < 0)
                return error_set(reterr, r, "cannot get the seccomp notification sizes: %s", strerror(-r));
        if (sizes.seccomp_notif > NOTIF_SIZE_MAX || sizes.seccomp_notif_resp > NOTIF_SIZE_MAX)
                return error_set(reterr, -EOVERFLOW, "seccomp notifications of %u bytes, at most %d",
                                 (unsigned) MAX(sizes.seccomp_notif, sizes.seccomp_notif_resp), NOTIF_SIZE_MAX);
        syscalls_resolve(c);

        *ret = TAKE_PTR(c);
        return 0;
}

const char *broker_container_id(const BrokerContainer *c) {
        return c->id;
}

int broker_container_rules_fd(const BrokerContainer *c) {
        return c->rules_fd;
}

int broker_container_pidfd(const BrokerContainer *c) {
        return c->pidfd;
}

pid_t broker_container_init_pid(const BrokerContainer *c) {
        return c->init_pid;
}

/* ---- the caller's memory ---- */

/* Copies up to size bytes from the tracee, never across a page that faults: the number of
 * bytes read (short at a fault), -EFAULT if the first one faults, -ESRCH if it is gone. */
static ssize_t tracee_read(pid_t pid, uint64_t address, void *buf, size_t size) {
        size_t page = (size_t) getpagesize(), done = 0;
        while (done < size) {
                uint64_t at = address + done;
                if (at < address)
                        break; /* wrapped */
                size_t chunk = MIN(size - done, page - (size_t) (at % page));
                struct iovec local = { .iov_base = (char *) buf + done, .iov_len = chunk };
                struct iovec remote = { .iov_base = (void *) (uintptr_t) at, .iov_len = chunk };
                ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
                if (n < 0 && errno != EFAULT)
                        return -errno;
                if (n <= 0)
                        break;
                done += (size_t) n;
                if ((size_t) n < chunk)
                        break;
        }
        return done > 0 ? (ssize_t) done : -EFAULT;
}

/* A NUL-terminated string of at most size bytes with its NUL; read a page at a time so that
 * a short string next to unmapped memory reads fine. NULL address: *ret NULL. */
static int tracee_read_string(pid_t pid, uint64_t address, char *buf, size_t size, int too_long,
                              const char **ret) {
        if (address == 0) {
                *ret = NULL;
                return 0;
        }
        size_t done = 0;
        while (done < size) {
                size_t want = MIN(size - done, (size_t) 256);
                ssize_t n = tracee_read(pid, address + done, buf + done, want);
                if (n < 0)
                        return (int) n;
                if (memchr(buf + done, '\0', (size_t) n)) {
                        *ret = buf;
                        return 0;
                }
                done += (size_t) n;
                if ((size_t) n < want)
                        return -EFAULT; /* stopped at a fault before the end */
        }
        return too_long;
}

/* Mount data is not necessarily a string: like the kernel, take what can be read of one
 * page's worth, then make it a string. */
static int tracee_read_data(pid_t pid, uint64_t address, char *buf /* BROKER_DATA_MAX + 1 */,
                            const char **ret) {
        if (address == 0) {
                *ret = NULL;
                return 0;
        }
        ssize_t n = tracee_read(pid, address, buf, BROKER_DATA_MAX);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        *ret = buf;
        return 0;
}

/* ---- answering ---- */

/* Never allocates: every call received must get an answer. */
static int notify_respond(int notify_fd, uint64_t id, int error, bool cont) {
        NotifBuffer b = {};
        b.resp.id = id;
        b.resp.error = cont ? 0 : error;
        b.resp.flags = cont ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
        for (;;) {
                if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &b.resp) >= 0)
                        return 0;
                if (errno != EINTR)
                        return -errno; /* ENOENT: it is gone (killed, or its filter went away) */
        }
}

_printf_(4, 5) static void event_set(BrokerEvent *e, bool denied, int error, const char *format, ...) {
        e->denied = denied;
        e->error = error;
        va_list ap;
        va_start(ap, format);
        vsnprintf(e->reason, sizeof(e->reason), format, ap);
        va_end(ap);
}

/* ---- receiving ---- */

static void job_done(BrokerJob *q) {
        for (size_t i = 0; i < _BROKER_FD_MAX; i++)
                q->fds[i] = safe_close(q->fds[i]);
}

/* what, in the caller's /proc directory. */
static int proc_open(const Caller *who, const char *what, int flags) {
        return RET_NERRNO(openat(who->dir_fd, what, flags | O_CLOEXEC));
}

/* id, an id as the agent's user namespace has it, as map (a uid_map or gid_map read from
 * the agent's) has it in the caller's: -EPERM if it has no mapping there. */
static int id_map(const char *map, uint32_t id, uint32_t *ret) {
        for (const char *line = map; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                unsigned inside, outside, count;
                if (sscanf(line, "%u %u %u", &inside, &outside, &count) == 3 && id >= outside &&
                    id - outside < count) {
                        *ret = inside + (id - outside);
                        return 0;
                }
        }
        return -EPERM;
}

static int proc_read(const Caller *who, const char *what, char **ret) {
        _cleanup_close_ int fd = proc_open(who, what, O_RDONLY);
        size_t size;
        return fd < 0 ? fd : read_full_fd(fd, 64 * 1024, ret, &size);
}

/* Its status, made anew for a read from offset 0: whole where it is shorter than the read. */
static int caller_status(const Caller *who, char **ret) {
        for (size_t size = 4096; size <= 64 * 1024; size *= 2) {
                _cleanup_free_ char *text = malloc(size);
                if (!text)
                        return -ENOMEM;
                ssize_t n = pread(who->status_fd, text, size - 1, 0);
                if (n < 0)
                        return -errno;
                if ((size_t) n < size - 1) {
                        text[n] = '\0';
                        *ret = TAKE_PTR(text);
                        return 0;
                }
        }
        return -EFBIG;
}

/* The calling thread pid's entry, with its status: a new entry where it has none, or where
 * the thread of its entry has ended (the pid is a new thread's). */
static int caller_get(Broker *b, pid_t pid, Caller **ret_who, char **ret_status) {
        Caller *who = NULL;
        for (size_t i = 0; i < CALLERS_MAX && !who; i++)
                if (b->callers[i].pid == pid)
                        who = &b->callers[i];
        if (who && caller_status(who, ret_status) >= 0) {
                *ret_who = who;
                return 0;
        }
        if (!who)
                who = &b->callers[b->next_caller++ % CALLERS_MAX];
        caller_forget(who);
        char path[32];
        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        who->dir_fd = RET_NERRNO(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
        who->status_fd = who->dir_fd < 0 ? who->dir_fd : proc_open(who, "status", O_RDONLY);
        int r = who->status_fd < 0 ? who->status_fd : caller_status(who, ret_status);
        if (r < 0) {
                caller_forget(who);
                return r;
        }
        who->pid = pid;
        *ret_who = who;
        return 0;
}

/* The ids of a "Uid:" or "Gid:" line of /proc/PID/status, in the caller's namespace. */
static int ids_parse(const char *status, const char *key, const char *map, uint32_t ret[4]) {
        const char *line = strstr(status, key);
        uint32_t ids[4];
        if (!line || sscanf(line + strlen(key), "%u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3]) != 4)
                return -EBADMSG;
        for (size_t i = 0; i < 4; i++) {
                int r = id_map(map, ids[i], &ret[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int caps_parse(const char *status, const char *key, uint64_t *ret) {
        const char *line = strstr(status, key);
        unsigned long long v;
        if (!line || sscanf(line + strlen(key), "%llx", &v) != 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* The id maps of the user namespace of pid, a caller in c: read once for c's own. */
static int maps_read(BrokerContainer *c, const Caller *who, uint64_t userns, char **ret_uid_map, char **ret_gid_map) {
        bool own = userns == c->userns;
        if (own && c->uid_map) {
                *ret_uid_map = strdup(c->uid_map);
                *ret_gid_map = strdup(c->gid_map);
                return *ret_uid_map && *ret_gid_map ? 0 : -ENOMEM;
        }
        int r = proc_read(who, "uid_map", ret_uid_map);
        if (r >= 0)
                r = proc_read(who, "gid_map", ret_gid_map);
        /* A caller's user namespace is its own while it waits in the call; any process with
         * that pid later is in c's namespace only if the inode is c's. */
        if (r < 0 || !own || !**ret_uid_map || !**ret_gid_map)
                return r;
        c->uid_map = strdup(*ret_uid_map);
        c->gid_map = strdup(*ret_gid_map);
        if (!c->uid_map || !c->gid_map) {
                free(c->uid_map);
                free(c->gid_map);
                c->uid_map = c->gid_map = NULL;
        }
        return 0;
}

/* The calling thread's credentials, in its user namespace: -EPERM where it has ids that
 * cannot be taken there (none of its own), -E2BIG for more than BROKER_GROUPS_MAX groups. */
static int credentials_read(BrokerContainer *c, const Caller *who, uint64_t userns, const char *status,
                            BrokerCredentials *ret) {
        _cleanup_free_ char *uid_map = NULL, *gid_map = NULL;
        int r = maps_read(c, who, userns, &uid_map, &gid_map);
        if (r < 0)
                return r;
        BrokerCredentials cr = {};
        if ((r = ids_parse(status, "\nUid:", uid_map, cr.uid)) < 0 ||
            (r = ids_parse(status, "\nGid:", gid_map, cr.gid)) < 0 ||
            (r = caps_parse(status, "\nCapInh:", &cr.cap_inh)) < 0 ||
            (r = caps_parse(status, "\nCapPrm:", &cr.cap_prm)) < 0 ||
            (r = caps_parse(status, "\nCapEff:", &cr.cap_eff)) < 0)
                return r;
        const char *groups = strstr(status, "\nGroups:");
        if (!groups)
                return -EBADMSG;
        groups += strlen("\nGroups:");
        const char *eol = strchrnul(groups, '\n');
        while (groups < eol) {
                char *end;
                errno = 0;
                unsigned long g = strtoul(groups, &end, 10);
                if (end == groups)
                        break;
                if (errno || g > UINT32_MAX)
                        return -EBADMSG;
                if (cr.n_groups >= BROKER_GROUPS_MAX)
                        return -E2BIG;
                cr.groups[cr.n_groups++] = (gid_t) g;
                groups = end;
        }
        *ret = cr;
        return 0;
}

static bool same_namespace(pid_t a, pid_t b, const char *type) {
        char path[64];
        uint64_t ia, ib;
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) a, type);
        if (ns_inode(AT_FDCWD, path, &ia) < 0)
                return false;
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) b, type);
        return ns_inode(AT_FDCWD, path, &ib) >= 0 && ia == ib;
}

/* A pidfd whose namespaces the helper joins: the calling thread's (Linux 6.9 opens one for
 * a thread), else its thread group's, where every namespace the helper joins is the
 * thread's too (a thread may have a network namespace of its own). Threads of Go programs
 * such as dockerd make the calls; only a group's leader has a pidfd before 6.9. */
static int caller_pidfd(pid_t tid, const char *status) {
        int fd = RET_NERRNO(pidfd_open(tid, PIDFD_THREAD));
        if (fd == -EINVAL)
                fd = RET_NERRNO(pidfd_open(tid, 0));
        if (fd != -EINVAL)
                return fd;
        const char *line = strstr(status, "\nTgid:");
        if (!line)
                return -EBADMSG;
        pid_t tgid = (pid_t) strtol(line + strlen("\nTgid:"), NULL, 10);
        _cleanup_close_ int group = tgid > 0 ? RET_NERRNO(pidfd_open(tgid, 0)) : -EBADMSG;
        if (group < 0)
                return group;
        static const char *const types[] = { "user", "mnt", "net", "ipc", "uts", "cgroup" };
        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (!same_namespace(tid, tgid, types[i]))
                        return -EINVAL;
        return TAKE_FD(group);
}

/* What a helper that has not joined the caller yet needs: a pidfd of it and its root. */
static int job_open_entry(const Caller *who, BrokerJob *q, const char *status) {
        q->fds[BROKER_FD_PIDFD] = caller_pidfd(q->pid, status);
        if (q->fds[BROKER_FD_PIDFD] < 0)
                return q->fds[BROKER_FD_PIDFD];
        q->fds[BROKER_FD_ROOT] = proc_open(who, "root", O_PATH | O_DIRECTORY);
        return q->fds[BROKER_FD_ROOT] < 0 ? q->fds[BROKER_FD_ROOT] : 0;
}

/* The caller's view: its working directory, mknodat's dirfd, its mount table, its pid
 * namespace for a new proc, its credentials; where m goes (*ret_route), and unless that is
 * a kept helper of the caller's, its pidfd and root. Opened and read here, before the
 * notification id is checked again, so that they are known to be its. */
static int job_open(BrokerContainer *c, BrokerMessage *m, int dirfd_arg, Route *ret_route) {
        int emulation_fd = c->broker->emulation_fd;
        BrokerJob *q = &m->job;
        int *fds = q->fds;
        _cleanup_free_ char *status = NULL;
        Caller *who;
        int r = caller_get(c->broker, q->pid, &who, &status);
        if (r < 0)
                return r;
        fds[BROKER_FD_CWD] = proc_open(who, "cwd", O_PATH | O_DIRECTORY);
        if (fds[BROKER_FD_CWD] < 0)
                return fds[BROKER_FD_CWD];
        if (q->syscall == BROKER_SYSCALL_MKNODAT && q->target[0] != '/' && dirfd_arg != AT_FDCWD) {
                char what[32];
                snprintf(what, sizeof(what), "fd/%d", dirfd_arg);
                fds[BROKER_FD_DIR] = dirfd_arg < 0 ? -EBADF : proc_open(who, what, O_PATH);
                if (fds[BROKER_FD_DIR] < 0)
                        return -EBADF;
        }
        if (broker_needs_mount_table(q->syscall, q->flags, q->has_fstype ? q->fstype : NULL)) {
                fds[BROKER_FD_MOUNTINFO] = proc_open(who, "mountinfo", O_RDONLY);
                if (fds[BROKER_FD_MOUNTINFO] < 0)
                        return fds[BROKER_FD_MOUNTINFO];
        }
        /* A path of its own /proc (the helper's self_link_open()). */
        if (q->syscall == BROKER_SYSCALL_MOUNT && (STARTSWITH(q->target, "/proc/") || STARTSWITH(q->source, "/proc/"))) {
                fds[BROKER_FD_PROC] = proc_open(who, ".", O_PATH | O_DIRECTORY);
                if (fds[BROKER_FD_PROC] < 0)
                        return fds[BROKER_FD_PROC];
        }
        bool new_fs = q->syscall == BROKER_SYSCALL_MOUNT && broker_mount_op(q->flags) == BROKER_MOUNT_NEW;
        if (new_fs && emulation_fd >= 0 && c->emulation_dir[0] && (streq(q->fstype, "proc") || streq(q->fstype, "sysfs"))) {
                fds[BROKER_FD_EMULATION] = RET_NERRNO(fcntl(emulation_fd, F_DUPFD_CLOEXEC, 3));
                if (fds[BROKER_FD_EMULATION] < 0)
                        return fds[BROKER_FD_EMULATION];
                memcpy(q->emulation_dir, c->emulation_dir, sizeof(q->emulation_dir));
        }
        if (new_fs && streq(q->fstype, "proc")) {
                fds[BROKER_FD_PIDNS] = proc_open(who, "ns/pid", O_RDONLY);
                if (fds[BROKER_FD_PIDNS] < 0)
                        return fds[BROKER_FD_PIDNS];
        }
        uint64_t userns;
        r = ns_inode(who->dir_fd, "ns/user", &userns);
        if (r >= 0)
                r = credentials_read(c, who, userns, status, &q->creds);
        if (r < 0)
                return r;
        kept_route(c, who, userns, m, ret_route);
        ret_route->who = who;
        return ret_route->kept ? 0 : job_open_entry(who, q, status);
}

static int notify_id_valid(int notify_fd, uint64_t id) {
        return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0 ? -errno : 0;
}

/* Reads the caller's strings into q: 0, or -errno for the caller with *e saying why. */
static int job_read(const struct seccomp_notif *req, BrokerJob *q, BrokerEvent *e) {
        const __u64 *a = req->data.args;
        const char *target = NULL, *source = NULL, *fstype = NULL, *data = NULL;
        int r;
        switch (q->syscall) {
        case BROKER_SYSCALL_MOUNT:
                r = tracee_read_string(q->pid, a[1], q->target, sizeof(q->target), -ENAMETOOLONG, &target);
                if (r >= 0 && target)
                        r = tracee_read_string(q->pid, a[0], q->source, sizeof(q->source), -ENAMETOOLONG, &source);
                if (r >= 0 && target)
                        r = tracee_read_string(q->pid, a[2], q->fstype, sizeof(q->fstype), -ENODEV, &fstype);
                if (r >= 0 && target)
                        r = tracee_read_data(q->pid, a[4], q->data, &data);
                break;
        case BROKER_SYSCALL_UMOUNT2:
                r = tracee_read_string(q->pid, a[0], q->target, sizeof(q->target), -ENAMETOOLONG, &target);
                break;
        case BROKER_SYSCALL_PIVOT_ROOT:
                r = tracee_read_string(q->pid, a[0], q->target, sizeof(q->target), -ENAMETOOLONG, &target);
                if (r >= 0 && target)
                        r = tracee_read_string(q->pid, a[1], q->source, sizeof(q->source), -ENAMETOOLONG, &source);
                break;
        default: /* mknod(at) */
                r = tracee_read_string(q->pid, q->syscall == BROKER_SYSCALL_MKNOD ? a[0] : a[1], q->target,
                                       sizeof(q->target), -ENAMETOOLONG, &target);
                break;
        }
        if (r < 0) {
                bool mknod = q->syscall == BROKER_SYSCALL_MKNOD || q->syscall == BROKER_SYSCALL_MKNODAT;
                event_set(e, false, r, "cannot read the %s: %s", mknod ? "path" : "arguments", strerror(-r));
                return r;
        }
        q->has_source = source, q->has_fstype = fstype, q->has_data = data;
        BrokerRequest request = { .check = BROKER_CHECK_ARGUMENTS, .syscall = q->syscall,
                                  .target = target, .source = source, .fstype = fstype };
        memcpy(request.args, a, sizeof(request.args));
        BrokerDecision v;
        broker_decide(NULL, &request, &v);
        if (v.action == BROKER_ACTION_REFUSE) {
                event_set(e, v.denied, v.error, "%s", v.reason);
                return v.error;
        }
        q->flags = v.flags;
        return 0;
}

/* What the registers alone say about the call. */
static void registers_decide(const BrokerContainer *c, const struct seccomp_notif *req, BrokerDecision *ret) {
        BrokerRequest request = { .check = BROKER_CHECK_REGISTERS,
                                  .syscall = syscall_classify(c, req->data.arch, req->data.nr) };
        memcpy(request.args, req->data.args, sizeof(request.args));
        broker_decide(NULL, &request, ret);
}

static bool helper_available(const BrokerContainer *c) {
        const Broker *b = c->broker;
        return c->helpers < b->limits.helpers_per_container && b->helpers < b->limits.helpers;
}

/* The fds that go with m: the helper's socket, the rules, then those of the job. */
static size_t message_fds(BrokerMessage *m, int socket, int rules_fd, int notify_fd, int fds[BROKER_MESSAGE_FDS_MAX]) {
        size_t n_fds = 0;
        fds[n_fds++] = socket;
        fds[n_fds++] = rules_fd;
        m->fd_mask = 0;
        for (size_t i = 0; i < _BROKER_FD_MAX; i++) {
                int fd = i == BROKER_FD_NOTIFY ? notify_fd : m->job.fds[i];
                if (fd >= 0) {
                        m->fd_mask |= 1u << i;
                        fds[n_fds++] = fd;
                }
        }
        return n_fds;
}

/* Hands the job to the kept helper of route or to the helper parent, with a socket for the
 * helper's answer: the call leaves the journal. */
static int pending_start(BrokerContainer *c, int notify_fd, BrokerMessage *m, Route *route, NotifBuffer *slot,
                         BrokerPending **ret) {
        Broker *b = c->broker;
        _cleanup_(broker_pending_freep) BrokerPending *p = calloc(1, sizeof(BrokerPending));
        if (!p)
                return -ENOMEM;
        uint64_t id = slot->req.id;
        *p = (BrokerPending) { .helper = HELPER_NULL, .helper_pidfd = -EBADF, .notify_fd = -EBADF, .id = id,
                               .pid = m->job.pid, .kind = m->job.syscall, .answered = true };
        p->notify_fd = RET_NERRNO(fcntl(notify_fd, F_DUPFD_CLOEXEC, 3));
        if (p->notify_fd < 0)
                return p->notify_fd;
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        p->helper.socket = pair[0];
        _cleanup_close_ int theirs = pair[1];
        /* The helper answers the call itself (the agent may be gone by then). */
        m->job.id = id;
        p->key = TAKE_PTR(route->key);
        Kept *k = route->kept;
        int fds[BROKER_MESSAGE_FDS_MAX];
        size_t n_fds = message_fds(m, theirs, c->rules_fd, notify_fd, fds);
        if (k && (p->helper_pidfd = RET_NERRNO(fcntl(k->pidfd, F_DUPFD_CLOEXEC, 3))) >= 0 &&
            message_send(k->channel, m, fds, n_fds, MSG_DONTWAIT) >= 0) {
                k->job = p;
                p->kept = k;
        } else {
                p->helper_pidfd = safe_close(p->helper_pidfd);
                if (k) {
                        /* It ended: the helper parent's helper needs the caller's pidfd and
                         * root, which are the caller's while it still waits. */
                        kept_drop(c, k);
                        _cleanup_free_ char *status = NULL;
                        int r = caller_status(route->who, &status);
                        if (r >= 0)
                                r = job_open_entry(route->who, &m->job, status);
                        if (r >= 0)
                                r = notify_id_valid(notify_fd, id);
                        if (r < 0)
                                return r;
                        n_fds = message_fds(m, theirs, c->rules_fd, notify_fd, fds);
                }
                int r = helper_parent_send(b, m, fds, n_fds);
                if (r < 0)
                        return r;
        }
        slot_release(b, slot);
        p->answered = false;
        p->c = c;
        c->helpers++;
        b->helpers++;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Puts a call in its container's queue, at the end or first. -EAGAIN: the queues are full
 * (unless forced). */
static int queue_add(BrokerContainer *c, int notify_fd, NotifBuffer *slot, bool first, bool force) {
        Broker *b = c->broker;
        if (!force && (c->queued >= b->limits.queued_per_container || b->queued >= b->limits.queued))
                return -EAGAIN;
        Queued *q = calloc(1, sizeof(Queued));
        if (!q)
                return -ENOMEM;
        q->notify_fd = fcntl(notify_fd, F_DUPFD_CLOEXEC, 3);
        if (q->notify_fd < 0) {
                int r = -errno;
                free(q);
                return r;
        }
        q->slot = slot;
        if (first) {
                q->next = c->queue_first;
                c->queue_first = q;
                if (!c->queue_last)
                        c->queue_last = q;
        } else {
                if (c->queue_last)
                        c->queue_last->next = q;
                else
                        c->queue_first = q;
                c->queue_last = q;
        }
        c->queued++;
        b->queued++;
        return 0;
}

/* Handles one notification received into slot: answers it, starts its helper or, where
 * the helper parent is busy, queues it (the slot is freed but for that). */
static int notification_handle(BrokerContainer *c, int notify_fd, NotifBuffer *slot, BrokerPending **ret_pending,
                               BrokerEvent *ret_event) {
        const struct seccomp_notif *req = &slot->req;
        BrokerEvent e = { .pid = (pid_t) req->pid };
        BrokerDecision v;
        registers_decide(c, req, &v);
        BrokerSyscall kind = syscall_classify(c, req->data.arch, req->data.nr);
        e.syscall = broker_syscall_name(kind);
        _cleanup_free_ BrokerMessage *m = NULL;
        _cleanup_(route_done) Route route = {};
        int r;
        if (v.action == BROKER_ACTION_CONTINUE) {
                e.continued = true;
                r = notify_respond(notify_fd, req->id, 0, true);
                goto answered;
        }
        if (v.action == BROKER_ACTION_REFUSE) {
                event_set(&e, v.denied, v.error, "%s", v.reason);
                r = notify_respond(notify_fd, req->id, v.error, false);
                goto answered;
        }

        m = calloc(1, sizeof(BrokerMessage));
        if (!m)
                r = -ENOMEM;
        else {
                BrokerJob *q = &m->job;
                *q = (BrokerJob) { .syscall = kind, .pid = (pid_t) req->pid, .base = c->base, .mode = v.mode };
                for (size_t i = 0; i < _BROKER_FD_MAX; i++)
                        q->fds[i] = -EBADF;
                if (v.device)
                        snprintf(q->device, sizeof(q->device), "%s", v.device);
                if ((r = job_read(req, q, &e)) == 0)
                        r = job_open(c, m, (int) req->data.args[0], &route);
        }
        /* Whatever was read or opened belongs to the caller only if it is still waiting. */
        int valid = notify_id_valid(notify_fd, req->id);
        if (valid < 0) {
                if (m)
                        job_done(&m->job);
                slot_release(c->broker, slot);
                return valid; /* ENOENT: gone */
        }
        if (r >= 0) {
                r = pending_start(c, notify_fd, m, &route, slot, ret_pending);
                /* The helper parent's queue is full: the call waits, first in its container's
                 * queue, until a helper at work ends. */
                if (r == -EAGAIN && c->broker->helpers > 0 && queue_add(c, notify_fd, slot, true, false) >= 0) {
                        job_done(&m->job);
                        *ret_event = e;
                        return BROKER_QUEUED;
                }
                if (r < 0)
                        event_set(&e, false, r, "cannot start a helper: %s", strerror(-r));
        }
        if (m)
                job_done(&m->job);
        if (r >= 0) {
                *ret_event = e;
                return BROKER_PENDING;
        }
        if (!e.reason[0])
                event_set(&e, false, r, "cannot act as the caller: %s", strerror(-r));
        r = notify_respond(notify_fd, req->id, e.error, false);

answered:
        slot_release(c->broker, slot);
        if (r < 0)
                return r;
        *ret_event = e;
        return BROKER_ANSWERED;
}

int broker_handle(BrokerContainer *c, int notify_fd, BrokerPending **ret_pending, BrokerEvent *ret_event) {
        /* A call received is the agent's to answer (or the next agent's, from the journal):
         * one that no helper could start now stays in the kernel's queue instead. */
        if (!helper_available(c) || c->queue_first)
                return -EBUSY;
        NotifBuffer *slot = slot_take(c->broker);
        if (!slot)
                return -EBUSY;
        while (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &slot->req) < 0)
                if (errno != EINTR) {
                        int r = -errno; /* ENOENT: it was killed before we got it */
                        slot_release(c->broker, slot);
                        return r;
                }
        return notification_handle(c, notify_fd, slot, ret_pending, ret_event);
}

int broker_container_take_kept(BrokerContainer *c, int notify_fd) {
        Broker *b = c->broker;
        int n = 0;
        for (size_t i = 0; i < BROKER_JOURNAL_SLOTS; i++) {
                if (b->slots[i] != SLOT_KEPT || notify_id_valid(notify_fd, b->journal[i].req.id) < 0)
                        continue;
                int r = queue_add(c, notify_fd, &b->journal[i], false, true);
                if (r < 0)
                        return r;
                b->slots[i] = SLOT_USED;
                n++;
        }
        return n;
}

int broker_container_dequeue(BrokerContainer *c, BrokerPending **ret_pending, BrokerEvent *ret_event) {
        Queued *q = c->queue_first;
        if (!q || !helper_available(c))
                return -EAGAIN;
        c->queue_first = q->next;
        if (!c->queue_first)
                c->queue_last = NULL;
        c->queued--;
        c->broker->queued--;
        int r = notification_handle(c, q->notify_fd, q->slot, ret_pending, ret_event);
        safe_close(q->notify_fd);
        free(q);
        return r == BROKER_QUEUED ? -EAGAIN : r; /* back in the queue */
}

/* ---- finishing ---- */

int broker_pending_fd(const BrokerPending *p) {
        return p->helper.socket;
}

/* Reads what came on the helper's socket: the parent's word that it started (its pidfd,
 * kept) and then the helper's answer (0 and *ret_reply, if not NULL). -EAGAIN: no answer
 * yet; -ECHILD: none will come. */
static int pending_read(BrokerPending *p, HelperReply *ret_reply) {
        for (;;) {
                HelperReply reply;
                _cleanup_close_ int fd = -EBADF;
                int r = helper_read(&p->helper, &reply, &fd);
                if (r < 0)
                        return r;
                if (reply.detail == BROKER_DETAIL_STARTED && p->helper_pidfd < 0 && reply.error == 0) {
                        p->helper_pidfd = TAKE_FD(fd);
                        continue;
                }
                if (reply.detail & BROKER_DETAIL_KEPT)
                        kept_add(p, TAKE_FD(fd));
                p->answered = true;
                if (ret_reply)
                        *ret_reply = reply;
                return 0;
        }
}

/* Kills the helper if it may still be at work. stuck: the call is past its deadline, so a
 * helper parent that did not even start it in all that time is stopped (the next call
 * starts a new one). */
static void pending_kill(BrokerPending *p, bool stuck) {
        if (p->answered)
                return;
        int r = p->helper_pidfd < 0 ? pending_read(p, NULL) : -EAGAIN;
        if (p->helper_pidfd >= 0 && !p->answered)
                (void) pidfd_send_signal(p->helper_pidfd, SIGKILL, NULL, 0);
        /* One stopped after it started this helper would hold the next call too. */
        if (stuck && p->c && ((p->helper_pidfd < 0 && r == -EAGAIN) || helper_parent_stopped(p->c->broker)))
                helper_parent_stop(p->c->broker);
        p->answered = true;
}

BrokerPending *broker_pending_free(BrokerPending *p) {
        if (!p)
                return NULL;
        helper_done(&p->helper);
        safe_close(p->helper_pidfd);
        safe_close(p->notify_fd);
        if (p->kept && p->kept->job == p)
                p->kept->job = NULL;
        free(p->key);
        if (p->c) {
                p->c->helpers--;
                p->c->broker->helpers--;
        }
        free(p);
        return NULL;
}

/* answered: the helper answered the call itself. A kept helper that did not succeed ends
 * (or was killed): a job sent to it now would be lost. */
static int pending_answer(BrokerPending *p, BrokerEvent *e, bool stuck, bool answered, BrokerEvent *ret_event) {
        _cleanup_(broker_pending_freep) BrokerPending *owned = p;
        pending_kill(p, stuck);
        if (p->kept && p->kept->job == p && e->error != 0)
                kept_drop(p->c, p->kept);
        int r = answered ? 0 : notify_respond(p->notify_fd, p->id, e->error, false);
        if (r < 0)
                return r;
        *ret_event = *e;
        return 0;
}

int broker_pending_finish(BrokerPending *p, BrokerEvent *ret_event) {
        HelperReply reply;
        int r = pending_read(p, &reply);
        if (r == -EAGAIN)
                return r;
        BrokerEvent e = { .syscall = broker_syscall_name(p->kind), .pid = p->pid };
        if (r == -ECHILD)
                event_set(&e, false, -EINTR, "the helper died without an answer");
        else if (r < 0)
                event_set(&e, false, -EIO, "cannot read the helper's answer: %s", strerror(-r));
        else
                event_set(&e, (reply.detail & BROKER_DETAIL_DENIED) && reply.error < 0, reply.error, "%s", reply.reason);
        return pending_answer(p, &e, false, r >= 0 && (reply.detail & BROKER_DETAIL_ANSWERED), ret_event);
}

int broker_pending_cancel(BrokerPending *p, int error, const char *reason, BrokerEvent *ret_event) {
        BrokerEvent e = { .syscall = broker_syscall_name(p->kind), .pid = p->pid };
        event_set(&e, false, error, "%s", reason);
        return pending_answer(p, &e, true, false, ret_event);
}
