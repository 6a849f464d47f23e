/* SPDX-License-Identifier: Apache-2.0 */
#include <curl/curl.h>
#include <ev.h>
#include <sys/stat.h>

#include "engine-socket.h"
#include "fetch.h"
#include "log.h"
#include "policy/image-ref.h"
#include "proxy.h"
#include "util.h"

#define ENGINE_ANSWER_MAX (4u * 1024u * 1024u)
#define REGISTRY_ANSWER_MAX (64u * 1024u)
#define MANIFEST_TYPES                                                                                             \
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, " \
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"

typedef struct EngineSockets EngineSockets;

/* An HTTP request in flight on its own fetcher; done() runs once, from the loop. */
typedef struct Query {
        Fetcher *fetcher;
        void (*done)(struct Query *q, const FetchResult *r);
} Query;

/* What a registry says about one reference ("host/repo:tag" or "host/repo@digest"). */
typedef struct Answer {
        EngineSockets *owner;
        char *key;
        ImageRef ref;
        Query query;
        char *token;      /* from the registry's token service, after a 401 */
        char *digest;     /* what the reference is now */
        char *error;      /* or why it could not be told */
        ev_tstamp when;   /* of the last answer; 0 before the first */
        struct Answer *next;
} Answer;

/* An allowed image's layer chain, as the engine holds it ("host/repo@digest"). */
typedef struct Base {
        EngineSockets *owner;
        char *key;
        Query query;
        cJSON *layers;    /* NULL: the engine does not hold it */
        bool known;
        struct Base *next;
} Base;

typedef enum DecisionState {
        DECISION_CONTAINER, /* asking the engine for the container's image ID */
        DECISION_IMAGE,     /* asking it for that image */
        DECISION_MATCHING,  /* waiting for registries or base images */
        DECISION_ALLOWED,
        DECISION_REFUSED,
} DecisionState;

typedef struct Decision {
        EngineSockets *owner;
        char *key, *id;
        DecisionState state;
        Query query;
        cJSON *image;     /* the engine's inspect of the container's image */
        char *reason;
        Proxy *proxy;
        ev_tstamp started;
        struct Decision *next;
} Decision;

struct EngineSockets {
        struct ev_loop *loop;
        char *engine_socket, *socket_dir, *registry_ca;
        engine_sockets_report_t report;
        void *userdata;
        cJSON *images;
        bool allow_derived;
        char **commands;
        CommandList list;
        Answer *answers;
        Base *bases;
        Decision *decisions;
        unsigned next_socket;
        ev_timer refresh;
};

static void advance_all(EngineSockets *e);

/* ---- queries ---- */

/* done() may start the next request on the same fetcher, or free it. */
static void query_cb(const FetchResult *r, void *userdata) {
        Query *q = userdata;
        q->done(q, r);
}

static void query_cancel(Query *q) {
        q->fetcher = fetcher_free(q->fetcher);
}

static int query_start(EngineSockets *e, Query *q, const FetchRequest *req, void (*done)(Query *, const FetchResult *)) {
        int r = q->fetcher ? 0 : fetcher_new(e->loop, &q->fetcher);
        if (r < 0)
                return r;
        q->done = done;
        return fetcher_start(q->fetcher, req, query_cb, q);
}

static int engine_get(EngineSockets *e, Query *q, const char *path, void (*done)(Query *, const FetchResult *)) {
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "http://engine%s", path) < 0)
                return -ENOMEM;
        FetchRequest req = {
                .url = url,
                .anonymous = true,
                .unix_socket = e->engine_socket,
                .max_size = ENGINE_ANSWER_MAX,
                .connect_timeout_ms = 5000,
                .total_timeout_ms = 20000,
        };
        return query_start(e, q, &req, done);
}

/* ---- registries ---- */

static Answer *answer_free(Answer *a) {
        if (!a)
                return NULL;
        query_cancel(&a->query);
        free(a->key);
        free(a->token);
        free(a->digest);
        free(a->error);
        free(a);
        return NULL;
}

/* "the registry HOST for 'REF' WHAT: DETAIL" */
static void answer_fail(Answer *a, const char *what, const char *detail) {
        free(a->digest);
        a->digest = NULL;
        free(a->error);
        a->error = NULL;
        if (asprintf(&a->error, "the registry %s for '%s' %s: %s", image_ref_api_host(&a->ref), a->key, what, detail ? detail : "?") < 0)
                a->error = NULL;
        a->when = ev_now(a->owner->loop);
        log_warning("stockade: %s", a->error ?: "out of memory");
}

static int answer_ask(Answer *a);

/* "Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"" */
static char *challenge_param(const char *challenge, const char *name) {
        char pattern[32];
        snprintf(pattern, sizeof(pattern), "%s=\"", name);
        const char *p = strstr(challenge, pattern);
        if (!p)
                return NULL;
        p += strlen(pattern);
        const char *end = strchr(p, '"');
        return end ? strndup(p, end - p) : NULL;
}

static void token_done(Query *q, const FetchResult *r) {
        Answer *a = container_of(q, Answer, query);
        _cleanup_json_ cJSON *json = r->error >= 0 ? cJSON_Parse(r->body) : NULL;
        const char *token = json_get_string(json, "token") ?: json_get_string(json, "access_token");
        if (!token || strpbrk(token, "\r\n"))
                return answer_fail(a, "gave no token", r->reason ?: "bad answer");
        free(a->token);
        a->token = strdup(token);
        if (!a->token || answer_ask(a) < 0)
                answer_fail(a, "could not be asked", "out of memory");
}

static void manifest_done(Query *q, const FetchResult *r) {
        Answer *a = container_of(q, Answer, query);
        EngineSockets *e = a->owner;
        if (r->http_status == 401 && r->authenticate && !a->token && STARTSWITH(r->authenticate, "Bearer ")) {
                _cleanup_free_ char *realm = challenge_param(r->authenticate, "realm"), *service = challenge_param(r->authenticate, "service"),
                                    *scope = challenge_param(r->authenticate, "scope"), *url = NULL;
                char *s = service ? curl_easy_escape(NULL, service, 0) : NULL, *sc = scope ? curl_easy_escape(NULL, scope, 0) : NULL;
                int n = realm ? asprintf(&url, "%s?service=%s&scope=%s", realm, s ?: "", sc ?: "") : -1;
                curl_free(s);
                curl_free(sc);
                FetchRequest req = {
                        .url = url, .anonymous = true, .ca_file = e->registry_ca, .max_size = REGISTRY_ANSWER_MAX,
                        .connect_timeout_ms = 5000, .total_timeout_ms = 15000,
                };
                if (n < 0 || query_start(e, q, &req, token_done) < 0)
                        answer_fail(a, "asks for a token it does not say how to get", r->authenticate);
                return;
        }
        if (r->error < 0)
                answer_fail(a, r->http_status == 404 ? "does not know it" : "could not be reached",
                            r->reason);
        else if (!r->digest || !image_digest_valid(r->digest))
                answer_fail(a, "gave no digest", "no Docker-Content-Digest");
        else {
                free(a->error);
                a->error = NULL;
                free(a->digest);
                a->digest = strdup(r->digest);
                a->when = ev_now(e->loop);
                log_info("Registry %s: '%s' is %s", image_ref_api_host(&a->ref), a->key, a->digest);
        }
        free(a->token);
        a->token = NULL;
        advance_all(e);
}

static int answer_ask(Answer *a) {
        EngineSockets *e = a->owner;
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "https://%s/v2/%s/manifests/%s", image_ref_api_host(&a->ref), a->ref.repo,
                     a->ref.digest[0] ? a->ref.digest : a->ref.tag) < 0)
                return -ENOMEM;
        FetchRequest req = {
                .url = url,
                .bearer_token = a->token,
                .anonymous = !a->token,
                .head = true,
                .accept = MANIFEST_TYPES,
                .ca_file = e->registry_ca,
                .max_size = REGISTRY_ANSWER_MAX,
                .connect_timeout_ms = 5000,
                .total_timeout_ms = 15000,
        };
        return query_start(e, &a->query, &req, manifest_done);
}

/* The registry's answer for ref, asked for where there is none or it is old; NULL while
 * it is being asked. */
static const Answer *answer_get(EngineSockets *e, const ImageRef *ref) {
        char key[700];
        snprintf(key, sizeof(key), "%s/%s%s%s", ref->registry, ref->repo, ref->digest[0] ? "@" : ":", ref->digest[0] ? ref->digest : ref->tag);
        Answer *a;
        for (a = e->answers; a; a = a->next)
                if (streq(a->key, key))
                        break;
        if (a && a->when > 0 && ev_now(e->loop) - a->when < REGISTRY_ANSWER_TTL_S)
                return a;
        if (!a) {
                a = calloc(1, sizeof(*a));
                if (!a || !(a->key = strdup(key))) {
                        free(a);
                        return NULL;
                }
                a->owner = e;
                a->ref = *ref;
                a->next = e->answers;
                e->answers = a;
        }
        if (!fetcher_busy(a->query.fetcher) && answer_ask(a) < 0) {
                answer_fail(a, "could not be asked", "out of memory");
                return a;
        }
        return NULL;
}

/* Asks again what registries said, before it is too old to be used: containers seldom
 * wait for a registry. */
static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        EngineSockets *e = container_of(w, EngineSockets, refresh);
        for (Answer *a = e->answers; a; a = a->next)
                if (a->when > 0 && !fetcher_busy(a->query.fetcher) && answer_ask(a) < 0)
                        answer_fail(a, "could not be asked", "out of memory");
}

/* ---- base images (allowDerivedImages) ---- */

static Base *base_free(Base *b) {
        if (!b)
                return NULL;
        query_cancel(&b->query);
        cJSON_Delete(b->layers);
        free(b->key);
        free(b);
        return NULL;
}

static void base_done(Query *q, const FetchResult *r) {
        Base *b = container_of(q, Base, query);
        _cleanup_json_ cJSON *json = r->error >= 0 ? cJSON_Parse(r->body) : NULL;
        cJSON *layers = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(json, "RootFS"), "Layers");
        if (cJSON_IsArray(layers) && layers->child)
                b->layers = cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(json, "RootFS"), layers);
        b->known = true;
        advance_all(b->owner);
}

/* The engine's layer chain of ref@digest; NULL while asked or when the engine has none. */
static const Base *base_get(EngineSockets *e, const ImageRef *ref, const char *digest, bool *ret_pending) {
        char key[700];
        snprintf(key, sizeof(key), "%s/%s@%s", ref->registry, ref->repo, digest);
        Base *b;
        for (b = e->bases; b; b = b->next)
                if (streq(b->key, key)) {
                        *ret_pending = !b->known;
                        return b->known && b->layers ? b : NULL;
                }
        *ret_pending = true;
        b = calloc(1, sizeof(*b));
        _cleanup_free_ char *path = NULL;
        char *escaped = curl_easy_escape(NULL, key, 0);
        if (!b || !escaped || !(b->key = strdup(key)) || asprintf(&path, "/images/%s/json", escaped) < 0) {
                curl_free(escaped);
                free(b ? b->key : NULL);
                free(b);
                *ret_pending = false;
                return NULL;
        }
        curl_free(escaped);
        b->owner = e;
        b->next = e->bases;
        e->bases = b;
        if (engine_get(e, &b->query, path, base_done) < 0)
                b->known = true, *ret_pending = false;
        return NULL;
}

static bool layers_begin_with(const cJSON *layers, const cJSON *base) {
        const cJSON *l = layers ? layers->child : NULL, *b;
        cJSON_ArrayForEach(b, base) {
                if (!l || !cJSON_IsString(l) || !cJSON_IsString(b) || !streq(l->valuestring, b->valuestring))
                        return false;
                l = l->next;
        }
        return base && base->child;
}

/* ---- decisions ---- */

/* Whether the image is ref@digest: one of its repo digests, or its ID. */
static bool image_is(const cJSON *image, const ImageRef *ref, const char *digest) {
        const char *id = json_get_string(image, "Id");
        if (ref->digest[0] && id && streq(id, digest))
                return true;
        const cJSON *rd;
        cJSON_ArrayForEach(rd, cJSON_GetObjectItemCaseSensitive(image, "RepoDigests")) {
                ImageRef have;
                if (cJSON_IsString(rd) && image_ref_parse(rd->valuestring, &have) >= 0 && image_ref_same_repo(&have, ref) &&
                    streq(have.digest, digest))
                        return true;
        }
        return false;
}

/* 1: the image matches entry; 0: it does not; -EAGAIN: not known yet. *error keeps a
 * registry's failure for the reason. */
static int entry_matches(Decision *d, const char *entry, char **error) {
        EngineSockets *e = d->owner;
        if (streq(entry, "*"))
                return 1;
        ImageRef ref;
        if (image_ref_parse(entry, &ref) < 0)
                return 0;
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d->image, "RootFS"), "Layers");
        if (ref.any_tag) {
                /* Each repo digest the engine holds for the name, as long as the registry knows it. */
                const cJSON *rd;
                int r = 0;
                cJSON_ArrayForEach(rd, cJSON_GetObjectItemCaseSensitive(d->image, "RepoDigests")) {
                        ImageRef have;
                        if (!cJSON_IsString(rd) || image_ref_parse(rd->valuestring, &have) < 0 || !image_ref_same_repo(&have, &ref))
                                continue;
                        const Answer *a = answer_get(e, &have);
                        if (!a)
                                r = -EAGAIN;
                        else if (a->digest && streq(a->digest, have.digest))
                                return 1;
                        else if (a->error && !*error)
                                *error = strdup(a->error);
                }
                return r;
        }
        const char *digest = ref.digest;
        if (!digest[0]) {
                const Answer *a = answer_get(e, &ref);
                if (!a)
                        return -EAGAIN;
                if (!a->digest) {
                        if (!*error && a->error)
                                *error = strdup(a->error);
                        return 0;
                }
                digest = a->digest;
        }
        if (image_is(d->image, &ref, digest))
                return 1;
        if (!e->allow_derived)
                return 0;
        bool pending;
        const Base *b = base_get(e, &ref, digest, &pending);
        if (pending)
                return -EAGAIN;
        return b && layers_begin_with(layers, b->layers);
}

static void decision_end(Decision *d, DecisionState state, const char *reason) {
        EngineSockets *e = d->owner;
        query_cancel(&d->query);
        d->state = state;
        if (state == DECISION_REFUSED) {
                free(d->reason);
                d->reason = strdup(reason);
                cJSON *params = cJSON_CreateObject();
                cJSON_AddStringToObject(params, "container", d->id);
                cJSON_AddStringToObject(params, "reason", reason);
                e->report(e->userdata, "engine_socket.refused", params);
        }
}

static void proxy_refused(void *userdata, const char *container_id, const char *command, const char *method, const char *path) {
        EngineSockets *e = userdata;
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "container", container_id);
        if (command)
                cJSON_AddStringToObject(params, "command", command);
        else
                cJSON_AddNullToObject(params, "command");
        cJSON_AddStringToObject(params, "method", method);
        cJSON_AddStringToObject(params, "path", path);
        e->report(e->userdata, "engine_socket.request_refused", params);
}

static void decision_allow(Decision *d) {
        EngineSockets *e = d->owner;
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/engine-%u.sock", e->socket_dir, e->next_socket++) < 0)
                return decision_end(d, DECISION_REFUSED, "out of memory");
        int r = proxy_new(e->loop, path, e->engine_socket, d->id, &e->list, proxy_refused, e, &d->proxy);
        if (r < 0) {
                log_error("Cannot serve the engine socket at '%s': %s", path, strerror(-r));
                return decision_end(d, DECISION_REFUSED, "the agent cannot serve the engine socket");
        }
        log_info("Container '%s' gets the engine socket (image %s) through '%s'", d->key, json_get_string(d->image, "Id") ?: "?", path);
        decision_end(d, DECISION_ALLOWED, NULL);
}

static void decision_match(Decision *d) {
        _cleanup_free_ char *error = NULL, *reason = NULL;
        bool pending = false;
        const cJSON *entry;
        cJSON_ArrayForEach(entry, d->owner->images) {
                int r = cJSON_IsString(entry) ? entry_matches(d, entry->valuestring, &error) : 0;
                if (r > 0)
                        return decision_allow(d);
                pending |= r == -EAGAIN;
        }
        if (pending && ev_now(d->owner->loop) - d->started < ENGINE_SOCKET_DECISION_TIMEOUT_S) {
                d->state = DECISION_MATCHING;
                return;
        }
        const char *id = json_get_string(d->image, "Id");
        if (error)
                reason = TAKE_PTR(error);
        else if (asprintf(&reason, "the image %.19s is not in the admin's imageList%s", id ?: "?",
                          pending ? " (the answers took too long)" : "") < 0)
                reason = NULL;
        decision_end(d, DECISION_REFUSED, reason ?: "out of memory");
}

static void image_done(Query *q, const FetchResult *r) {
        Decision *d = container_of(q, Decision, query);
        _cleanup_json_ cJSON *json = r->error >= 0 ? cJSON_Parse(r->body) : NULL;
        if (!cJSON_IsObject(json) || !json_get_string(json, "Id"))
                return decision_end(d, DECISION_REFUSED, "the engine does not know the container's image");
        d->image = TAKE_PTR(json);
        decision_match(d);
}

static void container_done(Query *q, const FetchResult *r) {
        Decision *d = container_of(q, Decision, query);
        _cleanup_json_ cJSON *json = r->error >= 0 ? cJSON_Parse(r->body) : NULL;
        const cJSON *c = cJSON_GetArrayItem(json, 0);
        const char *image = json_get_string(c, "ImageID"), *id = json_get_string(c, "Id");
        _cleanup_free_ char *path = NULL;
        if (!image || !image_digest_valid(image) || !id || !streq(id, d->id))
                return decision_end(d, DECISION_REFUSED, r->error < 0 ? "the engine could not be asked for the container's image"
                                                                      : "the engine does not know the container");
        d->state = DECISION_IMAGE;
        if (asprintf(&path, "/images/%s/json", image) < 0 || engine_get(d->owner, q, path, image_done) < 0)
                decision_end(d, DECISION_REFUSED, "the engine could not be asked for the container's image");
}

static void advance_all(EngineSockets *e) {
        for (Decision *d = e->decisions; d; d = d->next)
                if (d->state == DECISION_MATCHING)
                        decision_match(d);
}

static Decision *decision_free(Decision *d) {
        if (!d)
                return NULL;
        query_cancel(&d->query);
        proxy_free(d->proxy);
        cJSON_Delete(d->image);
        free(d->key);
        free(d->id);
        free(d->reason);
        free(d);
        return NULL;
}

static int decision_start(EngineSockets *e, const char *key, const char *id, Decision **ret) {
        Decision *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->owner = e;
        d->started = ev_now(e->loop);
        if (!(d->key = strdup(key)) || !(d->id = strdup(id))) {
                decision_free(d);
                return -ENOMEM;
        }
        d->next = e->decisions;
        e->decisions = d;
        _cleanup_free_ char *path = NULL;
        /* The container list never waits for a container being created, unlike its inspect. */
        if (asprintf(&path, "/containers/json?all=1&filters=%%7B%%22id%%22%%3A%%5B%%22%s%%22%%5D%%7D", id) < 0 ||
            engine_get(e, &d->query, path, container_done) < 0)
                decision_end(d, DECISION_REFUSED, "the engine could not be asked for the container's image");
        *ret = d;
        return 0;
}

int engine_sockets_request(EngineSockets *e, const char *key, const char *id, cJSON **ret) {
        Decision *d;
        for (d = e->decisions; d; d = d->next)
                if (streq(d->key, key))
                        break;
        int r = d ? 0 : decision_start(e, key, id, &d);
        if (r < 0)
                return r;
        cJSON *json = cJSON_CreateObject();
        if (d->state == DECISION_ALLOWED) {
                cJSON_AddStringToObject(json, "state", "allowed");
                cJSON_AddStringToObject(json, "socket", proxy_socket_path(d->proxy));
        } else if (d->state == DECISION_REFUSED) {
                cJSON_AddStringToObject(json, "state", "refused");
                cJSON_AddStringToObject(json, "reason", d->reason ?: "refused");
        } else
                cJSON_AddStringToObject(json, "state", "pending");
        *ret = json;
        return 0;
}

void engine_sockets_release(EngineSockets *e, const char *key) {
        for (Decision **p = &e->decisions; *p; p = &(*p)->next)
                if (streq((*p)->key, key)) {
                        Decision *d = *p;
                        *p = d->next;
                        decision_free(d);
                        return;
                }
}

cJSON *engine_sockets_status(const EngineSockets *e) {
        static const char *const states[] = { "pending", "pending", "pending", "allowed", "refused" };
        cJSON *list = cJSON_CreateArray();
        for (const Decision *d = e->decisions; d; d = d->next) {
                cJSON *item = cJSON_CreateObject();
                cJSON_AddStringToObject(item, "key", d->key);
                cJSON_AddStringToObject(item, "state", states[d->state]);
                if (d->proxy) {
                        ProxyCounters c;
                        proxy_get_counters(d->proxy, &c);
                        cJSON_AddStringToObject(item, "socket", proxy_socket_path(d->proxy));
                        cJSON_AddNumberToObject(item, "allowed", (double) c.allowed);
                        cJSON_AddNumberToObject(item, "refused", (double) c.refused);
                        cJSON_AddNumberToObject(item, "connections", c.connections);
                }
                if (d->reason)
                        cJSON_AddStringToObject(item, "reason", d->reason);
                cJSON_AddItemToArray(list, item);
        }
        return list;
}

static void commands_free(EngineSockets *e) {
        for (size_t i = 0; e->commands && e->commands[i]; i++)
                free(e->commands[i]);
        free(e->commands);
        e->commands = NULL;
}

/* The proxies read e->list: a new one applies to their next request. */
int engine_sockets_configure(EngineSockets *e, const cJSON *images, bool allow_derived, const CommandList *list) {
        cJSON *copy = cJSON_IsArray(images) ? cJSON_Duplicate(images, true) : cJSON_CreateArray();
        char **commands = calloc(list->n_commands + 1, sizeof(char *));
        bool ok = copy && commands;
        for (size_t i = 0; ok && i < list->n_commands; i++)
                ok = (commands[i] = strdup(list->commands[i]));
        if (!ok) {
                cJSON_Delete(copy);
                for (size_t i = 0; commands && commands[i]; i++)
                        free(commands[i]);
                free(commands);
                return -ENOMEM;
        }
        if (!e->images || !cJSON_Compare(e->images, copy, true) || e->allow_derived != allow_derived)
                while (e->answers) {
                        Answer *a = e->answers;
                        e->answers = a->next;
                        answer_free(a);
                }
        cJSON_Delete(e->images);
        e->images = copy;
        e->allow_derived = allow_derived;
        commands_free(e);
        e->commands = commands;
        e->list = (CommandList) { .allow = list->allow, .commands = (const char *const *) commands, .n_commands = list->n_commands };
        return 0;
}

EngineSockets *engine_sockets_free(EngineSockets *e) {
        if (!e)
                return NULL;
        while (e->decisions) {
                Decision *d = e->decisions;
                e->decisions = d->next;
                decision_free(d);
        }
        while (e->answers) {
                Answer *a = e->answers;
                e->answers = a->next;
                answer_free(a);
        }
        while (e->bases) {
                Base *b = e->bases;
                e->bases = b->next;
                base_free(b);
        }
        ev_timer_stop(e->loop, &e->refresh);
        commands_free(e);
        cJSON_Delete(e->images);
        free(e->engine_socket);
        free(e->socket_dir);
        free(e->registry_ca);
        free(e);
        return NULL;
}

int engine_sockets_new(struct ev_loop *loop, const EngineSocketsConfig *config, engine_sockets_report_t report, void *userdata,
                       EngineSockets **ret, char **reterr) {
        _cleanup_(engine_sockets_freep) EngineSockets *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->loop = loop;
        e->report = report;
        e->userdata = userdata;
        ev_timer_init(&e->refresh, refresh_cb, REGISTRY_ANSWER_TTL_S / 2., REGISTRY_ANSWER_TTL_S / 2.);
        if (!(e->engine_socket = strdup(config->engine_socket)) || !(e->socket_dir = strdup(config->socket_dir)) ||
            (config->registry_ca && !(e->registry_ca = strdup(config->registry_ca))))
                return -ENOMEM;
        _cleanup_free_ char *parent = strdup(e->socket_dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        if (slash && slash != parent) {
                *slash = '\0';
                (void) mkdir(parent, 0711);
        }
        if (mkdir(e->socket_dir, 0700) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "cannot create '%s': %m", e->socket_dir);
        int r = engine_sockets_configure(e, NULL, false, &(CommandList) {});
        if (r < 0)
                return r;
        ev_timer_start(loop, &e->refresh);
        *ret = TAKE_PTR(e);
        return 0;
}
