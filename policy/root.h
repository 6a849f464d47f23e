/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The trust root: a DSSE envelope of {"version", "keys": {keyid: PEM}, "threshold"} and
 * optionally "orgs": [names] (at most ROOT_ORGS_MAX), signed by a threshold of its own
 * keys. Version N+1 replaces N only when a threshold of N's keys signed it too; versions
 * are never skipped and never go back. */

#include <stdbool.h>
#include <stdint.h>

#include "dsse.h"

#define ROOT_PAYLOAD_TYPE "application/vnd.stockade.root+json"
#define ROOT_ORGS_MAX 64

typedef struct TrustRoot TrustRoot;

/* Parses and self-verifies a root envelope. */
int trust_root_parse(const char *text, size_t size, TrustRoot **ret, char **reterr);
TrustRoot *trust_root_free(TrustRoot *root);
DEFINE_POINTER_CLEANUP(TrustRoot, trust_root_free);

/* Accepts candidate as the successor of trusted (NULL: nothing trusted yet, first use).
 * Returns 0 when candidate is the trusted root itself, 1 when it is a valid rotation. */
int trust_root_check_successor(const TrustRoot *trusted, const TrustRoot *candidate, char **reterr);

/* Whether the root's "orgs" names org: a VM pinned to another organisation still takes
 * org's settings. */
bool trust_root_names_org(const TrustRoot *root, const char *org);
int64_t trust_root_version(const TrustRoot *root);
size_t trust_root_threshold(const TrustRoot *root);
const Keyring *trust_root_keys(const TrustRoot *root);
/* The exact bytes it was parsed from. */
const char *trust_root_text(const TrustRoot *root, size_t *ret_size);

/* Builds the signed envelope text of a new root; "orgs" is written when n_orgs > 0. */
int trust_root_create(int64_t version, size_t threshold, Key *const *keys, size_t n_keys,
                      const char *const *orgs, size_t n_orgs, Key *const *signers, size_t n_signers, char **ret);
