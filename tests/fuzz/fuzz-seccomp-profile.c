/* SPDX-License-Identifier: Apache-2.0 */
/* Input: an engine's seccomp profile (docker run --security-opt seccomp=FILE puts a user's
 * file there), narrowed by seccomp_profile_narrow(). Whatever it says (but a key twice in
 * one object, which spec_rewrite() refuses first), the result denies by default, names the
 * native ABI alone, and never permits a refused call (the agent may be asked, and refuses
 * it, but not for io_uring) or an unconditional socket(). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "enforcer/seccomp-profile.h"
#include "enforcer/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool permits(const char *action) {
        return streq(action, "SCMP_ACT_ALLOW") || streq(action, "SCMP_ACT_LOG") || streq(action, "SCMP_ACT_TRACE") ||
               streq(action, "SCMP_ACT_NOTIFY");
}

static bool in(const char *name, const char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(name, names[i]))
                        return true;
        return false;
}

/* Refused by the agent (which is asked) or here. */
static bool refused(const char *name, const char *action) {
        static const char *const reported[] = { "keyctl", "bpf", "open_by_handle_at", "fsopen", "move_mount",
                                                "open_tree", "mount_setattr" };
        static const char *const here[] = { "io_uring_setup", "io_uring_enter", "io_uring_register" };
        if (in(name, here, ELEMENTSOF(here)))
                return !permits(action);
        return !in(name, reported, ELEMENTSOF(reported)) || !permits(action) || streq(action, "SCMP_ACT_NOTIFY");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_json_ cJSON *linux_obj = cJSON_CreateObject();
        if (!linux_obj)
                return 0;
        cJSON *profile = cJSON_ParseWithLength((const char *) data, size);
        const char *key;
        if (profile)
                cJSON_AddItemToObject(linux_obj, "seccomp", profile);
        /* spec_rewrite() refuses these before it narrows the profile. */
        if (spec_ambiguous_key(linux_obj, &key) != 0)
                return 0;
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
                        assert(refused(name->valuestring, action));
                        assert(!permits(action) || conditional || !streq(name->valuestring, "socket"));
                }
        }
        return 0;
}
