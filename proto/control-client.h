/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A blocking control API client, for stockadectl and tests. Notifications that arrive while
 * a call waits for its reply are kept (up to CONTROL_CLIENT_EVENTS_MAX) for
 * control_client_next_event(). */

#include "json.h"

#define CONTROL_CLIENT_CALL_TIMEOUT_MS (30 * 1000)
#define CONTROL_CLIENT_WRITE_TIMEOUT_MS (5 * 1000)
#define CONTROL_CLIENT_EVENTS_MAX 4096u

typedef struct ControlConnection ControlConnection;

/* address is "unix:/path" or "vsock:CID:PORT". Never waits for ever: -ETIMEDOUT when a unix
 * socket's accept queue stays full for CONTROL_CLIENT_WRITE_TIMEOUT_MS. */
int control_client_connect(const char *address, ControlConnection **ret, char **reterr);
ControlConnection *control_client_free(ControlConnection *c);
DEFINE_POINTER_CLEANUP(ControlConnection, control_client_free);

/* Calls method with params (owned; NULL: none) and waits up to CONTROL_CLIENT_CALL_TIMEOUT_MS
 * for the reply. Returns 0 and the result (ret_result may be NULL), or with *reterr set:
 * -EPERM when the agent answers JSONRPC_PERMISSION_DENIED, -EREMOTEIO for any other JSON-RPC
 * error (*reterr is then the agent's message), -ETIMEDOUT (no reply in time, or a write made
 * no progress for CONTROL_CLIENT_WRITE_TIMEOUT_MS), -ECONNRESET when the agent closed
 * the connection, -EPROTO when it broke the protocol, -ENOBUFS when more than
 * CONTROL_CLIENT_EVENTS_MAX notifications are left unread. A client the agent refused and
 * closed gets the agent's reason, not the failed write. */
int control_client_call(ControlConnection *c, const char *method, cJSON *params, cJSON **ret_result, char **reterr);

/* Returns 1 and the next notification ({"jsonrpc", "method", "params"}), or 0 when none
 * arrives within timeout_ms (-1: wait for ever). */
int control_client_next_event(ControlConnection *c, int timeout_ms, cJSON **ret_notification);
