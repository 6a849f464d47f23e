/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Mount sources resolved once. A path from a spec is opened once to an O_PATH fd (symlinks
 * followed at that moment only); every check after that is about the object behind the
 * fd, which is also what gets mounted, so swapping a symlink or a directory after the
 * check changes nothing. "Lies below a directory" is decided by the kernel's own name for
 * the object, walked again from the directory's fd without following any symlink, and
 * accepted only if the walk reaches the same inode on the same mount. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The identity of an object: its inode and the mount it was reached through. */
typedef struct SourceId {
        dev_t dev;
        ino_t ino;
        uint64_t mnt_id;
        bool mount_root; /* the object is the root of its mount */
} SourceId;

int source_open(const char *path, int *ret_fd);
int source_id(int fd, SourceId *ret);
bool source_same(const SourceId *a, const SourceId *b);

/* The kernel's name for the object behind fd (an absolute path), in *ret (malloc'd):
 * -EXDEV where it has none reachable from our root. */
int source_name(int fd, char **ret);

/* 1: the object behind fd is dir or lies below it; 0: not (or the tree changed while it
 * was checked); <0: error. A missing dir is "not". */
int source_below(int fd, const char *dir);

/* 1: fd's object is dir or holds it (an ancestor of dir, by inode, wherever it is
 * mounted); 0: not. A missing dir is "not". dir may be a file, e.g. a socket. */
int source_holds(int fd, const char *dir);

/* Where a mount comes from: for an object (fd) on a mount that shows a filesystem also
 * mounted elsewhere, 1 and an O_PATH fd of the same object reached through the first such
 * other mount (a bind mount's origin). 0 and *ret_fd = -EBADF where no other mount shows
 * it: the filesystem was mounted for this one place only. Either way fstype says what the
 * object's own mount is. */
int source_origin(int fd, int *ret_fd, char *fstype, size_t fstype_size);
