/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* stockaded's state: one Agent per process, driven by one libev loop. */

#include "config.h"

struct ev_loop;

typedef struct Agent Agent;

typedef struct AgentArgs {
        const char *config_path;
        const char *state_dir; /* overrides the config file's */
        const char *control[AGENT_LIST_MAX]; /* override the config file's */
        size_t n_control;
} AgentArgs;

/* Loads the config, the trust root and the last-known-good settings, applies them
 * (engine config, locks) and starts listening. Logs what went wrong. */
int agent_new(struct ev_loop *loop, const AgentArgs *args, Agent **ret);
Agent *agent_free(Agent *agent);
DEFINE_POINTER_CLEANUP(Agent, agent_free);

/* Runs the loop until SIGTERM or SIGINT, telling systemd READY=1 first. */
int agent_run(Agent *agent);
