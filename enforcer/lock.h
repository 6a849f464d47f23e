/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Locks the VM's configuration files read-only and repairs tampering.
 *
 * A lock holds a snapshot of a regular file (inode, content up to LOCK_FILE_MAX bytes,
 * mode, owner) or of a directory (the same for every regular file, symlink (its target)
 * and subdirectory below it, at most LOCK_ENTRIES_MAX of them; devices, fifos, sockets
 * and other mounts inside are refused). The path is covered by a read-only bind mount of
 * itself and, where the filesystem supports it, every entry but symlinks carries the
 * immutable attribute. Entries are checked by what they are, not by the way to them: a
 * name added to a locked directory (through a second bind mount of a parent, say) is
 * removed, and an entry whose inode changed is made anew. Locks outlive the LockSet: a
 * restarted agent adopts the read-only bind mounts it finds instead of stacking new ones.
 *
 * There is no event loop here. The caller polls lockset_fd() and calls lockset_check()
 * when it is readable: the check verifies every lock, whatever the notifications said, so
 * a lost or coalesced notification cannot hide tampering. A repair itself causes
 * notifications, hence one more (clean) check after it. */

#include <stdbool.h>
#include <stddef.h>

#include "macros.h"

#define LOCKS_MAX 64
#define LOCK_FILE_MAX (1024u * 1024u)
#define LOCK_ENTRIES_MAX 256
#define LOCK_CHECK_INTERVAL_MS 500

typedef enum LockState {
        LOCK_LOCKED,   /* as snapshotted, or repaired */
        LOCK_TAMPERED, /* the last repair failed; retried by every lockset_check() */
} LockState;

typedef struct LockInfo {
        const char *path;      /* canonical, lives as long as the lock */
        LockState state;
        unsigned tamper_count; /* tampering found since the lock was added */
        bool immutable;        /* the filesystem supports the immutable attribute */
} LockInfo;

typedef struct LockSet LockSet;

/* Opens /proc/self/mountinfo (of the caller's mount namespace), an inotify fd and a timer,
 * all watched by lockset_fd(). */
int lockset_new(LockSet **ret);
/* Frees memory and fds, leaves the locks in place. */
LockSet *lockset_free(LockSet *s);
DEFINE_POINTER_CLEANUP(LockSet, lockset_free);

/* Locks an existing file or directory (symlinks in path are resolved). A bind mount of the
 * path onto itself that is already there is adopted (and made read-only), never stacked.
 * On failure *reterr says why, e.g. "'/etc/x' does not exist", and the lock is not added;
 * if the failure came while locking, what was done stays in place (failing closed) and
 * adding the path again adopts it. Paths inside each other cannot both be locked. */
int lockset_add(LockSet *s, const char *path, char **reterr);
/* Unmounts the bind mount and clears the immutable attribute: the path is writable again.
 * -ENOENT if path is not locked. */
int lockset_remove(LockSet *s, const char *path);

/* One fd for the caller's loop, readable (POLLIN) when a watched file changed, when the
 * mount table did, and LOCK_CHECK_INTERVAL_MS after the last check: the kernel does not
 * notify changes of the immutable attribute (FS_IOC_SETFLAGS sends no IN_ATTRIB), and an
 * inotify queue can overflow, so a periodic check keeps the promise of repairing within
 * a second. */
int lockset_fd(const LockSet *s);

/* what lists what was wrong, e.g. "unmounted, content replaced" or "entries added"; error is 0 when the lock
 * was repaired, else why not (the lock is then LOCK_TAMPERED). */
typedef void (*LockReportFn)(const char *path, const char *what, int error, void *userdata);

/* Drains the notifications, checks every lock and repairs what was tampered with. report
 * (if not NULL) is called for each lock repaired, and once for a lock whose repair failed
 * (it turns LOCK_TAMPERED; later attempts are reported only when they succeed). Returns the
 * number repaired, or the first error if a repair failed (the others are still attempted). */
int lockset_check(LockSet *s, LockReportFn report, void *userdata);

/* For status: fills *ret for the i-th lock, -ENOENT past the last one. */
int lockset_get(const LockSet *s, size_t i, LockInfo *ret);
