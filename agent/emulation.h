/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The agent's /proc and /sys emulation (enforcer/procfs.h) on its loop: the FUSE session's
 * fd watched, the load sampled. Mounted at RUN_DIR/procfs. Under a service manager with a
 * file descriptor store (agent/fdstore.h), the session's fd is stored as EMULATION_FDNAME as soon as
 * it is mounted, and the mount is left in place when the agent stops, so that the next
 * agent, handed the fd back, serves the same mount and every container's binds of it. */

#include "enforcer/procfs.h"
#include "json.h"

struct ev_loop;

typedef struct Emulation Emulation;

#define EMULATION_FDNAME "emulation/procfs"

typedef struct FdStore FdStore;

/* Serves the mount whose fd store hands back, else mounts anew and keeps the fd there. */
int emulation_start(struct ev_loop *loop, const char *run_dir, FdStore *store, Emulation **ret, char **reterr);
Emulation *emulation_free(Emulation *e);
DEFINE_POINTER_CLEANUP(Emulation, emulation_free);
Procfs *emulation_procfs(const Emulation *e);
/* {"path", "dev", "dir"}: the mount, which the runtime checks, and the directory of the
 * container of key in it, whose files the runtime binds. */
cJSON *emulation_json(const Emulation *e, const char *key);
