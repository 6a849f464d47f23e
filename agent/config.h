/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* stockaded's configuration file (default /etc/stockade/stockaded.json):
 * {"control": ["unix:/run/stockade/control.sock"], "stateDir": "/var/lib/stockade",
 *  "trustRoot": "/etc/stockade/root.json", "org": "acme", "settingsUrl": "https://...",
 *  "caFile": null, "refreshInterval": "60m", "locks": [...], "runc": "/usr/bin/runc",
 *  "runtime": "/usr/local/bin/stockade-runc", "engineConfig": "/etc/docker/daemon.json",
 *  "userSettings": null, "group": "stockade", "engineDataRoot": "/var/lib/docker",
 *  "engineSocket": "/var/run/docker.sock", "registryCaFile": null, "engineInit": "/usr/bin/docker-init", "runDir": "/run/stockade", "restrictedPaths": [],
 *  "hostShares": ["/host_mnt", "/mnt/host", "/home"], "hostVariables": {"HOME": "/host_mnt/Users/me"},
 *  "hooks": ["/usr/sbin/dockerd", "/usr/bin/dockerd"],
 *  "engineStorage": ["/var/lib/containers/storage", "/run/containers/storage"],
 *  "brokerLimits": {"helpersPerContainer": 4, "helpers": 64, "queuePerContainer": 64, "queue": 256},
 *  "brokerHelper": "/usr/local/libexec/stockade/stockade-helper"}
 * Every key is optional (in brokerLimits too: BROKER_LIMITS_DEFAULT); a missing file at the
 * default path means all defaults. */

#include <stdbool.h>
#include <stdint.h>

#include "defaults.h"
#include "enforcer/broker.h"
#include "macros.h"

#define AGENT_CONFIG_DEFAULT STOCKADE_CONFIG_DEFAULT
#define AGENT_LIST_MAX 32

typedef struct AgentConfig {
        char *control[AGENT_LIST_MAX];
        size_t n_control;
        char *state_dir;
        char *trust_root;
        char *org; /* expected organisation, NULL: the signed-in one */
        char *settings_url;
        char *ca_file;
        int64_t refresh_interval_s;
        char *locks[AGENT_LIST_MAX]; /* default: engine config, /etc/stockade (holding the trust root) */
        size_t n_locks;
        char *runc;
        char *runtime;
        char *engine_config;
        char *user_settings;
        char *group;
        char *engine_data_root; /* the engine's own files: restricted, but its containers' files and volumes are not */
        char *engine_socket;    /* mountable only by the admin's allowed images */
        char *registry_ca_file; /* PEM trust anchors for the registries of imageList tags; NULL: the system's */
        char *engine_init;      /* the engine's init binary, which it mounts into containers */
        char *run_dir;          /* runtime state: the containers' ID-mapped mounts */
        char *restricted[AGENT_LIST_MAX]; /* VM paths containers never mount, besides the built-in ones */
        size_t n_restricted;
        char *host_shares[AGENT_LIST_MAX]; /* the only VM directories bind sources may lie in, unless the admin sets filesharingAllowedDirectories */
        size_t n_host_shares;
        char *host_variables[AGENT_LIST_MAX]; /* "NAME=/path": what "$NAME" in filesharingAllowedDirectories is in the VM */
        size_t n_host_variables;
        char *hooks[AGENT_LIST_MAX]; /* the executables OCI hooks may run */
        size_t n_hooks;
        /* containers/storage roots (podman's root and runroot): root filesystems may lie in
         * them, and a container's own overlay-containers/ID/userdata files are the engine's */
        char *engine_storage[AGENT_LIST_MAX];
        size_t n_engine_storage;
        BrokerLimits broker_limits; /* helpers at work and calls waiting, per container and in all */
        char *broker_helper; /* stockade-helper; NULL: next to stockaded, else in ../libexec/stockade/ beside it */
} AgentConfig;

/* A missing file is an error unless path is AGENT_CONFIG_DEFAULT. Errors name the key:
 * "stockaded.json: 'refreshInterval' must be a duration such as 60m". */
int agent_config_load(const char *path, AgentConfig **ret, char **reterr);
/* The same from text: NUL-terminated JSON that may hold comments, changed in place (NULL:
 * all defaults). Errors are not prefixed with a path. */
int agent_config_parse(char *text, AgentConfig **ret, char **reterr);
AgentConfig *agent_config_free(AgentConfig *config);
DEFINE_POINTER_CLEANUP(AgentConfig, agent_config_free);

/* Replaces a string setting (command-line overrides). */
int agent_config_set(char **field, const char *value);
