/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The FUSE file system that serves each container its own /proc and /sys files (see
 * procfs-render.h), read-only, mounted once. Its root holds the files in procfs_files[] as
 * the VM sees them, and a directory per container (procfs_dir_name() of its key, not
 * listed) holds the container's own, once it is registered with procfs_container_add()
 * (the VM's until then). What a process reads depends on the file, never on who reads it.
 *
 * Reads come from the kernel's page cache, with no request: a file's attributes carry the
 * size and time of a fresh rendering and are kept PROCFS_TTL_SEC, after which the next read
 * asks for them again, and a new time drops the cached pages, which are filled from that
 * rendering. So a file is at most PROCFS_TTL_SEC old, opens cost nothing here, and a read
 * within one page sees one moment. No event loop here: the caller polls procfs_fd() and
 * calls procfs_process(), and calls procfs_sample() every PROCFS_SAMPLE_SEC for the load
 * averages. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macros.h"

/* The type of the emulation's mount, and so of each of its files bound into a container. */
#define PROCFS_FSTYPE "fuse.stockade"
#define PROCFS_SAMPLE_SEC 5
#define PROCFS_TTL_SEC 0.1
#define PROCFS_CONTAINERS_MAX 4096
#define PROCFS_DIR_NAME_MAX 15

typedef struct Procfs Procfs;

/* Mounts the file system at mountpoint (created 0755 if missing). With adopt_fd (>= 0, a
 * /dev/fuse fd that served a mount at mountpoint before, e.g. from the agent's previous
 * run) the existing mount is served again instead, and every bind of it with it; it is
 * taken over even on failure. With mountpoint NULL nothing is mounted: adopt_fd is served
 * as it is, its FUSE_INIT still to come (the fuzz target's socket). */
int procfs_new(const char *mountpoint, int adopt_fd, Procfs **ret, char **reterr);
/* Stops serving; unmounts unless keep_mounted (the fd lives on elsewhere and a later
 * procfs_new() adopts it). */
Procfs *procfs_free(Procfs *p, bool keep_mounted);
int procfs_fd(const Procfs *p);
/* The mount's device, which the runtime checks the mount it binds against. */
dev_t procfs_dev(const Procfs *p);
const char *procfs_mountpoint(const Procfs *p);

/* Answers the requests waiting on procfs_fd(), a bounded number at a time (call again
 * while it stays readable). -ENODEV: the file system was unmounted. */
int procfs_process(Procfs *p);

/* The name of the directory of the container with key (a container's key, as the agent
 * records it): 14 hex digits of its SHA-256, the same in every run. */
void procfs_dir_name(const char *key, char ret[PROCFS_DIR_NAME_MAX]);
/* Serves the container of key in its directory, from init_pid's cgroups and start time
 * (read now, again where it was served already); remove drops it. */
int procfs_container_add(Procfs *p, const char *key, pid_t init_pid);
void procfs_container_remove(Procfs *p, const char *key);
size_t procfs_containers(const Procfs *p);
/* How many times a file was rendered since procfs_new(). */
uint64_t procfs_renderings(const Procfs *p);
void procfs_sample(Procfs *p);
