/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/magic.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "broker-actor.h"
#include "broker.h"
#include "helper.h"
#include "mount-util.h"
#include "procfs-render.h"
#include "uidrange.h"
#include "util.h"

#define MASK_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
/* The kernel's limit (OVL_MAX_STACK). */
#define OVERLAY_LAYERS_MAX 500
#define SUBHELPER_TIMEOUT_MS (BROKER_HELPER_TIMEOUT_SEC * 1000)

/* ---- the helper: namespaces ---- */

/* Besides its user and mount namespaces, the caller's other namespaces where they are not
 * ours: sysfs shows the mounter's network, mqueue its IPC, cgroup2 its cgroup namespace.
 * Not its pid namespace: a new proc is given it (the "pidns" option), so the helper never
 * shows in the container's pid namespace. */
static int namespaces_of(pid_t pid) {
        static const struct {
                const char *name;
                int flag;
        } types[] = {
                { "net", CLONE_NEWNET }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS }, { "cgroup", CLONE_NEWCGROUP },
        };
        int flags = CLONE_NEWNS | CLONE_NEWUSER;
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                char path[64];
                uint64_t ours, theirs;
                snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, types[i].name);
                if (ns_inode(AT_FDCWD, path, &theirs) < 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/self/ns/%s", types[i].name);
                if (ns_inode(AT_FDCWD, path, &ours) < 0 || ours != theirs)
                        flags |= types[i].flag;
        }
        return flags;
}

static int cmp_int(const void *a, const void *b) {
        return *(const int *) a - *(const int *) b;
}

/* The helper runs as the caller in its namespaces: whatever the agent holds open must not
 * be reachable from there. */
static void close_all_but(int *keep, size_t n) {
        qsort(keep, n, sizeof(int), cmp_int);
        int from = 3;
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < from)
                        continue;
                if (keep[i] > from)
                        (void) close_range((unsigned) from, (unsigned) keep[i] - 1, 0);
                from = keep[i] + 1;
        }
        (void) close_range((unsigned) from, ~0U, 0);
}

/* Not ptrace-able nor inspectable through /proc from the container. Again after every
 * change of ids: that resets it to fs.suid_dumpable. */
static void helper_guard(void) {
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* The first thing in every helper process, before it joins any namespace. It outlives the
 * agent and the helper parent, to finish its one call and answer it (an agent killed
 * meanwhile never could), but not its deadline. */
static void helper_prepare(void) {
        helper_guard();
        sigset_t all;
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        alarm(BROKER_HELPER_TIMEOUT_SEC);
}

static const BrokerJob *answering; /* the call the helper answers (helper_answer_hook()) */
static int kept_offer = -EBADF;    /* a new kept helper's: the agent's end of its channel */

/* Answers the container's call with the helper's result before the agent hears it. A new
 * kept helper whose first job succeeded gives the agent its channel with that answer, once
 * (on failure it exits after answering). */
static int answer_call(int error, int detail, int *fd) {
        int kept = 0;
        if (error == 0 && kept_offer >= 0 && *fd < 0) {
                *fd = kept_offer;
                kept_offer = -EBADF;
                kept = BROKER_DETAIL_KEPT;
        }
        struct seccomp_notif_resp resp = { .id = answering->id, .error = error };
        return kept | (ioctl(answering->fds[BROKER_FD_NOTIFY], SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 ? BROKER_DETAIL_ANSWERED : 0);
}

/* Takes the caller's ids and capabilities, in its user namespace (where the helper holds
 * every capability until then); its groups are ours already (broker_actor_run()). */
static void helper_become(int socket, const BrokerJob *q) {
        const BrokerCredentials *cr = &q->creds;
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {
                { .effective = (uint32_t) cr->cap_eff, .permitted = (uint32_t) cr->cap_prm,
                  .inheritable = (uint32_t) cr->cap_inh },
                { .effective = (uint32_t) (cr->cap_eff >> 32), .permitted = (uint32_t) (cr->cap_prm >> 32),
                  .inheritable = (uint32_t) (cr->cap_inh >> 32) },
        };
        /* The ids change without touching the capabilities; capset() then sets them. */
        if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0 ||
            setresgid(cr->gid[0], cr->gid[1], cr->gid[2]) < 0 || setresuid(cr->uid[0], cr->uid[1], cr->uid[2]) < 0)
                helper_fail(socket, -EPERM, "cannot take the ids of process %d: %m", (int) q->pid);
        (void) setfsgid(cr->gid[3]);
        (void) setfsuid(cr->uid[3]);
        if ((gid_t) setfsgid((gid_t) -1) != cr->gid[3] || (uid_t) setfsuid((uid_t) -1) != cr->uid[3])
                helper_fail(socket, -EPERM, "cannot take the file system ids of process %d", (int) q->pid);
        if (syscall(SYS_capset, &header, data) < 0)
                helper_fail(socket, -EPERM, "cannot take the capabilities of process %d: %m", (int) q->pid);
        helper_guard();
}

_noreturn_ _printf_(3, 4) static void helper_deny(int socket, int error, const char *format, ...) {
        char reason[BROKER_REASON_MAX];
        va_list ap;
        va_start(ap, format);
        vsnprintf(reason, sizeof(reason), format, ap);
        va_end(ap);
        helper_send_detail(socket, -EBADF, error, BROKER_DETAIL_DENIED, reason);
        _exit(EXIT_FAILURE);
}

/* ---- the helper: the caller's mount table ---- */

typedef struct Context {
        int socket;
        const BrokerJob *q;
        const BrokerRules *rules;
        int proc_fd; /* the agent's /proc: self/fd/N names our fds from anywhere */
        int self_links[2]; /* a mount's source and target, where each is the caller's own link (self_link_open()) */
        MountTable table;
        int *devnull; /* clones of the VM's /dev/null, for masks */
        size_t n_devnull;
        int emulated[_PROCFS_FILE_MAX]; /* a new proc or sysfs: clones of the /proc emulation's files, or -EBADF */
        int device; /* mknod: a clone of the VM's node */
} Context;

static int fd_path(const Context *x, int fd, char *buf, size_t size) {
        char link[64];
        snprintf(link, sizeof(link), "self/fd/%d", fd);
        ssize_t n = readlinkat(x->proc_fd, link, buf, size - 1);
        if (n < 0)
                return -errno;
        if ((size_t) n >= size - 1)
                return -ENAMETOOLONG;
        buf[n] = '\0';
        return 0;
}

/* What follows "/proc/self/" or "/proc/thread-self/" in path, NULL if neither. */
static const char *proc_self_rest(const char *path) {
        const char *rest = path_startswith(path, "/proc/self");
        return rest ?: path_startswith(path, "/proc/thread-self");
}

/* Whether the caller's /proc (we are in its root) is a procfs. */
static bool proc_is_procfs(void) {
        struct statfs sf;
        return statfs("/proc", &sf) >= 0 && sf.f_type == PROC_SUPER_MAGIC;
}

static bool name_of(const char *name, const char *charset) {
        return name && *name && strspn(name, charset) == strlen(name);
}

/* The caller's own namespace or open file, for path "/proc/self/ns/NAME" or
 * "/proc/self/fd/N" (thread-self too), opened O_PATH from its /proc/PID directory as the
 * agent opened it (the pid was the caller's then, and a pid used again is another
 * directory), before the helper takes the caller's ids; -ENOENT for any other path. A
 * process may always follow these links of its own (the kernel's same-thread-group rule),
 * also when it is not dumpable and so no other process with its ids may (any that changed
 * its ids without an exec). NAME and N are one component, neither "." nor "..": nothing is
 * walked past the link. */
static int self_link_open(const Context *x, const char *path) {
        const char *rest = proc_self_rest(path);
        if (!rest || x->q->fds[BROKER_FD_PROC] < 0 ||
            !(name_of(path_startswith(rest, "ns"), "abcdefghijklmnopqrstuvwxyz_") ||
              name_of(path_startswith(rest, "fd"), "0123456789")))
                return -ENOENT;
        return RET_NERRNO(openat(x->q->fds[BROKER_FD_PROC], rest, O_PATH | O_CLOEXEC));
}

/* Whether path has a ".." component. */
static bool has_dot_dot(const char *path) {
        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
                        return true;
        return false;
}

/* Opens path as the caller would. "/proc/self/..." and "/proc/thread-self/..." name the
 * caller's own entries (runc mounts onto "/proc/self/fd/N", the directory it holds open):
 * where the caller's /proc is a proc, they are reached through the agent's /proc, as the
 * helper is in none of the caller's pid namespaces; self_link is path as self_link_open()
 * opened it, or negative. Not with a ".." component: from the agent's /proc that climbs to
 * the VM's root, where the caller's own climbs to its root. Otherwise the helper acts with
 * the caller's credentials, so the kernel checks the caller's right to follow its own links. */
static int caller_open(const Context *x, const char *path, int self_link, int flags) {
        const char *rest = proc_self_rest(path);
        if (rest && *rest && !has_dot_dot(rest) && proc_is_procfs()) {
                if (self_link >= 0)
                        return RET_NERRNO(fcntl(self_link, F_DUPFD_CLOEXEC, 3));
                char own[PATH_MAX];
                if (snprintf(own, sizeof(own), "%d/%s", (int) x->q->pid, rest) >= (int) sizeof(own))
                        return -ENAMETOOLONG;
                return RET_NERRNO(openat(x->proc_fd, own, flags | O_CLOEXEC));
        }
        return RET_NERRNO(openat(AT_FDCWD, path, flags | O_CLOEXEC));
}

/* The caller's mount table, from the mountinfo the agent opened (if the call needs it). An
 * unmount looks at the mount of fd and its parent only, and at no mount's root: where the
 * kernel has statmount(2), it asks it about those two instead of reading every mount. */
static void table_read(Context *x, int fd) {
        int r = fd >= 0 ? mount_table_stat(fd, &x->table) : -EBADF;
        if (r < 0 && x->q->fds[BROKER_FD_MOUNTINFO] >= 0)
                r = mount_table_read(x->q->fds[BROKER_FD_MOUNTINFO], &x->table);
        if (r < 0 && r != -EBADF)
                helper_fail(x->socket, r, "cannot read the mount table: %s", strerror(-r));
}

static const MountEntry *mount_of(const Context *x, int fd) {
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0 ||
            !(stx.stx_mask & STATX_MNT_ID))
                return NULL;
        return broker_table_find(&x->table, (int) stx.stx_mnt_id);
}

/* ---- the helper: mount ---- */

/* Writes data (at most BROKER_DATA_MAX) to ret with each "uid=N" or "gid=N" whose N is
 * in the container's range replaced by its id inside. File systems show these ids as the
 * initial user namespace has them (tmpfs, devpts, proc), and mount(8) passes what it read
 * back in a remount, which the kernel then refuses. No id inside is in the range
 * (UID_RANGE_FIRST >= UID_RANGE_SIZE), so nothing else changes. */
_Static_assert(UID_RANGE_FIRST >= UID_RANGE_SIZE, "an id inside could be one of a range");
static void data_ids_inside(uint32_t base, const char *data, char *ret /* BROKER_DATA_MAX + 1 */) {
        char *o = ret;
        for (const char *p = data;;) {
                size_t n = strcspn(p, ","), digits = n > 4 ? strspn(p + 4, "0123456789") : 0;
                unsigned long id = digits == n - 4 && digits <= 10 ? strtoul(p + 4, NULL, 10) : 0;
                if ((STARTSWITH(p, "uid=") || STARTSWITH(p, "gid=")) && id >= base && id - base < UID_RANGE_SIZE)
                        o += sprintf(o, "%.4s%lu", p, id - base);
                else
                        o = mempcpy(o, p, n);
                p += n;
                if (!*p)
                        break;
                *o++ = *p++;
        }
        *o = '\0';
}

/* A remount done by mount(2) itself, as the caller's own call would be (each file system's
 * legacy option parser, MS_RMT_MASK, the atime kept when none is given), on the mount e
 * checked: through the magic link of its fd.
 *
 * The container's root overlay belongs to the user namespace it was mounted in, not the
 * caller's, so the kernel refuses a remount of its super block even where runc would not.
 * Overlayfs ignores a legacy remount's options, so one that keeps its super block flags
 * changes only the mount's: that part is done, as a bind remount with the same flags. So
 * is one that only makes it read-only ("mount -o remount,ro /"): the mount alone becomes
 * read-only, which is all the container sees, and "remount,rw" undoes it. */
static int remount_fd(const Context *x, int fd, const MountEntry *e, unsigned long flags, const char *data) {
        char link[64], own[BROKER_DATA_MAX + 1];
        snprintf(link, sizeof(link), "self/fd/%d", fd);
        if (data)
                data_ids_inside(x->q->base, data, own);
        if (fchdir(x->proc_fd) < 0)
                return -errno;
        int r = RET_NERRNO(mount(NULL, link, NULL, flags, data ? own : NULL));
        unsigned long sb_mask, have = broker_sb_flags(e->super_options, &sb_mask), want = flags & sb_mask;
        if (r == -EPERM && !(flags & MS_BIND) && streq(e->fstype, "overlay") && (want & ~MS_RDONLY) == (have & ~MS_RDONLY) &&
            ((want & MS_RDONLY) || !(have & MS_RDONLY)))
                r = RET_NERRNO(mount(NULL, link, NULL, flags | MS_BIND, NULL));
        return r;
}

/* Refuses the call (detail 1) unless the rules let it through. */
static void check(Context *x, const BrokerRequest *request) {
        BrokerDecision v;
        broker_decide(x->rules, request, &v);
        if (v.action != BROKER_ACTION_PERFORM)
                helper_deny(x->socket, v.action == BROKER_ACTION_REFUSE ? v.error : -EPERM, "%s", v.reason);
}

static void layer_check(Context *x, int fd, const char *path) {
        struct statfs sf;
        if (fstatfs(fd, &sf) < 0)
                helper_fail(x->socket, -errno, "overlay layer '%s': %m", path);
        check(x, &(BrokerRequest) { .check = BROKER_CHECK_LAYER, .table = &x->table, .path = path,
                                    .mount = mount_of(x, fd), .fs_magic = (unsigned long) sf.f_type });
}

/* Opens and checks the layer at path (against the caller's root and working directory)
 * and names it for the overlay as "self/fd/N", a path relative to the agent's /proc, the
 * helper's working directory while the overlay is made: the magic link is the directory
 * checked. Every kernel takes a layer as a path, where fds as layers are Linux 6.13's.
 * The fd stays open until the helper exits: before Linux 6.5 the kernel resolves the layers
 * only when the overlay is created. */
static int layer_open(Context *x, const char *path, char link[static 32], char *reason, size_t size) {
        char where[PATH_MAX];
        int fd = openat(x->q->fds[BROKER_FD_CWD], path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int r = fd < 0 ? -errno : fd_path(x, fd, where, sizeof(where));
        if (r < 0) {
                snprintf(reason, size, "overlay layer '%s': %s", path, strerror(-r));
                return r;
        }
        layer_check(x, fd, where);
        snprintf(link, 32, "self/fd/%d", fd);
        return 0;
}

static int layer_set(int fs, const char *key, const char *value, char *reason, size_t size) {
        if (fsconfig(fs, FSCONFIG_SET_STRING, key, value, 0) < 0) {
                int r = -errno;
                char m[200];
                snprintf(reason, size, "option '%s': %s %s", key, strerror(-r), fs_context_message(fs, m, sizeof(m)));
                return r;
        }
        return 0;
}

/* Overlay's layer options, each layer checked and named by layer_open(). "lowerdir=a:b::c"
 * (escaped by "\"; data-only layers after "::") stays one option where its value fits the
 * 255 bytes fsconfig() takes (every kernel), else becomes lowerdir+ and datadir+ ones (Linux
 * 6.8). 1 when done, 0 if key is not a layer option, or -errno with reason. */
static int layers_apply(Context *x, int fs, const char *key, char *value, char *reason, size_t size) {
        char link[32];
        int r;
        if (streq(key, "upperdir") || streq(key, "workdir") || streq(key, "lowerdir+") || streq(key, "datadir+")) {
                r = layer_open(x, value, link, reason, size);
                return r < 0 ? r : layer_set(fs, key, link, reason, size) ?: 1;
        }
        if (!streq(key, "lowerdir"))
                return 0;
        char links[OVERLAY_LAYERS_MAX][32], joined[256];
        bool data[OVERLAY_LAYERS_MAX];
        size_t n = 0, length = 0;
        bool data_next = false, data_after_previous = false;
        for (char *p = value; *p;) {
                char *layer = p, *o = p;
                while (*p && *p != ':') {
                        if (p[0] == '\\' && p[1])
                                p++;
                        *o++ = *p++;
                }
                bool data_after = p[0] == ':' && p[1] == ':';
                p += *p ? (data_after ? 2 : 1) : 0;
                *o = '\0';
                if (n == OVERLAY_LAYERS_MAX) {
                        snprintf(reason, size, "more than %d overlay layers", OVERLAY_LAYERS_MAX);
                        return -E2BIG;
                }
                r = layer_open(x, layer, links[n], reason, size);
                if (r < 0)
                        return r;
                if (length < sizeof(joined))
                        length += (size_t) snprintf(joined + length, sizeof(joined) - length, "%s%s",
                                                    n == 0 ? "" : data_after_previous ? "::" : ":", links[n]);
                data[n++] = data_next;
                data_after_previous = data_after;
                data_next = data_next || data_after;
        }
        if (length < sizeof(joined))
                return layer_set(fs, "lowerdir", joined, reason, size) ?: 1;
        for (size_t i = 0; i < n; i++)
                if ((r = layer_set(fs, data[i] ? "datadir+" : "lowerdir+", links[i], reason, size)) < 0)
                        return r;
        return 1;
}

/* "a,b=c,d": each option as fsconfig() takes it, like the kernel's legacy parser; "\,"
 * is a comma inside an option (overlay paths). */
static int fs_apply_data(Context *x, int fs, const char *data, char *reason, size_t size) {
        if (!data)
                return 0;
        _cleanup_free_ char *copy = strdup(data);
        if (!copy)
                return -ENOMEM;
        for (char *p = copy; *p;) {
                char *option = p, *o = p;
                while (*p && *p != ',') {
                        if (p[0] == '\\' && p[1] == ',') {
                                *o++ = ',';
                                p += 2;
                        } else
                                *o++ = *p++;
                }
                bool more = *p == ',';
                *o = '\0';
                p = more ? p + 1 : p;
                if (!*option)
                        continue;
                char *value = strchr(option, '=');
                if (value)
                        *value++ = '\0';
                int layers = value ? layers_apply(x, fs, option, value, reason, size) : 0;
                if (layers < 0)
                        return layers;
                if (layers > 0)
                        continue;
                if (fsconfig(fs, value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, option, value, 0) < 0) {
                        int r = -errno;
                        char m[200];
                        snprintf(reason, size, "option '%s': %s %s", option, strerror(-r), fs_context_message(fs, m, sizeof(m)));
                        return r;
                }
        }
        return 0;
}

static int fs_apply_sb_flags(int fs, unsigned long flags) {
        static const struct {
                unsigned long flag;
                const char *name;
        } sb_flags[] = { { MS_RDONLY, "ro" }, { MS_SYNCHRONOUS, "sync" }, { MS_DIRSYNC, "dirsync" }, { MS_LAZYTIME, "lazytime" } };
        for (size_t i = 0; i < ELEMENTSOF(sb_flags); i++)
                if ((flags & sb_flags[i].flag) && fsconfig(fs, FSCONFIG_SET_FLAG, sb_flags[i].name, NULL, 0) < 0)
                        return -errno;
        return 0;
}

static int tmpfs_empty_ro(void) {
        _cleanup_close_ int fs = RET_NERRNO(fsopen("tmpfs", FSOPEN_CLOEXEC));
        if (fs < 0)
                return fs;
        if (fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "1", 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        return RET_NERRNO(fsmount(fs, FSMOUNT_CLOEXEC, MASK_ATTRS));
}

/* Gives a detached proc or sysfs the container's masks, as runc does for its /proc: the
 * read-only binds first, then /dev/null over masked files and an empty read-only tmpfs
 * over masked directories. Nothing is attached yet, so nobody sees it unmasked. */
static void mask_fs(Context *x, int mnt, bool proc) {
        const char *prefix = proc ? "/proc/" : "/sys/";
        /* The network sysctls are the reader's network namespace's, which the kernel lets
         * only that namespace's owner change: they stay writable over the read-only
         * /proc/sys (a runc in the container sets them for its containers). */
        _cleanup_close_ int net = proc ? open_tree(mnt, "sys/net", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) : -EBADF;
        if (proc && net < 0 && errno != ENOENT)
                helper_fail(x->socket, -errno, "cannot copy '/proc/sys/net': %m");
        for (size_t i = 0; proc && i < broker_n_proc_readonly; i++) {
                _cleanup_close_ int fd = open_tree(mnt, broker_proc_readonly[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                if (fd < 0 && errno == ENOENT)
                        continue;
                struct mount_attr attr = { .attr_set = MASK_ATTRS };
                if (fd < 0 || mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ||
                    move_mount(fd, "", mnt, broker_proc_readonly[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        helper_fail(x->socket, -errno, "cannot make '%s%s' read-only: %m", prefix, broker_proc_readonly[i]);
        }
        if (net >= 0 && move_mount(net, "", mnt, "sys/net", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                helper_fail(x->socket, -errno, "cannot keep '/proc/sys/net' writable: %m");
        size_t next_devnull = 0;
        for (size_t i = 0; i < x->rules->n_masked; i++) {
                const char *m = x->rules->masked[i];
                if (!STARTSWITH(m, prefix) || !m[strlen(prefix)])
                        continue;
                const char *rel = m + strlen(prefix);
                struct stat st;
                if (fstatat(mnt, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;
                        helper_fail(x->socket, -errno, "cannot mask '%s': %m", m);
                }
                _cleanup_close_ int cover = -EBADF;
                if (S_ISDIR(st.st_mode))
                        cover = tmpfs_empty_ro();
                else if (next_devnull < x->n_devnull)
                        cover = TAKE_FD(x->devnull[next_devnull++]);
                else
                        cover = -ENOSPC;
                if (cover < 0)
                        helper_fail(x->socket, cover, "cannot mask '%s': %s", m, strerror(-cover));
                if (move_mount(cover, "", mnt, rel, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        helper_fail(x->socket, -errno, "cannot mask '%s': %m", m);
        }
        /* The container's own meminfo, cpuinfo, ...: as over its first /proc and /sys. */
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++) {
                const char *rel = x->emulated[i] >= 0 ? path_startswith(procfs_files[i].path, prefix) : NULL;
                if (!rel || faccessat(mnt, rel, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (move_mount(x->emulated[i], "", mnt, rel, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        helper_fail(x->socket, -errno, "cannot cover '%s' with the container's own: %m", procfs_files[i].path);
        }
}

typedef struct MaskJob {
        const Context *x;
        int mnt;
        bool proc;
} MaskJob;

/* Masks a new proc or sysfs before anyone sees it, and sends it back with its masks as one
 * detached tree. Mounting on a detached mount is Linux 6.15's: before, the masks need the
 * proc attached. So it is attached in a user and mount namespace of this process's own,
 * whose copies of the caller's mounts are slaves of theirs (nothing propagates back). */
static void mask_privately(int socket, const void *userdata) {
        const MaskJob *job = userdata;
        Context x = *job->x;
        x.socket = socket;
        const char *what = job->proc ? "proc" : "sysfs";
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                helper_fail(socket, -errno, "cannot make a namespace to mask the %s in: %m", what);
        if (move_mount(job->mnt, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                helper_fail(socket, -errno, "cannot attach the %s to mask it: %m", what);
        mask_fs(&x, job->mnt, job->proc);
        int tree = open_tree(job->mnt, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (tree < 0)
                helper_fail(socket, -errno, "cannot copy the masked %s: %m", what);
        helper_send(socket, tree, 0, "");
}

static void proc_opener(int socket, const void *unused) {
        int fs = fsopen("proc", FSOPEN_CLOEXEC);
        if (fs < 0)
                helper_fail(socket, -errno, "cannot create a proc: %m");
        helper_send(socket, fs, 0, "");
}

/* A proc context for the caller's pid namespace. The "pidns" option gives it one (Linux
 * 6.15); before that, a proc shows the pid namespace of whoever opened the context: a child
 * of the helper's in the caller's pid namespace opens it and exits, so that the helper
 * itself never shows there. */
static int proc_context_open(Context *x) {
        const BrokerJob *q = x->q;
        int pidns = q->fds[BROKER_FD_PIDNS];
        char m[200];
        _cleanup_close_ int fs = RET_NERRNO(fsopen("proc", FSOPEN_CLOEXEC));
        if (fs < 0)
                helper_fail(x->socket, fs, "cannot create a proc: %s", strerror(-fs));
        if (fsconfig(fs, FSCONFIG_SET_FD, "pidns", NULL, pidns) >= 0)
                return TAKE_FD(fs);
        if (errno != EINVAL)
                helper_fail(x->socket, -errno, "cannot give the proc the pid namespace of process %d: %m %s", (int) q->pid,
                            fs_context_message(fs, m, sizeof(m)));
        fs = safe_close(fs);
        if (setns(pidns, CLONE_NEWPID) < 0)
                helper_fail(x->socket, -errno, "cannot join the pid namespace of process %d: %m", (int) q->pid);
        Helper opener;
        _cleanup_free_ char *error = NULL;
        int r = helper_start(proc_opener, NULL, &opener);
        if (r >= 0) {
                r = helper_wait(&opener, SUBHELPER_TIMEOUT_MS, "proc", &fs, &error);
                helper_done(&opener);
        }
        if (r < 0)
                helper_fail(x->socket, r, "cannot create a proc in the pid namespace of process %d: %s", (int) q->pid,
                            error ?: strerror(-r));
        return TAKE_FD(fs);
}

static void do_mount_new(Context *x, int target_fd) {
        const BrokerJob *q = x->q;
        int socket = x->socket;
        char m[200], reason[400] = "";
        _cleanup_close_ int fs = q->fds[BROKER_FD_PIDNS] >= 0 ? proc_context_open(x) : fsopen(q->fstype, FSOPEN_CLOEXEC);
        if (fs < 0)
                helper_fail(socket, -errno, "cannot create a %s: %m", q->fstype);
        if (q->has_source && fsconfig(fs, FSCONFIG_SET_STRING, "source", q->source, 0) < 0)
                helper_fail(socket, -errno, "source '%s': %m %s", q->source, fs_context_message(fs, m, sizeof(m)));
        int r = fs_apply_sb_flags(fs, q->flags);
        if (r < 0)
                helper_fail(socket, r, "%s: %s", q->fstype, strerror(-r));
        /* Overlay layers are named relative to the agent's /proc (layer_open()), and some
         * kernels resolve them only at FSCONFIG_CMD_CREATE. */
        if (fchdir(x->proc_fd) < 0)
                helper_fail(socket, -errno, "cannot enter /proc: %m");
        r = fs_apply_data(x, fs, q->has_data ? q->data : NULL, reason, sizeof(reason));
        if (r < 0)
                helper_fail(socket, r, "%s: %s", q->fstype, reason);
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                helper_fail(socket, -errno, "cannot create a %s: %m %s", q->fstype, fs_context_message(fs, m, sizeof(m)));
        _cleanup_close_ int mnt = fsmount(fs, FSMOUNT_CLOEXEC, broker_mount_attrs(q->flags));
        if (mnt < 0)
                helper_fail(socket, -errno, "cannot mount a %s: %m", q->fstype);
        if (streq(q->fstype, "proc") || streq(q->fstype, "sysfs")) {
                MaskJob job = { .x = x, .mnt = mnt, .proc = streq(q->fstype, "proc") };
                Helper masker;
                _cleanup_free_ char *error = NULL;
                r = helper_start(mask_privately, &job, &masker);
                if (r >= 0) {
                        safe_close(mnt);
                        r = helper_wait(&masker, SUBHELPER_TIMEOUT_MS, q->fstype, &mnt, &error);
                        helper_done(&masker);
                }
                if (r < 0)
                        helper_fail(socket, r, "%s", error ?: strerror(-r));
        }
        if (move_mount(mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                helper_fail(socket, -errno, "cannot mount on '%s': %m", q->target);
}

static void do_mount(Context *x) {
        const BrokerJob *q = x->q;
        int socket = x->socket;
        BrokerMountOp op = broker_mount_op(q->flags);
        char path[PATH_MAX], source_path[PATH_MAX];

        _cleanup_close_ int target_fd = caller_open(x, q->target, x->self_links[1], O_PATH);
        if (target_fd < 0)
                helper_fail(socket, target_fd, "'%s': %s", q->target, strerror(-target_fd));
        int r = fd_path(x, target_fd, path, sizeof(path));
        if (r < 0)
                helper_fail(socket, r, "'%s': %s", q->target, strerror(-r));
        BrokerRequest request = { .check = BROKER_CHECK_MOUNT, .syscall = q->syscall, .table = &x->table,
                                  .path = path, .flags = q->flags };

        _cleanup_close_ int source_fd = -EBADF;
        if (op == BROKER_MOUNT_BIND || op == BROKER_MOUNT_MOVE) {
                source_fd = caller_open(x, q->source, x->self_links[0], O_PATH);
                if (source_fd < 0)
                        helper_fail(socket, source_fd, "'%s': %s", q->source, strerror(-source_fd));
                r = fd_path(x, source_fd, source_path, sizeof(source_path));
                if (r < 0)
                        helper_fail(socket, r, "'%s': %s", q->source, strerror(-r));
                struct statfs sf;
                struct stat st;
                if (fstatfs(source_fd, &sf) < 0 || fstat(source_fd, &st) < 0)
                        helper_fail(socket, -errno, "'%s': %m", source_path);
                request.source_path = source_path;
                request.source_mount = mount_of(x, source_fd);
                request.source_fs_magic = (unsigned long) sf.f_type;
                request.source_null = S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
        }
        if (op == BROKER_MOUNT_REMOUNT || op == BROKER_MOUNT_REMOUNT_BIND)
                request.mount = mount_of(x, target_fd);
        check(x, &request);

        switch (op) {
        case BROKER_MOUNT_REMOUNT_BIND:
        case BROKER_MOUNT_REMOUNT:
                r = remount_fd(x, target_fd, request.mount, q->flags, q->has_data ? q->data : NULL);
                if (r < 0)
                        helper_fail(socket, r, "cannot remount '%s': %s", path, strerror(-r));
                break;
        case BROKER_MOUNT_BIND: {
                /* A file on a directory or the reverse: ENOTDIR, as mount(2) says it (runc
                 * then masks a directory with a tmpfs); move_mount() would say EINVAL. */
                struct stat source_st, target_st;
                if (fstat(source_fd, &source_st) < 0 || fstat(target_fd, &target_st) < 0)
                        helper_fail(socket, -errno, "cannot bind '%s' on '%s': %m", source_path, path);
                if (S_ISDIR(source_st.st_mode) != S_ISDIR(target_st.st_mode))
                        helper_fail(socket, -ENOTDIR, "cannot bind '%s' on '%s': %s", source_path, path, strerror(ENOTDIR));
                unsigned recursive = q->flags & MS_REC ? AT_RECURSIVE : 0;
                _cleanup_close_ int tree = open_tree(source_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | recursive);
                if (tree < 0)
                        helper_fail(socket, -errno, "cannot copy the mount at '%s': %m", source_path);
                if (move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        helper_fail(socket, -errno, "cannot bind '%s' on '%s': %m", source_path, path);
                break;
        }
        case BROKER_MOUNT_PROPAGATION: {
                struct mount_attr attr = { .propagation = q->flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE) };
                if (mount_setattr(target_fd, "", AT_EMPTY_PATH | (q->flags & MS_REC ? AT_RECURSIVE : 0), &attr,
                                  sizeof(attr)) < 0)
                        helper_fail(socket, -errno, "cannot change the propagation of '%s': %m", path);
                break;
        }
        case BROKER_MOUNT_MOVE:
                if (move_mount(source_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        helper_fail(socket, -errno, "cannot move '%s' to '%s': %m", source_path, path);
                break;
        case BROKER_MOUNT_NEW:
                do_mount_new(x, target_fd);
                break;
        }
        helper_send(socket, -EBADF, 0, "");
}

/* ---- the helper: umount2 and mknod ---- */

static void do_umount(Context *x) {
        const BrokerJob *q = x->q;
        int socket = x->socket;
        char path[PATH_MAX];
        _cleanup_close_ int fd = caller_open(x, q->target, -EBADF, O_PATH | (q->flags & UMOUNT_NOFOLLOW ? O_NOFOLLOW : 0));
        if (fd < 0)
                helper_fail(socket, fd, "'%s': %s", q->target, strerror(-fd));
        int r = fd_path(x, fd, path, sizeof(path));
        if (r < 0)
                helper_fail(socket, r, "'%s': %s", q->target, strerror(-r));
        bool root = streq(path, "/");
        if (root) {
                /* What is mounted on top of the root (the old root after pivot_root(".", "."))
                 * is reached by "..", where the kernel follows mounts; "/" and "." stay below. */
                int top = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (top < 0)
                        helper_fail(socket, -errno, "'%s': %m", q->target);
                safe_close(fd);
                fd = top;
        }
        table_read(x, fd);
        check(x, &(BrokerRequest) { .check = BROKER_CHECK_UMOUNT, .syscall = q->syscall, .table = &x->table,
                                    .path = path, .mount = mount_of(x, fd) });
        if (root) {
                /* The kernel unmounts what is on top of the working directory's "." */
                if (fchdir(fd) < 0 || umount2(".", (int) (q->flags | UMOUNT_NOFOLLOW)) < 0)
                        helper_fail(socket, -errno, "cannot unmount '%s': %m", path);
                helper_send(socket, -EBADF, 0, "");
                return;
        }
        /* There is no umount by fd, and an fd on the mount would keep it busy: unmount its
         * name in the parent directory, once that is known to name the same mount. */
        char *slash = strrchr(path, '/');
        const char *name = slash + 1;
        *slash = '\0';
        _cleanup_close_ int parent = openat(AT_FDCWD, slash == path ? "/" : path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
        struct statx checked, there;
        if (parent < 0 ||
            statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &checked) < 0 ||
            statx(parent, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &there) < 0 ||
            checked.stx_mnt_id != there.stx_mnt_id)
                helper_fail(socket, -EBUSY, "'%s' changed while it was checked", path);
        fd = safe_close(fd);
        if (fchdir(parent) < 0 || umount2(name, (int) (q->flags | UMOUNT_NOFOLLOW)) < 0)
                helper_fail(socket, -errno, "cannot unmount '%s': %m", path);
        helper_send(socket, -EBADF, 0, "");
}

/* pivot_root(new_root, put_old) with the new root as resolved and checked: made the
 * working directory, it is "." to the kernel, and put_old is named from there. The
 * kernel moves every process whose root or directory is the old root, the caller too. */
static void do_pivot_root(Context *x) {
        const BrokerJob *q = x->q;
        int socket = x->socket;
        char path[PATH_MAX], old[PATH_MAX];
        _cleanup_close_ int fd = caller_open(x, q->target, -EBADF, O_PATH | O_DIRECTORY);
        _cleanup_close_ int old_fd = fd < 0 ? -EBADF : caller_open(x, q->source, -EBADF, O_PATH | O_DIRECTORY);
        int r = fd < 0 ? fd : old_fd < 0 ? old_fd : fd_path(x, fd, path, sizeof(path));
        if (r >= 0)
                r = fd_path(x, old_fd, old, sizeof(old));
        if (r < 0)
                helper_fail(socket, r, "'%s', '%s': %s", q->target, q->source, strerror(-r));
        check(x, &(BrokerRequest) { .check = BROKER_CHECK_PIVOT, .syscall = q->syscall, .table = &x->table,
                                    .path = path, .mount = mount_of(x, fd) });
        const char *under = path_startswith(old, path);
        if (!under)
                helper_fail(socket, -EINVAL, "'%s' is not under '%s'", old, path);
        if (fchdir(fd) < 0 || syscall(SYS_pivot_root, ".", *under ? under : ".") < 0)
                helper_fail(socket, -errno, "cannot make '%s' the root: %m", path);
        helper_send(socket, -EBADF, 0, "");
}

static void do_mknod(Context *x) {
        const BrokerJob *q = x->q;
        int socket = x->socket;
        int dir = q->fds[BROKER_FD_DIR] >= 0 ? q->fds[BROKER_FD_DIR] : AT_FDCWD;
        /* An empty file, as the caller would have made it; then, like the kernel, a device
         * only with CAP_MKNOD. */
        _cleanup_close_ int fd = openat(dir, q->target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, q->mode & 07777);
        if (fd < 0)
                helper_fail(socket, -errno, "cannot create '%s': %m", q->target);
        bool can = q->creds.cap_eff & (UINT64_C(1) << CAP_MKNOD);
        if (!can || move_mount(x->device, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                int r = can ? -errno : -EPERM;
                (void) unlinkat(dir, q->target, 0);
                helper_fail(socket, r, "cannot bind %s on '%s': %s", q->device, q->target, strerror(-r));
        }
        helper_send(socket, -EBADF, 0, "");
}

/* ---- the helper process ---- */

/* Joins the caller's namespaces (those of `namespaces` that are not ours), root and
 * directory, and takes its ids. */
static void enter_caller(const Context *x, int namespaces) {
        const BrokerJob *q = x->q;
        int socket = x->socket;
        /* The caller's groups, while in the agent's user namespace: in the caller's,
         * setgroups() may be denied (/proc/PID/setgroups, as "unshare -r" leaves it), and
         * setns() keeps them. Then its namespaces, root and directory, and its ids. */
        if (setgroups(q->creds.n_groups, q->creds.groups) < 0)
                helper_fail(socket, -EPERM, "cannot take the groups of process %d: %m", (int) q->pid);
        if (setns(q->fds[BROKER_FD_PIDFD], namespaces) < 0)
                helper_fail(socket, errno == ESRCH ? -ENOENT : -errno, "cannot join the namespaces of process %d: %m",
                            (int) q->pid);
        if (fchdir(q->fds[BROKER_FD_ROOT]) < 0 || chroot(".") < 0 || fchdir(q->fds[BROKER_FD_CWD]) < 0)
                helper_fail(socket, -errno, "cannot enter the root and directory of process %d: %m", (int) q->pid);
        helper_become(socket, q);
}

static void perform(Context *x) {
        const BrokerJob *q = x->q;
        switch (q->syscall) {
        case BROKER_SYSCALL_MOUNT:
                do_mount(x);
                break;
        case BROKER_SYSCALL_UMOUNT2:
                do_umount(x);
                break;
        case BROKER_SYSCALL_PIVOT_ROOT:
                do_pivot_root(x);
                break;
        case BROKER_SYSCALL_MKNOD:
        case BROKER_SYSCALL_MKNODAT:
                do_mknod(x);
                break;
        default:
                helper_deny(x->socket, -EPERM, "unexpected request");
        }
}

void broker_actor_run(int socket, const BrokerJob *q, const BrokerRules *rules) {
        Context x = { .socket = socket, .q = q, .rules = rules, .proc_fd = -EBADF, .device = -EBADF,
                      .self_links = { -EBADF, -EBADF } };
        int devnull[BROKER_MASKED_MAX];
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++)
                x.emulated[i] = -EBADF;

        helper_prepare();
        answering = q;
        helper_answer_hook(answer_call);
        int keep[_BROKER_FD_MAX + 2] = { socket, STDERR_FILENO };
        memcpy(keep + 2, q->fds, sizeof(q->fds));
        close_all_but(keep, ELEMENTSOF(keep));

        /* All that comes from the agent's side, before entering the container's. */
        x.proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (x.proc_fd < 0)
                helper_fail(socket, -errno, "cannot open /proc: %m");
        if (q->syscall != BROKER_SYSCALL_UMOUNT2)
                /* Read here: cgroup roots show as the reader's cgroup namespace has them. */
                table_read(&x, -EBADF);
        if (q->syscall == BROKER_SYSCALL_MOUNT) {
                x.self_links[0] = self_link_open(&x, q->source);
                x.self_links[1] = self_link_open(&x, q->target);
        }
        bool new_fs = q->syscall == BROKER_SYSCALL_MOUNT && q->has_fstype && broker_mount_op(q->flags) == BROKER_MOUNT_NEW;
        if (new_fs && (streq(q->fstype, "proc") || streq(q->fstype, "sysfs"))) {
                for (; x.n_devnull < rules->n_masked && x.n_devnull < BROKER_MASKED_MAX; x.n_devnull++) {
                        devnull[x.n_devnull] = open_tree(AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                        if (devnull[x.n_devnull] < 0)
                                helper_fail(socket, -errno, "cannot copy /dev/null: %m");
                }
                x.devnull = devnull;
                /* Before the caller's namespaces: the emulation's mount is in the agent's. */
                for (size_t i = 0; q->fds[BROKER_FD_EMULATION] >= 0 && i < _PROCFS_FILE_MAX; i++) {
                        char path[BROKER_EMULATION_DIR_MAX + 32];
                        snprintf(path, sizeof(path), "%.*s/%s", (int) sizeof(q->emulation_dir), q->emulation_dir, procfs_files[i].name);
                        x.emulated[i] = open_tree(q->fds[BROKER_FD_EMULATION], path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                        if (x.emulated[i] < 0)
                                helper_fail(socket, -errno, "cannot copy the /proc emulation's '%s': %m", path);
                }
        }
        if (q->device[0]) {
                x.device = open_tree(AT_FDCWD, q->device, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC };
                if (x.device < 0 || mount_setattr(x.device, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                        helper_fail(socket, -errno, "cannot copy '%s': %m", q->device);
        }

        enter_caller(&x, q->syscall == BROKER_SYSCALL_MOUNT ? namespaces_of(q->pid) : CLONE_NEWNS | CLONE_NEWUSER);
        perform(&x);
        _exit(EXIT_SUCCESS);
}

/* ---- kept helpers ---- */

bool broker_job_keepable(const BrokerJob *q) {
        if (q->syscall == BROKER_SYSCALL_UMOUNT2)
                return q->fds[BROKER_FD_PROC] < 0;
        return q->syscall == BROKER_SYSCALL_MOUNT && q->fds[BROKER_FD_PROC] < 0 && q->fds[BROKER_FD_PIDNS] < 0 &&
               q->fds[BROKER_FD_EMULATION] < 0 && !q->device[0] &&
               !(q->has_fstype && broker_mount_op(q->flags) == BROKER_MOUNT_NEW &&
                 (streq(q->fstype, "proc") || streq(q->fstype, "sysfs")));
}

static int kept_proc_fd = -EBADF;

void broker_actor_keep(int socket, const BrokerJob *q, int channel, int offer) {
        helper_prepare();
        answering = q;
        helper_answer_hook(answer_call);
        int keep[_BROKER_FD_MAX + 4] = { socket, STDERR_FILENO, channel, offer };
        memcpy(keep + 4, q->fds, sizeof(q->fds));
        close_all_but(keep, ELEMENTSOF(keep));
        kept_offer = offer;
        kept_proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (kept_proc_fd < 0)
                helper_fail(socket, -errno, "cannot open /proc: %m");
        Context x = { .socket = socket, .q = q };
        enter_caller(&x, namespaces_of(q->pid));
        alarm(0);
}

void broker_actor_serve(int socket, const BrokerJob *q, const BrokerRules *rules) {
        Context x = { .socket = socket, .q = q, .rules = rules, .proc_fd = kept_proc_fd, .device = -EBADF,
                      .self_links = { -EBADF, -EBADF } };
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++)
                x.emulated[i] = -EBADF;
        alarm(BROKER_HELPER_TIMEOUT_SEC);
        answering = q;
        helper_answer_hook(answer_call);
        if (q->syscall != BROKER_SYSCALL_UMOUNT2)
                table_read(&x, -EBADF);
        if (fchdir(q->fds[BROKER_FD_CWD]) < 0)
                helper_fail(socket, -errno, "cannot enter the directory of process %d: %m", (int) q->pid);
        perform(&x);
        mount_table_done(&x.table);
        alarm(0);
}

/* ---- the rules, handed over ---- */

#define RULES_SIZE_MAX (4u << 20)

int broker_rules_encode(const char *const *masked, size_t n_masked, const char *mountinfo, int *ret_fd) {
        _cleanup_close_ int fd = RET_NERRNO(memfd_create("stockade-rules", MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (fd < 0)
                return fd;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < n_masked; i++)
                r = write_all(fd, masked[i], strlen(masked[i]) + 1);
        if (r >= 0)
                r = write_all(fd, "", 1);
        if (r >= 0)
                r = write_all(fd, mountinfo, strlen(mountinfo) + 1);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int broker_rules_decode(int fd, bool with_initial, BrokerRules *ret, char **ret_blob, MountTable *ret_initial) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size < 2 || (uint64_t) st.st_size > RULES_SIZE_MAX)
                return -EBADMSG;
        size_t size = (size_t) st.st_size, slots = BROKER_MASKED_MAX + 1;
        _cleanup_free_ char *blob = malloc(slots * sizeof(char *) + size);
        if (!blob)
                return -ENOMEM;
        const char **masked = (const char **) (void *) blob;
        char *text = blob + slots * sizeof(char *);
        if (pread(fd, text, size, 0) != (ssize_t) size)
                return -EBADMSG;
        if (text[size - 1] != '\0')
                return -EBADMSG;
        size_t n = 0;
        char *p = text;
        for (; *p; p += strlen(p) + 1) {
                if (n >= BROKER_MASKED_MAX || p + strlen(p) + 1 >= text + size)
                        return -EBADMSG;
                masked[n++] = p;
        }
        p++;
        MountTable initial = {};
        if (with_initial) {
                char *copy = strdup(p);
                int r = copy ? mount_table_parse(copy, &initial) : -ENOMEM;
                if (r < 0)
                        return r;
        }
        *ret = (BrokerRules) { masked, n, NULL };
        *ret_initial = initial;
        *ret_blob = TAKE_PTR(blob);
        return 0;
}
