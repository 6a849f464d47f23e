/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "enforcer/mount-util.h"
#include "test.h"
#include "util.h"

static int parse(const char *text, MountTable *ret) {
        return mount_table_parse(strdup(text), ret);
}

TEST(parse_fields_escapes_and_optional_fields) {
        MountTable t = {};
        ASSERT_OK(parse("36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root "
                        "rw,errors=continue\n"
                        "37 36 0:52 /sub /a\\134b\\011c\\012d ro,nosuid - tmpfs none ro,size=4k\n"
                        "38 36 0:53 / /x rw - overlay overlay\n",
                        &t));
        ASSERT_EQ(t.n, 3);
        const MountEntry *e = &t.entries[0];
        ASSERT_EQ(e->id, 36);
        ASSERT_EQ(e->parent, 35);
        ASSERT_EQ(e->major, 98);
        ASSERT_EQ(e->minor, 0);
        ASSERT_STREQ(e->root, "/mnt1");
        ASSERT_STREQ(e->point, "/mnt with space");
        ASSERT_TRUE(!e->read_only);
        ASSERT_STREQ(e->options, "rw,noatime");
        ASSERT_STREQ(e->fstype, "ext3");
        ASSERT_STREQ(e->super_options, "rw,errors=continue");
        e = &t.entries[1];
        ASSERT_STREQ(e->root, "/sub");
        ASSERT_STREQ(e->point, "/a\\b\tc\nd");
        ASSERT_TRUE(e->read_only);
        ASSERT_STREQ(e->super_options, "ro,size=4k");
        ASSERT_STREQ(t.entries[2].super_options, "");
        mount_table_done(&t);
}

TEST(read_only_is_the_mount_flag) {
        MountTable t = {};
        ASSERT_OK(parse("1 0 0:1 / / rw,relatime - tmpfs none ro\n2 1 0:2 / /r ro - tmpfs none rw\n"
                        "3 1 0:3 / /s rootcontext - tmpfs none rw\n", &t));
        ASSERT_TRUE(!t.entries[0].read_only && t.entries[1].read_only && !t.entries[2].read_only);
        mount_table_done(&t);
}

TEST(parse_refuses_broken_lines) {
        static const char *const broken[] = {
                "x 1 0:1 / / rw - tmpfs none rw\n",
                "1 0 0:1\n",
                "1 0 0:1 / / rw\n",                    /* no separator, no type */
                "1 0 0:1 / / rw -\n",                  /* no type */
                "1 0 0:1 / / rw - tmpfs\n",            /* no source */
                "1 0 0:1 / / rw - tmpfs none rw\ngarbage\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(broken); i++) {
                MountTable t = {};
                ASSERT_EQ(parse(broken[i], &t), -EBADMSG);
                ASSERT_TRUE(!t.text && !t.entries && t.n == 0);
        }
}

TEST(read_the_real_table_twice_from_one_fd) {
        int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        MountTable a = {}, b = {};
        ASSERT_OK(mount_table_read(fd, &a));
        ASSERT_OK(mount_table_read(fd, &b));
        ASSERT_TRUE(a.n > 0 && a.n == b.n);
        bool root = false;
        for (size_t i = 0; i < a.n; i++)
                root = root || streq(a.entries[i].point, "/");
        ASSERT_TRUE(root);
        mount_table_done(&a);
        mount_table_done(&b);
        close(fd);
}

/* What statmount(2) says of a mount and its parent is what mountinfo says of them. */
TEST(statmount_agrees_with_mountinfo) {
        int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC), proc = open("/proc", O_PATH | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0 && proc >= 0);
        MountTable all = {}, two = {};
        ASSERT_OK(mount_table_read(fd, &all));
        int r = mount_table_stat(proc, &two);
        if (r == -ENOSYS || r == -EOPNOTSUPP || r == -EINVAL)
                test_skip("this kernel has no statmount (Linux 6.8)");
        ASSERT_OK(r);
        ASSERT_EQ(two.n, 2);
        ASSERT_STREQ(two.entries[0].point, "/proc");
        ASSERT_STREQ(two.entries[0].fstype, "proc");
        ASSERT_EQ(two.entries[0].parent, two.entries[1].id);
        for (size_t i = 0; i < two.n; i++) {
                const MountEntry *s = &two.entries[i], *m = NULL;
                for (size_t j = 0; j < all.n && !m; j++)
                        if (all.entries[j].id == s->id)
                                m = &all.entries[j];
                ASSERT_TRUE(m != NULL);
                ASSERT_EQ(s->parent, m->parent);
                ASSERT_EQ(s->major, m->major);
                ASSERT_EQ(s->minor, m->minor);
                ASSERT_STREQ(s->root, m->root);
                ASSERT_STREQ(s->point, m->point);
                ASSERT_STREQ(s->fstype, m->fstype);
                ASSERT_EQ(s->read_only, m->read_only);
        }
        mount_table_done(&all);
        mount_table_done(&two);
        close(fd);
        close(proc);
}

TEST(namespace_inode_from_the_link_text) {
        static const char *const types[] = { "mnt", "user", "net", "pid", "cgroup" };
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                char path[64];
                struct stat st;
                uint64_t ino = 0;
                snprintf(path, sizeof(path), "/proc/self/ns/%s", types[i]);
                ASSERT_OK(stat(path, &st));
                ASSERT_OK(ns_inode(AT_FDCWD, path, &ino));
                ASSERT_EQ(ino, (uint64_t) st.st_ino);
        }
        uint64_t ino;
        ASSERT_EQ(ns_inode(AT_FDCWD, "/proc/self/exe", &ino), -EBADMSG);
        ASSERT_EQ(ns_inode(AT_FDCWD, "/proc/self/ns/none", &ino), -ENOENT);
        ASSERT_EQ(ns_inode(AT_FDCWD, "/proc/self/status", &ino), -EINVAL);
}
