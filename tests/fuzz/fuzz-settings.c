/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>

#include "policy/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes as admin-settings.json and, since it is untrusted input too, as the user's
 * settings; whatever parses goes through effective_settings_compute(). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(admin_settings_freep) AdminSettings *admin = NULL;
        _cleanup_json_ cJSON *user = NULL;
        _cleanup_free_ char *err = NULL;
        if (admin_settings_parse_text((const char *) data, size, &admin, &err) >= 0)
                (void) admin_settings_warnings(admin, NULL);
        else if (user_settings_parse_text((const char *) data, size, &user, &err) < 0)
                return 0;

        _cleanup_(effective_settings_freep) EffectiveSettings *effective = NULL;
        if (effective_settings_compute(admin, user, &effective) < 0)
                return 0;
        _cleanup_json_ cJSON *json = effective_settings_to_json(effective);
        return 0;
}
