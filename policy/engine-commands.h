/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* ECI's dockerSocketMount.commandList: which Docker CLI commands an Engine API request
 * belongs to, and whether the admin's list lets it through. The route table is in
 * engine-commands.c and in the README. Pure code. */

#include <stdbool.h>
#include <stddef.h>

typedef struct CommandList {
        bool allow;                  /* "type": "allow" (else "deny") */
        const char *const *commands; /* patterns: "push", "container*", "*" */
        size_t n_commands;
} CommandList;

/* The commands of a request, '|'-separated, the first one the CLI's own name for it
 * ("ps|container ls|container list|container ps"); NULL for a route not in the table.
 * path is decoded and may start with an API version ("/v1.41/containers/json"). */
const char *engine_request_commands(const char *method, const char *path);

/* true when list lets the request through; otherwise *ret_command (static, at most 63
 * bytes) names the refused command, or is NULL for a route not in the table, which is
 * always refused. A "deny" list refuses a request when any of its commands matches a
 * pattern, an "allow" list lets it through when any does. */
bool engine_request_allowed(const CommandList *list, const char *method, const char *path, char ret_command[static 64]);

/* Whether the engine takes the connection over for this request (attach, exec start). */
bool engine_request_hijacks(const char *method, const char *path);
