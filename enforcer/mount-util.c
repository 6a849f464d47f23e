/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
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
