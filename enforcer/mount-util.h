/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Helpers shared by the mechanisms that mount (lock, idmap): the mount table of a mount
 * namespace as /proc/self/mountinfo shows it, and path prefixes. The new mount API
 * (open_tree, move_mount, mount_setattr, fsopen, fsconfig, fsmount) needs no wrappers:
 * glibc >= 2.36 declares it in <sys/mount.h>, which must not be mixed with <linux/mount.h>. */

#include <stdbool.h>
#include <stddef.h>

typedef struct MountEntry {
        int id;
        int parent;
        unsigned major;
        unsigned minor;
        const char *root;  /* the directory of the filesystem shown at point */
        const char *point;
        const char *options; /* the per-mount options ("rw,nosuid,relatime"), not the superblock's */
        bool read_only;    /* the per-mount flag, not the superblock's */
        const char *fstype;
        const char *super_options; /* as the filesystem shows them, still escaped */
} MountEntry;

typedef struct MountTable {
        char *text; /* the entries' strings point into it */
        MountEntry *entries;
        size_t n;
} MountTable;

/* The largest mountinfo text read. */
#define MOUNTINFO_MAX (16u * 1024u * 1024u)

/* Reads the whole table from fd, an open mountinfo file, from its start: one fd can be read
 * again and again, and always shows the namespace of the process that opened it. */
int mount_table_read(int fd, MountTable *ret);
/* Parses mountinfo text (NUL-terminated, taken over even on failure): -EBADMSG for a
 * line that is not a mount entry. */
int mount_table_parse(char *text, MountTable *ret);
void mount_table_done(MountTable *t);
/* The part of the table that holds the mount of fd and its parent, from statmount(2)
 * (Linux 6.8) in the caller's mount namespace and root: their ids, device, root, point and
 * file system type ("fuse.SUBTYPE" as in mountinfo), no options. -ENOSYS, -EOPNOTSUPP or
 * -EINVAL where the kernel has no statmount, or does not tell a FUSE mount's subtype (6.11);
 * the mountinfo then has them. */
int mount_table_stat(int fd, MountTable *ret);

/* What follows prefix in path without the slash ("" if they are equal), NULL if path is
 * not prefix or below it. */
const char *path_startswith(const char *path, const char *prefix);

/* The first message a failed fsconfig() left in the filesystem context fs_fd (from fsopen),
 * without its "e " tag, in buf; "" when there is none. */
const char *fs_context_message(int fs_fd, char *buf, size_t size);
