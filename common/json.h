/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Ownership helpers for cJSON, shared by policy/ and proto/. Header only. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "macros.h"

DEFINE_POINTER_CLEANUP(cJSON, cJSON_Delete);
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

/* A configuration file as people write it: JSON with comments ("//" to the end of the line,
 * or slash-star to star-slash) outside strings. text, NUL-terminated, is changed in place. */
static inline cJSON *json_parse_commented(char *text) {
        cJSON_Minify(text);
        return cJSON_Parse(text);
}

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
