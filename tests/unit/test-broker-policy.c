/* SPDX-License-Identifier: Apache-2.0 */
/* The broker's decisions by table: each row a request (what the caller asked, and in its
 * view what the paths resolved to) and the decision the rules give, with the reason's
 * words. The mount table is a container's as runc leaves it: an overlay root, a masked and
 * read-only-bound /proc, a read-only bind at /data; then a tmpfs at /mnt with a proc on it,
 * and a tmpfs on top of the root (as pivot_root(".", ".") leaves the old root); then the
 * /proc emulation's meminfo bound on the new proc, as the broker binds it. */
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "enforcer/broker-policy.h"
#include "test.h"
#include "util.h"

#define MOUNTINFO                                                                                     \
        "100 90 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n"       \
        "101 100 0:51 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"                       \
        "102 101 0:51 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw\n"                \
        "103 101 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw\n"                                \
        "104 100 0:52 / /dev rw,nosuid - tmpfs tmpfs rw,mode=755\n"                                   \
        "105 100 8:1 /srv/data /data ro,nosuid,nodev - ext4 /dev/sda1 rw\n"                           \
        "106 100 0:53 / /sys ro,nosuid,nodev,noexec - sysfs sysfs ro\n"                               \
        "107 106 0:54 / /sys/firmware ro,relatime - tmpfs tmpfs ro\n"                                 \
        "108 100 0:55 / /mnt rw,relatime - tmpfs tmpfs rw\n"                                          \
        "109 108 0:51 / /mnt/p rw,relatime - proc proc rw\n"                                          \
        "110 109 0:5 /null /mnt/p/kcore rw,nosuid - devtmpfs udev rw\n"                                \
        "111 100 0:56 / / rw,relatime - tmpfs tmpfs rw\n"                                             \
        "112 109 0:57 /meminfo /mnt/p/meminfo rw,nosuid,nodev,relatime - fuse.stockade stockade rw\n"

/* The kernel's encoding of a device number, for small ones. */
#define DEV(major, minor) ((major) << 8 | (minor))

static const char *const masked[] = { "/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/acpi" };

typedef struct Row {
        const char *name;
        BrokerRequest q;
        int mount_id, source_mount_id; /* looked up in the table; 0: none */
        BrokerAction action;
        int error;
        bool denied;
        const char *reason; /* a part of it */
} Row;

#define MKNOD(mode, dev) { .check = BROKER_CHECK_REGISTERS, .syscall = BROKER_SYSCALL_MKNOD, .args = { 0, (mode), (dev) } }
#define MKNODAT(mode, dev) { .check = BROKER_CHECK_REGISTERS, .syscall = BROKER_SYSCALL_MKNODAT, .args = { 0, 0, (mode), (dev) } }
#define ARGS_MOUNT(src, tgt, type, flags) \
        { .check = BROKER_CHECK_ARGUMENTS, .syscall = BROKER_SYSCALL_MOUNT, .source = (src), .target = (tgt), .fstype = (type), .args = { 1, 1, 1, (flags) } }
#define MOUNT(p, sp, fl) { .check = BROKER_CHECK_MOUNT, .syscall = BROKER_SYSCALL_MOUNT, .path = (p), .source_path = (sp), .flags = (fl) }
/* The source is the character device 1:3, or a namespace file. */
#define MOUNT_NULL(p, sp, fl) { .check = BROKER_CHECK_MOUNT, .syscall = BROKER_SYSCALL_MOUNT, .path = (p), .source_path = (sp), .flags = (fl), .source_null = true }
#define MOUNT_NS(p, sp, fl) { .check = BROKER_CHECK_MOUNT, .syscall = BROKER_SYSCALL_MOUNT, .path = (p), .source_path = (sp), .flags = (fl), .source_fs_magic = NSFS_MAGIC }
#define UMOUNT(p) { .check = BROKER_CHECK_UMOUNT, .syscall = BROKER_SYSCALL_UMOUNT2, .path = (p) }
#define PIVOT(p) { .check = BROKER_CHECK_PIVOT, .syscall = BROKER_SYSCALL_PIVOT_ROOT, .path = (p) }
#define LAYER(p, magic) { .check = BROKER_CHECK_LAYER, .path = (p), .fs_magic = (magic) }

static const Row rows[] = {
        /* mknod(at): the registers decide */
        { "fifo continues", MKNOD(S_IFIFO | 0644, 0), 0, 0, BROKER_ACTION_CONTINUE, 0, false, "" },
        { "file continues", MKNODAT(S_IFREG, 0), 0, 0, BROKER_ACTION_CONTINUE, 0, false, "" },
        { "socket continues", MKNOD(S_IFSOCK, 0), 0, 0, BROKER_ACTION_CONTINUE, 0, false, "" },
        { "whiteout continues", MKNOD(S_IFCHR, 0), 0, 0, BROKER_ACTION_CONTINUE, 0, false, "" },
        { "null is emulated", MKNOD(S_IFCHR | 0666, DEV(1, 3)), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "urandom is emulated", MKNODAT(S_IFCHR | 0666, DEV(1, 9)), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "disk refused", MKNOD(S_IFBLK | 0600, DEV(8, 0)), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "device 8:0" },
        { "mem refused", MKNOD(S_IFCHR | 0600, DEV(1, 1)), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "not allowed" },
        { "high bits of mode ignored", MKNOD(0x10000 | S_IFIFO, 0), 0, 0, BROKER_ACTION_CONTINUE, 0, false, "" },
        { "unknown call refused", { .check = BROKER_CHECK_REGISTERS }, 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "unexpected" },
        { "keyctl gets ENOSYS", { .check = BROKER_CHECK_REGISTERS, .syscall = BROKER_SYSCALL_KEYCTL }, 0, 0, BROKER_ACTION_REFUSE, -ENOSYS, true, "not allowed" },
        { "fsopen gets ENOSYS", { .check = BROKER_CHECK_REGISTERS, .syscall = BROKER_SYSCALL_FSOPEN }, 0, 0, BROKER_ACTION_REFUSE, -ENOSYS, true, "not allowed" },
        { "vsock refused", { .check = BROKER_CHECK_REGISTERS, .syscall = BROKER_SYSCALL_SOCKET, .args = { 40, 1 } }, 0, 0,
          BROKER_ACTION_REFUSE, -EPERM, true, "socket family 40 is not allowed" },
        { "mount needs its strings", { .check = BROKER_CHECK_REGISTERS, .syscall = BROKER_SYSCALL_MOUNT }, 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        /* mount: the strings */
        { "tmpfs allowed", ARGS_MOUNT("none", "/mnt", "tmpfs", 0), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "magic value stripped", ARGS_MOUNT("none", "/mnt", "tmpfs", MS_MGC_VAL | MS_RDONLY), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "ext4 refused", ARGS_MOUNT("/dev/sda1", "/mnt", "ext4", 0), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "'ext4' is not allowed" },
        { "no type", ARGS_MOUNT("none", "/mnt", NULL, 0), 0, 0, BROKER_ACTION_REFUSE, -EINVAL, false, "no file system type" },
        { "no target", ARGS_MOUNT("none", NULL, "tmpfs", 0), 0, 0, BROKER_ACTION_REFUSE, -EFAULT, false, "cannot read the arguments" },
        { "bind without source", ARGS_MOUNT(NULL, "/mnt", NULL, MS_BIND), 0, 0, BROKER_ACTION_REFUSE, -EFAULT, false, "no source" },
        { "two propagations", ARGS_MOUNT(NULL, "/mnt", NULL, MS_SHARED | MS_PRIVATE), 0, 0, BROKER_ACTION_REFUSE, -EINVAL, false, "propagation" },
        { "private recursive", ARGS_MOUNT(NULL, "/mnt", NULL, MS_PRIVATE | MS_REC), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "umount2 bad flags", { .check = BROKER_CHECK_ARGUMENTS, .syscall = BROKER_SYSCALL_UMOUNT2, .target = "/mnt", .args = { 1, 0x100 } },
          0, 0, BROKER_ACTION_REFUSE, -EINVAL, false, "invalid flags" },
        { "pivot_root without put_old", { .check = BROKER_CHECK_ARGUMENTS, .syscall = BROKER_SYSCALL_PIVOT_ROOT, .target = "." },
          0, 0, BROKER_ACTION_REFUSE, -EFAULT, false, "cannot read the arguments" },
        { "mknod empty path", { .check = BROKER_CHECK_ARGUMENTS, .syscall = BROKER_SYSCALL_MKNOD, .target = "", .args = { 1, S_IFCHR, DEV(1, 3) } },
          0, 0, BROKER_ACTION_REFUSE, -ENOENT, false, "cannot read the path" },
        /* mount: resolved */
        { "remount ro bind rw", MOUNT("/data", NULL, MS_REMOUNT | MS_BIND), 105, 0, BROKER_ACTION_REFUSE, -EPERM, true,
          "remounting '/data' would drop ro nosuid nodev of a mount the container started with" },
        { "remount ro bind keeping all", MOUNT("/data", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV), 105, 0,
          BROKER_ACTION_PERFORM, 0, false, "" },
        { "remount a mask rw", MOUNT("/proc/sys", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC), 102, 0,
          BROKER_ACTION_REFUSE, -EPERM, true, "drop ro" },
        { "remount a new tmpfs", MOUNT("/mnt", NULL, MS_REMOUNT | MS_RDONLY), 108, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "remount outside the table", MOUNT("/x", NULL, MS_REMOUNT), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "not in the mount table" },
        { "bind onto a masked path", MOUNT("/proc/kcore", "/mnt", MS_BIND), 0, 108, BROKER_ACTION_REFUSE, -EPERM, true, "is a masked path" },
        { "bind /dev/null onto a masked path", MOUNT_NULL("/proc/kcore", "/dev/null", MS_BIND), 0, 104, BROKER_ACTION_PERFORM, 0, false, "" },
        { "move /dev/null onto a masked path", MOUNT_NULL("/proc/kcore", "/dev/null", MS_MOVE), 0, 104, BROKER_ACTION_REFUSE, -EPERM, true, "is a masked path" },
        { "bind a network namespace", MOUNT_NS("/mnt/netns", "net:[4026532008]", MS_BIND), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "bind a mount namespace", MOUNT_NS("/mnt/mntns", "mnt:[4026532009]", MS_BIND), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is a mount namespace" },
        { "bind a namespace onto a masked path", MOUNT_NS("/proc/kcore", "net:[4026532008]", MS_BIND), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is a masked path" },
        { "bind from under a mask", MOUNT("/mnt", "/sys/firmware/efi", MS_BIND), 0, 107, BROKER_ACTION_REFUSE, -EPERM, true, "under the masked path" },
        { "non-recursive bind uncovers", MOUNT("/dev", "/mnt/p", MS_BIND), 0, 109, BROKER_ACTION_REFUSE, -EPERM, true,
          "without MS_REC would uncover '/mnt/p/kcore'" },
        { "recursive bind keeps masks", MOUNT("/dev", "/mnt/p", MS_BIND | MS_REC), 0, 109, BROKER_ACTION_PERFORM, 0, false, "" },
        { "bind of an unknown mount", MOUNT("/mnt", "/x", MS_BIND), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "not in the mount table" },
        { "move an initial mount", MOUNT("/mnt", "/data", MS_MOVE), 0, 105, BROKER_ACTION_REFUSE, -EPERM, true,
          "a mount the container started with and cannot be moved" },
        { "move a mask", MOUNT("/mnt", "/mnt/p/kcore", MS_MOVE), 0, 110, BROKER_ACTION_REFUSE, -EPERM, true, "cannot be moved" },
        { "move a bind of an initial proc", MOUNT("/dev", "/mnt/p", MS_MOVE), 0, 109, BROKER_ACTION_REFUSE, -EPERM, true, "cannot be moved" },
        { "move an emulated file of a new proc", MOUNT("/mnt/m", "/mnt/p/meminfo", MS_MOVE), 0, 112, BROKER_ACTION_REFUSE, -EPERM, true, "cannot be moved" },
        { "move a new mount", MOUNT("/dev", "/mnt", MS_MOVE), 0, 108, BROKER_ACTION_PERFORM, 0, false, "" },
        { "new mount", MOUNT("/mnt", NULL, 0), 0, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        /* umount2 */
        { "umount /proc", UMOUNT("/proc"), 101, 0, BROKER_ACTION_REFUSE, -EBUSY, true, "cannot be unmounted" },
        { "umount /", UMOUNT("/"), 100, 0, BROKER_ACTION_REFUSE, -EBUSY, true, "cannot be unmounted" },
        { "umount what is on top of the root", UMOUNT("/"), 111, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "umount a masked path", UMOUNT("/proc/kcore"), 103, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is a masked path" },
        { "umount a read-only bind of proc", UMOUNT("/proc/sys"), 102, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is a mask" },
        { "umount a mask of a new proc", UMOUNT("/mnt/p/kcore"), 110, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is a mask" },
        { "umount an emulated file of a new proc", UMOUNT("/mnt/p/meminfo"), 112, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is a mask" },
        { "umount a new tmpfs", UMOUNT("/mnt"), 108, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "umount outside the table", UMOUNT("/x"), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "not in the mount table" },
        /* pivot_root: the new root's mount moves */
        { "pivot into a mask", PIVOT("/sys/firmware"), 107, 0, BROKER_ACTION_REFUSE, -EPERM, true, "cannot be moved" },
        { "pivot into a mask of a new proc", PIVOT("/mnt/p/kcore"), 110, 0, BROKER_ACTION_REFUSE, -EPERM, true, "cannot be moved" },
        { "pivot into an initial mount", PIVOT("/data"), 105, 0, BROKER_ACTION_REFUSE, -EPERM, true,
          "a mount the container started with and cannot be moved" },
        { "pivot into a new tmpfs", PIVOT("/mnt"), 108, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "pivot outside the table", PIVOT("/x"), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "not in the mount table" },
        /* overlay layers */
        { "layer on proc", LAYER("/proc/1", PROC_SUPER_MAGIC), 101, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is on a proc" },
        { "layer on sysfs", LAYER("/sys/kernel", SYSFS_MAGIC), 106, 0, BROKER_ACTION_REFUSE, -EPERM, true, "is on a sysfs" },
        { "layer under a mask", LAYER("/sys/firmware/x", TMPFS_MAGIC), 107, 0, BROKER_ACTION_REFUSE, -EPERM, true, "under the masked path" },
        { "layer over a mask", LAYER("/mnt", TMPFS_MAGIC), 108, 0, BROKER_ACTION_PERFORM, 0, false, "" },
        { "layer holding a mask", LAYER("/proc", TMPFS_MAGIC), 101, 0, BROKER_ACTION_REFUSE, -EPERM, true, "would show what the mask on '/proc/kcore' hides" },
        { "layer outside the table", LAYER("/y", TMPFS_MAGIC), 0, 0, BROKER_ACTION_REFUSE, -EPERM, true, "not in the mount table" },
        { "layer on a tmpfs", LAYER("/dev/l", TMPFS_MAGIC), 104, 0, BROKER_ACTION_PERFORM, 0, false, "" },
};

TEST(decisions_by_table) {
        MountTable table = {}, initial = {};
        ASSERT_OK(mount_table_parse(strdup(MOUNTINFO), &table));
        /* Started with all but the new tmpfs at /mnt and what is on it. */
        ASSERT_OK(mount_table_parse(strdup(MOUNTINFO), &initial));
        initial.n = 8;
        BrokerRules rules = { masked, ELEMENTSOF(masked), &initial };
        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                const Row *row = &rows[i];
                BrokerRequest q = row->q;
                q.table = &table;
                q.mount = row->mount_id ? broker_table_find(&table, row->mount_id) : NULL;
                q.source_mount = row->source_mount_id ? broker_table_find(&table, row->source_mount_id) : NULL;
                BrokerDecision d;
                broker_decide(&rules, &q, &d);
                bool ok = d.action == row->action && d.error == row->error && d.denied == row->denied &&
                          strstr(d.reason, row->reason);
                if (!ok)
                        fprintf(stderr, "'%s': action %d error %d denied %d reason '%s'\n", row->name, d.action, d.error,
                                d.denied, d.reason);
                ASSERT_TRUE(ok);
        }
        mount_table_done(&table);
        mount_table_done(&initial);
}

/* The kernel gives a freed mount's ID to the next mount made (anywhere): a container that
 * unmounted one it started with, and then made a root for a container of its own (Docker in
 * Docker), may get the old ID for it. */
TEST(an_initial_mount_id_given_again) {
        MountTable table = {}, initial = {};
        ASSERT_OK(mount_table_parse(strdup("100 90 0:50 / / rw - overlay overlay rw\n"
                                           "120 100 0:60 / /scratch rw - tmpfs tmpfs rw\n"), &initial));
        ASSERT_OK(mount_table_parse(strdup("100 90 0:50 / / rw - overlay overlay rw\n"
                                           "120 100 0:61 / /inner rw - overlay overlay rw\n"), &table));
        BrokerRules rules = { masked, ELEMENTSOF(masked), &initial };
        BrokerRequest q = PIVOT("/inner");
        q.table = &table;
        q.mount = broker_table_find(&table, 120);
        BrokerDecision d;
        broker_decide(&rules, &q, &d);
        ASSERT_TRUE(d.action == BROKER_ACTION_PERFORM);
        q = (BrokerRequest) PIVOT("/");
        q.table = &table;
        q.mount = broker_table_find(&table, 100);
        broker_decide(&rules, &q, &d);
        ASSERT_TRUE(d.action == BROKER_ACTION_REFUSE && d.error == -EPERM);
        mount_table_done(&table);
        mount_table_done(&initial);
}

TEST(mknod_emulation_and_flags) {
        BrokerDecision d;
        broker_decide(NULL, &(BrokerRequest) MKNOD(S_IFCHR | 0620, DEV(1, 5)), &d);
        ASSERT_STREQ(d.device, "/dev/zero");
        ASSERT_EQ(d.mode, S_IFCHR | 0620);
        broker_decide(NULL, &(BrokerRequest) ARGS_MOUNT("none", "/mnt", "tmpfs", MS_MGC_VAL | MS_RDONLY | MS_NOSUID), &d);
        ASSERT_EQ(d.flags, MS_RDONLY | MS_NOSUID);
        broker_decide(NULL, &(BrokerRequest) { .check = BROKER_CHECK_ARGUMENTS, .syscall = BROKER_SYSCALL_UMOUNT2,
                                               .target = "/mnt", .args = { 1, ((uint64_t) -1 & ~0xffffffffULL) | MNT_DETACH } },
                      &d);
        ASSERT_EQ(d.action, BROKER_ACTION_PERFORM);
        ASSERT_EQ(d.flags, MNT_DETACH);
}

TEST(flags_and_options) {
        ASSERT_EQ(broker_mount_op(MS_REMOUNT | MS_BIND | MS_MOVE), BROKER_MOUNT_REMOUNT_BIND);
        ASSERT_EQ(broker_mount_op(MS_BIND | MS_SHARED), BROKER_MOUNT_BIND);
        ASSERT_EQ(broker_mount_op(MS_SLAVE | MS_MOVE), BROKER_MOUNT_PROPAGATION);
        ASSERT_EQ(broker_mount_op(MS_MOVE), BROKER_MOUNT_MOVE);
        ASSERT_EQ(broker_mount_op(MS_RDONLY), BROKER_MOUNT_NEW);
        ASSERT_EQ(broker_mount_attrs(MS_RDONLY | MS_NOEXEC | MS_NOATIME | MS_STRICTATIME),
                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOATIME);
        ASSERT_EQ(broker_mount_attrs(MS_STRICTATIME), MOUNT_ATTR_STRICTATIME);
        unsigned long mask;
        ASSERT_EQ(broker_sb_flags("rw,sync,rol,lazytime", &mask), MS_SYNCHRONOUS | MS_LAZYTIME);
        ASSERT_EQ(mask, MS_RDONLY | MS_SYNCHRONOUS | MS_DIRSYNC | MS_LAZYTIME);
        ASSERT_EQ(broker_sb_flags("ro", NULL), MS_RDONLY);
        ASSERT_STREQ(broker_syscall_name(BROKER_SYSCALL_UMOUNT2), "umount2");
        ASSERT_TRUE(!broker_needs_mount_table(BROKER_SYSCALL_MOUNT, 0, "tmpfs"));
        ASSERT_TRUE(!broker_needs_mount_table(BROKER_SYSCALL_MOUNT, MS_PRIVATE | MS_REC, NULL));
        ASSERT_TRUE(broker_needs_mount_table(BROKER_SYSCALL_MOUNT, 0, "overlay"));
        ASSERT_TRUE(broker_needs_mount_table(BROKER_SYSCALL_MOUNT, MS_BIND, NULL));
        ASSERT_TRUE(broker_needs_mount_table(BROKER_SYSCALL_MOUNT, MS_REMOUNT, NULL));
        ASSERT_TRUE(broker_needs_mount_table(BROKER_SYSCALL_UMOUNT2, 0, NULL));
        ASSERT_TRUE(!broker_needs_mount_table(BROKER_SYSCALL_MKNOD, 0, NULL));
        ASSERT_STREQ(broker_syscall_name((BrokerSyscall) 99), "unknown");
}
