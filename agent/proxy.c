/* SPDX-License-Identifier: Apache-2.0 */
#include <ev.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "json.h"
#include "log.h"
#include "proto/http.h"
#include "proxy.h"
#include "util.h"

/* What a direction expects next. */
typedef enum PipeState {
        PIPE_HEAD,     /* a request (or response) head */
        PIPE_LENGTH,   /* `remaining` bytes of body */
        PIPE_CHUNKED,
        PIPE_WAIT,     /* requests: the last one is answered before the next is read */
        PIPE_UNTIL_CLOSE,
        PIPE_RAW,      /* hijacked: bytes pass as they come */
        PIPE_CLOSING,  /* nothing more is read: what is queued goes out, then the connection ends */
} PipeState;

/* One direction: bytes read from in's fd into buf; [0, fwd) checked and going to out's fd,
 * of which [off, fwd) not yet written; [fwd, len) not yet parsed. The buffer exists only
 * while bytes wait. */
typedef struct Pipe {
        struct Conn *conn;
        ev_io in, out;
        char *buf;
        size_t len, fwd, off;
        PipeState state;
        uint64_t remaining;
        HttpChunks chunks;
        bool eof, shut;
} Pipe;

typedef struct Conn {
        Proxy *proxy;
        Pipe up, down; /* client -> engine, engine -> client */
        bool head_request, upgrade_request, hijack_route;
        bool answered; /* the engine's answer to the last request is complete */
        struct Conn *prev, *next;
} Conn;

struct Proxy {
        struct ev_loop *loop;
        ev_io listener;
        char *path, *engine, *container_id;
        const CommandList *list;
        proxy_refused_t refused;
        void *userdata;
        Conn *conns;
        ProxyCounters counters;
};

static void conn_free(Conn *c) {
        Proxy *p = c->proxy;
        Pipe *pipes[] = { &c->up, &c->down };
        for (size_t i = 0; i < ELEMENTSOF(pipes); i++) {
                ev_io_stop(p->loop, &pipes[i]->in);
                ev_io_stop(p->loop, &pipes[i]->out);
                free(pipes[i]->buf);
        }
        safe_close(c->up.in.fd);
        safe_close(c->down.in.fd);
        if (c->prev)
                c->prev->next = c->next;
        else
                p->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        p->counters.connections--;
        free(c);
}

/* Drops what is not parsed yet and reads no more: the connection ends once the rest is out. */
static void pipe_close(Pipe *pp) {
        pp->state = PIPE_CLOSING;
        pp->len = pp->fwd;
        pp->eof = true;
}

/* Queues a response of the proxy's own to the client and ends the connection after it. */
static void conn_answer(Conn *c, int status, const char *reason, const char *message) {
        _cleanup_free_ char *body = NULL, *text = NULL;
        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        if (json && cJSON_AddStringToObject(json, "message", message))
                body = cJSON_PrintUnformatted(json);
        int n = body ? asprintf(&text,
                                "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                                status, reason, strlen(body) + 1, body)
                     : -1;
        c->up.state = PIPE_CLOSING;
        c->up.len = c->up.fwd = c->up.off = 0;
        Pipe *d = &c->down;
        pipe_close(d); /* after what is already checked: the end of the last answer */
        char *buf = n > 0 ? realloc(d->buf, d->len + (size_t) n) : NULL;
        if (buf) {
                memcpy(buf + d->len, text, (size_t) n);
                d->buf = buf;
                d->len = d->fwd = d->len + (size_t) n;
        }
}

static void refuse(Conn *c, const HttpRequest *req, const char *command) {
        Proxy *p = c->proxy;
        char message[256];
        p->counters.refused++;
        if (command && *command)
                snprintf(message, sizeof(message), "stockade: the docker command '%s' is not allowed in this container by the administrator",
                         command);
        else if (req)
                snprintf(message, sizeof(message), "stockade: the engine API request '%s %.100s' is not allowed in this container",
                         req->method, req->path);
        else
                snprintf(message, sizeof(message), "stockade: malformed request to the engine socket");
        if (p->refused)
                p->refused(p->userdata, p->container_id, command && *command ? command : NULL, req ? req->method : "?",
                           req ? req->path : "?");
        conn_answer(c, req ? 403 : 400, req ? "Forbidden" : "Bad Request", message);
}

/* After a head: where the body leads. */
static void pipe_start_body(Pipe *pp, HttpBody body, uint64_t length, PipeState after) {
        pp->state = body == HTTP_BODY_LENGTH ? PIPE_LENGTH : body == HTTP_BODY_CHUNKED ? PIPE_CHUNKED
                  : body == HTTP_BODY_UNTIL_CLOSE ? PIPE_UNTIL_CLOSE : after;
        pp->remaining = length;
        pp->chunks = (HttpChunks) {};
}

/* Consumes body bytes from [fwd, len); *ret_done once the body has ended. */
static int pipe_body(Pipe *pp, bool *ret_done) {
        size_t avail = pp->len - pp->fwd;
        *ret_done = false;
        if (pp->state == PIPE_LENGTH) {
                size_t n = avail < pp->remaining ? avail : (size_t) pp->remaining;
                pp->fwd += n;
                pp->remaining -= n;
                *ret_done = pp->remaining == 0;
                return 0;
        }
        ssize_t n = http_chunks_feed(&pp->chunks, pp->buf + pp->fwd, avail, ret_done);
        if (n < 0)
                return (int) n;
        pp->fwd += (size_t) n;
        return 0;
}

static void process_up(Conn *c) {
        Proxy *p = c->proxy;
        Pipe *up = &c->up;
        while (up->fwd < up->len) {
                bool done;
                switch (up->state) {
                case PIPE_HEAD: {
                        HttpRequest req;
                        ssize_t n = http_request_parse(up->buf + up->fwd, up->len - up->fwd, &req);
                        if (n == 0)
                                return;
                        if (n < 0)
                                return refuse(c, NULL, NULL);
                        char command[64];
                        if (!engine_request_allowed(p->list, req.method, req.path, command))
                                return refuse(c, &req, command);
                        p->counters.allowed++;
                        up->fwd += (size_t) n;
                        c->head_request = streq(req.method, "HEAD");
                        c->upgrade_request = req.upgrade;
                        c->hijack_route = engine_request_hijacks(req.method, req.path);
                        c->answered = false;
                        c->down.state = PIPE_HEAD;
                        pipe_start_body(up, req.body, req.content_length, PIPE_WAIT);
                        break;
                }
                case PIPE_LENGTH:
                case PIPE_CHUNKED:
                        if (pipe_body(up, &done) < 0)
                                return refuse(c, NULL, NULL);
                        /* The engine may answer before reading the whole body. */
                        if (done)
                                up->state = c->answered ? PIPE_HEAD : PIPE_WAIT;
                        break;
                case PIPE_RAW:
                        up->fwd = up->len;
                        break;
                default:
                        return; /* PIPE_WAIT: held until the answer; PIPE_CLOSING: dropped */
                }
        }
}

/* A response has ended: the client's next request may be read. */
static void response_done(Conn *c) {
        c->answered = true;
        c->down.state = PIPE_WAIT;
        if (c->up.state == PIPE_WAIT)
                c->up.state = PIPE_HEAD;
}

static void process_down(Conn *c) {
        Pipe *down = &c->down;
        while (down->fwd < down->len) {
                bool done;
                switch (down->state) {
                case PIPE_HEAD: {
                        HttpResponse res;
                        ssize_t n = http_response_parse(down->buf + down->fwd, down->len - down->fwd, c->head_request, &res);
                        if (n == 0)
                                return;
                        if (n < 0)
                                return pipe_close(down);
                        down->fwd += (size_t) n;
                        /* The engine has taken the connection over (attach, exec, BuildKit's session):
                         * only where it does, else the client's next bytes would reach it unchecked. */
                        if ((res.status == 101 && c->upgrade_request) || (res.status == 200 && res.raw_stream && c->hijack_route)) {
                                down->state = c->up.state = PIPE_RAW;
                                break;
                        }
                        if (res.status < 200)
                                break; /* 100 Continue: the answer follows */
                        pipe_start_body(down, res.body, res.content_length, PIPE_HEAD);
                        if (down->state == PIPE_HEAD)
                                response_done(c);
                        break;
                }
                case PIPE_LENGTH:
                case PIPE_CHUNKED:
                        if (pipe_body(down, &done) < 0)
                                return pipe_close(down);
                        if (done)
                                response_done(c);
                        break;
                case PIPE_UNTIL_CLOSE:
                case PIPE_RAW:
                        down->fwd = down->len;
                        break;
                default:
                        /* PIPE_WAIT: the engine speaks unasked; PIPE_CLOSING: the proxy's own answer is queued */
                        if (down->state == PIPE_WAIT)
                                pipe_close(down);
                        return;
                }
        }
}

/* Writes what is checked; compacts the buffer once it is all out. */
static int pipe_flush(Pipe *pp) {
        if (!pp->buf)
                return 0;
        while (pp->off < pp->fwd) {
                ssize_t n = send(pp->out.fd, pp->buf + pp->off, pp->fwd - pp->off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                pp->off += (size_t) n;
        }
        memmove(pp->buf, pp->buf + pp->fwd, pp->len - pp->fwd);
        pp->len -= pp->fwd;
        pp->fwd = pp->off = 0;
        if (pp->len == 0) {
                free(pp->buf);
                pp->buf = NULL;
        }
        return 0;
}

static int pipe_read(Pipe *pp) {
        if (!pp->buf && !(pp->buf = malloc(HTTP_HEAD_MAX)))
                return -ENOMEM;
        ssize_t n = recv(pp->in.fd, pp->buf + pp->len, HTTP_HEAD_MAX - pp->len, MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                pp->eof = true;
        pp->len += (size_t) n;
        return 0;
}

static void watch(Conn *c, ev_io *io, bool want) {
        if (want && !ev_is_active(io))
                ev_io_start(c->proxy->loop, io);
        else if (!want && ev_is_active(io))
                ev_io_stop(c->proxy->loop, io);
}

/* Whether a direction's end of file may pass on as a half close: only once hijacked. */
static bool pipe_done(Pipe *pp) {
        if (!pp->eof || pp->off < pp->fwd)
                return false;
        if (pp->state == PIPE_RAW && !pp->shut) {
                (void) shutdown(pp->out.fd, SHUT_WR);
                pp->shut = true;
        }
        return true;
}

/* Parses, writes and sets the watchers after any event; frees c when it is over. */
static void conn_update(Conn *c) {
        process_up(c);
        process_down(c);
        process_up(c); /* the next request, once an answer is complete */
        if (pipe_flush(&c->up) < 0 || pipe_flush(&c->down) < 0)
                return conn_free(c);
        bool up_done = pipe_done(&c->up), down_done = pipe_done(&c->down);
        /* Once hijacked each side may half close; before, the engine's end of file ends the
         * connection once what it sent is out, the client's once no answer is owed to it. */
        if (c->down.state == PIPE_RAW ? up_done && down_done : down_done || (c->up.eof && c->up.state != PIPE_WAIT))
                return conn_free(c);
        Pipe *pipes[] = { &c->up, &c->down };
        for (size_t i = 0; i < ELEMENTSOF(pipes); i++) {
                Pipe *pp = pipes[i];
                watch(c, &pp->out, pp->off < pp->fwd);
                /* Reads stop while the other side is slow (what is checked is not all out) and
                 * once the buffer is full of what cannot be parsed yet. */
                watch(c, &pp->in, !pp->eof && pp->state != PIPE_CLOSING && pp->off == pp->fwd && pp->len < HTTP_HEAD_MAX);
        }
}

static void pipe_in_cb(struct ev_loop *loop, ev_io *io, int revents) {
        Pipe *pp = container_of(io, Pipe, in);
        if (pipe_read(pp) < 0)
                return conn_free(pp->conn);
        conn_update(pp->conn);
}

static void pipe_out_cb(struct ev_loop *loop, ev_io *io, int revents) {
        conn_update(container_of(io, Pipe, out)->conn);
}

static int connect_engine(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void listener_cb(struct ev_loop *loop, ev_io *io, int revents) {
        Proxy *p = container_of(io, Proxy, listener);
        _cleanup_close_ int client = accept4(io->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), engine = -EBADF;
        if (client < 0)
                return;
        if (p->counters.connections >= PROXY_CONNECTIONS_MAX) {
                log_warning("Container '%s': more than %u connections to its engine socket, one refused", p->container_id,
                            PROXY_CONNECTIONS_MAX);
                return;
        }
        engine = connect_engine(p->engine);
        if (engine < 0) {
                log_warning("Container '%s': cannot reach the engine at '%s': %s", p->container_id, p->engine, strerror(-engine));
                return;
        }
        Conn *c = calloc(1, sizeof(*c));
        if (!c)
                return;
        c->proxy = p;
        c->up.conn = c->down.conn = c;
        c->down.state = PIPE_WAIT;
        ev_io_init(&c->up.in, pipe_in_cb, client, EV_READ);
        ev_io_init(&c->up.out, pipe_out_cb, engine, EV_WRITE);
        ev_io_init(&c->down.in, pipe_in_cb, engine, EV_READ);
        ev_io_init(&c->down.out, pipe_out_cb, client, EV_WRITE);
        TAKE_FD(client);
        TAKE_FD(engine);
        c->next = p->conns;
        if (c->next)
                c->next->prev = c;
        p->conns = c;
        p->counters.connections++;
        conn_update(c);
}

Proxy *proxy_free(Proxy *p) {
        if (!p)
                return NULL;
        while (p->conns)
                conn_free(p->conns);
        if (p->listener.fd >= 0) {
                ev_io_stop(p->loop, &p->listener);
                safe_close(p->listener.fd);
                if (p->path)
                        (void) unlink(p->path);
        }
        free(p->path);
        free(p->engine);
        free(p->container_id);
        free(p);
        return NULL;
}

int proxy_new(struct ev_loop *loop, const char *socket_path, const char *engine_socket, const char *container_id,
              const CommandList *list, proxy_refused_t refused, void *userdata, Proxy **ret) {
        _cleanup_(proxy_freep) Proxy *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->loop = loop;
        p->list = list;
        p->refused = refused;
        p->userdata = userdata;
        ev_io_init(&p->listener, listener_cb, -EBADF, EV_READ);
        if (!(p->path = strdup(socket_path)) || !(p->engine = strdup(engine_socket)) || !(p->container_id = strdup(container_id)))
                return -ENOMEM;

        int r;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);
        if ((r = unix_socket_remove_stale(socket_path, NULL)) < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* Made with no access for anyone, opened up once it is root's. */
        mode_t old = umask(0777);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return -errno;
        if (chown(socket_path, 0, 0) < 0 || chmod(socket_path, 0660) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                (void) unlink(socket_path);
                return r;
        }
        ev_io_set(&p->listener, TAKE_FD(fd), EV_READ);
        ev_io_start(loop, &p->listener);
        *ret = TAKE_PTR(p);
        return 0;
}

void proxy_get_counters(const Proxy *p, ProxyCounters *ret) {
        *ret = p->counters;
}

const char *proxy_socket_path(const Proxy *p) {
        return p->path;
}
