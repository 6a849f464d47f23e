/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The agent's containers: their uid ranges (persistent), and the seccomp-notify broker
 * that vets their processes' sensitive calls from the agent's loop. Runtimes hand over
 * notify fds on the OCI listener socket; each container's init is watched through a
 * pidfd so that its fds and records go when it does. */

#include <stdint.h>

#include "enforcer/broker.h"
#include "enforcer/procfs.h"
#include "json.h"

struct ev_loop;
typedef struct FdStore FdStore;

typedef struct Containers Containers;

/* A call refused in a container (by the broker or, through it, by the seccomp profile), for
 * the agent's log and events: at most CONTAINERS_REPORTS_PER_SEC a second per container;
 * beyond that they are counted, and the next report says how many went unreported
 * (suppressed). */
#define CONTAINERS_REPORTS_PER_SEC 20
typedef void (*containers_report_t)(void *userdata, const char *container_id, pid_t pid, const char *syscall,
                                    const char *reason, uint64_t suppressed);

/* Loads the uid ranges from state_dir and takes back the notify fds kept in store (which
 * must outlive it) for the containers still running; drops the records of those whose
 * files are gone (runc's state and Stockade's directory under run_dir). Later, a container
 * that ended without its runtime's release (see containers_register()) has its files
 * removed and its range given back. */
int containers_new(struct ev_loop *loop, const char *state_dir, const char *run_dir, FdStore *store,
                   containers_report_t report, void *userdata, Containers **ret, char **reterr);
Containers *containers_free(Containers *c);
DEFINE_POINTER_CLEANUP(Containers, containers_free);

/* Listens for runtimes' notify fds at path (a unix socket, root only), on the socket kept
 * in the fd store when there is one. */
int containers_listen(Containers *c, const char *path, char **reterr);
/* The socket path, NULL when not listening. */
const char *containers_listener(const Containers *c);

/* The range of the container key ("ROOT/ID", see container_key()): allocated, or with
 * share_base (not 0) the range at that base, which another container holds (the one whose
 * namespaces it joins). runtime_pid is the runtime registering it (0: unknown): once that
 * process is gone, the init the broker watches (if any) has exited and runc holds no state
 * for the container (no ROOT/ID/state.json), the agent reclaims it as release would. */
int containers_register(Containers *c, const char *key, uint32_t share_base, pid_t runtime_pid, uint32_t *ret_base,
                        char **reterr);
/* Registers a container whose engine mapped it already (ids base to base + count - 1): see
 * uid_ranges_claim() for what is refused and why; runtime_pid as for containers_register(). */
int containers_claim(Containers *c, const char *key, uint32_t base, uint32_t count, pid_t runtime_pid, char **reterr);
int containers_release(Containers *c, const char *key);
/* From now on, each running container (those vetted already, and each whose init hands
 * over its notify fd) is served by procfs (which must outlive c) until its init exits. */
void containers_set_procfs(Containers *c, Procfs *procfs);
/* How many broker helpers run at once and how many calls wait (BROKER_LIMITS_DEFAULT
 * until set). */
int containers_set_limits(Containers *c, const BrokerLimits *limits);
/* The broker's helper executable (absolute), for helpers started from now on. */
int containers_set_helper(Containers *c, const char *path);
const BrokerLimits *containers_limits(const Containers *c);
/* Created and running containers: those status lists. */
size_t containers_count(const Containers *c);
/* Uid ranges held: by running containers and by stopped ones not yet deleted. */
size_t containers_ranges(const Containers *c);
/* [{"id", "root", "pid", "uid_base", "allowed", "denied", "helpers", "queued"}]: root is the
 * runtime's (missing from a record made before roots were); allowed and denied count
 * answered calls; helpers and queued are the calls at work and waiting now. */
cJSON *containers_status(const Containers *c);
