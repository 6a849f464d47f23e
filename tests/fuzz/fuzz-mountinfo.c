/* SPDX-License-Identifier: Apache-2.0 */
/* Input: mountinfo text, which goes through mount_table_parse(). A container names its own
 * mount points, so the agent's broker reads text that a container shaped. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "enforcer/mount-util.h"
#include "macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        MountTable t = {};
        int r = mount_table_parse(text, &t);
        if (r < 0) {
                assert(r == -EBADMSG || r == -ENOMEM);
                assert(!t.text && !t.entries && t.n == 0);
                return 0;
        }
        for (size_t i = 0; i < t.n; i++) {
                const MountEntry *e = &t.entries[i];
                assert(e->root && e->point && e->fstype && e->super_options);
                assert(!strchr(e->fstype, ' ') && !strchr(e->fstype, '\n'));
        }
        mount_table_done(&t);
        return 0;
}
