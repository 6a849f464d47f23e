/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A container's engine socket: a unix socket the agent serves on its loop in place of the
 * engine's, bound into the container where it asked for the engine's. Each connection is
 * relayed to the engine one request at a time (HTTP/1.1 both sides, bodies streamed, never
 * held whole); each request head is classified into the Docker CLI's commands
 * (policy/engine-commands.h) and one the admin's commandList refuses is answered with
 * HTTP 403 and {"message": "stockade: the docker command 'push' is not allowed in this
 * container by the administrator"} without reaching the engine, and the connection closed.
 * Once the engine hijacks a connection (101 Switching Protocols, or a raw stream for
 * attach and exec) both directions are passed through as they come. */

#include <stdint.h>

#include "macros.h"
#include "policy/engine-commands.h"

struct ev_loop;

#define PROXY_CONNECTIONS_MAX 256u

typedef struct Proxy Proxy;

/* A refused request, for the agent's log and events; command is NULL for an unknown route
 * or a request the proxy could not parse. */
typedef void (*proxy_refused_t)(void *userdata, const char *container_id, const char *command, const char *method,
                                const char *path);

typedef struct ProxyCounters {
        uint64_t allowed, refused;
        unsigned connections;
} ProxyCounters;

/* Listens at socket_path (replaced if there; made root's, mode 0660) and relays to the
 * engine at engine_socket. list must outlive the proxy; each request is checked against
 * what it holds then. */
int proxy_new(struct ev_loop *loop, const char *socket_path, const char *engine_socket, const char *container_id,
              const CommandList *list, proxy_refused_t refused, void *userdata, Proxy **ret);
/* Closes every connection and removes the socket file. */
Proxy *proxy_free(Proxy *p);
DEFINE_POINTER_CLEANUP(Proxy, proxy_free);

void proxy_get_counters(const Proxy *p, ProxyCounters *ret);
const char *proxy_socket_path(const Proxy *p);
