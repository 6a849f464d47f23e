/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The OCI spec rewrite that puts a container in its own user namespace: the container's
 * uid/gid range, no namespace shared with the VM, capabilities clamped to what the runtime
 * holds, host devices and VM paths kept out, Stockade's seccomp rules added. Errors are one
 * line meant for the user, e.g. "stockade: containers can't share the pid namespace with
 * the VM". Every field is checked against what Stockade knows; unknown ones are dropped.
 * The root filesystem and the bind mounts, which must be ID-mapped, are handed to the
 * caller open, as they were checked; it prepares them and points the spec at them. */

#include <stdbool.h>
#include <stdint.h>

#include "json.h"

#define SPEC_MAX_SIZE (4u * 1024u * 1024u)
#define SPEC_BINDS_MAX 256

typedef struct SpecPolicy {
        const char *container_id;
        uint32_t base, count;       /* the container's range: "0 base count" for uids and gids */
        uint64_t cap_bound;         /* capabilities the runtime itself may grant */
        const char *bundle;         /* a relative root.path lies in it */
        const char *const *restricted; /* VM paths no container may mount, nor anything holding them */
        size_t n_restricted;
        const char *const *shares;  /* the host shares: the only VM directories bind sources may lie in */
        size_t n_shares;
        const char *const *storage; /* where root filesystems may lie: the engines' storage */
        size_t n_storage;
        const char *const *hooks;   /* the executables an OCI hook may run (they run as VM root) */
        size_t n_hooks;
        const char *engine_root;    /* the engine's data root: its per-container files and volumes */
        const char *engine_init;    /* the engine's init binary (docker run --init), also the engine's own */
        const char *engine_socket;  /* a bind of it gets engine_socket_proxy() instead */
        /* The agent's stand-in for the engine socket, for this container: 0 and *ret_fd (the
         * socket, O_PATH), or a negative errno and, where the agent said why, *ret_reason. */
        int (*engine_socket_proxy)(void *userdata, int *ret_fd, char **ret_reason);
        /* The first VM id of the range that the user namespace userns_fd maps ("0 BASE count"):
         * 0, <0 when it maps anything else or cannot tell. */
        int (*userns_base)(void *userdata, int userns_fd, uint32_t *ret_base);
        const cJSON *containers;    /* [{"id", "uid_base"}]: the containers Stockade runs */
        void *userdata;
        const char *proc_root;      /* "/proc": the VM's namespaces are the runtime's own, proc_root/self/ns/ */
        const char *listener_path;  /* the agent's seccomp socket: vetted calls are trapped for it; NULL: none */
        const char *listener_metadata; /* tells the agent which container a notify fd is for: its key */
} SpecPolicy;

/* Each source is open (O_PATH) from the check on: the caller mounts what was checked. */
typedef struct SpecBind {
        int index;       /* into the spec's "mounts" */
        bool recursive;  /* "rbind" */
        bool read_only;  /* the engine's own binary */
        int fd;
} SpecBind;

/* A namespace of another Stockade container that this one joins, open; joining one means
 * joining the user namespace that owns it too, and sharing that container's range. */
typedef struct SpecJoin {
        const char *type; /* "network", "pid", "ipc", "uts" or "user" */
        int fd;
} SpecJoin;

typedef struct SpecBinds {
        int root_fd;     /* the root filesystem */
        SpecBind binds[SPEC_BINDS_MAX];
        size_t n;
        SpecJoin joins[5];
        size_t n_joins;
        /* The engine left /proc/sys writable and the process holds CAP_NET_ADMIN (as for
         * --privileged): /proc/sys stays read-only but for /proc/sys/net, which belongs to
         * the container's own network namespace (stockade-runc, once runc created it). */
        bool net_sysctls_writable;
} SpecBinds;

#define SPEC_BINDS_NULL ((SpecBinds) { .root_fd = -EBADF })
void spec_binds_done(SpecBinds *b);

/* Opens a namespace file a spec names (O_RDONLY, for its ioctls), refusing with -EINVAL
 * anything that is not on nsfs before opening it for reading. */
int spec_namespace_open(const char *path, int *ret_fd);

/* Whether item names a key twice in one of its objects, as runc reads keys: once in either
 * case (Go's decoder takes "Linux" for "linux"), or twice alike. runc takes the last of
 * such keys, cJSON_GetObjectItem() the first: Stockade would check one value and runc use
 * another. 1 with *ret_key one of them, 0 if none, -ENOMEM. */
int spec_ambiguous_key(const cJSON *item, const char **ret_key);

/* Rewrites spec (a parsed config.json) in place, refusing one with an ambiguous key
 * (spec_ambiguous_key()); on success *ret_binds holds the open sources (spec_binds_done()
 * closes them). */
int spec_rewrite(cJSON *spec, const SpecPolicy *policy, SpecBinds *ret_binds, char **reterr);

/* Adds to spec's mounts, after the ones there, read-only binds of the emulated files in dir
 * (a mount of Stockade's procfs, see procfs-render.h) over /proc/meminfo and the others,
 * each only where the spec mounts /proc or /sys. */
int spec_add_procfs_binds(cJSON *spec, const char *dir);

/* Masks (linux.maskedPaths, an empty read-only directory) /sys/devices/system/cpu/cpuN for
 * each of the n_cpus CPUs the spec's cpuset (linux.resources.cpu.cpus) leaves out; nothing
 * without a cpuset or where it is not a plain list of numbers and ranges. */
#define SPEC_CPUS_MAX 8192
int spec_mask_cpus(cJSON *spec, unsigned n_cpus);

/* Clamps a process object's capabilities to cap_bound (for "runc exec --process"). */
int spec_clamp_process(cJSON *process, uint64_t cap_bound);

/* The runtime's own capability bounding set, from /proc/self/status. */
int spec_read_cap_bound(uint64_t *ret);
