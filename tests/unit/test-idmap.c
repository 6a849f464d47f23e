/* SPDX-License-Identifier: Apache-2.0 */
/* ID-mapped mounts for a container whose user namespace maps "0 100000 65536". Each test
 * runs in its own private mount namespace, so its mounts vanish with it, and looks at the
 * result the way the VM (uid 0 or uid 100000, the container's root) sees it. */
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#include "enforcer/idmap.h"
#include "enforcer/source.h"
#include "test.h"
#include "util.h"

#define BASE 100000
#define OTHER_BASE 165536
#define COUNT 65536

/* ---- helpers ---- */

static void isolate(void) {
        if (geteuid() != 0)
                test_skip("ID-mapped mounts need root");
        ASSERT_OK(RET_NERRNO(unshare(CLONE_NEWNS)));
        ASSERT_OK(RET_NERRNO(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)));
        /* uid 100000 must be able to reach the files. */
        ASSERT_OK(RET_NERRNO(chmod(test_tmpdir(), 0755)));
}

static char *tmp_path(const char *name) {
        char *p;
        ASSERT_TRUE(asprintf(&p, "%s/%s", test_tmpdir(), name) > 0);
        return p;
}

static void make_dir(const char *name) {
        _cleanup_free_ char *p = tmp_path(name);
        ASSERT_OK(RET_NERRNO(mkdir(p, 0755)));
}

static void make_file(const char *name, const char *content) {
        _cleanup_free_ char *p = tmp_path(name);
        _cleanup_close_ int fd = RET_NERRNO(open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        ASSERT_OK(fd);
        ASSERT_OK(write_all(fd, content, strlen(content)));
}

static char *read_file(const char *path) {
        char *text = NULL;
        ASSERT_OK(read_full_file(AT_FDCWD, path, 1024 * 1024, &text, NULL));
        return text;
}

static void assert_content(const char *path, const char *content) {
        _cleanup_free_ char *text = read_file(path);
        ASSERT_STREQ(text, content);
}

static void assert_owner(const char *path, uid_t uid) {
        struct stat st;
        ASSERT_OK(RET_NERRNO(lstat(path, &st)));
        ASSERT_EQ(st.st_uid, uid);
        ASSERT_EQ(st.st_gid, uid);
}

static int64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Whether anything is mounted at or below dir (paths without spaces, which mountinfo escapes). */
static bool mounted_below(const char *dir) {
        _cleanup_free_ char *table = read_file("/proc/self/mountinfo");
        size_t n = strlen(dir);
        for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
                char point[4096];
                if (sscanf(line, "%*d %*d %*s %*s %4095s", point) == 1 && strncmp(point, dir, n) == 0 &&
                    (point[n] == '\0' || point[n] == '/'))
                        return true;
        }
        return false;
}

/* Runs fn(path) in a child with uid and gid 'uid' and no supplementary groups: 0 or -errno. */
static int run_as(uid_t uid, int (*fn)(const char *path), const char *path) {
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(255);
                _exit(-fn(path));
        }
        int status;
        ASSERT_OK(RET_NERRNO(waitpid(pid, &status, 0)));
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 255);
        return -WEXITSTATUS(status);
}

static int write_to(const char *path, int flags) {
        _cleanup_close_ int fd = RET_NERRNO(open(path, O_WRONLY | O_CLOEXEC | flags, 0644));
        if (fd < 0)
                return fd;
        return write_all(fd, "more\n", 5);
}

static int file_create(const char *path) {
        return write_to(path, O_CREAT | O_EXCL);
}

static int file_append(const char *path) {
        return write_to(path, O_APPEND);
}

static int file_remove(const char *path) {
        return RET_NERRNO(unlink(path));
}

/* Replaces directory path holding the file "x" by an empty one. */
static int dir_recreate(const char *path) {
        _cleanup_free_ char *x = NULL;
        if (asprintf(&x, "%s/x", path) < 0)
                return -ENOMEM;
        int r = RET_NERRNO(unlink(x));
        if (r >= 0)
                r = RET_NERRNO(rmdir(path));
        if (r >= 0)
                r = RET_NERRNO(mkdir(path, 0755));
        return r;
}

static int userns_open(uint32_t base) {
        _cleanup_free_ char *error = NULL;
        int fd = -EBADF;
        int r = idmap_userns_open(base, COUNT, &fd, &error);
        if (r < 0)
                fprintf(stderr, "idmap_userns_open: %s\n", error);
        ASSERT_OK(r);
        return fd;
}

/* idmap_bind() from source, opened as the runtime opens a checked source. */
static int bind_path(int userns_fd, const char *source, const char *target, bool recursive, bool read_only, char **error) {
        _cleanup_close_ int fd = -EBADF;
        int r = source_open(source, &fd);
        if (r < 0)
                return r;
        return idmap_bind(userns_fd, fd, source, target, recursive, read_only, error);
}

static void bind(int userns_fd, const char *source, const char *target, bool recursive, bool read_only) {
        _cleanup_free_ char *error = NULL;
        int r = bind_path(userns_fd, source, target, recursive, read_only, &error);
        if (r < 0)
                fprintf(stderr, "idmap_bind: %s\n", error);
        ASSERT_OK(r);
}

static void overlay(int userns_fd, const char *const *lower, size_t n_lower, const char *upper,
                    const char *work, const char *target) {
        _cleanup_free_ char *error = NULL;
        int r = idmap_overlay(userns_fd, lower, n_lower, upper, work, target, &error);
        if (r < 0)
                fprintf(stderr, "idmap_overlay: %s\n", error);
        ASSERT_OK(r);
}

/* ---- user namespaces ---- */

/* The map as a process inside the namespace reads it, spaces squeezed. */
static char *map_seen_inside(int userns_fd, const char *file) {
        int pipe_fds[2];
        ASSERT_OK(RET_NERRNO(pipe2(pipe_fds, O_CLOEXEC)));
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                char path[64], *text = NULL;
                snprintf(path, sizeof(path), "/proc/self/%s", file);
                if (setns(userns_fd, CLONE_NEWUSER) < 0 ||
                    read_full_file(AT_FDCWD, path, 4096, &text, NULL) < 0)
                        _exit(EXIT_FAILURE);
                unsigned inside, outside, count;
                if (sscanf(text, "%u %u %u", &inside, &outside, &count) != 3)
                        _exit(EXIT_FAILURE);
                dprintf(pipe_fds[1], "%u %u %u", inside, outside, count);
                _exit(EXIT_SUCCESS);
        }
        safe_close(pipe_fds[1]);
        char *text = NULL;
        ASSERT_OK(read_full_fd(pipe_fds[0], 4096, &text, NULL));
        safe_close(pipe_fds[0]);
        int status;
        ASSERT_OK(RET_NERRNO(waitpid(pid, &status, 0)));
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return text;
}

TEST(userns_has_the_mapping) {
        isolate();
        _cleanup_close_ int fd = userns_open(BASE);
        _cleanup_free_ char *uid_map = map_seen_inside(fd, "uid_map");
        _cleanup_free_ char *gid_map = map_seen_inside(fd, "gid_map");
        ASSERT_STREQ(uid_map, "0 100000 65536");
        ASSERT_STREQ(gid_map, "0 100000 65536");

        _cleanup_free_ char *error = NULL;
        int other = -EBADF;
        ASSERT_EQ(idmap_userns_open(BASE, 0, &other, &error), -EINVAL);
        ASSERT_STREQ(error, "invalid ID range: 0 IDs from 100000");
        ASSERT_EQ(idmap_userns_open(UINT32_MAX - 1000, COUNT, &other, &error), -EINVAL);
        ASSERT_EQ(other, -EBADF);
}

/* ---- bind mounts ---- */

TEST(bind_directory_maps_owners_both_ways) {
        isolate();
        make_dir("src");
        make_file("src/root-file", "hello\n");
        _cleanup_free_ char *src = tmp_path("src"), *target = tmp_path("target"), *other = tmp_path("other");
        _cleanup_close_ int userns = userns_open(BASE), other_userns = userns_open(OTHER_BASE);

        /* target does not exist: it is created. */
        bind(userns, src, target, false, false);
        _cleanup_free_ char *seen = tmp_path("target/root-file");
        assert_owner(seen, BASE);
        assert_content(seen, "hello\n");

        /* The container's root creates a file: on disk it is root's. */
        _cleanup_free_ char *created = tmp_path("target/new"), *on_disk = tmp_path("src/new");
        ASSERT_OK(run_as(BASE, file_create, created));
        assert_owner(created, BASE);
        assert_owner(on_disk, 0);
        assert_content(on_disk, "more\n");

        /* The VM's root is outside the mapping: it cannot create files there. */
        _cleanup_free_ char *by_root = tmp_path("target/by-root");
        ASSERT_EQ(file_create(by_root), -EOVERFLOW);

        /* The same directory for a second container, with the next range. */
        bind(other_userns, src, other, false, false);
        _cleanup_free_ char *seen_other = tmp_path("other/root-file");
        assert_owner(seen_other, OTHER_BASE);
        assert_owner(seen, BASE);
        ASSERT_EQ(run_as(BASE, file_append, seen_other), -EACCES);
        ASSERT_OK(run_as(OTHER_BASE, file_append, seen_other));
        assert_content(seen, "hello\nmore\n");
}

TEST(bind_directory_recursive_and_read_only) {
        isolate();
        make_dir("src");
        make_dir("src/sub");
        make_dir("inner");
        make_file("inner/file", "inner\n");
        _cleanup_free_ char *src = tmp_path("src"), *sub = tmp_path("src/sub"), *inner = tmp_path("inner");
        ASSERT_OK(RET_NERRNO(mount(inner, sub, NULL, MS_BIND, NULL)));
        _cleanup_close_ int userns = userns_open(BASE);

        _cleanup_free_ char *flat = tmp_path("flat"), *deep = tmp_path("deep");
        bind(userns, src, flat, false, false);
        bind(userns, src, deep, true, true);

        _cleanup_free_ char *flat_file = tmp_path("flat/sub/file"), *deep_file = tmp_path("deep/sub/file");
        ASSERT_EQ(access(flat_file, F_OK), -1);
        assert_owner(deep_file, BASE);
        assert_content(deep_file, "inner\n");
        ASSERT_EQ(run_as(BASE, file_append, deep_file), -EROFS);
}

TEST(bind_file_read_only) {
        isolate();
        make_file("resolv.conf", "nameserver 10.0.0.1\n");
        make_dir("etc");
        _cleanup_free_ char *src = tmp_path("resolv.conf"), *target = tmp_path("etc/resolv.conf"),
                            *writable = tmp_path("etc/hosts");
        _cleanup_close_ int userns = userns_open(BASE);

        /* target does not exist: an empty file is created. */
        bind(userns, src, target, false, true);
        assert_owner(target, BASE);
        assert_content(target, "nameserver 10.0.0.1\n");
        ASSERT_EQ(file_append(target), -EROFS);
        ASSERT_EQ(run_as(BASE, file_append, target), -EROFS);

        bind(userns, src, writable, false, false);
        ASSERT_OK(run_as(BASE, file_append, writable));
        assert_content(src, "nameserver 10.0.0.1\nmore\n");
}

/* ---- overlays ---- */

/* Up to 87 layers go as one "lowerdir" value, which Linux 6.1 takes; more as "lowerdir+"
 * (Linux 6.8). Both stack in order: the top layer wins. */
static void overlay_of_layers(size_t n) {
        isolate();
        _cleanup_free_ char **lower = calloc(n, sizeof(char *));
        ASSERT_TRUE(lower);
        for (size_t i = 0; i < n; i++) {
                char name[32], file[48], content[32];
                snprintf(name, sizeof(name), "layer%zu", i);
                snprintf(file, sizeof(file), "layer%zu/f", i);
                snprintf(content, sizeof(content), "%zu\n", i);
                make_dir(name);
                make_file(file, content);
                lower[i] = tmp_path(name);
        }
        make_dir("c");
        make_dir("c/upper");
        make_dir("c/work");
        _cleanup_free_ char *upper = tmp_path("c/upper"), *work = tmp_path("c/work"), *rootfs = tmp_path("rootfs"),
                            *f = tmp_path("rootfs/f");
        _cleanup_close_ int userns = userns_open(BASE);
        overlay(userns, (const char *const *) lower, n, upper, work, rootfs);
        assert_content(f, "0\n");
        for (size_t i = 0; i < n; i++)
                free(lower[i]);
}

TEST(overlay_of_87_layers_in_one_value) {
        overlay_of_layers(87);
}

TEST(overlay_of_100_layers) {
        overlay_of_layers(100);
}

TEST(overlay_is_writable_by_the_container) {
        isolate();
        /* An image of two layers, and the container's directory holding upper, work and
         * (as some snapshotters do) a layer too. */
        make_dir("image");
        make_dir("image/top");
        make_file("image/top/a", "top\n");
        make_dir("image/top/etc");
        make_dir("container");
        make_dir("container/bottom");
        make_file("container/bottom/a", "bottom\n");
        make_file("container/bottom/b", "b\n");
        make_dir("container/bottom/dir");
        make_file("container/bottom/dir/x", "x\n");
        make_dir("container/upper");
        make_dir("container/work");
        _cleanup_free_ char *top = tmp_path("image/top"), *bottom = tmp_path("container/bottom"),
                            *upper = tmp_path("container/upper"), *work = tmp_path("container/work"),
                            *rootfs = tmp_path("rootfs"), *resolv = tmp_path("resolv.conf"),
                            *resolv_target = tmp_path("rootfs/etc/resolv.conf");
        make_file("resolv.conf", "nameserver 10.0.0.1\n");
        const char *lower[] = { top, bottom };

        int64_t t0 = now_us();
        _cleanup_close_ int userns = userns_open(BASE);
        int64_t t1 = now_us();
        overlay(userns, lower, ELEMENTSOF(lower), upper, work, rootfs);
        int64_t t2 = now_us();
        bind(userns, resolv, resolv_target, false, true);
        int64_t t3 = now_us();
        fprintf(stderr, "timing: idmap_userns_open %jd us, idmap_overlay %jd us, idmap_bind %jd us\n",
                (intmax_t) (t1 - t0), (intmax_t) (t2 - t1), (intmax_t) (t3 - t2));

        /* Image files are the container root's; the top layer wins. */
        _cleanup_free_ char *a = tmp_path("rootfs/a"), *b = tmp_path("rootfs/b"),
                            *etc = tmp_path("rootfs/etc");
        assert_owner(a, BASE);
        assert_owner(b, BASE);
        assert_owner(etc, BASE);
        assert_owner(rootfs, BASE);
        assert_content(a, "top\n");
        assert_content(resolv_target, "nameserver 10.0.0.1\n");
        /* The bind's mount point was missing: it was created as the container's root. */
        _cleanup_free_ char *resolv_on_disk = tmp_path("container/upper/etc/resolv.conf");
        assert_owner(resolv_on_disk, 0);

        /* Created and modified files land in upper as root's. */
        _cleanup_free_ char *created = tmp_path("rootfs/etc/new"),
                            *created_on_disk = tmp_path("container/upper/etc/new"),
                            *a_on_disk = tmp_path("container/upper/a"), *a_top = tmp_path("image/top/a");
        ASSERT_OK(run_as(BASE, file_create, created));
        assert_owner(created, BASE);
        assert_owner(created_on_disk, 0);
        ASSERT_OK(run_as(BASE, file_append, a));
        assert_content(a, "top\nmore\n");
        assert_owner(a_on_disk, 0);
        assert_content(a_on_disk, "top\nmore\n");
        assert_content(a_top, "top\n");

        /* Deleting a lower file leaves a whiteout in upper and the layer untouched. */
        _cleanup_free_ char *b_on_disk = tmp_path("container/upper/b"),
                            *b_bottom = tmp_path("container/bottom/b");
        ASSERT_OK(run_as(BASE, file_remove, b));
        ASSERT_EQ(RET_NERRNO(access(b, F_OK)), -ENOENT);
        assert_content(b_bottom, "b\n");
        struct stat st;
        ASSERT_OK(RET_NERRNO(lstat(b_on_disk, &st)));
        ASSERT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));

        /* A lower directory removed and made again is empty (opaque: needs userxattr). */
        _cleanup_free_ char *dir = tmp_path("rootfs/dir"), *dir_x = tmp_path("rootfs/dir/x"),
                            *dir_x_bottom = tmp_path("container/bottom/dir/x");
        ASSERT_OK(run_as(BASE, dir_recreate, dir));
        ASSERT_EQ(RET_NERRNO(access(dir_x, F_OK)), -ENOENT);
        assert_owner(dir, BASE);
        assert_content(dir_x_bottom, "x\n");

        /* The VM's root is outside the mapping. */
        _cleanup_free_ char *by_root = tmp_path("rootfs/by-root");
        ASSERT_EQ(file_create(by_root), -EOVERFLOW);

        /* Only the overlay and the bind are in the mount table, not the layers. */
        ASSERT_TRUE(mounted_below(rootfs));
        ASSERT_TRUE(!mounted_below(top));
        ASSERT_TRUE(!mounted_below(bottom));
        _cleanup_free_ char *container = tmp_path("container");
        ASSERT_TRUE(!mounted_below(container));
}

/* ---- teardown ---- */

TEST(teardown_removes_mounts_and_mount_points) {
        isolate();
        make_dir("image");
        make_dir("image/etc");
        make_file("image/etc/resolv.conf", "");
        make_dir("upper");
        make_dir("work");
        make_dir("data");
        make_file("data/keep", "data\n");
        make_file("resolv.conf", "nameserver 10.0.0.1\n");
        make_dir("run");
        _cleanup_free_ char *image = tmp_path("image"), *upper = tmp_path("upper"), *work = tmp_path("work"),
                            *data = tmp_path("data"), *resolv = tmp_path("resolv.conf"),
                            *run = tmp_path("run"), *rootfs = tmp_path("run/rootfs"),
                            *resolv_target = tmp_path("run/rootfs/etc/resolv.conf"),
                            *volume = tmp_path("run/volume"), *hosts = tmp_path("run/hosts");
        _cleanup_close_ int userns = userns_open(BASE);
        const char *lower[] = { image };
        overlay(userns, lower, 1, upper, work, rootfs);
        bind(userns, resolv, resolv_target, false, true);
        bind(userns, data, volume, true, false);
        bind(userns, data, volume, true, true); /* stacked */
        bind(userns, resolv, hosts, false, false);

        _cleanup_free_ char *error = NULL;
        ASSERT_OK(idmap_teardown(run, &error));
        ASSERT_EQ(RET_NERRNO(access(run, F_OK)), -ENOENT);
        ASSERT_TRUE(!mounted_below(test_tmpdir()));
        /* What was mounted is untouched. */
        _cleanup_free_ char *keep = tmp_path("data/keep");
        assert_content(keep, "data\n");
        assert_content(resolv, "nameserver 10.0.0.1\n");

        /* Gone already: nothing to do. */
        ASSERT_OK(idmap_teardown(run, &error));

        /* Files with content are not mount points and stay. */
        make_dir("other");
        make_dir("other/dir");
        make_file("other/dir/precious", "data\n");
        _cleanup_free_ char *other = tmp_path("other"), *precious = tmp_path("other/dir/precious");
        ASSERT_EQ(idmap_teardown(other, &error), -ENOTEMPTY);
        ASSERT_CONTAINS(error, "holds more than mount points");
        ASSERT_CONTAINS(error, precious);
        assert_content(precious, "data\n");
}

/* The engine's overlay at name (over image/ and container/upper, work), mounted with options. */
static char *engine_overlay(const char *name, const char *options) {
        make_dir("image");
        make_file("image/a", "image\n");
        make_dir("container");
        make_dir("container/upper");
        make_dir("container/work");
        make_dir(name);
        _cleanup_free_ char *image = tmp_path("image"), *upper = tmp_path("container/upper"),
                            *work = tmp_path("container/work"), *data = NULL;
        char *merged = tmp_path(name);
        ASSERT_TRUE(asprintf(&data, "lowerdir=%s,upperdir=%s,workdir=%s,%s", image, upper, work, options) > 0);
        ASSERT_OK(RET_NERRNO(mount("overlay", merged, "overlay", 0, data)));
        return merged;
}

static int rootfs_of(int userns, const char *merged, const char *target, char **error) {
        _cleanup_close_ int fd = RET_NERRNO(open(merged, O_PATH | O_DIRECTORY | O_CLOEXEC));
        ASSERT_OK(fd);
        return idmap_rootfs(userns, fd, merged, target, error);
}

/* The super options of the mount at path (without spaces). */
static char *super_options(const char *path) {
        _cleanup_free_ char *table = read_file("/proc/self/mountinfo");
        char *found = NULL;
        for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
                char point[4096], options[4096];
                const char *tail = strstr(line, " - ");
                if (tail && sscanf(line, "%*d %*d %*s %*s %4095s", point) == 1 &&
                    sscanf(tail, " - %*s %*s %4095s", options) == 1 && streq(point, path)) {
                        free(found);
                        found = strdup(options);
                }
        }
        ASSERT_TRUE(found);
        return found;
}

TEST(rootfs_keeps_the_engine_overlay_options) {
        isolate();
        _cleanup_free_ char *merged = engine_overlay("merged", "volatile,uuid=off,index=off,redirect_dir=nofollow"),
                            *rootfs = tmp_path("rootfs"), *a = tmp_path("rootfs/a"), *created = tmp_path("rootfs/new"),
                            *error = NULL;
        _cleanup_close_ int userns = userns_open(BASE);
        int r = rootfs_of(userns, merged, rootfs, &error);
        if (r < 0)
                fprintf(stderr, "idmap_rootfs: %s\n", error);
        ASSERT_OK(r);
        _cleanup_free_ char *options = super_options(rootfs);
        /* Linux 6.18 shows volatile as fsync=volatile. */
        ASSERT_TRUE(strstr(options, ",volatile") || strstr(options, ",fsync=volatile"));
        ASSERT_CONTAINS(options, ",uuid=off");
        ASSERT_CONTAINS(options, ",userxattr");
        assert_content(a, "image\n");
        assert_owner(a, BASE);
        ASSERT_OK(run_as(BASE, file_create, created));
        /* Again, as when the container restarts: our volatile work directory is made afresh. */
        ASSERT_OK(RET_NERRNO(umount2(rootfs, MNT_DETACH)));
        ASSERT_OK(rootfs_of(userns, merged, rootfs, &error));
        assert_content(created, "more\n");
        ASSERT_OK(RET_NERRNO(umount2(rootfs, MNT_DETACH)));
        ASSERT_OK(RET_NERRNO(umount2(merged, MNT_DETACH)));
}

TEST(rootfs_refuses_an_overlay_option_it_cannot_keep) {
        isolate();
        /* metacopy needs trusted.* xattrs, which a mount in a user namespace cannot use. */
        _cleanup_free_ char *merged = engine_overlay("merged", "redirect_dir=on,metacopy=on"), *rootfs = tmp_path("rootfs"),
                            *error = NULL;
        _cleanup_close_ int userns = userns_open(BASE);
        ASSERT_EQ(rootfs_of(userns, merged, rootfs, &error), -EINVAL);
        ASSERT_CONTAINS(error, "cannot create the overlay with the options 'rw,");
        ASSERT_CONTAINS(error, "metacopy=on");
        ASSERT_TRUE(!mounted_below(rootfs));
        ASSERT_OK(RET_NERRNO(umount2(merged, MNT_DETACH)));
}

/* ---- errors ---- */

TEST(errors_say_why) {
        isolate();
        make_dir("dir");
        make_dir("upper");
        make_dir("work");
        make_dir("elsewhere");
        make_dir("elsewhere/work");
        make_file("file", "x\n");
        _cleanup_free_ char *missing = tmp_path("missing"), *dir = tmp_path("dir"),
                            *upper = tmp_path("upper"), *work = tmp_path("work"),
                            *other_work = tmp_path("elsewhere/work"),
                            *file = tmp_path("file"), *target = tmp_path("target"),
                            *no_parent = tmp_path("missing/target");
        _cleanup_close_ int userns = userns_open(BASE);
        _cleanup_free_ char *error = NULL, *expected = NULL;

        ASSERT_EQ(bind_path(userns, missing, target, false, false, &error), -ENOENT);
        ASSERT_EQ(RET_NERRNO(access(target, F_OK)), -ENOENT);
        ASSERT_TRUE(asprintf(&expected, "'%s' does not exist", missing) > 0);

        ASSERT_EQ(bind_path(userns, dir, no_parent, false, false, &error), -ENOENT);
        ASSERT_CONTAINS(error, "cannot create the mount point");
        ASSERT_CONTAINS(error, no_parent);

        /* Not a user namespace. */
        _cleanup_close_ int not_userns = RET_NERRNO(open(file, O_RDONLY | O_CLOEXEC));
        ASSERT_OK(not_userns);
        ASSERT_TRUE(bind_path(not_userns, dir, target, false, false, &error) < 0);
        ASSERT_CONTAINS(error, "cannot ID-map the mount at");

        const char *lower_missing[] = { dir, missing };
        ASSERT_EQ(idmap_overlay(userns, lower_missing, 2, upper, work, target, &error), -ENOENT);
        ASSERT_STREQ(error, expected);

        const char *lower[] = { dir };
        ASSERT_EQ(idmap_overlay(userns, lower, 1, upper, other_work, target, &error), -EINVAL);
        ASSERT_CONTAINS(error, "must be in the same directory");
        ASSERT_EQ(idmap_overlay(userns, lower, 0, upper, work, target, &error), -EINVAL);
        ASSERT_CONTAINS(error, "lower layers");

        /* A work directory owned by a uid outside the mapping would give a read-only overlay. */
        make_dir("locked");
        make_dir("locked/upper");
        make_dir("locked/work");
        _cleanup_free_ char *locked_upper = tmp_path("locked/upper"), *locked_work = tmp_path("locked/work");
        ASSERT_OK(RET_NERRNO(chown(locked_work, COUNT + 1, COUNT + 1)));
        ASSERT_OK(RET_NERRNO(chmod(locked_work, 0700)));
        ASSERT_EQ(idmap_overlay(userns, lower, 1, locked_upper, locked_work, target, &error), -EROFS);
        ASSERT_CONTAINS(error, "the overlay came up read-only");
        ASSERT_TRUE(!mounted_below(target));

        /* A layer must be a directory. */
        const char *lower_file[] = { file };
        ASSERT_EQ(idmap_overlay(userns, lower_file, 1, upper, work, target, &error), -ENOTDIR);
        _cleanup_free_ char *refused = NULL;
        ASSERT_TRUE(asprintf(&refused, "overlay layer '%s' is not a directory", file) > 0);
        ASSERT_CONTAINS(error, refused);
        ASSERT_TRUE(!mounted_below(target));
}
