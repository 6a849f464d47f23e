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
        char sha256[SHA256_HEX_SIZE]; /* of the accepted envelope's exact bytes */
        int64_t highest_time; /* latest time ever seen: the clock never goes back below it */
        int64_t root_version; /* 0: no root stored */
        char *org;
} PolicyState;

typedef struct Bundle {
        char *org;
        int64_t serial;
        int64_t issued_at;
        int64_t expires;
        AdminSettings *settings;
        char sha256[SHA256_HEX_SIZE];
        bool expired; /* only with BundleCheck.allow_expired */
        bool unchanged; /* the same serial and bytes as already accepted */
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
DEFINE_POINTER_CLEANUP(Bundle, bundle_free);

/* Builds a signed bundle envelope around settings (an admin-settings.json object). */
int bundle_create(const char *org, int64_t serial, int64_t issued_at, int64_t expires,
                  const cJSON *settings, Key *const *keys, size_t n_keys, char **ret);
