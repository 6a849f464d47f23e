/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* DSSE envelopes: {"payload": b64, "payloadType": str, "signatures": [{"keyid", "sig": b64}]}.
 * Signatures cover the pre-authentication encoding
 * "DSSEv1 <len(type)> <type> <len(payload)> <payload>". */

#include <stddef.h>

#include "key.h"

#define ENVELOPE_MAX_SIZE (1024 * 1024)
#define ENVELOPE_MAX_SIGNATURES 32

typedef struct Envelope Envelope;

/* Checks size and shape only: a one-line reason such as
 * "malformed envelope: 'payload' is not valid base64". */
int envelope_parse(const char *text, size_t size, Envelope **ret, char **reterr);
Envelope *envelope_free(Envelope *e);
DEFINE_POINTER_CLEANUP(Envelope, envelope_free);

const char *envelope_payload_type(const Envelope *e);
/* Only meaningful after envelope_verify() succeeded. */
const unsigned char *envelope_payload(const Envelope *e, size_t *ret_size);

/* Succeeds when at least threshold distinct keys of ring signed; a key counts once. */
int envelope_verify(const Envelope *e, const Keyring *ring, size_t threshold, char **reterr);

/* Signs payload with every key; returns the envelope as JSON text. */
int envelope_sign(const char *payload_type, const void *payload, size_t size,
                  Key *const *keys, size_t n_keys, char **ret);
