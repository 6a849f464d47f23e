/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <curl/curl.h>
#include <ev.h>
#include <limits.h>

#include "fetch.h"
#include "log.h"
#include "util.h"

/* Needs libcurl >= 7.85 (CURLOPT_PROTOCOLS_STR, curl_easy_header()). */

/* One ev_io per socket libcurl asks us to watch; kept on a list so that none can outlive
 * the fetcher whatever libcurl does at cleanup. */
typedef struct SocketWatch {
        ev_io io;
        Fetcher *fetcher;
        struct SocketWatch *prev, *next;
} SocketWatch;

typedef struct Transfer {
        Fetcher *fetcher;
        CURL *easy;
        struct curl_slist *headers;
        fetch_done_t done;
        void *userdata;
        size_t max_size;
        char *body;
        size_t body_size, body_allocated;
        int write_error;        /* set when write_cb refuses data */
        char errbuf[CURL_ERROR_SIZE];
} Transfer;

struct Fetcher {
        struct ev_loop *loop;
        CURLM *multi;
        ev_timer timer;
        SocketWatch *sockets;
        Transfer *transfer;     /* the request in flight, NULL if none */
};

static Transfer *transfer_free(Transfer *t) {
        if (!t)
                return NULL;
        if (t->easy) {
                /* May call socket_cb and timer_cb, which only touch the fetcher's watchers. */
                (void) curl_multi_remove_handle(t->fetcher->multi, t->easy);
                curl_easy_cleanup(t->easy);
        }
        curl_slist_free_all(t->headers);
        free(t->body);
        free(t);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Transfer, transfer_free);

static void fetch_result_done(FetchResult *r) {
        free(r->body);
        free(r->etag);
        free(r->digest);
        free(r->authenticate);
        free(r->reason);
}

static const struct {
        CURLcode code;
        int error;
        const char *what;
} curl_errors[] = {
        { CURLE_URL_MALFORMAT,            -EINVAL,          "invalid URL" },
        { CURLE_COULDNT_RESOLVE_HOST,     -EHOSTUNREACH,    "resolve failed" },
        { CURLE_COULDNT_CONNECT,          -ECONNREFUSED,    "connect failed" },
        { CURLE_OPERATION_TIMEDOUT,       -ETIMEDOUT,       "timed out" },
        { CURLE_PEER_FAILED_VERIFICATION, -EKEYREJECTED,    "TLS" },
        { CURLE_SSL_CACERT_BADFILE,       -ENOKEY,          "TLS" },
        { CURLE_SSL_CONNECT_ERROR,        -EPROTO,          "TLS" },
        { CURLE_SSL_CERTPROBLEM,          -EPROTO,          "TLS" },
        { CURLE_SSL_CIPHER,               -EPROTO,          "TLS" },
};

static int curl_error(const Transfer *t, CURLcode code, char **ret_reason) {
        const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);

        if (code == CURLE_UNSUPPORTED_PROTOCOL)
                return error_set(ret_reason, -EPROTONOSUPPORT, "only https:// URLs are allowed");

        for (size_t i = 0; i < ELEMENTSOF(curl_errors); i++)
                if (curl_errors[i].code == code) {
                        int error = curl_errors[i].error;
                        long os_errno = 0;

                        /* Prefer what connect() said: refused, unreachable, ... */
                        if (code == CURLE_COULDNT_CONNECT &&
                            curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0)
                                error = (int) -os_errno;
                        return error_set(ret_reason, error, "%s: %s", curl_errors[i].what, detail);
                }

        return error_set(ret_reason, -EIO, "transfer failed: %s", detail);
}

/* Copies header name of the response into *ret, if it is there. */
static int header_copy(Transfer *t, const char *name, char **ret) {
        struct curl_header *h;
        if (curl_easy_header(t->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
                return 0;
        *ret = strdup(h->value);
        return *ret ? 0 : -ENOMEM;
}

static int transfer_result(Transfer *t, CURLcode code, FetchResult *r) {
        (void) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->http_status);

        if (t->write_error == -ENOMEM)
                return -ENOMEM;
        if (t->write_error == -EFBIG || code == CURLE_FILESIZE_EXCEEDED)
                return error_set(&r->reason, -EFBIG, "response larger than %zu bytes", t->max_size);
        if (code != CURLE_OK)
                return curl_error(t, code, &r->reason);
        if (r->http_status == 401 && header_copy(t, "WWW-Authenticate", &r->authenticate) < 0)
                return -ENOMEM;
        if (r->http_status != 200 && r->http_status != 304)
                return error_set(&r->reason, r->http_status == 401 || r->http_status == 403 ? -EACCES : -EIO,
                                 "HTTP %ld", r->http_status);

        if (header_copy(t, "ETag", &r->etag) < 0 || header_copy(t, "Docker-Content-Digest", &r->digest) < 0)
                return -ENOMEM;
        if (r->http_status == 200) {
                /* An empty 200 gives "" rather than NULL. */
                r->body = t->body ? TAKE_PTR(t->body) : strdup("");
                if (!r->body)
                        return -ENOMEM;
                r->body_size = t->body_size;
        }
        return 0;
}

/* Called from the loop once libcurl reports the transfer done. Must not touch f after
 * calling back: the callback may free it. */
static void fetcher_finish(Fetcher *f, CURLcode code) {
        _cleanup_(fetch_result_done) FetchResult result = {};
        Transfer *t = TAKE_PTR(f->transfer);

        result.error = transfer_result(t, code, &result);
        log_debug("Fetch done: error=%d status=%ld reason=%s", result.error, result.http_status,
                  result.reason ?: "-");

        fetch_done_t done = t->done;
        void *userdata = t->userdata;
        transfer_free(t);
        done(&result, userdata);
}

static void fetcher_check_done(Fetcher *f) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(f->multi, &left)))
                if (msg->msg == CURLMSG_DONE && f->transfer && msg->easy_handle == f->transfer->easy) {
                        fetcher_finish(f, msg->data.result);
                        return;
                }
}

static void socket_io_cb(struct ev_loop *loop, ev_io *io, int revents) {
        SocketWatch *w = container_of(io, SocketWatch, io);
        Fetcher *f = w->fetcher;
        int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
        int running;

        /* w may be freed by socket_cb in here. */
        (void) curl_multi_socket_action(f->multi, io->fd, action, &running);
        fetcher_check_done(f);
}

static void timer_fired_cb(struct ev_loop *loop, ev_timer *timer, int revents) {
        Fetcher *f = container_of(timer, Fetcher, timer);
        int running;

        (void) curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        fetcher_check_done(f);
}

static void socket_watch_free(Fetcher *f, SocketWatch *w) {
        ev_io_stop(f->loop, &w->io);
        if (w->prev)
                w->prev->next = w->next;
        else
                f->sockets = w->next;
        if (w->next)
                w->next->prev = w->prev;
        free(w);
}

/* CURLMOPT_SOCKETFUNCTION: libcurl tells which socket to watch for what. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
        Fetcher *f = userp;
        SocketWatch *w = socketp;

        if (what == CURL_POLL_REMOVE) {
                if (w)
                        socket_watch_free(f, w);
                return 0;
        }

        if (!w) {
                w = calloc(1, sizeof(*w));
                if (!w)
                        return -1; /* libcurl fails the transfer */
                w->fetcher = f;
                w->next = f->sockets;
                if (w->next)
                        w->next->prev = w;
                f->sockets = w;
                ev_init(&w->io, socket_io_cb);
                (void) curl_multi_assign(f->multi, s, w);
        }

        ev_io_stop(f->loop, &w->io);
        ev_io_set(&w->io, s, (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
        if (w->io.events)
                ev_io_start(f->loop, &w->io);
        return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle; -1 means none. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        Fetcher *f = userp;

        ev_timer_stop(f->loop, &f->timer);
        if (timeout_ms >= 0) {
                ev_timer_set(&f->timer, (double) timeout_ms / 1000.0, 0.);
                ev_timer_start(f->loop, &f->timer);
        }
        return 0;
}

/* CURLOPT_WRITEFUNCTION: keeps a 200's body, aborting the transfer as soon as it grows
 * beyond max_size (Content-Length is checked earlier through CURLOPT_MAXFILESIZE_LARGE). */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nmemb;
        long status = 0;

        (void) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
                return n; /* error bodies are not kept */

        if (n > t->max_size - t->body_size) {
                t->write_error = -EFBIG;
                return 0;
        }
        if (t->body_size + n + 1 > t->body_allocated) {
                /* Doubling, but never beyond what max_size allows. */
                size_t allocated = t->body_allocated * 2;
                if (allocated < t->body_size + n + 1)
                        allocated = t->body_size + n + 1;
                if (allocated > t->max_size + 1)
                        allocated = t->max_size + 1;

                char *p = realloc(t->body, allocated);
                if (!p) {
                        t->write_error = -ENOMEM;
                        return 0;
                }
                t->body = p;
                t->body_allocated = allocated;
        }
        memcpy(t->body + t->body_size, data, n);
        t->body_size += n;
        t->body[t->body_size] = '\0';
        return n;
}

/* Appends "<prefix><value>"; value comes from outside, so it must be one non-empty line. */
static int header_append(struct curl_slist **list, const char *prefix, const char *value) {
        _cleanup_free_ char *line = NULL;
        struct curl_slist *l;

        if (!value || !*value || strpbrk(value, "\r\n"))
                return -EINVAL;
        if (asprintf(&line, "%s%s", prefix, value) < 0)
                return -ENOMEM;
        l = curl_slist_append(*list, line);
        if (!l)
                return -ENOMEM;
        *list = l;
        return 0;
}

static int transfer_new(Fetcher *f, const FetchRequest *req, fetch_done_t done, void *userdata, Transfer **ret) {
        _cleanup_(transfer_freep) Transfer *t = NULL;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (Transfer) {
                .fetcher = f,
                .done = done,
                .userdata = userdata,
                .max_size = req->max_size,
        };

        if (!req->anonymous && (r = header_append(&t->headers, "Authorization: Bearer ", req->bearer_token)) < 0)
                return r;
        if (req->accept && (r = header_append(&t->headers, "Accept: ", req->accept)) < 0)
                return r;
        if (req->etag) {
                r = header_append(&t->headers, "If-None-Match: ", req->etag);
                if (r < 0)
                        return r;
        }

        t->easy = curl_easy_init();
        if (!t->easy)
                return -ENOMEM;

        /* Redirects are not followed, so the https-only rule and the headers can never
         * leak to another scheme or host. */
        if (curl_easy_setopt(t->easy, CURLOPT_URL, req->url) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, req->unix_socket ? "http" : "https") != CURLE_OK ||
            (req->unix_socket && curl_easy_setopt(t->easy, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket) != CURLE_OK) ||
            (req->head && curl_easy_setopt(t->easy, CURLOPT_NOBODY, 1L) != CURLE_OK) ||
            curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
            (req->ca_file && curl_easy_setopt(t->easy, CURLOPT_CAINFO, req->ca_file) != CURLE_OK) ||
            curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, req->total_timeout_ms) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) req->max_size) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t) != CURLE_OK ||
            curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK)
                return -EINVAL;

        *ret = TAKE_PTR(t);
        return 0;
}

int fetcher_start(Fetcher *f, const FetchRequest *req, fetch_done_t done, void *userdata) {
        _cleanup_(transfer_freep) Transfer *t = NULL;
        int r;

        assert(f);
        assert(req);
        assert(req->url);
        assert(done);

        if (f->transfer)
                return -EBUSY;
        if (req->max_size == 0 || req->max_size > SSIZE_MAX ||
            req->connect_timeout_ms <= 0 || req->total_timeout_ms <= 0)
                return -EINVAL;

        r = transfer_new(f, req, done, userdata, &t);
        if (r < 0)
                return r;

        /* Nothing happens before the loop runs: libcurl only arms the timer here. */
        if (curl_multi_add_handle(f->multi, t->easy) != CURLM_OK)
                return -ENOMEM;
        f->transfer = TAKE_PTR(t);
        log_debug("Fetching '%s'", req->url);
        return 0;
}

bool fetcher_busy(const Fetcher *f) {
        return f && f->transfer;
}

void fetcher_cancel(Fetcher *f) {
        if (f)
                f->transfer = transfer_free(f->transfer);
}

Fetcher *fetcher_free(Fetcher *f) {
        if (!f)
                return NULL;

        fetcher_cancel(f);
        if (f->multi)
                (void) curl_multi_cleanup(f->multi);
        while (f->sockets)
                socket_watch_free(f, f->sockets);
        ev_timer_stop(f->loop, &f->timer);
        free(f);
        curl_global_cleanup();
        return NULL;
}

int fetcher_new(struct ev_loop *loop, Fetcher **ret) {
        _cleanup_(fetcher_freep) Fetcher *f = NULL;

        assert(loop);
        assert(ret);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        f = calloc(1, sizeof(*f));
        if (!f) {
                curl_global_cleanup();
                return -ENOMEM;
        }
        f->loop = loop;
        ev_init(&f->timer, timer_fired_cb);

        f->multi = curl_multi_init();
        if (!f->multi)
                return -ENOMEM;
        if (curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
            curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f) != CURLM_OK ||
            curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
            curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f) != CURLM_OK)
                return -EINVAL;

        *ret = TAKE_PTR(f);
        return 0;
}
