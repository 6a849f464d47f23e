/* SPDX-License-Identifier: Apache-2.0 */
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "agent/containers.h"
#include "enforcer/broker.h"
#include "enforcer/uidrange.h"
#include "log.h"
#include "proto/seccomp-listener.h"
#include "util.h"

#define LISTENER_CLIENTS_MAX 256

typedef struct Container Container;

/* One notify fd: the container's init, or one "exec". */
typedef struct NotifyWatch {
        ev_io io;
        Container *container;
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

struct Container {
        Containers *owner;
        char *key; /* "ROOT/ID", or the bare id of a record from before roots were */
        const char *id; /* in key */
        uint32_t base;
        BrokerContainer *broker; /* from the first notify fd (the init's) until init exits */
        ev_io exit_io; /* the init's pidfd */
        NotifyWatch *watches;
        PendingWatch *pendings;
        uint64_t allowed, denied;
        Container *next;
};

struct Containers {
        struct ev_loop *loop;
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

static void container_stop_broker(Container *c) {
        struct ev_loop *loop = c->owner->loop;
        for (NotifyWatch *w = c->watches, *next; w; w = next) {
                next = w->next;
                ev_io_stop(loop, &w->io);
                safe_close(w->io.fd);
                free(w);
        }
        c->watches = NULL;
        while (c->pendings) {
                broker_pending_free(c->pendings->pending);
                pending_watch_remove(c, c->pendings);
        }
        if (c->broker) {
                ev_io_stop(loop, &c->exit_io);
                c->broker = broker_container_free(c->broker);
        }
}

static Container *container_free(Container *c) {
        if (!c)
                return NULL;
        container_stop_broker(c);
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
                c->next = cs->list;
                cs->list = c;
        }
        c->base = base;
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
        if (e->denied)
                c->owner->report(c->owner->userdata, c->id, e->syscall, true, e->reason[0] ? e->reason : "refused");
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

static void dequeue_all(Containers *cs) {
        for (Container *c = cs->list; c; c = c->next)
                for (int r = 0; c->broker && r != -EAGAIN;) {
                        BrokerPending *pending = NULL;
                        BrokerEvent e = {};
                        r = broker_container_dequeue(c->broker, &pending, &e);
                        if (r != -EAGAIN)
                                handled(c, r, pending, &e);
                }
}

static void notify_watch_remove(Container *c, NotifyWatch *w) {
        ev_io_stop(c->owner->loop, &w->io);
        safe_close(w->io.fd);
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
        container_stop_broker(c);
        dequeue_all(c->owner); /* its helpers' slots */
}

/* init_pid: the container's init, whose exit ends the record's fds. Without its masked
 * paths (from the spec the runtime wrote into the bundle), nothing is vetted: the fd is
 * closed and the container's vetted calls fail. */
static int container_add_notify_fd(Container *c, pid_t init_pid, const char *bundle, int fd, char **reterr) {
        if (!c->broker) {
                char **masked = NULL;
                size_t n = 0;
                int r = bundle ? broker_masked_paths(bundle, &masked, &n, reterr)
                               : error_set(reterr, -EINVAL, "no bundle, so no masked paths");
                if (r >= 0)
                        r = broker_container_new(c->owner->broker, c->id, init_pid, c->base, (const char *const *) masked,
                                                 n, &c->broker, reterr);
                for (size_t i = 0; i < n; i++)
                        free(masked[i]);
                free(masked);
                if (r < 0)
                        return r;
                ev_io_init(&c->exit_io, exit_cb, broker_container_pidfd(c->broker), EV_READ);
                ev_io_start(c->owner->loop, &c->exit_io);
        }
        NotifyWatch *w = calloc(1, sizeof(NotifyWatch));
        if (!w)
                return -ENOMEM;
        w->container = c;
        w->next = c->watches;
        c->watches = w;
        ev_io_init(&w->io, notify_cb, fd, EV_READ);
        ev_io_start(c->owner->loop, &w->io);
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

int containers_listen(Containers *cs, const char *path, char **reterr) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return error_set(reterr, -ENAMETOOLONG, "'%s' is too long for a socket path", path);
        strcpy(sa.sun_path, path);

        int r = unix_socket_remove_stale(path, reterr);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return error_set(reterr, -errno, "socket: %m");
        mode_t old = umask(0077);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0 || listen(fd, 64) < 0)
                return error_set(reterr, -errno, "cannot listen on '%s': %m", path);

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

int containers_new(struct ev_loop *loop, const char *state_dir, containers_report_t report, void *userdata,
                   Containers **ret, char **reterr) {
        _cleanup_(containers_freep) Containers *cs = calloc(1, sizeof(Containers));
        if (!cs)
                return -ENOMEM;
        cs->loop = loop;
        cs->listen_fd = -EBADF;
        cs->report = report;
        cs->userdata = userdata;
        int r = broker_new(&BROKER_LIMITS_DEFAULT, &cs->broker);
        if (r < 0)
                return error_set(reterr, r, "cannot set up the broker: %s", strerror(-r));
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
                container_free(c);
        }
        if (cs->listen_fd >= 0) {
                ev_io_stop(cs->loop, &cs->listen_io);
                safe_close(cs->listen_fd);
        }
        free(cs->listener);
        uid_ranges_free(cs->ranges);
        broker_free(cs->broker);
        free(cs);
        return NULL;
}

int containers_register(Containers *cs, const char *key, uint32_t share_base, uint32_t *ret_base, char **reterr) {
        uint32_t base = share_base;
        int r = share_base ? uid_ranges_share(cs->ranges, key, share_base, reterr) : uid_ranges_acquire(cs->ranges, key, &base, reterr);
        if (r < 0)
                return r;
        r = container_add(cs, key, base);
        if (r < 0)
                return r;
        *ret_base = base;
        return 0;
}

int containers_release(Containers *cs, const char *key) {
        Container *c = container_find(cs, key);
        if (c) {
                container_unlink(cs, c);
                container_free(c);
                dequeue_all(cs);
        }
        return uid_ranges_release(cs->ranges, key);
}

int containers_set_limits(Containers *cs, const BrokerLimits *limits) {
        return broker_set_limits(cs->broker, limits);
}

const BrokerLimits *containers_limits(const Containers *cs) {
        return broker_limits(cs->broker);
}

size_t containers_count(const Containers *cs) {
        return uid_ranges_count(cs->ranges);
}

cJSON *containers_status(const Containers *cs) {
        cJSON *list = cJSON_CreateArray();
        for (const Container *c = cs->list; c; c = c->next) {
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
