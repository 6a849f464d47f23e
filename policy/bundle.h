/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A settings bundle: a DSSE envelope (BUNDLE_PAYLOAD_TYPE) whose payload is
 * {"org", "serial", "issuedAt", "expires", "settings": <admin-settings.json object>}. */

#include <stdbool.h>
#include <stdint.h>

#include "key.h"
#include "root.h"
#include "settings.h"

#define BUNDLE_PAYLOAD_TYPE "application/vnd.stockade.admin-settings+json"

/* What has been accepted so far; persisted by the policy store. */
typedef struct PolicyState {
        int64_t serial; /* 0: nothing accepted yet */
        char sha256[SHA256_HEX_SIZE]; /* of the accepted bundle's verified payload */
        int64_t highest_time; /* latest time ever seen: the clock never goes back below it */
        int64_t root_version; /* 0: no root stored */
        char *org; /* the organisation the VM is pinned to: the first accepted bundle's */
} PolicyState;

typedef struct Bundle {
        char *org;
        int64_t serial;
        int64_t issued_at;
        int64_t expires;
        AdminSettings *settings;
        char sha256[SHA256_HEX_SIZE]; /* of the verified payload: a re-signed or re-serialised envelope has the same */
        bool expired; /* only with BundleCheck.allow_expired */
        bool unchanged; /* the same serial and payload as already accepted */
} Bundle;

typedef struct BundleCheck {
        const char *org; /* expected organisation; NULL accepts any */
        int64_t now;
        const PolicyState *state; /* rollback protection and clock floor; NULL for none */
        bool allow_expired; /* re-verifying the last-known-good: expiry is reported, not fatal */
} BundleCheck;

/* Checks, in this order, each with its own one-line reason: size, envelope shape, payload
 * type, signatures against root's threshold, payload (only the verified bytes), org,
 * expiry, serial. */
int bundle_verify(const TrustRoot *root, const char *text, size_t size, const BundleCheck *check,
                  Bundle **ret, char **reterr);
Bundle *bundle_free(Bundle *bundle);
/* The SHA-256 (hex) of an envelope's payload, signatures unchecked: what Bundle.sha256 is
 * once verified. */
int bundle_payload_sha256(const char *text, size_t size, char ret[SHA256_HEX_SIZE], char **reterr);
DEFINE_POINTER_CLEANUP(Bundle, bundle_free);

/* A VM takes the settings of one organisation: pinned, the one it is configured for or else
 * that of the first bundle it accepted (NULL: none yet), or one the trust root (NULL:
 * none yet) names. */
int bundle_check_org(const TrustRoot *root, const char *pinned, const char *org, char **reterr);

/* Builds a signed bundle envelope around settings (an admin-settings.json object). */
int bundle_create(const char *org, int64_t serial, int64_t issued_at, int64_t expires,
                  const cJSON *settings, Key *const *keys, size_t n_keys, char **ret);
