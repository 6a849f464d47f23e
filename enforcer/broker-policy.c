/* SPDX-License-Identifier: Apache-2.0 */
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "broker-policy.h"
#include "procfs.h"
#include "macros.h"

#define MASK_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
#define UMOUNT_FLAGS (MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW)
#define PROPAGATION_FLAGS (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

static const char *const syscall_names[_BROKER_SYSCALL_MAX] = {
        [BROKER_SYSCALL_UNKNOWN] = "unknown",
        [BROKER_SYSCALL_MOUNT] = "mount",
        [BROKER_SYSCALL_UMOUNT2] = "umount2",
        [BROKER_SYSCALL_MKNOD] = "mknod",
        [BROKER_SYSCALL_MKNODAT] = "mknodat",
        [BROKER_SYSCALL_PIVOT_ROOT] = "pivot_root",
        [BROKER_SYSCALL_SOCKET] = "socket",
        [BROKER_SYSCALL_ADD_KEY] = "add_key",
        [BROKER_SYSCALL_REQUEST_KEY] = "request_key",
        [BROKER_SYSCALL_KEYCTL] = "keyctl",
        [BROKER_SYSCALL_INIT_MODULE] = "init_module",
        [BROKER_SYSCALL_FINIT_MODULE] = "finit_module",
        [BROKER_SYSCALL_DELETE_MODULE] = "delete_module",
        [BROKER_SYSCALL_KEXEC_LOAD] = "kexec_load",
        [BROKER_SYSCALL_KEXEC_FILE_LOAD] = "kexec_file_load",
        [BROKER_SYSCALL_BPF] = "bpf",
        [BROKER_SYSCALL_OPEN_BY_HANDLE_AT] = "open_by_handle_at",
        [BROKER_SYSCALL_FSOPEN] = "fsopen",
        [BROKER_SYSCALL_FSCONFIG] = "fsconfig",
        [BROKER_SYSCALL_FSMOUNT] = "fsmount",
        [BROKER_SYSCALL_FSPICK] = "fspick",
        [BROKER_SYSCALL_MOVE_MOUNT] = "move_mount",
        [BROKER_SYSCALL_OPEN_TREE] = "open_tree",
        [BROKER_SYSCALL_MOUNT_SETATTR] = "mount_setattr",
        [BROKER_SYSCALL_OPEN_TREE_ATTR] = "open_tree_attr",
};

const BrokerRefusal broker_refusals[] = {
        { BROKER_SYSCALL_SOCKET, EPERM },          { BROKER_SYSCALL_ADD_KEY, ENOSYS },
        { BROKER_SYSCALL_REQUEST_KEY, ENOSYS },    { BROKER_SYSCALL_KEYCTL, ENOSYS },
        { BROKER_SYSCALL_INIT_MODULE, EPERM },     { BROKER_SYSCALL_FINIT_MODULE, EPERM },
        { BROKER_SYSCALL_DELETE_MODULE, EPERM },   { BROKER_SYSCALL_KEXEC_LOAD, EPERM },
        { BROKER_SYSCALL_KEXEC_FILE_LOAD, EPERM }, { BROKER_SYSCALL_BPF, EPERM },
        { BROKER_SYSCALL_OPEN_BY_HANDLE_AT, EPERM }, { BROKER_SYSCALL_FSOPEN, ENOSYS },
        { BROKER_SYSCALL_FSCONFIG, ENOSYS },       { BROKER_SYSCALL_FSMOUNT, ENOSYS },
        { BROKER_SYSCALL_FSPICK, ENOSYS },         { BROKER_SYSCALL_MOVE_MOUNT, ENOSYS },
        { BROKER_SYSCALL_OPEN_TREE, ENOSYS },      { BROKER_SYSCALL_MOUNT_SETATTR, ENOSYS },
        { BROKER_SYSCALL_OPEN_TREE_ATTR, ENOSYS },
};
const size_t broker_n_refusals = ELEMENTSOF(broker_refusals);

static const char *const allowed_fstypes[] = { "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup2", "overlay" };
const char *const broker_proc_readonly[] = { "sys", "sysrq-trigger", "irq", "bus", "fs" };
const size_t broker_n_proc_readonly = ELEMENTSOF(broker_proc_readonly);
/* umount2 of these: EBUSY, as if they were in use. */
static const char *const busy_paths[] = { "/", "/proc", "/sys", "/dev" };

/* The devices mknod(at) may make: emulated by a bind of the VM's node. */
static const struct {
        unsigned major, minor;
        const char *node;
} safe_devices[] = {
        { 1, 3, "/dev/null" },   { 1, 5, "/dev/zero" }, { 1, 7, "/dev/full" },    { 1, 8, "/dev/random" },
        { 1, 9, "/dev/urandom" },
};

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

/* MS_* per-mount flag to MOUNT_ATTR_*; MS_NOATIME wins over MS_STRICTATIME, as in the kernel. */
static const struct {
        unsigned long flag;
        unsigned attr;
} flag_attrs[] = {
        { MS_RDONLY, MOUNT_ATTR_RDONLY },         { MS_NOSUID, MOUNT_ATTR_NOSUID },
        { MS_NODEV, MOUNT_ATTR_NODEV },           { MS_NOEXEC, MOUNT_ATTR_NOEXEC },
        { MS_NODIRATIME, MOUNT_ATTR_NODIRATIME }, { MS_NOATIME, MOUNT_ATTR_NOATIME },
};

static bool strv_contains(const char *const *v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

const char *broker_syscall_name(BrokerSyscall s) {
        return (unsigned) s < _BROKER_SYSCALL_MAX ? syscall_names[s] : syscall_names[BROKER_SYSCALL_UNKNOWN];
}

/* The bits of map that a mount table's options ("a,b=c,d") hold, without copying them. */
static unsigned long options_bits(const char *options, const OptionBit *map, size_t n) {
        unsigned long bits = 0;
        for (const char *o = options; o && *o;) {
                size_t len = strcspn(o, ",");
                for (size_t i = 0; i < n; i++)
                        if (strlen(map[i].name) == len && strncmp(o, map[i].name, len) == 0)
                                bits |= map[i].bit;
                o += len + (o[len] == ',');
        }
        return bits;
}

BrokerMountOp broker_mount_op(unsigned long flags) {
        if ((flags & (MS_REMOUNT | MS_BIND)) == (MS_REMOUNT | MS_BIND))
                return BROKER_MOUNT_REMOUNT_BIND;
        if (flags & MS_REMOUNT)
                return BROKER_MOUNT_REMOUNT;
        if (flags & MS_BIND)
                return BROKER_MOUNT_BIND;
        if (flags & PROPAGATION_FLAGS)
                return BROKER_MOUNT_PROPAGATION;
        if (flags & MS_MOVE)
                return BROKER_MOUNT_MOVE;
        return BROKER_MOUNT_NEW;
}

unsigned broker_mount_attrs(unsigned long flags) {
        unsigned a = 0;
        for (size_t i = 0; i < ELEMENTSOF(flag_attrs); i++)
                if (flags & flag_attrs[i].flag)
                        a |= flag_attrs[i].attr;
        if ((flags & MS_STRICTATIME) && !(flags & MS_NOATIME))
                a |= MOUNT_ATTR_STRICTATIME;
        return a;
}

unsigned long broker_sb_flags(const char *options, unsigned long *ret_mask) {
        if (ret_mask) {
                *ret_mask = 0;
                for (size_t i = 0; i < ELEMENTSOF(sb_options); i++)
                        *ret_mask |= sb_options[i].bit;
        }
        return options_bits(options, sb_options, ELEMENTSOF(sb_options));
}

bool broker_masked(const BrokerRules *rules, const char *path) {
        return strv_contains(rules->masked, rules->n_masked, path);
}

bool broker_needs_mount_table(BrokerSyscall s, unsigned long flags, const char *fstype) {
        if (s != BROKER_SYSCALL_MOUNT)
                return s == BROKER_SYSCALL_UMOUNT2 || s == BROKER_SYSCALL_PIVOT_ROOT;
        BrokerMountOp op = broker_mount_op(flags);
        return op != BROKER_MOUNT_PROPAGATION && (op != BROKER_MOUNT_NEW || (fstype && streq(fstype, "overlay")));
}

const MountEntry *broker_table_find(const MountTable *t, int id) {
        for (size_t i = 0; t && i < t->n; i++)
                if (t->entries[i].id == id)
                        return &t->entries[i];
        return NULL;
}

bool broker_mount_is_mask(const BrokerRules *rules, const MountTable *table, const MountEntry *e) {
        const MountEntry *parent = broker_table_find(table, e->parent);
        if (!parent || parent == e)
                return false;
        const char *prefix = streq(parent->fstype, "proc")    ? "/proc/"
                             : streq(parent->fstype, "sysfs") ? "/sys/"
                                                              : NULL;
        const char *rel = prefix ? path_startswith(e->point, parent->point) : NULL;
        if (!rel || !*rel)
                return false;
        if (streq(prefix, "/proc/") && strv_contains(broker_proc_readonly, broker_n_proc_readonly, rel))
                return true;
        if (streq(e->fstype, PROCFS_FSTYPE))
                return true; /* a file of the /proc emulation: under it, the VM's figures */
        for (size_t i = 0; i < rules->n_masked; i++) {
                const char *m = rules->masked[i];
                if (STARTSWITH(m, prefix) && streq(m + strlen(prefix), rel))
                        return true;
        }
        return false;
}

unsigned broker_mount_restrictions(const BrokerRules *rules, const MountTable *table, const MountEntry *e,
                                   bool *ret_initial) {
        unsigned r = 0;
        bool initial = false;
        /* Matched by what the mount shows, not by its ID: an initial mount shows its own
         * device and root, and the kernel gives a freed mount's ID to the next new one. */
        for (size_t i = 0; rules->initial && i < rules->initial->n; i++) {
                const MountEntry *m = &rules->initial->entries[i];
                if (m->major == e->major && m->minor == e->minor && path_startswith(e->root, m->root)) {
                        r |= (unsigned) options_bits(m->options, attr_options, ELEMENTSOF(attr_options));
                        initial = true;
                }
        }
        if (broker_mount_is_mask(rules, table, e))
                r |= MOUNT_ATTR_RDONLY;
        if (ret_initial)
                *ret_initial = initial;
        return r;
}

/* ---- verdicts ---- */

_printf_(4, 5) static void refuse(BrokerDecision *v, bool denied, int error, const char *format, ...) {
        v->action = BROKER_ACTION_REFUSE;
        v->denied = denied;
        v->error = error;
        va_list ap;
        va_start(ap, format);
        vsnprintf(v->reason, sizeof(v->reason), format, ap);
        va_end(ap);
}

static unsigned dev_major(unsigned dev) {
        return (dev & 0xfff00) >> 8;
}

static unsigned dev_minor(unsigned dev) {
        return (dev & 0xff) | ((dev >> 12) & 0xfff00);
}

/* The registers alone decide mknod(at); mount and umount2 need their strings. */
static void decide_registers(const BrokerRequest *q, BrokerDecision *v) {
        bool at = q->syscall == BROKER_SYSCALL_MKNODAT;
        for (size_t i = 0; i < ELEMENTSOF(broker_refusals); i++)
                if (broker_refusals[i].syscall == q->syscall) {
                        if (q->syscall == BROKER_SYSCALL_SOCKET)
                                refuse(v, true, -broker_refusals[i].error, "socket family %d is not allowed",
                                       (int) q->args[0]);
                        else
                                refuse(v, true, -broker_refusals[i].error, "not allowed in a container");
                        return;
                }
        if (q->syscall != BROKER_SYSCALL_MKNOD && !at) {
                if (q->syscall == BROKER_SYSCALL_UNKNOWN)
                        refuse(v, true, -EPERM, "unexpected system call");
                return;
        }
        v->mode = (mode_t) (uint16_t) q->args[at ? 2 : 1]; /* the kernel's umode_t */
        mode_t type = v->mode & S_IFMT;
        unsigned dev = (unsigned) q->args[at ? 3 : 2];
        if (type == 0 || type == S_IFREG || type == S_IFIFO || type == S_IFSOCK ||
            (type == S_IFCHR && dev == 0) /* overlayfs whiteout, allowed in a user namespace */) {
                v->action = BROKER_ACTION_CONTINUE;
                return;
        }
        for (size_t i = 0; type == S_IFCHR && i < ELEMENTSOF(safe_devices); i++)
                if (safe_devices[i].major == dev_major(dev) && safe_devices[i].minor == dev_minor(dev)) {
                        v->device = safe_devices[i].node;
                        return;
                }
        refuse(v, true, -EPERM, "device %u:%u (mode 0%o) is not allowed", dev_major(dev), dev_minor(dev),
               (unsigned) v->mode);
}

static void decide_arguments(const BrokerRequest *q, BrokerDecision *v) {
        decide_registers(q, v);
        if (v->action != BROKER_ACTION_PERFORM)
                return;
        bool mknod = q->syscall == BROKER_SYSCALL_MKNOD || q->syscall == BROKER_SYSCALL_MKNODAT;
        if (!q->target || (mknod && !*q->target)) {
                int error = q->target ? ENOENT : EFAULT;
                refuse(v, false, -error, "cannot read the %s: %s", mknod ? "path" : "arguments", strerror(error));
                return;
        }
        switch (q->syscall) {
        case BROKER_SYSCALL_MOUNT:
                v->flags = (unsigned long) q->args[3];
                if ((v->flags & 0xffff0000UL) == MS_MGC_VAL)
                        v->flags &= ~0xffff0000UL;
                switch (broker_mount_op(v->flags)) {
                case BROKER_MOUNT_NEW:
                        if (!q->fstype)
                                refuse(v, false, -EINVAL, "no file system type");
                        else if (!strv_contains(allowed_fstypes, ELEMENTSOF(allowed_fstypes), q->fstype))
                                refuse(v, true, -EPERM, "file system type '%s' is not allowed", q->fstype);
                        break;
                case BROKER_MOUNT_PROPAGATION: {
                        unsigned long type = v->flags & ~(unsigned long) (MS_REC | MS_SILENT);
                        if (type != MS_SHARED && type != MS_PRIVATE && type != MS_SLAVE && type != MS_UNBINDABLE)
                                refuse(v, false, -EINVAL, "invalid propagation flags 0x%lx", v->flags);
                        break;
                }
                case BROKER_MOUNT_BIND:
                case BROKER_MOUNT_MOVE:
                        if (!q->source)
                                refuse(v, false, -EFAULT, "no source");
                        break;
                default:
                        break;
                }
                break;
        case BROKER_SYSCALL_UMOUNT2:
                v->flags = (unsigned long) (int) q->args[1];
                if (v->flags & ~(unsigned long) UMOUNT_FLAGS)
                        refuse(v, false, -EINVAL, "invalid flags 0x%lx", v->flags);
                break;
        case BROKER_SYSCALL_PIVOT_ROOT:
                if (!q->source)
                        refuse(v, false, -EFAULT, "cannot read the arguments: %s", strerror(EFAULT));
                break;
        default: /* mknod(at) of a device to emulate */
                break;
        }
}

/* A mount the container started with, or a mask, stays where it is: moved (MS_MOVE, or
 * made the root by pivot_root) it would show what it covered. */
static void decide_moved(const BrokerRules *rules, const MountTable *table, const MountEntry *m, const char *path,
                         BrokerDecision *v) {
        bool initial = false;
        if (!m)
                return refuse(v, true, -EPERM, "the mount at '%s' is not in the mount table", path);
        (void) broker_mount_restrictions(rules, table, m, &initial);
        if (initial || broker_mount_is_mask(rules, table, m))
                refuse(v, true, -EPERM, "'%s' is %s and cannot be moved", path,
                       initial ? "a mount the container started with" : "a mask");
}

static void decide_mount(const BrokerRules *rules, const BrokerRequest *q, BrokerDecision *v) {
        BrokerMountOp op = broker_mount_op(q->flags);
        char what[64];
        if (op == BROKER_MOUNT_BIND || op == BROKER_MOUNT_MOVE) {
                /* A namespace file (the engine binds /proc/PID/ns/net to keep a network
                 * namespace) shows no files; not a mount namespace's, which could make a
                 * loop of mounts. The kernel checks the caller's access to it. */
                bool nsfs = op == BROKER_MOUNT_BIND && q->source_fs_magic == NSFS_MAGIC;
                if (nsfs && STARTSWITH(q->source_path, "mnt:"))
                        return refuse(v, true, -EPERM, "'%s' is a mount namespace", q->source_path);
                if (!q->source_mount && !nsfs)
                        return refuse(v, true, -EPERM, "the mount at '%s' is not in the mount table", q->source_path);
                /* /dev/null on a masked file masks it again: what runc does for the masked
                 * paths of a container it makes inside this one. */
                if (broker_masked(rules, q->path) && !(op == BROKER_MOUNT_BIND && q->source_null))
                        return refuse(v, true, -EPERM, "'%s' is a masked path", q->path);
                for (size_t i = 0; i < rules->n_masked; i++)
                        if (path_startswith(q->source_path, rules->masked[i]))
                                return refuse(v, true, -EPERM, "'%s' is under the masked path '%s'", q->source_path,
                                              rules->masked[i]);
        }
        bool initial;
        switch (op) {
        case BROKER_MOUNT_REMOUNT_BIND:
        case BROKER_MOUNT_REMOUNT: {
                if (!q->mount)
                        return refuse(v, true, -EPERM, "the mount at '%s' is not in the mount table", q->path);
                unsigned lost = broker_mount_restrictions(rules, q->table, q->mount, &initial) &
                                ~broker_mount_attrs(q->flags) & MASK_ATTRS;
                if (lost) {
                        snprintf(what, sizeof(what), "%s%s%s%s", lost & MOUNT_ATTR_RDONLY ? " ro" : "",
                                 lost & MOUNT_ATTR_NOSUID ? " nosuid" : "", lost & MOUNT_ATTR_NODEV ? " nodev" : "",
                                 lost & MOUNT_ATTR_NOEXEC ? " noexec" : "");
                        return refuse(v, true, -EPERM, "remounting '%s' would drop%s of %s", q->path, what,
                                      initial ? "a mount the container started with" : "a mask");
                }
                break;
        }
        case BROKER_MOUNT_BIND:
                /* A non-recursive copy would leave the masks below the source behind. */
                for (size_t i = 0; !(q->flags & MS_REC) && q->source_mount && q->table && i < q->table->n; i++) {
                        const MountEntry *child = &q->table->entries[i];
                        if (child->parent == q->source_mount->id && child != q->source_mount &&
                            broker_mount_is_mask(rules, q->table, child) && path_startswith(child->point, q->source_path))
                                return refuse(v, true, -EPERM, "a bind of '%s' without MS_REC would uncover '%s'",
                                              q->source_path, child->point);
                }
                break;
        case BROKER_MOUNT_MOVE:
                decide_moved(rules, q->table, q->source_mount, q->source_path, v);
                if (v->action == BROKER_ACTION_REFUSE)
                        return;
                break;
        default:
                break;
        }
}

/* A mount on top of the root, as pivot_root(".", ".") leaves the old root (runc does that
 * and then unmounts it): not the root itself. */
static bool stacked_on_root(const MountTable *table, const MountEntry *m) {
        const MountEntry *under = m ? broker_table_find(table, m->parent) : NULL;
        return under && under != m && streq(m->point, "/") && streq(under->point, "/");
}

static void decide_umount(const BrokerRules *rules, const BrokerRequest *q, BrokerDecision *v) {
        if (strv_contains(busy_paths, ELEMENTSOF(busy_paths), q->path) &&
            !(streq(q->path, "/") && stacked_on_root(q->table, q->mount)))
                refuse(v, true, -EBUSY, "'%s' cannot be unmounted", q->path);
        else if (broker_masked(rules, q->path))
                refuse(v, true, -EPERM, "'%s' is a masked path", q->path);
        else if (!q->mount)
                refuse(v, true, -EPERM, "the mount at '%s' is not in the mount table", q->path);
        else if (broker_mount_is_mask(rules, q->table, q->mount))
                refuse(v, true, -EPERM, "'%s' is a mask", q->path);
}

/* An overlay layer shows its directory's own file system, without the mounts on top of it:
 * no proc or sysfs, nothing under a masked path, no directory holding one. */
static void decide_layer(const BrokerRules *rules, const BrokerRequest *q, BrokerDecision *v) {
        if (q->fs_magic == PROC_SUPER_MAGIC || q->fs_magic == SYSFS_MAGIC)
                return refuse(v, true, -EPERM, "overlay layer '%s' is on a %s", q->path,
                              q->fs_magic == PROC_SUPER_MAGIC ? "proc" : "sysfs");
        for (size_t i = 0; i < rules->n_masked; i++)
                if (path_startswith(q->path, rules->masked[i]))
                        return refuse(v, true, -EPERM, "overlay layer '%s' is under the masked path '%s'", q->path,
                                      rules->masked[i]);
        if (!q->mount)
                return refuse(v, true, -EPERM, "the mount at '%s' is not in the mount table", q->path);
        for (size_t i = 0; q->table && i < q->table->n; i++) {
                const MountEntry *m = &q->table->entries[i];
                if (m->parent == q->mount->id && broker_masked(rules, m->point) && path_startswith(m->point, q->path))
                        return refuse(v, true, -EPERM, "overlay layer '%s' would show what the mask on '%s' hides",
                                      q->path, m->point);
        }
}

void broker_decide(const BrokerRules *rules, const BrokerRequest *q, BrokerDecision *ret) {
        BrokerDecision v = { .action = BROKER_ACTION_PERFORM };
        switch (q->check) {
        case BROKER_CHECK_REGISTERS:
                decide_registers(q, &v);
                break;
        case BROKER_CHECK_ARGUMENTS:
                decide_arguments(q, &v);
                break;
        case BROKER_CHECK_MOUNT:
                decide_mount(rules, q, &v);
                break;
        case BROKER_CHECK_UMOUNT:
                decide_umount(rules, q, &v);
                break;
        case BROKER_CHECK_LAYER:
                decide_layer(rules, q, &v);
                break;
        case BROKER_CHECK_PIVOT:
                decide_moved(rules, q->table, q->mount, q->path, &v);
                break;
        default:
                refuse(&v, true, -EPERM, "unexpected request");
        }
        *ret = v;
}
