/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "mount-util.h"
#include "source.h"
#include "util.h"

int source_open(const char *path, int *ret_fd) {
        if (!path || path[0] == '\0')
                return -ENOENT;
        int fd = RET_NERRNO(open(path, O_PATH | O_CLOEXEC));
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

int source_id(int fd, SourceId *ret) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_MNT_ID, &sx) < 0)
                return -errno;
        if (!(sx.stx_mask & STATX_MNT_ID))
                return -EOPNOTSUPP;
        *ret = (SourceId) {
                .dev = makedev(sx.stx_dev_major, sx.stx_dev_minor),
                .ino = sx.stx_ino,
                .mnt_id = sx.stx_mnt_id,
                .mount_root = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT),
        };
        return 0;
}

bool source_same(const SourceId *a, const SourceId *b) {
        return a->dev == b->dev && a->ino == b->ino && a->mnt_id == b->mnt_id;
}

int source_name(int fd, char **ret) {
        char link[64], buf[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        if ((size_t) n >= sizeof(buf) - 1)
                return -ENAMETOOLONG;
        buf[n] = '\0';
        if (buf[0] != '/')
                return -EXDEV;
        char *s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Opens rel below dir_fd one component at a time, never following a symlink or "..". */
static int walk(int dir_fd, const char *rel, int *ret_fd) {
        _cleanup_free_ char *copy = strdup(rel);
        if (!copy)
                return -ENOMEM;
        _cleanup_close_ int cur = RET_NERRNO(fcntl(dir_fd, F_DUPFD_CLOEXEC, 3));
        if (cur < 0)
                return cur;
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (streq(c, "..") || streq(c, "."))
                        return -EXDEV;
                int next = RET_NERRNO(openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC));
                if (next < 0)
                        return next;
                safe_close(cur);
                cur = next;
        }
        *ret_fd = TAKE_FD(cur);
        return 0;
}

int source_below(int fd, const char *dir) {
        _cleanup_close_ int dir_fd = RET_NERRNO(open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (dir_fd == -ENOENT || dir_fd == -ENOTDIR)
                return 0;
        if (dir_fd < 0)
                return dir_fd;
        _cleanup_free_ char *name = NULL, *dir_name = NULL;
        int r = source_name(fd, &name);
        if (r >= 0)
                r = source_name(dir_fd, &dir_name);
        if (r == -EXDEV)
                return 0;
        if (r < 0)
                return r;
        const char *rel = path_startswith(name, dir_name);
        if (!rel)
                return 0;

        _cleanup_close_ int walked = -EBADF;
        SourceId a, b;
        if (walk(dir_fd, rel, &walked) < 0)
                return 0; /* the tree changed under us: not proven below */
        if ((r = source_id(fd, &a)) < 0 || (r = source_id(walked, &b)) < 0)
                return r;
        return source_same(&a, &b);
}

int source_holds(int fd, const char *dir) {
        SourceId me, cur, up;
        int r = source_id(fd, &me);
        if (r < 0)
                return r;
        _cleanup_close_ int d = RET_NERRNO(open(dir, O_PATH | O_CLOEXEC));
        if (d == -ENOENT || d == -ENOTDIR)
                return 0;
        if (d < 0)
                return d;
        if ((r = source_id(d, &cur)) < 0)
                return r;
        struct stat st;
        if (fstat(d, &st) < 0)
                return -errno;
        for (;;) {
                if (cur.dev == me.dev && cur.ino == me.ino)
                        return 1;
                /* A file (a socket) has no "..": its directory is the one named before it. */
                _cleanup_free_ char *copy = S_ISDIR(st.st_mode) ? NULL : strdup(dir);
                if (!S_ISDIR(st.st_mode) && !copy)
                        return -ENOMEM;
                int parent = RET_NERRNO(copy ? open(dirname(copy), O_PATH | O_DIRECTORY | O_CLOEXEC) : openat(d, "..", O_PATH | O_CLOEXEC));
                st.st_mode = S_IFDIR;
                if (parent < 0)
                        return parent;
                safe_close(d);
                d = parent;
                if ((r = source_id(d, &up)) < 0)
                        return r;
                if (source_same(&up, &cur)) /* "/" is its own parent */
                        return 0;
                cur = up;
        }
}

int source_origin(int fd, int *ret_fd, char *fstype, size_t fstype_size) {
        SourceId id;
        _cleanup_free_ char *name = NULL;
        int r = source_id(fd, &id);
        if (r >= 0)
                r = source_name(fd, &name);
        if (r < 0)
                return r;
        _cleanup_close_ int mountinfo = RET_NERRNO(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        if (mountinfo < 0)
                return mountinfo;
        _cleanup_(mount_table_done) MountTable t = {};
        if ((r = mount_table_read(mountinfo, &t)) < 0)
                return r;

        const MountEntry *e = NULL;
        for (size_t i = 0; i < t.n && !e; i++)
                if ((uint64_t) t.entries[i].id == id.mnt_id)
                        e = &t.entries[i];
        const char *inside = e ? path_startswith(name, e->point) : NULL;
        if (!inside)
                return -ENOENT;
        snprintf(fstype, fstype_size, "%s", e->fstype);
        /* The object's path within its filesystem, then the same path in every other mount
         * of that filesystem that shows it. */
        _cleanup_free_ char *in_fs = NULL;
        if (asprintf(&in_fs, "%s/%s", streq(e->root, "/") ? "" : e->root, inside) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < t.n; i++) {
                const MountEntry *f = &t.entries[i];
                const char *rest = f != e && f->major == e->major && f->minor == e->minor ? path_startswith(in_fs, f->root) : NULL;
                if (!rest)
                        continue;
                _cleanup_free_ char *candidate = NULL;
                if (asprintf(&candidate, "%s/%s", streq(f->point, "/") ? "" : f->point, rest) < 0)
                        return -ENOMEM;
                _cleanup_close_ int o = RET_NERRNO(open(candidate, O_PATH | O_NOFOLLOW | O_CLOEXEC));
                SourceId oid;
                if (o >= 0 && source_id(o, &oid) >= 0 && oid.dev == id.dev && oid.ino == id.ino && oid.mnt_id == (uint64_t) f->id) {
                        *ret_fd = TAKE_FD(o);
                        return 1;
                }
        }
        *ret_fd = -EBADF;
        return 0;
}
