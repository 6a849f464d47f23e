/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Who gets the engine socket, and the proxies that stand in for it (agent/proxy.h).
 *
 * A container that binds the engine's socket gets it only if its image, as the engine
 * knows it (the container's image ID, inspected), matches the admin's
 * dockerSocketMount.imageList: "*" any image; "name@sha256:..." an image with that repo
 * digest or ID; "name[:tag]" an image whose repo digests hold the digest the tag resolves
 * to at the name's registry now (HEAD /v2/<name>/manifests/<tag>, token auth, answers kept
 * REGISTRY_ANSWER_TTL_S seconds and asked again every half of that); "name:*" an image whose repo digest of name the registry
 * knows. With allowDerivedImages also an image whose layer chain begins with the chain of
 * an allowed image the engine holds. A registry that cannot be reached fails closed, named
 * in the reason. The decision is made on the loop; the runtime asks until it is there. */

#include <stdbool.h>

#include "json.h"
#include "policy/engine-commands.h"

struct ev_loop;

#define REGISTRY_ANSWER_TTL_S 300
#define ENGINE_SOCKET_DECISION_TIMEOUT_S 30

typedef struct EngineSockets EngineSockets;

/* A refused request or a refused mount: the agent logs it and emits an event. */
typedef void (*engine_sockets_report_t)(void *userdata, const char *event, cJSON *params);

typedef struct EngineSocketsConfig {
        const char *engine_socket;
        const char *socket_dir;   /* where the proxies' sockets are made (root's, 0700) */
        const char *registry_ca;  /* PEM trust anchors for registries; NULL: the system's */
} EngineSocketsConfig;

int engine_sockets_new(struct ev_loop *loop, const EngineSocketsConfig *config, engine_sockets_report_t report, void *userdata,
                       EngineSockets **ret, char **reterr);
EngineSockets *engine_sockets_free(EngineSockets *e);
DEFINE_POINTER_CLEANUP(EngineSockets, engine_sockets_free);

/* The admin's dockerSocketMount settings; a changed imageList drops what registries said. */
int engine_sockets_configure(EngineSockets *e, const cJSON *images, bool allow_derived, const CommandList *commands);

/* The decision for container key (id: the engine's container id), started on the first
 * call: {"state": "pending"}, {"state": "allowed", "socket": PATH} or {"state": "refused",
 * "reason": "..."}. */
int engine_sockets_request(EngineSockets *e, const char *key, const char *id, cJSON **ret);
void engine_sockets_release(EngineSockets *e, const char *key);

/* [{"key", "state", "socket", "allowed", "refused", "connections"}] */
cJSON *engine_sockets_status(const EngineSockets *e);
