/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/securebits.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/param.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include "broker.h"
#include "helper.h"
#include "mount-util.h"
#include "spec.h"
#include "uidrange.h"
#include "util.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

#define FSTYPE_MAX 64
#define MOUNT_DATA_MAX 4096
#define SYSCALLS_MAX 8
/* Room for the kernel's notification and response structures, which may grow. */
#define NOTIF_SIZE_MAX 256
#define GROUPS_MAX 256
#define MASK_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)

typedef enum SyscallKind {
        SYSCALL_UNKNOWN,
        SYSCALL_MOUNT,
        SYSCALL_UMOUNT2,
        SYSCALL_MKNOD,
        SYSCALL_MKNODAT,
        _SYSCALL_KIND_MAX,
} SyscallKind;

static const char *const syscall_names[_SYSCALL_KIND_MAX] = {
        [SYSCALL_UNKNOWN] = "unknown", [SYSCALL_MOUNT] = "mount",     [SYSCALL_UMOUNT2] = "umount2",
        [SYSCALL_MKNOD] = "mknod",     [SYSCALL_MKNODAT] = "mknodat",
};

typedef struct SyscallNumber {
        uint32_t arch;
        int nr;
        SyscallKind kind;
} SyscallNumber;

struct Broker {
        BrokerLimits limits;
        unsigned helpers, queued;
};

typedef union NotifBuffer {
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        char bytes[NOTIF_SIZE_MAX];
} NotifBuffer;

/* A call waiting for a helper. */
typedef struct Queued {
        struct Queued *next;
        int notify_fd; /* our own duplicate */
        NotifBuffer notif;
} Queued;

struct BrokerContainer {
        Broker *broker;
        char *id;
        pid_t init_pid;
        uint32_t base;
        int pidfd;
        char **masked;
        size_t n_masked;
        MountTable initial;
        SyscallNumber syscalls[SYSCALLS_MAX];
        size_t n_syscalls;
        unsigned helpers, queued;
        Queued *queue_first, *queue_last;
};

struct BrokerPending {
        Helper helper;
        BrokerContainer *c;
        int notify_fd; /* our own duplicate */
        uint64_t id;
        pid_t pid;
        SyscallKind kind;
};

/* The calling thread's credentials, as its user namespace has them. */
typedef struct Credentials {
        uid_t uid[4]; /* real, effective, saved, file system */
        gid_t gid[4];
        gid_t groups[GROUPS_MAX];
        size_t n_groups;
        uint64_t cap_inh, cap_prm, cap_eff;
} Credentials;

/* What a helper works on: filled in by broker_handle(), copied into the helper by fork(). */
typedef struct Request {
        const BrokerContainer *c;
        SyscallKind kind;
        pid_t pid, agent;
        Credentials creds;
        int pidfd, root_fd, cwd_fd, dir_fd, mountinfo_fd, pidns_fd;
        unsigned long flags; /* mount: mountflags; umount2: flags */
        mode_t mode;
        const char *device; /* mknod: the VM's node */
        const char *source, *target, *fstype, *data;
} Request;

/* ---- the container ---- */

static const char *const allowed_fstypes[] = { "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup2", "overlay" };
/* What runc makes read-only in every /proc (its readonlyPaths). */
static const char *const proc_readonly[] = { "sys", "sysrq-trigger", "irq", "bus", "fs" };
static const char *const busy_paths[] = { "/", "/proc", "/sys", "/dev" };

static const struct {
        unsigned major, minor;
        const char *node;
} safe_devices[] = {
        { 1, 3, "/dev/null" },   { 1, 5, "/dev/zero" }, { 1, 7, "/dev/full" },    { 1, 8, "/dev/random" },
        { 1, 9, "/dev/urandom" },
};

static bool strv_contains(const char *const *v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

typedef struct OptionBit {
        const char *name;
        unsigned long bit;
} OptionBit;

/* The restrictions (MASK_ATTRS) a mount's per-mount options can hold. */
static const OptionBit attr_options[] = {
        { "ro", MOUNT_ATTR_RDONLY }, { "nosuid", MOUNT_ATTR_NOSUID }, { "nodev", MOUNT_ATTR_NODEV }, { "noexec", MOUNT_ATTR_NOEXEC },
};
/* The super block flags a remount changes (MS_RMT_MASK) that a file system shows. */
static const OptionBit sb_options[] = {
        { "ro", MS_RDONLY }, { "sync", MS_SYNCHRONOUS }, { "dirsync", MS_DIRSYNC }, { "lazytime", MS_LAZYTIME },
};

/* The bits of map that a mount table's options ("a,b=c,d") hold; all of them when it
 * cannot tell. */
static unsigned long options_bits(const char *options, const OptionBit *map, size_t n) {
        unsigned long all = 0, bits = 0;
        for (size_t i = 0; i < n; i++)
                all |= map[i].bit;
        _cleanup_free_ char *copy = strdup(options);
        if (!copy)
                return all;
        char *save = NULL;
        for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
                for (size_t i = 0; i < n; i++)
                        if (streq(o, map[i].name))
                                bits |= map[i].bit;
        return bits;
}

static void syscalls_resolve(BrokerContainer *c) {
        static const struct {
                const char *name;
                SyscallKind kind;
        } names[] = {
                { "mount", SYSCALL_MOUNT },
                { "umount2", SYSCALL_UMOUNT2 },
                { "mknod", SYSCALL_MKNOD },
                { "mknodat", SYSCALL_MKNODAT },
        };
        uint32_t arches[2] = { seccomp_arch_native() };
        size_t n_arches = 1;
        /* 32-bit binaries in 64-bit containers: their pointers and flags fit the same code. */
        if (arches[0] == SCMP_ARCH_X86_64)
                arches[n_arches++] = SCMP_ARCH_X86;
        else if (arches[0] == SCMP_ARCH_AARCH64)
                arches[n_arches++] = SCMP_ARCH_ARM;
        for (size_t a = 0; a < n_arches; a++)
                for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                        int nr = seccomp_syscall_resolve_name_arch(arches[a], names[i].name);
                        if (nr < 0 || c->n_syscalls >= SYSCALLS_MAX)
                                continue; /* mknod does not exist on arm64 */
                        c->syscalls[c->n_syscalls++] = (SyscallNumber) { arches[a], nr, names[i].kind };
                }
}

static SyscallKind syscall_classify(const BrokerContainer *c, uint32_t arch, int nr) {
        for (size_t i = 0; i < c->n_syscalls; i++)
                if (c->syscalls[i].arch == arch && c->syscalls[i].nr == nr)
                        return c->syscalls[i].kind;
        return SYSCALL_UNKNOWN;
}

int broker_set_limits(Broker *b, const BrokerLimits *limits) {
        if (limits->helpers_per_container == 0 || limits->helpers == 0)
                return -EINVAL;
        b->limits = *limits;
        return 0;
}

int broker_new(const BrokerLimits *limits, Broker **ret) {
        _cleanup_(broker_freep) Broker *b = calloc(1, sizeof(Broker));
        if (!b)
                return -ENOMEM;
        int r = broker_set_limits(b, limits);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b);
        return 0;
}

Broker *broker_free(Broker *b) {
        if (b)
                assert(b->helpers == 0 && b->queued == 0);
        free(b);
        return NULL;
}

const BrokerLimits *broker_limits(const Broker *b) {
        return &b->limits;
}

void broker_usage(const Broker *b, const BrokerContainer *c, unsigned *ret_helpers, unsigned *ret_queued) {
        *ret_helpers = c ? c->helpers : b->helpers;
        *ret_queued = c ? c->queued : b->queued;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

int broker_masked_paths(const char *bundle, char ***ret, size_t *ret_n, char **reterr) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size, n = 0;
        if (asprintf(&path, "%s/config.json", bundle) < 0)
                return -ENOMEM;
        int r = read_full_file(AT_FDCWD, path, SPEC_MAX_SIZE, &text, &size);
        if (r < 0)
                return error_set(reterr, r, "cannot read '%s': %s", path, strerror(-r));
        _cleanup_json_ cJSON *spec = cJSON_ParseWithLength(text, size);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "linux"), "maskedPaths");
        if (!spec || (list && !cJSON_IsArray(list)))
                return error_set(reterr, -EINVAL, "'%s': no valid spec", path);
        int count = cJSON_GetArraySize(list);
        if (count > BROKER_MASKED_MAX)
                return error_set(reterr, -E2BIG, "'%s': %d masked paths, at most %d", path, count, BROKER_MASKED_MAX);
        char **v = calloc((size_t) count + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
                if (!cJSON_IsString(item) || !(v[n] = strdup(item->valuestring))) {
                        strv_free(v, n);
                        return cJSON_IsString(item) ? -ENOMEM : error_set(reterr, -EINVAL, "'%s': a masked path is not a string", path);
                }
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

BrokerContainer *broker_container_free(BrokerContainer *c) {
        if (!c)
                return NULL;
        assert(c->helpers == 0);
        for (Queued *q = c->queue_first, *next; q; q = next) {
                next = q->next;
                safe_close(q->notify_fd);
                free(q);
        }
        c->broker->queued -= c->queued;
        free(c->id);
        safe_close(c->pidfd);
        strv_free(c->masked, c->n_masked);
        mount_table_done(&c->initial);
        free(c);
        return NULL;
}

int broker_container_new(Broker *b, const char *id, pid_t init_pid, uint32_t base, const char *const *masked,
                         size_t n_masked, BrokerContainer **ret, char **reterr) {
        if (n_masked > BROKER_MASKED_MAX)
                return error_set(reterr, -E2BIG, "container '%s': %zu masked paths, at most %d", id, n_masked,
                                 BROKER_MASKED_MAX);
        for (size_t i = 0; i < n_masked; i++)
                if (masked[i][0] != '/' || strlen(masked[i]) >= PATH_MAX)
                        return error_set(reterr, -EINVAL, "container '%s': masked path '%s' is not absolute",
                                         id, masked[i]);

        _cleanup_(broker_container_freep) BrokerContainer *c = calloc(1, sizeof(BrokerContainer));
        if (!c)
                return -ENOMEM;
        c->broker = b;
        c->pidfd = -EBADF;
        c->init_pid = init_pid;
        c->base = base;
        c->id = strdup(id);
        c->masked = calloc(n_masked + 1, sizeof(char *));
        if (!c->id || !c->masked)
                return -ENOMEM;
        for (; c->n_masked < n_masked; c->n_masked++)
                if (!(c->masked[c->n_masked] = strdup(masked[c->n_masked])))
                        return -ENOMEM;

        c->pidfd = RET_NERRNO(pidfd_open(init_pid, 0));
        if (c->pidfd < 0)
                return error_set(reterr, c->pidfd, "container '%s': cannot open process %d: %s", id,
                                 (int) init_pid, strerror(-c->pidfd));

        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int) init_pid);
        _cleanup_close_ int fd = RET_NERRNO(open(path, O_RDONLY | O_CLOEXEC));
        int r = fd < 0 ? fd : mount_table_read(fd, &c->initial);
        /* The pid could have been reused before we opened its files. */
        if (r >= 0)
                r = RET_NERRNO(pidfd_send_signal(c->pidfd, 0, NULL, 0));
        if (r < 0)
                return error_set(reterr, r, "container '%s': cannot read the mounts of process %d: %s", id,
                                 (int) init_pid, strerror(-r));

        struct seccomp_notif_sizes sizes = {};
        r = RET_NERRNO(syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes));
        if (r < 0)
                return error_set(reterr, r, "cannot get the seccomp notification sizes: %s", strerror(-r));
        if (sizes.seccomp_notif > NOTIF_SIZE_MAX || sizes.seccomp_notif_resp > NOTIF_SIZE_MAX)
                return error_set(reterr, -EOVERFLOW, "seccomp notifications of %u bytes, at most %d",
                                 (unsigned) MAX(sizes.seccomp_notif, sizes.seccomp_notif_resp), NOTIF_SIZE_MAX);
        syscalls_resolve(c);

        *ret = TAKE_PTR(c);
        return 0;
}

const char *broker_container_id(const BrokerContainer *c) {
        return c->id;
}

int broker_container_pidfd(const BrokerContainer *c) {
        return c->pidfd;
}

pid_t broker_container_init_pid(const BrokerContainer *c) {
        return c->init_pid;
}

/* ---- the caller's memory ---- */

/* Copies up to size bytes from the tracee, never across a page that faults: the number of
 * bytes read (short at a fault), -EFAULT if the first one faults, -ESRCH if it is gone. */
static ssize_t tracee_read(pid_t pid, uint64_t address, void *buf, size_t size) {
        size_t page = (size_t) getpagesize(), done = 0;
        while (done < size) {
                uint64_t at = address + done;
                if (at < address)
                        break; /* wrapped */
                size_t chunk = MIN(size - done, page - (size_t) (at % page));
                struct iovec local = { .iov_base = (char *) buf + done, .iov_len = chunk };
                struct iovec remote = { .iov_base = (void *) (uintptr_t) at, .iov_len = chunk };
                ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
                if (n < 0 && errno != EFAULT)
                        return -errno;
                if (n <= 0)
                        break;
                done += (size_t) n;
                if ((size_t) n < chunk)
                        break;
        }
        return done > 0 ? (ssize_t) done : -EFAULT;
}

/* A NUL-terminated string of at most size bytes with its NUL; read a page at a time so that
 * a short string next to unmapped memory reads fine. NULL address: *ret NULL. */
static int tracee_read_string(pid_t pid, uint64_t address, char *buf, size_t size, int too_long,
                              const char **ret) {
        if (address == 0) {
                *ret = NULL;
                return 0;
        }
        size_t done = 0;
        while (done < size) {
                size_t want = MIN(size - done, (size_t) 256);
                ssize_t n = tracee_read(pid, address + done, buf + done, want);
                if (n < 0)
                        return (int) n;
                if (memchr(buf + done, '\0', (size_t) n)) {
                        *ret = buf;
                        return 0;
                }
                done += (size_t) n;
                if ((size_t) n < want)
                        return -EFAULT; /* stopped at a fault before the end */
        }
        return too_long;
}

/* Mount data is not necessarily a string: like the kernel, take what can be read of one
 * page's worth, then make it a string. */
static int tracee_read_data(pid_t pid, uint64_t address, char *buf /* MOUNT_DATA_MAX + 1 */,
                            const char **ret) {
        if (address == 0) {
                *ret = NULL;
                return 0;
        }
        ssize_t n = tracee_read(pid, address, buf, MOUNT_DATA_MAX);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        *ret = buf;
        return 0;
}

/* ---- answering ---- */

/* Never allocates: every call received must get an answer. */
static int notify_respond(int notify_fd, uint64_t id, int error, bool cont) {
        NotifBuffer b = {};
        b.resp.id = id;
        b.resp.error = cont ? 0 : error;
        b.resp.flags = cont ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
        for (;;) {
                if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &b.resp) >= 0)
                        return 0;
                if (errno != EINTR)
                        return -errno; /* ENOENT: it is gone (killed, or its filter went away) */
        }
}

_printf_(4, 5) static void event_set(BrokerEvent *e, bool denied, int error, const char *format, ...) {
        e->denied = denied;
        e->error = error;
        va_list ap;
        va_start(ap, format);
        vsnprintf(e->reason, sizeof(e->reason), format, ap);
        va_end(ap);
}

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
                struct stat ours, theirs;
                snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, types[i].name);
                if (stat(path, &theirs) < 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/self/ns/%s", types[i].name);
                if (stat(path, &ours) < 0 || ours.st_ino != theirs.st_ino || ours.st_dev != theirs.st_dev)
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

/* Not ptrace-able nor inspectable through /proc from the container, and gone with the
 * agent. Again after every change of ids: that resets both (dumpable to fs.suid_dumpable). */
static void helper_guard(pid_t agent) {
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != agent)
                _exit(EXIT_FAILURE); /* the agent died before the signal was set */
}

/* The first thing in every helper process, before it joins any namespace. */
static void helper_prepare(pid_t agent) {
        helper_guard(agent);
        sigset_t all;
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Takes the caller's ids, groups and capabilities, in its user namespace (where the helper
 * holds every capability until then). */
static void helper_become(int socket, const Request *q) {
        const Credentials *cr = &q->creds;
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {
                { .effective = (uint32_t) cr->cap_eff, .permitted = (uint32_t) cr->cap_prm,
                  .inheritable = (uint32_t) cr->cap_inh },
                { .effective = (uint32_t) (cr->cap_eff >> 32), .permitted = (uint32_t) (cr->cap_prm >> 32),
                  .inheritable = (uint32_t) (cr->cap_inh >> 32) },
        };
        /* The ids change without touching the capabilities; capset() then sets them. */
        if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0 ||
            setgroups(cr->n_groups, cr->groups) < 0 || setresgid(cr->gid[0], cr->gid[1], cr->gid[2]) < 0 ||
            setresuid(cr->uid[0], cr->uid[1], cr->uid[2]) < 0)
                helper_fail(socket, -EPERM, "cannot take the ids of process %d: %m", (int) q->pid);
        (void) setfsgid(cr->gid[3]);
        (void) setfsuid(cr->uid[3]);
        if ((gid_t) setfsgid((gid_t) -1) != cr->gid[3] || (uid_t) setfsuid((uid_t) -1) != cr->uid[3])
                helper_fail(socket, -EPERM, "cannot take the file system ids of process %d", (int) q->pid);
        if (syscall(SYS_capset, &header, data) < 0)
                helper_fail(socket, -EPERM, "cannot take the capabilities of process %d: %m", (int) q->pid);
        helper_guard(q->agent);
}

_noreturn_ _printf_(3, 4) static void helper_deny(int socket, int error, const char *format, ...) {
        char reason[BROKER_REASON_MAX];
        va_list ap;
        va_start(ap, format);
        vsnprintf(reason, sizeof(reason), format, ap);
        va_end(ap);
        helper_send_detail(socket, -EBADF, error, 1, reason);
        _exit(EXIT_FAILURE);
}

/* ---- the helper: the caller's mount table ---- */

typedef struct Context {
        int socket;
        const Request *q;
        int proc_fd; /* the agent's /proc: self/fd/N names our fds from anywhere */
        MountTable table;
        int *devnull; /* clones of the VM's /dev/null, for masks */
        size_t n_devnull;
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

static const MountEntry *table_find(const MountTable *t, int id) {
        for (size_t i = 0; i < t->n; i++)
                if (t->entries[i].id == id)
                        return &t->entries[i];
        return NULL;
}

static const MountEntry *mount_of(const Context *x, int fd) {
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0 ||
            !(stx.stx_mask & STATX_MNT_ID))
                return NULL;
        return table_find(&x->table, (int) stx.stx_mnt_id);
}

static bool masked_contains(const BrokerContainer *c, const char *path) {
        return strv_contains((const char *const *) c->masked, c->n_masked, path);
}

/* A mask or read-only bind on a proc or sysfs: what hides the VM's files from the container. */
static bool mount_is_mask(const Context *x, const MountEntry *e) {
        const MountEntry *parent = table_find(&x->table, e->parent);
        if (!parent || parent == e)
                return false;
        const char *prefix = streq(parent->fstype, "proc")    ? "/proc/"
                             : streq(parent->fstype, "sysfs") ? "/sys/"
                                                              : NULL;
        const char *rel = prefix ? path_startswith(e->point, parent->point) : NULL;
        if (!rel || !*rel)
                return false;
        if (streq(prefix, "/proc/") && strv_contains(proc_readonly, ELEMENTSOF(proc_readonly), rel))
                return true;
        for (size_t i = 0; i < x->q->c->n_masked; i++) {
                const char *m = x->q->c->masked[i];
                if (STARTSWITH(m, prefix) && streq(m + strlen(prefix), rel))
                        return true;
        }
        return false;
}

/* The restrictions (MASK_ATTRS) the mount must keep: those of the initial mounts it is or
 * is a bind of, read-only for masks. */
static unsigned mount_restrictions(const Context *x, const MountEntry *e, bool *ret_initial) {
        const BrokerContainer *c = x->q->c;
        unsigned r = 0;
        bool initial = false;
        for (size_t i = 0; i < c->initial.n; i++) {
                const MountEntry *m = &c->initial.entries[i];
                if (m->id == e->id ||
                    (m->major == e->major && m->minor == e->minor && path_startswith(e->root, m->root))) {
                        r |= (unsigned) options_bits(m->options, attr_options, ELEMENTSOF(attr_options));
                        initial = true;
                }
        }
        if (mount_is_mask(x, e))
                r |= MOUNT_ATTR_RDONLY;
        if (ret_initial)
                *ret_initial = initial;
        return r;
}

static void attrs_format(unsigned attrs, char *buf, size_t size) {
        snprintf(buf, size, "%s%s%s%s", attrs & MOUNT_ATTR_RDONLY ? " ro" : "",
                 attrs & MOUNT_ATTR_NOSUID ? " nosuid" : "", attrs & MOUNT_ATTR_NODEV ? " nodev" : "",
                 attrs & MOUNT_ATTR_NOEXEC ? " noexec" : "");
}

/* ---- the helper: mount ---- */

typedef enum MountOp {
        MOUNT_OP_REMOUNT_BIND,
        MOUNT_OP_REMOUNT,
        MOUNT_OP_BIND,
        MOUNT_OP_PROPAGATION,
        MOUNT_OP_MOVE,
        MOUNT_OP_NEW,
} MountOp;

/* In the kernel's order (path_mount()). */
static MountOp mount_op(unsigned long flags) {
        if ((flags & (MS_REMOUNT | MS_BIND)) == (MS_REMOUNT | MS_BIND))
                return MOUNT_OP_REMOUNT_BIND;
        if (flags & MS_REMOUNT)
                return MOUNT_OP_REMOUNT;
        if (flags & MS_BIND)
                return MOUNT_OP_BIND;
        if (flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE))
                return MOUNT_OP_PROPAGATION;
        if (flags & MS_MOVE)
                return MOUNT_OP_MOVE;
        return MOUNT_OP_NEW;
}

static unsigned mount_attrs_of_flags(unsigned long flags) {
        unsigned a = 0;
        if (flags & MS_RDONLY)
                a |= MOUNT_ATTR_RDONLY;
        if (flags & MS_NOSUID)
                a |= MOUNT_ATTR_NOSUID;
        if (flags & MS_NODEV)
                a |= MOUNT_ATTR_NODEV;
        if (flags & MS_NOEXEC)
                a |= MOUNT_ATTR_NOEXEC;
        if (flags & MS_NODIRATIME)
                a |= MOUNT_ATTR_NODIRATIME;
        if (flags & MS_NOATIME)
                a |= MOUNT_ATTR_NOATIME;
        else if (flags & MS_STRICTATIME)
                a |= MOUNT_ATTR_STRICTATIME;
        return a;
}

/* Writes data (at most MOUNT_DATA_MAX) to ret with each "uid=N" or "gid=N" whose N is
 * in the container's range replaced by its id inside. File systems show these ids as the
 * initial user namespace has them (tmpfs, devpts, proc), and mount(8) passes what it read
 * back in a remount, which the kernel then refuses. No id inside is in the range
 * (UID_RANGE_FIRST >= UID_RANGE_SIZE), so nothing else changes. */
_Static_assert(UID_RANGE_FIRST >= UID_RANGE_SIZE, "an id inside could be one of a range");
static void data_ids_inside(uint32_t base, const char *data, char *ret /* MOUNT_DATA_MAX + 1 */) {
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
 * changes only the mount's: that part is done, as a bind remount with the same flags. */
static int remount_fd(const Context *x, int fd, const MountEntry *e, unsigned long flags, const char *data) {
        char link[64], own[MOUNT_DATA_MAX + 1];
        snprintf(link, sizeof(link), "self/fd/%d", fd);
        if (data)
                data_ids_inside(x->q->c->base, data, own);
        if (fchdir(x->proc_fd) < 0)
                return -errno;
        int r = RET_NERRNO(mount(NULL, link, NULL, flags, data ? own : NULL));
        unsigned long sb_flags = 0;
        for (size_t i = 0; i < ELEMENTSOF(sb_options); i++)
                sb_flags |= sb_options[i].bit;
        if (r == -EPERM && !(flags & MS_BIND) && streq(e->fstype, "overlay") &&
            options_bits(e->super_options, sb_options, ELEMENTSOF(sb_options)) == (flags & sb_flags))
                r = RET_NERRNO(mount(NULL, link, NULL, flags | MS_BIND, NULL));
        return r;
}

/* An overlay layer shows its directory's own file system, without the mounts on top of it:
 * no proc or sysfs, nothing under a masked path, no directory holding one. */
static void layer_check(Context *x, int fd, const char *path) {
        const BrokerContainer *c = x->q->c;
        struct statfs sf;
        if (fstatfs(fd, &sf) < 0)
                helper_fail(x->socket, -errno, "overlay layer '%s': %m", path);
        if (sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC)
                helper_deny(x->socket, -EPERM, "overlay layer '%s' is on a %s", path,
                            sf.f_type == PROC_SUPER_MAGIC ? "proc" : "sysfs");
        for (size_t i = 0; i < c->n_masked; i++)
                if (path_startswith(path, c->masked[i]))
                        helper_deny(x->socket, -EPERM, "overlay layer '%s' is under the masked path '%s'", path,
                                    c->masked[i]);
        const MountEntry *e = mount_of(x, fd);
        if (!e)
                helper_deny(x->socket, -EPERM, "the mount at '%s' is not in the mount table", path);
        for (size_t i = 0; i < x->table.n; i++) {
                const MountEntry *m = &x->table.entries[i];
                if (m->parent == e->id && masked_contains(c, m->point) && path_startswith(m->point, path))
                        helper_deny(x->socket, -EPERM, "overlay layer '%s' would show what the mask on '%s' hides", path,
                                    m->point);
        }
}

/* Gives the overlay the layer at path as an fd, once checked: the directory checked is the
 * one used. */
static int layer_set(Context *x, int fs, const char *key, const char *path, char *reason, size_t size) {
        char where[PATH_MAX];
        _cleanup_close_ int fd = openat(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int r = fd < 0 ? -errno : fd_path(x, fd, where, sizeof(where));
        if (r < 0) {
                snprintf(reason, size, "overlay layer '%s': %s", path, strerror(-r));
                return r;
        }
        layer_check(x, fd, where);
        if (fsconfig(fs, FSCONFIG_SET_FD, key, NULL, fd) < 0) {
                r = -errno;
                snprintf(reason, size, "overlay layer '%s': %s", path, strerror(-r));
                return r;
        }
        return 0;
}

/* Overlay's layer options, each layer as an fd: "lowerdir=a:b::c" (escaped by "\"; data-only
 * layers after "::") as lowerdir+ and datadir+ ones. 1 when done, 0 if key is not a layer
 * option, or -errno with reason. */
static int layers_apply(Context *x, int fs, const char *key, char *value, char *reason, size_t size) {
        if (streq(key, "upperdir") || streq(key, "workdir") || streq(key, "lowerdir+") || streq(key, "datadir+"))
                return layer_set(x, fs, key, value, reason, size) ?: 1;
        if (!streq(key, "lowerdir"))
                return 0;
        const char *layer_key = "lowerdir+";
        for (char *p = value; *p;) {
                char *layer = p, *o = p;
                while (*p && *p != ':') {
                        if (p[0] == '\\' && p[1])
                                p++;
                        *o++ = *p++;
                }
                bool data_next = p[0] == ':' && p[1] == ':';
                p += *p ? (data_next ? 2 : 1) : 0;
                *o = '\0';
                int r = layer_set(x, fs, layer_key, layer, reason, size);
                if (r < 0)
                        return r;
                if (data_next)
                        layer_key = "datadir+";
        }
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
        for (size_t i = 0; i < ELEMENTSOF(sb_options); i++)
                if ((flags & sb_options[i].bit) && fsconfig(fs, FSCONFIG_SET_FLAG, sb_options[i].name, NULL, 0) < 0)
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
        for (size_t i = 0; proc && i < ELEMENTSOF(proc_readonly); i++) {
                _cleanup_close_ int fd = open_tree(mnt, proc_readonly[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                if (fd < 0 && errno == ENOENT)
                        continue;
                struct mount_attr attr = { .attr_set = MASK_ATTRS };
                if (fd < 0 || mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ||
                    move_mount(fd, "", mnt, proc_readonly[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        helper_fail(x->socket, -errno, "cannot make '%s%s' read-only: %m", prefix, proc_readonly[i]);
        }
        size_t next_devnull = 0;
        for (size_t i = 0; i < x->q->c->n_masked; i++) {
                const char *m = x->q->c->masked[i];
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
}

static void do_mount_new(Context *x, int target_fd) {
        const Request *q = x->q;
        int socket = x->socket;
        char m[200], reason[400] = "";
        _cleanup_close_ int fs = fsopen(q->fstype, FSOPEN_CLOEXEC);
        if (fs < 0)
                helper_fail(socket, -errno, "cannot create a %s: %m", q->fstype);
        if (q->source && fsconfig(fs, FSCONFIG_SET_STRING, "source", q->source, 0) < 0)
                helper_fail(socket, -errno, "source '%s': %m %s", q->source, fs_context_message(fs, m, sizeof(m)));
        if (q->pidns_fd >= 0 && fsconfig(fs, FSCONFIG_SET_FD, "pidns", NULL, q->pidns_fd) < 0)
                helper_fail(socket, -errno, "cannot give the proc the pid namespace of process %d: %m %s", (int) q->pid,
                            fs_context_message(fs, m, sizeof(m)));
        int r = fs_apply_sb_flags(fs, q->flags);
        if (r < 0)
                helper_fail(socket, r, "%s: %s", q->fstype, strerror(-r));
        r = fs_apply_data(x, fs, q->data, reason, sizeof(reason));
        if (r < 0)
                helper_fail(socket, r, "%s: %s", q->fstype, reason);
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                helper_fail(socket, -errno, "cannot create a %s: %m %s", q->fstype, fs_context_message(fs, m, sizeof(m)));
        _cleanup_close_ int mnt = fsmount(fs, FSMOUNT_CLOEXEC, mount_attrs_of_flags(q->flags));
        if (mnt < 0)
                helper_fail(socket, -errno, "cannot mount a %s: %m", q->fstype);
        if (streq(q->fstype, "proc") || streq(q->fstype, "sysfs"))
                mask_fs(x, mnt, streq(q->fstype, "proc"));
        if (move_mount(mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                helper_fail(socket, -errno, "cannot mount on '%s': %m", q->target);
}

static void do_mount(Context *x) {
        const Request *q = x->q;
        int socket = x->socket;
        MountOp op = mount_op(q->flags);
        char path[PATH_MAX], source_path[PATH_MAX], what[64];

        _cleanup_close_ int target_fd = openat(AT_FDCWD, q->target, O_PATH | O_CLOEXEC);
        if (target_fd < 0)
                helper_fail(socket, -errno, "'%s': %m", q->target);
        int r = fd_path(x, target_fd, path, sizeof(path));
        if (r < 0)
                helper_fail(socket, r, "'%s': %s", q->target, strerror(-r));

        _cleanup_close_ int source_fd = -EBADF;
        const MountEntry *source = NULL;
        if (op == MOUNT_OP_BIND || op == MOUNT_OP_MOVE) {
                source_fd = openat(AT_FDCWD, q->source, O_PATH | O_CLOEXEC);
                if (source_fd < 0)
                        helper_fail(socket, -errno, "'%s': %m", q->source);
                r = fd_path(x, source_fd, source_path, sizeof(source_path));
                if (r < 0)
                        helper_fail(socket, r, "'%s': %s", q->source, strerror(-r));
                source = mount_of(x, source_fd);
                if (!source)
                        helper_deny(socket, -EPERM, "the mount at '%s' is not in the mount table", source_path);
                if (masked_contains(q->c, path))
                        helper_deny(socket, -EPERM, "'%s' is a masked path", path);
                for (size_t i = 0; i < q->c->n_masked; i++)
                        if (path_startswith(source_path, q->c->masked[i]))
                                helper_deny(socket, -EPERM, "'%s' is under the masked path '%s'", source_path,
                                            q->c->masked[i]);
        }

        switch (op) {
        case MOUNT_OP_REMOUNT_BIND:
        case MOUNT_OP_REMOUNT: {
                const MountEntry *e = mount_of(x, target_fd);
                if (!e)
                        helper_deny(socket, -EPERM, "the mount at '%s' is not in the mount table", path);
                bool initial;
                unsigned lost = mount_restrictions(x, e, &initial) & ~mount_attrs_of_flags(q->flags);
                if (lost) {
                        attrs_format(lost, what, sizeof(what));
                        helper_deny(socket, -EPERM, "remounting '%s' would drop%s of %s", path, what,
                                    initial ? "a mount the container started with" : "a mask");
                }
                r = remount_fd(x, target_fd, e, q->flags, q->data);
                if (r < 0)
                        helper_fail(socket, r, "cannot remount '%s': %s", path, strerror(-r));
                break;
        }
        case MOUNT_OP_BIND: {
                /* A non-recursive copy would leave the masks below the source behind. */
                for (size_t i = 0; !(q->flags & MS_REC) && i < x->table.n; i++) {
                        const MountEntry *child = &x->table.entries[i];
                        if (child->parent == source->id && child != source && mount_is_mask(x, child) &&
                            path_startswith(child->point, source_path))
                                helper_deny(socket, -EPERM, "a bind of '%s' without MS_REC would uncover '%s'",
                                            source_path, child->point);
                }
                unsigned recursive = q->flags & MS_REC ? AT_RECURSIVE : 0;
                _cleanup_close_ int tree = open_tree(source_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | recursive);
                if (tree < 0)
                        helper_fail(socket, -errno, "cannot copy the mount at '%s': %m", source_path);
                if (move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        helper_fail(socket, -errno, "cannot bind '%s' on '%s': %m", source_path, path);
                break;
        }
        case MOUNT_OP_PROPAGATION: {
                struct mount_attr attr = { .propagation = q->flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE) };
                if (mount_setattr(target_fd, "", AT_EMPTY_PATH | (q->flags & MS_REC ? AT_RECURSIVE : 0), &attr,
                                  sizeof(attr)) < 0)
                        helper_fail(socket, -errno, "cannot change the propagation of '%s': %m", path);
                break;
        }
        case MOUNT_OP_MOVE: {
                bool initial;
                (void) mount_restrictions(x, source, &initial);
                if (initial || mount_is_mask(x, source))
                        helper_deny(socket, -EPERM, "'%s' is %s and cannot be moved", source_path,
                                    initial ? "a mount the container started with" : "a mask");
                if (move_mount(source_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        helper_fail(socket, -errno, "cannot move '%s' to '%s': %m", source_path, path);
                break;
        }
        case MOUNT_OP_NEW:
                do_mount_new(x, target_fd);
                break;
        }
        helper_send(socket, -EBADF, 0, "");
}

/* ---- the helper: umount2 and mknod ---- */

static void do_umount(Context *x) {
        const Request *q = x->q;
        int socket = x->socket;
        char path[PATH_MAX];
        _cleanup_close_ int fd = openat(AT_FDCWD, q->target, O_PATH | O_CLOEXEC | (q->flags & UMOUNT_NOFOLLOW ? O_NOFOLLOW : 0));
        if (fd < 0)
                helper_fail(socket, -errno, "'%s': %m", q->target);
        int r = fd_path(x, fd, path, sizeof(path));
        if (r < 0)
                helper_fail(socket, r, "'%s': %s", q->target, strerror(-r));
        if (strv_contains(busy_paths, ELEMENTSOF(busy_paths), path))
                helper_deny(socket, -EBUSY, "'%s' cannot be unmounted", path);
        if (masked_contains(q->c, path))
                helper_deny(socket, -EPERM, "'%s' is a masked path", path);
        const MountEntry *e = mount_of(x, fd);
        if (!e)
                helper_deny(socket, -EPERM, "the mount at '%s' is not in the mount table", path);
        if (mount_is_mask(x, e))
                helper_deny(socket, -EPERM, "'%s' is a mask", path);

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

static void do_mknod(Context *x) {
        const Request *q = x->q;
        int socket = x->socket;
        int dir = q->dir_fd >= 0 ? q->dir_fd : AT_FDCWD;
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

static void broker_helper(int socket, const void *userdata) {
        const Request *q = userdata;
        Context x = { .socket = socket, .q = q, .proc_fd = -EBADF, .device = -EBADF };
        int devnull[BROKER_MASKED_MAX];

        helper_prepare(q->agent);
        int keep[] = { socket, q->pidfd, q->root_fd, q->cwd_fd, q->dir_fd, q->mountinfo_fd, q->pidns_fd, STDERR_FILENO };
        close_all_but(keep, ELEMENTSOF(keep));

        /* All that comes from the agent's side, before entering the container's. */
        x.proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (x.proc_fd < 0)
                helper_fail(socket, -errno, "cannot open /proc: %m");
        if (q->mountinfo_fd >= 0) {
                /* Read here: cgroup roots show as the reader's cgroup namespace has them. */
                int r = mount_table_read(q->mountinfo_fd, &x.table);
                if (r < 0)
                        helper_fail(socket, r, "cannot read the mount table: %s", strerror(-r));
        }
        bool new_fs = q->kind == SYSCALL_MOUNT && q->fstype && mount_op(q->flags) == MOUNT_OP_NEW;
        if (new_fs && (streq(q->fstype, "proc") || streq(q->fstype, "sysfs"))) {
                for (; x.n_devnull < q->c->n_masked; x.n_devnull++) {
                        devnull[x.n_devnull] = open_tree(AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                        if (devnull[x.n_devnull] < 0)
                                helper_fail(socket, -errno, "cannot copy /dev/null: %m");
                }
                x.devnull = devnull;
        }
        if (q->device) {
                x.device = open_tree(AT_FDCWD, q->device, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC };
                if (x.device < 0 || mount_setattr(x.device, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                        helper_fail(socket, -errno, "cannot copy '%s': %m", q->device);
        }

        /* The caller's namespaces, root and directory, then its credentials. */
        int namespaces = q->kind == SYSCALL_MOUNT ? namespaces_of(q->pid) : CLONE_NEWNS | CLONE_NEWUSER;
        if (setns(q->pidfd, namespaces) < 0)
                helper_fail(socket, errno == ESRCH ? -ENOENT : -errno, "cannot join the namespaces of process %d: %m",
                            (int) q->pid);
        if (fchdir(q->root_fd) < 0 || chroot(".") < 0 || fchdir(q->cwd_fd) < 0)
                helper_fail(socket, -errno, "cannot enter the root and directory of process %d: %m", (int) q->pid);
        helper_become(socket, q);

        switch (q->kind) {
        case SYSCALL_MOUNT:
                do_mount(&x);
                break;
        case SYSCALL_UMOUNT2:
                do_umount(&x);
                break;
        case SYSCALL_MKNOD:
        case SYSCALL_MKNODAT:
                do_mknod(&x);
                break;
        default:
                helper_deny(socket, -EPERM, "unexpected request");
        }
        _exit(EXIT_SUCCESS);
}

/* ---- receiving ---- */

static void request_done(Request *q) {
        q->pidfd = safe_close(q->pidfd);
        q->root_fd = safe_close(q->root_fd);
        q->cwd_fd = safe_close(q->cwd_fd);
        q->dir_fd = safe_close(q->dir_fd);
        q->mountinfo_fd = safe_close(q->mountinfo_fd);
        q->pidns_fd = safe_close(q->pidns_fd);
}

static int proc_open(pid_t pid, const char *what, int flags) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, what);
        int fd = open(path, flags | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* id, an id as the agent's user namespace has it, as map (a uid_map or gid_map read from
 * the agent's) has it in the caller's: -EPERM if it has no mapping there. */
static int id_map(const char *map, uint32_t id, uint32_t *ret) {
        for (const char *line = map; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                unsigned inside, outside, count;
                if (sscanf(line, "%u %u %u", &inside, &outside, &count) == 3 && id >= outside &&
                    id - outside < count) {
                        *ret = inside + (id - outside);
                        return 0;
                }
        }
        return -EPERM;
}

static int proc_read(pid_t pid, const char *what, char **ret) {
        _cleanup_close_ int fd = proc_open(pid, what, O_RDONLY);
        size_t size;
        return fd < 0 ? fd : read_full_fd(fd, 64 * 1024, ret, &size);
}

/* The ids of a "Uid:" or "Gid:" line of /proc/PID/status, in the caller's namespace. */
static int ids_parse(const char *status, const char *key, const char *map, uint32_t ret[4]) {
        const char *line = strstr(status, key);
        uint32_t ids[4];
        if (!line || sscanf(line + strlen(key), "%u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3]) != 4)
                return -EBADMSG;
        for (size_t i = 0; i < 4; i++) {
                int r = id_map(map, ids[i], &ret[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int caps_parse(const char *status, const char *key, uint64_t *ret) {
        const char *line = strstr(status, key);
        unsigned long long v;
        if (!line || sscanf(line + strlen(key), "%llx", &v) != 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* The calling thread's credentials, in its user namespace: -EPERM where it has ids that
 * cannot be taken there (none of its own), -E2BIG for more than GROUPS_MAX groups. */
static int credentials_read(pid_t pid, Credentials *ret) {
        _cleanup_free_ char *status = NULL, *uid_map = NULL, *gid_map = NULL;
        int r = proc_read(pid, "status", &status);
        if (r >= 0)
                r = proc_read(pid, "uid_map", &uid_map);
        if (r >= 0)
                r = proc_read(pid, "gid_map", &gid_map);
        if (r < 0)
                return r;
        Credentials cr = {};
        if ((r = ids_parse(status, "\nUid:", uid_map, cr.uid)) < 0 ||
            (r = ids_parse(status, "\nGid:", gid_map, cr.gid)) < 0 ||
            (r = caps_parse(status, "\nCapInh:", &cr.cap_inh)) < 0 ||
            (r = caps_parse(status, "\nCapPrm:", &cr.cap_prm)) < 0 ||
            (r = caps_parse(status, "\nCapEff:", &cr.cap_eff)) < 0)
                return r;
        const char *groups = strstr(status, "\nGroups:");
        if (!groups)
                return -EBADMSG;
        groups += strlen("\nGroups:");
        const char *eol = strchrnul(groups, '\n');
        while (groups < eol) {
                char *end;
                errno = 0;
                unsigned long g = strtoul(groups, &end, 10);
                if (end == groups)
                        break;
                if (errno || g > UINT32_MAX)
                        return -EBADMSG;
                if (cr.n_groups >= GROUPS_MAX)
                        return -E2BIG;
                if ((r = id_map(gid_map, (uint32_t) g, &cr.groups[cr.n_groups++])) < 0)
                        return r;
                groups = end;
        }
        *ret = cr;
        return 0;
}

/* The caller's view: its root, working directory, mknodat's dirfd, its mount table, its
 * pid namespace for a new proc, its credentials. Opened and read here, before the
 * notification id is checked again, so that they are known to be its. */
static int request_open(Request *q, int dirfd_arg, bool relative) {
        q->pidfd = RET_NERRNO(pidfd_open(q->pid, PIDFD_THREAD));
        if (q->pidfd == -EINVAL)
                q->pidfd = RET_NERRNO(pidfd_open(q->pid, 0));
        if (q->pidfd < 0)
                return q->pidfd;
        q->root_fd = proc_open(q->pid, "root", O_PATH | O_DIRECTORY);
        if (q->root_fd < 0)
                return q->root_fd;
        q->cwd_fd = proc_open(q->pid, "cwd", O_PATH | O_DIRECTORY);
        if (q->cwd_fd < 0)
                return q->cwd_fd;
        if (q->kind == SYSCALL_MKNODAT && relative && dirfd_arg != AT_FDCWD) {
                char what[32];
                snprintf(what, sizeof(what), "fd/%d", dirfd_arg);
                q->dir_fd = dirfd_arg < 0 ? -EBADF : proc_open(q->pid, what, O_PATH);
                if (q->dir_fd < 0)
                        return -EBADF;
        }
        if (q->kind == SYSCALL_MOUNT || q->kind == SYSCALL_UMOUNT2) {
                q->mountinfo_fd = proc_open(q->pid, "mountinfo", O_RDONLY);
                if (q->mountinfo_fd < 0)
                        return q->mountinfo_fd;
        }
        if (q->kind == SYSCALL_MOUNT && mount_op(q->flags) == MOUNT_OP_NEW && streq(q->fstype, "proc")) {
                q->pidns_fd = proc_open(q->pid, "ns/pid", O_RDONLY);
                if (q->pidns_fd < 0)
                        return q->pidns_fd;
        }
        return credentials_read(q->pid, &q->creds);
}

static int notify_id_valid(int notify_fd, uint64_t id) {
        return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0 ? -errno : 0;
}

/* The registers alone decide: 1 to let it through, 0 when it is a device to emulate
 * (*ret_device), or -errno to refuse it with. */
static int mknod_decide(uint64_t mode_arg, uint64_t dev_arg, const char **ret_device) {
        mode_t type = (mode_t) (uint16_t) mode_arg & S_IFMT; /* the kernel's umode_t */
        unsigned dev = (unsigned) dev_arg;
        unsigned major = (dev & 0xfff00) >> 8, minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        if (type == 0 || type == S_IFREG || type == S_IFIFO || type == S_IFSOCK)
                return 1;
        if (type == S_IFCHR && dev == 0)
                return 1; /* overlayfs whiteout, allowed in a user namespace */
        if (type == S_IFCHR)
                for (size_t i = 0; i < ELEMENTSOF(safe_devices); i++)
                        if (safe_devices[i].major == major && safe_devices[i].minor == minor) {
                                *ret_device = safe_devices[i].node;
                                return 0;
                        }
        return -EPERM;
}

typedef struct Buffers {
        char target[PATH_MAX], source[PATH_MAX], fstype[FSTYPE_MAX], data[MOUNT_DATA_MAX + 1];
} Buffers;

/* Reads the caller's arguments into b: 0, or -errno for the caller with *e saying why. */
static int request_read(const struct seccomp_notif *req, Request *q, Buffers *b,
                        BrokerEvent *e) {
        const __u64 *a = req->data.args;
        int r;
        switch (q->kind) {
        case SYSCALL_MOUNT:
                r = tracee_read_string(q->pid, a[1], b->target, sizeof(b->target), -ENAMETOOLONG, &q->target);
                if (r >= 0 && !q->target)
                        r = -EFAULT;
                if (r >= 0)
                        r = tracee_read_string(q->pid, a[0], b->source, sizeof(b->source), -ENAMETOOLONG, &q->source);
                if (r >= 0)
                        r = tracee_read_string(q->pid, a[2], b->fstype, sizeof(b->fstype), -ENODEV, &q->fstype);
                if (r >= 0)
                        r = tracee_read_data(q->pid, a[4], b->data, &q->data);
                if (r < 0) {
                        event_set(e, false, r, "cannot read the arguments: %s", strerror(-r));
                        return r;
                }
                q->flags = (unsigned long) a[3];
                if ((q->flags & 0xffff0000UL) == MS_MGC_VAL)
                        q->flags &= ~0xffff0000UL;
                switch (mount_op(q->flags)) {
                case MOUNT_OP_NEW:
                        if (!q->fstype) {
                                event_set(e, false, -EINVAL, "no file system type");
                                return -EINVAL;
                        }
                        if (!strv_contains(allowed_fstypes, ELEMENTSOF(allowed_fstypes), q->fstype)) {
                                event_set(e, true, -EPERM, "file system type '%s' is not allowed", q->fstype);
                                return -EPERM;
                        }
                        break;
                case MOUNT_OP_PROPAGATION: {
                        unsigned long type = q->flags & ~(MS_REC | MS_SILENT);
                        if (type != MS_SHARED && type != MS_PRIVATE && type != MS_SLAVE && type != MS_UNBINDABLE) {
                                event_set(e, false, -EINVAL, "invalid propagation flags 0x%lx", q->flags);
                                return -EINVAL;
                        }
                        break;
                }
                case MOUNT_OP_BIND:
                case MOUNT_OP_MOVE:
                        if (!q->source) {
                                event_set(e, false, -EFAULT, "no source");
                                return -EFAULT;
                        }
                        break;
                default:
                        break;
                }
                return 0;
        case SYSCALL_UMOUNT2:
                r = tracee_read_string(q->pid, a[0], b->target, sizeof(b->target), -ENAMETOOLONG, &q->target);
                if (r >= 0 && !q->target)
                        r = -EFAULT;
                if (r < 0) {
                        event_set(e, false, r, "cannot read the arguments: %s", strerror(-r));
                        return r;
                }
                q->flags = (unsigned long) (int) a[1];
                if (q->flags & ~(unsigned long) (MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW)) {
                        event_set(e, false, -EINVAL, "invalid flags 0x%lx", q->flags);
                        return -EINVAL;
                }
                return 0;
        case SYSCALL_MKNOD:
        case SYSCALL_MKNODAT: {
                uint64_t addr = q->kind == SYSCALL_MKNOD ? a[0] : a[1];
                r = tracee_read_string(q->pid, addr, b->target, sizeof(b->target), -ENAMETOOLONG, &q->target);
                if (r >= 0 && !q->target)
                        r = -EFAULT;
                if (r >= 0 && !*q->target)
                        r = -ENOENT;
                if (r < 0) {
                        event_set(e, false, r, "cannot read the path: %s", strerror(-r));
                        return r;
                }
                return 0;
        }
        default:
                break;
        }
        event_set(e, true, -EPERM, "unexpected system call %d", req->data.nr);
        return -EPERM;
}

/* Whether the call needs a helper: the registers decide the others. */
static bool needs_helper(const BrokerContainer *c, const struct seccomp_notif *req) {
        SyscallKind kind = syscall_classify(c, req->data.arch, req->data.nr);
        const __u64 *a = req->data.args;
        const char *device;
        if (kind == SYSCALL_MKNOD)
                return mknod_decide(a[1], a[2], &device) == 0;
        if (kind == SYSCALL_MKNODAT)
                return mknod_decide(a[2], a[3], &device) == 0;
        return kind == SYSCALL_MOUNT || kind == SYSCALL_UMOUNT2;
}

static bool helper_available(const BrokerContainer *c) {
        const Broker *b = c->broker;
        return c->helpers < b->limits.helpers_per_container && b->helpers < b->limits.helpers;
}

static int pending_start(BrokerContainer *c, int notify_fd, const Request *q, uint64_t id, BrokerPending **ret) {
        _cleanup_(broker_pending_freep) BrokerPending *p = calloc(1, sizeof(BrokerPending));
        if (!p)
                return -ENOMEM;
        *p = (BrokerPending) { .helper = HELPER_NULL, .notify_fd = -EBADF, .id = id, .pid = q->pid, .kind = q->kind };
        p->notify_fd = RET_NERRNO(fcntl(notify_fd, F_DUPFD_CLOEXEC, 3));
        if (p->notify_fd < 0)
                return p->notify_fd;
        int r = helper_start(broker_helper, q, &p->helper);
        if (r < 0)
                return r;
        p->c = c;
        c->helpers++;
        c->broker->helpers++;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Handles one notification received: answers it or starts its helper. */
static int notification_handle(BrokerContainer *c, int notify_fd, const struct seccomp_notif *req,
                               BrokerPending **ret_pending, BrokerEvent *ret_event) {
        BrokerEvent e = { .pid = (pid_t) req->pid };
        Request q = {
                .c = c,
                .pid = (pid_t) req->pid,
                .agent = getpid(),
                .kind = syscall_classify(c, req->data.arch, req->data.nr),
                .pidfd = -EBADF,
                .root_fd = -EBADF,
                .cwd_fd = -EBADF,
                .dir_fd = -EBADF,
                .mountinfo_fd = -EBADF,
                .pidns_fd = -EBADF,
        };
        e.syscall = syscall_names[q.kind];
        const __u64 *a = req->data.args;
        _cleanup_free_ Buffers *b = NULL;
        int r;

        if (q.kind == SYSCALL_MKNOD || q.kind == SYSCALL_MKNODAT) {
                bool at = q.kind == SYSCALL_MKNODAT;
                r = mknod_decide(at ? a[2] : a[1], at ? a[3] : a[2], &q.device);
                if (r > 0) {
                        e.continued = true;
                        r = notify_respond(notify_fd, req->id, 0, true);
                        goto answered;
                }
                if (r < 0) {
                        unsigned dev = (unsigned) (at ? a[3] : a[2]);
                        event_set(&e, true, r, "device %u:%u (mode 0%o) is not allowed", (dev & 0xfff00) >> 8,
                                  (dev & 0xff) | ((dev >> 12) & 0xfff00), (unsigned) (uint16_t) (at ? a[2] : a[1]));
                        r = notify_respond(notify_fd, req->id, r, false);
                        goto answered;
                }
                q.mode = (mode_t) (uint16_t) (at ? a[2] : a[1]);
        }

        b = malloc(sizeof(Buffers));
        if (!b)
                r = -ENOMEM;
        else if ((r = request_read(req, &q, b, &e)) == 0)
                r = request_open(&q, (int) a[0], q.target[0] != '/');
        /* Whatever was read or opened belongs to the caller only if it is still waiting. */
        int valid = notify_id_valid(notify_fd, req->id);
        if (valid < 0) {
                request_done(&q);
                return valid; /* ENOENT: gone */
        }
        if (r >= 0 && (r = pending_start(c, notify_fd, &q, req->id, ret_pending)) < 0)
                event_set(&e, false, r, "cannot start a helper: %s", strerror(-r));
        request_done(&q);
        if (r >= 0) {
                *ret_event = e;
                return BROKER_PENDING;
        }
        if (!e.reason[0])
                event_set(&e, false, r, "cannot act as the caller: %s", strerror(-r));
        r = notify_respond(notify_fd, req->id, e.error, false);

answered:
        if (r < 0)
                return r;
        *ret_event = e;
        return BROKER_ANSWERED;
}

int broker_handle(BrokerContainer *c, int notify_fd, BrokerPending **ret_pending, BrokerEvent *ret_event) {
        NotifBuffer n;
        for (;;) {
                memset(&n, 0, sizeof(n));
                if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &n.req) >= 0)
                        break;
                if (errno != EINTR)
                        return -errno; /* ENOENT: it was killed before we got it */
        }
        if (!needs_helper(c, &n.req) || helper_available(c))
                return notification_handle(c, notify_fd, &n.req, ret_pending, ret_event);

        /* Waits for a helper, if there is room. */
        Broker *b = c->broker;
        BrokerEvent e = { .syscall = syscall_names[syscall_classify(c, n.req.data.arch, n.req.data.nr)],
                          .pid = (pid_t) n.req.pid };
        Queued *q = NULL;
        int r = -EAGAIN;
        if (c->queued < b->limits.queued_per_container && b->queued < b->limits.queued) {
                q = malloc(sizeof(Queued));
                r = !q ? -ENOMEM : RET_NERRNO(fcntl(notify_fd, F_DUPFD_CLOEXEC, 3));
        }
        if (r < 0) {
                free(q);
                event_set(&e, false, r, "%s", r == -EAGAIN ? "too many calls waiting for a helper" : strerror(-r));
                r = notify_respond(notify_fd, n.req.id, e.error, false);
                if (r < 0)
                        return r;
                *ret_event = e;
                return BROKER_ANSWERED;
        }
        *q = (Queued) { .notify_fd = r, .notif = n };
        if (c->queue_last)
                c->queue_last->next = q;
        else
                c->queue_first = q;
        c->queue_last = q;
        c->queued++;
        b->queued++;
        *ret_event = e;
        return BROKER_QUEUED;
}

int broker_container_dequeue(BrokerContainer *c, BrokerPending **ret_pending, BrokerEvent *ret_event) {
        Queued *q = c->queue_first;
        if (!q || !helper_available(c))
                return -EAGAIN;
        c->queue_first = q->next;
        if (!c->queue_first)
                c->queue_last = NULL;
        c->queued--;
        c->broker->queued--;
        int r = notification_handle(c, q->notify_fd, &q->notif.req, ret_pending, ret_event);
        safe_close(q->notify_fd);
        free(q);
        return r;
}

/* ---- finishing ---- */

int broker_pending_fd(const BrokerPending *p) {
        return p->helper.socket;
}

BrokerPending *broker_pending_free(BrokerPending *p) {
        if (!p)
                return NULL;
        helper_done(&p->helper);
        safe_close(p->notify_fd);
        if (p->c) {
                p->c->helpers--;
                p->c->broker->helpers--;
        }
        free(p);
        return NULL;
}

static int pending_answer(BrokerPending *p, BrokerEvent *e, BrokerEvent *ret_event) {
        _cleanup_(broker_pending_freep) BrokerPending *owned = p;
        helper_done(&p->helper);
        int r = notify_respond(p->notify_fd, p->id, e->error, false);
        if (r < 0)
                return r;
        *ret_event = *e;
        return 0;
}

int broker_pending_finish(BrokerPending *p, BrokerEvent *ret_event) {
        HelperReply reply;
        int r = helper_read(&p->helper, &reply, NULL);
        if (r == -EAGAIN)
                return r;
        BrokerEvent e = { .syscall = syscall_names[p->kind], .pid = p->pid };
        if (r == -ECHILD)
                event_set(&e, false, -EINTR, "the helper died without an answer");
        else if (r < 0)
                event_set(&e, false, -EIO, "cannot read the helper's answer: %s", strerror(-r));
        else
                event_set(&e, reply.detail == 1 && reply.error < 0, reply.error, "%s", reply.reason);
        return pending_answer(p, &e, ret_event);
}

int broker_pending_cancel(BrokerPending *p, int error, const char *reason, BrokerEvent *ret_event) {
        BrokerEvent e = { .syscall = syscall_names[p->kind], .pid = p->pid };
        event_set(&e, false, error, "%s", reason);
        return pending_answer(p, &e, ret_event);
}
