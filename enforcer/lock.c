/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>

#include "lock.h"
#include "mount-util.h"
#include "util.h"

#define WATCH_EVENTS                                                                            \
        (IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_CREATE | \
         IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DONT_FOLLOW)

/* What an inspection finds wrong; bit i is named problem_names[i]. */
typedef enum Problem {
        PROBLEM_UNMOUNTED = 1u << 0,
        PROBLEM_READ_WRITE = 1u << 1,
        PROBLEM_IMMUTABLE = 1u << 2,
        PROBLEM_CONTENT = 1u << 3,
        PROBLEM_MODE = 1u << 4,
        PROBLEM_REMOVED = 1u << 5,
        PROBLEM_ADDED = 1u << 6,
        PROBLEM_INODE = 1u << 7,
} Problem;

static const char *const problem_names[] = {
        "unmounted", "remounted read-write", "immutable attribute cleared",
        "content replaced", "mode or owner changed", "removed",
        "entries added", "replaced by another file",
};

/* Problems repaired by rewriting the entry itself. */
#define PROBLEMS_REWRITE (PROBLEM_CONTENT | PROBLEM_MODE | PROBLEM_REMOVED | PROBLEM_INODE)
/* Problems that make a new inode of the entry. */
#define PROBLEMS_RECREATE (PROBLEM_REMOVED | PROBLEM_INODE)

/* How deep tree_remove() goes into what an attacker added. */
#define REMOVE_DEPTH_MAX 32

/* An entry is checked by what it is (its inode, type, owner, mode, content, attribute
 * and, for a directory, the names it holds), so tampering through any other path to the
 * same filesystem, such as a second bind mount of a parent, is found like any other. */
typedef struct LockEntry {
        char *path;        /* absolute */
        size_t parent;     /* index of the directory holding it; 0 for entries[0] */
        ino_t ino;
        mode_t mode;       /* file type and permissions */
        uid_t uid;
        gid_t gid;
        char *data;        /* regular files: the content; symlinks: the target */
        size_t size;
        int wd;            /* inotify watch of the lock's root and of directories, else -1 */
        unsigned problems; /* found by the last inspection */
} LockEntry;

typedef struct Lock {
        LockEntry *entries; /* entries[0] is the locked path, directories precede their content */
        size_t n_entries;
        char *parent;       /* watched too, to see the path replaced or removed */
        int wd_parent;
        LockState state;
        unsigned tamper_count;
        bool immutable;
} Lock;

struct LockSet {
        Lock *locks[LOCKS_MAX];
        size_t n_locks;
        int mountinfo_fd;
        int inotify_fd;
        int timer_fd;
        int epoll_fd;
};

static const char *lock_path(const Lock *l) {
        return l->entries[0].path;
}

static int first_error(int r, int q) {
        return r < 0 ? r : q < 0 ? q : r;
}

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static char *path_join(const char *dir, const char *name) {
        char *p;
        if (asprintf(&p, "%s%s%s", dir, streq(dir, "/") ? "" : "/", name) < 0)
                return NULL;
        return p;
}

static int fd_mount_id(int fd, uint64_t *ret) {
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0)
                return -errno;
        if (!(stx.stx_mask & STATX_MNT_ID))
                return -EOPNOTSUPP;
        *ret = stx.stx_mnt_id;
        return 0;
}

/* openat2() for a system where it answers ENOSYS: a seccomp filter that cannot read its
 * flags refuses it outright (systemd's RestrictSUIDSGID=, which the shipped unit sets).
 * The same resolution one component at a time, each step an O_PATH | O_NOFOLLOW open
 * relative to the fd of the step before, so no name is looked up twice and a symlink
 * swapped in at any moment is seen as one: RESOLVE_NO_SYMLINKS refuses a symlink (magic
 * links included) in any component but a trailing one opened O_PATH | O_NOFOLLOW, which
 * is the symlink itself, as openat2() does; RESOLVE_BENEATH refuses absolute paths and
 * ".." outright (stricter than openat2(), our paths have neither); RESOLVE_NO_XDEV
 * compares mount ids. The resolutions this file uses only: RESOLVE_NO_SYMLINKS is
 * required, and RESOLVE_NO_XDEV only with O_PATH (a final open that crossed a mount
 * must have had no effect before it is refused). */
static int open_walk(int dir_fd, const char *path, int flags, mode_t mode, uint64_t resolve) {
        if (!(resolve & RESOLVE_NO_SYMLINKS) || ((resolve & RESOLVE_NO_XDEV) && !(flags & O_PATH)) ||
            (resolve & ~(uint64_t) (RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV)))
                return -EINVAL;
        if (*path == '\0')
                return -ENOENT;
        bool absolute = *path == '/';
        if (absolute && (resolve & RESOLVE_BENEATH))
                return -EXDEV;

        _cleanup_close_ int cur = RET_NERRNO(absolute ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
                                                      : openat(dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (cur < 0)
                return cur;
        uint64_t mnt_id = 0;
        int r;
        if ((resolve & RESOLVE_NO_XDEV) && (r = fd_mount_id(cur, &mnt_id)) < 0)
                return r;

        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *p = copy;
        for (;;) {
                while (*p == '/')
                        p++;
                char *name = p;
                p += strcspn(p, "/");
                bool last = *p == '\0' || p[strspn(p, "/")] == '\0';
                *p = '\0';
                if (!last)
                        p++;
                if (*name == '\0')
                        /* "/" or "dir/": what the walk stands on is the result. */
                        return RET_NERRNO(openat(cur, ".", (flags & ~(O_CREAT | O_TRUNC)) | O_DIRECTORY, 0));
                if (streq(name, "..") && (resolve & RESOLVE_BENEATH))
                        return -EXDEV;

                _cleanup_close_ int next = RET_NERRNO(
                        last ? openat(cur, name, flags, mode) : openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
                if (next < 0)
                        return next;
                struct stat st;
                if (fstat(next, &st) < 0)
                        return -errno;
                if (!last && S_ISLNK(st.st_mode))
                        return -ELOOP;
                if (!last && !S_ISDIR(st.st_mode))
                        return -ENOTDIR;
                if (resolve & RESOLVE_NO_XDEV) {
                        uint64_t id;
                        r = fd_mount_id(next, &id);
                        if (r < 0)
                                return r;
                        if (id != mnt_id)
                                return -EXDEV;
                }
                if (last)
                        return TAKE_FD(next);
                safe_close(cur);
                cur = TAKE_FD(next);
        }
}

static int openat2_fd(int dir_fd, const char *path, int flags, mode_t mode, uint64_t resolve) {
        /* openat2() refuses O_PATH with other flags than these. */
        flags |= O_NOFOLLOW | O_CLOEXEC | (flags & O_PATH ? 0 : O_NOCTTY);
        struct open_how how = {
                .flags = (uint64_t) flags,
                .mode = flags & O_CREAT ? mode : 0,
                .resolve = resolve,
        };
        int r = RET_NERRNO((int) syscall(SYS_openat2, dir_fd, path, &how, sizeof(how)));
        if (r == -ENOSYS)
                return open_walk(dir_fd, path, flags, (mode_t) how.mode, resolve);
        return r;
}

/* Refuses symlinks in every component: an entry replaced by a symlink must not lead us to
 * read or write another file. With O_PATH a symlink itself is opened. */
static int open_entry(const char *path, int flags, mode_t mode) {
        return openat2_fd(AT_FDCWD, path, flags, mode, RESOLVE_NO_SYMLINKS);
}

/* Opens for reading what an O_PATH fd of a regular file or directory refers to, and
 * nothing else: no second lookup of its path. */
static int fd_reopen(int fd, mode_t type) {
        if (S_ISDIR(type))
                return RET_NERRNO(openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        return RET_NERRNO(open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
}

/* ---- /proc/self/mountinfo ---- */

static const MountEntry *mount_table_find(const MountTable *t, int id) {
        for (size_t i = 0; i < t->n; i++)
                if (t->entries[i].id == id)
                        return &t->entries[i];
        return NULL;
}

/* The mount visible at path: of the mounts stacked there, the one no other is mounted on. */
static const MountEntry *mount_table_top(const MountTable *t, const char *path) {
        for (size_t i = 0; i < t->n; i++) {
                const MountEntry *m = &t->entries[i];
                if (!streq(m->point, path))
                        continue;
                bool covered = false;
                for (size_t j = 0; j < t->n && !covered; j++)
                        covered = t->entries[j].parent == m->id && streq(t->entries[j].point, path);
                if (!covered)
                        return m;
        }
        return NULL;
}

/* Whether m shows what was at its mount point before it was mounted: the same filesystem
 * and, in it, the place its parent mount shows there. Tells our bind mount apart from
 * another file or filesystem mounted over the path. */
static bool mount_is_self_bind(const MountTable *t, const MountEntry *m) {
        const MountEntry *p = mount_table_find(t, m->parent);
        if (!p || p->major != m->major || p->minor != m->minor)
                return false;

        const char *rel = path_startswith(m->point, p->point);
        if (!rel)
                return false;
        if (*rel == '\0')
                return streq(m->root, p->root);
        size_t n = streq(p->root, "/") ? 0 : strlen(p->root);
        return strncmp(m->root, p->root, n) == 0 && m->root[n] == '/' && streq(m->root + n + 1, rel);
}

/* ---- mounts and attributes ---- */

static int mount_set_read_only(int dir_fd, const char *path, unsigned flags, bool read_only) {
        struct mount_attr attr = {
                .attr_set = read_only ? MOUNT_ATTR_RDONLY : 0,
                .attr_clr = read_only ? 0 : MOUNT_ATTR_RDONLY,
        };
        return RET_NERRNO(mount_setattr(dir_fd, path, flags, &attr, sizeof(attr)));
}

/* The clone is made read-only before it is attached, so it is never visible writable. */
static int mount_bind_read_only(const char *path) {
        _cleanup_close_ int fd = RET_NERRNO(
                open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
        if (fd < 0)
                return fd;
        int r = mount_set_read_only(fd, "", AT_EMPTY_PATH, true);
        if (r < 0)
                return r;
        return RET_NERRNO(move_mount(fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH));
}

static bool error_is_unsupported(int r) {
        return r == -ENOTTY || r == -EOPNOTSUPP;
}

static int fd_get_flags(int fd, int *ret) {
        return RET_NERRNO(ioctl(fd, FS_IOC_GETFLAGS, ret));
}

static int fd_clear_flags(int fd, int mask) {
        int flags;
        int r = fd_get_flags(fd, &flags);
        if (r < 0 || !(flags & mask))
                return r;
        flags &= ~mask;
        return RET_NERRNO(ioctl(fd, FS_IOC_SETFLAGS, &flags));
}

/* Removes name in dir_fd and all it holds, clearing the attributes that would keep it;
 * never follows a symlink or enters another mount. */
static int tree_remove(int dir_fd, const char *name, unsigned depth) {
        _cleanup_close_ int fd = openat2_fd(dir_fd, name, O_PATH, 0,
                                            RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;

        if (S_ISREG(st.st_mode)) {
                _cleanup_close_ int rfd = fd_reopen(fd, st.st_mode);
                if (rfd >= 0)
                        (void) fd_clear_flags(rfd, FS_IMMUTABLE_FL | FS_APPEND_FL);
        } else if (S_ISDIR(st.st_mode)) {
                if (depth >= REMOVE_DEPTH_MAX)
                        return -ELOOP;
                int dfd = fd_reopen(fd, st.st_mode);
                if (dfd < 0)
                        return dfd;
                (void) fd_clear_flags(dfd, FS_IMMUTABLE_FL | FS_APPEND_FL);
                _cleanup_(closedirp) DIR *d = fdopendir(dfd);
                if (!d) {
                        safe_close(dfd);
                        return -errno;
                }
                struct dirent *de;
                while ((errno = 0, de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                                int r = tree_remove(dirfd(d), de->d_name, depth + 1);
                                if (r < 0)
                                        return r;
                        }
                if (errno != 0)
                        return -errno;
        }
        return RET_NERRNO(unlinkat(dir_fd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0));
}

/* Symlinks carry no attributes. */
static int entry_set_immutable(const LockEntry *e, bool immutable) {
        if (S_ISLNK(e->mode))
                return 0;
        _cleanup_close_ int fd = open_entry(e->path, O_RDONLY | O_NONBLOCK, 0);
        if (fd < 0)
                return fd;
        int flags;
        int r = fd_get_flags(fd, &flags);
        if (r < 0 || !!(flags & FS_IMMUTABLE_FL) == immutable)
                return r;
        flags = immutable ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        return RET_NERRNO(ioctl(fd, FS_IOC_SETFLAGS, &flags));
}

/* ---- locks ---- */

static Lock *lock_free(Lock *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_entries; i++) {
                free(l->entries[i].path);
                free(l->entries[i].data);
        }
        free(l->entries);
        free(l->parent);
        free(l);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Lock, lock_free);

static const char *entry_name(const LockEntry *e) {
        return strrchr(e->path, '/') + 1;
}

/* The content of an entry open as fd (O_PATH) of the given type: a regular file's bytes
 * (-EFBIG beyond max), a symlink's target, nothing for a directory. */
static int entry_read(int fd, mode_t type, size_t max, char **ret, size_t *ret_size) {
        if (S_ISDIR(type)) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        if (S_ISREG(type)) {
                _cleanup_close_ int rfd = fd_reopen(fd, type);
                return rfd < 0 ? rfd : read_full_fd(rfd, max, ret, ret_size);
        }
        _cleanup_free_ char *target = malloc(PATH_MAX);
        if (!target)
                return -ENOMEM;
        ssize_t n = readlinkat(fd, "", target, PATH_MAX - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        *ret = TAKE_PTR(target);
        *ret_size = (size_t) n;
        return 0;
}

static int lock_add_entry(Lock *l, const char *path, size_t parent, char **reterr) {
        if (l->n_entries >= LOCK_ENTRIES_MAX)
                return error_set(reterr, -E2BIG, "'%s' holds more than %d files", lock_path(l), LOCK_ENTRIES_MAX);

        _cleanup_close_ int fd = open_entry(path, O_PATH, 0);
        if (fd < 0)
                return error_set(reterr, fd, "cannot open '%s': %s", path, strerror(-fd));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_set(reterr, -errno, "cannot stat '%s': %m", path);
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
                return error_set(reterr, -EINVAL, "'%s' is neither a regular file, a directory nor a symlink", path);

        LockEntry e = { .parent = parent, .ino = st.st_ino, .mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid, .wd = -1 };
        int r = entry_read(fd, st.st_mode, LOCK_FILE_MAX, &e.data, &e.size);
        if (r == -EFBIG)
                return error_set(reterr, r, "'%s' is larger than %u KiB", path, LOCK_FILE_MAX / 1024);
        if (r < 0)
                return error_set(reterr, r, "cannot read '%s': %s", path, strerror(-r));
        e.path = strdup(path);
        LockEntry *entries = realloc(l->entries, (l->n_entries + 1) * sizeof(LockEntry));
        if (!e.path || !entries) {
                free(e.path);
                free(e.data);
                if (entries)
                        l->entries = entries;
                return error_set(reterr, -ENOMEM, "out of memory");
        }
        l->entries = entries;
        l->entries[l->n_entries++] = e;
        return 0;
}

/* Everything below the directory entries[dir], which must all be on its filesystem. */
static int lock_add_directory(Lock *l, size_t dir, char **reterr) {
        const char *path = l->entries[dir].path;
        int fd = open_entry(path, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return error_set(reterr, fd, "cannot open '%s': %s", path, strerror(-fd));
        _cleanup_(closedirp) DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return error_set(reterr, -errno, "cannot read '%s': %m", path);
        }
        struct stat dir_st;
        if (fstat(fd, &dir_st) < 0)
                return error_set(reterr, -errno, "cannot stat '%s': %m", path);

        struct dirent *de;
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                _cleanup_free_ char *child = path_join(l->entries[dir].path, de->d_name);
                if (!child)
                        return error_set(reterr, -ENOMEM, "out of memory");
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return error_set(reterr, -errno, "cannot stat '%s': %m", child);
                if (st.st_dev != dir_st.st_dev)
                        return error_set(reterr, -EINVAL, "'%s' is another mount: a lock holds one filesystem", child);

                size_t index = l->n_entries;
                int r = lock_add_entry(l, child, dir, reterr);
                if (r >= 0 && S_ISDIR(st.st_mode))
                        r = lock_add_directory(l, index, reterr);
                if (r < 0)
                        return r;
        }
        if (errno != 0)
                return error_set(reterr, -errno, "cannot read '%s': %m", l->entries[dir].path);
        return 0;
}

static int lock_snapshot(const char *path, Lock **ret, char **reterr) {
        _cleanup_(lock_freep) Lock *l = calloc(1, sizeof(Lock));
        if (!l)
                return error_set(reterr, -ENOMEM, "out of memory");
        l->wd_parent = -1;
        const char *slash = strrchr(path, '/');
        l->parent = strndup(path, slash == path ? 1 : (size_t) (slash - path));
        if (!l->parent)
                return error_set(reterr, -ENOMEM, "out of memory");

        int r = lock_add_entry(l, path, 0, reterr);
        if (r < 0)
                return r;
        if (S_ISLNK(l->entries[0].mode))
                return error_set(reterr, -EINVAL, "'%s' is a symlink", path);
        if (S_ISDIR(l->entries[0].mode)) {
                r = lock_add_directory(l, 0, reterr);
                if (r < 0)
                        return r;
        }

        _cleanup_close_ int fd = open_entry(path, O_RDONLY | O_NONBLOCK, 0);
        int flags;
        r = fd < 0 ? fd : fd_get_flags(fd, &flags);
        if (r < 0 && !error_is_unsupported(r))
                return error_set(reterr, r, "cannot read the attributes of '%s': %s", path, strerror(-r));
        l->immutable = r >= 0;

        *ret = TAKE_PTR(l);
        return 0;
}

/* Whether the directory entries[dir] holds name in the snapshot. */
static bool lock_has_child(const Lock *l, size_t dir, const char *name) {
        for (size_t i = dir + 1; i < l->n_entries; i++)
                if (l->entries[i].parent == dir && streq(entry_name(&l->entries[i]), name))
                        return true;
        return false;
}

/* Whether the directory entries[dir], open as d, holds a name the snapshot does not. */
static bool lock_directory_has_additions(const Lock *l, size_t dir, DIR *d) {
        struct dirent *de;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && !lock_has_child(l, dir, de->d_name))
                        return true;
        return false;
}

/* What is wrong with the regular file or directory entries[i] (open as fd, O_PATH) beyond
 * its inode: its content, its names, its attribute. */
static unsigned entry_inspect_content(const Lock *l, size_t i, int fd) {
        const LockEntry *e = &l->entries[i];
        unsigned problems = 0;
        int rfd = fd_reopen(fd, e->mode);
        if (rfd < 0)
                return PROBLEM_CONTENT;

        int flags;
        if (l->immutable && (fd_get_flags(rfd, &flags) < 0 || !(flags & FS_IMMUTABLE_FL)))
                problems |= PROBLEM_IMMUTABLE;
        if (S_ISREG(e->mode)) {
                _cleanup_free_ char *data = NULL;
                size_t size;
                if (read_full_fd(rfd, e->size, &data, &size) < 0 || size != e->size || memcmp(data, e->data, size) != 0)
                        problems |= PROBLEM_CONTENT;
                safe_close(rfd);
                return problems;
        }

        _cleanup_(closedirp) DIR *d = fdopendir(rfd);
        if (!d) {
                safe_close(rfd);
                return problems | PROBLEM_CONTENT;
        }
        if (lock_directory_has_additions(l, i, d))
                problems |= PROBLEM_ADDED;
        return problems;
}

static unsigned entry_inspect(Lock *l, size_t i) {
        LockEntry *e = &l->entries[i];
        _cleanup_close_ int fd = open_entry(e->path, O_PATH, 0);
        struct stat st;
        if (fd == -ENOENT || fd == -ENOTDIR)
                return e->problems = PROBLEM_REMOVED;
        /* A symlink or anything else in its place. */
        if (fd < 0 || fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != (e->mode & S_IFMT))
                return e->problems = PROBLEM_CONTENT | PROBLEM_INODE;

        e->problems = st.st_ino != e->ino ? PROBLEM_INODE : 0;
        if ((st.st_mode & 07777) != (e->mode & 07777) || st.st_uid != e->uid || st.st_gid != e->gid)
                e->problems |= PROBLEM_MODE;
        if (S_ISLNK(e->mode)) {
                _cleanup_free_ char *target = NULL;
                size_t size;
                if (entry_read(fd, e->mode, 0, &target, &size) < 0 || !streq(target, e->data))
                        e->problems |= PROBLEM_CONTENT;
        } else
                e->problems |= entry_inspect_content(l, i, fd);
        return e->problems;
}

static unsigned lock_inspect(Lock *l, const MountTable *t) {
        unsigned problems = 0;
        const MountEntry *m = mount_table_top(t, lock_path(l));
        if (!m || !mount_is_self_bind(t, m))
                problems |= PROBLEM_UNMOUNTED;
        else if (!m->read_only)
                problems |= PROBLEM_READ_WRITE;

        for (size_t i = 0; i < l->n_entries; i++)
                problems |= entry_inspect(l, i);
        return problems;
}

/* The directory that holds entries[i]. */
static const char *entry_parent_path(const Lock *l, size_t i) {
        return i == 0 ? l->parent : l->entries[l->entries[i].parent].path;
}

static bool entry_is_below(const Lock *l, size_t i, size_t dir) {
        for (; i != 0; i = l->entries[i].parent)
                if (l->entries[i].parent == dir)
                        return true;
        return false;
}

/* Puts entries[i] back as snapshotted. What is in its place and is not its inode (another
 * file, a hard link to one, a symlink, a directory tree...) is removed first. */
static int entry_rewrite(Lock *l, size_t i) {
        LockEntry *e = &l->entries[i];
        int r;
        if ((e->problems & PROBLEMS_RECREATE) || S_ISLNK(e->mode)) {
                _cleanup_close_ int dir_fd = open_entry(entry_parent_path(l, i), O_RDONLY | O_DIRECTORY, 0);
                if (dir_fd < 0)
                        return dir_fd;
                r = tree_remove(dir_fd, entry_name(e), 0);
                if (r < 0 && r != -ENOENT)
                        return r;
        }

        struct stat st;
        if (S_ISLNK(e->mode)) {
                r = RET_NERRNO(symlink(e->data, e->path));
                if (r >= 0)
                        r = RET_NERRNO(lchown(e->path, e->uid, e->gid));
                if (r >= 0)
                        r = RET_NERRNO(lstat(e->path, &st));
                if (r >= 0)
                        e->ino = st.st_ino;
                return r;
        }
        if (S_ISDIR(e->mode)) {
                r = RET_NERRNO(mkdir(e->path, 0700));
                if (r < 0 && r != -EEXIST)
                        return r;
        }

        _cleanup_close_ int fd = S_ISDIR(e->mode) ? open_entry(e->path, O_RDONLY | O_DIRECTORY, 0)
                                                  : open_entry(e->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                return fd;
        r = S_ISREG(e->mode) ? write_all(fd, e->data, e->size) : 0;
        /* chown() first: it clears the set-id bits. */
        if (r >= 0)
                r = RET_NERRNO(fchown(fd, e->uid, e->gid));
        if (r >= 0)
                r = RET_NERRNO(fchmod(fd, e->mode & 07777));
        if (r >= 0)
                r = RET_NERRNO(fsync(fd));
        if (r >= 0)
                r = RET_NERRNO(fstat(fd, &st));
        if (r >= 0)
                e->ino = st.st_ino;
        return r;
}

/* Removes what the directory entries[dir] holds beyond the snapshot. */
static int lock_remove_additions(const Lock *l, size_t dir) {
        int fd = open_entry(l->entries[dir].path, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return fd;
        _cleanup_(closedirp) DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while ((errno = 0, de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && !lock_has_child(l, dir, de->d_name))
                        r = first_error(r, tree_remove(dirfd(d), de->d_name, 0));
        return errno != 0 ? first_error(r, -errno) : r;
}

static int lock_restore_entries(Lock *l) {
        int r = 0;
        /* Cleared everywhere first: an immutable directory refuses to get its entries back. */
        for (size_t i = 0; l->immutable && i < l->n_entries; i++)
                (void) entry_set_immutable(&l->entries[i], false);
        for (size_t i = 0; i < l->n_entries; i++) {
                LockEntry *e = &l->entries[i];
                if (e->problems & PROBLEM_ADDED)
                        r = first_error(r, lock_remove_additions(l, i));
                if (!(e->problems & PROBLEMS_REWRITE))
                        continue;
                /* A directory made anew holds nothing yet. */
                for (size_t j = i + 1; S_ISDIR(e->mode) && (e->problems & PROBLEMS_RECREATE) && j < l->n_entries; j++)
                        if (entry_is_below(l, j, i))
                                l->entries[j].problems |= PROBLEM_REMOVED;
                r = first_error(r, entry_rewrite(l, i));
        }
        for (size_t i = 0; l->immutable && i < l->n_entries; i++)
                r = first_error(r, entry_set_immutable(&l->entries[i], true));
        return r;
}

/* Idempotent, never stacks a mount on our own: entries are repaired through our mount,
 * made writable for the moment, or, if it is gone, in the filesystem below; then the
 * read-only mount is put back. */
static int lock_restore(Lock *l, unsigned problems) {
        const char *path = lock_path(l);
        bool mounted = !(problems & PROBLEM_UNMOUNTED);
        int r = 0;

        if (problems & (PROBLEMS_REWRITE | PROBLEM_IMMUTABLE | PROBLEM_ADDED)) {
                if (mounted)
                        r = mount_set_read_only(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, false);
                if (r >= 0)
                        r = lock_restore_entries(l);
        }
        return first_error(r, mounted ? mount_set_read_only(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, true)
                                       : mount_bind_read_only(path));
}

static void problems_format(unsigned problems, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(problem_names) && n < size; i++)
                if (problems & (1u << i))
                        n += (size_t) snprintf(buf + n, size - n, "%s%s", n > 0 ? ", " : "", problem_names[i]);
}

/* ---- watches ---- */

static bool lockset_watches(const LockSet *s, int wd) {
        for (size_t i = 0; i < s->n_locks; i++) {
                const Lock *l = s->locks[i];
                if (l->wd_parent == wd)
                        return true;
                for (size_t j = 0; j < l->n_entries; j++)
                        if (l->entries[j].wd == wd)
                                return true;
        }
        return false;
}

/* Watches are shared by locks in the same directory, so one is removed only when no lock uses it. */
static void lockset_unwatch(LockSet *s, int *wd) {
        int old = *wd;
        *wd = -1;
        if (old >= 0 && !lockset_watches(s, old))
                (void) inotify_rm_watch(s->inotify_fd, old);
}

/* Adding a watch again is cheap and follows a replaced file to its new inode. */
static int lockset_watch_path(LockSet *s, int *wd, const char *path) {
        int old = *wd;
        int r = RET_NERRNO(inotify_add_watch(s->inotify_fd, path, WATCH_EVENTS));
        *wd = r < 0 ? -1 : r;
        if (old != *wd)
                lockset_unwatch(s, &old);
        return r < 0 ? r : 0;
}

static bool entry_is_watched(const Lock *l, size_t i) {
        return i == 0 || S_ISDIR(l->entries[i].mode);
}

static int lockset_watch(LockSet *s, Lock *l) {
        int r = lockset_watch_path(s, &l->wd_parent, l->parent);
        for (size_t i = 0; i < l->n_entries; i++)
                if (entry_is_watched(l, i))
                        r = first_error(r, lockset_watch_path(s, &l->entries[i].wd, l->entries[i].path));
        return r;
}

static void lockset_unwatch_lock(LockSet *s, Lock *l) {
        lockset_unwatch(s, &l->wd_parent);
        for (size_t i = 0; i < l->n_entries; i++)
                lockset_unwatch(s, &l->entries[i].wd);
}

/* ---- the set ---- */

LockSet *lockset_free(LockSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_locks; i++)
                lock_free(s->locks[i]);
        safe_close(s->epoll_fd);
        safe_close(s->timer_fd);
        safe_close(s->inotify_fd);
        safe_close(s->mountinfo_fd);
        free(s);
        return NULL;
}

/* The next check is due one interval after this one; setting the timer also clears it. */
static int lockset_arm_timer(LockSet *s) {
        struct timespec interval = {
                .tv_sec = LOCK_CHECK_INTERVAL_MS / 1000,
                .tv_nsec = LOCK_CHECK_INTERVAL_MS % 1000 * 1000000L,
        };
        struct itimerspec its = { .it_value = interval, .it_interval = interval };
        return RET_NERRNO(timerfd_settime(s->timer_fd, 0, &its, NULL));
}

int lockset_new(LockSet **ret) {
        _cleanup_(lockset_freep) LockSet *s = calloc(1, sizeof(LockSet));
        if (!s)
                return -ENOMEM;
        s->mountinfo_fd = s->inotify_fd = s->timer_fd = s->epoll_fd = -EBADF;

        s->mountinfo_fd = RET_NERRNO(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        if (s->mountinfo_fd < 0)
                return s->mountinfo_fd;
        s->inotify_fd = RET_NERRNO(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
        if (s->inotify_fd < 0)
                return s->inotify_fd;
        s->timer_fd = RET_NERRNO(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
        if (s->timer_fd < 0)
                return s->timer_fd;
        s->epoll_fd = RET_NERRNO(epoll_create1(EPOLL_CLOEXEC));
        if (s->epoll_fd < 0)
                return s->epoll_fd;

        /* mountinfo is always readable; a changed mount table is signalled by POLLPRI. */
        struct epoll_event in = { .events = EPOLLIN }, pri = { .events = EPOLLPRI };
        int r = RET_NERRNO(epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->inotify_fd, &in));
        if (r >= 0)
                r = RET_NERRNO(epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->timer_fd, &in));
        if (r >= 0)
                r = RET_NERRNO(epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->mountinfo_fd, &pri));
        if (r >= 0)
                r = lockset_arm_timer(s);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int lockset_fd(const LockSet *s) {
        return s->epoll_fd;
}

static int lockset_find(const LockSet *s, const char *path) {
        /* A removed file has no canonical path any more; then path must be the canonical one. */
        _cleanup_free_ char *canonical = realpath(path, NULL);
        for (size_t i = 0; i < s->n_locks; i++)
                if (streq(lock_path(s->locks[i]), path) || (canonical && streq(lock_path(s->locks[i]), canonical)))
                        return (int) i;
        return -ENOENT;
}

int lockset_add(LockSet *s, const char *path, char **reterr) {
        if (path[0] != '/')
                return error_set(reterr, -EINVAL, "'%s' is not an absolute path", path);
        if (strlen(path) >= PATH_MAX)
                return error_set(reterr, -ENAMETOOLONG, "path is longer than %d bytes", PATH_MAX - 1);
        if (s->n_locks >= LOCKS_MAX)
                return error_set(reterr, -E2BIG, "cannot lock '%s': %d paths are locked already", path, LOCKS_MAX);

        _cleanup_free_ char *canonical = realpath(path, NULL);
        if (!canonical && errno == ENOENT)
                return error_set(reterr, -ENOENT, "'%s' does not exist", path);
        if (!canonical)
                return error_set(reterr, -errno, "cannot resolve '%s': %m", path);
        if (streq(canonical, "/"))
                return error_set(reterr, -EINVAL, "cannot lock '/'");
        for (size_t i = 0; i < s->n_locks; i++) {
                const char *other = lock_path(s->locks[i]);
                if (streq(other, canonical))
                        return error_set(reterr, -EEXIST, "'%s' is locked already", canonical);
                /* One bind mount would hide the other. */
                if (path_startswith(canonical, other) || path_startswith(other, canonical))
                        return error_set(reterr, -EBUSY, "'%s' overlaps the lock on '%s'", canonical, other);
        }

        _cleanup_(lock_freep) Lock *l = NULL;
        int r = lock_snapshot(canonical, &l, reterr);
        if (r < 0)
                return r;

        _cleanup_(mount_table_done) MountTable t = {};
        r = mount_table_read(s->mountinfo_fd, &t);
        if (r < 0)
                return error_set(reterr, r, "cannot read the mount table: %s", strerror(-r));
        /* Adopting a lock that is in place already is an inspection that finds nothing. */
        unsigned problems = lock_inspect(l, &t);
        r = problems ? lock_restore(l, problems) : 0;
        if (r < 0)
                return error_set(reterr, r, "cannot lock '%s': %s", canonical, strerror(-r));

        s->locks[s->n_locks++] = l;
        r = lockset_watch(s, l);
        if (r < 0) {
                lockset_unwatch_lock(s, l);
                s->n_locks--;
                return error_set(reterr, r, "cannot watch '%s': %s", canonical, strerror(-r));
        }
        TAKE_PTR(l);
        return 0;
}

static int lockset_unmount(const LockSet *s, const char *path) {
        /* Ours, and copies of it stacked on top (each round removes one mount). */
        for (;;) {
                _cleanup_(mount_table_done) MountTable t = {};
                int r = mount_table_read(s->mountinfo_fd, &t);
                if (r < 0)
                        return r;
                const MountEntry *m = mount_table_top(&t, path);
                if (!m || !mount_is_self_bind(&t, m))
                        return 0;
                r = RET_NERRNO(umount2(path, UMOUNT_NOFOLLOW));
                if (r < 0)
                        return r;
        }
}

int lockset_remove(LockSet *s, const char *path) {
        int i = lockset_find(s, path);
        if (i < 0)
                return i;
        Lock *l = s->locks[i];

        int r = lockset_unmount(s, lock_path(l));
        if (r < 0)
                return r;
        for (size_t j = 0; l->immutable && j < l->n_entries; j++) {
                int q = entry_set_immutable(&l->entries[j], false);
                if (q != -ENOENT)
                        r = first_error(r, q);
        }

        lockset_unwatch_lock(s, l);
        memmove(&s->locks[i], &s->locks[i + 1], (s->n_locks - (size_t) i - 1) * sizeof(Lock *));
        s->n_locks--;
        lock_free(l);
        return r;
}

static void lockset_drain(LockSet *s) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        while (read(s->inotify_fd, buf, sizeof(buf)) > 0)
                ;
        (void) lockset_arm_timer(s);
        /* Polling mountinfo consumes its POLLPRI. */
        struct epoll_event events[3];
        (void) epoll_wait(s->epoll_fd, events, ELEMENTSOF(events), 0);
}

/* The lock's state machine, fed with one inspection: 1 if it was repaired, 0 if it was
 * fine, -errno if the repair failed. A failed repair is reported once, when the lock
 * turns LOCK_TAMPERED, and retried on every check. */
static int lockset_check_lock(LockSet *s, Lock *l, const MountTable *t, LockReportFn report, void *userdata) {
        unsigned problems = lock_inspect(l, t);
        if (problems == 0) {
                l->state = LOCK_LOCKED;
                return lockset_watch(s, l);
        }

        int r = lock_restore(l, problems);
        r = first_error(r, lockset_watch(s, l));
        bool fresh = l->state == LOCK_LOCKED;
        if (fresh)
                l->tamper_count++;
        if (report && (fresh || r >= 0)) {
                char what[256];
                problems_format(problems, what, sizeof(what));
                report(lock_path(l), what, r < 0 ? r : 0, userdata);
        }
        l->state = r < 0 ? LOCK_TAMPERED : LOCK_LOCKED;
        return r < 0 ? r : 1;
}

int lockset_check(LockSet *s, LockReportFn report, void *userdata) {
        /* Drained first: whatever happens from now on makes the fd readable again. */
        lockset_drain(s);

        _cleanup_(mount_table_done) MountTable t = {};
        int r = mount_table_read(s->mountinfo_fd, &t);
        if (r < 0)
                return r;

        int repaired = 0, error = 0;
        for (size_t i = 0; i < s->n_locks; i++) {
                r = lockset_check_lock(s, s->locks[i], &t, report, userdata);
                if (r > 0)
                        repaired++;
                error = first_error(error, r);
        }
        return error < 0 ? error : repaired;
}

int lockset_get(const LockSet *s, size_t i, LockInfo *ret) {
        if (i >= s->n_locks)
                return -ENOENT;
        const Lock *l = s->locks[i];
        *ret = (LockInfo) {
                .path = lock_path(l),
                .state = l->state,
                .tamper_count = l->tamper_count,
                .immutable = l->immutable,
        };
        return 0;
}
