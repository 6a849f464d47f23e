/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The agent's HTTP client (settings, registries, the engine's API): one HTTPS GET or HEAD
 * at a time, driven by libcurl's multi-socket interface from the agent's libev loop, so
 * that a slow or hostile server never blocks the loop. TLS peer and host verification are
 * always on, only https:// URLs are accepted (plain http:// only over a local unix socket)
 * and redirects are not followed. This code logs at most at debug level:
 * the caller logs the result. */

#include <stdbool.h>
#include <stddef.h>

#include "macros.h"

struct ev_loop;

typedef struct Fetcher Fetcher;

typedef struct FetchResult {
        int error;          /* 0, or a negative errno: -ECONNREFUSED, -ETIMEDOUT, -EFBIG, -EACCES (HTTP 401/403), ... */
        long http_status;   /* 0 when no response arrived */
        char *body;         /* status 200 only, NUL-terminated, at most max_size bytes */
        size_t body_size;
        char *etag;         /* the response's ETag header, if any */
        char *digest;       /* its Docker-Content-Digest header (a registry's manifest), if any */
        char *authenticate; /* its WWW-Authenticate header (HTTP 401), if any */
        char *reason;       /* on failure a one-line description, e.g. "HTTP 401"; NULL when out of memory */
} FetchResult;

/* Called exactly once per started request, from the loop, unless the request is cancelled.
 * The result and its strings belong to the fetcher and are valid only during the call.
 * The callback may start the next request or free the fetcher. */
typedef void (*fetch_done_t)(const FetchResult *result, void *userdata);

typedef struct FetchRequest {
        const char *url;            /* must be https:// */
        const char *bearer_token;   /* sent as "Authorization: Bearer <token>"; NULL only where anonymous is set */
        bool anonymous;             /* no Authorization header */
        bool head;                  /* HEAD instead of GET: the answer is its headers */
        const char *accept;         /* sent as Accept, may be NULL */
        const char *unix_socket;    /* talk HTTP to a local service over this socket: the URL is then http:// */
        const char *etag;           /* sent as If-None-Match, may be NULL; a match gives http_status 304 and no body */
        const char *ca_file;        /* PEM trust anchors; NULL = the system's CAs */
        size_t max_size;            /* largest accepted body, > 0 */
        long connect_timeout_ms;    /* > 0 */
        long total_timeout_ms;      /* > 0 */
} FetchRequest;

/* Also calls curl_global_init() (reference counted by libcurl, undone by fetcher_free()):
 * create fetchers while the process is still single-threaded. */
int fetcher_new(struct ev_loop *loop, Fetcher **ret);
/* Cancels a request in flight without calling its callback. */
Fetcher *fetcher_free(Fetcher *f);
DEFINE_POINTER_CLEANUP(Fetcher, fetcher_free);

/* The strings in req are copied. Returns -EBUSY while a request is in flight, -EINVAL for
 * a bad request (missing token, CR or LF in a header value, zero limits). */
int fetcher_start(Fetcher *f, const FetchRequest *req, fetch_done_t done, void *userdata);
/* Whether a request is in flight (false for NULL). */
bool fetcher_busy(const Fetcher *f);
/* Drops the request in flight, if any; its callback is not called. */
void fetcher_cancel(Fetcher *f);
