/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What the agent cannot re-create when it restarts (containers' seccomp notify fds, its
 * listening sockets) is kept in the service manager's file descriptor store: systemd's
 * (sd_notify "FDSTORE=1" with "FDNAME=", FileDescriptorStoreMax= in the unit) or
 * stockade-keeper's, which speaks the same protocol on $NOTIFY_SOCKET. A restarted agent
 * gets them back named ($LISTEN_FDS, $LISTEN_FDNAMES), takes those it still wants and
 * closes the rest.
 *
 * Names are the store's key: printable ASCII without ':', at most FDSTORE_NAME_MAX bytes.
 * The agent's own names contain a '/' ("notify/...", "control/...", "listener/seccomp");
 * a passed fd whose name has none is a socket of socket activation. */

#include <stdbool.h>

#include "macros.h"

#define FDSTORE_NAME_MAX 255

typedef struct FdStore FdStore;

/* Takes the fds passed at start (and unsets $LISTEN_*). */
int fdstore_new(FdStore **ret);
/* Closes the passed fds no one took. */
FdStore *fdstore_free(FdStore *s);
DEFINE_POINTER_CLEANUP(FdStore, fdstore_free);

/* Whether a service manager keeps fds for the agent ($NOTIFY_SOCKET is set). */
bool fdstore_enabled(const FdStore *s);

/* Keeps a duplicate of fd under name (fd stays the caller's). 0 without a store. */
int fdstore_keep(FdStore *s, const char *name, int fd);
/* Drops every fd kept under name. */
int fdstore_forget(FdStore *s, const char *name);

/* The passed fd named name, now the caller's: -ENOENT when none was passed. */
int fdstore_take(FdStore *s, const char *name);
/* The next passed fd whose name starts with prefix, now the caller's, and its name
 * (valid until fdstore_free()); -ENOENT when there is none. */
int fdstore_take_next(FdStore *s, const char *prefix, const char **ret_name);
/* The next passed socket of socket activation (a name without '/'); -ENOENT. */
int fdstore_take_activated(FdStore *s);
/* Closes the passed fds no one took and forgets them in the store. */
void fdstore_drop_rest(FdStore *s);

/* "PREFIX/TEXT" with every ':' of text made '/', cut at FDSTORE_NAME_MAX. */
void fdstore_name(char buf[static FDSTORE_NAME_MAX + 1], const char *prefix, const char *text);
