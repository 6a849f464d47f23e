/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "store.h"
#include "util.h"

#define STATE_FILE "state.json"
#define ROOT_FILE "root.json"
#define BUNDLE_FILE "last-known-good.json"

struct PolicyStore {
        char *path;
        int dir_fd;
        PolicyState state;
        TrustRoot *root;
};

PolicyStore *policy_store_free(PolicyStore *store) {
        if (!store)
                return NULL;
        safe_close(store->dir_fd);
        trust_root_free(store->root);
        free(store->state.org);
        free(store->path);
        free(store);
        return NULL;
}

/* A crash between writing "x.tmp" and renaming it leaves the old "x" in force. */
static int remove_temp_files(int dir_fd) {
        int fd = RET_NERRNO(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd < 0)
                return fd;
        DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n > 4 && streq(de->d_name + n - 4, ".tmp"))
                        (void) unlinkat(dir_fd, de->d_name, 0);
        }
        closedir(d);
        return 0;
}

static int state_parse(PolicyState *state, const char *text, size_t size, char **reterr) {
        _cleanup_json_ cJSON *json = cJSON_ParseWithLength(text, size);
        if (!cJSON_IsObject(json))
                return error_set(reterr, -EBADMSG, STATE_FILE ": not a JSON object");

        const cJSON *serial = cJSON_GetObjectItemCaseSensitive(json, "serial");
        const cJSON *root_version = cJSON_GetObjectItemCaseSensitive(json, "rootVersion");
        const char *sha = json_get_string(json, "sha256");
        const char *highest = json_get_string(json, "highestTime");
        const char *org = json_get_string(json, "org");
        if (!json_is_int(serial, 0, INT64_C(1) << 53) || !json_is_int(root_version, 0, INT32_MAX) ||
            !sha || strlen(sha) >= SHA256_HEX_SIZE || !highest || rfc3339_parse(highest, &state->highest_time) < 0)
                return error_set(reterr, -EBADMSG, STATE_FILE ": malformed");

        state->serial = (int64_t) serial->valuedouble;
        state->root_version = (int64_t) root_version->valuedouble;
        strcpy(state->sha256, sha);
        if (org) {
                state->org = strdup(org);
                if (!state->org)
                        return -ENOMEM;
        }
        return 0;
}

int policy_store_open(const char *path, PolicyStore **ret, char **reterr) {
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "cannot create state directory '%s': %m", path);

        _cleanup_(policy_store_freep) PolicyStore *store = calloc(1, sizeof(PolicyStore));
        if (!store)
                return -ENOMEM;
        store->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (store->dir_fd < 0)
                return error_set(reterr, -errno, "cannot open state directory '%s': %m", path);
        store->path = strdup(path);
        if (!store->path)
                return -ENOMEM;

        int r = remove_temp_files(store->dir_fd);
        if (r < 0)
                return error_set(reterr, r, "cannot clean state directory '%s': %s", path, strerror(-r));

        _cleanup_free_ char *text = NULL;
        size_t size;
        r = read_full_file(store->dir_fd, STATE_FILE, 64 * 1024, &text, &size);
        if (r >= 0)
                r = state_parse(&store->state, text, size, reterr);
        else if (r != -ENOENT)
                return error_set(reterr, r, "cannot read %s/" STATE_FILE ": %s", path, strerror(-r));
        if (r < 0 && r != -ENOENT)
                return r;

        free(text);
        text = NULL;
        r = read_full_file(store->dir_fd, ROOT_FILE, ENVELOPE_MAX_SIZE, &text, &size);
        if (r == -ENOENT) {
                if (store->state.root_version > 0)
                        return error_set(reterr, -ENOENT, "state: " ROOT_FILE " is missing but state.json records root version %" PRId64,
                                         store->state.root_version);
        } else if (r < 0)
                return error_set(reterr, r, "cannot read %s/" ROOT_FILE ": %s", path, strerror(-r));
        else {
                _cleanup_free_ char *why = NULL;
                r = trust_root_parse(text, size, &store->root, &why);
                if (r < 0)
                        return error_set(reterr, r, "state: stored " ROOT_FILE " is invalid: %s", why);
                if (trust_root_version(store->root) != store->state.root_version)
                        return error_set(reterr, -EBADMSG, "state: " ROOT_FILE " is version %" PRId64 " but state.json records %" PRId64,
                                         trust_root_version(store->root), store->state.root_version);
        }

        *ret = TAKE_PTR(store);
        return 0;
}

const PolicyState *policy_store_state(const PolicyStore *store) {
        return &store->state;
}

const TrustRoot *policy_store_root(const PolicyStore *store) {
        return store->root;
}

static int state_write(PolicyStore *store, const PolicyState *state) {
        char highest[32];
        rfc3339_format(state->highest_time, highest);

        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        if (!json ||
            !cJSON_AddNumberToObject(json, "serial", (double) state->serial) ||
            !cJSON_AddStringToObject(json, "sha256", state->sha256) ||
            !cJSON_AddStringToObject(json, "highestTime", highest) ||
            !cJSON_AddNumberToObject(json, "rootVersion", (double) state->root_version) ||
            (state->org && !cJSON_AddStringToObject(json, "org", state->org)))
                return -ENOMEM;

        _cleanup_free_ char *text = cJSON_Print(json);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(store->dir_fd, STATE_FILE, text, strlen(text), 0600);
}

int policy_store_load_last_known_good(PolicyStore *store, int64_t now, Bundle **ret, char **reterr) {
        PolicyState *state = &store->state;
        if (state->serial == 0)
                return -ENOENT;
        if (!store->root)
                return error_set(reterr, -EBADMSG, "state: serial %" PRId64 " recorded without a trusted root", state->serial);

        _cleanup_free_ char *text = NULL;
        size_t size;
        int r = read_full_file(store->dir_fd, BUNDLE_FILE, ENVELOPE_MAX_SIZE, &text, &size);
        if (r < 0)
                return error_set(reterr, r, "state: " BUNDLE_FILE " cannot be read (%s) but state.json records serial %" PRId64,
                                 strerror(-r), state->serial);

        char sha[SHA256_HEX_SIZE], envelope_sha[SHA256_HEX_SIZE];
        _cleanup_free_ char *why = NULL;
        r = bundle_payload_sha256(text, size, sha, &why);
        /* Before the same-serial check compared payloads, state.json held the envelope's sha256. */
        sha256_hex(text, size, envelope_sha);
        bool old_form = streq(envelope_sha, state->sha256);
        if (r >= 0 && !streq(sha, state->sha256) && !old_form)
                r = error_set(&why, -EBADMSG, "payload sha256 %s, expected %s", sha, state->sha256);
        if (r < 0)
                return error_set(reterr, r, "state: " BUNDLE_FILE " does not match state.json (%s)", why);

        BundleCheck check = { .now = now, .allow_expired = true };
        PolicyState floor = { .highest_time = state->highest_time };
        check.state = &floor; /* the clock floor, not rollback: this is the accepted bundle */
        _cleanup_(bundle_freep) Bundle *bundle = NULL;
        r = bundle_verify(store->root, text, size, &check, &bundle, &why);
        if (r >= 0)
                r = bundle_check_org(store->root, state->org, bundle->org, &why);
        if (r < 0)
                return error_set(reterr, r, "state: " BUNDLE_FILE " no longer verifies: %s", why);
        if (old_form) {
                /* A failed rewrite leaves the old form, accepted again next time. */
                strcpy(state->sha256, bundle->sha256);
                (void) state_write(store, state);
        }
        *ret = TAKE_PTR(bundle);
        return 0;
}

int policy_store_commit(PolicyStore *store, const TrustRoot *root, const Bundle *bundle,
                        const char *text, size_t size, int64_t now) {
        PolicyState next = store->state;
        _cleanup_(trust_root_freep) TrustRoot *root_copy = NULL;
        int r;

        if (trust_root_version(root) != next.root_version) {
                size_t root_size;
                const char *root_text = trust_root_text(root, &root_size);
                r = trust_root_parse(root_text, root_size, &root_copy, NULL);
                if (r < 0)
                        return r;
                r = write_file_atomic(store->dir_fd, ROOT_FILE, root_text, root_size, 0644);
                if (r < 0)
                        return r;
                next.root_version = trust_root_version(root);
        }

        if (now > next.highest_time)
                next.highest_time = now;

        _cleanup_free_ char *org = NULL;
        if (bundle) {
                if (!bundle->unchanged) {
                        r = write_file_atomic(store->dir_fd, BUNDLE_FILE, text, size, 0644);
                        if (r < 0)
                                return r;
                }
                next.serial = bundle->serial;
                strcpy(next.sha256, bundle->sha256);
                if (bundle->issued_at > next.highest_time)
                        next.highest_time = bundle->issued_at;
                if (!next.org) {
                        org = strdup(bundle->org);
                        if (!org)
                                return -ENOMEM;
                        next.org = org;
                }
        }

        r = state_write(store, &next);
        if (r < 0)
                return r;

        if (root_copy) {
                trust_root_free(store->root);
                store->root = TAKE_PTR(root_copy);
        }
        if (org)
                store->state.org = TAKE_PTR(org);
        store->state.serial = next.serial;
        store->state.root_version = next.root_version;
        store->state.highest_time = next.highest_time;
        strcpy(store->state.sha256, next.sha256);
        return 0;
}
