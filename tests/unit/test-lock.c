/* SPDX-License-Identifier: Apache-2.0 */
/* File locks: read-only bind mounts, the immutable attribute, tamper detection and repair.
 * Each test body runs in a child with its own private mount namespace, so its mounts
 * vanish with it; the immutable attributes it leaves on disk are cleared afterwards.
 * Each body runs twice: as is, and (NAME_without_openat2) under a seccomp filter that
 * answers openat2() with ENOSYS, as systemd's RestrictSUIDSGID= does in the shipped unit,
 * so the locks' component-walk fallback passes the same tests. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "enforcer/lock.h"
#include "test.h"
#include "util.h"

#define CONTENT "{\"userns-remap\": \"default\"}\n"
#define MODE 0640
#define UID 123
#define GID 456

/* ---- isolation ---- */

static int set_immutable(const char *path, bool immutable) {
        _cleanup_close_ int fd = RET_NERRNO(open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
        if (fd < 0)
                return fd;
        int flags;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return -errno;
        flags = immutable ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        return RET_NERRNO(ioctl(fd, FS_IOC_SETFLAGS, &flags));
}

static bool is_immutable(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        int flags;
        return fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) >= 0 && (flags & FS_IMMUTABLE_FL);
}

static int clear_immutable(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_F || flag == FTW_D)
                (void) set_immutable(path, false);
        return 0;
}

/* What systemd's RestrictSUIDSGID= does to openat2(): it cannot inspect the flags behind
 * the pointer, so it refuses the call outright. */
static void refuse_openat2(void) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        ASSERT_TRUE(ctx);
        ASSERT_OK(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0));
        ASSERT_OK(seccomp_load(ctx));
        seccomp_release(ctx);
        struct open_how how = { .flags = O_PATH | O_CLOEXEC };
        ASSERT_EQ(syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how)), -1);
        ASSERT_EQ(errno, ENOSYS);
}

static void run_isolated(void (*body)(void), bool without_openat2) {
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                int r = RET_NERRNO(unshare(CLONE_NEWNS));
                if (r == -EPERM)
                        test_skip("mount namespaces and bind mounts need root");
                ASSERT_OK(r);
                ASSERT_OK(RET_NERRNO(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)));
                if (without_openat2)
                        refuse_openat2();
                body();
                fflush(NULL);
                _exit(0);
        }

        int status;
        ASSERT_OK(RET_NERRNO(waitpid(pid, &status, 0)));
        (void) nftw(test_tmpdir(), clear_immutable, 16, FTW_PHYS);
        if (WIFSIGNALED(status)) {
                fprintf(stderr, "test process killed by signal %d\n", WTERMSIG(status));
                abort();
        }
        if (WEXITSTATUS(status) != 0)
                exit(WEXITSTATUS(status));
}

#define LOCK_TEST(n)                             \
        static void body_##n(void);              \
        TEST(n) {                                \
                run_isolated(body_##n, false);   \
        }                                        \
        TEST(n##_without_openat2) {              \
                run_isolated(body_##n, true);    \
        }                                        \
        static void body_##n(void)

/* ---- helpers ---- */

static char *tmp_path(const char *name) {
        char *p;
        ASSERT_TRUE(asprintf(&p, "%s/%s", test_tmpdir(), name) >= 0);
        return p;
}

static bool immutable_supported(void) {
        _cleanup_free_ char *probe = tmp_path("probe");
        _cleanup_close_ int fd = open(probe, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        int r = set_immutable(probe, true);
        if (r == -ENOTTY || r == -EOPNOTSUPP)
                return false;
        ASSERT_OK(r);
        ASSERT_OK(set_immutable(probe, false));
        ASSERT_OK(RET_NERRNO(unlink(probe)));
        return true;
}

static void require_immutable(void) {
        if (!immutable_supported())
                test_skip("the filesystem of /tmp does not support the immutable attribute");
}

static void make_file(const char *path, const char *content, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        ASSERT_OK(RET_NERRNO(fchmod(fd, mode)));
}

static void assert_content(const char *path, const char *content) {
        _cleanup_free_ char *text = NULL;
        ASSERT_OK(read_full_file(AT_FDCWD, path, 1 << 20, &text, NULL));
        ASSERT_STREQ(text, content);
}

static void assert_write_refused(const char *path) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
                close(fd);
        ASSERT_TRUE(fd < 0 && (errno == EROFS || errno == EPERM));
}

/* The mounts whose mount point is path; mountinfo writes a space as \040. */
static unsigned mount_count(const char *path) {
        char escaped[PATH_MAX * 4] = "", *o = escaped;
        for (const char *c = path; *c; c++)
                o += *c == ' ' ? sprintf(o, "\\040") : sprintf(o, "%c", *c);

        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        ASSERT_TRUE(f);
        char line[PATH_MAX * 8], point[PATH_MAX * 4];
        unsigned n = 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%*d %*d %*s %*s %s", point) == 1 && streq(point, escaped))
                        n++;
        return n;
}

static bool readable(const LockSet *s, int timeout_ms) {
        struct pollfd p = { .fd = lockset_fd(s), .events = POLLIN };
        int r = poll(&p, 1, timeout_ms);
        ASSERT_TRUE(r >= 0);
        return r > 0 && (p.revents & POLLIN);
}

/* Readable at once, long before the periodic check is due: the change was notified. */
static bool notified(const LockSet *s) {
        return readable(s, LOCK_CHECK_INTERVAL_MS / 5);
}

typedef struct Reports {
        unsigned n;
        char path[PATH_MAX];
        char what[256];
        int error;
} Reports;

static void on_report(const char *path, const char *what, int error, void *userdata) {
        Reports *r = userdata;
        r->n++;
        snprintf(r->path, sizeof(r->path), "%s", path);
        snprintf(r->what, sizeof(r->what), "%s", what);
        r->error = error;
}

/* A locked file (with a space in its name) and a hard link to it made before: a way
 * around the read-only mount, as through another mount of the same filesystem. */
typedef struct Fixture {
        LockSet *set;
        char *path;
        char *link;
        bool immutable;
} Fixture;

static void fixture_init(Fixture *f) {
        f->immutable = immutable_supported();
        f->path = tmp_path("daemon config.json");
        f->link = tmp_path("hard link");
        make_file(f->path, CONTENT, MODE);
        ASSERT_OK(RET_NERRNO(chown(f->path, UID, GID)));
        ASSERT_OK(RET_NERRNO(link(f->path, f->link)));

        ASSERT_OK(lockset_new(&f->set));
        _cleanup_free_ char *why = NULL;
        ASSERT_OK(lockset_add(f->set, f->path, &why));
        ASSERT_TRUE(!why);
        /* Our own mount and attribute changes are notified too. */
        ASSERT_EQ(lockset_check(f->set, NULL, NULL), 0);
}

static void fixture_done(Fixture *f) {
        f->set = lockset_free(f->set);
        free(f->path);
        free(f->link);
}

static void assert_locked(const Fixture *f) {
        assert_content(f->path, CONTENT);
        assert_write_refused(f->path);
        ASSERT_EQ(mount_count(f->path), 1);
        ASSERT_EQ(is_immutable(f->path), f->immutable);

        struct stat st;
        ASSERT_OK(RET_NERRNO(stat(f->path, &st)));
        ASSERT_EQ(st.st_mode & 07777, MODE);
        ASSERT_EQ(st.st_uid, UID);
        ASSERT_EQ(st.st_gid, GID);
}

/* One repair reporting what, then nothing left to do, and no notification pending. */
static void assert_repaired(Fixture *f, const char *what) {
        Reports r = {};
        ASSERT_EQ(lockset_check(f->set, on_report, &r), 1);
        ASSERT_EQ(r.n, 1);
        ASSERT_STREQ(r.path, f->path);
        ASSERT_CONTAINS(r.what, what);
        ASSERT_EQ(r.error, 0);
        assert_locked(f);

        ASSERT_EQ(lockset_check(f->set, on_report, &r), 0);
        ASSERT_EQ(r.n, 1);
        ASSERT_TRUE(!readable(f->set, 0));

        LockInfo info;
        ASSERT_OK(lockset_get(f->set, 0, &info));
        ASSERT_EQ(info.state, LOCK_LOCKED);
        ASSERT_EQ(info.tamper_count, 1);
}

/* ---- tests ---- */

LOCK_TEST(lock_refuses_writes) {
        Fixture f = {};
        fixture_init(&f);
        assert_locked(&f);
        int fd = open(f.path, O_RDWR | O_TRUNC | O_CLOEXEC);
        ASSERT_TRUE(fd < 0);
        ASSERT_TRUE(unlink(f.path) < 0);

        ASSERT_TRUE(lockset_fd(f.set) >= 0);
        ASSERT_TRUE(!readable(f.set, 0));

        LockInfo info;
        ASSERT_OK(lockset_get(f.set, 0, &info));
        ASSERT_STREQ(info.path, f.path);
        ASSERT_EQ(info.state, LOCK_LOCKED);
        ASSERT_EQ(info.tamper_count, 0);
        ASSERT_EQ(info.immutable, f.immutable);
        ASSERT_EQ(lockset_get(f.set, 1, &info), -ENOENT);
        if (!f.immutable)
                fprintf(stderr, "immutable attribute not supported on /tmp, checked the mount only\n");
        fixture_done(&f);
}

LOCK_TEST(unmount_repaired) {
        Fixture f = {};
        fixture_init(&f);
        ASSERT_OK(RET_NERRNO(umount2(f.path, 0)));
        ASSERT_TRUE(notified(f.set));
        assert_repaired(&f, "unmounted");
        fixture_done(&f);
}

LOCK_TEST(remount_read_write_repaired) {
        Fixture f = {};
        fixture_init(&f);
        /* mount -o remount,bind,rw */
        ASSERT_OK(RET_NERRNO(mount(NULL, f.path, NULL, MS_REMOUNT | MS_BIND, NULL)));
        ASSERT_TRUE(notified(f.set));
        assert_repaired(&f, "remounted read-write");
        fixture_done(&f);
}

LOCK_TEST(immutable_cleared_repaired) {
        require_immutable();
        Fixture f = {};
        fixture_init(&f);
        /* chattr -i: the kernel sends no notification for it, the periodic check finds it. */
        ASSERT_OK(set_immutable(f.link, false));
        ASSERT_TRUE(readable(f.set, 1000));
        assert_repaired(&f, "immutable attribute cleared");
        fixture_done(&f);
}

LOCK_TEST(content_modified_under_mount_repaired) {
        Fixture f = {};
        fixture_init(&f);
        if (f.immutable)
                ASSERT_OK(set_immutable(f.link, false));
        make_file(f.link, "{}\n", MODE);
        assert_content(f.path, "{}\n");
        ASSERT_TRUE(notified(f.set));
        assert_repaired(&f, "content replaced");
        fixture_done(&f);
}

LOCK_TEST(replaced_repaired) {
        Fixture f = {};
        fixture_init(&f);
        _cleanup_free_ char *other = tmp_path("other");
        make_file(other, "{\"userns-remap\": \"\"}\n", 0666);

        ASSERT_OK(RET_NERRNO(umount2(f.path, 0)));
        if (f.immutable)
                ASSERT_OK(set_immutable(f.path, false));
        ASSERT_OK(RET_NERRNO(rename(other, f.path)));
        assert_repaired(&f, "content replaced, mode or owner changed");
        fixture_done(&f);
}

LOCK_TEST(removed_repaired) {
        Fixture f = {};
        fixture_init(&f);
        ASSERT_OK(RET_NERRNO(umount2(f.path, 0)));
        if (f.immutable)
                ASSERT_OK(set_immutable(f.path, false));
        ASSERT_OK(RET_NERRNO(unlink(f.path)));
        assert_repaired(&f, "unmounted, removed");
        fixture_done(&f);
}

LOCK_TEST(second_lockset_adopts) {
        Fixture f = {};
        fixture_init(&f);
        /* An agent restart: the lock outlives the set. */
        f.set = lockset_free(f.set);
        assert_locked(&f);

        ASSERT_OK(lockset_new(&f.set));
        ASSERT_OK(lockset_add(f.set, f.path, NULL));
        ASSERT_EQ(mount_count(f.path), 1);
        ASSERT_EQ(lockset_check(f.set, NULL, NULL), 0);

        ASSERT_OK(RET_NERRNO(mount(NULL, f.path, NULL, MS_REMOUNT | MS_BIND, NULL)));
        assert_repaired(&f, "remounted read-write");
        fixture_done(&f);
}

LOCK_TEST(remove_unlocks) {
        Fixture f = {};
        fixture_init(&f);
        ASSERT_OK(lockset_remove(f.set, f.path));
        ASSERT_EQ(mount_count(f.path), 0);
        ASSERT_TRUE(!is_immutable(f.path));
        make_file(f.path, "{}\n", MODE);
        assert_content(f.path, "{}\n");

        LockInfo info;
        ASSERT_EQ(lockset_get(f.set, 0, &info), -ENOENT);
        ASSERT_EQ(lockset_remove(f.set, f.path), -ENOENT);
        ASSERT_EQ(lockset_check(f.set, NULL, NULL), 0);
        assert_content(f.path, "{}\n");
        fixture_done(&f);
}

LOCK_TEST(directory_lock_protects_its_files) {
        bool immutable = immutable_supported();
        _cleanup_free_ char *dir = tmp_path("conf"), *sub = tmp_path("conf/sub"), *a = tmp_path("conf/a.json"),
                            *b = tmp_path("conf/sub/b.json"), *added = tmp_path("conf/added.json");
        ASSERT_OK(RET_NERRNO(mkdir(dir, 0755)));
        ASSERT_OK(RET_NERRNO(mkdir(sub, 0700)));
        make_file(a, "a\n", 0644);
        make_file(b, "b\n", 0600);

        _cleanup_(lockset_freep) LockSet *set = NULL;
        ASSERT_OK(lockset_new(&set));
        ASSERT_OK(lockset_add(set, dir, NULL));
        assert_write_refused(a);
        assert_write_refused(b);
        ASSERT_TRUE(open(added, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) < 0);
        ASSERT_TRUE(errno == EROFS || errno == EPERM);
        ASSERT_EQ(is_immutable(b), immutable);

        ASSERT_OK(RET_NERRNO(umount2(dir, 0)));
        if (immutable)
                ASSERT_OK(set_immutable(b, false));
        make_file(b, "evil\n", 0600);

        Reports r = {};
        ASSERT_EQ(lockset_check(set, on_report, &r), 1);
        ASSERT_STREQ(r.what, immutable ? "unmounted, immutable attribute cleared, content replaced"
                                       : "unmounted, content replaced");
        assert_content(b, "b\n");
        assert_write_refused(b);
        ASSERT_EQ(mount_count(dir), 1);
        ASSERT_EQ(lockset_check(set, on_report, &r), 0);
}

LOCK_TEST(add_errors) {
        _cleanup_(lockset_freep) LockSet *set = NULL;
        ASSERT_OK(lockset_new(&set));

        _cleanup_free_ char *missing = tmp_path("missing.json"), *big = tmp_path("big");
        _cleanup_free_ char *dir = tmp_path("conf"), *inside = tmp_path("conf/x.json");
        _cleanup_free_ char *why = NULL;
        ASSERT_EQ(lockset_add(set, missing, &why), -ENOENT);
        ASSERT_CONTAINS(why, missing);
        ASSERT_CONTAINS(why, "does not exist");

        ASSERT_EQ(lockset_add(set, "etc/docker/daemon.json", &why), -EINVAL);
        ASSERT_STREQ(why, "'etc/docker/daemon.json' is not an absolute path");

        _cleanup_close_ int fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(RET_NERRNO(ftruncate(fd, LOCK_FILE_MAX + 1)));
        ASSERT_EQ(lockset_add(set, big, &why), -EFBIG);
        ASSERT_CONTAINS(why, "is larger than 1024 KiB");
        ASSERT_EQ(mount_count(big), 0);

        ASSERT_OK(RET_NERRNO(mkdir(dir, 0755)));
        make_file(inside, "x\n", 0644);
        ASSERT_OK(lockset_add(set, dir, NULL));
        ASSERT_EQ(lockset_add(set, dir, &why), -EEXIST);
        ASSERT_CONTAINS(why, "is locked already");
        ASSERT_EQ(lockset_add(set, inside, &why), -EBUSY);
        ASSERT_CONTAINS(why, "overlaps the lock on");
        ASSERT_OK(lockset_remove(set, dir));
        ASSERT_EQ(mount_count(dir), 0);
}

LOCK_TEST(failed_repair_is_reported_once) {
        bool immutable = immutable_supported();
        _cleanup_free_ char *dir = tmp_path("docker"), *path = tmp_path("docker/daemon.json");
        ASSERT_OK(RET_NERRNO(mkdir(dir, 0755)));
        make_file(path, CONTENT, MODE);
        _cleanup_(lockset_freep) LockSet *set = NULL;
        ASSERT_OK(lockset_new(&set));
        ASSERT_OK(lockset_add(set, path, NULL));

        /* Nowhere to put the file back. */
        ASSERT_OK(RET_NERRNO(umount2(path, 0)));
        if (immutable)
                ASSERT_OK(set_immutable(path, false));
        ASSERT_OK(RET_NERRNO(unlink(path)));
        ASSERT_OK(RET_NERRNO(rmdir(dir)));

        Reports r = {};
        ASSERT_EQ(lockset_check(set, on_report, &r), -ENOENT);
        ASSERT_EQ(r.n, 1);
        ASSERT_STREQ(r.what, "unmounted, removed");
        ASSERT_EQ(r.error, -ENOENT);
        LockInfo info;
        ASSERT_OK(lockset_get(set, 0, &info));
        ASSERT_EQ(info.state, LOCK_TAMPERED);
        ASSERT_EQ(info.tamper_count, 1);

        ASSERT_EQ(lockset_check(set, on_report, &r), -ENOENT);
        ASSERT_EQ(r.n, 1);

        ASSERT_OK(RET_NERRNO(mkdir(dir, 0755)));
        ASSERT_EQ(lockset_check(set, on_report, &r), 1);
        ASSERT_EQ(r.n, 2);
        ASSERT_EQ(r.error, 0);
        assert_content(path, CONTENT);
        assert_write_refused(path);
        ASSERT_OK(lockset_get(set, 0, &info));
        ASSERT_EQ(info.state, LOCK_LOCKED);
        ASSERT_EQ(info.tamper_count, 1);
}

/* A locked directory "conf" ({a.json, sub/b.json, link -> a.json}) and a second,
 * non-recursive bind of its parent at "alt": a writable way to the same directory that the
 * lock's read-only mount does not cover. */
typedef struct DirFixture {
        LockSet *set;
        char *dir, *alt;
        bool immutable;
} DirFixture;

static char *dir_fixture_path(const DirFixture *f, bool alt, const char *name) {
        char *p;
        ASSERT_TRUE(asprintf(&p, "%s/conf%s%s", alt ? f->alt : test_tmpdir(), *name ? "/" : "", name) >= 0);
        return p;
}

static void dir_fixture_init(DirFixture *f) {
        f->immutable = immutable_supported();
        f->dir = tmp_path("conf");
        f->alt = tmp_path("alt");
        _cleanup_free_ char *sub = tmp_path("conf/sub"), *a = tmp_path("conf/a.json"), *b = tmp_path("conf/sub/b.json"),
                            *link = tmp_path("conf/link");
        ASSERT_OK(RET_NERRNO(mkdir(f->dir, 0755)));
        ASSERT_OK(RET_NERRNO(mkdir(sub, 0700)));
        make_file(a, "a\n", 0644);
        make_file(b, "b\n", 0600);
        ASSERT_OK(RET_NERRNO(symlink("a.json", link)));
        ASSERT_OK(RET_NERRNO(mkdir(f->alt, 0755)));

        ASSERT_OK(lockset_new(&f->set));
        ASSERT_OK(lockset_add(f->set, f->dir, NULL));
        ASSERT_EQ(lockset_check(f->set, NULL, NULL), 0);
        ASSERT_OK(RET_NERRNO(mount(test_tmpdir(), f->alt, NULL, MS_BIND, NULL)));
}

static void dir_fixture_done(DirFixture *f) {
        f->set = lockset_free(f->set);
        free(f->dir);
        free(f->alt);
}

/* Clears the immutable attribute of a locked entry through alt, as chattr -i would. */
static void alt_unlock(const DirFixture *f, const char *name) {
        _cleanup_free_ char *p = dir_fixture_path(f, true, name);
        if (f->immutable)
                ASSERT_OK(set_immutable(p, false));
}

static void assert_dir_repaired(DirFixture *f, const char *what) {
        Reports r = {};
        ASSERT_EQ(lockset_check(f->set, on_report, &r), 1);
        ASSERT_EQ(r.n, 1);
        ASSERT_STREQ(r.path, f->dir);
        ASSERT_CONTAINS(r.what, what);
        ASSERT_EQ(r.error, 0);
        ASSERT_EQ(lockset_check(f->set, on_report, &r), 0);
        ASSERT_EQ(r.n, 1);

        _cleanup_free_ char *a = dir_fixture_path(f, true, "a.json"), *b = dir_fixture_path(f, true, "sub/b.json");
        assert_content(a, "a\n");
        assert_content(b, "b\n");
        ASSERT_EQ(is_immutable(f->dir), f->immutable);
        ASSERT_EQ(is_immutable(b), f->immutable);
}

LOCK_TEST(entries_added_through_another_mount_are_removed) {
        DirFixture f = {};
        dir_fixture_init(&f);
        alt_unlock(&f, "");
        alt_unlock(&f, "sub");
        _cleanup_free_ char *added = dir_fixture_path(&f, true, "new.conf"), *deep = dir_fixture_path(&f, true, "sub/d"),
                            *deeper = dir_fixture_path(&f, true, "sub/d/e"), *file = dir_fixture_path(&f, true, "sub/d/e/f");
        make_file(added, "x\n", 0644);
        ASSERT_OK(RET_NERRNO(mkdir(deep, 0755)));
        ASSERT_OK(RET_NERRNO(mkdir(deeper, 0755)));
        make_file(file, "f\n", 0644);
        /* An attacker's file that resists removal. */
        if (f.immutable)
                ASSERT_OK(set_immutable(file, true));

        assert_dir_repaired(&f, "entries added");
        ASSERT_TRUE(access(added, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(access(deep, F_OK) < 0 && errno == ENOENT);
        dir_fixture_done(&f);
}

LOCK_TEST(file_replaced_by_a_hard_link_is_recreated) {
        DirFixture f = {};
        dir_fixture_init(&f);
        /* Same content, mode and owner, another inode: one the attacker can still write. */
        _cleanup_free_ char *outside = NULL, *a = dir_fixture_path(&f, true, "a.json");
        ASSERT_TRUE(asprintf(&outside, "%s/outside", f.alt) >= 0);
        make_file(outside, "a\n", 0644);
        alt_unlock(&f, "");
        alt_unlock(&f, "a.json");
        ASSERT_OK(RET_NERRNO(unlink(a)));
        ASSERT_OK(RET_NERRNO(link(outside, a)));

        assert_dir_repaired(&f, "replaced by another file");
        struct stat st;
        ASSERT_OK(RET_NERRNO(stat(outside, &st)));
        ASSERT_EQ(st.st_nlink, 1);
        ASSERT_TRUE(!is_immutable(outside));
        dir_fixture_done(&f);
}

LOCK_TEST(symlink_in_a_locked_directory_is_kept) {
        DirFixture f = {};
        dir_fixture_init(&f);
        _cleanup_free_ char *link = dir_fixture_path(&f, true, "link");
        alt_unlock(&f, "");
        ASSERT_OK(RET_NERRNO(unlink(link)));
        ASSERT_OK(RET_NERRNO(symlink("/etc/shadow", link)));

        assert_dir_repaired(&f, "content replaced");
        char target[64] = "";
        ASSERT_EQ(readlink(link, target, sizeof(target) - 1), (ssize_t) strlen("a.json"));
        ASSERT_STREQ(target, "a.json");
        dir_fixture_done(&f);
}

LOCK_TEST(directory_with_other_file_types_is_refused) {
        _cleanup_free_ char *dir = tmp_path("conf"), *fifo = tmp_path("conf/fifo");
        ASSERT_OK(RET_NERRNO(mkdir(dir, 0755)));
        ASSERT_OK(RET_NERRNO(mkfifo(fifo, 0644)));
        _cleanup_(lockset_freep) LockSet *set = NULL;
        ASSERT_OK(lockset_new(&set));
        _cleanup_free_ char *why = NULL;
        ASSERT_EQ(lockset_add(set, dir, &why), -EINVAL);
        ASSERT_CONTAINS(why, "/conf/fifo' is neither a regular file, a directory nor a symlink");
        ASSERT_EQ(mount_count(dir), 0);
}

/* A subdirectory swapped for a symlink to a directory outside, holding a file of the same
 * name: neither the check nor the repair goes through the symlink (openat2's
 * RESOLVE_NO_SYMLINKS, or the component walk of _without_openat2). */
LOCK_TEST(directory_replaced_by_a_symlink_is_not_followed) {
        DirFixture f = {};
        dir_fixture_init(&f);
        _cleanup_free_ char *outside = tmp_path("outside"), *decoy = tmp_path("outside/b.json");
        _cleanup_free_ char *sub = dir_fixture_path(&f, true, "sub"), *b = dir_fixture_path(&f, true, "sub/b.json");
        ASSERT_OK(RET_NERRNO(mkdir(outside, 0755)));
        make_file(decoy, "decoy\n", 0644);
        alt_unlock(&f, "");
        alt_unlock(&f, "sub");
        alt_unlock(&f, "sub/b.json");
        ASSERT_OK(RET_NERRNO(unlink(b)));
        ASSERT_OK(RET_NERRNO(rmdir(sub)));
        ASSERT_OK(RET_NERRNO(symlink(outside, sub)));

        assert_dir_repaired(&f, "replaced by another file");
        struct stat st;
        ASSERT_OK(RET_NERRNO(lstat(sub, &st)));
        ASSERT_TRUE(S_ISDIR(st.st_mode));
        assert_content(decoy, "decoy\n");
        ASSERT_OK(RET_NERRNO(stat(decoy, &st)));
        ASSERT_EQ(st.st_mode & 07777, 0644);
        dir_fixture_done(&f);
}
