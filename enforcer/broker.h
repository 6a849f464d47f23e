/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The seccomp-notify broker's decisions and privileged actions for one container: its
 * processes' trapped mount, umount2, mknod and mknodat calls are let through (CONTINUE,
 * only where the registers alone decide), refused, or performed by the agent in a
 * short-lived helper process that joins the calling process's namespaces. No event loop
 * here: the caller polls the notify fd and the fds handed out, and calls back.
 *
 * What a container root may not do (fail closed, EPERM unless said otherwise):
 *  - mount: remount a mount present when the container started (or a bind of one: same
 *    device, root inside) so that it loses ro, nosuid, nodev or noexec; new mounts of
 *    file systems other than proc, sysfs, tmpfs, devpts, mqueue, cgroup2, overlay; a bind
 *    or move onto a masked path; a non-recursive bind that would leave masked paths
 *    behind; a move of an initial mount. A new proc or sysfs gets the container's masks
 *    before it is attached.
 *  - umount2: "/", "/proc", "/sys", "/dev" (EBUSY); masked paths and the masks and
 *    read-only binds on any proc or sysfs (EPERM).
 *  - mknod(at): devices other than the overlay whiteout (0:0, let through) and null, zero,
 *    full, random, urandom, tty, console, which are emulated: an empty file with the VM's
 *    node bind-mounted on it (device nodes on the container's file systems cannot be
 *    opened). Files, fifos and sockets are let through.
 * Paths are resolved as the caller would: relative ones against its working directory
 * (or mknodat's dirfd), absolute ones in its root, inside its mount namespace; each path
 * is resolved once to an fd and acted on through that fd. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macros.h"

/* A helper that takes longer is killed; the call fails with EINTR. */
#define BROKER_HELPER_TIMEOUT_SEC 5
#define BROKER_MASKED_MAX 128
#define BROKER_REASON_MAX 256

typedef struct BrokerContainer BrokerContainer;
typedef struct BrokerPending BrokerPending;

typedef enum BrokerVerdict {
        BROKER_ANSWERED, /* the notification was answered */
        BROKER_PENDING,  /* a helper is at work: see broker_pending_fd() */
} BrokerVerdict;

/* What happened to one notification, for the caller's log and counters. */
typedef struct BrokerEvent {
        const char *syscall; /* "mount", "umount2", "mknod", "mknodat" or "unknown"; static */
        pid_t pid;           /* the calling thread, in the agent's pid namespace */
        bool denied;         /* refused by the rules above (not: failed in the kernel) */
        bool continued;      /* let through: the kernel decides */
        int error;           /* what the caller got: 0 or -errno (0 when continued) */
        char reason[BROKER_REASON_MAX]; /* why, for denials and failures; "" otherwise */
} BrokerEvent;

/* Records the container: the mounts present now in init_pid's mount namespace (as
 * /proc/PID/mountinfo shows them, with their ro, nosuid, nodev, noexec flags), its uid
 * base (uid 0 inside), its masked paths (absolute, such as "/proc/kcore", "/sys/firmware":
 * the spec's maskedPaths) and a pidfd of init_pid. */
int broker_container_new(const char *id, pid_t init_pid, uint32_t base, const char *const *masked,
                         size_t n_masked, BrokerContainer **ret, char **reterr);
BrokerContainer *broker_container_free(BrokerContainer *c);
DEFINE_POINTER_CLEANUP(BrokerContainer, broker_container_free);
const char *broker_container_id(const BrokerContainer *c);
/* Readable once the container's init has exited. */
int broker_container_pidfd(const BrokerContainer *c);
pid_t broker_container_init_pid(const BrokerContainer *c);

/* Receives and handles one notification from notify_fd (call when it is readable): answers
 * it (BROKER_ANSWERED) or starts a helper (BROKER_PENDING and *ret_pending). *ret_event
 * says what happened (for BROKER_PENDING only syscall and pid). -ENOENT: the caller is gone
 * (not an error); other negative errno: the agent could not handle it. */
int broker_handle(BrokerContainer *c, int notify_fd, BrokerPending **ret_pending, BrokerEvent *ret_event);

/* Readable when the helper is done (answered, died or was killed by its timeout). */
int broker_pending_fd(const BrokerPending *p);
/* Reads the helper's result, answers the notification with it and frees p; then
 * *ret_event says what happened. -EAGAIN (p kept): not done yet. -ENOENT: the caller is
 * gone. p may no longer be used after any other return. */
int broker_pending_finish(BrokerPending *p, BrokerEvent *ret_event);
/* Kills the helper without answering (the caller's call stays blocked until the notify fd
 * is closed). */
BrokerPending *broker_pending_free(BrokerPending *p);
DEFINE_POINTER_CLEANUP(BrokerPending, broker_pending_free);
