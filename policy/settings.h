/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Docker's admin-settings.json (configurationFileVersion 2) and the effective settings
 * derived from it: a locked admin value wins, an unlocked admin value is a default that
 * the user's own choice overrides, otherwise the built-in default applies.
 *
 * Settings are named by dotted paths: "enhancedContainerIsolation", "proxy.http",
 * "linuxVM.dockerDaemonOptions", "enhancedContainerIsolation.dockerSocketMount.imageList.images". */

#include <stdbool.h>
#include <stddef.h>

#include "json.h"

typedef struct AdminSettings AdminSettings;
typedef struct EffectiveSettings EffectiveSettings;

typedef enum SettingSource {
        SETTING_SOURCE_BUILTIN,
        SETTING_SOURCE_USER,
        SETTING_SOURCE_ADMIN_DEFAULT,
        SETTING_SOURCE_ADMIN_LOCKED,
} SettingSource;

/* "builtin", "user", "admin-default", "admin-locked" */
const char *setting_source_to_string(SettingSource source);

/* Type-checks an admin-settings.json object (the object is copied). A type error returns
 * -EINVAL with a one-line reason naming the key path in *reterr, for example
 * "enhancedContainerIsolation.value: expected boolean". Unknown keys are kept and listed
 * as warnings, never fatal. */
int admin_settings_parse(const cJSON *object, AdminSettings **ret, char **reterr);
int admin_settings_parse_text(const char *text, size_t size, AdminSettings **ret, char **reterr);
AdminSettings *admin_settings_free(AdminSettings *settings);
DEFINE_POINTER_CLEANUP(AdminSettings, admin_settings_free);

/* Warnings such as "unknown key 'foo.bar'", in document order. */
size_t admin_settings_warnings(const AdminSettings *settings, const char *const **ret);

/* The user's own choices: a flat JSON object {"<setting name>": value}, type-checked like
 * the admin file ("proxy.http: expected string"); unknown names are an error. */
int user_settings_parse_text(const char *text, size_t size, cJSON **ret, char **reterr);

/* admin and user may be NULL. */
int effective_settings_compute(const AdminSettings *admin, const cJSON *user, EffectiveSettings **ret);
EffectiveSettings *effective_settings_free(EffectiveSettings *settings);
DEFINE_POINTER_CLEANUP(EffectiveSettings, effective_settings_free);

/* -ENOENT for a name that is not a known setting. */
int effective_settings_get(const EffectiveSettings *settings, const char *name,
                           const cJSON **ret_value, SettingSource *ret_source);

/* {"<name>": {"value": ..., "source": "admin-locked"}, ...} in schema order. */
cJSON *effective_settings_to_json(const EffectiveSettings *settings);
