/* SPDX-License-Identifier: Apache-2.0 */
/* The policy state directory: commit, reload, re-verification, torn writes. */
#include <fcntl.h>
#include <sys/stat.h>

#include "policy/store.h"
#include "test.h"
#include "util.h"

#define NOW INT64_C(1800000000)
#define DAY INT64_C(86400)
#define SETTINGS "{\"configurationFileVersion\": 2, \"enhancedContainerIsolation\": {\"locked\": true, \"value\": true}}"

typedef struct Fixture {
        Key *key;
        TrustRoot *root;
        char dir[256];
} Fixture;

static void fixture_done(Fixture *f) {
        key_free(f->key);
        trust_root_free(f->root);
}

static void fixture_init(Fixture *f) {
        ASSERT_OK(key_generate(KEY_ED25519, &f->key));
        _cleanup_free_ char *text = NULL;
        ASSERT_OK(trust_root_create(1, 1, &f->key, 1, NULL, 0, &f->key, 1, &text));
        ASSERT_OK(trust_root_parse(text, strlen(text), &f->root, NULL));
        snprintf(f->dir, sizeof(f->dir), "%s/state", test_tmpdir());
}

static char *sign_for(Fixture *f, const char *org, int64_t serial, int64_t expires) {
        _cleanup_json_ cJSON *json = cJSON_Parse(SETTINGS);
        char *text = NULL;
        ASSERT_OK(bundle_create(org, serial, NOW, expires, json, &f->key, 1, &text));
        return text;
}

static char *sign(Fixture *f, int64_t serial, int64_t expires) {
        return sign_for(f, "acme", serial, expires);
}

static void commit(Fixture *f, const char *text, int64_t now) {
        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        ASSERT_OK(policy_store_open(f->dir, &store, NULL));
        _cleanup_(bundle_freep) Bundle *b = NULL;
        BundleCheck check = { .now = now, .state = policy_store_state(store) };
        ASSERT_OK(bundle_verify(f->root, text, strlen(text), &check, &b, NULL));
        ASSERT_OK(policy_store_commit(store, f->root, b, text, strlen(text), now));
}

static char *load_error(Fixture *f) {
        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        char *why = NULL;
        if (policy_store_open(f->dir, &store, &why) < 0)
                return why;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        ASSERT_TRUE(policy_store_load_last_known_good(store, NOW, &b, &why) < 0);
        return why;
}

TEST(commit_and_reload) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *text = sign(&f, 3, NOW + DAY);
        commit(&f, text, NOW + 5);

        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        ASSERT_OK(policy_store_open(f.dir, &store, NULL));
        const PolicyState *s = policy_store_state(store);
        ASSERT_EQ(s->serial, 3);
        ASSERT_EQ(s->root_version, 1);
        ASSERT_EQ(s->highest_time, NOW + 5);
        ASSERT_STREQ(s->org, "acme");
        ASSERT_TRUE(policy_store_root(store) != NULL);

        _cleanup_(bundle_freep) Bundle *b = NULL;
        ASSERT_OK(policy_store_load_last_known_good(store, NOW + 10, &b, NULL));
        ASSERT_EQ(b->serial, 3);
        ASSERT_TRUE(!b->expired);

        /* The exact bytes are kept. */
        _cleanup_free_ char *saved = NULL;
        size_t n;
        char path[300];
        snprintf(path, sizeof(path), "%s/last-known-good.json", f.dir);
        ASSERT_OK(read_full_file(AT_FDCWD, path, 1 << 20, &saved, &n));
        ASSERT_STREQ(saved, text);
}

TEST(expired_last_known_good_is_reported_not_dropped) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *text = sign(&f, 1, NOW + DAY);
        commit(&f, text, NOW);

        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        ASSERT_OK(policy_store_open(f.dir, &store, NULL));
        _cleanup_(bundle_freep) Bundle *b = NULL;
        ASSERT_OK(policy_store_load_last_known_good(store, NOW + 2 * DAY, &b, NULL));
        ASSERT_TRUE(b->expired);
}

TEST(rollback_after_reload) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *five = sign(&f, 5, NOW + DAY), *four = sign(&f, 4, NOW + DAY);
        commit(&f, five, NOW);

        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        ASSERT_OK(policy_store_open(f.dir, &store, NULL));
        BundleCheck check = { .now = NOW, .state = policy_store_state(store) };
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *why = NULL;
        ASSERT_TRUE(bundle_verify(f.root, four, strlen(four), &check, &b, &why) < 0);
        ASSERT_CONTAINS(why, "rollback: serial 4 is older than the accepted serial 5");
}

TEST(torn_write_recovered) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *one = sign(&f, 1, NOW + DAY), *two = sign(&f, 2, NOW + DAY);
        commit(&f, one, NOW);

        /* A crash after writing the temp files but before the renames. */
        char path[300];
        snprintf(path, sizeof(path), "%s/state.json.tmp", f.dir);
        FILE *tmp = fopen(path, "w");
        ASSERT_TRUE(tmp);
        fputs("{\"serial\": 9", tmp);
        fclose(tmp);
        snprintf(path, sizeof(path), "%s/last-known-good.json.tmp", f.dir);
        tmp = fopen(path, "w");
        ASSERT_TRUE(tmp);
        fputs("garbage", tmp);
        fclose(tmp);

        {
                _cleanup_(policy_store_freep) PolicyStore *store = NULL;
                ASSERT_OK(policy_store_open(f.dir, &store, NULL));
                ASSERT_EQ(policy_store_state(store)->serial, 1);
                ASSERT_TRUE(access(path, F_OK) < 0);
                _cleanup_(bundle_freep) Bundle *b = NULL;
                ASSERT_OK(policy_store_load_last_known_good(store, NOW, &b, NULL));
                ASSERT_EQ(b->serial, 1);
        }
        commit(&f, two, NOW);
}

TEST(mismatch_reported) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *one = sign(&f, 1, NOW + DAY), *other = sign(&f, 1, NOW + 2 * DAY);
        commit(&f, one, NOW);

        char path[300];
        snprintf(path, sizeof(path), "%s/last-known-good.json", f.dir);
        FILE *out = fopen(path, "w");
        ASSERT_TRUE(out);
        fputs(other, out);
        fclose(out);
        _cleanup_free_ char *why = load_error(&f);
        ASSERT_CONTAINS(why, "state: last-known-good.json does not match state.json");

        ASSERT_OK(unlink(path));
        free(why);
        why = load_error(&f);
        ASSERT_CONTAINS(why, "state: last-known-good.json cannot be read");

        snprintf(path, sizeof(path), "%s/root.json", f.dir);
        ASSERT_OK(unlink(path));
        free(why);
        why = load_error(&f);
        ASSERT_CONTAINS(why, "state: root.json is missing");
}

TEST(malformed_state_reported) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        ASSERT_OK(mkdir(f.dir, 0700));
        char path[300];
        snprintf(path, sizeof(path), "%s/state.json", f.dir);
        FILE *out = fopen(path, "w");
        ASSERT_TRUE(out);
        fputs("{\"serial\": \"x\"}", out);
        fclose(out);
        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        _cleanup_free_ char *why = NULL;
        ASSERT_TRUE(policy_store_open(f.dir, &store, &why) < 0);
        ASSERT_STREQ(why, "state.json: malformed");
}

TEST(org_is_pinned_by_the_first_bundle) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *one = sign(&f, 1, NOW + DAY), *evil = sign_for(&f, "evil", 2, NOW + DAY);
        commit(&f, one, NOW);
        /* Whoever commits another organisation's bundle, the pin stays and loading says why. */
        commit(&f, evil, NOW);
        {
                _cleanup_(policy_store_freep) PolicyStore *store = NULL;
                ASSERT_OK(policy_store_open(f.dir, &store, NULL));
                ASSERT_STREQ(policy_store_state(store)->org, "acme");
        }
        _cleanup_free_ char *why = load_error(&f);
        ASSERT_CONTAINS(why, "this VM is pinned to organisation 'acme'; 'evil' is refused");
}

/* state.json written before the same-serial change holds the sha256 of the whole envelope.
 * After an upgrade the accepted settings stay enforced and locked, and state.json is
 * rewritten with the payload's sha256. */
TEST(old_state_is_migrated) {
        _cleanup_(fixture_done) Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *text = sign(&f, 2, NOW + DAY);
        commit(&f, text, NOW);

        char envelope_sha[SHA256_HEX_SIZE], old_state[512], path[300];
        sha256_hex(text, strlen(text), envelope_sha);
        snprintf(old_state, sizeof(old_state),
                 "{\"serial\": 2, \"sha256\": \"%s\", \"highestTime\": \"2027-01-15T08:00:00Z\", \"rootVersion\": 1, \"org\": \"acme\"}",
                 envelope_sha);
        snprintf(path, sizeof(path), "%s/state.json", f.dir);
        FILE *out = fopen(path, "w");
        ASSERT_TRUE(out);
        fputs(old_state, out);
        fclose(out);

        _cleanup_(bundle_freep) Bundle *b = NULL;
        {
                _cleanup_(policy_store_freep) PolicyStore *store = NULL;
                ASSERT_OK(policy_store_open(f.dir, &store, NULL));
                _cleanup_free_ char *why = NULL;
                ASSERT_OK(policy_store_load_last_known_good(store, NOW, &b, &why));
                ASSERT_STREQ(policy_store_state(store)->sha256, b->sha256);
        }
        ASSERT_EQ(b->serial, 2);
        _cleanup_(effective_settings_freep) EffectiveSettings *eff = NULL;
        ASSERT_OK(effective_settings_compute(b->settings, NULL, &eff));
        const cJSON *value;
        SettingSource source;
        ASSERT_OK(effective_settings_get(eff, "enhancedContainerIsolation", &value, &source));
        ASSERT_TRUE(cJSON_IsTrue(value));
        ASSERT_EQ(source, SETTING_SOURCE_ADMIN_LOCKED);

        /* Migrated: the payload's sha256 is on disk and a reload needs no fallback. */
        _cleanup_free_ char *saved = NULL;
        size_t n;
        ASSERT_OK(read_full_file(AT_FDCWD, path, 64 * 1024, &saved, &n));
        ASSERT_CONTAINS(saved, b->sha256);
        ASSERT_TRUE(!strstr(saved, envelope_sha));
        ASSERT_CONTAINS(saved, "\"org\":\t\"acme\"");
}
