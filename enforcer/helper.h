/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Short-lived helper processes for the mechanisms that must act from other namespaces
 * (idmap, broker): a forked child that answers once over a SOCK_SEQPACKET socket with an
 * error (0 or -errno), a one-line reason, and on success maybe one fd in SCM_RIGHTS. The
 * caller either waits for the answer (helper_wait()) or polls Helper.socket from its own
 * loop and then reads it without blocking (helper_read()). */

#include <limits.h>
#include <sys/types.h>

#include "macros.h"

typedef struct Helper {
        pid_t pid;
        int socket; /* the caller's end, readable once the helper answered or died */
} Helper;

typedef struct HelperReply {
        int error;
        int detail; /* what the caller's protocol makes of it (the broker: refused by policy) */
        char reason[2 * PATH_MAX];
} HelperReply;

/* Runs in the child with its end of the socket, which it answers on (helper_send(),
 * helper_fail()): a helper that returns without an answer died without one. */
typedef void (*HelperFn)(int socket, const void *userdata);

#define HELPER_NULL ((Helper) { .pid = 0, .socket = -EBADF })

/* Forks a helper running fn(socket, userdata), then _exit(). */
int helper_start(HelperFn fn, const void *userdata, Helper *ret);
/* Kills (the helper is never needed after its answer) and reaps the helper, closes the socket. */
void helper_done(Helper *h);

/* Waits at most timeout_ms for the answer of the helper doing what (for messages). Returns
 * its error with its reason in *reterr, or 0 and the fd it sent (-EBADF if none). */
int helper_wait(Helper *h, int timeout_ms, const char *what, int *ret_fd, char **reterr);
/* Reads the answer once the socket is readable, never blocking: 0 and the reply (whose
 * error may be negative) with the fd it carried (-EBADF if none); -EAGAIN if there is no
 * answer yet, -ECHILD if the helper died without one, -EBADMSG if it is garbled. */
int helper_read(Helper *h, HelperReply *ret_reply, int *ret_fd);

/* In the helper: called with each answer's error and detail before it is sent, its result
 * added to the detail (the broker's helper answers the container's call there too); where
 * the answer carries no fd, it may give one in *fd. A helper the helper starts has none. */
typedef int (*HelperAnswerHook)(int error, int detail, int *fd);
void helper_answer_hook(HelperAnswerHook hook);

/* In the helper: answer (fd < 0: none). */
void helper_send(int socket, int fd, int error, const char *reason);
void helper_send_detail(int socket, int fd, int error, int detail, const char *reason);
/* In the helper: answer with an error and exit. */
_noreturn_ _printf_(3, 4) void helper_fail(int socket, int error, const char *format, ...);
