/* SPDX-License-Identifier: Apache-2.0 */
/* Input: an engine's seccomp profile (docker run --security-opt seccomp=FILE puts a user's
 * file there), narrowed by seccomp_profile_narrow(). Whatever it says, the result denies
 * by default, names the native ABI alone, and never permits a refused call or an
 * unconditional socket(). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "enforcer/seccomp-profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool permits(const char *action) {
        return streq(action, "SCMP_ACT_ALLOW") || streq(action, "SCMP_ACT_LOG") || streq(action, "SCMP_ACT_TRACE") ||
               streq(action, "SCMP_ACT_NOTIFY");
}

static bool refused(const char *name) {
        static const char *const names[] = { "keyctl", "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register",
                                             "open_by_handle_at", "fsopen", "move_mount", "open_tree", "mount_setattr" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(name, names[i]))
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_json_ cJSON *linux_obj = cJSON_CreateObject();
        if (!linux_obj)
                return 0;
        cJSON *profile = cJSON_ParseWithLength((const char *) data, size);
        if (profile)
                cJSON_AddItemToObject(linux_obj, "seccomp", profile);
        int r = seccomp_profile_narrow(linux_obj, "/run/stockade/seccomp.sock", "id");
        if (r < 0) {
                assert(r == -ENOMEM);
                return 0;
        }
        const cJSON *seccomp = cJSON_GetObjectItemCaseSensitive(linux_obj, "seccomp"), *rule, *name;
        assert(!permits(json_get_string(seccomp, "defaultAction")));
        const cJSON *arches = cJSON_GetObjectItemCaseSensitive(seccomp, "architectures");
        assert(cJSON_GetArraySize(arches) == 1 && cJSON_IsString(arches->child));
        cJSON_ArrayForEach(rule, cJSON_GetObjectItemCaseSensitive(seccomp, "syscalls")) {
                const char *action = json_get_string(rule, "action");
                assert(action);
                bool conditional = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rule, "args")) > 0;
                cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(rule, "names")) {
                        assert(cJSON_IsString(name));
                        assert(!permits(action) || !refused(name->valuestring));
                        assert(!permits(action) || conditional || !streq(name->valuestring, "socket"));
                }
        }
        return 0;
}
