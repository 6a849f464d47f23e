/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The OCI spec rewrite that puts a container in its own user namespace: the container's
 * uid/gid range, no namespace shared with the VM, capabilities clamped to what the runtime
 * holds, host devices and VM paths kept out, Stockade's seccomp rules added. Errors are one
 * line meant for the user, e.g. "stockade: containers can't share the pid namespace with
 * the VM". The bind mounts that must be ID-mapped are listed for the caller, which prepares
 * them and points the spec at them. */

#include <stdbool.h>
#include <stdint.h>

#include "json.h"

#define SPEC_MAX_SIZE (4u * 1024u * 1024u)
#define SPEC_BINDS_MAX 256

typedef struct SpecPolicy {
        const char *container_id;
        uint32_t base, count;       /* the container's range: "0 base count" for uids and gids */
        uint64_t cap_bound;         /* capabilities the runtime itself may grant */
        const char *const *restricted; /* VM paths no container may mount, nor anything holding them */
        size_t n_restricted;
        const char *const *allowed; /* when set (n_allowed > 0 or allowed_enforced), bind sources must lie below one */
        size_t n_allowed;
        bool allowed_enforced;
        const char *engine_root;    /* the engine's data root: its per-container files and volumes */
        const char *engine_init;    /* the engine's init binary (docker run --init), also the engine's own */
        const char *engine_socket;  /* mounting it needs engine_socket_allowed() */
        int (*engine_socket_allowed)(void *userdata); /* 1 yes, 0 no, <0 cannot tell */
        void *userdata;
        const char *proc_root;      /* "/proc": the VM's namespaces are the runtime's own, proc_root/self/ns/ */
        const char *listener_path;  /* the agent's seccomp socket: vetted calls are trapped for it; NULL: none */
} SpecPolicy;

typedef struct SpecBind {
        int index;       /* into the spec's "mounts" */
        bool recursive;  /* "rbind" */
} SpecBind;

typedef struct SpecBinds {
        SpecBind binds[SPEC_BINDS_MAX];
        size_t n;
} SpecBinds;

/* Rewrites spec (a parsed config.json) in place. */
int spec_rewrite(cJSON *spec, const SpecPolicy *policy, SpecBinds *ret_binds, char **reterr);

/* Clamps a process object's capabilities to cap_bound (for "runc exec --process"). */
int spec_clamp_process(cJSON *process, uint64_t cap_bound);

/* The runtime's own capability bounding set, from /proc/self/status. */
int spec_read_cap_bound(uint64_t *ret);

/* Does image ("busybox", "docker.io/library/busybox:1.36") match pattern ("name",
 * "name:tag", "name:*", "*")? Names are normalised the way the engine does. */
bool spec_image_matches(const char *image, const char *pattern);
