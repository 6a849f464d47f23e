/* SPDX-License-Identifier: Apache-2.0 */
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>

#include "agent/containers.h"
#include "agent/fdstore.h"
#include "enforcer/broker.h"
#include "enforcer/procfs.h"
#include "enforcer/idmap.h"
#include "enforcer/uidrange.h"
#include "log.h"
#include "proto/seccomp-listener.h"
#include "util.h"

#define LISTENER_CLIENTS_MAX 256
/* How often containers are looked at for one that ended without its runtime's release. */
#define CONTAINERS_SWEEP_SEC 2.0
/* A record without a runtime process to watch (loaded at start) is left alone this long:
 * its create may still be under way. */
#define CONTAINERS_RESTORED_GRACE_SEC 30.0
#define LISTENER_FDNAME "listener/seccomp"
#define JOURNAL_FDNAME "broker/calls"
/* "PID.iINODE" (pidfs) or "PID.sSTARTTIME" */
#define IDENTITY_MAX 64
#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

typedef struct Container Container;

/* One notify fd: the container's init, or one "exec"; kept in the fd store under name. */
typedef struct NotifyWatch {
        ev_io io;
        Container *container;
        char name[FDSTORE_NAME_MAX + 1];
        struct NotifyWatch *next;
} NotifyWatch;

/* A call the broker performs in a helper; the watch fires when it is done, the timer at
 * its deadline. */
typedef struct PendingWatch {
        ev_io io;
        ev_timer deadline;
        Container *container;
        BrokerPending *pending;
        struct PendingWatch *next;
} PendingWatch;

/* A runtime handing over notify fds. */
typedef struct ListenerClient {
        ev_io io;
        Containers *owner;
        struct ListenerClient *next;
} ListenerClient;

/* Created: registered, its init not seen yet. Running: its init is watched and its calls
 * vetted (from the first notify fd). Stopped: its init exited, or was gone when the agent
 * restarted; the range is held until the runtime's delete releases it. Status lists
 * created and running containers. */
typedef enum ContainerState {
        CONTAINER_CREATED,
        CONTAINER_RUNNING,
        CONTAINER_STOPPED,
} ContainerState;

struct Container {
        Containers *owner;
        char *key; /* "ROOT/ID", or the bare id of a record from before roots were */
        const char *id; /* in key */
        char dir[CONTAINER_DIR_NAME_MAX]; /* "HASH-ID", its directory under runDir/containers */
        char tag[17]; /* the key's hash in hex, in the names of its kept fds */
        uint32_t base;
        ContainerState state;
        BrokerContainer *broker; /* while running */
        char identity[IDENTITY_MAX]; /* of the init, while running */
        unsigned n_fds; /* notify fds named so far: each gets the next number */
        ev_io exit_io; /* the init's pidfd */
        int runtime_pidfd; /* the runtime that registered it, -EBADF: none known */
        ev_tstamp since; /* when the record was made */
        bool reclaim_failed; /* said once */
        NotifyWatch *watches;
        PendingWatch *pendings;
        uint64_t allowed, denied;
        ev_tstamp report_window; /* the second the reports counted in it began */
        unsigned reported;       /* in that second */
        uint64_t suppressed;     /* refusals not reported since the last report */
        Container *next;
};

struct Containers {
        struct ev_loop *loop;
        FdStore *store;
        char *run_dir;
        Broker *broker;
        UidRanges *ranges;
        Container *list;
        int listen_fd;
        ev_io listen_io;
        char *listener;
        ListenerClient *clients;
        size_t n_clients;
        containers_report_t report;
        void *userdata;
        Procfs *procfs; /* serves each container with a broker its own /proc files */
        ev_timer sweep;
};

/* Stops watching a pending call; its BrokerPending is the caller's. */
static void pending_watch_remove(Container *c, PendingWatch *p) {
        ev_io_stop(c->owner->loop, &p->io);
        ev_timer_stop(c->owner->loop, &p->deadline);
        for (PendingWatch **q = &c->pendings; *q; q = &(*q)->next)
                if (*q == p) {
                        *q = p->next;
                        break;
                }
        free(p);
}

/* "rules/TAG/IDENTITY": the container's rules in the fd store. */
static void rules_name(char buf[static FDSTORE_NAME_MAX + 1], const Container *c, const char *identity) {
        snprintf(buf, FDSTORE_NAME_MAX + 1, "rules/%s/%s", c->tag, identity);
}

/* forget: drop its notify fds and rules from the fd store too (not when the agent stops:
 * they wait for the next agent there). */
static void container_stop_broker(Container *c, bool forget) {
        struct ev_loop *loop = c->owner->loop;
        for (NotifyWatch *w = c->watches, *next; w; w = next) {
                next = w->next;
                ev_io_stop(loop, &w->io);
                safe_close(w->io.fd);
                if (forget)
                        (void) fdstore_forget(c->owner->store, w->name);
                free(w);
        }
        c->watches = NULL;
        if (forget && c->broker) {
                char name[FDSTORE_NAME_MAX + 1];
                rules_name(name, c, c->identity);
                (void) fdstore_forget(c->owner->store, name);
        }
        while (c->pendings) {
                broker_pending_free(c->pendings->pending);
                pending_watch_remove(c, c->pendings);
        }
        if (c->broker) {
                if (c->owner->procfs)
                        procfs_container_remove(c->owner->procfs, c->key);
                ev_io_stop(loop, &c->exit_io);
                c->broker = broker_container_free(c->broker);
        }
        c->state = CONTAINER_STOPPED;
}

static Container *container_free(Container *c, bool forget) {
        if (!c)
                return NULL;
        container_stop_broker(c, forget);
        safe_close(c->runtime_pidfd);
        free(c->key);
        free(c);
        return NULL;
}

static Container *container_find(const Containers *cs, const char *key) {
        for (Container *c = cs->list; c; c = c->next)
                if (streq(c->key, key))
                        return c;
        return NULL;
}

static void container_unlink(Containers *cs, Container *c) {
        for (Container **p = &cs->list; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        return;
                }
}

/* The record of a container with a range, made when missing. */
static int container_add(Containers *cs, const char *key, uint32_t base) {
        Container *c = container_find(cs, key);
        if (!c) {
                c = calloc(1, sizeof(Container));
                if (!c || !(c->key = strdup(key))) {
                        free(c);
                        return -ENOMEM;
                }
                c->id = container_key_id(c->key);
                c->owner = cs;
                c->runtime_pidfd = -EBADF;
                c->since = ev_now(cs->loop);
                snprintf(c->tag, sizeof(c->tag), "%016" PRIx64, hash_fnv1a(c->key, strlen(c->key)));
                int r = container_key_dir(c->key, c->dir);
                if (r < 0) {
                        free(c->key);
                        free(c);
                        return r;
                }
                c->next = cs->list;
                cs->list = c;
        }
        c->base = base;
        if (!c->broker)
                c->state = CONTAINER_CREATED;
        return 0;
}

/* Counts a call once, when it was answered. */
static void count(Container *c, const BrokerEvent *e) {
        if (!e->syscall)
                return;
        if (e->denied)
                c->denied++;
        else
                c->allowed++;
        if (!e->denied)
                return;
        ev_tstamp now = ev_now(c->owner->loop);
        if (now - c->report_window >= 1.0) {
                c->report_window = now;
                c->reported = 0;
        }
        if (c->reported >= CONTAINERS_REPORTS_PER_SEC) {
                c->suppressed++;
                return;
        }
        c->reported++;
        c->owner->report(c->owner->userdata, c->id, e->pid, e->syscall, e->reason[0] ? e->reason : "refused",
                         c->suppressed);
        c->suppressed = 0;
}

static void pending_cb(struct ev_loop *loop, ev_io *w, int revents);
static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void dequeue_all(Containers *cs);

/* What broker_handle() or broker_container_dequeue() returned: counts an answered call,
 * watches a pending one. */
static void handled(Container *c, int r, BrokerPending *pending, const BrokerEvent *e) {
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Answering a vetted call of container '%s' failed: %m", c->id);
        if (r == BROKER_ANSWERED)
                count(c, e);
        if (r != BROKER_PENDING)
                return;
        PendingWatch *p = calloc(1, sizeof(PendingWatch));
        if (!p) {
                BrokerEvent failed = {};
                if (broker_pending_cancel(pending, -ENOMEM, "out of memory", &failed) >= 0)
                        count(c, &failed);
                return;
        }
        p->container = c;
        p->pending = pending;
        p->next = c->pendings;
        c->pendings = p;
        ev_io_init(&p->io, pending_cb, broker_pending_fd(pending), EV_READ);
        ev_io_start(c->owner->loop, &p->io);
        ev_timer_init(&p->deadline, deadline_cb, BROKER_HELPER_TIMEOUT_SEC, 0);
        ev_timer_start(c->owner->loop, &p->deadline);
}

/* A helper ended (r from broker_pending_finish() or _cancel()): its slot goes to queued calls. */
static void pending_ended(PendingWatch *p, int r, const BrokerEvent *e) {
        Container *c = p->container;
        if (r < 0 && r != -ENOENT)
                log_debug_errno(r, "Finishing a vetted call of '%s' failed: %m", c->id);
        if (r >= 0)
                count(c, e);
        pending_watch_remove(c, p);
        dequeue_all(c->owner);
}

static void pending_cb(struct ev_loop *loop, ev_io *w, int revents) {
        PendingWatch *p = container_of(w, PendingWatch, io);
        BrokerEvent e = {};
        int r = broker_pending_finish(p->pending, &e);
        if (r != -EAGAIN)
                pending_ended(p, r, &e);
}

/* The container may have stopped the helper: the agent, not the helper, keeps the time. */
static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        PendingWatch *p = container_of(w, PendingWatch, deadline);
        BrokerEvent e = {};
        int r = broker_pending_cancel(p->pending, -EINTR, "the helper did not finish in time", &e);
        pending_ended(p, r, &e);
}

/* A helper's slot may be free: the calls in the containers' queues first, then the notify
 * fds not watched while no helper could start (notify_cb()). */
static void dequeue_all(Containers *cs) {
        for (Container *c = cs->list; c; c = c->next)
                for (int r = 0; c->broker && r != -EAGAIN;) {
                        BrokerPending *pending = NULL;
                        BrokerEvent e = {};
                        r = broker_container_dequeue(c->broker, &pending, &e);
                        if (r != -EAGAIN)
                                handled(c, r, pending, &e);
                }
        for (Container *c = cs->list; c; c = c->next)
                for (NotifyWatch *w = c->watches; w; w = w->next)
                        if (!ev_is_active(&w->io))
                                ev_io_start(cs->loop, &w->io);
}

static void notify_watch_remove(Container *c, NotifyWatch *w) {
        ev_io_stop(c->owner->loop, &w->io);
        safe_close(w->io.fd);
        (void) fdstore_forget(c->owner->store, w->name);
        for (NotifyWatch **q = &c->watches; *q; q = &(*q)->next)
                if (*q == w) {
                        *q = w->next;
                        break;
                }
        free(w);
}

static void notify_cb(struct ev_loop *loop, ev_io *w, int revents) {
        NotifyWatch *n = container_of(w, NotifyWatch, io);
        Container *c = n->container;
        BrokerPending *pending = NULL;
        BrokerEvent e = {};
        int r = broker_handle(c->broker, w->fd, &pending, &e);
        if (r == -EAGAIN)
                return;
        if (r == -EBUSY) { /* the calls wait in the kernel's queue until a helper ends */
                ev_io_stop(loop, w);
                return;
        }
        if (r == -ENOENT) {
                /* No process uses this filter any more, or the caller is gone. */
                struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
                if (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLHUP))
                        notify_watch_remove(c, n);
                return;
        }
        handled(c, r, pending, &e);
}

static void exit_cb(struct ev_loop *loop, ev_io *w, int revents) {
        Container *c = container_of(w, Container, exit_io);
        log_debug("Container '%s' init %d exited", c->id, (int) broker_container_init_pid(c->broker));
        container_stop_broker(c, true);
        dequeue_all(c->owner); /* its helpers' slots */
}

/* Who a pidfd's process is, in a name that outlives the agent: its pid and its pidfs inode
 * (unique for the boot; Linux >= 6.9), else its start time. */
static int pidfd_identity(int pidfd, pid_t pid, char ret[static IDENTITY_MAX]) {
        struct statfs sfs;
        struct stat st;
        if (fstatfs(pidfd, &sfs) >= 0 && sfs.f_type == PID_FS_MAGIC && fstat(pidfd, &st) >= 0) {
                snprintf(ret, IDENTITY_MAX, "%d.i%llu", (int) pid, (unsigned long long) st.st_ino);
                return 0;
        }
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r = read_full_file(AT_FDCWD, path, 4096, &text, &size);
        if (r < 0)
                return r;
        /* Field 22, counted after the command's closing parenthesis (field 2). */
        const char *p = strrchr(text, ')');
        unsigned long long start;
        if (!p || sscanf(p + 1, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu", &start) != 1)
                return -EBADMSG;
        r = RET_NERRNO(pidfd_send_signal(pidfd, 0, NULL, 0)); /* still the process we read? */
        if (r < 0)
                return r;
        snprintf(ret, IDENTITY_MAX, "%d.s%llu", (int) pid, start);
        return 0;
}

/* Starts vetting the calls of the container whose init is init_pid: its exit ends the
 * record's fds. Without its masked paths (from the spec the runtime wrote into the
 * bundle), nothing is vetted: the fd is closed and the container's vetted calls fail.
 * kept_rules: its rules as recorded before the agent restarted (its initial mounts: the
 * mounts present now include those it made since), else -EBADF; they are kept in the fd
 * store for the next agent. */
static int container_start_broker(Container *c, pid_t init_pid, const char *bundle, int kept_rules, char **reterr) {
        char **masked = NULL;
        size_t n = 0;
        int r = bundle ? broker_masked_paths(bundle, &masked, &n, reterr) : error_set(reterr, -EINVAL, "no bundle, so no masked paths");
        if (r >= 0)
                r = broker_container_new(c->owner->broker, c->id, init_pid, c->base, (const char *const *) masked, n,
                                         kept_rules, &c->broker, reterr);
        for (size_t i = 0; i < n; i++)
                free(masked[i]);
        free(masked);
        if (r >= 0) {
                char dir[PROCFS_DIR_NAME_MAX];
                procfs_dir_name(c->key, dir);
                broker_container_set_emulation(c->broker, dir);
        }
        if (r >= 0 && (r = pidfd_identity(broker_container_pidfd(c->broker), init_pid, c->identity)) < 0)
                error_set(reterr, r, "cannot tell who process %d is: %s", (int) init_pid, strerror(-r));
        if (r < 0) {
                c->broker = broker_container_free(c->broker);
                return r;
        }
        char name[FDSTORE_NAME_MAX + 1];
        rules_name(name, c, c->identity);
        if (kept_rules < 0 && (r = fdstore_keep(c->owner->store, name, broker_container_rules_fd(c->broker))) < 0)
                log_warning_errno(r, "Cannot keep the rules of container '%s' across restarts: %m", c->id);
        ev_io_init(&c->exit_io, exit_cb, broker_container_pidfd(c->broker), EV_READ);
        ev_io_start(c->owner->loop, &c->exit_io);
        c->state = CONTAINER_RUNNING;
        if (c->owner->procfs && (r = procfs_container_add(c->owner->procfs, c->key, init_pid)) < 0)
                log_warning_errno(r, "Container '%s' sees the VM's /proc files: %m", c->id);
        return 0;
}

/* Watches a notify fd of the running container c, kept in the fd store as name. */
static int container_watch(Container *c, int fd, const char *name) {
        NotifyWatch *w = calloc(1, sizeof(NotifyWatch));
        if (!w)
                return -ENOMEM;
        w->container = c;
        snprintf(w->name, sizeof(w->name), "%s", name);
        w->next = c->watches;
        c->watches = w;
        ev_io_init(&w->io, notify_cb, fd, EV_READ);
        ev_io_start(c->owner->loop, &w->io);
        return 0;
}

/* A notify fd a runtime handed over: "notify/TAG/IDENTITY/N" in the fd store, IDENTITY
 * the init's (short names: $LISTEN_FDNAMES holds them all in one environment string). */
static int container_add_notify_fd(Container *c, pid_t init_pid, const char *bundle, int fd, char **reterr) {
        int r = c->broker ? 0 : container_start_broker(c, init_pid, bundle, -EBADF, reterr);
        if (r < 0)
                return r;
        char name[FDSTORE_NAME_MAX + 1];
        snprintf(name, sizeof(name), "notify/%s/%s/%u", c->tag, c->identity, c->n_fds++);
        r = container_watch(c, fd, name);
        if (r < 0)
                return r;
        r = fdstore_keep(c->owner->store, name, fd);
        if (r < 0)
                log_warning_errno(r, "Cannot keep the notify fd of container '%s' across restarts: %m", c->id);
        return 0;
}

/* A notify fd kept by the fd store before the agent restarted, named as above: taken only
 * while its container's init is still the one named. */
static int container_adopt_notify_fd(Container *c, const char *name, int fd, char **reterr) {
        const char *identity = name + strlen("notify/") + strlen(c->tag) + 1, *slash = strchr(identity, '/');
        unsigned n;
        int pid;
        if (!slash || sscanf(identity, "%d.", &pid) != 1 || pid <= 0 || sscanf(slash + 1, "%u", &n) != 1)
                return error_set(reterr, -EINVAL, "not a notify fd's name");
        if (!c->broker) {
                char bundle[PATH_MAX], kept_identity[IDENTITY_MAX], rules[FDSTORE_NAME_MAX + 1];
                snprintf(bundle, sizeof(bundle), "%s/containers/%s", c->owner->run_dir, c->dir);
                snprintf(kept_identity, sizeof(kept_identity), "%.*s", (int) (slash - identity), identity);
                rules_name(rules, c, kept_identity);
                _cleanup_close_ int kept = fdstore_take(c->owner->store, rules);
                int r = container_start_broker(c, pid, bundle, kept, reterr);
                if (r < 0)
                        return r;
                struct pollfd exited = { .fd = broker_container_pidfd(c->broker), .events = POLLIN };
                if (poll(&exited, 1, 0) > 0) {
                        container_stop_broker(c, false);
                        return error_set(reterr, -ESRCH, "its init %d has exited", pid);
                }
        }
        if (strncmp(identity, c->identity, (size_t) (slash - identity)) != 0 || c->identity[slash - identity]) {
                bool alone = !c->watches;
                if (alone)
                        container_stop_broker(c, false);
                return error_set(reterr, -ESRCH, "its init is no longer process %.*s", (int) (slash - identity), identity);
        }
        if (n >= c->n_fds)
                c->n_fds = n + 1;
        int r = container_watch(c, fd, name);
        if (r < 0)
                return r;
        r = broker_container_take_kept(c->broker, fd);
        if (r < 0)
                log_warning_errno(r, "Container '%s': cannot take its calls from the journal: %m", c->key);
        else if (r > 0)
                log_info("Container '%s': %d call(s) received by the agent before are handled again", c->key, r);
        return 0;
}

/* ---- the listener ---- */

static void client_free(ListenerClient *l) {
        Containers *cs = l->owner;
        ev_io_stop(cs->loop, &l->io);
        safe_close(l->io.fd);
        for (ListenerClient **q = &cs->clients; *q; q = &(*q)->next)
                if (*q == l) {
                        *q = l->next;
                        break;
                }
        cs->n_clients--;
        free(l);
}

static void handle_message(Containers *cs, const char *data, size_t size, int *fds, size_t n_fds) {
        SeccompListenerMessage m = {};
        _cleanup_free_ char *why = NULL;
        int r = seccomp_listener_parse(data, size, n_fds, &m, &why);
        Container *c = r >= 0 && m.metadata ? container_find(cs, m.metadata) : NULL;
        if (r < 0)
                log_warning("Refusing a seccomp listener message: %s", why ? why : strerror(-r));
        else if (!c)
                log_warning("Refusing notify fds for unregistered container '%s'", m.metadata ? m.metadata : "?");
        else if ((r = container_add_notify_fd(c, m.init_pid, m.bundle, fds[m.seccomp_fd_index], &why)) < 0)
                log_warning("Cannot vet the calls of container '%s': %s", c->id, why ? why : strerror(-r));
        else
                fds[m.seccomp_fd_index] = -EBADF; /* the watch owns it now */
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        seccomp_listener_message_done(&m);
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents) {
        ListenerClient *l = container_of(w, ListenerClient, io);
        _cleanup_free_ char *data = NULL;
        int fds[SECCOMP_LISTENER_FDS_MAX];
        size_t size, n_fds = 0;
        int r = seccomp_listener_recv(w->fd, &data, &size, fds, &n_fds);
        if (r == -EAGAIN)
                return;
        if (r >= 0 && size > 0)
                handle_message(l->owner, data, size, fds, n_fds);
        else if (r < 0)
                log_debug_errno(r, "Seccomp listener connection: %m");
        client_free(l);
}

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents) {
        Containers *cs = container_of(w, Containers, listen_io);
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
                return;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0 || cs->n_clients >= LISTENER_CLIENTS_MAX) {
                safe_close(fd);
                return;
        }
        ListenerClient *l = calloc(1, sizeof(ListenerClient));
        if (!l) {
                safe_close(fd);
                return;
        }
        l->owner = cs;
        l->next = cs->clients;
        cs->clients = l;
        cs->n_clients++;
        ev_io_init(&l->io, client_cb, fd, EV_READ);
        ev_io_start(loop, &l->io);
}

/* The listening socket at path: the one kept in the fd store (runtimes that handed over
 * fds while the agent was away are queued on it), else a new one. */
static int listener_open(Containers *cs, const char *path, char **reterr) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t size = sizeof(sa);
        _cleanup_close_ int fd = fdstore_take(cs->store, LISTENER_FDNAME);
        if (fd >= 0 && getsockname(fd, (struct sockaddr *) &sa, &size) >= 0 && sa.sun_family == AF_UNIX &&
            strncmp(sa.sun_path, path, sizeof(sa.sun_path)) == 0 && fcntl(fd, F_SETFL, O_NONBLOCK) >= 0)
                return TAKE_FD(fd);
        if (fd >= 0)
                log_info("The kept seccomp listener is not '%s': listening anew", path);

        if (strlen(path) >= sizeof(sa.sun_path))
                return error_set(reterr, -ENAMETOOLONG, "'%s' is too long for a socket path", path);
        strcpy(sa.sun_path, path);
        int r = unix_socket_remove_stale(path, reterr);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return error_set(reterr, -errno, "socket: %m");
        mode_t old = umask(0077);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0 || listen(fd, 64) < 0)
                return error_set(reterr, -errno, "cannot listen on '%s': %m", path);
        r = fdstore_keep(cs->store, LISTENER_FDNAME, fd);
        if (r < 0)
                log_warning_errno(r, "Cannot keep the seccomp listener across restarts: %m");
        return TAKE_FD(fd);
}

int containers_listen(Containers *cs, const char *path, char **reterr) {
        _cleanup_close_ int fd = listener_open(cs, path, reterr);
        if (fd < 0)
                return fd;
        cs->listener = strdup(path);
        if (!cs->listener)
                return -ENOMEM;
        cs->listen_fd = TAKE_FD(fd);
        ev_io_init(&cs->listen_io, listen_cb, cs->listen_fd, EV_READ);
        ev_io_start(cs->loop, &cs->listen_io);
        return 0;
}

const char *containers_listener(const Containers *cs) {
        return cs->listener;
}

/* ---- registry ---- */

static void container_drop(Containers *cs, Container *c, bool forget) {
        container_unlink(cs, c);
        container_free(c, forget);
        dequeue_all(cs);
}

/* Does the runtime or Stockade still hold files for it (runc's state: created, running
 * or stopped, not deleted; Stockade's directory: from before its registration until the
 * runtime's delete)? */
static bool container_exists(const Containers *cs, const Container *c) {
        size_t n = (size_t) (c->id - c->key);
        _cleanup_free_ char *root = n ? strndup(c->key, n > 1 ? n - 1 : 1) : strdup("/run/runc"), *state = NULL, *dir = NULL;
        struct stat st;
        if (!root || asprintf(&state, "%s/%s/state.json", root, c->id) < 0 ||
            asprintf(&dir, "%s/containers/%s", cs->run_dir, c->dir) < 0)
                return true;
        return stat(state, &st) == 0 || errno != ENOENT || stat(dir, &st) == 0 || errno != ENOENT;
}

/* After a restart: the notify fds kept in the fd store go back to their containers while
 * their inits are the ones named; a container whose files are gone ended while the agent
 * was away (its range is free again, even if the runtime's release did not get through),
 * one without a live init is stopped. */
static void containers_adopt(Containers *cs) {
        for (Container *c = cs->list, *next; c; c = next) {
                next = c->next;
                char prefix[FDSTORE_NAME_MAX + 1];
                snprintf(prefix, sizeof(prefix), "notify/%s/", c->tag);
                const char *name;
                int fd;
                while ((fd = fdstore_take_next(cs->store, prefix, &name)) >= 0) {
                        _cleanup_free_ char *why = NULL;
                        int r = container_adopt_notify_fd(c, name, fd, &why);
                        if (r < 0) {
                                log_info("Closing the kept notify fd '%s': %s", name, why ? why : strerror(-r));
                                safe_close(fd);
                                (void) fdstore_forget(cs->store, name);
                        }
                }
                if (c->state == CONTAINER_RUNNING) {
                        log_info("Container '%s' vetted again (init %s)", c->key, c->identity);
                        continue;
                }
                c->state = CONTAINER_STOPPED;
                if (container_exists(cs, c))
                        continue;
                log_info("Container '%s' ended while the agent was away: its uid range is free", c->key);
                int r = uid_ranges_release(cs->ranges, c->key);
                if (r < 0)
                        log_warning_errno(r, "Cannot free the uid range of '%s': %m", c->key);
                container_drop(cs, c, true);
        }
}

static bool exited(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

/* Ended without its runtime's release (a foreground run whose runtime was killed, a
 * container runc alone deleted): the runtime that registered it is gone (a record from
 * before a restart: for a while), the init the broker watches has exited, and runc holds
 * no state for it. */
static bool container_abandoned(const Container *c, ev_tstamp now) {
        if (c->id == c->key || c->broker)
                return false;
        if (c->runtime_pidfd >= 0 ? !exited(c->runtime_pidfd) : now - c->since < CONTAINERS_RESTORED_GRACE_SEC)
                return false;
        _cleanup_free_ char *state = NULL;
        struct stat st;
        if (asprintf(&state, "%.*s/%s/state.json", (int) (c->id - c->key - 1), c->key, c->id) < 0)
                return false;
        return stat(state, &st) < 0 && errno == ENOENT;
}

/* What the runtime's release would have done: the ID-mapped mounts go, the range is free. */
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        Containers *cs = container_of(w, Containers, sweep);
        for (Container *c = cs->list, *next; c; c = next) {
                next = c->next;
                if (!container_abandoned(c, ev_now(loop)))
                        continue;
                _cleanup_free_ char *dir = NULL, *why = NULL, *key = strdup(c->key);
                int r = key ? container_dir(cs->run_dir, key, &dir) : -ENOMEM;
                if (r >= 0)
                        r = idmap_container_remove(dir, &why);
                if (r < 0) {
                        if (!c->reclaim_failed)
                                log_warning("Container '%s' ended without its runtime's release; removing its mounts failed: %s",
                                            c->key, why ? why : strerror(-r));
                        c->reclaim_failed = true;
                        continue;
                }
                r = containers_release(cs, key); /* frees c */
                if (r < 0)
                        log_warning_errno(r, "Container '%s' ended without its runtime's release; giving its range back failed: %m", key);
                else
                        log_info("Container '%s' ended without its runtime's release: its mounts are removed and its range given back",
                                 key);
        }
}

int containers_new(struct ev_loop *loop, const char *state_dir, const char *run_dir, FdStore *store,
                   containers_report_t report, void *userdata, Containers **ret, char **reterr) {
        _cleanup_(containers_freep) Containers *cs = calloc(1, sizeof(Containers));
        if (!cs || !(cs->run_dir = strdup(run_dir)))
                return -ENOMEM;
        cs->loop = loop;
        cs->store = store;
        cs->listen_fd = -EBADF;
        cs->report = report;
        cs->userdata = userdata;
        _cleanup_close_ int journal = fdstore_take(store, JOURNAL_FDNAME);
        int r = broker_new(&BROKER_LIMITS_DEFAULT, journal, &cs->broker);
        if (r < 0)
                return error_set(reterr, r, "cannot set up the broker: %s", strerror(-r));
        if (journal < 0 && (r = fdstore_keep(store, JOURNAL_FDNAME, broker_journal_fd(cs->broker))) < 0)
                log_warning_errno(r, "Cannot keep the journal of vetted calls across restarts: %m");
        _cleanup_close_ int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(reterr, -errno, "cannot open '%s': %m", state_dir);
        r = uid_ranges_open(dfd, "ranges.json", UID_RANGE_FIRST, UID_RANGE_SIZE, UID_RANGES_MAX, &cs->ranges, reterr);
        if (r < 0)
                return r;
        /* Containers registered before a restart: a docker exec into one is vetted again. */
        for (size_t i = 0; i < uid_ranges_count(cs->ranges); i++) {
                uint32_t base;
                const char *key = uid_ranges_get(cs->ranges, i, &base);
                if ((r = container_add(cs, key, base)) < 0)
                        return r;
        }
        containers_adopt(cs);
        broker_journal_settle(cs->broker);
        dequeue_all(cs); /* the calls taken from the journal */
        ev_timer_init(&cs->sweep, sweep_cb, CONTAINERS_SWEEP_SEC, CONTAINERS_SWEEP_SEC);
        ev_timer_start(loop, &cs->sweep);
        *ret = TAKE_PTR(cs);
        return 0;
}

Containers *containers_free(Containers *cs) {
        if (!cs)
                return NULL;
        while (cs->clients)
                client_free(cs->clients);
        for (Container *c = cs->list, *next; c; c = next) {
                next = c->next;
                container_free(c, false);
        }
        if (cs->listen_fd >= 0) {
                ev_io_stop(cs->loop, &cs->listen_io);
                safe_close(cs->listen_fd);
        }
        ev_timer_stop(cs->loop, &cs->sweep);
        free(cs->listener);
        free(cs->run_dir);
        uid_ranges_free(cs->ranges);
        broker_free(cs->broker);
        free(cs);
        return NULL;
}

/* Adds the container whose range is recorded, watching the runtime that registers it. */
static int container_track(Containers *cs, const char *key, uint32_t base, pid_t runtime_pid) {
        int r = container_add(cs, key, base);
        if (r < 0)
                return r;
        Container *c = container_find(cs, key);
        safe_close(c->runtime_pidfd);
        /* Without it (a runtime already gone), the container is judged as one from before a restart. */
        c->runtime_pidfd = runtime_pid > 0 ? pidfd_open(runtime_pid, 0) : -EBADF;
        c->since = ev_now(cs->loop);
        return 0;
}

int containers_register(Containers *cs, const char *key, uint32_t share_base, pid_t runtime_pid, uint32_t *ret_base,
                        char **reterr) {
        uint32_t base = share_base;
        int r = share_base ? uid_ranges_share(cs->ranges, key, share_base, reterr) : uid_ranges_acquire(cs->ranges, key, &base, reterr);
        if (r < 0)
                return r;
        r = container_track(cs, key, base, runtime_pid);
        if (r < 0)
                return r;
        *ret_base = base;
        return 0;
}

int containers_claim(Containers *cs, const char *key, uint32_t base, uint32_t count, pid_t runtime_pid, char **reterr) {
        int r = uid_ranges_claim(cs->ranges, key, base, count, reterr);
        return r < 0 ? r : container_track(cs, key, base, runtime_pid);
}

int containers_release(Containers *cs, const char *key) {
        Container *c = container_find(cs, key);
        if (c)
                container_drop(cs, c, true);
        return uid_ranges_release(cs->ranges, key);
}

void containers_set_procfs(Containers *cs, Procfs *procfs) {
        cs->procfs = procfs;
        int e = broker_set_emulation(cs->broker, procfs ? procfs_mountpoint(procfs) : NULL);
        if (e < 0)
                log_warning_errno(e, "New proc mounts in containers show the VM's files: %m");
        for (Container *c = cs->list; c; c = c->next) {
                int r = c->broker ? procfs_container_add(procfs, c->key, broker_container_init_pid(c->broker)) : 0;
                if (r < 0)
                        log_warning_errno(r, "Container '%s' sees the VM's /proc files: %m", c->id);
        }
}

int containers_set_helper(Containers *cs, const char *path) {
        return broker_set_helper(cs->broker, path);
}

int containers_set_limits(Containers *cs, const BrokerLimits *limits) {
        return broker_set_limits(cs->broker, limits);
}

const BrokerLimits *containers_limits(const Containers *cs) {
        return broker_limits(cs->broker);
}

size_t containers_ranges(const Containers *cs) {
        return uid_ranges_count(cs->ranges);
}

size_t containers_count(const Containers *cs) {
        size_t n = 0;
        for (const Container *c = cs->list; c; c = c->next)
                n += c->state != CONTAINER_STOPPED;
        return n;
}

cJSON *containers_status(const Containers *cs) {
        cJSON *list = cJSON_CreateArray();
        for (const Container *c = cs->list; c; c = c->next) {
                if (c->state == CONTAINER_STOPPED)
                        continue;
                cJSON *item = cJSON_CreateObject();
                cJSON_AddStringToObject(item, "id", c->id);
                if (c->id != c->key) { /* "ROOT/ID"; "/ID" for the root "/" */
                        size_t n = (size_t) (c->id - c->key) - 1;
                        _cleanup_free_ char *root = strndup(c->key, n ? n : 1);
                        cJSON_AddStringToObject(item, "root", root ?: "");
                }
                cJSON_AddNumberToObject(item, "pid", c->broker ? broker_container_init_pid(c->broker) : 0);
                cJSON_AddNumberToObject(item, "uid_base", c->base);
                cJSON_AddNumberToObject(item, "allowed", (double) c->allowed);
                cJSON_AddNumberToObject(item, "denied", (double) c->denied);
                unsigned helpers = 0, queued = 0;
                if (c->broker)
                        broker_usage(cs->broker, c->broker, &helpers, &queued);
                cJSON_AddNumberToObject(item, "helpers", helpers);
                cJSON_AddNumberToObject(item, "queued", queued);
                cJSON_AddItemToArray(list, item);
        }
        return list;
}
