/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "proto/address.h"
#include "agent/control.h"
#include "log.h"
#include "proto/frame.h"
#include "util.h"

/* First allocation of an outgoing queue; it doubles from there up to the limit. */
#define CLIENT_QUEUE_CHUNK (16u * 1024u)

/* Connections accepted per wakeup of a listener: a flood cannot hold the loop. */
#define ACCEPT_BURST 64u

typedef enum ClientAccess {
        ACCESS_NONE,      /* closed at accept */
        ACCESS_READ_ONLY, /* a member of the reader group */
        ACCESS_FULL,      /* root, or the vsock peer the listener was set up for */
} ClientAccess;

/* Who is at the other end of an accepted connection. */
typedef struct Peer {
        ClientAccess access;
        bool is_vsock;
        pid_t pid;
        uid_t uid; /* 0 for a vsock peer */
        char name[64]; /* "pid 123" or "vsock CID 2", for logs */
} Peer;

typedef enum ClientState {
        CLIENT_OPEN,
        CLIENT_CLOSING, /* reads no more; closed once its queued replies are written */
        CLIENT_DROPPED, /* dropped while its own handler runs; freed when that returns */
} ClientState;

typedef struct Listener {
        ControlServer *server;
        ev_io io;
        int family;
        unsigned peer_cid; /* AF_VSOCK: the only peer CID accepted */
        struct Listener *next;
} Listener;

struct ControlClient {
        ControlServer *server;
        ControlClient *prev, *next;
        ev_io io;
        int io_events; /* what io is started for, 0 when stopped */
        ClientState state;
        bool dispatching;
        bool subscribed;

        Peer peer;

        FrameDecoder *decoder;
        char *out; /* bytes out_start..out_end are still to be written */
        size_t out_start, out_end, out_allocated;
};

struct ControlServer {
        struct ev_loop *loop;
        const ControlMethod *methods;
        size_t n_methods;
        void *userdata;
        gid_t reader_gid;

        Listener *listeners;
        ControlClient *clients;
        size_t n_clients;
        size_t n_unprivileged; /* clients whose uid is not 0 */
        size_t queued_bytes; /* the sum of the clients' out_allocated */
};

static int method_subscribe(void *userdata, ControlClient *c, const cJSON *params, cJSON **ret_result,
                            char **ret_message) {
        _cleanup_json_ cJSON *result = cJSON_CreateObject();
        if (!result || !cJSON_AddTrueToObject(result, "subscribed"))
                return -ENOMEM;
        c->subscribed = true;
        *ret_result = TAKE_PTR(result);
        return 0;
}

static const ControlMethod method_events_subscribe = { "events.subscribe", true, method_subscribe };

static bool client_has_output(const ControlClient *c) {
        return c->out_start < c->out_end;
}

static void client_update_io(ControlClient *c) {
        int events = 0;
        if (c->state == CLIENT_OPEN)
                events |= EV_READ;
        if (c->state != CLIENT_DROPPED && client_has_output(c))
                events |= EV_WRITE;
        if (events == c->io_events)
                return;

        ev_io_stop(c->server->loop, &c->io);
        ev_io_set(&c->io, c->io.fd, events);
        if (events != 0)
                ev_io_start(c->server->loop, &c->io);
        c->io_events = events;
}

static void client_release_output(ControlClient *c) {
        c->server->queued_bytes -= c->out_allocated;
        free(c->out);
        c->out = NULL;
        c->out_start = c->out_end = c->out_allocated = 0;
}

static ControlClient *client_free(ControlClient *c) {
        if (!c)
                return NULL;

        ControlServer *s = c->server;
        ev_io_stop(s->loop, &c->io);
        safe_close(c->io.fd);
        frame_decoder_free(c->decoder);
        client_release_output(c);

        if (c->prev)
                c->prev->next = c->next;
        else
                s->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_clients--;
        if (c->peer.uid != 0)
                s->n_unprivileged--;

        free(c);
        return NULL;
}

/* Frees c now, or, while c's own handler runs, as soon as it returns. */
static void client_drop(ControlClient *c) {
        if (!c->dispatching) {
                client_free(c);
                return;
        }
        c->state = CLIENT_DROPPED;
        client_update_io(c);
}

/* Appends a frame to the outgoing queue; -ENOBUFS if that would exceed the limit. */
static int client_queue(ControlClient *c, const char *frame, size_t size) {
        size_t queued = c->out_end - c->out_start;
        if (size > CONTROL_CLIENT_QUEUE_MAX - queued)
                return -ENOBUFS;

        if (c->out_allocated - c->out_end < size) {
                if (c->out_start > 0) {
                        memmove(c->out, c->out + c->out_start, queued);
                        c->out_start = 0;
                        c->out_end = queued;
                }
                if (c->out_allocated - queued < size) {
                        size_t n = c->out_allocated > 0 ? 2 * c->out_allocated : CLIENT_QUEUE_CHUNK;
                        if (n < queued + size)
                                n = queued + size;
                        if (n > CONTROL_CLIENT_QUEUE_MAX)
                                n = CONTROL_CLIENT_QUEUE_MAX;
                        char *p = realloc(c->out, n);
                        if (!p)
                                return -ENOMEM;
                        c->server->queued_bytes += n - c->out_allocated;
                        c->out = p;
                        c->out_allocated = n;
                }
        }

        memcpy(c->out + c->out_end, frame, size);
        c->out_end += size;
        client_update_io(c);
        return 0;
}

/* Writes as much of the queue as the socket takes. */
static int client_flush(ControlClient *c) {
        while (client_has_output(c)) {
                ssize_t n = send(c->io.fd, c->out + c->out_start, c->out_end - c->out_start, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : -errno;
                }
                c->out_start += (size_t) n;
        }

        /* An idle client holds no buffer. */
        client_release_output(c);
        return 0;
}

/* Builds and encodes the reply to request id: result (owned; NULL means null) when code is
 * not negative, else the error code and message. */
static int reply_encode(const cJSON *id, int code, cJSON *result, const char *message, char **ret, size_t *ret_size) {
        _cleanup_json_ cJSON *reply = NULL;
        if (code >= 0)
                reply = jsonrpc_result(id, result ?: cJSON_CreateNull());
        else {
                cJSON_Delete(result);
                reply = jsonrpc_error(id, code, message ?: "internal error");
        }
        if (!reply)
                return -ENOMEM;
        return frame_encode_json(reply, ret, ret_size);
}

/* Queues a reply. A client that lets its replies pile up is dropped (the caller frees it
 * on the error). */
static int client_reply(ControlClient *c, const cJSON *id, int code, cJSON *result, const char *message) {
        _cleanup_free_ char *frame = NULL;
        size_t size;

        int r = reply_encode(id, code, result, message, &frame, &size);
        if (r == -EMSGSIZE)
                r = reply_encode(id, JSONRPC_INTERNAL_ERROR, NULL, "internal error: the reply exceeds the frame size limit",
                                 &frame, &size);
        if (r < 0)
                return r;

        r = client_queue(c, frame, size);
        if (r == -ENOBUFS)
                log_warning("dropping control client %s: %zu bytes queued, no room for a %zu-byte reply", c->peer.name,
                            c->out_end - c->out_start, size);
        return r;
}

/* Answers a stream we cannot go on reading with an error (id null), then closes it. */
static int client_fail(ControlClient *c, int code, const char *message) {
        c->state = CLIENT_CLOSING;
        return client_reply(c, NULL, code, NULL, message ?: "invalid message");
}

static const ControlMethod *server_find_method(const ControlServer *s, const char *name) {
        if (streq(name, method_events_subscribe.name))
                return &method_events_subscribe;
        for (size_t i = 0; i < s->n_methods; i++)
                if (streq(name, s->methods[i].name))
                        return &s->methods[i];
        return NULL;
}

/* Checks access and runs the method: 0 and a result, or a JSON-RPC error code and message. */
static int client_dispatch(ControlClient *c, const char *name, const cJSON *params, cJSON **ret_result,
                           char **ret_message) {
        ControlServer *s = c->server;

        const ControlMethod *method = server_find_method(s, name);
        if (!method)
                return error_set(ret_message, JSONRPC_METHOD_NOT_FOUND, "unknown method '%s'", name);
        if (!method->read_only && c->peer.access != ACCESS_FULL)
                return error_set(ret_message, JSONRPC_PERMISSION_DENIED, "permission denied: '%s' needs root", name);

        c->dispatching = true;
        int r = method->handler(s->userdata, c, params, ret_result, ret_message);
        c->dispatching = false;

        /* JSON-RPC codes live in [-32768, -32000]; anything else negative is an errno. */
        if (r < 0 && (r < -32768 || r > -32000)) {
                free(*ret_message);
                *ret_message = NULL;
                return error_set(ret_message, JSONRPC_INTERNAL_ERROR, "internal error: %s", strerror(-r));
        }
        return r;
}

static int client_handle_body(ControlClient *c, const char *body, size_t size) {
        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = NULL;
        _cleanup_free_ char *error = NULL;

        int r = jsonrpc_parse(body, size, &m, &error);
        if (r == -EBADMSG)
                return client_fail(c, JSONRPC_PARSE_ERROR, error);
        if (r == -EINVAL)
                return client_fail(c, JSONRPC_INVALID_REQUEST, error);
        if (r < 0)
                return r;
        if (jsonrpc_message_kind(m) != JSONRPC_KIND_REQUEST) {
                log_debug("Ignoring a control message without a reply from %s", c->peer.name);
                return 0;
        }

        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *message = NULL;
        r = client_dispatch(c, jsonrpc_message_method(m), jsonrpc_message_params(m), &result, &message);
        if (c->state == CLIENT_DROPPED)
                return -ECONNABORTED;
        return client_reply(c, jsonrpc_message_id(m), r, r >= 0 ? TAKE_PTR(result) : NULL, message);
}

/* One read, then every complete frame in it. A negative return means: free the client. */
static int client_read(ControlClient *c) {
        void *buf;
        size_t size;
        int r = frame_decoder_get_space(c->decoder, &buf, &size);
        if (r < 0)
                return r;

        ssize_t n = read(c->io.fd, buf, size);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0) {
                /* The peer is done sending; it still gets the replies already queued. */
                c->state = CLIENT_CLOSING;
                return 0;
        }
        frame_decoder_commit(c->decoder, (size_t) n);

        while (c->state == CLIENT_OPEN) {
                _cleanup_free_ char *body = NULL;
                r = frame_decoder_next(c->decoder, &body, &size);
                if (r == -EMSGSIZE)
                        return client_fail(c, JSONRPC_INVALID_REQUEST,
                                           "invalid frame: the length must be 1 to 1048576 bytes");
                if (r <= 0)
                        return r;
                r = client_handle_body(c, body, size);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void client_on_io(struct ev_loop *loop, ev_io *w, int revents) {
        ControlClient *c = container_of(w, ControlClient, io);
        int r = 0;

        if (revents & EV_READ)
                r = client_read(c);
        if (r >= 0)
                r = client_flush(c);

        if (r < 0 || (c->state != CLIENT_OPEN && !client_has_output(c))) {
                if (r < 0 && r != -ENOBUFS && r != -ECONNABORTED)
                        log_debug_errno(r, "Closing the control connection of %s: %m", c->peer.name);
                client_free(c);
                return;
        }
        client_update_io(c);
}

/* Whether gid is among the supplementary groups of the peer of a unix socket. */
static int peer_has_group(int fd, gid_t gid) {
        gid_t some[64];
        _cleanup_free_ gid_t *all = NULL;
        gid_t *groups = some;
        socklen_t size = sizeof(some);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &size) < 0) {
                if (errno != ERANGE)
                        return -errno;
                /* size now says how much is needed. */
                all = malloc(size);
                if (!all)
                        return -ENOMEM;
                groups = all;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &size) < 0)
                        return -errno;
        }

        for (size_t i = 0; i < size / sizeof(gid_t); i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

static int peer_identify_unix(const ControlServer *s, int fd, Peer *ret) {
        struct ucred cred;
        socklen_t size = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) < 0)
                return -errno;

        *ret = (Peer) { .pid = cred.pid, .uid = cred.uid, .access = ACCESS_NONE };
        snprintf(ret->name, sizeof(ret->name), "pid %d", (int) cred.pid);
        if (cred.uid == 0)
                ret->access = ACCESS_FULL;
        else if (s->reader_gid != (gid_t) -1 && cred.gid == s->reader_gid)
                ret->access = ACCESS_READ_ONLY;
        else if (s->reader_gid != (gid_t) -1) {
                int r = peer_has_group(fd, s->reader_gid);
                if (r < 0)
                        return r;
                ret->access = r ? ACCESS_READ_ONLY : ACCESS_NONE;
        }
        return 0;
}

/* Whether the peer may hold one more connection; if not, *reterr says why. Root keeps
 * CONTROL_CLIENTS_ROOT_RESERVED slots that no other uid can take. */
static int server_admit(const ControlServer *s, const Peer *p, char **reterr) {
        if (p->access == ACCESS_NONE)
                return error_set(reterr, -EPERM, "permission denied: uid %u is neither root nor in the stockade group",
                                 (unsigned) p->uid);
        if (s->n_clients >= CONTROL_CLIENTS_MAX)
                return error_set(reterr, -EUSERS, "too many connections: the agent serves %zu", s->n_clients);
        if (p->uid == 0)
                return 0;
        if (s->n_unprivileged >= CONTROL_CLIENTS_MAX - CONTROL_CLIENTS_ROOT_RESERVED)
                return error_set(reterr, -EUSERS, "too many connections from peers other than root");

        size_t n = 0;
        for (const ControlClient *c = s->clients; c; c = c->next)
                n += c->peer.uid == p->uid;
        if (n >= CONTROL_CLIENTS_PER_UID)
                return error_set(reterr, -EUSERS, "too many connections: uid %u has %zu open", (unsigned) p->uid, n);
        return 0;
}

/* Takes fd on success. */
static int client_new(ControlServer *s, int fd, const Peer *p) {
        ControlClient *c = calloc(1, sizeof(ControlClient));
        if (!c)
                return -ENOMEM;
        *c = (ControlClient) { .server = s, .peer = *p };

        int r = frame_decoder_new(&c->decoder);
        if (r < 0) {
                free(c);
                return r;
        }

        ev_io_init(&c->io, client_on_io, fd, 0);
        c->next = s->clients;
        if (s->clients)
                s->clients->prev = c;
        s->clients = c;
        s->n_clients++;
        if (c->peer.uid != 0)
                s->n_unprivileged++;
        client_update_io(c);

        log_debug("Control connection from %s", c->peer.name);
        return 0;
}

/* Tells a refused peer why, if its socket takes the frame now, and closes the connection. */
static void peer_refuse(int fd, const char *message) {
        _cleanup_free_ char *frame = NULL;
        size_t size;
        if (reply_encode(NULL, JSONRPC_PERMISSION_DENIED, NULL, message, &frame, &size) >= 0)
                (void) send(fd, frame, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        safe_close(fd);
}

/* Accepts one connection: 1 if one was waiting, 0 if none, -errno. */
static int listener_accept(Listener *l) {
        ControlServer *s = l->server;
        struct sockaddr_vm vm = {};
        socklen_t size = sizeof(vm);
        bool vsock = l->family == AF_VSOCK;

        _cleanup_close_ int fd = accept4(l->io.fd, vsock ? (struct sockaddr *) &vm : NULL, vsock ? &size : NULL,
                                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
                return errno == EAGAIN ? 0 : -errno;

        Peer p;
        int r;
        if (vsock) {
                if (vm.svm_cid != l->peer_cid) {
                        log_debug("Refusing a control connection from vsock CID %u", vm.svm_cid);
                        return 1;
                }
                p = (Peer) { .access = ACCESS_FULL, .is_vsock = true };
                snprintf(p.name, sizeof(p.name), "vsock CID %u", vm.svm_cid);
        } else {
                r = peer_identify_unix(s, fd, &p);
                if (r < 0) {
                        log_debug_errno(r, "Refusing a control connection whose peer is unknown: %m");
                        return 1;
                }
        }

        _cleanup_free_ char *why = NULL;
        if (server_admit(s, &p, &why) < 0) {
                log_debug("Refusing the control connection of %s: %s", p.name, why);
                peer_refuse(TAKE_FD(fd), why);
                return 1;
        }

        r = client_new(s, fd, &p);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up a control connection: %m");
                return 1;
        }
        TAKE_FD(fd);
        return 1;
}

static void listener_on_io(struct ev_loop *loop, ev_io *w, int revents) {
        Listener *l = container_of(w, Listener, io);
        for (size_t i = 0; i < ACCEPT_BURST; i++) {
                int r = listener_accept(l);
                if (r < 0 && r != -EINTR)
                        log_debug_errno(r, "Failed to accept a control connection: %m");
                if (r <= 0)
                        return;
        }
}

/* Takes fd on success. */
static int server_add_listener(ControlServer *s, int fd, int family, unsigned peer_cid) {
        Listener *l = calloc(1, sizeof(Listener));
        if (!l)
                return -ENOMEM;

        *l = (Listener) { .server = s, .family = family, .peer_cid = peer_cid, .next = s->listeners };
        ev_io_init(&l->io, listener_on_io, fd, EV_READ);
        ev_io_start(s->loop, &l->io);
        s->listeners = l;
        return 0;
}

static Listener *listener_free(ControlServer *s, Listener *l) {
        ev_io_stop(s->loop, &l->io);
        safe_close(l->io.fd);
        free(l);
        return NULL;
}

int control_server_new(struct ev_loop *loop, const ControlMethod *methods, size_t n_methods, void *userdata,
                       gid_t reader_gid, ControlServer **ret) {
        assert(loop);
        assert(methods || n_methods == 0);
        assert(ret);

        ControlServer *s = calloc(1, sizeof(ControlServer));
        if (!s)
                return -ENOMEM;
        *s = (ControlServer) {
                .loop = loop,
                .methods = methods,
                .n_methods = n_methods,
                .userdata = userdata,
                .reader_gid = reader_gid,
        };
        *ret = s;
        return 0;
}

ControlServer *control_server_free(ControlServer *s) {
        if (!s)
                return NULL;

        while (s->clients) {
                assert(!s->clients->dispatching);
                client_free(s->clients);
        }
        while (s->listeners) {
                Listener *next = s->listeners->next;
                listener_free(s, s->listeners);
                s->listeners = next;
        }
        free(s);
        return NULL;
}

int control_server_listen(ControlServer *s, const char *address, char **reterr) {
        assert(s);
        assert(address);

        ControlAddress a;
        int r = control_address_parse(address, &a, reterr);
        if (r < 0)
                return r;

        unsigned peer_cid = 0;
        if (a.sa.sa_family == AF_VSOCK) {
                peer_cid = a.vm.svm_cid;
                a.vm.svm_cid = VMADDR_CID_ANY;
        } else {
                r = unix_socket_remove_stale(a.un.sun_path, reterr);
                if (r < 0)
                        return r;
        }

        _cleanup_close_ int fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return error_set(reterr, -errno, "cannot create a socket for '%s': %s", address, strerror(errno));
        if (bind(fd, &a.sa, a.size) < 0)
                return error_set(reterr, -errno, "cannot bind '%s': %s", address, strerror(errno));
        /* Only root and the reader group may connect; the peer's credentials are checked
         * again at accept, for sockets set up by others. */
        if (a.sa.sa_family == AF_UNIX && s->reader_gid != (gid_t) -1 && chown(a.un.sun_path, 0, s->reader_gid) < 0)
                return error_set(reterr, -errno, "cannot give '%s' to group %u: %s", a.un.sun_path,
                                 (unsigned) s->reader_gid, strerror(errno));
        if (a.sa.sa_family == AF_UNIX && chmod(a.un.sun_path, s->reader_gid != (gid_t) -1 ? 0660 : 0600) < 0)
                return error_set(reterr, -errno, "cannot set the mode of '%s': %s", a.un.sun_path, strerror(errno));
        if (listen(fd, SOMAXCONN) < 0)
                return error_set(reterr, -errno, "cannot listen on '%s': %s", address, strerror(errno));

        r = server_add_listener(s, fd, a.sa.sa_family, peer_cid);
        if (r < 0)
                return error_set(reterr, r, "cannot listen on '%s': %s", address, strerror(-r));
        return TAKE_FD(fd);
}

int control_server_adopt(ControlServer *s, int fd, char **reterr) {
        assert(s);
        assert(fd >= 0);

        struct sockaddr_storage sa;
        socklen_t size = sizeof(sa);
        if (getsockname(fd, (struct sockaddr *) &sa, &size) < 0)
                return error_set(reterr, -errno, "fd %d is not a socket: %s", fd, strerror(errno));
        if (sa.ss_family != AF_UNIX && sa.ss_family != AF_VSOCK)
                return error_set(reterr, -EAFNOSUPPORT, "fd %d is neither a unix nor a vsock socket", fd);

        int type = 0, listening = 0;
        socklen_t type_size = sizeof(type), listening_size = sizeof(listening);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_size) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &listening_size) < 0)
                return error_set(reterr, -errno, "cannot inspect socket fd %d: %s", fd, strerror(errno));
        if (type != SOCK_STREAM || !listening)
                return error_set(reterr, -EINVAL, "fd %d is not a listening stream socket", fd);

        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return error_set(reterr, -errno, "cannot set up socket fd %d: %s", fd, strerror(errno));

        int r = server_add_listener(s, fd, sa.ss_family, sa.ss_family == AF_VSOCK ? VMADDR_CID_HOST : 0);
        if (r < 0)
                return error_set(reterr, r, "cannot listen on fd %d: %s", fd, strerror(-r));
        return 0;
}

void control_server_emit(ControlServer *s, const char *event, cJSON *params) {
        assert(s);
        assert(event);

        _cleanup_json_ cJSON *msg = jsonrpc_notification(event, params);
        _cleanup_free_ char *frame = NULL;
        size_t size;
        int r = msg ? frame_encode_json(msg, &frame, &size) : -ENOMEM;
        if (r < 0) {
                log_warning_errno(r, "Failed to send event '%s': %m", event);
                return;
        }

        ControlClient *next;
        for (ControlClient *c = s->clients; c; c = next) {
                next = c->next;
                if (!c->subscribed || c->state != CLIENT_OPEN)
                        continue;

                r = client_queue(c, frame, size);
                if (r == -ENOBUFS)
                        log_warning("dropping slow event subscriber %s: %zu bytes queued", c->peer.name,
                                    c->out_end - c->out_start);
                else if (r < 0)
                        log_warning_errno(r, "dropping event subscriber %s: %m", c->peer.name);
                if (r < 0)
                        client_drop(c);
        }
}

size_t control_server_n_clients(const ControlServer *s) {
        assert(s);
        return s->n_clients;
}

size_t control_server_queued_bytes(const ControlServer *s) {
        assert(s);
        return s->queued_bytes;
}

int control_server_get_peer(const ControlClient *c, pid_t *ret_pid, uid_t *ret_uid) {
        assert(c);

        if (c->peer.is_vsock)
                return -ENODATA;
        if (ret_pid)
                *ret_pid = c->peer.pid;
        if (ret_uid)
                *ret_uid = c->peer.uid;
        return 0;
}
