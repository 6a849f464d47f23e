/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <fcntl.h>

#include "key.h"
#include "util.h"

#define KEYRING_MAX 64

struct Key {
        EVP_PKEY *pkey;
        KeyType type;
        char id[KEY_ID_SIZE];
};

struct Keyring {
        Key *keys[KEYRING_MAX];
        size_t n;
};

int key_type_from_string(const char *s, KeyType *ret) {
        if (streq(s, "ed25519"))
                *ret = KEY_ED25519;
        else if (streq(s, "p256"))
                *ret = KEY_P256;
        else
                return -EINVAL;
        return 0;
}

void sha256_hex(const void *data, size_t size, char out[static SHA256_HEX_SIZE]) {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256(data, size, digest);
        hex_encode(digest, sizeof(digest), out);
}

Key *key_free(Key *key) {
        if (!key)
                return NULL;
        EVP_PKEY_free(key->pkey);
        free(key);
        return NULL;
}

/* Wraps pkey (taking ownership) after checking that it is one of the two accepted kinds. */
static int key_from_pkey(EVP_PKEY *pkey, Key **ret, char **reterr) {
        KeyType type;
        char curve[64] = "";

        if (EVP_PKEY_is_a(pkey, "ED25519"))
                type = KEY_ED25519;
        else if (EVP_PKEY_is_a(pkey, "EC") &&
                 EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve), NULL) == 1 &&
                 streq(curve, "prime256v1"))
                type = KEY_P256;
        else {
                EVP_PKEY_free(pkey);
                return error_set(reterr, -EPROTONOSUPPORT, "unsupported key type (only Ed25519 and ECDSA P-256)");
        }

        unsigned char *der = NULL;
        int der_size = i2d_PUBKEY(pkey, &der);
        if (der_size <= 0) {
                EVP_PKEY_free(pkey);
                return error_set(reterr, -EINVAL, "cannot encode public key");
        }

        Key *key = calloc(1, sizeof(Key));
        if (!key) {
                OPENSSL_free(der);
                EVP_PKEY_free(pkey);
                return -ENOMEM;
        }
        key->pkey = pkey;
        key->type = type;
        sha256_hex(der, (size_t) der_size, key->id);
        OPENSSL_free(der);
        *ret = key;
        return 0;
}

int key_generate(KeyType type, Key **ret) {
        EVP_PKEY *pkey = type == KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                             : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!pkey)
                return -EIO;
        return key_from_pkey(pkey, ret, NULL);
}

static int key_load_pem(const char *pem, size_t size, bool private_key, Key **ret, char **reterr) {
        if (size > INT32_MAX)
                return error_set(reterr, -EFBIG, "key too large");

        BIO *bio = BIO_new_mem_buf(pem, (int) size);
        if (!bio)
                return -ENOMEM;
        EVP_PKEY *pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                                     : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (!pkey)
                return error_set(reterr, -EBADMSG, "not a PEM %s key", private_key ? "private" : "public");

        return key_from_pkey(pkey, ret, reterr);
}

int key_load_private_pem(const char *pem, size_t size, Key **ret, char **reterr) {
        return key_load_pem(pem, size, true, ret, reterr);
}

int key_load_public_pem(const char *pem, size_t size, Key **ret, char **reterr) {
        return key_load_pem(pem, size, false, ret, reterr);
}

int key_load_file(const char *path, bool private_key, Key **ret, char **reterr) {
        _cleanup_free_ char *pem = NULL;
        size_t size;
        int r = read_full_file(AT_FDCWD, path, 64 * 1024, &pem, &size);
        if (r < 0)
                return error_set(reterr, r, "cannot read key '%s': %s", path, strerror(-r));

        r = key_load_pem(pem, size, private_key, ret, reterr);
        if (r < 0 && reterr && *reterr) {
                _cleanup_free_ char *inner = TAKE_PTR(*reterr);
                return error_set(reterr, r, "key '%s': %s", path, inner);
        }
        return r;
}

static int bio_to_string(BIO *bio, char **ret) {
        char *data;
        long size = BIO_get_mem_data(bio, &data);
        char *s = size >= 0 ? strndup(data, (size_t) size) : NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int key_private_pem(const Key *key, char **ret) {
        BIO *bio = BIO_new(BIO_s_mem());
        if (!bio)
                return -ENOMEM;
        /* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY"). */
        int r = PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) == 1 ? bio_to_string(bio, ret) : -EIO;
        BIO_free(bio);
        return r;
}

int key_public_pem(const Key *key, char **ret) {
        BIO *bio = BIO_new(BIO_s_mem());
        if (!bio)
                return -ENOMEM;
        int r = PEM_write_bio_PUBKEY(bio, key->pkey) == 1 ? bio_to_string(bio, ret) : -EIO;
        BIO_free(bio);
        return r;
}

const char *key_id(const Key *key) {
        return key->id;
}

/* Ed25519 signs the message itself; ECDSA P-256 signs its SHA-256. */
static const EVP_MD *key_digest(const Key *key) {
        return key->type == KEY_ED25519 ? NULL : EVP_sha256();
}

int key_sign(const Key *key, const void *data, size_t size, unsigned char **ret_sig, size_t *ret_size) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;

        int r = -EIO;
        size_t sig_size = 0;
        unsigned char *sig = NULL;
        if (EVP_DigestSignInit(ctx, NULL, key_digest(key), NULL, key->pkey) == 1 &&
            EVP_DigestSign(ctx, NULL, &sig_size, data, size) == 1 &&
            (sig = malloc(sig_size)) &&
            EVP_DigestSign(ctx, sig, &sig_size, data, size) == 1) {
                *ret_sig = TAKE_PTR(sig);
                *ret_size = sig_size;
                r = 0;
        }
        free(sig);
        EVP_MD_CTX_free(ctx);
        return r;
}

int key_verify(const Key *key, const void *data, size_t size, const unsigned char *sig, size_t sig_size) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        int ok = EVP_DigestVerifyInit(ctx, NULL, key_digest(key), NULL, key->pkey) == 1 &&
                 EVP_DigestVerify(ctx, sig, sig_size, data, size) == 1;
        EVP_MD_CTX_free(ctx);
        return ok;
}

int keyring_new(Keyring **ret) {
        Keyring *ring = calloc(1, sizeof(Keyring));
        if (!ring)
                return -ENOMEM;
        *ret = ring;
        return 0;
}

Keyring *keyring_free(Keyring *ring) {
        if (!ring)
                return NULL;
        for (size_t i = 0; i < ring->n; i++)
                key_free(ring->keys[i]);
        free(ring);
        return NULL;
}

int keyring_add(Keyring *ring, Key *key) {
        if (keyring_find(ring, key->id)) {
                key_free(key);
                return -EEXIST;
        }
        if (ring->n >= KEYRING_MAX) {
                key_free(key);
                return -E2BIG;
        }
        ring->keys[ring->n++] = key;
        return 0;
}

const Key *keyring_find(const Keyring *ring, const char *id) {
        for (size_t i = 0; i < ring->n; i++)
                if (streq(ring->keys[i]->id, id))
                        return ring->keys[i];
        return NULL;
}

size_t keyring_size(const Keyring *ring) {
        return ring->n;
}

const Key *keyring_get(const Keyring *ring, size_t i) {
        return i < ring->n ? ring->keys[i] : NULL;
}
