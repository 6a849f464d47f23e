/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Exclusive uid/gid ranges for containers: "first", "first + size", ... one per container,
 * or per group of containers that share namespaces, recorded in a JSON file (written
 * crash-safe) so that a restarted agent hands out the same ranges and never gives one
 * range to two containers that do not share it. */

#include <stdbool.h>
#include <stdint.h>

#include "macros.h"

#define UID_RANGE_FIRST 100000u
#define UID_RANGE_SIZE 65536u
#define UID_RANGES_MAX 4096u

typedef struct UidRanges UidRanges;

/* Loads dir_fd/name (missing: none allocated). */
int uid_ranges_open(int dir_fd, const char *name, uint32_t first, uint32_t size, uint32_t max,
                    UidRanges **ret, char **reterr);
UidRanges *uid_ranges_free(UidRanges *r);
DEFINE_POINTER_CLEANUP(UidRanges, uid_ranges_free);

/* The owner's range, allocating the lowest free one; -ENOSPC when all max are taken. */
int uid_ranges_acquire(UidRanges *r, const char *owner, uint32_t *ret_base, char **reterr);
/* Gives owner the range at base, which another owner holds (containers that share
 * namespaces share a user namespace): -ENOENT when no one holds it, -EEXIST when owner
 * has another. A range is free again when its last owner releases it. */
int uid_ranges_share(UidRanges *r, const char *owner, uint32_t base, char **reterr);
/* Gives owner the ids base to base + count - 1 that its engine already mapped (podman
 * --uidmap, ctr --uidmap, userns-remap): -EPERM with the reason ("maps VM root", "maps VM
 * ids below 100000, ...", "overlaps the ids of container 'X'") when they include VM root or
 * ids below first or past the last one, or overlap any other owner's; the pool's ranges
 * given out later avoid them. */
int uid_ranges_claim(UidRanges *r, const char *owner, uint32_t base, uint32_t count, char **reterr);
/* -ENOENT when owner has none. */
int uid_ranges_release(UidRanges *r, const char *owner);
size_t uid_ranges_count(const UidRanges *r);
/* The i-th allocation (i < uid_ranges_count()): its owner and base. */
const char *uid_ranges_get(const UidRanges *r, size_t i, uint32_t *ret_base);

/* Runc's rule for container ids: 1 to 128 of [A-Za-z0-9_.-], not starting with '.'. */
bool container_id_valid(const char *id);

/* A container is (runtime root, id), the owner of its range "ROOT/ID" (root absolute, at
 * most CONTAINER_ROOT_MAX bytes). A bare id is an owner recorded before roots were. */
#define CONTAINER_ROOT_MAX 3072u
/* root NULL: the bare id. -EINVAL when root or id is not valid. */
int container_key(const char *root, const char *id, char **ret);
bool container_key_valid(const char *key);
/* The id in a key. */
const char *container_key_id(const char *key);
/* "HASH-ID": the container's directory under Stockade's runDir/containers, HASH a 64-bit
 * FNV-1a hash of its root ("/run/runc" for a bare id), so the same id under two roots gets
 * two. -EINVAL for a key that is not valid. */
#define CONTAINER_DIR_NAME_MAX (16 + 1 + 128 + 1)
int container_key_dir(const char *key, char ret[static CONTAINER_DIR_NAME_MAX]);
/* The path of that directory: RUN_DIR/containers/HASH-ID (the spec runc reads, the
 * ID-mapped mounts). */
int container_dir(const char *run_dir, const char *key, char **ret);
