/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>

#include "config.h"
#include "json.h"
#include "util.h"

AgentConfig *agent_config_free(AgentConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_control; i++)
                free(c->control[i]);
        for (size_t i = 0; i < c->n_locks; i++)
                free(c->locks[i]);
        for (size_t i = 0; i < c->n_host_shares; i++)
                free(c->host_shares[i]);
        for (size_t i = 0; i < c->n_hooks; i++)
                free(c->hooks[i]);
        for (size_t i = 0; i < c->n_engine_storage; i++)
                free(c->engine_storage[i]);
        for (size_t i = 0; i < c->n_host_variables; i++)
                free(c->host_variables[i]);
        free(c->state_dir);
        free(c->trust_root);
        free(c->org);
        free(c->settings_url);
        free(c->ca_file);
        free(c->runc);
        free(c->broker_helper);
        free(c->runtime);
        free(c->engine_config);
        free(c->user_settings);
        free(c->group);
        free(c->engine_data_root);
        free(c->engine_socket);
        free(c->registry_ca_file);
        free(c->engine_init);
        free(c->run_dir);
        for (size_t i = 0; i < c->n_restricted; i++)
                free(c->restricted[i]);
        free(c);
        return NULL;
}

int agent_config_set(char **field, const char *value) {
        char *copy = NULL;
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int list_add(char **list, size_t *n, const char *value) {
        if (*n >= AGENT_LIST_MAX)
                return -E2BIG;
        list[*n] = strdup(value);
        if (!list[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

static int config_defaults(AgentConfig *c) {
        static const struct {
                size_t offset;
                const char *value;
        } defaults[] = {
                { offsetof(AgentConfig, state_dir), "/var/lib/stockade" },
                { offsetof(AgentConfig, trust_root), "/etc/stockade/root.json" },
                { offsetof(AgentConfig, runc), STOCKADE_RUNC_DEFAULT },
                { offsetof(AgentConfig, engine_config), "/etc/docker/daemon.json" },
                { offsetof(AgentConfig, group), "stockade" },
                { offsetof(AgentConfig, engine_data_root), "/var/lib/docker" },
                { offsetof(AgentConfig, engine_socket), "/var/run/docker.sock" },
                { offsetof(AgentConfig, engine_init), "/usr/bin/docker-init" },
                { offsetof(AgentConfig, run_dir), STOCKADE_RUN_DIR_DEFAULT },
        };
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
                int r = agent_config_set((char **) ((char *) c + defaults[i].offset), defaults[i].value);
                if (r < 0)
                        return r;
        }
        /* stockade-runc as installed with us: /usr/bin for the package, PREFIX/bin for make install. */
        c->runtime = exe_sibling("stockade-runc");
        if (!c->runtime && agent_config_set(&c->runtime, STOCKADE_RUNTIME_DEFAULT) < 0)
                return -ENOMEM;
        c->refresh_interval_s = 3600;
        c->broker_limits = BROKER_LIMITS_DEFAULT;
        return 0;
}

/* Where a desktop VM sees the host's shared directories, and the VM's own users' homes. */
static const char *const host_shares_default[] = { "/host_mnt", "/mnt/host", "/home" };
/* Docker's own prestart hook runs the engine's binary (as "/proc/PID/exe"). */
static const char *const hooks_default[] = { "/usr/sbin/dockerd", "/usr/bin/dockerd" };
/* podman's (rootful) root and runroot. */
static const char *const engine_storage_default[] = { "/var/lib/containers/storage", "/run/containers/storage" };

/* "hostVariables": {"HOME": "/host_mnt/Users/me"} is kept as "HOME=/host_mnt/Users/me". */
static int parse_variables(const cJSON *v, AgentConfig *c, char **reterr) {
        if (!cJSON_IsObject(v))
                return error_set(reterr, -EINVAL, "'hostVariables' must be an object of strings");
        const cJSON *item;
        cJSON_ArrayForEach(item, v) {
                _cleanup_free_ char *entry = NULL;
                if (!cJSON_IsString(item) || item->valuestring[0] != '/' || strchr(item->string, '='))
                        return error_set(reterr, -EINVAL, "'hostVariables' must map names to absolute paths");
                if (asprintf(&entry, "%s=%s", item->string, item->valuestring) < 0)
                        return -ENOMEM;
                int r = list_add(c->host_variables, &c->n_host_variables, entry);
                if (r < 0)
                        return error_set(reterr, r, "'hostVariables' has more than %d entries", AGENT_LIST_MAX);
        }
        return 0;
}

#define BROKER_HELPERS_MAX 1024u
#define BROKER_QUEUE_MAX 65536u

static int parse_broker_limits(const cJSON *v, BrokerLimits *limits, char **reterr) {
        static const struct {
                const char *key;
                size_t offset;
                unsigned min, max;
        } keys[] = {
                { "helpersPerContainer", offsetof(BrokerLimits, helpers_per_container), 1, BROKER_HELPERS_MAX },
                { "helpers", offsetof(BrokerLimits, helpers), 1, BROKER_HELPERS_MAX },
                { "queuePerContainer", offsetof(BrokerLimits, queued_per_container), 0, BROKER_QUEUE_MAX },
                { "queue", offsetof(BrokerLimits, queued), 0, BROKER_QUEUE_MAX },
        };
        if (!cJSON_IsObject(v))
                return error_set(reterr, -EINVAL, "'brokerLimits' must be an object");
        const cJSON *item;
        cJSON_ArrayForEach(item, v) {
                size_t i;
                for (i = 0; i < ELEMENTSOF(keys) && !streq(item->string, keys[i].key); i++)
                        ;
                if (i == ELEMENTSOF(keys))
                        return error_set(reterr, -EINVAL, "unknown key 'brokerLimits.%s'", item->string);
                if (!json_is_int(item, keys[i].min, keys[i].max))
                        return error_set(reterr, -EINVAL, "'brokerLimits.%s' must be an integer from %u to %u", keys[i].key,
                                         keys[i].min, keys[i].max);
                *(unsigned *) ((char *) limits + keys[i].offset) = (unsigned) item->valuedouble;
        }
        return 0;
}

static int parse_list(const cJSON *v, const char *key, char **list, size_t *n, char **reterr) {
        if (!cJSON_IsArray(v))
                return error_set(reterr, -EINVAL, "'%s' must be an array of strings", key);
        for (size_t i = 0; i < *n; i++)
                free(list[i]);
        *n = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, v) {
                if (!cJSON_IsString(item))
                        return error_set(reterr, -EINVAL, "'%s' must be an array of strings", key);
                int r = list_add(list, n, item->valuestring);
                if (r < 0)
                        return error_set(reterr, r, "'%s' has more than %d entries", key, AGENT_LIST_MAX);
        }
        return 0;
}

static int config_parse(AgentConfig *c, const cJSON *json, bool *locks_set, bool *shares_set, bool *hooks_set,
                        bool *storage_set, char **reterr) {
        static const struct {
                const char *key;
                size_t offset;
        } strings[] = {
                { "stateDir", offsetof(AgentConfig, state_dir) },
                { "trustRoot", offsetof(AgentConfig, trust_root) },
                { "org", offsetof(AgentConfig, org) },
                { "settingsUrl", offsetof(AgentConfig, settings_url) },
                { "caFile", offsetof(AgentConfig, ca_file) },
                { "runc", offsetof(AgentConfig, runc) },
                { "runtime", offsetof(AgentConfig, runtime) },
                { "engineConfig", offsetof(AgentConfig, engine_config) },
                { "userSettings", offsetof(AgentConfig, user_settings) },
                { "group", offsetof(AgentConfig, group) },
                { "engineDataRoot", offsetof(AgentConfig, engine_data_root) },
                { "engineSocket", offsetof(AgentConfig, engine_socket) },
                { "registryCaFile", offsetof(AgentConfig, registry_ca_file) },
                { "engineInit", offsetof(AgentConfig, engine_init) },
                { "runDir", offsetof(AgentConfig, run_dir) },
                { "brokerHelper", offsetof(AgentConfig, broker_helper) },
        };

        if (!cJSON_IsObject(json))
                return error_set(reterr, -EINVAL, "not a JSON object");

        const cJSON *v;
        cJSON_ArrayForEach(v, json) {
                const char *key = v->string;
                size_t i;
                for (i = 0; i < ELEMENTSOF(strings); i++)
                        if (streq(key, strings[i].key))
                                break;
                int r = 0;
                if (i < ELEMENTSOF(strings)) {
                        char **field = (char **) ((char *) c + strings[i].offset);
                        /* null unsets only what has no default (org, settingsUrl, ...). */
                        if (!cJSON_IsString(v) && !(cJSON_IsNull(v) && !*field))
                                return error_set(reterr, -EINVAL, "'%s' must be a string", key);
                        r = agent_config_set(field, cJSON_IsString(v) ? v->valuestring : NULL);
                } else if (streq(key, "control"))
                        r = parse_list(v, key, c->control, &c->n_control, reterr);
                else if (streq(key, "restrictedPaths"))
                        r = parse_list(v, key, c->restricted, &c->n_restricted, reterr);
                else if (streq(key, "hostShares")) {
                        r = parse_list(v, key, c->host_shares, &c->n_host_shares, reterr);
                        *shares_set = true;
                } else if (streq(key, "hooks")) {
                        r = parse_list(v, key, c->hooks, &c->n_hooks, reterr);
                        *hooks_set = true;
                } else if (streq(key, "engineStorage")) {
                        r = parse_list(v, key, c->engine_storage, &c->n_engine_storage, reterr);
                        *storage_set = true;
                } else if (streq(key, "hostVariables"))
                        r = parse_variables(v, c, reterr);
                else if (streq(key, "brokerLimits"))
                        r = parse_broker_limits(v, &c->broker_limits, reterr);
                else if (streq(key, "locks")) {
                        r = parse_list(v, key, c->locks, &c->n_locks, reterr);
                        *locks_set = true;
                } else if (streq(key, "refreshInterval")) {
                        if (json_is_int(v, 1, INT32_MAX))
                                c->refresh_interval_s = (int64_t) v->valuedouble;
                        else if (!cJSON_IsString(v) || duration_parse(v->valuestring, &c->refresh_interval_s) < 0)
                                return error_set(reterr, -EINVAL, "'refreshInterval' must be a duration such as 60m");
                } else
                        return error_set(reterr, -EINVAL, "unknown key '%s'", key);
                if (r < 0)
                        return r;
        }
        return 0;
}

int agent_config_parse(char *text, AgentConfig **ret, char **reterr) {
        _cleanup_(agent_config_freep) AgentConfig *c = calloc(1, sizeof(AgentConfig));
        if (!c)
                return -ENOMEM;
        int r = config_defaults(c);
        if (r < 0)
                return r;

        bool locks_set = false, shares_set = false, hooks_set = false, storage_set = false;
        if (text) {
                _cleanup_json_ cJSON *json = json_parse_commented(text);
                r = config_parse(c, json, &locks_set, &shares_set, &hooks_set, &storage_set, reterr);
                if (r < 0)
                        return r;
        }

        if (c->n_control == 0 && (r = list_add(c->control, &c->n_control, STOCKADE_CONTROL_DEFAULT)) < 0)
                return r;
        if (!locks_set) {
                /* Locks cannot nest: the trust root gets its own only outside /etc/stockade. */
                const char *defaults[] = { c->engine_config, "/etc/stockade",
                                           STARTSWITH(c->trust_root, "/etc/stockade/") ? NULL : c->trust_root };
                for (size_t i = 0; i < ELEMENTSOF(defaults); i++)
                        if (defaults[i] && (r = list_add(c->locks, &c->n_locks, defaults[i])) < 0)
                                return r;
        }

        for (size_t i = 0; !shares_set && i < ELEMENTSOF(host_shares_default); i++)
                if ((r = list_add(c->host_shares, &c->n_host_shares, host_shares_default[i])) < 0)
                        return r;
        for (size_t i = 0; !hooks_set && i < ELEMENTSOF(hooks_default); i++)
                if ((r = list_add(c->hooks, &c->n_hooks, hooks_default[i])) < 0)
                        return r;
        for (size_t i = 0; !storage_set && i < ELEMENTSOF(engine_storage_default); i++)
                if ((r = list_add(c->engine_storage, &c->n_engine_storage, engine_storage_default[i])) < 0)
                        return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int agent_config_load(const char *path, AgentConfig **ret, char **reterr) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t size;
        int r = read_full_file(AT_FDCWD, path, 1 << 20, &text, &size);
        if (r < 0 && !(r == -ENOENT && streq(path, AGENT_CONFIG_DEFAULT)))
                return error_set(reterr, r, "cannot read '%s': %s", path, strerror(-r));
        r = agent_config_parse(text, ret, &why);
        if (r < 0)
                return error_set(reterr, r, "%s: %s", path, why ? why : strerror(-r));
        return 0;
}
