/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The control API server: length-prefixed JSON-RPC 2.0 (proto/frame.h) over unix and vsock
 * sockets, driven by a libev loop; nothing blocks.
 *
 * Access: on unix sockets uid 0 may call every method, a peer whose primary or supplementary
 * groups include reader_gid may call read-only methods. Anyone else is told why and closed
 * at accept (SO_PEERCRED), holding no slot. vsock peers are accepted only from the
 * listener's CID and count as root. events.subscribe is built in (read-only) and makes the
 * client receive control_server_emit() notifications.
 *
 * Limits: at most CONTROL_CLIENTS_MAX clients, of which a uid other than 0 holds at most
 * CONTROL_CLIENTS_PER_UID and all such uids together leave CONTROL_CLIENTS_ROOT_RESERVED
 * to root; a connection beyond them is told why and closed at accept. Each client's
 * outgoing queue holds at most CONTROL_CLIENT_QUEUE_MAX bytes, and a client whose queue
 * would overflow is dropped. */

#include <ev.h>
#include <stdbool.h>
#include <sys/types.h>

#include "json.h"

#define CONTROL_CLIENTS_MAX 1024u
#define CONTROL_CLIENTS_PER_UID 32u
#define CONTROL_CLIENTS_ROOT_RESERVED 256u
#define CONTROL_CLIENT_QUEUE_MAX (4u * 1024u * 1024u)

typedef struct ControlServer ControlServer;
typedef struct ControlClient ControlClient;

/* A method: returns 0 and *ret_result (owned; NULL means null), or a JsonRpcErrorCode
 * (negative, e.g. JSONRPC_INVALID_PARAMS) and *ret_message (owned). A negative errno is
 * answered as JSONRPC_INTERNAL_ERROR. params may be NULL. */
typedef int (*control_handler_t)(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret_result,
                                 char **ret_message);

typedef struct ControlMethod {
        const char *name;
        bool read_only;
        control_handler_t handler;
} ControlMethod;

/* methods must outlive the server. reader_gid is (gid_t) -1 when there is no reader group. */
int control_server_new(struct ev_loop *loop, const ControlMethod *methods, size_t n_methods, void *userdata,
                       gid_t reader_gid, ControlServer **ret);
ControlServer *control_server_free(ControlServer *s);
DEFINE_POINTER_CLEANUP(ControlServer, control_server_free);

/* "unix:/path": a stale socket at path is replaced; the socket is made root's, group
 * reader_gid, mode 0660 (0600 without a reader group). "vsock:CID:PORT": binds VMADDR_CID_ANY:PORT and accepts only
 * peers whose CID is CID. Returns the listening socket (the server's). */
int control_server_listen(ControlServer *s, const char *address, char **reterr);

/* An already-listening unix or vsock stream socket, e.g. from systemd socket activation.
 * An adopted vsock listener accepts only the host (VMADDR_CID_HOST). On success the server
 * owns fd; on failure the caller still does. */
int control_server_adopt(ControlServer *s, int fd, char **reterr);

/* Sends the notification {"method": event, "params": params} to every subscriber; takes
 * ownership of params (NULL: none). */
void control_server_emit(ControlServer *s, const char *event, cJSON *params);

size_t control_server_n_clients(const ControlServer *s);
/* Bytes allocated for all clients' outgoing queues. */
size_t control_server_queued_bytes(const ControlServer *s);

/* For handlers: the peer's pid and uid from SO_PEERCRED; -ENODATA for a vsock peer. */
int control_server_get_peer(const ControlClient *c, pid_t *ret_pid, uid_t *ret_uid);
