/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mount-util.h"
#include "util.h"


const char *path_startswith(const char *path, const char *prefix) {
        size_t n = strlen(prefix);
        if (n > 0 && prefix[n - 1] == '/')
                n--;
        if (strncmp(path, prefix, n) != 0)
                return NULL;
        if (path[n] == '\0')
                return path + n;
        return path[n] == '/' ? path + n + 1 : NULL;
}

void mount_table_done(MountTable *t) {
        free(t->text);
        free(t->entries);
        *t = (MountTable) {};
}

/* Undoes the kernel's octal escapes (\040 for a space, \011, \012, \134) in place. */
static void unescape_octal(char *s) {
        char *o = s;
        for (const char *i = s; *i;) {
                if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' &&
                    i[3] >= '0' && i[3] <= '7') {
                        *o++ = (char) ((i[1] - '0') << 6 | (i[2] - '0') << 3 | (i[3] - '0'));
                        i += 4;
                } else
                        *o++ = *i++;
        }
        *o = '\0';
}

/* Cuts the next space-separated field off *p. */
static char *next_field(char **p) {
        char *field = *p;
        if (!field)
                return NULL;
        char *space = strchr(field, ' ');
        if (space)
                *space++ = '\0';
        *p = space;
        return field;
}

/* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue" */
static int mount_entry_parse(char *line, MountEntry *ret) {
        MountEntry m = {};
        int n = 0;
        if (sscanf(line, "%d %d %u:%u %n", &m.id, &m.parent, &m.major, &m.minor, &n) != 4 || n == 0)
                return -EBADMSG;

        char *p = line + n, *root = next_field(&p), *point = next_field(&p), *options = next_field(&p);
        if (!options)
                return -EBADMSG;
        /* Optional fields end with "-"; then come the type, the source and the super options. */
        for (char *f = next_field(&p); f && !streq(f, "-"); f = next_field(&p))
                ;
        char *fstype = next_field(&p), *source = next_field(&p), *super = next_field(&p);
        if (!fstype || !source)
                return -EBADMSG;
        m.fstype = fstype;
        m.super_options = super ? super : "";
        unescape_octal(root);
        unescape_octal(point);
        m.root = root;
        m.point = point;
        m.options = options;
        m.read_only = STARTSWITH(options, "ro") && (options[2] == ',' || options[2] == '\0');
        *ret = m;
        return 0;
}

int mount_table_parse(char *text, MountTable *ret) {
        _cleanup_free_ char *owned = text;
        size_t lines = 1;
        for (const char *c = text; (c = strchr(c, '\n')); c++)
                lines++;
        _cleanup_free_ MountEntry *entries = calloc(lines, sizeof(MountEntry));
        if (!entries)
                return -ENOMEM;

        size_t n = 0;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                int r = mount_entry_parse(line, &entries[n++]);
                if (r < 0)
                        return r;
        }

        *ret = (MountTable) { .text = TAKE_PTR(owned), .entries = TAKE_PTR(entries), .n = n };
        return 0;
}

int mount_table_read(int fd, MountTable *ret) {
        char *text = NULL;
        size_t size;
        int r = RET_NERRNO(lseek(fd, 0, SEEK_SET));
        if (r >= 0)
                r = read_full_fd(fd, MOUNTINFO_MAX, &text, &size);
        return r < 0 ? r : mount_table_parse(text, ret);
}

const char *fs_context_message(int fs_fd, char *buf, size_t size) {
        ssize_t n = read(fs_fd, buf, size - 1);
        if (n <= 2)
                return "";
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return buf + 2; /* past "e " */
}

/* statmount(2) (Linux 6.8), which the headers of older systems lack: its request, the first
 * version of its answer, and the unique mount id of statx() it takes. */
#ifndef __NR_statmount
#define __NR_statmount 457
#endif
#define STATX_MNT_ID_UNIQUE_ 0x4000u
#define STATMOUNT_WANT 0x3bu /* SB_BASIC, MNT_BASIC, MNT_ROOT, MNT_POINT, FS_TYPE */
#define STATMOUNT_FS_SUBTYPE_ 0x100u /* Linux 6.11 */
#define MOUNT_ATTR_RDONLY_ 0x1u

typedef struct MountIdRequest {
        uint32_t size, spare;
        uint64_t mnt_id, param;
} MountIdRequest;

typedef struct StatMount {
        uint32_t size, mnt_opts;
        uint64_t mask;
        uint32_t sb_dev_major, sb_dev_minor;
        uint64_t sb_magic;
        uint32_t sb_flags, fs_type;
        uint64_t mnt_id, mnt_parent_id;
        uint32_t mnt_id_old, mnt_parent_id_old;
        uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
        uint32_t mnt_root, mnt_point;
        uint64_t mnt_ns_id;
        uint32_t fs_subtype, sb_source;
        uint64_t spare[48];
        char str[];
} StatMount;

#define STATMOUNT_SIZE (sizeof(StatMount) + 3 * PATH_MAX)
/* "type.subtype", as mountinfo shows a FUSE file system's type. */
#define FSTYPE_MAX 256
_Static_assert(STATMOUNT_SIZE % 8 == 0, "answers stay aligned");

/* The mount of unique id id into sm (STATMOUNT_SIZE bytes) and its type into fstype
 * (FSTYPE_MAX bytes), as ret points into them. -EOPNOTSUPP for a FUSE file system where the
 * kernel does not tell its subtype (before Linux 6.11). */
static int statmount_entry(uint64_t id, StatMount *sm, char *fstype, MountEntry *ret) {
        MountIdRequest req = { .size = sizeof(req), .mnt_id = id, .param = STATMOUNT_WANT | STATMOUNT_FS_SUBTYPE_ };
        if (syscall(__NR_statmount, &req, sm, STATMOUNT_SIZE, 0) < 0)
                return -errno;
        if ((sm->mask & STATMOUNT_WANT) != STATMOUNT_WANT)
                return -EOPNOTSUPP;
        const char *type = sm->str + sm->fs_type, *subtype = sm->mask & STATMOUNT_FS_SUBTYPE_ ? sm->str + sm->fs_subtype : NULL;
        if (!subtype && STARTSWITH(type, "fuse"))
                return -EOPNOTSUPP;
        if (snprintf(fstype, FSTYPE_MAX, "%s%s%s", type, subtype && *subtype ? "." : "", subtype ?: "") >= FSTYPE_MAX)
                return -ENAMETOOLONG;
        *ret = (MountEntry) { .id = (int) sm->mnt_id_old, .parent = (int) sm->mnt_parent_id_old,
                              .major = sm->sb_dev_major, .minor = sm->sb_dev_minor, .root = sm->str + sm->mnt_root,
                              .point = sm->str + sm->mnt_point, .options = "",
                              .read_only = sm->mnt_attr & MOUNT_ATTR_RDONLY_, .fstype = fstype,
                              .super_options = "" };
        return 0;
}

int mount_table_stat(int fd, MountTable *ret) {
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID_UNIQUE_, &stx) < 0)
                return -errno;
        if (!(stx.stx_mask & STATX_MNT_ID_UNIQUE_))
                return -EOPNOTSUPP;
        _cleanup_free_ char *text = calloc(2, STATMOUNT_SIZE + FSTYPE_MAX);
        _cleanup_free_ MountEntry *entries = calloc(2, sizeof(MountEntry));
        if (!text || !entries)
                return -ENOMEM;
        StatMount *mount = (StatMount *) text, *parent = (StatMount *) (text + STATMOUNT_SIZE);
        char *fstypes = text + 2 * STATMOUNT_SIZE;
        int r = statmount_entry(stx.stx_mnt_id, mount, fstypes, &entries[0]);
        if (r < 0)
                return r;
        /* A parent out of the caller's reach is not in its mountinfo either. */
        size_t n = 1;
        if (mount->mnt_parent_id != mount->mnt_id && statmount_entry(mount->mnt_parent_id, parent, fstypes + FSTYPE_MAX, &entries[1]) == 0)
                n = 2;
        *ret = (MountTable) { .text = TAKE_PTR(text), .entries = TAKE_PTR(entries), .n = n };
        return 0;
}
