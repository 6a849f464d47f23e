/* SPDX-License-Identifier: Apache-2.0 */
/* stockadectl: the administrator's tool. Offline: keygen, root init, sign, verify,
 * settings show. Exit status: 0 success, 1 rejected or failed, 2 usage error. */
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "defaults.h"
#include "enforcer/uidrange.h"

#include "proto/control-client.h"
#include "policy/bundle.h"
#include "log.h"
#include "policy/store.h"
#include "util.h"

#define EXIT_USAGE 2
#define MAX_KEYS 32

typedef struct Command {
        const char *name;
        const char *usage;
        int (*run)(int argc, char *argv[]);
} Command;

static _printf_(1, 2) int usage_error(const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        fputs("stockadectl: ", stderr);
        vfprintf(stderr, format, ap);
        fputs(" (see --help)\n", stderr);
        va_end(ap);
        return EXIT_USAGE;
}

static _printf_(1, 2) int fail(const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        fputs("stockadectl: ", stderr);
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
        va_end(ap);
        return EXIT_FAILURE;
}

static int read_input(const char *path, size_t max, char **ret, size_t *ret_size) {
        int r = read_full_file(AT_FDCWD, path, max, ret, ret_size);
        if (r == -EFBIG)
                return fail("'%s' is larger than %zu bytes", path, max);
        if (r < 0)
                return fail("cannot read '%s': %s", path, strerror(-r));
        return 0;
}

static int print_json(const cJSON *json) {
        _cleanup_free_ char *text = cJSON_Print(json);
        if (!text)
                return fail("out of memory");
        puts(text);
        return 0;
}

/* Loads --key/--sign files into keys[]; returns an exit status. */
static int load_keys(char *const *paths, size_t n, bool private_key, Key **keys) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *why = NULL;
                int r = key_load_file(paths[i], private_key, &keys[i], &why);
                if (r < 0)
                        return fail("%s", why ? why : strerror(-r));
        }
        return 0;
}

static void free_keys(Key **keys, size_t n) {
        for (size_t i = 0; i < n; i++)
                key_free(keys[i]);
}

static int add_path(char **paths, size_t *n, char *path) {
        if (*n >= MAX_KEYS)
                return usage_error("at most %d keys", MAX_KEYS);
        paths[(*n)++] = path;
        return 0;
}

static int write_key_file(const char *path, const char *pem, mode_t mode) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return fail("cannot create '%s': %m", path);
        size_t n = strlen(pem);
        if (write(fd, pem, n) != (ssize_t) n || fsync(fd) < 0)
                return fail("cannot write '%s': %m", path);
        return 0;
}

static int cmd_keygen(int argc, char *argv[]) {
        static const struct option options[] = {
                { "type", required_argument, NULL, 't' },
                { "out", required_argument, NULL, 'o' },
                {},
        };
        KeyType type = KEY_ED25519;
        const char *prefix = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 't':
                        if (key_type_from_string(optarg, &type) < 0)
                                return usage_error("unknown key type '%s' (ed25519 or p256)", optarg);
                        break;
                case 'o': prefix = optarg; break;
                default: return EXIT_USAGE;
                }
        if (!prefix || optind != argc)
                return usage_error("keygen needs --out PREFIX and nothing else");

        _cleanup_(key_freep) Key *key = NULL;
        _cleanup_free_ char *priv = NULL, *pub = NULL, *priv_path = NULL, *pub_path = NULL;
        if (key_generate(type, &key) < 0 || key_private_pem(key, &priv) < 0 || key_public_pem(key, &pub) < 0)
                return fail("key generation failed");
        if (asprintf(&priv_path, "%s.key", prefix) < 0 || asprintf(&pub_path, "%s.pub", prefix) < 0)
                return fail("out of memory");

        int r = write_key_file(priv_path, priv, 0600);
        if (r != 0)
                return r;
        r = write_key_file(pub_path, pub, 0644);
        if (r != 0) {
                (void) unlink(priv_path);
                return r;
        }
        puts(key_id(key));
        return 0;
}

static int cmd_root_init(int argc, char *argv[]) {
        static const struct option options[] = {
                { "version", required_argument, NULL, 'v' },
                { "threshold", required_argument, NULL, 't' },
                { "key", required_argument, NULL, 'k' },
                { "sign", required_argument, NULL, 's' },
                { "org", required_argument, NULL, 'o' },
                {},
        };
        int64_t version = 1, threshold = 0;
        char *key_paths[MAX_KEYS], *sign_paths[MAX_KEYS];
        const char *orgs[ROOT_ORGS_MAX];
        size_t n_keys = 0, n_signers = 0, n_orgs = 0;
        int c, r;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'v':
                        if (safe_atoi64(optarg, &version) < 0 || version < 1 || version > INT32_MAX)
                                return usage_error("--version must be a positive integer");
                        break;
                case 't':
                        if (safe_atoi64(optarg, &threshold) < 0 || threshold < 1 || threshold > MAX_KEYS)
                                return usage_error("--threshold must be a positive integer");
                        break;
                case 'k':
                        if ((r = add_path(key_paths, &n_keys, optarg)) != 0)
                                return r;
                        break;
                case 's':
                        if ((r = add_path(sign_paths, &n_signers, optarg)) != 0)
                                return r;
                        break;
                case 'o':
                        if (optarg[0] == '\0')
                                return usage_error("--org needs an organisation name");
                        if (n_orgs >= ROOT_ORGS_MAX)
                                return usage_error("at most %d --org", ROOT_ORGS_MAX);
                        orgs[n_orgs++] = optarg;
                        break;
                default: return EXIT_USAGE;
                }
        if (optind != argc || threshold == 0 || n_keys == 0 || n_signers == 0)
                return usage_error("root init needs --threshold, at least one --key and one --sign");
        if ((size_t) threshold > n_keys)
                return usage_error("--threshold %" PRId64 " is more than the %zu keys given", threshold, n_keys);

        Key *keys[MAX_KEYS] = {}, *signers[MAX_KEYS] = {};
        _cleanup_free_ char *text = NULL;
        r = load_keys(key_paths, n_keys, false, keys);
        if (r == 0)
                r = load_keys(sign_paths, n_signers, true, signers);
        if (r == 0 && trust_root_create(version, (size_t) threshold, keys, n_keys, orgs, n_orgs, signers, n_signers, &text) < 0)
                r = fail("cannot create the root");
        if (r == 0)
                puts(text);
        free_keys(keys, n_keys);
        free_keys(signers, n_signers);
        return r;
}

static int cmd_root(int argc, char *argv[]) {
        if (argc >= 2 && streq(argv[1], "init"))
                return cmd_root_init(argc - 1, argv + 1);
        return usage_error("unknown root command (expected: root init)");
}

static int cmd_sign(int argc, char *argv[]) {
        static const struct option options[] = {
                { "key", required_argument, NULL, 'k' },
                { "org", required_argument, NULL, 'o' },
                { "serial", required_argument, NULL, 's' },
                { "expires", required_argument, NULL, 'e' },
                { "valid-for", required_argument, NULL, 'V' },
                {},
        };
        char *key_paths[MAX_KEYS];
        size_t n_keys = 0;
        const char *org = NULL;
        int64_t serial = 0, expires = 0, valid_for = 0, now = time(NULL);
        int c, r;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'k':
                        if ((r = add_path(key_paths, &n_keys, optarg)) != 0)
                                return r;
                        break;
                case 'o': org = optarg; break;
                case 's':
                        if (safe_atoi64(optarg, &serial) < 0 || serial < 1)
                                return usage_error("--serial must be a positive integer");
                        break;
                case 'e':
                        if (rfc3339_parse(optarg, &expires) < 0)
                                return usage_error("--expires must be an RFC 3339 time such as 2027-01-31T00:00:00Z");
                        break;
                case 'V':
                        if (duration_parse(optarg, &valid_for) < 0)
                                return usage_error("--valid-for must be a duration such as 30d, 12h or 90m");
                        break;
                default: return EXIT_USAGE;
                }
        if (optind + 1 != argc || n_keys == 0 || !org || org[0] == '\0' || serial == 0)
                return usage_error("sign needs --key, --org, --serial and one SETTINGS.json");
        if ((expires != 0) == (valid_for != 0))
                return usage_error("sign needs exactly one of --expires and --valid-for");
        if (valid_for)
                expires = now + valid_for;
        if (expires <= now)
                return fail("--expires is in the past");

        _cleanup_free_ char *text = NULL, *why = NULL, *out = NULL;
        size_t size;
        if ((r = read_input(argv[optind], ENVELOPE_MAX_SIZE, &text, &size)) != 0)
                return r;
        _cleanup_(admin_settings_freep) AdminSettings *settings = NULL;
        if (admin_settings_parse_text(text, size, &settings, &why) < 0)
                return fail("invalid settings '%s': %s", argv[optind], why ? why : "parse error");
        const char *const *warnings;
        size_t n_warnings = admin_settings_warnings(settings, &warnings);
        for (size_t i = 0; i < n_warnings; i++)
                fprintf(stderr, "stockadectl: warning: %s\n", warnings[i]);

        _cleanup_json_ cJSON *json = cJSON_ParseWithLength(text, size);
        Key *keys[MAX_KEYS] = {};
        r = load_keys(key_paths, n_keys, true, keys);
        if (r == 0 && bundle_create(org, serial, now, expires, json, keys, n_keys, &out) < 0)
                r = fail("signing failed");
        if (r == 0)
                puts(out);
        free_keys(keys, n_keys);
        return r;
}

static cJSON *bundle_summary(const Bundle *b) {
        char issued[32], expires[32];
        rfc3339_format(b->issued_at, issued);
        rfc3339_format(b->expires, expires);
        cJSON *json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "org", b->org);
        cJSON_AddNumberToObject(json, "serial", (double) b->serial);
        cJSON_AddStringToObject(json, "issuedAt", issued);
        cJSON_AddStringToObject(json, "expires", expires);
        cJSON_AddBoolToObject(json, "expired", b->expired);
        return json;
}

/* {"policy": {...} or null, "warnings": [...], "settings": {...}} */
static int effective_json(const Bundle *b, const cJSON *user, cJSON **ret) {
        _cleanup_(effective_settings_freep) EffectiveSettings *eff = NULL;
        int r = effective_settings_compute(b ? b->settings : NULL, user, &eff);
        if (r < 0)
                return r;

        cJSON *json = cJSON_CreateObject();
        cJSON_AddItemToObject(json, "policy", b ? bundle_summary(b) : cJSON_CreateNull());
        cJSON *warnings = cJSON_AddArrayToObject(json, "warnings");
        if (b) {
                const char *const *list;
                size_t n = admin_settings_warnings(b->settings, &list);
                for (size_t i = 0; i < n; i++)
                        cJSON_AddItemToArray(warnings, cJSON_CreateString(list[i]));
        }
        cJSON_AddItemToObject(json, "settings", effective_settings_to_json(eff));
        *ret = json;
        return 0;
}

static int open_store(const char *dir, PolicyStore **ret) {
        _cleanup_free_ char *why = NULL;
        if (policy_store_open(dir, ret, &why) < 0)
                return fail("%s", why ? why : "cannot open the state directory");
        return 0;
}

static int cmd_verify(int argc, char *argv[]) {
        static const struct option options[] = {
                { "root", required_argument, NULL, 'r' },
                { "org", required_argument, NULL, 'o' },
                { "state-dir", required_argument, NULL, 'd' },
                { "commit", no_argument, NULL, 'c' },
                {},
        };
        const char *root_path = NULL, *org = NULL, *state_dir = NULL;
        bool commit = false;
        int c, r;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'r': root_path = optarg; break;
                case 'o': org = optarg; break;
                case 'd': state_dir = optarg; break;
                case 'c': commit = true; break;
                default: return EXIT_USAGE;
                }
        if (!root_path || optind + 1 != argc)
                return usage_error("verify needs --root ROOT.json and one BUNDLE.json");
        if (commit && !state_dir)
                return usage_error("--commit needs --state-dir");

        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        if (state_dir && (r = open_store(state_dir, &store)) != 0)
                return r;

        _cleanup_free_ char *root_text = NULL, *text = NULL, *why = NULL;
        size_t root_size, size;
        if ((r = read_input(root_path, ENVELOPE_MAX_SIZE, &root_text, &root_size)) != 0)
                return r;
        _cleanup_(trust_root_freep) TrustRoot *root = NULL;
        if (trust_root_parse(root_text, root_size, &root, &why) < 0 ||
            (store && trust_root_check_successor(policy_store_root(store), root, &why) < 0))
                return fail("rejected: %s", why);

        /* A bundle larger than the limit is still read (up to twice it) so that the size
         * check reports it as a rejection. */
        r = read_full_file(AT_FDCWD, argv[optind], 2 * ENVELOPE_MAX_SIZE, &text, &size);
        if (r == -EFBIG)
                return fail("rejected: too large: more than %d bytes (limit %d)", 2 * ENVELOPE_MAX_SIZE, ENVELOPE_MAX_SIZE);
        if (r < 0)
                return fail("cannot read '%s': %s", argv[optind], strerror(-r));

        const PolicyState *state = store ? policy_store_state(store) : NULL;
        BundleCheck check = {
                .org = org ? org : state ? state->org : NULL,
                .now = time(NULL),
                .state = state,
        };
        _cleanup_(bundle_freep) Bundle *bundle = NULL;
        if (bundle_verify(root, text, size, &check, &bundle, &why) < 0)
                return fail("rejected: %s", why);

        if (commit && (r = policy_store_commit(store, root, bundle, text, size, check.now)) < 0)
                return fail("cannot record the bundle in '%s': %s", state_dir, strerror(-r));

        _cleanup_json_ cJSON *json = NULL;
        if (effective_json(bundle, NULL, &json) < 0)
                return fail("out of memory");
        return print_json(json);
}

static void print_settings_table(const cJSON *json) {
        const cJSON *policy = cJSON_GetObjectItemCaseSensitive(json, "policy");
        if (cJSON_IsObject(policy))
                printf("policy: org %s, serial %.0f, expires %s%s\n",
                       json_get_string(policy, "org"),
                       cJSON_GetObjectItemCaseSensitive(policy, "serial")->valuedouble,
                       json_get_string(policy, "expires"),
                       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(policy, "expired")) ? " (expired: enforced as stale)" : "");
        else
                printf("policy: none accepted (built-in defaults)\n");

        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(json, "warnings"))
                printf("warning: %s\n", item->valuestring);

        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(json, "settings")) {
                _cleanup_free_ char *value = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(item, "value"));
                printf("%-74s %-14s %s\n", item->string, json_get_string(item, "source"), value ? value : "?");
        }
}

static int cmd_settings_show(int argc, char *argv[]) {
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "user-settings", required_argument, NULL, 'u' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        const char *state_dir = NULL, *user_path = NULL;
        bool as_json = false;
        int c, r;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'd': state_dir = optarg; break;
                case 'u': user_path = optarg; break;
                case 'j': as_json = true; break;
                default: return EXIT_USAGE;
                }
        if (!state_dir || optind != argc)
                return usage_error("settings show needs --state-dir DIR");

        _cleanup_json_ cJSON *user = NULL;
        _cleanup_free_ char *why = NULL;
        if (user_path) {
                _cleanup_free_ char *text = NULL;
                size_t size;
                if ((r = read_input(user_path, ENVELOPE_MAX_SIZE, &text, &size)) != 0)
                        return r;
                if (user_settings_parse_text(text, size, &user, &why) < 0)
                        return fail("invalid user settings '%s': %s", user_path, why ? why : "parse error");
        }

        _cleanup_(policy_store_freep) PolicyStore *store = NULL;
        if ((r = open_store(state_dir, &store)) != 0)
                return r;
        _cleanup_(bundle_freep) Bundle *bundle = NULL;
        r = policy_store_load_last_known_good(store, time(NULL), &bundle, &why);
        if (r < 0 && r != -ENOENT)
                return fail("%s", why ? why : strerror(-r));

        _cleanup_json_ cJSON *json = NULL;
        if (effective_json(bundle, user, &json) < 0)
                return fail("out of memory");
        if (as_json)
                return print_json(json);
        print_settings_table(json);
        return 0;
}

static int cmd_settings(int argc, char *argv[]) {
        if (argc >= 2 && streq(argv[1], "show"))
                return cmd_settings_show(argc - 1, argv + 1);
        return usage_error("unknown settings command (expected: settings show)");
}


/* ---- online commands: the agent's control API ---- */

#define DEFAULT_SOCKET STOCKADE_CONTROL_DEFAULT

static const char *arg_socket = DEFAULT_SOCKET;

static int connect_agent(ControlConnection **ret) {
        _cleanup_free_ char *why = NULL;
        int r = control_client_connect(arg_socket, ret, &why);
        if (r < 0)
                return fail("cannot connect to the agent at '%s': %s", arg_socket, why ? why : strerror(-r));
        return 0;
}

/* Calls method; returns an exit status. A rejection from the agent exits 1. */
static int call(const char *method, cJSON *params, cJSON **ret) {
        _cleanup_(control_client_freep) ControlConnection *c = NULL;
        int r = connect_agent(&c);
        if (r != 0) {
                cJSON_Delete(params);
                return r;
        }
        _cleanup_free_ char *why = NULL;
        r = control_client_call(c, method, params, ret, &why);
        if (r < 0)
                return fail("%s", why ? why : strerror(-r));
        return 0;
}

/* Parses the options every online command shares: --socket and, where allowed, --json. */
static int online_options(int argc, char *argv[], bool json_allowed, bool *ret_json) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 'S' },
                { "json", no_argument, NULL, 'j' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'S': arg_socket = optarg; break;
                case 'j':
                        if (!json_allowed)
                                return usage_error("%s takes no --json", argv[0]);
                        *ret_json = true;
                        break;
                default: return EXIT_USAGE;
                }
        if (optind != argc)
                return usage_error("%s takes no arguments", argv[0]);
        return 0;
}

static const char *json_text(const cJSON *object, const char *name, const char *fallback) {
        const char *s = json_get_string(object, name);
        return s ? s : fallback;
}

static void print_status(const cJSON *st) {
        const cJSON *agent = cJSON_GetObjectItem(st, "agent"), *policy = cJSON_GetObjectItem(st, "policy");
        const cJSON *session = cJSON_GetObjectItem(st, "session"), *eci = cJSON_GetObjectItem(st, "eci");
        const cJSON *engine = cJSON_GetObjectItem(st, "engine"), *item;

        printf("agent:      stockaded %s, pid %.0f, up %.0fs\n", json_text(agent, "version", "?"),
               cJSON_GetNumberValue(cJSON_GetObjectItem(agent, "pid")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(agent, "uptime_s")));
        if (cJSON_IsNumber(cJSON_GetObjectItem(policy, "serial")))
                printf("policy:     %s, org %s, serial %.0f, expires %s (from %s)\n", json_text(policy, "state", "?"),
                       json_text(policy, "org", "?"), cJSON_GetNumberValue(cJSON_GetObjectItem(policy, "serial")),
                       json_text(policy, "expires", "?"), json_text(policy, "source", "?"));
        else
                printf("policy:     %s (no signed settings)\n", json_text(policy, "state", "?"));
        if (json_get_string(policy, "last_error"))
                printf("            last error: %s\n", json_get_string(policy, "last_error"));
        if (cJSON_IsTrue(cJSON_GetObjectItem(session, "signed_in")))
                printf("session:    signed in as %s in %s, last fetch %s: %s\n", json_text(session, "user", "?"),
                       json_text(session, "org", "?"), json_text(session, "last_fetch", "never"),
                       json_text(session, "last_fetch_result", "-"));
        else
                printf("session:    signed out\n");
        printf("ECI:        %s, %s (%s)\n", cJSON_IsTrue(cJSON_GetObjectItem(eci, "enabled")) ? "enabled" : "disabled",
               cJSON_IsTrue(cJSON_GetObjectItem(eci, "locked")) ? "locked" : "unlocked", json_text(eci, "source", "?"));
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(st, "locks"))
                printf("lock:       %s %s (tampered %.0f times)\n", json_text(item, "path", "?"), json_text(item, "state", "?"),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(item, "tamper_count")));
        printf("engine:     %s %s\n", json_text(engine, "config", "?"),
               cJSON_IsTrue(cJSON_GetObjectItem(engine, "config_current")) ? "current" : "NOT current");
        const cJSON *containers = cJSON_GetObjectItem(st, "containers");
        printf("containers: %.0f running\n", cJSON_GetNumberValue(cJSON_GetObjectItem(containers, "running")));
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(containers, "list")) {
                double base = cJSON_GetNumberValue(cJSON_GetObjectItem(item, "uid_base"));
                printf("container:  %.12s pid %.0f, ids %.0f-%.0f, vetted calls %.0f allowed, %.0f denied\n",
                       json_text(item, "id", "?"), cJSON_GetNumberValue(cJSON_GetObjectItem(item, "pid")), base,
                       base + UID_RANGE_SIZE - 1, cJSON_GetNumberValue(cJSON_GetObjectItem(item, "allowed")),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(item, "denied")));
        }
        const cJSON *procfs = cJSON_GetObjectItem(st, "procfs");
        if (cJSON_IsObject(procfs))
                printf("/proc:      served from %s to %.0f containers, %.0f files rendered\n", json_text(procfs, "mount", "?"),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(procfs, "containers")),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(procfs, "renderings")));
        else
                printf("/proc:      not emulated\n");
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(containers, "engine_sockets")) {
                const char *key = json_text(item, "key", "?"), *slash = strrchr(key, '/');
                if (cJSON_GetObjectItem(item, "socket"))
                        printf("engine socket: %.12s proxied, requests %.0f allowed, %.0f refused, %.0f connections\n", slash ? slash + 1 : key,
                               cJSON_GetNumberValue(cJSON_GetObjectItem(item, "allowed")),
                               cJSON_GetNumberValue(cJSON_GetObjectItem(item, "refused")),
                               cJSON_GetNumberValue(cJSON_GetObjectItem(item, "connections")));
                else
                        printf("engine socket: %.12s %s%s%s\n", slash ? slash + 1 : key, json_text(item, "state", "?"),
                               cJSON_GetObjectItem(item, "reason") ? ": " : "", json_text(item, "reason", ""));
        }
}

static int cmd_status(int argc, char *argv[]) {
        bool as_json = false;
        int r = online_options(argc, argv, true, &as_json);
        if (r != 0)
                return r;
        _cleanup_json_ cJSON *result = NULL;
        if ((r = call("status", NULL, &result)) != 0)
                return r;
        if (as_json)
                return print_json(result);
        print_status(result);
        return 0;
}

static int cmd_events(int argc, char *argv[]) {
        bool as_json = false;
        int r = online_options(argc, argv, true, &as_json);
        if (r != 0)
                return r;
        _cleanup_(control_client_freep) ControlConnection *c = NULL;
        if ((r = connect_agent(&c)) != 0)
                return r;
        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *why = NULL;
        if (control_client_call(c, "events.subscribe", NULL, &result, &why) < 0)
                return fail("%s", why ? why : "cannot subscribe");
        setvbuf(stdout, NULL, _IOLBF, 0);

        for (;;) {
                _cleanup_json_ cJSON *event = NULL;
                r = control_client_next_event(c, -1, &event);
                if (r < 0)
                        return fail("connection to the agent lost: %s", strerror(-r));
                if (r == 0)
                        continue;
                if (as_json) {
                        _cleanup_free_ char *line = cJSON_PrintUnformatted(event);
                        puts(line ? line : "{}");
                        continue;
                }
                char when[32];
                rfc3339_format(time(NULL), when);
                _cleanup_free_ char *params = cJSON_PrintUnformatted(cJSON_GetObjectItem(event, "params"));
                printf("%s %s %s\n", when, json_text(event, "method", "?"), params ? params : "");
        }
}

static int cmd_push(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 'S' },
                {},
        };
        int c, r;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'S': arg_socket = optarg; break;
                default: return EXIT_USAGE;
                }
        if (optind + 1 != argc)
                return usage_error("push needs one BUNDLE.json");

        _cleanup_free_ char *text = NULL;
        size_t size;
        if ((r = read_input(argv[optind], 2 * ENVELOPE_MAX_SIZE, &text, &size)) != 0)
                return r;
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "bundle", text);
        _cleanup_json_ cJSON *result = NULL;
        if ((r = call("settings.push", params, &result)) != 0)
                return r;
        printf("%s serial %.0f\n", cJSON_IsTrue(cJSON_GetObjectItem(result, "applied")) ? "applied" : "unchanged:",
               cJSON_GetNumberValue(cJSON_GetObjectItem(result, "serial")));
        return 0;
}

static int cmd_sign_in(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 'S' },
                { "org", required_argument, NULL, 'o' },
                { "user", required_argument, NULL, 'u' },
                { "token-file", required_argument, NULL, 't' },
                { "url", required_argument, NULL, 'U' },
                {},
        };
        const char *org = NULL, *user = NULL, *token_file = NULL, *url = NULL;
        int c, r;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'S': arg_socket = optarg; break;
                case 'o': org = optarg; break;
                case 'u': user = optarg; break;
                case 't': token_file = optarg; break;
                case 'U': url = optarg; break;
                default: return EXIT_USAGE;
                }
        if (optind != argc || !org || !user || !token_file)
                return usage_error("sign-in needs --org, --user and --token-file");

        _cleanup_free_ char *token = NULL;
        size_t size;
        if ((r = read_input(token_file, 64 * 1024, &token, &size)) != 0)
                return r;
        token[strcspn(token, "\r\n")] = '\0';
        if (token[0] == '\0')
                return fail("the token file '%s' is empty", token_file);

        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "org", org);
        cJSON_AddStringToObject(params, "user", user);
        cJSON_AddStringToObject(params, "token", token);
        if (url)
                cJSON_AddStringToObject(params, "settings_url", url);
        _cleanup_json_ cJSON *result = NULL;
        if ((r = call("session.sign_in", params, &result)) != 0)
                return r;
        printf("signed in as %s in %s; fetching settings\n", user, org);
        return 0;
}

static int simple_call(int argc, char *argv[], const char *method, const char *done) {
        int r = online_options(argc, argv, false, NULL);
        if (r != 0)
                return r;
        _cleanup_json_ cJSON *result = NULL;
        if ((r = call(method, NULL, &result)) != 0)
                return r;
        puts(done);
        return 0;
}

static int cmd_sign_out(int argc, char *argv[]) {
        return simple_call(argc, argv, "session.sign_out", "signed out");
}

static int cmd_refresh(int argc, char *argv[]) {
        return simple_call(argc, argv, "settings.refresh", "fetching settings");
}

static const Command commands[] = {
        { "keygen", "keygen [--type ed25519|p256] --out PREFIX\n"
                    "  Writes PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM); prints the key id.",
          cmd_keygen },
        { "root", "root init [--version N] --threshold N --key A.pub [--key B.pub ...] --sign A.key [--sign ...] [--org ORG ...]\n"
                  "  Prints a trust root envelope listing the --key public keys, signed with each --sign key.\n"
                  "  Each --org names an organisation whose settings a VM pinned to another one still takes.\n"
                  "  Version N+1 must also be signed by a threshold of version N's keys.",
          cmd_root },
        { "sign", "sign --key A.key [--key B.key ...] --org ORG --serial N (--expires RFC3339 | --valid-for 30d) SETTINGS.json\n"
                  "  Checks SETTINGS.json (admin-settings.json) and prints a signed settings bundle.",
          cmd_sign },
        { "verify", "verify --root ROOT.json [--org ORG] [--state-dir DIR] [--commit] BUNDLE.json\n"
                    "  Prints the effective settings as JSON, or 'stockadectl: rejected: REASON' and exits 1.\n"
                    "  --state-dir applies rollback protection and root rotation rules; --commit records the\n"
                    "  bundle (and root) there as last-known-good.",
          cmd_verify },
        { "settings", "settings show --state-dir DIR [--user-settings FILE] [--json]\n"
                      "  Prints each effective setting with its source (admin-locked, admin-default, user, builtin).",
          cmd_settings },
        { "status", "status [--socket ADDR] [--json]\n"
                    "  Shows the agent's policy, session, locks and containers.",
          cmd_status },
        { "events", "events [--socket ADDR] [--json]\n"
                    "  Prints the agent's events as they happen, until interrupted.",
          cmd_events },
        { "push", "push [--socket ADDR] BUNDLE.json\n"
                  "  Sends a signed settings bundle to the agent.",
          cmd_push },
        { "sign-in", "sign-in [--socket ADDR] --org ORG --user USER --token-file FILE [--url URL]\n"
                     "  Signs in; the agent then fetches the organisation's settings over HTTPS.",
          cmd_sign_in },
        { "sign-out", "sign-out [--socket ADDR]\n"
                      "  Signs out; the last verified settings stay in force.",
          cmd_sign_out },
        { "refresh", "refresh [--socket ADDR]\n"
                     "  Fetches the settings now.",
          cmd_refresh },
};

static void help(FILE *f) {
        fprintf(f, "usage: stockadectl COMMAND [OPTIONS]\n\ncommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %s\n", commands[i].usage);
        fprintf(f, "\nOnline commands talk to the agent at --socket ADDR (default " DEFAULT_SOCKET ").\n"
                   "exit status: 0 success, 1 rejected or failed, 2 usage error\n");
}

static bool wants_help(int argc, char *argv[]) {
        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "--help") || streq(argv[i], "-h"))
                        return true;
        return false;
}

int main(int argc, char *argv[]) {
        if (argc >= 3 && streq(argv[1], "--socket")) {
                arg_socket = argv[2];
                argv[2] = argv[0];
                argc -= 2;
                argv += 2;
        }
        if (argc < 2)
                return help(stderr), EXIT_USAGE;
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return help(stdout), 0;

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(argv[1], commands[i].name))
                        continue;
                if (wants_help(argc - 1, argv + 1)) {
                        printf("usage: stockadectl %s\n", commands[i].usage);
                        return 0;
                }
                opterr = 1;
                return commands[i].run(argc - 1, argv + 1);
        }
        return usage_error("unknown command '%s'", argv[1]);
}
