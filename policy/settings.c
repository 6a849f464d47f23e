/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>

#include "settings.h"
#include "util.h"

#define SETTINGS_SIZE_MAX (1024 * 1024)

typedef enum SettingType {
        SETTING_BOOLEAN,
        SETTING_STRING,
        SETTING_INTEGER,
        SETTING_ENUM,
        SETTING_STRING_ARRAY,
        SETTING_JSON_OBJECT_STRING, /* a string whose content is a JSON object */
        SETTING_DIRECTORY_LIST,     /* [{"path": string, "sharedByDefault": bool}] */
        SETTING_DIRECTORY_ENTRY,    /* one element of a directory list */
} SettingType;

/* One leaf of the schema. Paths are dotted; no key of the schema contains a dot, so a JSON
 * key that does is never mistaken for a path. */
typedef struct SettingDefinition {
        const char *name;
        const char *value_path;
        const char *lock_path;      /* the object holding "locked"; NULL: locked whenever set */
        SettingType type;
        const char *const *choices; /* SETTING_ENUM, NULL-terminated */
        const char *default_json;
} SettingDefinition;

static const char *const proxy_modes[] = { "system", "manual", NULL };
static const char *const command_list_types[] = { "allow", "deny", NULL };

/* {"locked": bool, "value": X} */
#define SIMPLE(n, t, d, ...) { .name = n, .value_path = n ".value", .lock_path = n, .type = t, .default_json = d, __VA_ARGS__ }
/* {"locked": bool, "<field>": X, ...} */
#define GROUP(g, f, t, d, ...) { .name = g "." f, .value_path = g "." f, .lock_path = g, .type = t, .default_json = d, __VA_ARGS__ }

#define ECI "enhancedContainerIsolation"
#define ECI_MOUNT "dockerSocketMount."

static const SettingDefinition settings_schema[] = {
        SIMPLE(ECI, SETTING_BOOLEAN, "true"),
        GROUP(ECI, ECI_MOUNT "imageList.images", SETTING_STRING_ARRAY, "[]"),
        GROUP(ECI, ECI_MOUNT "imageList.allowDerivedImages", SETTING_BOOLEAN, "false"),
        GROUP(ECI, ECI_MOUNT "commandList.type", SETTING_ENUM, "\"deny\"", .choices = command_list_types),
        GROUP(ECI, ECI_MOUNT "commandList.commands", SETTING_STRING_ARRAY, "[]"),
        SIMPLE("exposeDockerAPIOnTCP2375", SETTING_BOOLEAN, "false"),
        SIMPLE("disableUpdate", SETTING_BOOLEAN, "false"),
        SIMPLE("analyticsEnabled", SETTING_BOOLEAN, "true"),
        SIMPLE("extensionsEnabled", SETTING_BOOLEAN, "true"),
        SIMPLE("allowExperimentalFeatures", SETTING_BOOLEAN, "true"),
        SIMPLE("allowBetaFeatures", SETTING_BOOLEAN, "false"),
        SIMPLE("blockDockerLoad", SETTING_BOOLEAN, "false"),
        SIMPLE("displayedOnboarding", SETTING_BOOLEAN, "false"),
        SIMPLE("desktopTerminalEnabled", SETTING_BOOLEAN, "true"),
        SIMPLE("useGrpcfuse", SETTING_BOOLEAN, "true"),
        SIMPLE("useVirtualizationFrameworkVirtioFS", SETTING_BOOLEAN, "true"),
        SIMPLE("useVirtualizationFrameworkRosetta", SETTING_BOOLEAN, "false"),
        SIMPLE("disableHardwareAcceleration", SETTING_BOOLEAN, "false"),
        GROUP("proxy", "mode", SETTING_ENUM, "\"system\"", .choices = proxy_modes),
        GROUP("proxy", "http", SETTING_STRING, "\"\""),
        GROUP("proxy", "https", SETTING_STRING, "\"\""),
        GROUP("proxy", "exclude", SETTING_STRING_ARRAY, "[]"),
        GROUP("proxy", "windowsDockerdPort", SETTING_INTEGER, "65000"),
        GROUP("proxy", "enableKerberosNtlm", SETTING_BOOLEAN, "false"),
        GROUP("containersProxy", "mode", SETTING_ENUM, "\"system\"", .choices = proxy_modes),
        GROUP("containersProxy", "http", SETTING_STRING, "\"\""),
        GROUP("containersProxy", "https", SETTING_STRING, "\"\""),
        GROUP("containersProxy", "exclude", SETTING_STRING_ARRAY, "[]"),
        GROUP("containersProxy", "pac", SETTING_STRING, "\"\""),
        GROUP("containersProxy", "transparentPorts", SETTING_STRING, "\"\""),
        GROUP("kubernetes", "enabled", SETTING_BOOLEAN, "false"),
        GROUP("kubernetes", "showSystemContainers", SETTING_BOOLEAN, "false"),
        GROUP("kubernetes", "imagesRepository", SETTING_STRING, "\"\""),
        GROUP("scout", "sbomIndexing", SETTING_BOOLEAN, "true"),
        GROUP("scout", "useBackgroundIndexing", SETTING_BOOLEAN, "true"),
        SIMPLE("linuxVM.wslEngineEnabled", SETTING_BOOLEAN, "false"),
        SIMPLE("linuxVM.dockerDaemonOptions", SETTING_JSON_OBJECT_STRING, "\"{}\""),
        SIMPLE("linuxVM.vpnkitCIDR", SETTING_STRING, "\"192.168.65.0/24\""),
        SIMPLE("windowsContainers.dockerDaemonOptions", SETTING_JSON_OBJECT_STRING, "\"{}\""),
        { .name = "filesharingAllowedDirectories", .value_path = "filesharingAllowedDirectories",
          .type = SETTING_DIRECTORY_LIST, .default_json = "[]" },
};

typedef struct DirectoryField {
        const char *key;
        SettingType type;
        bool required;
} DirectoryField;

static const DirectoryField directory_fields[] = {
        { "path", SETTING_STRING, true },
        { "sharedByDefault", SETTING_BOOLEAN, false },
};

struct AdminSettings {
        cJSON *json;
        char **warnings;
        size_t n_warnings;
};

typedef struct EffectiveSetting {
        cJSON *value;
        SettingSource source;
} EffectiveSetting;

struct EffectiveSettings {
        EffectiveSetting settings[ELEMENTSOF(settings_schema)];
};

static const char *const setting_source_table[] = {
        [SETTING_SOURCE_BUILTIN] = "builtin",
        [SETTING_SOURCE_USER] = "user",
        [SETTING_SOURCE_ADMIN_DEFAULT] = "admin-default",
        [SETTING_SOURCE_ADMIN_LOCKED] = "admin-locked",
};

const char *setting_source_to_string(SettingSource source) {
        if ((size_t) source >= ELEMENTSOF(setting_source_table))
                return NULL;
        return setting_source_table[source];
}

static const SettingDefinition *setting_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(settings_schema); i++)
                if (streq(settings_schema[i].name, name))
                        return settings_schema + i;
        return NULL;
}

/* Warnings are only collected for the admin file; settings may be NULL. Control characters
 * in the key are replaced so that a warning stays on one line. */
static int warn_unknown_key(AdminSettings *settings, const char *path) {
        if (!settings)
                return 0;

        char **w = reallocarray(settings->warnings, settings->n_warnings + 1, sizeof(char *));
        if (!w)
                return -ENOMEM;
        settings->warnings = w;

        char *message;
        if (asprintf(&message, "unknown key '%s'", path) < 0)
                return -ENOMEM;
        for (char *p = message; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        settings->warnings[settings->n_warnings++] = message;
        return 0;
}

/* Two copies of a known key would let two readers disagree on its value. The first copy is
 * the one that lookups find, so any later copy is the duplicate. */
static int check_not_duplicate(const cJSON *object, const cJSON *item, const char *path, char **reterr) {
        if (cJSON_GetObjectItemCaseSensitive(object, item->string) != item)
                return error_set(reterr, -EINVAL, "%s: duplicate key", path);
        return 0;
}

static char *path_join(const char *prefix, const char *key) {
        char *path;
        if (asprintf(&path, "%s%s%s", prefix ?: "", prefix ? "." : "", key) < 0)
                return NULL;
        return path;
}

static char *path_index(const char *prefix, size_t index) {
        char *path;
        if (asprintf(&path, "%s[%zu]", prefix, index) < 0)
                return NULL;
        return path;
}

static int error_expected_choice(char **reterr, const char *path, const char *const *choices) {
        char list[256] = "";
        for (const char *const *c = choices; *c; c++) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof(list) - n, "%s%s", n > 0 ? ", " : "", *c);
        }
        return error_set(reterr, -EINVAL, "%s: expected one of %s", path, list);
}

static bool choice_valid(const char *const *choices, const char *s) {
        for (const char *const *c = choices; *c; c++)
                if (streq(*c, s))
                        return true;
        return false;
}

static bool is_json_object_string(const cJSON *v) {
        if (!cJSON_IsString(v))
                return false;
        _cleanup_json_ cJSON *parsed = cJSON_ParseWithOpts(v->valuestring, NULL, true);
        return cJSON_IsObject(parsed);
}

static int check_value(AdminSettings *settings, SettingType type, const char *const *choices, const cJSON *v,
                       const char *path, char **reterr);

static int check_array(AdminSettings *settings, SettingType element_type, const cJSON *v, const char *path, char **reterr) {
        if (!cJSON_IsArray(v))
                return error_set(reterr, -EINVAL, "%s: expected array", path);

        size_t i = 0;
        const cJSON *element;
        cJSON_ArrayForEach(element, v) {
                _cleanup_free_ char *element_path = path_index(path, i++);
                if (!element_path)
                        return -ENOMEM;
                int r = check_value(settings, element_type, NULL, element, element_path, reterr);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const DirectoryField *directory_field_find(const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(directory_fields); i++)
                if (streq(directory_fields[i].key, key))
                        return directory_fields + i;
        return NULL;
}

static int check_directory_entry(AdminSettings *settings, const cJSON *v, const char *path, char **reterr) {
        if (!cJSON_IsObject(v))
                return error_set(reterr, -EINVAL, "%s: expected object", path);

        const cJSON *item;
        cJSON_ArrayForEach(item, v) {
                _cleanup_free_ char *item_path = path_join(path, item->string);
                if (!item_path)
                        return -ENOMEM;

                const DirectoryField *field = directory_field_find(item->string);
                int r;
                if (!field)
                        r = warn_unknown_key(settings, item_path);
                else {
                        r = check_not_duplicate(v, item, item_path, reterr);
                        if (r >= 0)
                                r = check_value(settings, field->type, NULL, item, item_path, reterr);
                }
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < ELEMENTSOF(directory_fields); i++)
                if (directory_fields[i].required && !cJSON_GetObjectItemCaseSensitive(v, directory_fields[i].key))
                        return error_set(reterr, -EINVAL, "%s.%s: missing", path, directory_fields[i].key);
        return 0;
}

static int check_value(AdminSettings *settings, SettingType type, const char *const *choices, const cJSON *v,
                       const char *path, char **reterr) {
        switch (type) {
        case SETTING_BOOLEAN:
                if (!cJSON_IsBool(v))
                        return error_set(reterr, -EINVAL, "%s: expected boolean", path);
                return 0;
        case SETTING_STRING:
                if (!cJSON_IsString(v))
                        return error_set(reterr, -EINVAL, "%s: expected string", path);
                return 0;
        case SETTING_INTEGER:
                if (!json_is_int(v, INT32_MIN, INT32_MAX))
                        return error_set(reterr, -EINVAL, "%s: expected integer", path);
                return 0;
        case SETTING_ENUM:
                if (!cJSON_IsString(v) || !choice_valid(choices, v->valuestring))
                        return error_expected_choice(reterr, path, choices);
                return 0;
        case SETTING_JSON_OBJECT_STRING:
                if (!is_json_object_string(v))
                        return error_set(reterr, -EINVAL, "%s: expected a string holding a JSON object", path);
                return 0;
        case SETTING_STRING_ARRAY:
                return check_array(settings, SETTING_STRING, v, path, reterr);
        case SETTING_DIRECTORY_LIST:
                return check_array(settings, SETTING_DIRECTORY_ENTRY, v, path, reterr);
        case SETTING_DIRECTORY_ENTRY:
                return check_directory_entry(settings, v, path, reterr);
        }
        abort();
}

static int check_setting(AdminSettings *settings, const SettingDefinition *def, const cJSON *v, const char *path,
                         char **reterr) {
        return check_value(settings, def->type, def->choices, v, path, reterr);
}

typedef enum KeyKind {
        KEY_UNKNOWN,
        KEY_LOCK,   /* the "locked" of a lock object */
        KEY_VALUE,  /* the value of a leaf */
        KEY_OBJECT, /* an object on the way to a leaf's value */
        KEY_FILE_VERSION,
} KeyKind;

static KeyKind key_classify(const char *parent, const char *key, const char *path, const SettingDefinition **ret_def) {
        if (strchr(key, '.'))
                return KEY_UNKNOWN;
        if (!parent && streq(key, "configurationFileVersion"))
                return KEY_FILE_VERSION;

        size_t n = strlen(path);
        KeyKind kind = KEY_UNKNOWN;
        for (size_t i = 0; i < ELEMENTSOF(settings_schema); i++) {
                const SettingDefinition *def = settings_schema + i;
                if (streq(def->value_path, path)) {
                        *ret_def = def;
                        return KEY_VALUE;
                }
                if (parent && def->lock_path && streq(key, "locked") && streq(def->lock_path, parent))
                        return KEY_LOCK;
                if (strncmp(def->value_path, path, n) == 0 && def->value_path[n] == '.')
                        kind = KEY_OBJECT;
        }
        return kind;
}

/* Type-checks every known key below object (at dotted path parent, NULL for the top level)
 * and warns about the others. */
static int walk_object(AdminSettings *settings, const cJSON *object, const char *parent, char **reterr) {
        const cJSON *item;
        cJSON_ArrayForEach(item, object) {
                _cleanup_free_ char *path = path_join(parent, item->string);
                if (!path)
                        return -ENOMEM;

                const SettingDefinition *def = NULL;
                KeyKind kind = key_classify(parent, item->string, path, &def);
                if (kind == KEY_UNKNOWN) {
                        int r = warn_unknown_key(settings, path);
                        if (r < 0)
                                return r;
                        continue;
                }

                int r = check_not_duplicate(object, item, path, reterr);
                if (r < 0)
                        return r;

                if (kind == KEY_FILE_VERSION)
                        continue; /* checked first, by check_file_version() */
                if (kind == KEY_LOCK)
                        r = check_value(settings, SETTING_BOOLEAN, NULL, item, path, reterr);
                else if (kind == KEY_VALUE)
                        r = check_setting(settings, def, item, path, reterr);
                else if (cJSON_IsObject(item))
                        r = walk_object(settings, item, path, reterr);
                else
                        r = error_set(reterr, -EINVAL, "%s: expected object", path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_file_version(const cJSON *object, char **reterr) {
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(object, "configurationFileVersion");
        if (!version)
                return error_set(reterr, -EINVAL, "configurationFileVersion: missing");
        if (!cJSON_IsNumber(version))
                return error_set(reterr, -EINVAL, "configurationFileVersion: expected number");
        if (version->valuedouble != 2)
                return error_set(reterr, -EINVAL, "configurationFileVersion: expected 2, got %.17g", version->valuedouble);
        return 0;
}

AdminSettings *admin_settings_free(AdminSettings *settings) {
        if (!settings)
                return NULL;
        cJSON_Delete(settings->json);
        for (size_t i = 0; i < settings->n_warnings; i++)
                free(settings->warnings[i]);
        free(settings->warnings);
        free(settings);
        return NULL;
}

int admin_settings_parse(const cJSON *object, AdminSettings **ret, char **reterr) {
        if (!cJSON_IsObject(object))
                return error_set(reterr, -EINVAL, "expected object");

        int r = check_file_version(object, reterr);
        if (r < 0)
                return r;

        _cleanup_(admin_settings_freep) AdminSettings *settings = calloc(1, sizeof(AdminSettings));
        if (!settings)
                return -ENOMEM;

        r = walk_object(settings, object, NULL, reterr);
        if (r < 0)
                return r;

        settings->json = cJSON_Duplicate(object, true);
        if (!settings->json)
                return -ENOMEM;

        *ret = TAKE_PTR(settings);
        return 0;
}

/* The whole buffer must be one JSON value, optionally surrounded by whitespace. */
static int json_parse_text(const char *text, size_t size, cJSON **ret, char **reterr) {
        if (size > SETTINGS_SIZE_MAX)
                return error_set(reterr, -EFBIG, "settings too large");

        const char *end = NULL;
        _cleanup_json_ cJSON *json = cJSON_ParseWithLengthOpts(text, size, &end, false);
        if (!json)
                return error_set(reterr, -EINVAL, "invalid JSON");
        for (const char *p = end; p < text + size; p++)
                if (*p == '\0' || !strchr(" \t\r\n", *p))
                        return error_set(reterr, -EINVAL, "invalid JSON: trailing data at offset %zu", (size_t) (p - text));

        *ret = TAKE_PTR(json);
        return 0;
}

int admin_settings_parse_text(const char *text, size_t size, AdminSettings **ret, char **reterr) {
        _cleanup_json_ cJSON *json = NULL;
        int r = json_parse_text(text, size, &json, reterr);
        if (r < 0)
                return r;
        return admin_settings_parse(json, ret, reterr);
}

size_t admin_settings_warnings(const AdminSettings *settings, const char *const **ret) {
        if (ret)
                *ret = (const char *const *) settings->warnings;
        return settings->n_warnings;
}

int user_settings_parse_text(const char *text, size_t size, cJSON **ret, char **reterr) {
        _cleanup_json_ cJSON *json = NULL;
        int r = json_parse_text(text, size, &json, reterr);
        if (r < 0)
                return r;
        if (!cJSON_IsObject(json))
                return error_set(reterr, -EINVAL, "expected object");

        const cJSON *item;
        cJSON_ArrayForEach(item, json) {
                const SettingDefinition *def = setting_find(item->string);
                if (!def)
                        return error_set(reterr, -EINVAL, "unknown setting '%s'", item->string);
                r = check_not_duplicate(json, item, item->string, reterr);
                if (r < 0)
                        return r;
                r = check_setting(NULL, def, item, item->string, reterr);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(json);
        return 0;
}

/* The member at a dotted path, or NULL. */
static const cJSON *json_lookup(const cJSON *json, const char *path) {
        for (;;) {
                if (!cJSON_IsObject(json))
                        return NULL;

                size_t n = strcspn(path, ".");
                const cJSON *child;
                cJSON_ArrayForEach(child, json)
                        if (child->string && strncmp(child->string, path, n) == 0 && child->string[n] == '\0')
                                break;
                if (!child || path[n] == '\0')
                        return child;
                json = child;
                path += n + 1;
        }
}

static bool setting_locked(const cJSON *admin, const SettingDefinition *def, const cJSON *admin_value) {
        if (!def->lock_path)
                return admin_value != NULL;
        const cJSON *lock = json_lookup(admin, def->lock_path);
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lock, "locked"));
}

EffectiveSettings *effective_settings_free(EffectiveSettings *settings) {
        if (!settings)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(settings->settings); i++)
                cJSON_Delete(settings->settings[i].value);
        free(settings);
        return NULL;
}

int effective_settings_compute(const AdminSettings *admin, const cJSON *user, EffectiveSettings **ret) {
        if (user && !cJSON_IsObject(user))
                return -EINVAL;

        _cleanup_(effective_settings_freep) EffectiveSettings *settings = calloc(1, sizeof(EffectiveSettings));
        if (!settings)
                return -ENOMEM;

        const cJSON *admin_json = admin ? admin->json : NULL;
        for (size_t i = 0; i < ELEMENTSOF(settings_schema); i++) {
                const SettingDefinition *def = settings_schema + i;
                const cJSON *admin_value = json_lookup(admin_json, def->value_path);
                const cJSON *user_value = cJSON_GetObjectItemCaseSensitive(user, def->name);
                /* user is not necessarily from user_settings_parse_text() */
                if (user_value && check_setting(NULL, def, user_value, def->name, NULL) < 0)
                        return -EINVAL;

                const cJSON *value;
                SettingSource source;
                if (admin_json && setting_locked(admin_json, def, admin_value)) {
                        value = admin_value;
                        source = SETTING_SOURCE_ADMIN_LOCKED;
                } else if (user_value) {
                        value = user_value;
                        source = SETTING_SOURCE_USER;
                } else if (admin_value) {
                        value = admin_value;
                        source = SETTING_SOURCE_ADMIN_DEFAULT;
                } else {
                        value = NULL;
                        source = SETTING_SOURCE_BUILTIN;
                }

                /* A locked group may leave a field out: it is locked to the built-in default. */
                settings->settings[i] = (EffectiveSetting) {
                        .value = value ? cJSON_Duplicate(value, true) : cJSON_Parse(def->default_json),
                        .source = source,
                };
                if (!settings->settings[i].value)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(settings);
        return 0;
}

int effective_settings_get(const EffectiveSettings *settings, const char *name,
                           const cJSON **ret_value, SettingSource *ret_source) {
        const SettingDefinition *def = setting_find(name);
        if (!def)
                return -ENOENT;

        const EffectiveSetting *s = settings->settings + (def - settings_schema);
        if (ret_value)
                *ret_value = s->value;
        if (ret_source)
                *ret_source = s->source;
        return 0;
}

cJSON *effective_settings_to_json(const EffectiveSettings *settings) {
        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        if (!json)
                return NULL;

        for (size_t i = 0; i < ELEMENTSOF(settings_schema); i++) {
                cJSON *entry = cJSON_AddObjectToObject(json, settings_schema[i].name);
                if (!entry)
                        return NULL;
                cJSON *value = cJSON_Duplicate(settings->settings[i].value, true);
                if (!value)
                        return NULL;
                if (!cJSON_AddItemToObject(entry, "value", value)) {
                        cJSON_Delete(value);
                        return NULL;
                }
                if (!cJSON_AddStringToObject(entry, "source", setting_source_to_string(settings->settings[i].source)))
                        return NULL;
        }
        return TAKE_PTR(json);
}
