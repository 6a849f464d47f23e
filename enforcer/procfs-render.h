/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The text of the /proc and /sys files Stockade emulates, as one container should see them:
 * memory, CPUs, CPU time, uptime, load and I/O from the container's cgroup (v1 or v2)
 * instead of the VM's. Pure rendering: every input is a directory fd (the VM's /proc, the
 * cgroup root) or a value, so fixture trees can stand in for both. A cgroup file that is
 * missing or unreadable (a limit never set, a cgroup removed while it is read) counts as
 * "no limit" and zero usage: the text is always complete, never a mix of two moments. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROCFS_CPUS_MAX 1024

typedef enum ProcfsFile {
        PROCFS_MEMINFO,
        PROCFS_CPUINFO,
        PROCFS_STAT,
        PROCFS_UPTIME,
        PROCFS_LOADAVG,
        PROCFS_SWAPS,
        PROCFS_DISKSTATS,
        PROCFS_CPU_ONLINE,
        _PROCFS_FILE_MAX,
} ProcfsFile;

/* name: the file's name on Stockade's FUSE mount; path: the file it stands in for. */
typedef struct ProcfsFileInfo {
        const char *name;
        const char *path;
} ProcfsFileInfo;
extern const ProcfsFileInfo procfs_files[_PROCFS_FILE_MAX];

/* A container's cgroups, as paths relative to the cgroup root ("memory/docker/ID" on v1,
 * "docker/ID" on v2); NULL where the controller is not there. */
typedef struct ProcfsCgroups {
        bool v2;
        char *memory, *cpu, *cpuacct, *cpuset, *blkio, *tasks;
} ProcfsCgroups;

/* From /proc/PID/cgroup's text and the cgroup root (cgroup_fd): v2 where the root is a
 * cgroup2 hierarchy (it has cgroup.controllers), else the v1 controllers. */
int procfs_cgroups_parse(int cgroup_fd, const char *text, ProcfsCgroups *ret);
void procfs_cgroups_done(ProcfsCgroups *c);

/* The container's load, sampled by the caller (procfs_load_sample()). */
typedef struct ProcfsLoad {
        double avg[3];
        unsigned running, blocked, total;
} ProcfsLoad;

typedef struct ProcfsContext {
        int proc_fd;           /* the VM's /proc */
        int cgroup_fd;         /* the cgroup root, /sys/fs/cgroup */
        const ProcfsCgroups *cgroups;
        double now;            /* seconds since the VM booted (CLOCK_BOOTTIME) */
        double started;        /* when the container's init started, same clock */
        const ProcfsLoad *load;
} ProcfsContext;

/* The file's text for the container (*ret malloc'd, NUL-terminated, *ret_size without the
 * NUL). Errors are the VM's files' (e.g. -ENOENT for a missing /proc/diskstats). */
int procfs_render(ProcfsFile file, const ProcfsContext *ctx, char **ret, size_t *ret_size);

/* Counts the container's tasks (running, blocked, all) below its cgroup, nested ones
 * included, at most max_tasks of them, and folds them into load like the kernel's
 * 5-second load average. */
void procfs_load_sample(const ProcfsContext *ctx, unsigned max_tasks, ProcfsLoad *load);
