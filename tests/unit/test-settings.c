/* SPDX-License-Identifier: Apache-2.0 */
#include "policy/settings.h"
#include "test.h"
#include "util.h"

/* Every leaf of the schema, each set to a non-default value. */
static const char full_document[] =
        "{\n"
        "  \"configurationFileVersion\": 2,\n"
        "  \"enhancedContainerIsolation\": {\n"
        "    \"locked\": true, \"value\": true,\n"
        "    \"dockerSocketMount\": {\n"
        "      \"imageList\": {\"images\": [\"docker.io/testcontainers/ryuk:*\"], \"allowDerivedImages\": true},\n"
        "      \"commandList\": {\"type\": \"allow\", \"commands\": [\"ps\", \"container ls\"]}\n"
        "    }\n"
        "  },\n"
        "  \"exposeDockerAPIOnTCP2375\": {\"locked\": true, \"value\": false},\n"
        "  \"disableUpdate\": {\"locked\": false, \"value\": true},\n"
        "  \"analyticsEnabled\": {\"locked\": false, \"value\": false},\n"
        "  \"extensionsEnabled\": {\"locked\": true, \"value\": false},\n"
        "  \"allowExperimentalFeatures\": {\"locked\": false, \"value\": false},\n"
        "  \"allowBetaFeatures\": {\"locked\": false, \"value\": true},\n"
        "  \"blockDockerLoad\": {\"locked\": false, \"value\": true},\n"
        "  \"displayedOnboarding\": {\"locked\": true, \"value\": true},\n"
        "  \"desktopTerminalEnabled\": {\"locked\": false, \"value\": false},\n"
        "  \"useGrpcfuse\": {\"locked\": false, \"value\": false},\n"
        "  \"useVirtualizationFrameworkVirtioFS\": {\"locked\": false, \"value\": false},\n"
        "  \"useVirtualizationFrameworkRosetta\": {\"locked\": false, \"value\": true},\n"
        "  \"disableHardwareAcceleration\": {\"locked\": false, \"value\": true},\n"
        "  \"proxy\": {\"locked\": true, \"mode\": \"manual\", \"http\": \"http://proxy:3128\",\n"
        "            \"https\": \"http://proxy:3129\", \"exclude\": [\"localhost\", \"*.internal\"],\n"
        "            \"windowsDockerdPort\": 65100, \"enableKerberosNtlm\": true},\n"
        "  \"containersProxy\": {\"locked\": true, \"mode\": \"manual\", \"http\": \"\", \"https\": \"\",\n"
        "                      \"exclude\": [], \"pac\": \"http://proxy/proxy.pac\", \"transparentPorts\": \"*\"},\n"
        "  \"kubernetes\": {\"locked\": false, \"enabled\": true, \"showSystemContainers\": true,\n"
        "                 \"imagesRepository\": \"registry.example.com\"},\n"
        "  \"scout\": {\"locked\": false, \"sbomIndexing\": false, \"useBackgroundIndexing\": false},\n"
        "  \"linuxVM\": {\n"
        "    \"wslEngineEnabled\": {\"locked\": false, \"value\": true},\n"
        "    \"dockerDaemonOptions\": {\"locked\": true, \"value\": \"{\\\"debug\\\": true}\"},\n"
        "    \"vpnkitCIDR\": {\"locked\": false, \"value\": \"192.168.160.0/24\"}\n"
        "  },\n"
        "  \"windowsContainers\": {\"dockerDaemonOptions\": {\"locked\": false, \"value\": \"{}\"}},\n"
        "  \"filesharingAllowedDirectories\": [\n"
        "    {\"path\": \"$HOME\", \"sharedByDefault\": true},\n"
        "    {\"path\": \"/tmp\", \"sharedByDefault\": false}\n"
        "  ]\n"
        "}\n";

static AdminSettings *admin_parse_ok(const char *text) {
        AdminSettings *admin = NULL;
        _cleanup_free_ char *err = NULL;
        int r = admin_settings_parse_text(text, strlen(text), &admin, &err);
        if (r < 0)
                fprintf(stderr, "parse failed: %s\n", err);
        ASSERT_OK(r);
        return admin;
}

/* Parses {"configurationFileVersion": 2, <members>} and returns the error message. */
static char *admin_parse_error(const char *members) {
        _cleanup_free_ char *text = NULL;
        ASSERT_TRUE(asprintf(&text, "{\"configurationFileVersion\": 2, %s}", members) >= 0);
        AdminSettings *admin = NULL;
        char *err = NULL;
        int r = admin_settings_parse_text(text, strlen(text), &admin, &err);
        if (r >= 0)
                fprintf(stderr, "unexpectedly parsed: %s\n", text);
        ASSERT_EQ(r, -EINVAL);
        ASSERT_TRUE(!admin);
        ASSERT_TRUE(err);
        return err;
}

static EffectiveSettings *compute(const char *admin_text, const char *user_text) {
        _cleanup_(admin_settings_freep) AdminSettings *admin = admin_text ? admin_parse_ok(admin_text) : NULL;
        _cleanup_json_ cJSON *user = NULL;
        if (user_text)
                ASSERT_OK(user_settings_parse_text(user_text, strlen(user_text), &user, NULL));
        EffectiveSettings *e = NULL;
        ASSERT_OK(effective_settings_compute(admin, user, &e));
        return e;
}

static void assert_setting(const EffectiveSettings *e, const char *name, const char *value_json, SettingSource source) {
        const cJSON *value;
        SettingSource s;
        ASSERT_OK(effective_settings_get(e, name, &value, &s));
        _cleanup_free_ char *printed = cJSON_PrintUnformatted(value);
        if (!streq(printed, value_json) || s != source)
                fprintf(stderr, "%s: got %s (%s)\n", name, printed, setting_source_to_string(s));
        ASSERT_STREQ(printed, value_json);
        ASSERT_STREQ(setting_source_to_string(s), setting_source_to_string(source));
}

TEST(full_document_parses_without_warnings) {
        _cleanup_(admin_settings_freep) AdminSettings *admin = admin_parse_ok(full_document);
        ASSERT_EQ(admin_settings_warnings(admin, NULL), 0);

        _cleanup_(effective_settings_freep) EffectiveSettings *e = NULL;
        ASSERT_OK(effective_settings_compute(admin, NULL, &e));
        assert_setting(e, "enhancedContainerIsolation.dockerSocketMount.commandList.commands", "[\"ps\",\"container ls\"]",
                       SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "proxy.windowsDockerdPort", "65100", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "linuxVM.dockerDaemonOptions", "\"{\\\"debug\\\": true}\"", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "kubernetes.imagesRepository", "\"registry.example.com\"", SETTING_SOURCE_ADMIN_DEFAULT);
        assert_setting(e, "filesharingAllowedDirectories",
                       "[{\"path\":\"$HOME\",\"sharedByDefault\":true},{\"path\":\"/tmp\",\"sharedByDefault\":false}]",
                       SETTING_SOURCE_ADMIN_LOCKED);
}

static const struct {
        const char *members;
        const char *message;
} type_errors[] = {
#define ECI "\"enhancedContainerIsolation\": "
#define MOUNT(x) ECI "{\"dockerSocketMount\": " x "}"
        { ECI "{\"value\": 1}", "enhancedContainerIsolation.value: expected boolean" },
        { ECI "{\"locked\": \"yes\"}", "enhancedContainerIsolation.locked: expected boolean" },
        { ECI "true", "enhancedContainerIsolation: expected object" },
        { MOUNT("[]"), "enhancedContainerIsolation.dockerSocketMount: expected object" },
        { MOUNT("{\"imageList\": null}"), "enhancedContainerIsolation.dockerSocketMount.imageList: expected object" },
        { MOUNT("{\"imageList\": {\"images\": [\"a\", \"b\", 3]}}"),
          "enhancedContainerIsolation.dockerSocketMount.imageList.images[2]: expected string" },
        { MOUNT("{\"imageList\": {\"images\": \"a\"}}"),
          "enhancedContainerIsolation.dockerSocketMount.imageList.images: expected array" },
        { MOUNT("{\"imageList\": {\"allowDerivedImages\": \"no\"}}"),
          "enhancedContainerIsolation.dockerSocketMount.imageList.allowDerivedImages: expected boolean" },
        { MOUNT("{\"commandList\": 7}"), "enhancedContainerIsolation.dockerSocketMount.commandList: expected object" },
        { MOUNT("{\"commandList\": {\"type\": \"maybe\"}}"),
          "enhancedContainerIsolation.dockerSocketMount.commandList.type: expected one of allow, deny" },
        { MOUNT("{\"commandList\": {\"type\": true}}"),
          "enhancedContainerIsolation.dockerSocketMount.commandList.type: expected one of allow, deny" },
        { MOUNT("{\"commandList\": {\"commands\": [1]}}"),
          "enhancedContainerIsolation.dockerSocketMount.commandList.commands[0]: expected string" },
        { MOUNT("{\"commandList\": {\"commands\": {}}}"),
          "enhancedContainerIsolation.dockerSocketMount.commandList.commands: expected array" },
        { "\"exposeDockerAPIOnTCP2375\": {\"value\": \"false\"}", "exposeDockerAPIOnTCP2375.value: expected boolean" },
        { "\"exposeDockerAPIOnTCP2375\": {\"locked\": 1}", "exposeDockerAPIOnTCP2375.locked: expected boolean" },
        { "\"disableUpdate\": {\"value\": null}", "disableUpdate.value: expected boolean" },
        { "\"analyticsEnabled\": {\"value\": 0}", "analyticsEnabled.value: expected boolean" },
        { "\"extensionsEnabled\": {\"value\": []}", "extensionsEnabled.value: expected boolean" },
        { "\"allowExperimentalFeatures\": {\"value\": {}}", "allowExperimentalFeatures.value: expected boolean" },
        { "\"allowBetaFeatures\": {\"value\": \"\"}", "allowBetaFeatures.value: expected boolean" },
        { "\"blockDockerLoad\": {\"value\": 1}", "blockDockerLoad.value: expected boolean" },
        { "\"displayedOnboarding\": {\"value\": 1}", "displayedOnboarding.value: expected boolean" },
        { "\"desktopTerminalEnabled\": {\"value\": 1}", "desktopTerminalEnabled.value: expected boolean" },
        { "\"useGrpcfuse\": {\"value\": 1}", "useGrpcfuse.value: expected boolean" },
        { "\"useVirtualizationFrameworkVirtioFS\": {\"value\": 1}", "useVirtualizationFrameworkVirtioFS.value: expected boolean" },
        { "\"useVirtualizationFrameworkRosetta\": {\"value\": 1}", "useVirtualizationFrameworkRosetta.value: expected boolean" },
        { "\"disableHardwareAcceleration\": {\"value\": 1}", "disableHardwareAcceleration.value: expected boolean" },
        { "\"disableHardwareAcceleration\": \"on\"", "disableHardwareAcceleration: expected object" },
        { "\"proxy\": []", "proxy: expected object" },
        { "\"proxy\": {\"locked\": \"true\"}", "proxy.locked: expected boolean" },
        { "\"proxy\": {\"mode\": \"pac\"}", "proxy.mode: expected one of system, manual" },
        { "\"proxy\": {\"http\": 80}", "proxy.http: expected string" },
        { "\"proxy\": {\"https\": false}", "proxy.https: expected string" },
        { "\"proxy\": {\"exclude\": \"localhost\"}", "proxy.exclude: expected array" },
        { "\"proxy\": {\"exclude\": [\"localhost\", null]}", "proxy.exclude[1]: expected string" },
        { "\"proxy\": {\"windowsDockerdPort\": \"65000\"}", "proxy.windowsDockerdPort: expected integer" },
        { "\"proxy\": {\"windowsDockerdPort\": 65000.5}", "proxy.windowsDockerdPort: expected integer" },
        { "\"proxy\": {\"windowsDockerdPort\": 1e300}", "proxy.windowsDockerdPort: expected integer" },
        { "\"proxy\": {\"enableKerberosNtlm\": \"yes\"}", "proxy.enableKerberosNtlm: expected boolean" },
        { "\"containersProxy\": {\"locked\": null}", "containersProxy.locked: expected boolean" },
        { "\"containersProxy\": {\"mode\": \"System\"}", "containersProxy.mode: expected one of system, manual" },
        { "\"containersProxy\": {\"http\": []}", "containersProxy.http: expected string" },
        { "\"containersProxy\": {\"https\": {}}", "containersProxy.https: expected string" },
        { "\"containersProxy\": {\"exclude\": [1]}", "containersProxy.exclude[0]: expected string" },
        { "\"containersProxy\": {\"pac\": 1}", "containersProxy.pac: expected string" },
        { "\"containersProxy\": {\"transparentPorts\": 80}", "containersProxy.transparentPorts: expected string" },
        { "\"kubernetes\": {\"enabled\": \"true\"}", "kubernetes.enabled: expected boolean" },
        { "\"kubernetes\": {\"showSystemContainers\": 1}", "kubernetes.showSystemContainers: expected boolean" },
        { "\"kubernetes\": {\"imagesRepository\": 1}", "kubernetes.imagesRepository: expected string" },
        { "\"scout\": {\"sbomIndexing\": 1}", "scout.sbomIndexing: expected boolean" },
        { "\"scout\": {\"useBackgroundIndexing\": 1}", "scout.useBackgroundIndexing: expected boolean" },
        { "\"linuxVM\": true", "linuxVM: expected object" },
        { "\"linuxVM\": {\"wslEngineEnabled\": true}", "linuxVM.wslEngineEnabled: expected object" },
        { "\"linuxVM\": {\"wslEngineEnabled\": {\"value\": 1}}", "linuxVM.wslEngineEnabled.value: expected boolean" },
        { "\"linuxVM\": {\"wslEngineEnabled\": {\"locked\": 1}}", "linuxVM.wslEngineEnabled.locked: expected boolean" },
        { "\"linuxVM\": {\"dockerDaemonOptions\": {\"value\": {}}}",
          "linuxVM.dockerDaemonOptions.value: expected a string holding a JSON object" },
        { "\"linuxVM\": {\"dockerDaemonOptions\": {\"value\": \"[]\"}}",
          "linuxVM.dockerDaemonOptions.value: expected a string holding a JSON object" },
        { "\"linuxVM\": {\"dockerDaemonOptions\": {\"value\": \"{} x\"}}",
          "linuxVM.dockerDaemonOptions.value: expected a string holding a JSON object" },
        { "\"linuxVM\": {\"vpnkitCIDR\": {\"value\": 24}}", "linuxVM.vpnkitCIDR.value: expected string" },
        { "\"windowsContainers\": 1", "windowsContainers: expected object" },
        { "\"windowsContainers\": {\"dockerDaemonOptions\": {\"value\": \"{\"}}",
          "windowsContainers.dockerDaemonOptions.value: expected a string holding a JSON object" },
        { "\"filesharingAllowedDirectories\": {}", "filesharingAllowedDirectories: expected array" },
        { "\"filesharingAllowedDirectories\": [\"/home\"]", "filesharingAllowedDirectories[0]: expected object" },
        { "\"filesharingAllowedDirectories\": [{\"path\": 1}]", "filesharingAllowedDirectories[0].path: expected string" },
        { "\"filesharingAllowedDirectories\": [{\"path\": \"/a\"}, {\"sharedByDefault\": true}]",
          "filesharingAllowedDirectories[1].path: missing" },
        { "\"filesharingAllowedDirectories\": [{\"path\": \"/a\", \"sharedByDefault\": \"yes\"}]",
          "filesharingAllowedDirectories[0].sharedByDefault: expected boolean" },
        { "\"proxy\": {\"http\": \"a\", \"http\": \"b\"}", "proxy.http: duplicate key" },
        { "\"proxy\": {}, \"proxy\": {}", "proxy: duplicate key" },
        { "\"configurationFileVersion\": 2", "configurationFileVersion: duplicate key" },
#undef MOUNT
#undef ECI
};

TEST(type_errors_name_the_path) {
        for (size_t i = 0; i < ELEMENTSOF(type_errors); i++) {
                _cleanup_free_ char *err = admin_parse_error(type_errors[i].members);
                ASSERT_STREQ(err, type_errors[i].message);
        }
}

/* Guards the table above: each setting must have a type error case. */
TEST(type_errors_cover_every_setting) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(NULL, NULL);
        _cleanup_json_ cJSON *json = effective_settings_to_json(e);
        const cJSON *entry;
        cJSON_ArrayForEach(entry, json) {
                size_t n = strlen(entry->string);
                bool covered = false;
                for (size_t i = 0; i < ELEMENTSOF(type_errors); i++) {
                        const char *m = type_errors[i].message;
                        covered = covered || (strncmp(m, entry->string, n) == 0 &&
                                              (m[n] == ':' || m[n] == '[' || STARTSWITH(m + n, ".value:")));
                }
                if (!covered)
                        fprintf(stderr, "no type error case for %s\n", entry->string);
                ASSERT_TRUE(covered);
        }
}

TEST(document_errors) {
        static const struct {
                const char *text;
                int error;
                const char *message;
        } cases[] = {
                { "[]", -EINVAL, "expected object" },
                { "\"x\"", -EINVAL, "expected object" },
                { "{}", -EINVAL, "configurationFileVersion: missing" },
                { "{\"configurationFileVersion\": 3}", -EINVAL, "configurationFileVersion: expected 2, got 3" },
                { "{\"configurationFileVersion\": 1.5}", -EINVAL, "configurationFileVersion: expected 2, got 1.5" },
                { "{\"configurationFileVersion\": \"2\"}", -EINVAL, "configurationFileVersion: expected number" },
                { "{\"configurationFileVersion\": 2", -EINVAL, "invalid JSON" },
                { "", -EINVAL, "invalid JSON" },
                { "{\"configurationFileVersion\": 2} {}", -EINVAL, "invalid JSON: trailing data at offset 32" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                AdminSettings *admin = NULL;
                _cleanup_free_ char *err = NULL;
                ASSERT_EQ(admin_settings_parse_text(cases[i].text, strlen(cases[i].text), &admin, &err), cases[i].error);
                ASSERT_STREQ(err, cases[i].message);
        }

        /* Trailing whitespace is fine, a trailing NUL is not. */
        AdminSettings *admin = NULL;
        ASSERT_OK(admin_settings_parse_text("{\"configurationFileVersion\": 2}\n", 32, &admin, NULL));
        admin = admin_settings_free(admin);
        ASSERT_EQ(admin_settings_parse_text("{\"configurationFileVersion\": 2}\0", 32, &admin, NULL), -EINVAL);
}

TEST(oversized_document_is_refused) {
        size_t size = 1024 * 1024 + 1;
        _cleanup_free_ char *text = malloc(size);
        ASSERT_TRUE(text);
        memset(text, ' ', size);
        memcpy(text, "{\"configurationFileVersion\": 2}", 31);

        AdminSettings *admin = NULL;
        _cleanup_free_ char *err = NULL;
        ASSERT_EQ(admin_settings_parse_text(text, size, &admin, &err), -EFBIG);
        ASSERT_STREQ(err, "settings too large");
        ASSERT_OK(admin_settings_parse_text(text, size - 1, &admin, NULL));
        admin_settings_free(admin);
}

TEST(unknown_keys_are_warnings) {
        _cleanup_(admin_settings_freep) AdminSettings *admin = admin_parse_ok(
                "{\"futureSetting\": {\"locked\": true, \"value\": [1]},"
                " \"configurationFileVersion\": 2,"
                " \"locked\": true,"
                " \"proxy\": {\"locked\": true, \"ftp\": \"x\", \"value\": 1},"
                " \"linuxVM\": {\"foo\": 1, \"locked\": true, \"vpnkitCIDR\": {\"value\": \"10.0.0.0/24\", \"comment\": \"\"}},"
                " \"enhancedContainerIsolation\": {\"dockerSocketMount\": {\"extra\": {}, \"imageList\": {\"x\": 1}}},"
                " \"filesharingAllowedDirectories\": [{\"path\": \"/a\", \"readOnly\": true}],"
                " \"proxy.http\": \"dotted keys are not paths\","
                " \"bad\\nkey\": 1}");

        static const char *const expected[] = {
                "unknown key 'futureSetting'",
                "unknown key 'locked'",
                "unknown key 'proxy.ftp'",
                "unknown key 'proxy.value'",
                "unknown key 'linuxVM.foo'",
                "unknown key 'linuxVM.locked'",
                "unknown key 'linuxVM.vpnkitCIDR.comment'",
                "unknown key 'enhancedContainerIsolation.dockerSocketMount.extra'",
                "unknown key 'enhancedContainerIsolation.dockerSocketMount.imageList.x'",
                "unknown key 'filesharingAllowedDirectories[0].readOnly'",
                "unknown key 'proxy.http'",
                "unknown key 'bad?key'",
        };
        const char *const *warnings;
        ASSERT_EQ(admin_settings_warnings(admin, &warnings), ELEMENTSOF(expected));
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                ASSERT_STREQ(warnings[i], expected[i]);

        /* The unknown keys do not affect the known ones. */
        _cleanup_(effective_settings_freep) EffectiveSettings *e = NULL;
        ASSERT_OK(effective_settings_compute(admin, NULL, &e));
        assert_setting(e, "proxy.http", "\"\"", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "linuxVM.vpnkitCIDR", "\"10.0.0.0/24\"", SETTING_SOURCE_ADMIN_DEFAULT);
}

TEST(locked_admin_value_wins_over_user) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(
                "{\"configurationFileVersion\": 2, \"enhancedContainerIsolation\": {\"locked\": true, \"value\": true},"
                " \"linuxVM\": {\"wslEngineEnabled\": {\"locked\": true, \"value\": false}}}",
                "{\"enhancedContainerIsolation\": false, \"linuxVM.wslEngineEnabled\": true}");
        assert_setting(e, "enhancedContainerIsolation", "true", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "linuxVM.wslEngineEnabled", "false", SETTING_SOURCE_ADMIN_LOCKED);
}

TEST(unlocked_admin_value_is_overridden_by_user) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(
                "{\"configurationFileVersion\": 2, \"analyticsEnabled\": {\"locked\": false, \"value\": false},"
                " \"kubernetes\": {\"enabled\": true}}",
                "{\"analyticsEnabled\": true, \"kubernetes.enabled\": false}");
        assert_setting(e, "analyticsEnabled", "true", SETTING_SOURCE_USER);
        assert_setting(e, "kubernetes.enabled", "false", SETTING_SOURCE_USER);
}

TEST(unlocked_admin_value_is_default_without_user) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(
                "{\"configurationFileVersion\": 2, \"analyticsEnabled\": {\"value\": false},"
                " \"proxy\": {\"locked\": false, \"http\": \"http://p:1\"}}",
                "{\"proxy.https\": \"http://p:2\"}");
        assert_setting(e, "analyticsEnabled", "false", SETTING_SOURCE_ADMIN_DEFAULT);
        assert_setting(e, "proxy.http", "\"http://p:1\"", SETTING_SOURCE_ADMIN_DEFAULT);
        assert_setting(e, "proxy.https", "\"http://p:2\"", SETTING_SOURCE_USER);
}

TEST(builtin_defaults) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute("{\"configurationFileVersion\": 2}", "{}");
        assert_setting(e, "enhancedContainerIsolation", "true", SETTING_SOURCE_BUILTIN);
        assert_setting(e, "enhancedContainerIsolation.dockerSocketMount.commandList.type", "\"deny\"", SETTING_SOURCE_BUILTIN);
        assert_setting(e, "proxy.mode", "\"system\"", SETTING_SOURCE_BUILTIN);
        assert_setting(e, "proxy.windowsDockerdPort", "65000", SETTING_SOURCE_BUILTIN);
        assert_setting(e, "linuxVM.dockerDaemonOptions", "\"{}\"", SETTING_SOURCE_BUILTIN);
        assert_setting(e, "linuxVM.vpnkitCIDR", "\"192.168.65.0/24\"", SETTING_SOURCE_BUILTIN);
        assert_setting(e, "filesharingAllowedDirectories", "[]", SETTING_SOURCE_BUILTIN);
}

TEST(eci_defaults_to_on_without_any_settings) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = NULL;
        ASSERT_OK(effective_settings_compute(NULL, NULL, &e));
        assert_setting(e, "enhancedContainerIsolation", "true", SETTING_SOURCE_BUILTIN);
}

/* Every built-in default passes its own type check. */
TEST(builtin_defaults_are_valid_user_settings) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(NULL, NULL);
        _cleanup_json_ cJSON *json = effective_settings_to_json(e);
        _cleanup_json_ cJSON *user = cJSON_CreateObject();
        const cJSON *entry;
        cJSON_ArrayForEach(entry, json)
                ASSERT_TRUE(cJSON_AddItemToObject(user, entry->string,
                                                  cJSON_Duplicate(cJSON_GetObjectItem(entry, "value"), true)));
        _cleanup_free_ char *text = cJSON_PrintUnformatted(user);
        _cleanup_json_ cJSON *parsed = NULL;
        _cleanup_free_ char *err = NULL;
        ASSERT_OK(user_settings_parse_text(text, strlen(text), &parsed, &err));
}

TEST(locked_group_with_missing_field_is_locked_to_builtin) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(
                "{\"configurationFileVersion\": 2, \"proxy\": {\"locked\": true, \"mode\": \"manual\"},"
                " \"enhancedContainerIsolation\": {\"locked\": true},"
                " \"filesharingAllowedDirectories\": [{\"path\": \"/src\"}]}",
                "{\"proxy.http\": \"http://mine\", \"enhancedContainerIsolation\": false,"
                " \"enhancedContainerIsolation.dockerSocketMount.imageList.images\": [\"*\"],"
                " \"filesharingAllowedDirectories\": [{\"path\": \"/\"}]}");
        assert_setting(e, "proxy.mode", "\"manual\"", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "proxy.http", "\"\"", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "enhancedContainerIsolation", "true", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "enhancedContainerIsolation.dockerSocketMount.imageList.images", "[]", SETTING_SOURCE_ADMIN_LOCKED);
        assert_setting(e, "filesharingAllowedDirectories", "[{\"path\":\"/src\"}]", SETTING_SOURCE_ADMIN_LOCKED);
        /* Other groups are untouched. */
        assert_setting(e, "containersProxy.mode", "\"system\"", SETTING_SOURCE_BUILTIN);
}

TEST(user_settings_errors) {
        static const struct {
                const char *text;
                const char *message;
        } cases[] = {
                { "[]", "expected object" },
                { "{\"foo\": 1}", "unknown setting 'foo'" },
                { "{\"proxy\": {}}", "unknown setting 'proxy'" },
                { "{\"enhancedContainerIsolation.value\": true}", "unknown setting 'enhancedContainerIsolation.value'" },
                { "{\"proxy.http\": 1}", "proxy.http: expected string" },
                { "{\"enhancedContainerIsolation\": \"off\"}", "enhancedContainerIsolation: expected boolean" },
                { "{\"proxy.mode\": \"auto\"}", "proxy.mode: expected one of system, manual" },
                { "{\"proxy.exclude\": [\"a\", 1]}", "proxy.exclude[1]: expected string" },
                { "{\"linuxVM.dockerDaemonOptions\": \"1\"}", "linuxVM.dockerDaemonOptions: expected a string holding a JSON object" },
                { "{\"filesharingAllowedDirectories\": [{}]}", "filesharingAllowedDirectories[0].path: missing" },
                { "{\"proxy.http\": \"a\", \"proxy.http\": \"b\"}", "proxy.http: duplicate key" },
                { "{", "invalid JSON" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                cJSON *user = NULL;
                _cleanup_free_ char *err = NULL;
                ASSERT_EQ(user_settings_parse_text(cases[i].text, strlen(cases[i].text), &user, &err), -EINVAL);
                ASSERT_TRUE(!user);
                ASSERT_STREQ(err, cases[i].message);
        }
}

TEST(effective_settings_get_unknown_name) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(NULL, NULL);
        ASSERT_EQ(effective_settings_get(e, "proxy", NULL, NULL), -ENOENT);
        ASSERT_EQ(effective_settings_get(e, "enhancedContainerIsolation.value", NULL, NULL), -ENOENT);
        ASSERT_OK(effective_settings_get(e, "proxy.http", NULL, NULL));
}

TEST(effective_settings_to_json_shape) {
        _cleanup_(effective_settings_freep) EffectiveSettings *e = compute(
                "{\"configurationFileVersion\": 2, \"enhancedContainerIsolation\": {\"locked\": true, \"value\": true},"
                " \"analyticsEnabled\": {\"value\": false}}",
                "{\"proxy.http\": \"http://p\"}");
        _cleanup_json_ cJSON *json = effective_settings_to_json(e);
        ASSERT_TRUE(cJSON_IsObject(json));

        /* Schema order, starting with ECI and ending with the shared directories. */
        ASSERT_STREQ(json->child->string, "enhancedContainerIsolation");
        const cJSON *last = json->child;
        while (last->next)
                last = last->next;
        ASSERT_STREQ(last->string, "filesharingAllowedDirectories");

        static const struct {
                const char *name;
                const char *printed;
        } cases[] = {
                { "enhancedContainerIsolation", "{\"value\":true,\"source\":\"admin-locked\"}" },
                { "analyticsEnabled", "{\"value\":false,\"source\":\"admin-default\"}" },
                { "proxy.http", "{\"value\":\"http://p\",\"source\":\"user\"}" },
                { "proxy.exclude", "{\"value\":[],\"source\":\"builtin\"}" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *printed = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(json, cases[i].name));
                ASSERT_STREQ(printed, cases[i].printed);
        }

        const cJSON *entry;
        size_t n = 0;
        cJSON_ArrayForEach(entry, json) {
                ASSERT_EQ(cJSON_GetArraySize(entry), 2);
                ASSERT_TRUE(cJSON_GetObjectItemCaseSensitive(entry, "value"));
                ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(entry, "source")));
                n++;
        }
        ASSERT_EQ(n, 40);
}

TEST(setting_source_names) {
        ASSERT_STREQ(setting_source_to_string(SETTING_SOURCE_BUILTIN), "builtin");
        ASSERT_STREQ(setting_source_to_string(SETTING_SOURCE_USER), "user");
        ASSERT_STREQ(setting_source_to_string(SETTING_SOURCE_ADMIN_DEFAULT), "admin-default");
        ASSERT_STREQ(setting_source_to_string(SETTING_SOURCE_ADMIN_LOCKED), "admin-locked");
}
