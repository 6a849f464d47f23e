/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>

#include "helper.h"
#include "idmap.h"
#include "mount-util.h"
#include "source.h"
#include "util.h"

/* overlayfs stacks at most 500 layers. */
#define OVERLAY_LOWER_MAX 500
/* Rounds of unmounting before giving up on mounts that keep reappearing (propagation). */
#define TEARDOWN_ROUNDS 8

/* ---- ID-mapped copies of mount trees ---- */

/* Clones the mount tree at source_fd (an open source, then path only names it) or else at path. */
static int idmap_clone(int userns_fd, int source_fd, const char *path, bool recursive, bool read_only, int *ret_fd,
                       char **reterr) {
        unsigned recursion = recursive ? AT_RECURSIVE : 0;
        _cleanup_close_ int fd = RET_NERRNO(
                source_fd >= 0 ? open_tree(source_fd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursion)
                               : open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursion));
        if (fd == -ENOENT)
                return error_set(reterr, fd, "'%s' does not exist", path);
        if (fd < 0)
                return error_set(reterr, fd, "cannot copy the mount at '%s': %s", path, strerror(-fd));

        /* No user namespace: a plain copy (for an engine that mapped the container itself). */
        struct mount_attr attr = {
                .attr_set = (userns_fd >= 0 ? MOUNT_ATTR_IDMAP : 0) | (read_only ? MOUNT_ATTR_RDONLY : 0),
                .userns_fd = userns_fd >= 0 ? (uint64_t) userns_fd : 0,
        };
        int r = attr.attr_set ? RET_NERRNO(mount_setattr(fd, "", AT_EMPTY_PATH | recursion, &attr, sizeof(attr))) : 0;
        if (r < 0)
                return error_set(reterr, r, "cannot ID-map the mount at '%s': %s", path, strerror(-r));
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int mount_point_create(int dir_fd, const char *name, bool directory) {
        return RET_NERRNO(directory ? mkdirat(dir_fd, name, 0755) : mknodat(dir_fd, name, S_IFREG | 0644, 0));
}

/* A missing mount point is created as what will be mounted there. */
static int mount_point_make(const char *path, bool directory, char **reterr) {
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *dir = !slash         ? strdup(".")
                                   : slash == path ? strdup("/")
                                                   : strndup(path, (size_t) (slash - path));
        const char *name = slash ? slash + 1 : path;
        if (!dir)
                return error_set(reterr, -ENOMEM, "out of memory");
        _cleanup_close_ int dir_fd = RET_NERRNO(open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
        int r = dir_fd < 0 ? dir_fd : mount_point_create(dir_fd, name, directory);
        struct stat st;
        if (r == -EOVERFLOW && fstat(dir_fd, &st) >= 0) {
                /* We are outside the mapping of an ID-mapped mount, such as a container's
                 * rootfs: the directory's owner is inside. Only this thread is switched. */
                uid_t uid = (uid_t) setfsuid(st.st_uid);
                gid_t gid = (gid_t) setfsgid(st.st_gid);
                r = mount_point_create(dir_fd, name, directory);
                (void) setfsgid(gid);
                (void) setfsuid(uid);
        }
        if (r < 0 && r != -EEXIST)
                return error_set(reterr, r, "cannot create the mount point '%s': %s", path, strerror(-r));
        return 0;
}

static int mount_attach(int fd, const char *target, char **reterr) {
        int r = RET_NERRNO(move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH));
        if (r < 0)
                return error_set(reterr, r, "cannot mount on '%s': %s", target, strerror(-r));
        return 0;
}

int idmap_bind(int userns_fd, int source_fd, const char *source, const char *target, bool recursive, bool read_only,
               char **reterr) {
        _cleanup_close_ int fd = -EBADF;
        int r = idmap_clone(userns_fd, source_fd, source, recursive, read_only, &fd, reterr);
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_set(reterr, -errno, "cannot stat '%s': %m", source);
        r = mount_point_make(target, S_ISDIR(st.st_mode), reterr);
        if (r < 0)
                return r;
        return mount_attach(fd, target, reterr);
}

/* ---- user namespaces ---- */

static void userns_helper(int socket, const void *userdata) {
        if (unshare(CLONE_NEWUSER) < 0)
                helper_fail(socket, -errno, "cannot create a user namespace: %m");
        helper_send(socket, -EBADF, 0, "");
        /* Keeps the namespace alive until the caller has opened it, then is killed. */
        char c;
        (void) recv(socket, &c, 1, 0);
}

static int proc_write(pid_t pid, const char *file, const char *text) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        _cleanup_close_ int fd = RET_NERRNO(open(path, O_WRONLY | O_CLOEXEC));
        if (fd < 0)
                return fd;
        /* A map must be written in one write(). */
        ssize_t n = write(fd, text, strlen(text));
        if (n < 0)
                return -errno;
        return (size_t) n == strlen(text) ? 0 : -EIO;
}

int idmap_userns_open(uint32_t base, uint32_t count, int *ret_fd, char **reterr) {
        /* (uid_t) -1 is no uid. */
        if (count == 0 || base > UINT32_MAX - count)
                return error_set(reterr, -EINVAL, "invalid ID range: %" PRIu32 " IDs from %" PRIu32, count,
                                 base);

        _cleanup_(helper_done) Helper h = HELPER_NULL;
        int r = helper_start(userns_helper, NULL, &h);
        if (r < 0)
                return error_set(reterr, r, "cannot fork a helper: %s", strerror(-r));
        r = helper_wait(&h, IDMAP_HELPER_TIMEOUT_MS, "user namespace", NULL, reterr);
        if (r < 0)
                return r;

        /* The caller is privileged in the parent namespace, so setgroups need not be denied. */
        char map[64];
        snprintf(map, sizeof(map), "0 %" PRIu32 " %" PRIu32 "\n", base, count);
        static const char *const maps[] = { "uid_map", "gid_map" };
        for (size_t i = 0; i < ELEMENTSOF(maps); i++) {
                r = proc_write(h.pid, maps[i], map);
                if (r < 0)
                        return error_set(reterr, r, "cannot write the %s of the user namespace: %s", maps[i],
                                         strerror(-r));
        }

        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) h.pid);
        int fd = RET_NERRNO(open(path, O_RDONLY | O_CLOEXEC));
        if (fd < 0)
                return error_set(reterr, fd, "cannot open the user namespace: %s", strerror(-fd));
        *ret_fd = fd;
        return 0;
}

/* ---- overlays ---- */

/* Where the overlay helper, in its private mount namespace, attaches the layers. */
#define OVERLAY_SCRATCH "/tmp"

typedef struct OverlaySpec {
        int userns_fd;
        char **layers; /* canonical: [0] the directory of upper and work, then the lower ones */
        size_t n_layers;
        char *upper, *work; /* canonical */
        char **options; /* not owned: other overlay options, "key" or "key=value" */
        size_t n_options;
} OverlaySpec;

static void overlay_spec_done(OverlaySpec *s) {
        for (size_t i = 0; i < s->n_layers; i++)
                free(s->layers[i]);
        free(s->layers);
        free(s->upper);
        free(s->work);
}

static int path_canonicalize(const char *path, char **ret, char **reterr) {
        char *p = realpath(path, NULL);
        if (!p && errno == ENOENT)
                return error_set(reterr, -ENOENT, "'%s' does not exist", path);
        if (!p)
                return error_set(reterr, -errno, "cannot resolve '%s': %m", path);
        *ret = p;
        return 0;
}

static int overlay_spec_init(OverlaySpec *s, const char *const *lower, size_t n_lower, const char *upper,
                             const char *work, char **reterr) {
        if (n_lower == 0 || n_lower > OVERLAY_LOWER_MAX)
                return error_set(reterr, -EINVAL, "an overlay needs 1 to %d lower layers, not %zu",
                                 OVERLAY_LOWER_MAX, n_lower);
        s->layers = calloc(n_lower + 1, sizeof(char *));
        if (!s->layers)
                return error_set(reterr, -ENOMEM, "out of memory");

        int r = path_canonicalize(upper, &s->upper, reterr);
        if (r >= 0)
                r = path_canonicalize(work, &s->work, reterr);
        if (r < 0)
                return r;
        char *slash_upper = strrchr(s->upper, '/'), *slash_work = strrchr(s->work, '/');
        size_t n = (size_t) (slash_upper - s->upper);
        if (n == 0 || n != (size_t) (slash_work - s->work) || strncmp(s->upper, s->work, n) != 0)
                return error_set(reterr, -EINVAL, "upper '%s' and work '%s' must be in the same directory, not '/'",
                                 upper, work);
        s->layers[0] = strndup(s->upper, n);
        if (!s->layers[0])
                return error_set(reterr, -ENOMEM, "out of memory");
        s->n_layers = 1;

        for (size_t i = 0; i < n_lower; i++) {
                r = path_canonicalize(lower[i], &s->layers[i + 1], reterr);
                if (r < 0)
                        return r;
                s->n_layers++;
        }
        for (size_t i = 0; i < s->n_layers; i++) {
                struct stat st;
                if (stat(s->layers[i], &st) < 0)
                        return error_set(reterr, -errno, "cannot access overlay layer '%s': %m", s->layers[i]);
                if (!S_ISDIR(st.st_mode))
                        return error_set(reterr, -ENOTDIR, "overlay layer '%s' is not a directory", s->layers[i]);
        }
        return 0;
}

/* In the overlay helper: fails with the kernel's own words on why, if it left any. */
_noreturn_ _printf_(4, 5) static void overlay_helper_fail(int socket, int fs_fd, int error,
                                                          const char *format, ...) {
        char what[PATH_MAX + 64], message[256];
        va_list ap;
        va_start(ap, format);
        vsnprintf(what, sizeof(what), format, ap);
        va_end(ap);
        const char *m = fs_context_message(fs_fd, message, sizeof(message));
        helper_fail(socket, error, "cannot %s: %s%s%s%s", what, strerror(-error), *m ? " (" : "", m,
                    *m ? ")" : "");
}

static void overlay_helper(int socket, const void *userdata) {
        const OverlaySpec *s = userdata;
        _cleanup_free_ char *error = NULL;
        int r;

        /* Private: the ID-mapped layers must not propagate back to the caller. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                helper_fail(socket, -errno, "cannot create a private mount namespace: %m");

        /* The layers' own directories may not be traversable by the container's root (the
         * engine's data root is 0710), so the ID-mapped layers are attached below a fresh
         * tmpfs in this private namespace, as OVERLAY_SCRATCH/0 (upper and work's directory),
         * /1, /2 ... (the lower ones). All are cloned before the tmpfs hides anything. */
        _cleanup_free_ int *fds = calloc(s->n_layers, sizeof(int));
        if (!fds)
                helper_fail(socket, -ENOMEM, "out of memory");
        for (size_t i = 0; i < s->n_layers; i++) {
                r = idmap_clone(s->userns_fd, -EBADF, s->layers[i], false, i > 0, &fds[i], &error);
                if (r < 0)
                        helper_fail(socket, r, "%s", error);
        }
        if (mount("tmpfs", OVERLAY_SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                helper_fail(socket, -errno, "cannot mount a scratch tmpfs: %m");
        for (size_t i = 0; i < s->n_layers; i++) {
                char path[64];
                snprintf(path, sizeof(path), OVERLAY_SCRATCH "/%zu", i);
                if (mkdir(path, 0755) < 0)
                        helper_fail(socket, -errno, "cannot create '%s': %m", path);
                r = mount_attach(fds[i], path, &error);
                if (r < 0)
                        helper_fail(socket, r, "%s", error);
        }
        char upper[PATH_MAX], work[PATH_MAX];
        snprintf(upper, sizeof(upper), OVERLAY_SCRATCH "/0/%s", strrchr(s->upper, '/') + 1);
        snprintf(work, sizeof(work), OVERLAY_SCRATCH "/0/%s", strrchr(s->work, '/') + 1);

        /* setns() keeps our uid, the VM's root, which the mapping does not cover; the
         * overlay's mounter must be inside it to create the work directory. setgroups()
         * fails harmlessly in a namespace where it is denied. */
        if (setns(s->userns_fd, CLONE_NEWUSER) < 0)
                helper_fail(socket, -errno, "cannot join the user namespace: %m");
        (void) setgroups(0, NULL);
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                helper_fail(socket, -errno, "cannot become root of the user namespace: %m");
        /* fsopen() wants the mount namespace owned by our user namespace. */
        if (unshare(CLONE_NEWNS) < 0)
                helper_fail(socket, -errno, "cannot create a mount namespace in the user namespace: %m");

        _cleanup_close_ int fs = RET_NERRNO(fsopen("overlay", FSOPEN_CLOEXEC));
        if (fs < 0)
                helper_fail(socket, fs, "cannot create an overlay: %s", strerror(-fs));
        /* "lowerdir+" (one layer a call) is Linux 6.8's; before it, "lowerdir" is one value of
         * at most 255 bytes. The layers' short names, relative to the scratch directory, fit
         * that for up to 87 layers, which every kernel takes; more need "lowerdir+". */
        char lower[256] = "";
        size_t length = 0;
        for (size_t i = 1; i < s->n_layers && length < sizeof(lower); i++)
                length += (size_t) snprintf(lower + length, sizeof(lower) - length, "%s%zu", i > 1 ? ":" : "", i);
        if (length < sizeof(lower)) {
                if (chdir(OVERLAY_SCRATCH) < 0)
                        helper_fail(socket, -errno, "cannot enter '%s': %m", OVERLAY_SCRATCH);
                if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0)
                        overlay_helper_fail(socket, fs, -errno, "use the %zu lower layers", s->n_layers - 1);
        } else
                for (size_t i = 1; i < s->n_layers; i++) {
                        char path[64];
                        snprintf(path, sizeof(path), OVERLAY_SCRATCH "/%zu", i);
                        if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", path, 0) < 0)
                                overlay_helper_fail(socket, fs, -errno, "use '%s' as a lower layer (more than 87 layers need Linux 6.8)",
                                                    s->layers[i]);
                }
        if (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0)
                overlay_helper_fail(socket, fs, -errno, "use '%s' as the upper layer", s->upper);
        if (fsconfig(fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0)
                overlay_helper_fail(socket, fs, -errno, "use '%s' as the work directory", s->work);
        /* trusted.* xattrs need the initial user namespace. */
        if (fsconfig(fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
                overlay_helper_fail(socket, fs, -errno, "set the overlay option userxattr");
        bool read_only = false;
        char kept[1024] = "";
        for (size_t i = 0; i < s->n_options; i++) {
                char key[64];
                const char *value = strchr(s->options[i], '=');
                size_t n = value ? (size_t) (value - s->options[i]) : strlen(s->options[i]);
                snprintf(key, sizeof(key), "%.*s", (int) n, s->options[i]);
                if (fsconfig(fs, value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, value ? value + 1 : NULL, 0) < 0)
                        overlay_helper_fail(socket, fs, -errno, "keep the overlay option '%s'", s->options[i]);
                read_only |= streq(key, "ro");
                size_t used = strlen(kept);
                snprintf(kept + used, sizeof(kept) - used, "%s%s", used ? "," : "", s->options[i]);
        }
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                overlay_helper_fail(socket, fs, -errno, "create the overlay with the options '%s' of the engine's (see the kernel log)", kept);
        _cleanup_close_ int mnt = RET_NERRNO(fsmount(fs, FSMOUNT_CLOEXEC, 0));
        if (mnt < 0)
                overlay_helper_fail(socket, fs, mnt, "mount the overlay");
        /* Where the layers refuse our writes, overlayfs falls back to read-only, saying so
         * only in the kernel log. */
        struct statvfs sv;
        if (fstatvfs(mnt, &sv) < 0)
                helper_fail(socket, -errno, "cannot check the overlay: %m");
        if ((sv.f_flag & ST_RDONLY) && !read_only)
                helper_fail(socket, -EROFS,
                            "the overlay came up read-only: upper '%s' is not writable through the mapping "
                            "(see the kernel log)", s->upper);
        helper_send(socket, mnt, 0, "");
}

static int overlay_mount(int userns_fd, const char *const *lower, size_t n_lower, const char *upper, const char *work,
                         char **options, size_t n_options, const char *target, char **reterr) {
        _cleanup_(overlay_spec_done) OverlaySpec s = { .userns_fd = userns_fd, .options = options, .n_options = n_options };
        int r = overlay_spec_init(&s, lower, n_lower, upper, work, reterr);
        if (r < 0)
                return r;
        r = mount_point_make(target, true, reterr);
        if (r < 0)
                return r;

        _cleanup_(helper_done) Helper h = HELPER_NULL;
        r = helper_start(overlay_helper, &s, &h);
        if (r < 0)
                return error_set(reterr, r, "cannot fork a helper: %s", strerror(-r));
        _cleanup_close_ int mnt = -EBADF;
        r = helper_wait(&h, IDMAP_HELPER_TIMEOUT_MS, "overlay", &mnt, reterr);
        if (r < 0)
                return r;
        if (mnt < 0)
                return error_set(reterr, -EBADMSG, "overlay: the helper sent no mount");
        return mount_attach(mnt, target, reterr);
}

int idmap_overlay(int userns_fd, const char *const *lower, size_t n_lower, const char *upper,
                  const char *work, const char *target, char **reterr) {
        return overlay_mount(userns_fd, lower, n_lower, upper, work, NULL, 0, target, reterr);
}

/* ---- teardown ---- */

static int mount_entry_compare_depth(const void *a, const void *b) {
        size_t la = strlen((*(const MountEntry *const *) a)->point);
        size_t lb = strlen((*(const MountEntry *const *) b)->point);
        return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Deepest first: detaching a mount takes the mounts below it along, out of our reach. */
static int unmount_below(const char *dir, char **reterr) {
        _cleanup_close_ int mountinfo = RET_NERRNO(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        if (mountinfo < 0)
                return error_set(reterr, mountinfo, "cannot open the mount table: %s", strerror(-mountinfo));

        for (unsigned round = 0;; round++) {
                _cleanup_(mount_table_done) MountTable t = {};
                int r = mount_table_read(mountinfo, &t);
                if (r < 0)
                        return error_set(reterr, r, "cannot read the mount table: %s", strerror(-r));
                _cleanup_free_ const MountEntry **below = calloc(t.n, sizeof(MountEntry *));
                if (!below && t.n > 0)
                        return error_set(reterr, -ENOMEM, "out of memory");
                size_t n = 0;
                for (size_t i = 0; i < t.n; i++)
                        if (path_startswith(t.entries[i].point, dir))
                                below[n++] = &t.entries[i];
                if (n == 0)
                        return 0;
                if (round == TEARDOWN_ROUNDS)
                        return error_set(reterr, -EBUSY, "mounts below '%s' keep coming back", dir);

                qsort(below, n, sizeof(MountEntry *), mount_entry_compare_depth);
                for (size_t i = 0; i < n; i++) {
                        r = RET_NERRNO(umount2(below[i]->point, MNT_DETACH | UMOUNT_NOFOLLOW));
                        /* EINVAL: gone already. */
                        if (r < 0 && r != -EINVAL && r != -ENOENT)
                                return error_set(reterr, r, "cannot unmount '%s': %s", below[i]->point,
                                                 strerror(-r));
                }
        }
}

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* Removes name (the directory path, in parent_fd) with what is below it, if that is only
 * directories and empty files (with everything: any file) on the same filesystem. */
static int remove_tree(int parent_fd, const char *name, const char *path, bool everything, char **reterr) {
        int fd = RET_NERRNO(openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
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
                _cleanup_free_ char *child = NULL;
                if (asprintf(&child, "%s/%s", path, de->d_name) < 0)
                        return error_set(reterr, -ENOMEM, "out of memory");
                struct stat st;
                if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return error_set(reterr, -errno, "cannot stat '%s': %m", child);
                if (st.st_dev != dir_st.st_dev)
                        return error_set(reterr, -EBUSY, "'%s' is still mounted", child);

                if (S_ISDIR(st.st_mode)) {
                        int r = remove_tree(fd, de->d_name, child, everything, reterr);
                        if (r < 0)
                                return r;
                } else if (everything || (S_ISREG(st.st_mode) && st.st_size == 0)) {
                        int r = RET_NERRNO(unlinkat(fd, de->d_name, 0));
                        if (r < 0)
                                return error_set(reterr, r, "cannot remove '%s': %s", child, strerror(-r));
                } else
                        return error_set(reterr, -ENOTEMPTY, "'%s' holds more than mount points: '%s'", path,
                                         child);
        }
        if (errno != 0)
                return error_set(reterr, -errno, "cannot read '%s': %m", path);
        int r = RET_NERRNO(unlinkat(parent_fd, name, AT_REMOVEDIR));
        if (r < 0)
                return error_set(reterr, r, "cannot remove '%s': %s", path, strerror(-r));
        return 0;
}

int idmap_teardown(const char *dir, char **reterr) {
        _cleanup_free_ char *canonical = realpath(dir, NULL);
        if (!canonical && errno == ENOENT)
                return 0;
        if (!canonical)
                return error_set(reterr, -errno, "cannot resolve '%s': %m", dir);
        if (streq(canonical, "/"))
                return error_set(reterr, -EINVAL, "cannot tear down '/'");

        int r = unmount_below(canonical, reterr);
        if (r < 0)
                return r;
        return remove_tree(AT_FDCWD, canonical, canonical, false, reterr);
}

int idmap_container_remove(const char *dir, char **reterr) {
        _cleanup_free_ char *spec = NULL;
        if (asprintf(&spec, "%s/config.json", dir) < 0)
                return -ENOMEM;
        if (unlink(spec) < 0 && errno != ENOENT)
                return error_set(reterr, -errno, "cannot remove '%s': %m", spec);
        return idmap_teardown(dir, reterr);
}

/* Splits s in place at each sep not escaped by a backslash; unescape drops the backslashes. */
static int split_escaped(char *s, char sep, bool unescape, char **out, size_t max, size_t *ret_n) {
        size_t n = 0;
        char *o = s;
        out[n++] = o;
        for (const char *i = s; *i; i++) {
                if (*i == '\\' && i[1]) {
                        if (!unescape)
                                *o++ = *i;
                        *o++ = *++i;
                } else if (*i == sep) {
                        *o++ = '\0';
                        if (n >= max)
                                return -E2BIG;
                        out[n++] = o;
                } else
                        *o++ = *i;
        }
        *o = '\0';
        *ret_n = n;
        return 0;
}

#define OVERLAY_LAYERS_MAX 128
/* Our overlay's work directory, next to the engine's upper one. */
#define IDMAP_WORKDIR_NAME "stockade-work"

/* The super block options of the overlay whose root fd is (still escaped), in *ret; 0 and
 * NULL when fd is not the root of an overlay mount. */
static int overlay_options(int fd, char **ret) {
        SourceId id;
        int r = source_id(fd, &id);
        if (r < 0)
                return r;
        _cleanup_close_ int mountinfo = RET_NERRNO(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        _cleanup_(mount_table_done) MountTable table = {};
        r = mountinfo < 0 ? mountinfo : mount_table_read(mountinfo, &table);
        if (r < 0)
                return r;
        *ret = NULL;
        for (size_t i = 0; i < table.n && id.mount_root; i++)
                if ((uint64_t) table.entries[i].id == id.mnt_id && streq(table.entries[i].fstype, "overlay"))
                        return (*ret = strdup(table.entries[i].super_options)) ? 0 : -ENOMEM;
        return 0;
}

int idmap_overlay_upper(int fd, char **ret) {
        _cleanup_free_ char *options = NULL;
        int r = overlay_options(fd, &options);
        if (r < 0)
                return r;
        char *option[64], *upper = NULL;
        size_t n = 0, unused;
        if (!options || split_escaped(options, ',', false, option, ELEMENTSOF(option), &n) < 0)
                return -ENOENT;
        for (size_t i = 0; i < n; i++)
                if (STARTSWITH(option[i], "upperdir=") &&
                    split_escaped(upper = option[i] + strlen("upperdir="), '\0', true, &upper, 1, &unused) >= 0)
                        return (*ret = strdup(upper)) ? 0 : -ENOMEM;
        return -ENOENT;
}

int idmap_rootfs(int userns_fd, int rootfs_fd, const char *rootfs, const char *target, char **reterr) {
        if (userns_fd < 0)
                return idmap_bind(userns_fd, rootfs_fd, rootfs, target, true, false, reterr);
        _cleanup_free_ char *options = NULL;
        int r = overlay_options(rootfs_fd, &options);
        if (r < 0)
                return error_set(reterr, r, "cannot inspect the root filesystem '%s': %s", rootfs, strerror(-r));
        if (!options)
                return idmap_bind(userns_fd, rootfs_fd, rootfs, target, true, false, reterr);
        char *option[64], *lower[OVERLAY_LAYERS_MAX], *kept[ELEMENTSOF(option)];
        char *upper = NULL, *work = NULL;
        size_t n_options = 0, n_lower = 0, n_kept = 0, unused;
        r = split_escaped(options, ',', false, option, ELEMENTSOF(option), &n_options);
        for (size_t i = 0; r >= 0 && i < n_options; i++) {
                char *o = option[i];
                if (STARTSWITH(o, "lowerdir="))
                        r = split_escaped(o + strlen("lowerdir="), ':', true, lower, ELEMENTSOF(lower), &n_lower);
                else if (STARTSWITH(o, "lowerdir+=") && n_lower < ELEMENTSOF(lower)) {
                        /* How the kernel shows layers given one by one. */
                        r = split_escaped(o + strlen("lowerdir+="), '\0', true, &lower[n_lower], 1, &unused);
                        n_lower++;
                } else if (STARTSWITH(o, "lowerdir+="))
                        r = -E2BIG;
                else if (STARTSWITH(o, "upperdir="))
                        r = split_escaped(upper = o + strlen("upperdir="), '\0', true, &upper, 1, &unused);
                else if (STARTSWITH(o, "workdir="))
                        r = split_escaped(work = o + strlen("workdir="), '\0', true, &work, 1, &unused);
                else if (STARTSWITH(o, "datadir+="))
                        return error_set(reterr, -EOPNOTSUPP, "cannot use the overlay at '%s': data-only layers are not supported", rootfs);
                else
                        kept[n_kept++] = o;
        }
        if (r < 0 || n_lower == 0 || !upper || !work || lower[0][0] != '/' || !strchr(upper + 1, '/'))
                return error_set(reterr, -EINVAL, "cannot use the overlay at '%s': unexpected mount options", rootfs);

        /* A work directory of our own, fresh each time, next to upper (overlayfs wants them
         * on one file system): the kernel refuses a second mount on a work directory that a
         * "volatile" mount has used (work/incompat/volatile), volatile or not, and warns
         * about one in use by another mount. */
        _cleanup_free_ char *dir = strndup(upper, (size_t) (strrchr(upper, '/') - upper)), *own_work = NULL;
        if (!dir || asprintf(&own_work, "%s/" IDMAP_WORKDIR_NAME, dir) < 0)
                return error_set(reterr, -ENOMEM, "out of memory");
        _cleanup_close_ int dir_fd = RET_NERRNO(open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (dir_fd < 0)
                return error_set(reterr, dir_fd, "cannot open '%s': %s", dir, strerror(-dir_fd));
        struct stat st;
        r = fstatat(dir_fd, IDMAP_WORKDIR_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0 ? 0
                                                                              : remove_tree(dir_fd, IDMAP_WORKDIR_NAME, own_work, true, reterr);
        if (r < 0)
                return r;
        r = RET_NERRNO(mkdirat(dir_fd, IDMAP_WORKDIR_NAME, 0700));
        if (r < 0)
                return error_set(reterr, r, "cannot create '%s': %s", own_work, strerror(-r));
        return overlay_mount(userns_fd, (const char *const *) lower, n_lower, upper, own_work, kept, n_kept, target,
                             reterr);
}
