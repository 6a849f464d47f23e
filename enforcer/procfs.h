/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The FUSE file system that serves each container its own /proc and /sys files (see
 * procfs-render.h): a flat directory of the files in procfs_files[], read-only, mounted
 * once. A request is answered for the container whose pid namespace the calling process is
 * in (its init registered with procfs_container_add()); any other process gets the VM's
 * file unchanged. Each open renders the file once and keeps the text until release, so
 * reads at any offset and size see one moment. No event loop here: the caller polls
 * procfs_fd() and calls procfs_process(), and calls procfs_sample() every
 * PROCFS_SAMPLE_SEC for the load averages. */

#include <stdbool.h>
#include <sys/types.h>

#include "macros.h"

/* The type of the emulation's mount, and so of each of its files bound into a container. */
#define PROCFS_FSTYPE "fuse.stockade"
#define PROCFS_SAMPLE_SEC 5
#define PROCFS_CONTAINERS_MAX 4096
#define PROCFS_HANDLES_MAX 65536

typedef struct Procfs Procfs;

/* Mounts the file system at mountpoint (created 0755 if missing). With adopt_fd (>= 0, a
 * /dev/fuse fd that served a mount at mountpoint before, e.g. from the agent's previous
 * run) the existing mount is served again instead, and every bind of it with it; it is
 * taken over even on failure. */
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

/* Serves the container of init_pid (its pid namespace, cgroups and start time, read now);
 * remove drops it. */
int procfs_container_add(Procfs *p, pid_t init_pid);
void procfs_container_remove(Procfs *p, pid_t init_pid);
size_t procfs_containers(const Procfs *p);
void procfs_sample(Procfs *p);
