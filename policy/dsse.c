/* SPDX-License-Identifier: Apache-2.0 */
#include "dsse.h"
#include "json.h"
#include "util.h"

typedef struct Signature {
        char *keyid;
        unsigned char *sig;
        size_t sig_size;
} Signature;

struct Envelope {
        char *payload_type;
        unsigned char *payload;
        size_t payload_size;
        Signature signatures[ENVELOPE_MAX_SIGNATURES];
        size_t n_signatures;
};

Envelope *envelope_free(Envelope *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_signatures; i++) {
                free(e->signatures[i].keyid);
                free(e->signatures[i].sig);
        }
        free(e->payload_type);
        free(e->payload);
        free(e);
        return NULL;
}

static int decode_member(const cJSON *object, const char *name, const char *what,
                         unsigned char **ret, size_t *ret_size, char **reterr) {
        const char *text = json_get_string(object, name);
        if (!text)
                return error_set(reterr, -EBADMSG, "malformed envelope: %s must be a string", what);
        if (base64_decode(text, strlen(text), ret, ret_size) < 0)
                return error_set(reterr, -EBADMSG, "malformed envelope: %s is not valid base64", what);
        return 0;
}

int envelope_parse(const char *text, size_t size, Envelope **ret, char **reterr) {
        if (size > ENVELOPE_MAX_SIZE)
                return error_set(reterr, -EFBIG, "too large: %zu bytes (limit %d)", size, ENVELOPE_MAX_SIZE);

        _cleanup_json_ cJSON *json = cJSON_ParseWithLength(text, size);
        if (!cJSON_IsObject(json))
                return error_set(reterr, -EBADMSG, "malformed envelope: not a JSON object");

        _cleanup_(envelope_freep) Envelope *e = calloc(1, sizeof(Envelope));
        if (!e)
                return -ENOMEM;

        int r = decode_member(json, "payload", "'payload'", &e->payload, &e->payload_size, reterr);
        if (r < 0)
                return r;

        const char *type = json_get_string(json, "payloadType");
        if (!type)
                return error_set(reterr, -EBADMSG, "malformed envelope: 'payloadType' must be a string");
        e->payload_type = strdup(type);
        if (!e->payload_type)
                return -ENOMEM;

        const cJSON *sigs = cJSON_GetObjectItemCaseSensitive(json, "signatures");
        int n = cJSON_GetArraySize(sigs);
        if (!cJSON_IsArray(sigs) || n == 0)
                return error_set(reterr, -EBADMSG, "malformed envelope: 'signatures' must be a non-empty array");
        if (n > ENVELOPE_MAX_SIGNATURES)
                return error_set(reterr, -EBADMSG, "malformed envelope: more than %d signatures", ENVELOPE_MAX_SIGNATURES);

        const cJSON *item;
        cJSON_ArrayForEach(item, sigs) {
                char what[64];
                size_t i = e->n_signatures;
                Signature *s = &e->signatures[i];

                snprintf(what, sizeof(what), "signatures[%zu].keyid", i);
                const char *keyid = json_get_string(item, "keyid");
                if (!keyid)
                        return error_set(reterr, -EBADMSG, "malformed envelope: %s must be a string", what);
                snprintf(what, sizeof(what), "signatures[%zu].sig", i);
                r = decode_member(item, "sig", what, &s->sig, &s->sig_size, reterr);
                if (r < 0)
                        return r;
                e->n_signatures++;
                s->keyid = strdup(keyid);
                if (!s->keyid)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(e);
        return 0;
}

const char *envelope_payload_type(const Envelope *e) {
        return e->payload_type;
}

const unsigned char *envelope_payload(const Envelope *e, size_t *ret_size) {
        *ret_size = e->payload_size;
        return e->payload;
}

static int pae_encode(const char *type, const void *payload, size_t size, char **ret, size_t *ret_size) {
        size_t type_len = strlen(type);
        size_t n = type_len + size + 64;
        char *buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        int head = snprintf(buf, n, "DSSEv1 %zu %s %zu ", type_len, type, size);
        memcpy(buf + head, payload, size);
        *ret = buf;
        *ret_size = (size_t) head + size;
        return 0;
}

int envelope_verify(const Envelope *e, const Keyring *ring, size_t threshold, char **reterr) {
        _cleanup_free_ char *pae = NULL;
        size_t pae_size;
        int r = pae_encode(e->payload_type, e->payload, e->payload_size, &pae, &pae_size);
        if (r < 0)
                return r;

        /* Count each trusted key at most once, however many signatures name it. */
        bool counted[ENVELOPE_MAX_SIGNATURES] = {};
        size_t valid = 0;
        for (size_t i = 0; i < e->n_signatures; i++) {
                const Key *key = keyring_find(ring, e->signatures[i].keyid);
                if (!key)
                        continue;
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || (counted[j] && streq(e->signatures[j].keyid, e->signatures[i].keyid));
                if (seen)
                        continue;
                r = key_verify(key, pae, pae_size, e->signatures[i].sig, e->signatures[i].sig_size);
                if (r < 0)
                        return r;
                if (r > 0) {
                        counted[i] = true;
                        valid++;
                }
        }

        if (valid < threshold)
                return error_set(reterr, -EPERM, "signature threshold not met: %zu valid signature%s from trusted keys, %zu required",
                                 valid, valid == 1 ? "" : "s", threshold);
        return 0;
}

int envelope_sign(const char *payload_type, const void *payload, size_t size,
                  Key *const *keys, size_t n_keys, char **ret) {
        _cleanup_free_ char *pae = NULL;
        size_t pae_size;
        int r = pae_encode(payload_type, payload, size, &pae, &pae_size);
        if (r < 0)
                return r;

        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        _cleanup_free_ char *payload_b64 = base64_encode(payload, size);
        cJSON *sigs = cJSON_AddArrayToObject(json, "signatures");
        if (!json || !payload_b64 || !sigs ||
            !cJSON_AddStringToObject(json, "payloadType", payload_type) ||
            !cJSON_AddStringToObject(json, "payload", payload_b64))
                return -ENOMEM;

        for (size_t i = 0; i < n_keys; i++) {
                _cleanup_free_ unsigned char *sig = NULL;
                size_t sig_size;
                r = key_sign(keys[i], pae, pae_size, &sig, &sig_size);
                if (r < 0)
                        return r;
                _cleanup_free_ char *sig_b64 = base64_encode(sig, sig_size);
                cJSON *item = cJSON_CreateObject();
                if (!sig_b64 || !item || !cJSON_AddItemToArray(sigs, item) ||
                    !cJSON_AddStringToObject(item, "keyid", key_id(keys[i])) ||
                    !cJSON_AddStringToObject(item, "sig", sig_b64))
                        return -ENOMEM;
        }

        char *text = cJSON_PrintUnformatted(json);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}
