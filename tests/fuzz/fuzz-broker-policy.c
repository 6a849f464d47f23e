/* SPDX-License-Identifier: Apache-2.0 */
/* Input: a request to the broker's decisions as a container shapes it: a header (which
 * check, which call, its six arguments, mount flags, file system magic (of the layer, or of
 * the source of a bind, which is /dev/null where the check byte's top bit is set), which
 * mounts the paths resolved to), then NUL-separated strings (source, target, fstype, path,
 * source_path, up to 8 masked paths, an empty string) and the caller's mountinfo text, which
 * serves as the initial table too. Every decision must be one of the three, with an errno
 * for a refusal and a terminated reason. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "enforcer/broker-policy.h"
#include "macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Header {
        uint8_t check, syscall;
        uint64_t args[6];
        uint64_t flags, fs_magic;
        int32_t mount_id, source_mount_id;
} __attribute__((packed)) Header;

/* The next NUL-terminated string of text (NULL when text ran out). */
static const char *next(char **p, const char *end) {
        if (*p >= end)
                return NULL;
        const char *s = *p;
        *p += strlen(s) + 1;
        return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Header h;
        if (size < sizeof(h))
                return 0;
        memcpy(&h, data, sizeof(h));
        size -= sizeof(h);
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data + sizeof(h), size);
        text[size] = '\0';
        char *p = text, *end = text + size;

        BrokerRequest q = {
                .check = (BrokerCheck) (h.check % (BROKER_CHECK_PIVOT + 2)), /* and one that is none */
                .syscall = (BrokerSyscall) (h.syscall % (_BROKER_SYSCALL_MAX + 1)),
                .flags = (unsigned long) h.flags,
                .fs_magic = (unsigned long) h.fs_magic,
                .source_fs_magic = (unsigned long) h.fs_magic,
                .source_null = h.check & 0x80,
        };
        memcpy(q.args, h.args, sizeof(q.args));
        q.source = next(&p, end);
        q.target = next(&p, end);
        q.fstype = next(&p, end);
        q.path = next(&p, end) ?: "/";
        q.source_path = next(&p, end) ?: "/";
        const char *masked[8];
        size_t n_masked = 0;
        for (const char *m; n_masked < ELEMENTSOF(masked) && (m = next(&p, end)) && *m;)
                masked[n_masked++] = m;

        MountTable table = {};
        char *mountinfo = strdup(p < end ? p : "");
        if (mountinfo && mount_table_parse(mountinfo, &table) >= 0) {
                q.table = &table;
                q.mount = broker_table_find(&table, h.mount_id);
                q.source_mount = broker_table_find(&table, h.source_mount_id);
        }
        BrokerRules rules = { masked, n_masked, &table };
        BrokerDecision d;
        broker_decide(&rules, &q, &d);
        assert(d.action == BROKER_ACTION_CONTINUE || d.action == BROKER_ACTION_REFUSE || d.action == BROKER_ACTION_PERFORM);
        assert(d.action != BROKER_ACTION_REFUSE || (d.error < 0 && d.error >= -4095 && d.reason[0]));
        assert(memchr(d.reason, '\0', sizeof(d.reason)));
        mount_table_done(&table);
        free(text);
        return 0;
}
