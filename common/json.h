/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Ownership helpers for cJSON, shared by policy/ and proto/. Header only. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "macros.h"

DEFINE_POINTER_CLEANUP(cJSON, cJSON_Delete);
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

/* The string member 'name' of object, or NULL when absent or not a string. */
static inline const char *json_get_string(const cJSON *object, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(object, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A number holding an integer within [min, max]. */
static inline bool json_is_int(const cJSON *v, int64_t min, int64_t max) {
        return cJSON_IsNumber(v) && v->valuedouble >= (double) min && v->valuedouble <= (double) max &&
               v->valuedouble == (double) (int64_t) v->valuedouble;
}
