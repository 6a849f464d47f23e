/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>

#include "bundle.h"
#include "util.h"

Bundle *bundle_free(Bundle *bundle) {
        if (!bundle)
                return NULL;
        free(bundle->org);
        admin_settings_free(bundle->settings);
        free(bundle);
        return NULL;
}

static int parse_time(const cJSON *payload, const char *name, int64_t *ret, char **reterr) {
        const char *text = json_get_string(payload, name);
        if (!text || rfc3339_parse(text, ret) < 0)
                return error_set(reterr, -EBADMSG, "malformed payload: '%s' must be an RFC 3339 time", name);
        return 0;
}

static int bundle_parse_payload(Bundle *b, const unsigned char *payload, size_t size, char **reterr) {
        _cleanup_json_ cJSON *json = cJSON_ParseWithLength((const char *) payload, size);
        if (!cJSON_IsObject(json))
                return error_set(reterr, -EBADMSG, "malformed payload: not a JSON object");

        const char *org = json_get_string(json, "org");
        if (!org || org[0] == '\0')
                return error_set(reterr, -EBADMSG, "malformed payload: 'org' must be a non-empty string");
        b->org = strdup(org);
        if (!b->org)
                return -ENOMEM;

        const cJSON *serial = cJSON_GetObjectItemCaseSensitive(json, "serial");
        if (!json_is_int(serial, 1, INT64_C(1) << 53))
                return error_set(reterr, -EBADMSG, "malformed payload: 'serial' must be a positive integer");
        b->serial = (int64_t) serial->valuedouble;

        int r = parse_time(json, "issuedAt", &b->issued_at, reterr);
        if (r < 0)
                return r;
        r = parse_time(json, "expires", &b->expires, reterr);
        if (r < 0)
                return r;
        if (b->expires <= b->issued_at)
                return error_set(reterr, -EBADMSG, "malformed payload: 'expires' is not after 'issuedAt'");

        const cJSON *settings = cJSON_GetObjectItemCaseSensitive(json, "settings");
        _cleanup_free_ char *why = NULL;
        r = admin_settings_parse(settings, &b->settings, &why);
        if (r < 0)
                return error_set(reterr, r, "invalid settings: %s", why ? why : strerror(-r));
        return 0;
}

int bundle_payload_sha256(const char *text, size_t size, char ret[SHA256_HEX_SIZE], char **reterr) {
        _cleanup_(envelope_freep) Envelope *e = NULL;
        int r = envelope_parse(text, size, &e, reterr);
        if (r < 0)
                return r;
        size_t payload_size;
        const unsigned char *payload = envelope_payload(e, &payload_size);
        sha256_hex(payload, payload_size, ret);
        return 0;
}

int bundle_verify(const TrustRoot *root, const char *text, size_t size, const BundleCheck *check,
                  Bundle **ret, char **reterr) {
        _cleanup_(envelope_freep) Envelope *e = NULL;
        int r = envelope_parse(text, size, &e, reterr);
        if (r < 0)
                return r;

        if (!streq(envelope_payload_type(e), BUNDLE_PAYLOAD_TYPE))
                return error_set(reterr, -EBADMSG, "unexpected payloadType '%s' (expected %s)",
                                 envelope_payload_type(e), BUNDLE_PAYLOAD_TYPE);

        r = envelope_verify(e, trust_root_keys(root), trust_root_threshold(root), reterr);
        if (r < 0)
                return r;

        _cleanup_(bundle_freep) Bundle *b = calloc(1, sizeof(Bundle));
        if (!b)
                return -ENOMEM;
        size_t payload_size;
        const unsigned char *payload = envelope_payload(e, &payload_size);
        r = bundle_parse_payload(b, payload, payload_size, reterr);
        if (r < 0)
                return r;
        sha256_hex(payload, payload_size, b->sha256);

        if (check->org && !streq(check->org, b->org))
                return error_set(reterr, -EPERM, "bundle is for org '%s', expected '%s'", b->org, check->org);

        const PolicyState *state = check->state;
        int64_t now = state && state->highest_time > check->now ? state->highest_time : check->now;
        if (now >= b->expires) {
                char when[32];
                rfc3339_format(b->expires, when);
                if (!check->allow_expired)
                        return error_set(reterr, -ETIME, "bundle expired at %s", when);
                b->expired = true;
        }

        if (state && state->serial > 0) {
                bool same_bytes = streq(state->sha256, b->sha256);
                if (b->serial < state->serial)
                        return error_set(reterr, -EPERM, "rollback: serial %" PRId64 " is older than the accepted serial %" PRId64,
                                         b->serial, state->serial);
                if (b->serial == state->serial && !same_bytes)
                        return error_set(reterr, -EPERM, "serial %" PRId64 " was already accepted with different content",
                                         b->serial);
                b->unchanged = b->serial == state->serial;
        }

        *ret = TAKE_PTR(b);
        return 0;
}

int bundle_check_org(const TrustRoot *root, const char *pinned, const char *org, char **reterr) {
        if (!pinned || streq(pinned, org) || (root && trust_root_names_org(root, org)))
                return 0;
        return error_set(reterr, -EPERM, "this VM is pinned to organisation '%s'; '%s' is refused", pinned, org);
}

int bundle_create(const char *org, int64_t serial, int64_t issued_at, int64_t expires,
                  const cJSON *settings, Key *const *keys, size_t n_keys, char **ret) {
        char issued[32], exp[32];
        rfc3339_format(issued_at, issued);
        rfc3339_format(expires, exp);

        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        cJSON *copy = cJSON_Duplicate(settings, true);
        if (!json || !copy || !cJSON_AddItemToObject(json, "settings", copy) ||
            !cJSON_AddStringToObject(json, "org", org) ||
            !cJSON_AddNumberToObject(json, "serial", (double) serial) ||
            !cJSON_AddStringToObject(json, "issuedAt", issued) ||
            !cJSON_AddStringToObject(json, "expires", exp))
                return -ENOMEM;

        _cleanup_free_ char *payload = cJSON_PrintUnformatted(json);
        if (!payload)
                return -ENOMEM;
        return envelope_sign(BUNDLE_PAYLOAD_TYPE, payload, strlen(payload), keys, n_keys, ret);
}
