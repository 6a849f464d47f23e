/* SPDX-License-Identifier: Apache-2.0 */
#include <ev.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "agent.h"
#include "agent/control.h"
#include "agent/fetch.h"
#include "enforcer/lock.h"
#include "agent/containers.h"
#include "agent/emulation.h"
#include "agent/engine-socket.h"
#include "agent/fdstore.h"
#include "enforcer/uidrange.h"
#include "log.h"
#include "policy/store.h"
#include "proto/frame.h"
#include "util.h"

#define AGENT_VERSION "0.1.0"
#define PROTOCOL_VERSION 1
#define FETCH_CONNECT_TIMEOUT_MS 10000
#define FETCH_TOTAL_TIMEOUT_MS 30000
#define BACKOFF_MIN_S 15
#define SESSION_FILE "session.json"
#define STOCKADE_RUNTIME_NAME "stockade"

typedef enum PolicySource {
        POLICY_SOURCE_BUILTIN,
        POLICY_SOURCE_LOCAL, /* the last-known-good, loaded at start */
        POLICY_SOURCE_PUSH,
        POLICY_SOURCE_FETCH,
} PolicySource;

static const char *const policy_source_names[] = {
        [POLICY_SOURCE_BUILTIN] = "builtin",
        [POLICY_SOURCE_LOCAL] = "local",
        [POLICY_SOURCE_PUSH] = "push",
        [POLICY_SOURCE_FETCH] = "fetch",
};

/* The sign-in session: signed out, or signed in and fetching, waiting for the next
 * refresh, or backing off after a failure. */
typedef enum SessionState {
        SESSION_SIGNED_OUT,
        SESSION_FETCHING,
        SESSION_WAITING,
        SESSION_BACKOFF,
} SessionState;

typedef enum SessionEvent {
        SESSION_SIGN_IN,
        SESSION_SIGN_OUT,
        SESSION_TIMER, /* refresh due, or settings.refresh */
        SESSION_FETCH_OK,
        SESSION_FETCH_FAILED,
} SessionEvent;

typedef struct Session {
        SessionState state;
        char *org, *user, *token, *url, *etag;
        int64_t last_fetch;
        char *last_fetch_result;
        int64_t backoff_s;
        ev_timer timer;
} Session;

struct Agent {
        struct ev_loop *loop;
        AgentArgs args;
        AgentConfig *config;
        ev_tstamp started;

        PolicyStore *store;
        Bundle *bundle;
        PolicySource source;
        char *policy_error;
        EffectiveSettings *effective;
        bool engine_config_current;

        Session session;
        Fetcher *fetcher;
        ControlServer *control;

        LockSet *locks;
        ev_io lock_io; /* also fires on the lock set's own timer: see enforcer/lock.h */

        ev_signal sigterm, sigint, sighup;
        ev_timer watchdog;
        bool ready; /* READY=1 sent: from then on every change updates STATUS= */
        Containers *containers;
        Emulation *emulation; /* NULL where FUSE cannot be mounted */
        EngineSockets *engine_sockets;
        FdStore *fds; /* what the service manager keeps across restarts */
};

static void session_handle(Agent *a, SessionEvent event, const char *reason);

static int64_t now_s(void) {
        return (int64_t) time(NULL);
}

static void set_string(char **field, const char *value) {
        if (agent_config_set(field, value) < 0)
                log_error("Out of memory");
}

/* Publishes an event to subscribers and to the journal with structured fields. */
static void emit(Agent *a, int level, const char *name, cJSON *params) {
        _cleanup_free_ char *data = cJSON_PrintUnformatted(params);
        char event_field[128], data_field[4096];
        snprintf(event_field, sizeof(event_field), "STOCKADE_EVENT=%s", name);
        snprintf(data_field, sizeof(data_field), "STOCKADE_DATA=%s", data ? data : "");
        const char *fields[] = { event_field, data_field, NULL };
        log_fields(level, fields, "%s %s", name, data ? data : "");
        if (a->control)
                control_server_emit(a->control, name, params);
        else
                cJSON_Delete(params);
}

/* ---- policy ---- */

static bool eci_locked(const Agent *a) {
        SettingSource source;
        const cJSON *v;
        return a->effective && effective_settings_get(a->effective, "enhancedContainerIsolation", &v, &source) >= 0 &&
               source == SETTING_SOURCE_ADMIN_LOCKED;
}

static bool eci_enabled(const Agent *a) {
        const cJSON *v;
        SettingSource source;
        /* Without usable settings isolation stays on: fail closed. */
        if (!a->effective || effective_settings_get(a->effective, "enhancedContainerIsolation", &v, &source) < 0)
                return true;
        return !cJSON_IsFalse(v);
}

static const char *policy_state(const Agent *a) {
        if (!a->bundle)
                return "builtin";
        return now_s() >= a->bundle->expires ? "stale" : "enforced";
}

static cJSON *load_user_settings(const Agent *a) {
        if (!a->config->user_settings)
                return NULL;
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t size;
        cJSON *user = NULL;
        int r = read_full_file(AT_FDCWD, a->config->user_settings, ENVELOPE_MAX_SIZE, &text, &size);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning_errno(r, "Ignoring user settings '%s': %m", a->config->user_settings);
                return NULL;
        }
        if (user_settings_parse_text(text, size, &user, &why) < 0)
                log_warning("Ignoring user settings '%s': %s", a->config->user_settings, why ? why : "invalid");
        return user;
}

/* daemon.json: our runtime as the default, plus the admin's locked daemon options. */
static int render_engine_config(const Agent *a, char **ret) {
        _cleanup_json_ cJSON *json = NULL;
        const cJSON *options;
        SettingSource source;
        if (effective_settings_get(a->effective, "linuxVM.dockerDaemonOptions", &options, &source) >= 0 &&
            source == SETTING_SOURCE_ADMIN_LOCKED && cJSON_IsString(options))
                json = cJSON_Parse(options->valuestring); /* type-checked as an object by policy/ */
        if (!cJSON_IsObject(json)) {
                cJSON_Delete(json);
                json = cJSON_CreateObject();
        }

        cJSON_DeleteItemFromObjectCaseSensitive(json, "default-runtime");
        cJSON_DeleteItemFromObjectCaseSensitive(json, "runtimes");
        cJSON *runtimes = cJSON_AddObjectToObject(json, "runtimes");
        cJSON *ours = cJSON_AddObjectToObject(runtimes, STOCKADE_RUNTIME_NAME);
        if (!cJSON_AddStringToObject(json, "default-runtime", STOCKADE_RUNTIME_NAME) ||
            !cJSON_AddStringToObject(ours, "path", a->config->runtime))
                return -ENOMEM;
        if (!streq(a->args.config_path, STOCKADE_CONFIG_DEFAULT)) {
                const char *args[] = { "--stockade-config", a->args.config_path };
                if (!cJSON_AddItemToObject(ours, "runtimeArgs", cJSON_CreateStringArray(args, ELEMENTSOF(args))))
                        return -ENOMEM;
        }

        _cleanup_free_ char *text = cJSON_Print(json);
        if (!text || asprintf(ret, "%s\n", text) < 0)
                return -ENOMEM;
        return 0;
}

static bool file_has_content(const char *path, const char *content) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        return read_full_file(AT_FDCWD, path, 4 << 20, &text, &size) >= 0 && size == strlen(content) &&
               memcmp(text, content, size) == 0;
}

static int write_engine_config(Agent *a, const char *content) {
        const char *path = a->config->engine_config;
        _cleanup_free_ char *dir_copy = strdup(path), *name_copy = strdup(path);
        if (!dir_copy || !name_copy)
                return -ENOMEM;
        const char *dir = dirname(dir_copy), *name = basename(name_copy);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int dfd = RET_NERRNO(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dfd < 0)
                return dfd;

        /* A locked file is a mount point: unlock, replace, and let sync_locks() lock it again. */
        (void) lockset_remove(a->locks, path);
        return write_file_atomic(dfd, name, content, strlen(content), 0644);
}

static bool lock_wanted(const Agent *a, const char *path) {
        return !streq(path, a->config->engine_config) || eci_locked(a);
}

static void sync_locks(Agent *a) {
        for (size_t i = 0; i < a->config->n_locks; i++) {
                const char *path = a->config->locks[i];
                if (!lock_wanted(a, path)) {
                        (void) lockset_remove(a->locks, path);
                        continue;
                }
                _cleanup_free_ char *why = NULL;
                int r = lockset_add(a->locks, path, &why);
                if (r < 0)
                        log_error_errno(r, "Cannot lock '%s': %s", path, why ? why : strerror(-r));
        }
}

static char *status_line(const Agent *a) {
        char *line = NULL;
        if (asprintf(&line, "policy %s%s%s, ECI %s%s, %s", policy_state(a),
                     a->bundle ? " from " : "", a->bundle ? a->bundle->org : "",
                     eci_locked(a) ? "locked" : "unlocked",
                     a->engine_config_current ? "" : ", engine config pending",
                     a->session.state == SESSION_SIGNED_OUT ? "signed out" : "signed in") < 0)
                return NULL;
        return line;
}

static void notify_status(const Agent *a) {
        if (!a->ready)
                return;
        _cleanup_free_ char *line = status_line(a);
        if (line)
                (void) sd_notifyf(false, "STATUS=%s", line);
}

/* ---- the engine socket ---- */

static void report_engine_socket(void *userdata, const char *event, cJSON *params) {
        emit(userdata, LOG_NOTICE, event, params);
}

/* dockerSocketMount, as it is in force, for the engine socket's proxies. */
static void configure_engine_sockets(Agent *a) {
#define MOUNT "enhancedContainerIsolation.dockerSocketMount."
        const cJSON *images = NULL, *derived = NULL, *type = NULL, *commands = NULL, *c;
        SettingSource source;
        (void) effective_settings_get(a->effective, MOUNT "imageList.images", &images, &source);
        (void) effective_settings_get(a->effective, MOUNT "imageList.allowDerivedImages", &derived, &source);
        (void) effective_settings_get(a->effective, MOUNT "commandList.type", &type, &source);
        (void) effective_settings_get(a->effective, MOUNT "commandList.commands", &commands, &source);
#undef MOUNT
        const char *patterns[256];
        CommandList list = { .allow = cJSON_IsString(type) && streq(type->valuestring, "allow"), .commands = patterns };
        cJSON_ArrayForEach(c, commands)
                if (cJSON_IsString(c) && list.n_commands < ELEMENTSOF(patterns))
                        patterns[list.n_commands++] = c->valuestring;
        if (engine_sockets_configure(a->engine_sockets, images, cJSON_IsTrue(derived), &list) < 0)
                log_error("Out of memory");
}

/* Makes the settings in force: effective values, engine config, locks. */
static void apply(Agent *a) {
        _cleanup_json_ cJSON *user = load_user_settings(a);
        EffectiveSettings *eff = NULL;
        int r = effective_settings_compute(a->bundle ? a->bundle->settings : NULL, user, &eff);
        if (r < 0) {
                log_error_errno(r, "Cannot compute the effective settings: %m");
                return;
        }
        effective_settings_free(a->effective);
        a->effective = eff;

        _cleanup_free_ char *content = NULL;
        r = render_engine_config(a, &content);
        if (r >= 0 && !file_has_content(a->config->engine_config, content)) {
                r = write_engine_config(a, content);
                if (r < 0)
                        log_error_errno(r, "Cannot write the engine config '%s': %m", a->config->engine_config);
                else
                        log_info("Wrote the engine config '%s'", a->config->engine_config);
        }
        a->engine_config_current = r >= 0;

        sync_locks(a);
        configure_engine_sockets(a);
        notify_status(a);
}

/* The organisation whose settings the VM takes (besides those the trust root names): the
 * configured one, else the first accepted bundle's; NULL until then. */
static const char *pinned_org(const Agent *a) {
        return a->config->org ?: policy_store_state(a->store)->org;
}

/* Verifies a bundle and, if accepted, records and applies it. */
static int accept_bundle(Agent *a, const char *text, size_t size, PolicySource source, char **reterr) {
        const TrustRoot *root = policy_store_root(a->store);
        if (!root)
                return error_set(reterr, -ENOKEY, "no trust root configured ('%s')", a->config->trust_root);

        const PolicyState *state = policy_store_state(a->store);
        BundleCheck check = { .now = now_s(), .state = state };
        _cleanup_(bundle_freep) Bundle *bundle = NULL;
        int r = bundle_verify(root, text, size, &check, &bundle, reterr);
        if (r >= 0)
                r = bundle_check_org(root, pinned_org(a), bundle->org, reterr);
        /* Fetched settings are the signed-in organisation's. */
        if (r >= 0 && source == POLICY_SOURCE_FETCH && !streq(bundle->org, a->session.org))
                r = error_set(reterr, -EPERM, "the settings fetched are for org '%s', not '%s'", bundle->org, a->session.org);
        if (r < 0)
                return r;

        if (bundle->unchanged && a->bundle)
                return 0;

        r = policy_store_commit(a->store, root, bundle, text, size, check.now);
        if (r < 0)
                return error_set(reterr, r, "cannot record the bundle in '%s': %s", a->config->state_dir, strerror(-r));

        bundle_free(a->bundle);
        a->bundle = TAKE_PTR(bundle);
        a->source = source;
        set_string(&a->policy_error, NULL);
        apply(a);

        char expires[32];
        rfc3339_format(a->bundle->expires, expires);
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "org", a->bundle->org);
        cJSON_AddNumberToObject(params, "serial", (double) a->bundle->serial);
        cJSON_AddStringToObject(params, "expires", expires);
        cJSON_AddStringToObject(params, "source", policy_source_names[source]);
        emit(a, LOG_NOTICE, "policy.applied", params);
        return 1;
}

static void reject_bundle(Agent *a, PolicySource source, const char *reason) {
        set_string(&a->policy_error, reason);
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "reason", reason);
        cJSON_AddStringToObject(params, "source", policy_source_names[source]);
        emit(a, LOG_WARNING, "policy.rejected", params);
}

/* The configured trust root replaces the stored one only through the rotation rule. */
static void load_trust_root(Agent *a) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t size;
        int r = read_full_file(AT_FDCWD, a->config->trust_root, ENVELOPE_MAX_SIZE, &text, &size);
        if (r < 0) {
                if (r != -ENOENT || !policy_store_root(a->store))
                        log_warning_errno(r, "Cannot read the trust root '%s': %m", a->config->trust_root);
                return;
        }

        _cleanup_(trust_root_freep) TrustRoot *root = NULL;
        r = trust_root_parse(text, size, &root, &why);
        if (r >= 0)
                r = trust_root_check_successor(policy_store_root(a->store), root, &why);
        if (r < 0) {
                log_error("Refusing the trust root '%s': %s", a->config->trust_root, why);
                return;
        }
        if (r > 0) {
                r = policy_store_commit(a->store, root, NULL, NULL, 0, now_s());
                if (r < 0)
                        log_error_errno(r, "Cannot record the trust root: %m");
                else
                        log_notice("Trusting root version %" PRId64 " from '%s'", trust_root_version(root), a->config->trust_root);
        }
}

static void load_last_known_good(Agent *a) {
        _cleanup_free_ char *why = NULL;
        Bundle *bundle = NULL;
        int r = policy_store_load_last_known_good(a->store, now_s(), &bundle, &why);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                /* Reported, never reset: the built-in defaults apply with ECI on. */
                log_error("Cannot use the last-known-good settings: %s", why);
                set_string(&a->policy_error, why);
                return;
        }
        bundle_free(a->bundle);
        a->bundle = bundle;
        a->source = POLICY_SOURCE_LOCAL;
        log_info("Enforcing settings serial %" PRId64 " of '%s'%s", bundle->serial, bundle->org,
                 bundle->expired ? " (expired: stale until new settings arrive)" : "");
}

/* ---- session and fetch ---- */

static int session_save(const Agent *a) {
        _cleanup_close_ int dfd = RET_NERRNO(open(a->config->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dfd < 0)
                return dfd;
        const Session *s = &a->session;
        if (s->state == SESSION_SIGNED_OUT)
                return unlinkat(dfd, SESSION_FILE, 0) < 0 && errno != ENOENT ? -errno : 0;

        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "org", s->org);
        cJSON_AddStringToObject(json, "user", s->user);
        cJSON_AddStringToObject(json, "token", s->token);
        cJSON_AddStringToObject(json, "url", s->url);
        if (s->etag)
                cJSON_AddStringToObject(json, "etag", s->etag);
        _cleanup_free_ char *text = cJSON_Print(json);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(dfd, SESSION_FILE, text, strlen(text), 0600);
}

static void session_load(Agent *a) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size;
        if (asprintf(&path, "%s/" SESSION_FILE, a->config->state_dir) < 0 ||
            read_full_file(AT_FDCWD, path, 64 * 1024, &text, &size) < 0)
                return;
        _cleanup_json_ cJSON *json = cJSON_ParseWithLength(text, size);
        const char *org = json_get_string(json, "org"), *user = json_get_string(json, "user");
        const char *token = json_get_string(json, "token"), *url = json_get_string(json, "url");
        if (!org || !user || !token || !url) {
                log_warning("Ignoring malformed '%s'", path);
                return;
        }
        Session *s = &a->session;
        set_string(&s->org, org);
        set_string(&s->user, user);
        set_string(&s->token, token);
        set_string(&s->url, url);
        set_string(&s->etag, json_get_string(json, "etag"));
        log_info("Resuming the session of '%s' in '%s'", user, org);
        session_handle(a, SESSION_SIGN_IN, NULL);
}

static void session_schedule(Agent *a, int64_t seconds) {
        ev_timer_stop(a->loop, &a->session.timer);
        ev_timer_set(&a->session.timer, (ev_tstamp) seconds, 0.);
        ev_timer_start(a->loop, &a->session.timer);
}

/* Up to 10% earlier, so that many VMs do not fetch in step. */
static int64_t with_jitter(int64_t seconds) {
        return seconds - (seconds > 10 ? random() % (seconds / 10) : 0);
}

static void fetch_done(const FetchResult *result, void *userdata);

static void session_start_fetch(Agent *a) {
        Session *s = &a->session;
        FetchRequest req = {
                .url = s->url,
                .bearer_token = s->token,
                .etag = a->bundle ? s->etag : NULL,
                .ca_file = a->config->ca_file,
                .max_size = ENVELOPE_MAX_SIZE,
                .connect_timeout_ms = FETCH_CONNECT_TIMEOUT_MS,
                .total_timeout_ms = FETCH_TOTAL_TIMEOUT_MS,
        };
        int r = fetcher_start(a->fetcher, &req, fetch_done, a);
        if (r < 0) {
                char why[128];
                snprintf(why, sizeof(why), "cannot start the fetch: %s", strerror(-r));
                session_handle(a, SESSION_FETCH_FAILED, why);
        }
}

static void session_changed(Agent *a) {
        cJSON *params = cJSON_CreateObject();
        cJSON_AddBoolToObject(params, "signed_in", a->session.state != SESSION_SIGNED_OUT);
        if (a->session.state != SESSION_SIGNED_OUT) {
                cJSON_AddStringToObject(params, "org", a->session.org);
                cJSON_AddStringToObject(params, "user", a->session.user);
        }
        emit(a, LOG_INFO, "session.changed", params);
        notify_status(a);
}

static void session_record(Agent *a, const char *result) {
        a->session.last_fetch = now_s();
        set_string(&a->session.last_fetch_result, result);
}

/* The session's state machine: every transition happens here. */
static void session_handle(Agent *a, SessionEvent event, const char *reason) {
        Session *s = &a->session;
        switch (event) {
        case SESSION_SIGN_IN:
                fetcher_cancel(a->fetcher);
                s->state = SESSION_FETCHING;
                s->backoff_s = 0;
                session_start_fetch(a);
                return;
        case SESSION_SIGN_OUT:
                fetcher_cancel(a->fetcher);
                ev_timer_stop(a->loop, &s->timer);
                s->state = SESSION_SIGNED_OUT;
                set_string(&s->token, NULL);
                set_string(&s->etag, NULL);
                return;
        case SESSION_TIMER:
                if (s->state == SESSION_SIGNED_OUT || s->state == SESSION_FETCHING)
                        return;
                ev_timer_stop(a->loop, &s->timer);
                s->state = SESSION_FETCHING;
                session_start_fetch(a);
                return;
        case SESSION_FETCH_OK:
                s->state = SESSION_WAITING;
                s->backoff_s = 0;
                session_record(a, reason);
                session_schedule(a, with_jitter(a->config->refresh_interval_s));
                return;
        case SESSION_FETCH_FAILED:
                s->state = SESSION_BACKOFF;
                s->backoff_s = s->backoff_s ? s->backoff_s * 2 : BACKOFF_MIN_S;
                if (s->backoff_s > a->config->refresh_interval_s)
                        s->backoff_s = a->config->refresh_interval_s;
                session_record(a, reason);
                cJSON *params = cJSON_CreateObject();
                cJSON_AddStringToObject(params, "reason", reason);
                cJSON_AddStringToObject(params, "url", s->url);
                cJSON_AddNumberToObject(params, "retry_in_s", (double) s->backoff_s);
                emit(a, LOG_WARNING, "fetch.failed", params);
                session_schedule(a, with_jitter(s->backoff_s));
                return;
        }
}

static void fetch_done(const FetchResult *result, void *userdata) {
        Agent *a = userdata;
        if (result->error < 0 || (result->http_status != 200 && result->http_status != 304)) {
                session_handle(a, SESSION_FETCH_FAILED, result->reason ? result->reason : "fetch failed");
                return;
        }
        if (result->http_status == 304) {
                session_handle(a, SESSION_FETCH_OK, "not modified");
                return;
        }

        _cleanup_free_ char *why = NULL;
        char outcome[512];
        int r = accept_bundle(a, result->body, result->body_size, POLICY_SOURCE_FETCH, &why);
        if (r < 0) {
                reject_bundle(a, POLICY_SOURCE_FETCH, why ? why : strerror(-r));
                snprintf(outcome, sizeof(outcome), "rejected: %s", why ? why : strerror(-r));
        } else {
                set_string(&a->session.etag, result->etag);
                (void) session_save(a);
                snprintf(outcome, sizeof(outcome), r > 0 ? "applied serial %" PRId64 : "unchanged (serial %" PRId64 ")",
                         a->bundle ? a->bundle->serial : 0);
        }
        session_handle(a, SESSION_FETCH_OK, outcome);
}

static void session_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        Agent *a = container_of(w, Agent, session.timer);
        session_handle(a, SESSION_TIMER, NULL);
}

/* ---- locks ---- */

static void lock_report(const char *path, const char *what, int error, void *userdata) {
        Agent *a = userdata;
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "path", path);
        cJSON_AddStringToObject(params, "what", what);
        if (error < 0) {
                cJSON_AddStringToObject(params, "error", strerror(-error));
                emit(a, LOG_ERR, "lock.tampered", params);
                return;
        }
        emit(a, LOG_WARNING, "lock.tampered", cJSON_Duplicate(params, true));
        emit(a, LOG_NOTICE, "lock.restored", params);
}

static void locks_check(Agent *a) {
        int r = lockset_check(a->locks, lock_report, a);
        if (r < 0)
                log_error_errno(r, "Checking the locks failed: %m");
        else if (r > 0)
                notify_status(a);
}

static void lock_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
        locks_check(container_of(w, Agent, lock_io));
}

/* ---- vetted calls ---- */

static void report_vetted_call(void *userdata, const char *container_id, pid_t pid, const char *syscall,
                               const char *reason, uint64_t suppressed) {
        Agent *a = userdata;
        char container_field[200], pid_field[32], syscall_field[64];
        snprintf(container_field, sizeof(container_field), "CONTAINER_ID=%s", container_id);
        snprintf(pid_field, sizeof(pid_field), "SYSCALL_PID=%d", (int) pid);
        snprintf(syscall_field, sizeof(syscall_field), "SYSCALL=%s", syscall);
        const char *fields[] = { container_field, pid_field, syscall_field, "DECISION=denied", NULL };
        log_fields(LOG_NOTICE, fields, "Container '%s': %s denied to pid %d: %s (%" PRIu64 " more not reported)",
                   container_id, syscall, (int) pid, reason, suppressed);
        if (!a->control)
                return;
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "container", container_id);
        cJSON_AddNumberToObject(params, "pid", pid);
        cJSON_AddStringToObject(params, "syscall", syscall);
        cJSON_AddStringToObject(params, "reason", reason);
        cJSON_AddNumberToObject(params, "suppressed", (double) suppressed);
        control_server_emit(a->control, "syscall.denied", params);
}

/* ---- control methods ---- */

static bool find_lock(const Agent *a, const char *path, LockInfo *ret) {
        _cleanup_free_ char *canonical = realpath(path, NULL);
        LockInfo info;
        for (size_t i = 0; canonical && lockset_get(a->locks, i, &info) >= 0; i++)
                if (streq(info.path, canonical)) {
                        *ret = info;
                        return true;
                }
        return false;
}

static cJSON *status_json(const Agent *a) {
        cJSON *json = cJSON_CreateObject();
        char when[32];

        cJSON *agent = cJSON_AddObjectToObject(json, "agent");
        cJSON_AddStringToObject(agent, "version", AGENT_VERSION);
        cJSON_AddNumberToObject(agent, "pid", getpid());
        cJSON_AddNumberToObject(agent, "uptime_s", (double) (int64_t) (ev_now(a->loop) - a->started));

        cJSON *policy = cJSON_AddObjectToObject(json, "policy");
        cJSON_AddStringToObject(policy, "state", policy_state(a));
        cJSON_AddStringToObject(policy, "source", policy_source_names[a->bundle ? a->source : POLICY_SOURCE_BUILTIN]);
        if (a->bundle) {
                cJSON_AddStringToObject(policy, "org", a->bundle->org);
                cJSON_AddNumberToObject(policy, "serial", (double) a->bundle->serial);
                rfc3339_format(a->bundle->expires, when);
                cJSON_AddStringToObject(policy, "expires", when);
        } else {
                cJSON_AddNullToObject(policy, "org");
                cJSON_AddNullToObject(policy, "serial");
                cJSON_AddNullToObject(policy, "expires");
        }
        if (a->policy_error)
                cJSON_AddStringToObject(policy, "last_error", a->policy_error);
        else
                cJSON_AddNullToObject(policy, "last_error");

        const Session *s = &a->session;
        cJSON *session = cJSON_AddObjectToObject(json, "session");
        cJSON_AddBoolToObject(session, "signed_in", s->state != SESSION_SIGNED_OUT);
        cJSON_AddItemToObject(session, "org", s->state != SESSION_SIGNED_OUT ? cJSON_CreateString(s->org) : cJSON_CreateNull());
        cJSON_AddItemToObject(session, "user", s->state != SESSION_SIGNED_OUT ? cJSON_CreateString(s->user) : cJSON_CreateNull());
        if (s->last_fetch) {
                rfc3339_format(s->last_fetch, when);
                cJSON_AddStringToObject(session, "last_fetch", when);
        } else
                cJSON_AddNullToObject(session, "last_fetch");
        cJSON_AddItemToObject(session, "last_fetch_result",
                              s->last_fetch_result ? cJSON_CreateString(s->last_fetch_result) : cJSON_CreateNull());

        const cJSON *eci_value = NULL;
        SettingSource eci_source = SETTING_SOURCE_BUILTIN;
        (void) effective_settings_get(a->effective, "enhancedContainerIsolation", &eci_value, &eci_source);
        cJSON *eci = cJSON_AddObjectToObject(json, "eci");
        cJSON_AddBoolToObject(eci, "enabled", eci_enabled(a));
        cJSON_AddBoolToObject(eci, "locked", eci_source == SETTING_SOURCE_ADMIN_LOCKED);
        cJSON_AddStringToObject(eci, "source", setting_source_to_string(eci_source));

        cJSON *locks = cJSON_AddArrayToObject(json, "locks");
        for (size_t i = 0; i < a->config->n_locks; i++) {
                const char *path = a->config->locks[i];
                LockInfo info = {};
                bool held = find_lock(a, path, &info);
                cJSON *item = cJSON_CreateObject();
                cJSON_AddStringToObject(item, "path", path);
                cJSON_AddStringToObject(item, "state", !held ? "unlocked" : info.state == LOCK_LOCKED ? "locked" : "tampered");
                cJSON_AddNumberToObject(item, "tamper_count", info.tamper_count);
                cJSON_AddItemToArray(locks, item);
        }

        cJSON *engine = cJSON_AddObjectToObject(json, "engine");
        cJSON_AddStringToObject(engine, "config", a->config->engine_config);
        cJSON_AddBoolToObject(engine, "config_current", a->engine_config_current);

        cJSON *containers = cJSON_AddObjectToObject(json, "containers");
        cJSON_AddNumberToObject(containers, "running", (double) containers_count(a->containers));
        cJSON_AddNumberToObject(containers, "ranges", (double) containers_ranges(a->containers));
        const BrokerLimits *l = containers_limits(a->containers);
        cJSON *limits = cJSON_AddObjectToObject(containers, "limits");
        cJSON_AddNumberToObject(limits, "helpers_per_container", l->helpers_per_container);
        cJSON_AddNumberToObject(limits, "helpers", l->helpers);
        cJSON_AddNumberToObject(limits, "queued_per_container", l->queued_per_container);
        cJSON_AddNumberToObject(limits, "queued", l->queued);
        cJSON_AddItemToObject(containers, "list", containers_status(a->containers));
        cJSON_AddItemToObject(containers, "engine_sockets", engine_sockets_status(a->engine_sockets));

        const Procfs *p = emulation_procfs(a->emulation);
        if (p) {
                cJSON *procfs = cJSON_AddObjectToObject(json, "procfs");
                cJSON_AddStringToObject(procfs, "mount", procfs_mountpoint(p));
                cJSON_AddNumberToObject(procfs, "containers", (double) procfs_containers(p));
                cJSON_AddNumberToObject(procfs, "renderings", (double) procfs_renderings(p));
        } else
                cJSON_AddNullToObject(json, "procfs");
        return json;
}

static int method_hello(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        cJSON *json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "agent", "stockaded");
        cJSON_AddStringToObject(json, "version", AGENT_VERSION);
        cJSON_AddNumberToObject(json, "protocol", PROTOCOL_VERSION);
        *ret = json;
        return 0;
}

static int method_status(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        *ret = status_json(userdata);
        return 0;
}

/* Sets the error message of a method and returns its JSON-RPC error code. */
static _printf_(3, 4) int message(char **ret_message, int code, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return code;
}

static int invalid_params(char **ret_message, const char *text) {
        return message(ret_message, JSONRPC_INVALID_PARAMS, "%s", text);
}

static int method_push(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        const char *text = json_get_string(params, "bundle");
        if (!text)
                return invalid_params(ret_message, "'bundle' must be a string holding the bundle envelope");

        _cleanup_free_ char *why = NULL;
        int r = accept_bundle(a, text, strlen(text), POLICY_SOURCE_PUSH, &why);
        if (r < 0) {
                reject_bundle(a, POLICY_SOURCE_PUSH, why ? why : strerror(-r));
                return message(ret_message, JSONRPC_REJECTED, "rejected: %s", why ? why : strerror(-r));
        }
        cJSON *json = cJSON_CreateObject();
        cJSON_AddBoolToObject(json, "applied", r > 0);
        cJSON_AddNumberToObject(json, "serial", (double) a->bundle->serial);
        *ret = json;
        return 0;
}

static int method_sign_in(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        const char *org = json_get_string(params, "org"), *user = json_get_string(params, "user");
        const char *token = json_get_string(params, "token"), *url = json_get_string(params, "settings_url");
        if (!org || !*org || !user || !*user || !token || !*token)
                return invalid_params(ret_message, "'org', 'user' and 'token' must be non-empty strings");
        if (!url)
                url = a->config->settings_url;
        if (!url)
                return invalid_params(ret_message, "no 'settings_url' given and none configured");
        if (!STARTSWITH(url, "https://"))
                return invalid_params(ret_message, "'settings_url' must be an https:// URL");
        _cleanup_free_ char *why = NULL;
        if (bundle_check_org(policy_store_root(a->store), pinned_org(a), org, &why) < 0)
                return message(ret_message, JSONRPC_REJECTED, "%s", why);

        Session *s = &a->session;
        set_string(&s->org, org);
        set_string(&s->user, user);
        set_string(&s->token, token);
        set_string(&s->url, url);
        set_string(&s->etag, NULL);
        int r = session_save(a);
        if (r < 0)
                log_warning_errno(r, "Cannot save the session: %m");
        session_handle(a, SESSION_SIGN_IN, NULL);
        session_changed(a);

        cJSON *json = cJSON_CreateObject();
        cJSON_AddBoolToObject(json, "signed_in", true);
        cJSON_AddBoolToObject(json, "fetching", a->session.state == SESSION_FETCHING);
        *ret = json;
        return 0;
}

static int method_sign_out(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        bool was = a->session.state != SESSION_SIGNED_OUT;
        session_handle(a, SESSION_SIGN_OUT, NULL);
        (void) session_save(a);
        if (was)
                session_changed(a);
        cJSON *json = cJSON_CreateObject();
        cJSON_AddBoolToObject(json, "signed_in", false);
        *ret = json;
        return 0;
}

static int method_refresh(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        if (a->session.state == SESSION_SIGNED_OUT)
                return message(ret_message, JSONRPC_REJECTED, "not signed in");
        session_handle(a, SESSION_TIMER, NULL);
        cJSON *json = cJSON_CreateObject();
        cJSON_AddBoolToObject(json, "fetching", a->session.state == SESSION_FETCHING);
        *ret = json;
        return 0;
}

static cJSON *string_array(const char *const *items, size_t n) {
        cJSON *array = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++)
                if (items[i])
                        cJSON_AddItemToArray(array, cJSON_CreateString(items[i]));
        return array;
}

/* VM paths no container may mount: the engine's and Stockade's own. */
static cJSON *restricted_paths(const Agent *a) {
        const AgentConfig *c = a->config;
        _cleanup_free_ char *engine_dir = strdup(c->engine_config), *root_dir = strdup(c->trust_root);
        const char *builtin[] = {
                engine_dir ? dirname(engine_dir) : NULL, root_dir ? dirname(root_dir) : NULL,
                c->state_dir, c->run_dir, c->engine_data_root, c->engine_socket,
                "/var/lib/docker", "/var/lib/containerd", "/etc/containerd", "/run/containerd", "/run/docker",
        };
        cJSON *list = string_array(builtin, ELEMENTSOF(builtin));
        for (size_t i = 0; i < c->n_restricted; i++)
                cJSON_AddItemToArray(list, cJSON_CreateString(c->restricted[i]));
        return list;
}

/* "$NAME" or "$NAME/rest" with NAME from hostVariables; NULL where NAME is not there. */
static char *expand_host_variable(const AgentConfig *c, const char *path) {
        size_t n = strcspn(path + 1, "/");
        for (size_t i = 0; i < c->n_host_variables; i++) {
                const char *v = c->host_variables[i];
                if (strncmp(v, path + 1, n) == 0 && v[n] == '=') {
                        char *out = NULL;
                        return asprintf(&out, "%s%s", v + n + 1, path + 1 + n) < 0 ? NULL : out;
                }
        }
        return NULL;
}

/* The host shares: the admin's filesharingAllowedDirectories where set (host variables
 * such as "$HOME" expanded through hostVariables, entries naming an unknown one left
 * out), else the agent's hostShares. */
static cJSON *host_shares(const Agent *a) {
        const cJSON *v, *entry;
        SettingSource source;
        if (effective_settings_get(a->effective, "filesharingAllowedDirectories", &v, &source) < 0 ||
            (source != SETTING_SOURCE_ADMIN_LOCKED && source != SETTING_SOURCE_ADMIN_DEFAULT))
                return string_array((const char *const *) a->config->host_shares, a->config->n_host_shares);
        cJSON *list = cJSON_CreateArray();
        cJSON_ArrayForEach(entry, v) {
                const char *path = json_get_string(entry, "path");
                _cleanup_free_ char *expanded = path && path[0] == '$' ? expand_host_variable(a->config, path) : NULL;
                if (expanded || (path && path[0] == '/'))
                        cJSON_AddItemToArray(list, cJSON_CreateString(expanded ?: path));
                else
                        log_debug("filesharingAllowedDirectories entry '%s' means nothing in this VM (see hostVariables)", path ?: "?");
        }
        return list;
}

/* Where container root filesystems may lie: the engines' storage. */
static cJSON *storage_paths(const Agent *a) {
        const char *builtin[] = { a->config->engine_data_root, "/var/lib/docker", "/var/lib/containerd", "/run/containerd" };
        cJSON *list = string_array(builtin, ELEMENTSOF(builtin));
        for (size_t i = 0; i < a->config->n_engine_storage; i++)
                cJSON_AddItemToArray(list, cJSON_CreateString(a->config->engine_storage[i]));
        return list;
}

/* A container is (runtime root, id): params {"id", "root"}; a runtime that sends no root
 * registers the bare id, as before roots were. */
static int container_key_from(const cJSON *params, char **ret_key, char **ret_message) {
        const char *id = json_get_string(params, "id"), *root = json_get_string(params, "root");
        if (!id || !container_id_valid(id))
                return invalid_params(ret_message, "'id' must be a container id (1 to 128 of A-Z a-z 0-9 _ . -)");
        int r = root || !cJSON_GetObjectItemCaseSensitive(params, "root") ? container_key(root, id, ret_key) : -EINVAL;
        if (r == -EINVAL)
                return message(ret_message, JSONRPC_INVALID_PARAMS,
                               "'root' must be the runtime's root directory (an absolute path of at most %u bytes)", CONTAINER_ROOT_MAX);
        return r;
}

static int method_register(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        _cleanup_free_ char *key = NULL;
        int r = container_key_from(params, &key, ret_message);
        if (r < 0)
                return r;
        const char *id = container_key_id(key);
        const cJSON *share = cJSON_GetObjectItemCaseSensitive(params, "uid_base");
        if (share && !json_is_int(share, 1, UINT32_MAX))
                return invalid_params(ret_message, "'uid_base' must be the first uid of a range another container holds");
        /* [BASE, COUNT]: the engine's own mapping "0 BASE COUNT", kept when it is safe. */
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(params, "uid_map");
        const cJSON *map_base = cJSON_GetArrayItem(map, 0), *map_count = cJSON_GetArrayItem(map, 1);
        if (map && (share || cJSON_GetArraySize(map) != 2 || !json_is_int(map_base, 0, UINT32_MAX) || !json_is_int(map_count, 1, UINT32_MAX)))
                return invalid_params(ret_message, "'uid_map' must be [BASE, COUNT], without 'uid_base'");

        cJSON *json = cJSON_CreateObject();
        if (!eci_enabled(a)) {
                cJSON_AddBoolToObject(json, "isolate", false);
                *ret = json;
                return 0;
        }

        uint32_t base, count = UID_RANGE_SIZE;
        pid_t pid = 0;
        uid_t uid;
        _cleanup_free_ char *why = NULL;
        (void) control_server_get_peer(client, &pid, &uid);
        if (map) {
                base = (uint32_t) map_base->valuedouble, count = (uint32_t) map_count->valuedouble;
                r = containers_claim(a->containers, key, base, count, pid, &why);
                if (r < 0) {
                        cJSON_Delete(json);
                        return message(ret_message, JSONRPC_REJECTED, "stockade: the engine's uid map '0 %" PRIu32 " %" PRIu32 "' %s", base,
                                       count, why ? why : strerror(-r));
                }
        } else
                r = containers_register(a->containers, key, share ? (uint32_t) share->valuedouble : 0, pid, &base, &why);
        if (r < 0) {
                cJSON_Delete(json);
                return message(ret_message, JSONRPC_REJECTED, "stockade: no uid range for container '%s': %s", id, why ? why : strerror(-r));
        }
        cJSON_AddBoolToObject(json, "isolate", true);
        cJSON_AddNumberToObject(json, "uid_base", base);
        cJSON_AddNumberToObject(json, "count", count);
        cJSON_AddStringToObject(json, "engine_root", a->config->engine_data_root);
        cJSON_AddStringToObject(json, "engine_init", a->config->engine_init);
        cJSON_AddStringToObject(json, "engine_socket", a->config->engine_socket);
        cJSON_AddItemToObject(json, "restricted", restricted_paths(a));
        cJSON_AddItemToObject(json, "shares", host_shares(a));
        cJSON_AddItemToObject(json, "storage", storage_paths(a));
        cJSON_AddItemToObject(json, "hooks", string_array((const char *const *) a->config->hooks, a->config->n_hooks));
        cJSON_AddItemToObject(json, "containers", containers_status(a->containers));
        if (containers_listener(a->containers))
                cJSON_AddStringToObject(json, "seccomp_listener", containers_listener(a->containers));
        if (a->emulation)
                cJSON_AddItemToObject(json, "procfs", emulation_json(a->emulation, key));
        log_info("Container '%s' registered with uids %" PRIu32 "-%" PRIu32 "%s", key, base, base + count - 1,
                 share ? ", shared with the containers whose namespaces it joins" : map ? ", its engine's own mapping" : "");
        notify_status(a);
        *ret = json;
        return 0;
}

static int method_release(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        _cleanup_free_ char *key = NULL;
        int r = container_key_from(params, &key, ret_message);
        if (r < 0)
                return r;
        engine_sockets_release(a->engine_sockets, key);
        r = containers_release(a->containers, key);
        /* A container registered before roots were holds its range by its bare id. */
        if (r == -ENOENT && !streq(key, container_key_id(key)))
                r = containers_release(a->containers, container_key_id(key));
        if (r < 0 && r != -ENOENT)
                return message(ret_message, JSONRPC_INTERNAL_ERROR, "cannot release the uid range of '%s': %s", key, strerror(-r));
        if (r >= 0)
                log_info("Container '%s' released", key);
        cJSON *json = cJSON_CreateObject();
        cJSON_AddBoolToObject(json, "released", r >= 0);
        *ret = json;
        return 0;
}

/* Whether the container may have the engine socket, and where the agent serves it. */
static int method_engine_socket(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret, char **ret_message) {
        Agent *a = userdata;
        _cleanup_free_ char *key = NULL;
        int r = container_key_from(params, &key, ret_message);
        if (r < 0)
                return r;
        return engine_sockets_request(a->engine_sockets, key, container_key_id(key), ret);
}

static const ControlMethod methods[] = {
        { "hello", true, method_hello },
        { "status", true, method_status },
        { "settings.push", false, method_push },
        { "session.sign_in", false, method_sign_in },
        { "session.sign_out", false, method_sign_out },
        { "settings.refresh", false, method_refresh },
        { "container.register", false, method_register },
        { "container.release", false, method_release },
        { "container.engine_socket", false, method_engine_socket },
};

/* ---- life cycle ---- */

static int load_config(Agent *a, AgentConfig **ret) {
        _cleanup_free_ char *why = NULL;
        _cleanup_(agent_config_freep) AgentConfig *c = NULL;
        int r = agent_config_load(a->args.config_path, &c, &why);
        if (r < 0)
                return log_error_errno(r, "Cannot load the configuration: %s", why ? why : strerror(-r));
        if (a->args.state_dir && (r = agent_config_set(&c->state_dir, a->args.state_dir)) < 0)
                return log_error_errno(r, "Out of memory");
        if (a->args.n_control > 0) {
                for (size_t i = 0; i < c->n_control; i++)
                        free(c->control[i]);
                c->n_control = 0;
                for (size_t i = 0; i < a->args.n_control; i++)
                        if (!(c->control[c->n_control++] = strdup(a->args.control[i])))
                                return log_error_errno(-ENOMEM, "Out of memory");
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static int listen_control(Agent *a) {
        struct group *g = a->config->group ? getgrnam(a->config->group) : NULL;
        int r = control_server_new(a->loop, methods, ELEMENTSOF(methods), a, g ? g->gr_gid : (gid_t) -1, &a->control);
        if (r < 0)
                return log_error_errno(r, "Cannot create the control server: %m");

        /* Sockets of socket activation replace the configured unix addresses. */
        int n = 0;
        for (int fd; (fd = fdstore_take_activated(a->fds)) >= 0; n++) {
                _cleanup_free_ char *why = NULL;
                r = control_server_adopt(a->control, fd, &why);
                if (r < 0) {
                        safe_close(fd);
                        return log_error_errno(r, "Cannot use the socket passed by systemd: %s", why ? why : strerror(-r));
                }
        }
        /* The others are kept in the fd store: clients that connect while the agent
         * restarts wait in their queue. */
        for (size_t i = 0; i < a->config->n_control; i++) {
                const char *address = a->config->control[i];
                if (n > 0 && STARTSWITH(address, "unix:"))
                        continue;
                char name[FDSTORE_NAME_MAX + 1];
                fdstore_name(name, "control", address);
                _cleanup_free_ char *why = NULL;
                int fd = fdstore_take(a->fds, name);
                if (fd >= 0 && (r = control_server_adopt(a->control, fd, &why)) >= 0) {
                        log_info("Listening on %s (kept across the restart)", address);
                        continue;
                }
                if (fd >= 0) {
                        log_info("Cannot use the kept socket of '%s', listening anew: %s", address, why);
                        safe_close(fd);
                        free(why);
                        why = NULL;
                }
                fd = control_server_listen(a->control, address, &why);
                if (fd < 0)
                        return log_error_errno(fd, "Cannot listen on '%s': %s", address, why ? why : strerror(-fd));
                r = fdstore_keep(a->fds, name, fd);
                if (r < 0)
                        log_warning_errno(r, "Cannot keep the socket of '%s' across restarts: %m", address);
                log_info("Listening on %s", address);
        }
        return 0;
}

static int listen_seccomp(Agent *a) {
        _cleanup_free_ char *path = NULL, *why = NULL;
        if (asprintf(&path, "%s/seccomp.sock", a->config->run_dir) < 0)
                return log_error_errno(-ENOMEM, "Out of memory");
        if (mkdir(a->config->run_dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Cannot create '%s': %m", a->config->run_dir);
        int r = containers_listen(a->containers, path, &why);
        if (r < 0)
                return log_error_errno(r, "Cannot listen for seccomp notify fds: %s", why ? why : strerror(-r));
        log_info("Vetting containers' calls; runtimes hand over notify fds at %s", path);
        return 0;
}

/* Containers see the VM's /proc where FUSE is not available: a warning, not a failure. */
static void start_emulation(Agent *a) {
        _cleanup_free_ char *why = NULL;
        int r = emulation_start(a->loop, a->config->run_dir, a->fds, &a->emulation, &why);
        if (r < 0) {
                log_warning("Containers see the VM's /proc files: %s", why ? why : strerror(-r));
                return;
        }
        containers_set_procfs(a->containers, emulation_procfs(a->emulation));
        log_info("Serving containers' /proc files from %s", procfs_mountpoint(emulation_procfs(a->emulation)));
}

static void reload(Agent *a) {
        AgentConfig *c = NULL;
        if (load_config(a, &c) < 0)
                return; /* the old configuration stays */
        if (!streq(c->state_dir, a->config->state_dir))
                log_warning("The state directory changes at the next start, not on reload");
        (void) agent_config_set(&c->state_dir, a->config->state_dir);

        /* Locks no longer configured are released. */
        for (size_t i = 0; i < a->config->n_locks; i++) {
                bool kept = false;
                for (size_t j = 0; j < c->n_locks; j++)
                        kept = kept || streq(a->config->locks[i], c->locks[j]);
                if (!kept)
                        (void) lockset_remove(a->locks, a->config->locks[i]);
        }
        agent_config_free(a->config);
        a->config = c;

        int r = containers_set_limits(a->containers, &c->broker_limits);
        if (r < 0)
                log_error_errno(r, "Cannot set the broker's limits, the old ones stay: %m");
        load_trust_root(a);
        apply(a);
        log_info("Reloaded the configuration");
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents) {
        if (w->signum == SIGHUP) {
                Agent *a = container_of(w, Agent, sighup);
                (void) sd_notify(false, "RELOADING=1");
                reload(a);
                (void) sd_notify(false, "READY=1");
                return;
        }
        (void) sd_notify(false, "STOPPING=1");
        log_info("Stopping on signal %d", w->signum);
        ev_break(loop, EVBREAK_ALL);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        (void) sd_notify(false, "WATCHDOG=1");
}

/* Control clients, containers' notify fds and locks all hold fds: the usual soft limit of
 * 1024 is less than the control server alone may need. */
static void raise_fd_limit(void) {
        struct rlimit limit;
        if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur >= limit.rlim_max)
                return;
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
                log_warning_errno(-errno, "Cannot raise the open file limit: %m");
}

int agent_new(struct ev_loop *loop, const AgentArgs *args, Agent **ret) {
        _cleanup_(agent_freep) Agent *a = calloc(1, sizeof(Agent));
        if (!a)
                return log_error_errno(-ENOMEM, "Out of memory");
        a->loop = loop;
        a->args = *args;
        a->started = ev_now(loop);
        ev_timer_init(&a->session.timer, session_timer_cb, 0., 0.);
        srandom((unsigned) (time(NULL) ^ getpid()));
        raise_fd_limit();

        int r = load_config(a, &a->config);
        if (r < 0)
                return r;

        _cleanup_free_ char *why = NULL;
        r = policy_store_open(a->config->state_dir, &a->store, &why);
        if (r < 0)
                return log_error_errno(r, "Cannot open the state directory: %s", why ? why : strerror(-r));

        r = fdstore_new(&a->fds);
        if (r < 0)
                return log_error_errno(r, "Cannot take the fds passed at start: %m");
        r = containers_new(loop, a->config->state_dir, a->config->run_dir, a->fds, report_vetted_call, a,
                           &a->containers, &why);
        if (r < 0)
                return log_error_errno(r, "Cannot load the containers' uid ranges: %s", why ? why : strerror(-r));
        r = containers_set_limits(a->containers, &a->config->broker_limits);
        if (r < 0)
                return log_error_errno(r, "Cannot set the broker's limits: %m");
        if (a->config->broker_helper && (r = containers_set_helper(a->containers, a->config->broker_helper)) < 0)
                return log_error_errno(r, "Cannot use the broker helper '%s': %m", a->config->broker_helper);

        _cleanup_free_ char *socket_dir = NULL;
        if (asprintf(&socket_dir, "%s/engine-sockets", a->config->run_dir) < 0)
                return log_error_errno(-ENOMEM, "Out of memory");
        EngineSocketsConfig esc = {
                .engine_socket = a->config->engine_socket, .socket_dir = socket_dir, .registry_ca = a->config->registry_ca_file,
        };
        r = engine_sockets_new(loop, &esc, report_engine_socket, a, &a->engine_sockets, &why);
        if (r < 0)
                return log_error_errno(r, "Cannot serve engine sockets: %s", why ? why : strerror(-r));

        r = lockset_new(&a->locks);
        if (r < 0)
                return log_error_errno(r, "Cannot set up file locking: %m");
        r = fetcher_new(loop, &a->fetcher);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the settings fetcher: %m");

        /* Settings first, then containers: the last-known-good is in force before the
         * control socket accepts anyone. */
        load_trust_root(a);
        load_last_known_good(a);
        apply(a);

        r = listen_seccomp(a);
        if (r < 0)
                return r;
        r = listen_control(a);
        if (r < 0)
                return r;
        start_emulation(a);
        fdstore_drop_rest(a->fds);
        session_load(a);

        ev_io_init(&a->lock_io, lock_io_cb, lockset_fd(a->locks), EV_READ);
        ev_io_start(loop, &a->lock_io);

        ev_signal_init(&a->sigterm, signal_cb, SIGTERM);
        ev_signal_init(&a->sigint, signal_cb, SIGINT);
        ev_signal_init(&a->sighup, signal_cb, SIGHUP);
        ev_signal_start(loop, &a->sigterm);
        ev_signal_start(loop, &a->sigint);
        ev_signal_start(loop, &a->sighup);

        uint64_t usec = 0;
        if (sd_watchdog_enabled(false, &usec) > 0) {
                ev_timer_init(&a->watchdog, watchdog_cb, 0., usec / 2e6);
                ev_timer_start(loop, &a->watchdog);
        }

        *ret = TAKE_PTR(a);
        return 0;
}

int agent_run(Agent *a) {
        _cleanup_free_ char *line = status_line(a);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", line ? line : "running");
        a->ready = true;
        log_info("Ready: %s", line ? line : "");
        ev_run(a->loop, 0);
        return 0;
}

Agent *agent_free(Agent *a) {
        if (!a)
                return NULL;
        /* Locks stay in place: they protect the VM while the agent restarts. */
        lockset_free(a->locks);
        engine_sockets_free(a->engine_sockets);
        containers_free(a->containers);
        emulation_free(a->emulation);
        control_server_free(a->control);
        fdstore_free(a->fds);
        fetcher_free(a->fetcher);
        effective_settings_free(a->effective);
        bundle_free(a->bundle);
        policy_store_free(a->store);
        Session *s = &a->session;
        free(s->org), free(s->user), free(s->token), free(s->url), free(s->etag), free(s->last_fetch_result);
        free(a->policy_error);
        agent_config_free(a->config);
        free(a);
        return NULL;
}
