/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The policy state directory:
 *   root.json              the trusted root envelope (exact bytes)
 *   last-known-good.json   the last accepted bundle envelope (exact bytes)
 *   state.json             {"serial", "sha256" (of the bundle's payload), "highestTime", "rootVersion",
 *                          "org" (the first accepted bundle's: the VM is pinned to it)}
 * Every file is replaced crash-safe (temp file, fsync, rename, fsync directory); state.json
 * is written last. A mismatch between the files is reported, never silently reset. */

#include "bundle.h"

typedef struct PolicyStore PolicyStore;

/* Creates the directory (0700) if needed and discards temp files of interrupted writes. */
int policy_store_open(const char *path, PolicyStore **ret, char **reterr);
PolicyStore *policy_store_free(PolicyStore *store);
DEFINE_POINTER_CLEANUP(PolicyStore, policy_store_free);

const PolicyState *policy_store_state(const PolicyStore *store);
/* NULL until a root has been committed. */
const TrustRoot *policy_store_root(const PolicyStore *store);

/* Re-verifies the last-known-good bundle against the stored root and state. Expiry is
 * reported in bundle->expired, not refused. -ENOENT when nothing was accepted yet.
 * A state.json of the older form (sha256 of the whole envelope) is accepted and rewritten
 * with the payload's sha256. */
int policy_store_load_last_known_good(PolicyStore *store, int64_t now, Bundle **ret, char **reterr);

/* Records root (if it is not the stored one) and, unless bundle is NULL, the bundle whose
 * envelope is text as the last-known-good. Raises the highest time seen to now and the
 * bundle's issuedAt. */
int policy_store_commit(PolicyStore *store, const TrustRoot *root, const Bundle *bundle,
                        const char *text, size_t size, int64_t now);
