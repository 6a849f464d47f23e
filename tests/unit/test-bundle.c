/* SPDX-License-Identifier: Apache-2.0 */
/* Keys, DSSE envelopes, trust roots and bundle verification. */
#include "policy/bundle.h"
#include "test.h"
#include "util.h"

#define NOW INT64_C(1800000000) /* 2027-01-15 */
#define DAY INT64_C(86400)
#define SETTINGS "{\"configurationFileVersion\": 2, \"enhancedContainerIsolation\": {\"locked\": true, \"value\": true}}"

static Key *new_key(KeyType type) {
        Key *k = NULL;
        ASSERT_OK(key_generate(type, &k));
        return k;
}

static TrustRoot *make_root(int64_t version, size_t threshold, Key **keys, size_t n, Key **signers, size_t n_signers) {
        _cleanup_free_ char *text = NULL;
        ASSERT_OK(trust_root_create(version, threshold, keys, n, NULL, 0, signers, n_signers, &text));
        TrustRoot *root = NULL;
        _cleanup_free_ char *why = NULL;
        int r = trust_root_parse(text, strlen(text), &root, &why);
        if (r < 0)
                fprintf(stderr, "root: %s\n", why);
        ASSERT_OK(r);
        return root;
}

static char *make_bundle(const char *org, int64_t serial, int64_t issued, int64_t expires, const char *settings,
                         Key **keys, size_t n) {
        _cleanup_json_ cJSON *json = cJSON_Parse(settings);
        ASSERT_TRUE(json);
        char *text = NULL;
        ASSERT_OK(bundle_create(org, serial, issued, expires, json, keys, n, &text));
        return text;
}

/* Verifies and returns the reason, or NULL when accepted. */
static char *verify(const TrustRoot *root, const char *text, const BundleCheck *check) {
        _cleanup_(bundle_freep) Bundle *b = NULL;
        char *why = NULL;
        int r = bundle_verify(root, text, strlen(text), check, &b, &why);
        if (r >= 0) {
                ASSERT_TRUE(why == NULL);
                return NULL;
        }
        ASSERT_TRUE(why != NULL);
        return why;
}

static void assert_rejected(const TrustRoot *root, const char *text, const BundleCheck *check, const char *reason) {
        _cleanup_free_ char *why = verify(root, text, check);
        ASSERT_CONTAINS(why, reason);
}

static void assert_accepted(const TrustRoot *root, const char *text, const BundleCheck *check) {
        _cleanup_free_ char *why = verify(root, text, check);
        if (why)
                fprintf(stderr, "rejected: %s\n", why);
        ASSERT_TRUE(why == NULL);
}

/* Re-serialises an envelope after edit() changed its JSON. */
static char *edit_envelope(const char *text, void (*edit)(cJSON *envelope)) {
        _cleanup_json_ cJSON *json = cJSON_Parse(text);
        ASSERT_TRUE(json);
        edit(json);
        return cJSON_PrintUnformatted(json);
}

static void flip_payload_byte(cJSON *e) {
        cJSON *p = cJSON_GetObjectItem(e, "payload");
        _cleanup_free_ unsigned char *raw = NULL;
        size_t n;
        ASSERT_OK(base64_decode(p->valuestring, strlen(p->valuestring), &raw, &n));
        raw[n / 2] ^= 0x01;
        _cleanup_free_ char *b64 = base64_encode(raw, n);
        cJSON_SetValuestring(p, b64);
}

static void change_payload_type(cJSON *e) {
        cJSON_SetValuestring(cJSON_GetObjectItem(e, "payloadType"), "application/vnd.stockade.root+json");
}

static void break_base64(cJSON *e) {
        cJSON_SetValuestring(cJSON_GetObjectItem(e, "payload"), "not*base64!");
}

static void duplicate_signature(cJSON *e) {
        cJSON *sigs = cJSON_GetObjectItem(e, "signatures");
        cJSON_AddItemToArray(sigs, cJSON_Duplicate(cJSON_GetArrayItem(sigs, 0), true));
}

TEST(valid_bundle_both_key_types) {
        KeyType types[] = { KEY_ED25519, KEY_P256 };
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_(key_freep) Key *k = new_key(types[i]);
                _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
                _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, &k, 1);
                BundleCheck check = { .org = "acme", .now = NOW + 10 };
                _cleanup_(bundle_freep) Bundle *b = NULL;
                ASSERT_OK(bundle_verify(root, text, strlen(text), &check, &b, NULL));
                ASSERT_STREQ(b->org, "acme");
                ASSERT_EQ(b->serial, 1);
                ASSERT_EQ(b->expires, NOW + DAY);
                ASSERT_TRUE(!b->expired);
        }
}

TEST(key_id_is_sha256_of_der_public_key) {
        _cleanup_(key_freep) Key *k = new_key(KEY_P256);
        _cleanup_free_ char *pem = NULL;
        ASSERT_OK(key_public_pem(k, &pem));
        _cleanup_(key_freep) Key *pub = NULL;
        ASSERT_OK(key_load_public_pem(pem, strlen(pem), &pub, NULL));
        ASSERT_STREQ(key_id(pub), key_id(k));
        ASSERT_EQ(strlen(key_id(k)), 64);
}

TEST(rsa_keys_refused) {
        const char *dir = test_tmpdir();
        char cmd[512], path[256];
        snprintf(path, sizeof(path), "%s/rsa.key", dir);
        snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s 2>/dev/null", path);
        if (system(cmd) != 0)
                test_skip("openssl genpkey failed");
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_free_ char *why = NULL;
        ASSERT_TRUE(key_load_file(path, true, &k, &why) < 0);
        ASSERT_CONTAINS(why, "unsupported key type");
}

TEST(changed_payload_byte_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, &k, 1);
        _cleanup_free_ char *bad = edit_envelope(text, flip_payload_byte);
        BundleCheck check = { .now = NOW };
        assert_rejected(root, bad, &check, "signature threshold not met: 0 valid signatures from trusted keys, 1 required");
}

TEST(changed_payload_type_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_P256);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, &k, 1);
        _cleanup_free_ char *bad = edit_envelope(text, change_payload_type);
        BundleCheck check = { .now = NOW };
        assert_rejected(root, bad, &check, "unexpected payloadType 'application/vnd.stockade.root+json'");
}

TEST(wrong_key_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(key_freep) Key *other = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, &other, 1);
        BundleCheck check = { .now = NOW };
        assert_rejected(root, text, &check, "signature threshold not met: 0 valid signatures");
}

TEST(below_threshold_and_duplicate_key_rejected) {
        Key *keys[3] = { new_key(KEY_ED25519), new_key(KEY_P256), new_key(KEY_ED25519) };
        TrustRoot *root = make_root(1, 2, keys, 3, keys, 2);
        BundleCheck check = { .now = NOW };

        _cleanup_free_ char *one = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, keys, 1);
        assert_rejected(root, one, &check, "signature threshold not met: 1 valid signature from trusted keys, 2 required");

        _cleanup_free_ char *dup = edit_envelope(one, duplicate_signature);
        assert_rejected(root, dup, &check, "signature threshold not met: 1 valid signature from trusted keys, 2 required");

        _cleanup_free_ char *two = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, keys + 1, 2);
        assert_accepted(root, two, &check);

        trust_root_free(root);
        for (size_t i = 0; i < 3; i++)
                key_free(keys[i]);
}

TEST(malformed_envelopes_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, &k, 1);
        BundleCheck check = { .now = NOW };

        _cleanup_free_ char *b64 = edit_envelope(text, break_base64);
        assert_rejected(root, b64, &check, "malformed envelope: 'payload' is not valid base64");
        assert_rejected(root, "[1,2]", &check, "malformed envelope: not a JSON object");
        assert_rejected(root, "{\"payload\": \"e30=\", \"payloadType\": \"x\"}", &check,
                        "malformed envelope: 'signatures' must be a non-empty array");
        assert_rejected(root, "{\"payload\": \"e30=\", \"payloadType\": \"x\", \"signatures\": [{\"sig\": \"AA==\"}]}", &check,
                        "malformed envelope: signatures[0].keyid must be a string");
}

TEST(oversize_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        size_t n = ENVELOPE_MAX_SIZE + 1;
        _cleanup_free_ char *big = malloc(n + 1);
        memset(big, ' ', n);
        big[n] = '\0';
        BundleCheck check = { .now = NOW };
        assert_rejected(root, big, &check, "too large: 1048577 bytes (limit 1048576)");
}

TEST(non_json_payload_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = NULL;
        const char *payload = "this is not json";
        ASSERT_OK(envelope_sign(BUNDLE_PAYLOAD_TYPE, payload, strlen(payload), &k, 1, &text));
        BundleCheck check = { .now = NOW };
        assert_rejected(root, text, &check, "malformed payload: not a JSON object");
}

TEST(invalid_settings_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY,
                "{\"configurationFileVersion\": 2, \"enhancedContainerIsolation\": {\"locked\": true, \"value\": \"yes\"}}", &k, 1);
        BundleCheck check = { .now = NOW };
        assert_rejected(root, text, &check, "invalid settings: enhancedContainerIsolation.value: expected boolean");
}

TEST(wrong_org_rejected) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("evil", 1, NOW, NOW + DAY, SETTINGS, &k, 1);
        BundleCheck check = { .org = "acme", .now = NOW };
        assert_rejected(root, text, &check, "bundle is for org 'evil', expected 'acme'");
}

TEST(expired_rejected_and_clock_rollback_does_not_revive) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, &k, 1, &k, 1);
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, &k, 1);

        BundleCheck late = { .now = NOW + 2 * DAY };
        assert_rejected(root, text, &late, "bundle expired at 2027-01-16T08:00:00Z");

        /* The clock was moved back, but a later time was already seen. */
        PolicyState state = { .highest_time = NOW + 2 * DAY };
        BundleCheck back = { .now = NOW + 60, .state = &state };
        assert_rejected(root, text, &back, "bundle expired at");

        BundleCheck reload = { .now = NOW + 2 * DAY, .allow_expired = true };
        _cleanup_(bundle_freep) Bundle *b = NULL;
        ASSERT_OK(bundle_verify(root, text, strlen(text), &reload, &b, NULL));
        ASSERT_TRUE(b->expired);
}

TEST(rollback_and_same_serial) {
        Key *keys[2] = { new_key(KEY_ED25519), new_key(KEY_P256) };
        _cleanup_(trust_root_freep) TrustRoot *root = make_root(1, 1, keys, 2, keys, 2);
        _cleanup_free_ char *five = make_bundle("acme", 5, NOW, NOW + DAY, SETTINGS, &keys[0], 1);
        _cleanup_free_ char *four = make_bundle("acme", 4, NOW, NOW + DAY, SETTINGS, &keys[0], 1);
        _cleanup_free_ char *five_again = make_bundle("acme", 5, NOW + 1, NOW + DAY, SETTINGS, &keys[0], 1);
        /* The same payload, signed by the other key, and the envelope written out anew. */
        _cleanup_free_ char *five_resigned = make_bundle("acme", 5, NOW, NOW + DAY, SETTINGS, &keys[1], 1);
        _cleanup_json_ cJSON *json = cJSON_Parse(five);
        _cleanup_free_ char *five_reserialised = cJSON_Print(json);
        ASSERT_TRUE(!streq(five_resigned, five) && !streq(five_reserialised, five));

        PolicyState state = { .serial = 5 };
        _cleanup_(bundle_freep) Bundle *accepted = NULL;
        BundleCheck first = { .now = NOW };
        ASSERT_OK(bundle_verify(root, five, strlen(five), &first, &accepted, NULL));
        strcpy(state.sha256, accepted->sha256);
        BundleCheck check = { .now = NOW, .state = &state };

        assert_rejected(root, four, &check, "rollback: serial 4 is older than the accepted serial 5");
        assert_rejected(root, five_again, &check, "serial 5 was already accepted with different content");

        const char *same[] = { five, five_resigned, five_reserialised };
        for (size_t i = 0; i < ELEMENTSOF(same); i++) {
                _cleanup_(bundle_freep) Bundle *b = NULL;
                ASSERT_OK(bundle_verify(root, same[i], strlen(same[i]), &check, &b, NULL));
                ASSERT_TRUE(b->unchanged);
        }
        key_free(keys[0]), key_free(keys[1]);
}

/* A root like make_root(1, 1, &k, 1, &k, 1) whose payload also has "orgs": orgs (JSON, any
 * shape: trust_root_create writes only lists of names). */
static char *make_root_text_with_orgs(Key *k, const char *orgs) {
        _cleanup_free_ char *plain = NULL, *why = NULL;
        ASSERT_OK(trust_root_create(1, 1, &k, 1, NULL, 0, &k, 1, &plain));
        _cleanup_(envelope_freep) Envelope *e = NULL;
        ASSERT_OK(envelope_parse(plain, strlen(plain), &e, &why));
        size_t size;
        const unsigned char *payload = envelope_payload(e, &size);
        _cleanup_json_ cJSON *json = cJSON_ParseWithLength((const char *) payload, size);
        ASSERT_TRUE(json && cJSON_AddItemToObject(json, "orgs", cJSON_Parse(orgs)));
        _cleanup_free_ char *text = cJSON_PrintUnformatted(json);
        char *root = NULL;
        ASSERT_OK(envelope_sign(ROOT_PAYLOAD_TYPE, text, strlen(text), &k, 1, &root));
        return root;
}

TEST(org_pinning) {
        _cleanup_(key_freep) Key *k = new_key(KEY_ED25519);
        _cleanup_(trust_root_freep) TrustRoot *plain = make_root(1, 1, &k, 1, &k, 1);
        const char *orgs[] = { "acme", "acme-eu" };
        _cleanup_free_ char *text = NULL, *why = NULL;
        ASSERT_OK(trust_root_create(1, 1, &k, 1, orgs, ELEMENTSOF(orgs), &k, 1, &text));
        _cleanup_(trust_root_freep) TrustRoot *named = NULL;
        ASSERT_OK(trust_root_parse(text, strlen(text), &named, &why));

        ASSERT_OK(bundle_check_org(plain, NULL, "anyone", &why));
        ASSERT_OK(bundle_check_org(plain, "acme", "acme", &why));
        ASSERT_EQ(bundle_check_org(plain, "acme", "evil", &why), -EPERM);
        ASSERT_STREQ(why, "this VM is pinned to organisation 'acme'; 'evil' is refused");
        free(why);
        why = NULL;
        /* The trust root itself names the organisations it speaks for. */
        ASSERT_OK(bundle_check_org(named, "acme", "acme-eu", &why));
        ASSERT_EQ(bundle_check_org(named, "acme", "evil", &why), -EPERM);

        const char *bad[] = { "\"acme\"", "[\"\"]", "[1]" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *t = make_root_text_with_orgs(k, bad[i]), *reason = NULL;
                TrustRoot *r = NULL;
                ASSERT_EQ(trust_root_parse(t, strlen(t), &r, &reason), -EBADMSG);
                ASSERT_STREQ(reason, "malformed root: 'orgs' must be a list of organisation names");
        }
}

TEST(root_rotation_accepted) {
        Key *v1[2] = { new_key(KEY_ED25519), new_key(KEY_P256) };
        Key *v2[2] = { new_key(KEY_ED25519), new_key(KEY_ED25519) };
        Key *signers[4] = { v1[0], v1[1], v2[0], v2[1] };
        _cleanup_(trust_root_freep) TrustRoot *r1 = make_root(1, 2, v1, 2, v1, 2);
        _cleanup_(trust_root_freep) TrustRoot *r2 = make_root(2, 2, v2, 2, signers, 4);
        _cleanup_free_ char *why = NULL;
        ASSERT_EQ(trust_root_check_successor(r1, r2, &why), 1);
        ASSERT_EQ(trust_root_check_successor(r2, r2, &why), 0);
        ASSERT_EQ(trust_root_check_successor(NULL, r1, &why), 1);

        /* Bundles follow the new keys. */
        _cleanup_free_ char *text = make_bundle("acme", 1, NOW, NOW + DAY, SETTINGS, v2, 2);
        BundleCheck check = { .now = NOW };
        assert_accepted(r2, text, &check);
        assert_rejected(r1, text, &check, "signature threshold not met");

        for (size_t i = 0; i < 2; i++)
                key_free(v1[i]), key_free(v2[i]);
}

static void assert_rotation_refused(const TrustRoot *trusted, const TrustRoot *candidate, const char *reason) {
        _cleanup_free_ char *why = NULL;
        ASSERT_TRUE(trust_root_check_successor(trusted, candidate, &why) < 0);
        ASSERT_CONTAINS(why, reason);
}

TEST(root_rotation_refused) {
        Key *old = new_key(KEY_ED25519), *fresh = new_key(KEY_ED25519);
        Key *both[2] = { old, fresh };
        TrustRoot *r1 = make_root(1, 1, &old, 1, &old, 1);
        TrustRoot *r2_unsigned_by_old = make_root(2, 1, &fresh, 1, &fresh, 1);
        TrustRoot *r2 = make_root(2, 1, &fresh, 1, both, 2);
        TrustRoot *r3 = make_root(3, 1, &fresh, 1, both, 2);
        TrustRoot *r1_other = make_root(1, 1, &fresh, 1, &fresh, 1);

        assert_rotation_refused(r1, r2_unsigned_by_old, "root version 2 is not signed by version 1's keys");
        assert_rotation_refused(r1, r3, "root version 3 skips version 2");
        assert_rotation_refused(r2, r1, "root version 1 is older than the trusted version 2");
        assert_rotation_refused(r1, r1_other, "root version 1 differs from the trusted root");

        trust_root_free(r1), trust_root_free(r2_unsigned_by_old), trust_root_free(r2), trust_root_free(r3), trust_root_free(r1_other);
        key_free(old), key_free(fresh);
}

TEST(root_not_self_signed_refused) {
        Key *a = new_key(KEY_ED25519), *b = new_key(KEY_ED25519);
        _cleanup_free_ char *text = NULL, *why = NULL;
        ASSERT_OK(trust_root_create(1, 1, &a, 1, NULL, 0, &b, 1, &text));
        TrustRoot *root = NULL;
        ASSERT_TRUE(trust_root_parse(text, strlen(text), &root, &why) < 0);
        ASSERT_CONTAINS(why, "root version 1 is not signed by its own keys");
        key_free(a), key_free(b);
}
