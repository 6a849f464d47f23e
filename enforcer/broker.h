/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The seccomp-notify broker's decisions and privileged actions for one container: its
 * processes' trapped mount, umount2, mknod and mknodat calls are let through (CONTINUE,
 * only where the registers alone decide), refused, or performed by the agent in a
 * short-lived helper process that joins the calling process's namespaces. No event loop
 * here: the caller polls the notify fd and the fds handed out, keeps the deadlines, and
 * calls back.
 *
 * What a container root may not do (fail closed, EPERM unless said otherwise):
 *  - mount: remount a mount present when the container started (or a bind of one: same
 *    device, root inside) so that it loses ro, nosuid, nodev or noexec; new mounts of
 *    file systems other than proc, sysfs, tmpfs, devpts, mqueue, cgroup2, overlay; a bind
 *    or move onto a masked path, or of a source under one; a non-recursive bind that would
 *    leave masked paths behind; a move of an initial mount; an overlay with a layer on a
 *    proc or sysfs, under a masked path or over the place of one. A new proc or sysfs gets
 *    the container's masks before it is attached.
 *  - umount2: "/", "/proc", "/sys", "/dev" (EBUSY); masked paths and the masks and
 *    read-only binds on any proc or sysfs (EPERM).
 *  - mknod(at): devices other than the overlay whiteout (0:0, let through) and null, zero,
 *    full, random, urandom, which are emulated: an empty file with the VM's node
 *    bind-mounted on it (device nodes on the container's file systems cannot be opened).
 *    Files, fifos and sockets are let through.
 * The helper acts with the calling thread's credentials (ids, groups, capabilities, in
 * its user namespace), so the kernel's own checks decide what a caller may do; where it
 * cannot take them, the call is refused. It cannot be traced, dies with the agent and is
 * killed at its deadline by the agent.
 * Paths are resolved as the caller would: relative ones against its working directory
 * (or mknodat's dirfd), absolute ones in its root, inside its mount namespace; each path
 * is resolved once to an fd and acted on through that fd. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker-policy.h"
#include "macros.h"

/* A helper that takes longer is killed by the agent (broker_pending_cancel()); the call
 * fails with EINTR. */
#define BROKER_HELPER_TIMEOUT_SEC 5

/* How many helpers run at once, per container and in all (calls beyond wait in the
 * kernel's queue); how many calls wait in the agent's queue of a container (and in all)
 * when the helper parent's queue is full, beyond which they get EAGAIN. */
typedef struct BrokerLimits {
        unsigned helpers_per_container, helpers;
        unsigned queued_per_container, queued;
} BrokerLimits;
#define BROKER_LIMITS_DEFAULT ((BrokerLimits) { 4, 64, 64, 256 })

typedef struct Broker Broker;
typedef struct BrokerContainer BrokerContainer;
typedef struct BrokerPending BrokerPending;

typedef enum BrokerVerdict {
        BROKER_ANSWERED, /* the notification was answered */
        BROKER_PENDING,  /* a helper is at work: see broker_pending_fd() */
        BROKER_QUEUED,   /* waiting for a helper: see broker_container_dequeue() */
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

/* Where the agent finds its helper executable when it is neither next to it (a build tree)
 * nor in ../libexec/stockade/ beside it. */
#define BROKER_HELPER_DEFAULT "/usr/local/libexec/stockade/stockade-helper"

/* At most this many calls received and neither answered nor handed to a helper yet (those
 * in the containers' queues among them): more wait in the kernel's queue. */
#define BROKER_JOURNAL_SLOTS 1024

/* What all containers share: the limits, how much of them is in use, the helper parent
 * (stockade-helper, started on the first call that needs a helper, again if it died) and
 * the journal of the calls received (a memfd to keep across the agent's restarts, see
 * broker_container_take_kept()): journal_fd is the one kept from before a restart, or
 * -EBADF for a new one. */
int broker_new(const BrokerLimits *limits, int journal_fd, Broker **ret);
/* The journal, for the fd store. */
int broker_journal_fd(const Broker *b);
/* Once every container is adopted after a restart: the calls in the kept journal that no
 * container took (answered or gone) are dropped from it. */
void broker_journal_settle(Broker *b);
Broker *broker_free(Broker *b);
DEFINE_POINTER_CLEANUP(Broker, broker_free);
const BrokerLimits *broker_limits(const Broker *b);
/* New limits hold for helpers started from now on. */
int broker_set_limits(Broker *b, const BrokerLimits *limits);
/* The /proc emulation's mount (path NULL: none): its files cover the same files of every
 * proc and sysfs a container mounts, as stockade-runc covers those of its first ones. */
int broker_set_emulation(Broker *b, const char *path);
/* The helper executable to start from now on (absolute). */
int broker_set_helper(Broker *b, const char *path);
const char *broker_helper(const Broker *b);
/* Helpers running and calls queued, in all or (c not NULL) for one container. */
void broker_usage(const Broker *b, const BrokerContainer *c, unsigned *ret_helpers, unsigned *ret_queued);

/* The masked paths of the spec in bundle/config.json (its linux.maskedPaths): -E2BIG past
 * BROKER_MASKED_MAX, never fewer than the spec has. */
int broker_masked_paths(const char *bundle, char ***ret, size_t *ret_n, char **reterr);

/* Records the container: the mounts present now in init_pid's mount namespace (as
 * /proc/PID/mountinfo shows them, with their ro, nosuid, nodev, noexec flags), its uid
 * base (uid 0 inside), its masked paths (absolute, such as "/proc/kcore", "/sys/firmware":
 * the spec's maskedPaths) and a pidfd of init_pid. b must outlive it. rules_fd, where
 * not negative, holds the rules recorded before the agent restarted
 * (broker_container_rules_fd()): they are used instead (the mounts present now include
 * those the container made since), masked unused. */
int broker_container_new(Broker *b, const char *id, pid_t init_pid, uint32_t base, const char *const *masked,
                         size_t n_masked, int rules_fd, BrokerContainer **ret, char **reterr);
/* The container's directory in the /proc emulation (procfs_dir_name()), whose files cover
 * those of each new proc and sysfs it mounts. */
void broker_container_set_emulation(BrokerContainer *c, const char *dir);
/* The container's rules (masked paths, initial mounts) as a sealed memfd, to keep across
 * the agent's restarts. */
int broker_container_rules_fd(const BrokerContainer *c);
/* The calls of notify_fd (adopted after a restart) that the agent before received and
 * neither answered nor handed to a helper: they wait in the container's queue (see
 * broker_container_dequeue()). How many, or -errno. */
int broker_container_take_kept(BrokerContainer *c, int notify_fd);
/* Frees the container's queued calls too (unanswered: their callers wait until the notify
 * fds are closed, or an agent after us takes them from the journal). Its pendings must be
 * gone. */
BrokerContainer *broker_container_free(BrokerContainer *c);
DEFINE_POINTER_CLEANUP(BrokerContainer, broker_container_free);
const char *broker_container_id(const BrokerContainer *c);
/* Readable once the container's init has exited. */
int broker_container_pidfd(const BrokerContainer *c);
pid_t broker_container_init_pid(const BrokerContainer *c);

/* Receives and handles one notification from notify_fd (call when it is readable): answers
 * it (BROKER_ANSWERED), starts a helper (BROKER_PENDING and *ret_pending) or queues it
 * (BROKER_QUEUED) when the helper parent's queue is full. *ret_event says what happened
 * (for BROKER_PENDING and BROKER_QUEUED only syscall and pid). -EBUSY: nothing received,
 * as no helper could start now (the limits are reached, calls wait in the container's
 * queue, or every slot of the journal is taken): the calls wait in the kernel's queue, where an agent started after this one finds
 * them too; call again once a pending call ended. -ENOENT: the caller is gone (not an
 * error); other negative errno: nothing was received. Every call received is answered,
 * now or later. */
int broker_handle(BrokerContainer *c, int notify_fd, BrokerPending **ret_pending, BrokerEvent *ret_event);
/* Takes the container's oldest queued call if the limits let a helper start: like
 * broker_handle() (never BROKER_QUEUED); -EAGAIN when nothing can be started. Call after
 * any pending call ended, for every container with calls queued. */
int broker_container_dequeue(BrokerContainer *c, BrokerPending **ret_pending, BrokerEvent *ret_event);

/* Readable when the helper is done (answered or died). */
int broker_pending_fd(const BrokerPending *p);
/* Reads the helper's result, answers the notification with it and frees p; then
 * *ret_event says what happened. -EAGAIN (p kept): not done yet. -ENOENT: the caller is
 * gone. p may no longer be used after any other return. */
int broker_pending_finish(BrokerPending *p, BrokerEvent *ret_event);
/* Kills the helper, answers the call with error (-errno), frees p: for a helper past its
 * deadline, or when the agent cannot watch it. */
int broker_pending_cancel(BrokerPending *p, int error, const char *reason, BrokerEvent *ret_event);
/* Lets the helper go: it answers the call itself, or its own deadline ends it. */
BrokerPending *broker_pending_free(BrokerPending *p);
DEFINE_POINTER_CLEANUP(BrokerPending, broker_pending_free);
