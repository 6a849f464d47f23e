/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>

#include "json.h"
#include "root.h"
#include "util.h"

struct TrustRoot {
        int64_t version;
        size_t threshold;
        Keyring *keys;
        char **orgs; /* organisations the root names, beyond the one a VM is pinned to */
        size_t n_orgs;
        Envelope *envelope;
        char *text;
        size_t text_size;
};

TrustRoot *trust_root_free(TrustRoot *root) {
        if (!root)
                return NULL;
        keyring_free(root->keys);
        for (size_t i = 0; i < root->n_orgs; i++)
                free(root->orgs[i]);
        free(root->orgs);
        envelope_free(root->envelope);
        free(root->text);
        free(root);
        return NULL;
}

static int root_parse_payload(TrustRoot *root, const unsigned char *payload, size_t size, char **reterr) {
        _cleanup_json_ cJSON *json = cJSON_ParseWithLength((const char *) payload, size);
        if (!cJSON_IsObject(json))
                return error_set(reterr, -EBADMSG, "malformed root: payload is not a JSON object");

        const cJSON *version = cJSON_GetObjectItemCaseSensitive(json, "version");
        if (!json_is_int(version, 1, INT32_MAX))
                return error_set(reterr, -EBADMSG, "malformed root: 'version' must be a positive integer");
        root->version = (int64_t) version->valuedouble;

        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(json, "keys");
        if (!cJSON_IsObject(keys) || !keys->child)
                return error_set(reterr, -EBADMSG, "malformed root: 'keys' must be a non-empty object");

        int r = keyring_new(&root->keys);
        if (r < 0)
                return r;
        const cJSON *item;
        cJSON_ArrayForEach(item, keys) {
                if (!cJSON_IsString(item))
                        return error_set(reterr, -EBADMSG, "malformed root: key '%s' must be a PEM string", item->string);
                _cleanup_free_ char *why = NULL;
                Key *key;
                r = key_load_public_pem(item->valuestring, strlen(item->valuestring), &key, &why);
                if (r < 0)
                        return error_set(reterr, r, "malformed root: key '%s': %s", item->string, why ? why : strerror(-r));
                if (!streq(key_id(key), item->string)) {
                        key_free(key);
                        return error_set(reterr, -EBADMSG, "malformed root: key id '%s' does not match its key", item->string);
                }
                r = keyring_add(root->keys, key);
                if (r < 0)
                        return error_set(reterr, r, "malformed root: cannot add key '%s'", item->string);
        }

        const cJSON *threshold = cJSON_GetObjectItemCaseSensitive(json, "threshold");
        if (!json_is_int(threshold, 1, (int64_t) keyring_size(root->keys)))
                return error_set(reterr, -EBADMSG, "malformed root: 'threshold' must be between 1 and the number of keys (%zu)",
                                 keyring_size(root->keys));
        root->threshold = (size_t) threshold->valuedouble;

        const cJSON *orgs = cJSON_GetObjectItemCaseSensitive(json, "orgs");
        if (!orgs)
                return 0;
        int n = cJSON_GetArraySize(orgs);
        if (!cJSON_IsArray(orgs) || n > ROOT_ORGS_MAX)
                return error_set(reterr, -EBADMSG, "malformed root: 'orgs' must be a list of organisation names");
        root->orgs = calloc((size_t) n, sizeof(char *));
        if (!root->orgs)
                return -ENOMEM;
        cJSON_ArrayForEach(item, orgs) {
                if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
                        return error_set(reterr, -EBADMSG, "malformed root: 'orgs' must be a list of organisation names");
                root->orgs[root->n_orgs] = strdup(item->valuestring);
                if (!root->orgs[root->n_orgs++])
                        return -ENOMEM;
        }
        return 0;
}

int trust_root_parse(const char *text, size_t size, TrustRoot **ret, char **reterr) {
        _cleanup_(trust_root_freep) TrustRoot *root = calloc(1, sizeof(TrustRoot));
        if (!root)
                return -ENOMEM;

        int r = envelope_parse(text, size, &root->envelope, reterr);
        if (r < 0)
                return r;
        if (!streq(envelope_payload_type(root->envelope), ROOT_PAYLOAD_TYPE))
                return error_set(reterr, -EBADMSG, "root: unexpected payloadType '%s' (expected %s)",
                                 envelope_payload_type(root->envelope), ROOT_PAYLOAD_TYPE);

        /* The keys are read from the payload before the signatures can be checked: a root
         * vouches for itself, and trust comes from first use or from its predecessor. */
        size_t payload_size;
        const unsigned char *payload = envelope_payload(root->envelope, &payload_size);
        r = root_parse_payload(root, payload, payload_size, reterr);
        if (r < 0)
                return r;

        _cleanup_free_ char *why = NULL;
        r = envelope_verify(root->envelope, root->keys, root->threshold, &why);
        if (r < 0)
                return error_set(reterr, r, "root version %" PRId64 " is not signed by its own keys: %s", root->version, why);

        root->text = malloc(size + 1);
        if (!root->text)
                return -ENOMEM;
        memcpy(root->text, text, size);
        root->text[size] = '\0';
        root->text_size = size;

        *ret = TAKE_PTR(root);
        return 0;
}

int trust_root_check_successor(const TrustRoot *trusted, const TrustRoot *candidate, char **reterr) {
        if (!trusted)
                return 1;

        if (candidate->version == trusted->version) {
                if (candidate->text_size != trusted->text_size || memcmp(candidate->text, trusted->text, trusted->text_size) != 0)
                        return error_set(reterr, -EPERM, "root version %" PRId64 " differs from the trusted root of the same version",
                                         candidate->version);
                return 0;
        }
        if (candidate->version < trusted->version)
                return error_set(reterr, -EPERM, "root version %" PRId64 " is older than the trusted version %" PRId64,
                                 candidate->version, trusted->version);
        if (candidate->version > trusted->version + 1)
                return error_set(reterr, -EPERM, "root version %" PRId64 " skips version %" PRId64,
                                 candidate->version, trusted->version + 1);

        _cleanup_free_ char *why = NULL;
        int r = envelope_verify(candidate->envelope, trusted->keys, trusted->threshold, &why);
        if (r < 0)
                return error_set(reterr, r, "root version %" PRId64 " is not signed by version %" PRId64 "'s keys: %s",
                                 candidate->version, trusted->version, why);
        return 1;
}

bool trust_root_names_org(const TrustRoot *root, const char *org) {
        for (size_t i = 0; i < root->n_orgs; i++)
                if (streq(root->orgs[i], org))
                        return true;
        return false;
}

int64_t trust_root_version(const TrustRoot *root) {
        return root->version;
}

size_t trust_root_threshold(const TrustRoot *root) {
        return root->threshold;
}

const Keyring *trust_root_keys(const TrustRoot *root) {
        return root->keys;
}

const char *trust_root_text(const TrustRoot *root, size_t *ret_size) {
        *ret_size = root->text_size;
        return root->text;
}

int trust_root_create(int64_t version, size_t threshold, Key *const *keys, size_t n_keys,
                      const char *const *orgs, size_t n_orgs, Key *const *signers, size_t n_signers, char **ret) {
        if (n_orgs > ROOT_ORGS_MAX)
                return -E2BIG;
        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        cJSON *map = cJSON_CreateObject();
        if (!json || !map || !cJSON_AddItemToObject(json, "keys", map) ||
            !cJSON_AddNumberToObject(json, "version", (double) version) ||
            !cJSON_AddNumberToObject(json, "threshold", (double) threshold))
                return -ENOMEM;

        for (size_t i = 0; i < n_keys; i++) {
                _cleanup_free_ char *pem = NULL;
                int r = key_public_pem(keys[i], &pem);
                if (r < 0)
                        return r;
                if (!cJSON_AddStringToObject(map, key_id(keys[i]), pem))
                        return -ENOMEM;
        }
        if (n_orgs > 0) {
                cJSON *list = cJSON_CreateStringArray(orgs, (int) n_orgs);
                if (!list || !cJSON_AddItemToObject(json, "orgs", list))
                        return -ENOMEM;
        }

        _cleanup_free_ char *payload = cJSON_PrintUnformatted(json);
        if (!payload)
                return -ENOMEM;
        return envelope_sign(ROOT_PAYLOAD_TYPE, payload, strlen(payload), signers, n_signers, ret);
}
