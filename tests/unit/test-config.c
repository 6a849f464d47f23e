/* SPDX-License-Identifier: Apache-2.0 */
/* agent/config.c: comments, null values, and the configuration's documentation against
 * its parser: every key the parser accepts is described in stockaded.json(5) and named in
 * the Debian package's commented configuration, and every key the page describes is
 * accepted. The keys are not listed here: the parser itself is asked about every string
 * literal of agent/config.c, so a key added there is caught without touching this test.
 * Runs from the top of the source tree (tests/run does). */
#include <fcntl.h>

#include "agent/config.h"
#include "util.h"
#include "test.h"

#define CONFIG_SOURCE "agent/config.c"
#define CONFIG_PAGE "docs/man/stockaded.json.5.scd"
#define PACKAGED_CONFIG "debian/stockaded.json"
#define NAMES_MAX 512

typedef struct Names {
        char *name[NAMES_MAX];
        size_t n;
} Names;

static void names_add(Names *names, const char *name, size_t length) {
        for (size_t i = 0; i < names->n; i++)
                if (strlen(names->name[i]) == length && strncmp(names->name[i], name, length) == 0)
                        return;
        ASSERT_TRUE(names->n < NAMES_MAX);
        names->name[names->n] = strndup(name, length);
        ASSERT_TRUE(names->name[names->n]);
        names->n++;
}

static void names_done(Names *names) {
        for (size_t i = 0; i < names->n; i++)
                free(names->name[i]);
        names->n = 0;
}

static bool names_has(const Names *names, const char *name) {
        for (size_t i = 0; i < names->n; i++)
                if (streq(names->name[i], name))
                        return true;
        return false;
}

static char *read_text(const char *path) {
        char *text = NULL;
        size_t size;
        int r = read_full_file(AT_FDCWD, path, 1 << 20, &text, &size);
        if (r < 0)
                fprintf(stderr, "cannot read '%s' (run from the top of the source tree): %s\n", path, strerror(-r));
        ASSERT_OK(r);
        return text;
}

/* Every string literal of the source that could be a JSON key: a letter, then letters and
 * digits. */
static void candidates_from_source(Names *out) {
        _cleanup_free_ char *text = read_text(CONFIG_SOURCE);
        for (const char *p = strchr(text, '"'); p; p = strchr(p, '"')) {
                const char *start = ++p;
                while (*p && *p != '"' && *p != '\n')
                        p += *p == '\\' && p[1] ? 2 : 1;
                if (*p != '"')
                        continue;
                size_t n = (size_t) (p - start);
                bool identifier = n > 0 && ((*start >= 'a' && *start <= 'z') || (*start >= 'A' && *start <= 'Z'));
                for (size_t i = 0; identifier && i < n; i++)
                        identifier = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", start[i]) != NULL;
                if (identifier)
                        names_add(out, start, n);
                p++;
        }
}

/* Whether the parser takes the configuration text without calling 'name' unknown (it may
 * refuse the value: what counts is that it knows the key). */
static bool parser_knows(const char *config_text, const char *name) {
        _cleanup_free_ char *text = strdup(config_text), *why = NULL, *unknown = NULL;
        ASSERT_TRUE(text);
        ASSERT_TRUE(asprintf(&unknown, "unknown key '%s'", name) >= 0);
        AgentConfig *c = NULL;
        int r = agent_config_parse(text, &c, &why);
        agent_config_free(c);
        return r >= 0 || !why || !strstr(why, unknown);
}

/* The keys the parser accepts: top-level ones, and "key.member" for each member of an
 * object whose members are a fixed set (the parser names an unknown one "key.member"). */
static void accepted_keys(Names *out) {
        Names candidates = {};
        candidates_from_source(&candidates);
        ASSERT_TRUE(candidates.n > 0);
        for (size_t i = 0; i < candidates.n; i++) {
                const char *key = candidates.name[i];
                _cleanup_free_ char *text = NULL, *probe = NULL, *probe_name = NULL;
                ASSERT_TRUE(asprintf(&text, "{\"%s\": null}", key) >= 0);
                if (!parser_knows(text, key))
                        continue;
                names_add(out, key, strlen(key));

                ASSERT_TRUE(asprintf(&probe, "{\"%s\": {\"noSuchMember\": null}}", key) >= 0);
                ASSERT_TRUE(asprintf(&probe_name, "%s.noSuchMember", key) >= 0);
                if (parser_knows(probe, probe_name))
                        continue;
                for (size_t j = 0; j < candidates.n; j++) {
                        _cleanup_free_ char *member_text = NULL, *member = NULL;
                        ASSERT_TRUE(asprintf(&member_text, "{\"%s\": {\"%s\": null}}", key, candidates.name[j]) >= 0);
                        ASSERT_TRUE(asprintf(&member, "%s.%s", key, candidates.name[j]) >= 0);
                        if (parser_knows(member_text, member))
                                names_add(out, member, strlen(member));
                }
        }
        names_done(&candidates);
}

/* The keys stockaded.json(5) describes: lines "*name* (type, default ...)". */
static void documented_keys(Names *out) {
        _cleanup_free_ char *text = read_text(CONFIG_PAGE);
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (line[0] != '*')
                        continue;
                size_t n = strspn(line + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.");
                if (n > 0 && STARTSWITH(line + 1 + n, "* ("))
                        names_add(out, line + 1, n);
        }
}

TEST(every_accepted_key_is_documented_and_every_documented_key_accepted) {
        Names accepted = {}, documented = {};
        accepted_keys(&accepted);
        documented_keys(&documented);
        /* The parser is asked, not trusted blindly: these it has always taken. */
        ASSERT_TRUE(names_has(&accepted, "control"));
        ASSERT_TRUE(names_has(&accepted, "brokerLimits.helpersPerContainer"));
        ASSERT_TRUE(!names_has(&accepted, "hostVariables.HOME"));

        size_t wrong = 0;
        for (size_t i = 0; i < accepted.n; i++)
                if (!names_has(&documented, accepted.name[i])) {
                        fprintf(stderr, "%s: the configuration key '%s' (%s accepts it) is not described\n", CONFIG_PAGE,
                                accepted.name[i], CONFIG_SOURCE);
                        wrong++;
                }
        for (size_t i = 0; i < documented.n; i++)
                if (!names_has(&accepted, documented.name[i])) {
                        fprintf(stderr, "%s: describes '%s', which %s does not accept\n", CONFIG_PAGE, documented.name[i],
                                CONFIG_SOURCE);
                        wrong++;
                }
        names_done(&accepted);
        names_done(&documented);
        ASSERT_EQ(wrong, 0);
}

TEST(the_packaged_configuration_loads_and_names_every_key) {
        AgentConfig *c = NULL;
        _cleanup_free_ char *why = NULL;
        int r = agent_config_load(PACKAGED_CONFIG, &c, &why);
        if (r < 0)
                fprintf(stderr, "%s\n", why ? why : strerror(-r));
        ASSERT_OK(r);
        ASSERT_STREQ(c->runtime, "/usr/bin/stockade-runc");
        ASSERT_EQ(c->n_control, 1);
        ASSERT_STREQ(c->control[0], "unix:/run/stockade/control.sock");
        ASSERT_STREQ(c->state_dir, "/var/lib/stockade");
        agent_config_free(c);

        Names accepted = {};
        accepted_keys(&accepted);
        _cleanup_free_ char *text = read_text(PACKAGED_CONFIG);
        size_t missing = 0;
        for (size_t i = 0; i < accepted.n; i++) {
                if (strchr(accepted.name[i], '.'))
                        continue;
                _cleanup_free_ char *quoted = NULL;
                ASSERT_TRUE(asprintf(&quoted, "\"%s\":", accepted.name[i]) >= 0);
                if (!strstr(text, quoted)) {
                        fprintf(stderr, "%s does not name the key '%s'\n", PACKAGED_CONFIG, accepted.name[i]);
                        missing++;
                }
        }
        names_done(&accepted);
        ASSERT_EQ(missing, 0);
}

/* A configuration file in the test's directory with text; its path, to free. */
static char *config_file(const char *name, const char *text) {
        char *path = NULL;
        ASSERT_TRUE(asprintf(&path, "%s/%s", test_tmpdir(), name) >= 0);
        FILE *f = fopen(path, "we");
        ASSERT_TRUE(f);
        fputs(text, f);
        ASSERT_EQ(fclose(f), 0);
        return path;
}

TEST(comments_are_skipped_but_not_inside_strings) {
        _cleanup_free_ char *why = NULL, *path = config_file("commented.json",
                                                            "// the agent's configuration\n"
                                                            "{\n"
                                                            "    /* \"org\": \"evil\", */\n"
                                                            "    \"settingsUrl\": \"https://settings.example.com/a//b\", // trailing\n"
                                                            "    \"org\": \"acme /* not a comment */\"\n"
                                                            "}\n");
        AgentConfig *c = NULL;
        ASSERT_OK(agent_config_load(path, &c, &why));
        ASSERT_STREQ(c->settings_url, "https://settings.example.com/a//b");
        ASSERT_STREQ(c->org, "acme /* not a comment */");
        agent_config_free(c);
}

/* "runtime" defaults to the stockade-runc installed beside the agent (the VM suite boots the
 * package's, /usr/bin); this test's directory has none. */
TEST(the_runtime_defaults_to_stockade_runc_beside_the_executable) {
        _cleanup_free_ char *why = NULL, *sibling = exe_sibling("stockade-runc"), *path = config_file("empty.json", "{}");
        AgentConfig *c = NULL;
        ASSERT_OK(agent_config_load(path, &c, &why));
        ASSERT_TRUE(!sibling);
        ASSERT_STREQ(c->runtime, STOCKADE_RUNTIME_DEFAULT);
        agent_config_free(c);
        _cleanup_free_ char *sh = exe_sibling("../../../../../../../../bin/sh");
        ASSERT_TRUE(sh && access(sh, X_OK) == 0);
}

TEST(null_is_refused_for_keys_with_a_default) {
        _cleanup_free_ char *why = NULL, *path = config_file("null.json", "{\"org\": null, \"trustRoot\": null}");
        AgentConfig *c = NULL;
        ASSERT_EQ(agent_config_load(path, &c, &why), -EINVAL);
        ASSERT_CONTAINS(why, "'trustRoot' must be a string");
}
