/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The OCI runtime-spec seccomp listener protocol (linux.seccomp.listenerPath), as runc >= 1.1
 * and crun speak it: the runtime connects to a unix stream socket, sends one message whose
 * data is the JSON "container process state" and whose SCM_RIGHTS carry file descriptors,
 * then closes the connection:
 *
 *   {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": 1234, "metadata": "<listenerMetadata>",
 *    "state": {"ociVersion": ..., "id": ..., "status": ..., "pid": ..., "bundle": ..., "annotations": ...}}
 *
 * "fds" names the passed descriptors in order; the seccomp notify fd is the one named
 * "seccompFd". */

#include <stddef.h>
#include <sys/types.h>

#define SECCOMP_LISTENER_MAX (64u * 1024u) /* bytes of JSON */
#define SECCOMP_LISTENER_FDS_MAX 8u

typedef struct SeccompListenerMessage {
        char *container_id;   /* state.id */
        char *metadata;       /* listenerMetadata from the spec; NULL when absent */
        pid_t pid;            /* the process the fd is for: the init, or a process of an exec */
        pid_t init_pid;       /* state.pid, the container's init (pid when absent) */
        char *bundle;         /* state.bundle; NULL when absent */
        int seccomp_fd_index; /* index of "seccompFd" in the received fds */
        size_t n_fds;         /* the number of fds that arrived, equal to the length of "fds" */
} SeccompListenerMessage;

/* Parses and validates the JSON part of a message; n_fds is the number of fds that actually
 * arrived with it. Members other than the ones above are ignored. On failure *reterr (if
 * reterr is non-NULL) holds one line: -EMSGSIZE for more than SECCOMP_LISTENER_MAX bytes,
 * -EBADMSG when the data is not one JSON value ("not JSON"), -EINVAL when it is not a valid
 * message ("'pid' must be a positive integer", "'fds' must name the received fds (2 named,
 * 1 received)", "no 'seccompFd' in 'fds'", "'state.pid' must be a positive integer", ...). */
int seccomp_listener_parse(const char *data, size_t size, size_t n_fds, SeccompListenerMessage *ret, char **reterr);
/* Frees the strings and resets *m; safe to call twice. */
void seccomp_listener_message_done(SeccompListenerMessage *m);

/* Receives one message from a connected unix stream socket without blocking (MSG_DONTWAIT,
 * fds with MSG_CMSG_CLOEXEC): -EAGAIN when nothing has arrived yet, -ENODATA when the peer
 * closed without sending anything. On success the JSON text (malloc'd, NUL-terminated,
 * *ret_size excludes the NUL) and the received fds (ret_fds[0..*ret_n_fds), possibly none);
 * the caller owns both. A message of more than SECCOMP_LISTENER_MAX bytes is -EMSGSIZE, one
 * with more than SECCOMP_LISTENER_FDS_MAX fds or truncated control data -EPROTO; on any
 * error every fd that arrived has been closed.
 *
 * The message ends where the data queued on the socket ends: the kernel delivers the first
 * piece of a message together with its fds, so the rest that is already queued is read too.
 * The runtime sends the whole message with one sendmsg() before it closes, so it is complete
 * unless the read races with that call for a message of more than ~32 KiB; a cut message then
 * fails to parse, and the caller drops it. */
int seccomp_listener_recv(int sock, char **ret_data, size_t *ret_size, int ret_fds[static SECCOMP_LISTENER_FDS_MAX],
                          size_t *ret_n_fds);

/* For tests and tools: sends json (non-empty) with fds in SCM_RIGHTS the way runc does, in
 * one message on a blocking socket. The fds stay open. */
int seccomp_listener_send(int sock, const char *json, const int *fds, size_t n_fds);
