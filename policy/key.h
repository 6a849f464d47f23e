/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Signing keys: Ed25519 and ECDSA P-256 only, through OpenSSL 3. The signature algorithm
 * always follows from the key itself. A key id is the hex SHA-256 of the DER public key. */

#include <stdbool.h>
#include <stddef.h>

#include "macros.h"

#define KEY_ID_SIZE 65 /* 64 hex digits and NUL */
#define SHA256_HEX_SIZE 65

typedef struct Key Key;
typedef struct Keyring Keyring;

typedef enum KeyType {
        KEY_ED25519,
        KEY_P256,
} KeyType;

int key_type_from_string(const char *s, KeyType *ret);

int key_generate(KeyType type, Key **ret);
/* PKCS#8 private key or SPKI public key, PEM; any other algorithm is refused. */
int key_load_private_pem(const char *pem, size_t size, Key **ret, char **reterr);
int key_load_public_pem(const char *pem, size_t size, Key **ret, char **reterr);
int key_load_file(const char *path, bool private_key, Key **ret, char **reterr);
Key *key_free(Key *key);
DEFINE_POINTER_CLEANUP(Key, key_free);

int key_private_pem(const Key *key, char **ret);
int key_public_pem(const Key *key, char **ret);
const char *key_id(const Key *key);

int key_sign(const Key *key, const void *data, size_t size, unsigned char **ret_sig, size_t *ret_size);
/* 1: valid, 0: invalid; never an error for a bad signature. */
int key_verify(const Key *key, const void *data, size_t size, const unsigned char *sig, size_t sig_size);

void sha256_hex(const void *data, size_t size, char out[static SHA256_HEX_SIZE]);

/* Trusted keys by id; a key is added at most once. */
int keyring_new(Keyring **ret);
Keyring *keyring_free(Keyring *ring);
DEFINE_POINTER_CLEANUP(Keyring, keyring_free);
int keyring_add(Keyring *ring, Key *key); /* takes ownership; -EEXIST for a duplicate id */
const Key *keyring_find(const Keyring *ring, const char *id);
size_t keyring_size(const Keyring *ring);
const Key *keyring_get(const Keyring *ring, size_t i);
