/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The agent's containers: their uid ranges (persistent), and the seccomp-notify broker
 * that vets their processes' sensitive calls from the agent's loop. Runtimes hand over
 * notify fds on the OCI listener socket; each container's init is watched through a
 * pidfd so that its fds and records go when it does. */

#include <stdint.h>

#include "enforcer/broker.h"
#include "json.h"

struct ev_loop;

typedef struct Containers Containers;

/* A vetted call refused (or performed) in a container, for the agent's log and events. */
typedef void (*containers_report_t)(void *userdata, const char *container_id, const char *syscall,
                                    bool denied, const char *reason);

int containers_new(struct ev_loop *loop, const char *state_dir, containers_report_t report, void *userdata,
                   Containers **ret, char **reterr);
Containers *containers_free(Containers *c);
DEFINE_POINTER_CLEANUP(Containers, containers_free);

/* Listens for runtimes' notify fds at path (a unix socket, root only). */
int containers_listen(Containers *c, const char *path, char **reterr);
/* The socket path, NULL when not listening. */
const char *containers_listener(const Containers *c);

/* The range of the container key ("ROOT/ID", see container_key()): allocated, or with
 * share_base (not 0) the range at that base, which another container holds (the one whose
 * namespaces it joins). */
int containers_register(Containers *c, const char *key, uint32_t share_base, uint32_t *ret_base, char **reterr);
int containers_release(Containers *c, const char *key);
/* How many broker helpers run at once and how many calls wait (BROKER_LIMITS_DEFAULT
 * until set). */
int containers_set_limits(Containers *c, const BrokerLimits *limits);
const BrokerLimits *containers_limits(const Containers *c);
size_t containers_count(const Containers *c);
/* [{"id", "root", "pid", "uid_base", "allowed", "denied", "helpers", "queued"}]: root is the
 * runtime's (missing from a record made before roots were); allowed and denied count
 * answered calls; helpers and queued are the calls at work and waiting now. */
cJSON *containers_status(const Containers *c);
