/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* ID-mapped mounts: files are shown to a container whose user namespace maps "0 base count"
 * without chown. Through such a mount a file owned by uid/gid N on disk appears as
 * base + N, and a file created by (VM) uid base + N is written to disk as N. So the image's
 * root-owned files are the container root's, and what the container creates lands on disk
 * as if there were no user namespace.
 *
 * Every call is synchronous and may fork a short-lived helper (see idmap_overlay()); on
 * failure *reterr (if not NULL) holds a one-line reason that quotes the paths. Nothing
 * here changes the caller's namespaces or credentials. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long a helper process may take before it is killed and the call fails. */
#define IDMAP_HELPER_TIMEOUT_MS 10000

/* Opens a user namespace whose uid and gid maps are both "0 base count" (count >= 1, the
 * range must not wrap). Only the returned fd (O_CLOEXEC) keeps it alive; one can serve
 * every mount of a container. */
int idmap_userns_open(uint32_t base, uint32_t count, int *ret_fd, char **reterr);

/* Attaches an ID-mapped copy of the mount tree at source_fd (an O_PATH fd of a directory or
 * a file, as checked; source names it in errors) at target, mapped by userns_fd. recursive takes the mounts below source along
 * (all must be on filesystems that support ID-mapped mounts); read_only makes the copy
 * read-only. A missing target is created (0755 directory or 0644 empty file, as source
 * is); its parent must exist. Where the caller is outside the mapping of an ID-mapped mount
 * holding target (a container's rootfs), target is created as its directory's owner. The
 * final component of target is not followed if it is a symlink. userns_fd < 0: a plain copy,
 * not ID-mapped. */
int idmap_bind(int userns_fd, int source_fd, const char *source, const char *target, bool recursive, bool read_only,
               char **reterr);

/* Mounts at target (a directory, created 0755 if missing) an overlay whose layers are
 * ID-mapped by userns_fd: lower[] read-only, top first as in lowerdir=; upper and work
 * writable, siblings in one directory (overlayfs needs them on one mount, so that
 * directory is ID-mapped as a whole). Files created through the overlay land in upper
 * owned by their creator's uid minus base.
 *
 * An overlay over ID-mapped layers is writable only if its mounter's credentials map
 * through the layers: mounted by the VM's root (uid 0, outside the mapping) it comes up
 * read-only (the kernel fails to create work/work with EOVERFLOW). So a helper process
 * ID-maps the layers below a scratch tmpfs in a private mount namespace (the layers' own
 * parents may not be traversable by the container's root), joins userns_fd's
 * namespace as its uid 0 (VM uid base), mounts the overlay from a mount namespace of its
 * own (option userxattr, as trusted.* xattrs need the initial namespace) and passes the
 * mount back; the caller's mount table never shows the layers. For the same reason the
 * VM's root cannot create files in the overlay (EOVERFLOW): only uids inside the mapping
 * can, such as the container's processes or a caller that setfsuid()s into the range.
 * An overlay that would still come up read-only (upper or work not writable through the
 * mapping) is not mounted: -EROFS. */
int idmap_overlay(int userns_fd, const char *const *lower, size_t n_lower, const char *upper,
                  const char *work, const char *target, char **reterr);

/* Lazily unmounts every mount at or below dir, deepest first, then removes dir and the
 * directories and empty files below it (the mount points left behind). A file with
 * content is not removed: -ENOTEMPTY names it. A missing dir is not an error. */
int idmap_teardown(const char *dir, char **reterr);
/* Removes a container's directory (container_dir()): the spec runc read from it, then
 * what idmap_teardown() removes. */
int idmap_container_remove(const char *dir, char **reterr);

/* Presents a container's root filesystem (rootfs_fd, O_PATH; rootfs names it) ID-mapped at
 * target: when it is the root of the engine's overlay mount, the same layers are mounted
 * again as idmap_overlay() does, with every other option of the engine's mount (such as
 * volatile, index, xino) and a work directory of its own, "stockade-work" next to upper,
 * made afresh each time; an option that cannot be kept fails the call. Anything else gets
 * an ID-mapped recursive bind. userns_fd < 0: a plain recursive copy of the mount, for an
 * engine that mapped the container itself (its files are shifted already). */
/* The upper directory of the overlay whose root fd is (an O_PATH fd), in *ret: -ENOENT when
 * fd is not the root of an overlay mount or it has none. */
int idmap_overlay_upper(int fd, char **ret);

int idmap_rootfs(int userns_fd, int rootfs_fd, const char *rootfs, const char *target, char **reterr);
