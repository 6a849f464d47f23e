/* SPDX-License-Identifier: Apache-2.0 */
/* Input: a config.json as an engine (or whoever calls the runtime) hands it over,
 * rewritten by spec_rewrite() under a policy with root filesystems in /tmp and no host
 * share, hook or engine path. Whatever it says, a rewrite that succeeds has the
 * container's own user namespace mapping, no hooks and no bind mount, and every error is
 * one line for the user. Before that, spec_mask_cpus() reads its cpuset list. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "enforcer/spec.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_json_ cJSON *spec = cJSON_ParseWithLength((const char *) data, size);
        if (!spec)
                return 0;
        int m = spec_mask_cpus(spec, 64);
        assert(m == 0 || m == -ENOMEM);
        static const char *const restricted[] = { "/etc", "/var/lib/docker" };
        static const char *const storage[] = { "/tmp" };
        const SpecPolicy policy = {
                .container_id = "fuzz",
                .base = 100000,
                .count = 65536,
                .bundle = "/nonexistent/bundle",
                .restricted = restricted,
                .n_restricted = ELEMENTSOF(restricted),
                .storage = storage,
                .n_storage = ELEMENTSOF(storage),
                .engine_root = "/nonexistent/engine",
                .proc_root = "/proc",
                .listener_path = "/run/stockade/seccomp.sock",
        };
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        _cleanup_free_ char *why = NULL;
        int r = spec_rewrite(spec, &policy, &binds, &why);
        if (r < 0) {
                assert(r == -ENOMEM || (why && STARTSWITH(why, "stockade: ") && !strchr(why, '\n')));
                return 0;
        }
        assert(binds.root_fd >= 0 && binds.n == 0);
        const cJSON *linux_obj = cJSON_GetObjectItemCaseSensitive(spec, "linux"), *hook_kind;
        const cJSON *map = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(linux_obj, "uidMappings"), 0);
        assert(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(linux_obj, "uidMappings")) == 1);
        assert(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(map, "containerID")) == 0);
        assert(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(map, "hostID")) == 100000);
        assert(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(map, "size")) == 65536);
        cJSON_ArrayForEach(hook_kind, cJSON_GetObjectItemCaseSensitive(spec, "hooks"))
                assert(cJSON_GetArraySize(hook_kind) == 0);
        return 0;
}
