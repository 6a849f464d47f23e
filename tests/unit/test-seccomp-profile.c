/* SPDX-License-Identifier: Apache-2.0 */
/* The seccomp allowlist made from engine profiles of every kind. Each result is read the
 * way runc 1.1.5 and libseccomp 2.5.4 load it: an unconditional rule of a syscall wins over
 * its conditional ones; a rule's conditions are ANDed unless an argument index repeats,
 * then ORed; otherwise the default action. */
#include "enforcer/seccomp-profile.h"
#include "test.h"

#define LISTENER "/run/stockade/seccomp.sock"
#define AF_INET_NUMBER 2
#define AF_VSOCK_NUMBER 40

/* The linux object for an engine profile (NULL: none, as for --privileged), narrowed. */
static cJSON *narrow(const char *profile, const char *listener) {
        cJSON *linux_obj = cJSON_CreateObject();
        ASSERT_TRUE(linux_obj);
        if (profile) {
                cJSON *p = cJSON_Parse(profile);
                ASSERT_TRUE(p);
                cJSON_AddItemToObject(linux_obj, "seccomp", p);
        }
        ASSERT_OK(seccomp_profile_narrow(linux_obj, listener, "c0ffee"));
        return linux_obj;
}

static bool condition_holds(const cJSON *c, const uint64_t *args) {
        uint64_t arg = args[(int) cJSON_GetObjectItem(c, "index")->valuedouble];
        uint64_t value = (uint64_t) cJSON_GetObjectItem(c, "value")->valuedouble;
        const cJSON *two = cJSON_GetObjectItem(c, "valueTwo");
        const char *op = json_get_string(c, "op");
        if (streq(op, "SCMP_CMP_EQ"))
                return arg == value;
        if (streq(op, "SCMP_CMP_NE"))
                return arg != value;
        if (streq(op, "SCMP_CMP_MASKED_EQ"))
                return (arg & value) == (uint64_t) two->valuedouble;
        fprintf(stderr, "unexpected op %s\n", op);
        abort();
}

static bool rule_matches(const cJSON *rule, const uint64_t *args) {
        const cJSON *c;
        int seen = 0, matched = 0, total = 0;
        bool repeats = false;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(rule, "args")) {
                int bit = 1 << (int) cJSON_GetObjectItem(c, "index")->valuedouble;
                repeats = repeats || (seen & bit);
                seen |= bit;
                total++;
                matched += condition_holds(c, args);
        }
        return repeats ? matched > 0 : matched == total;
}

static bool names(const cJSON *rule, const char *name) {
        const cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(rule, "names"))
                if (streq(n->valuestring, name))
                        return true;
        return false;
}

static const char *describe(const cJSON *object, const char *action_key, const char *errno_key) {
        static char out[64];
        const cJSON *e = cJSON_GetObjectItem(object, errno_key);
        const char *action = json_get_string(object, action_key);
        if (streq(action, "SCMP_ACT_ERRNO"))
                snprintf(out, sizeof(out), "ERRNO %d", e ? (int) e->valuedouble : 1);
        else
                snprintf(out, sizeof(out), "%s", action + strlen("SCMP_ACT_"));
        return out;
}

/* What the container gets for name(a0, a1): "ALLOW", "NOTIFY", "ERRNO 1", ... */
static const char *verdict(const cJSON *linux_obj, const char *name, uint64_t a0, uint64_t a1) {
        const cJSON *seccomp = cJSON_GetObjectItem(linux_obj, "seccomp"), *rule, *conditional = NULL;
        uint64_t args[6] = { a0, a1 };
        cJSON_ArrayForEach(rule, cJSON_GetObjectItem(seccomp, "syscalls")) {
                if (!names(rule, name))
                        continue;
                if (cJSON_GetArraySize(cJSON_GetObjectItem(rule, "args")) == 0)
                        return describe(rule, "action", "errnoRet");
                if (!conditional && rule_matches(rule, args))
                        conditional = rule;
        }
        if (conditional)
                return describe(conditional, "action", "errnoRet");
        return describe(seccomp, "defaultAction", "defaultErrnoRet");
}

static const char *listener_of(const cJSON *linux_obj) {
        return json_get_string(cJSON_GetObjectItem(linux_obj, "seccomp"), "listenerPath");
}

typedef struct Verdict {
        const char *name;
        uint64_t a0, a1;
        const char *want;
} Verdict;

static void assert_verdicts(const cJSON *linux_obj, const Verdict *v, size_t n, int line) {
        for (size_t i = 0; i < n; i++) {
                const char *got = verdict(linux_obj, v[i].name, v[i].a0, v[i].a1);
                if (!streq(got, v[i].want)) {
                        fprintf(stderr, "%s:%d: %s(%" PRIu64 ", %" PRIu64 "): %s, expected %s\n", __FILE__, line, v[i].name,
                                v[i].a0, v[i].a1, got, v[i].want);
                        abort();
                }
        }
}
#define ASSERT_VERDICTS(linux_obj, ...)                                                          \
        do {                                                                                     \
                const Verdict _v[] = { __VA_ARGS__ };                                            \
                assert_verdicts(linux_obj, _v, ELEMENTSOF(_v), __LINE__);                        \
        } while (0)

static void assert_stockade_rules(const cJSON *linux_obj, const char *allowed) {
        /* Refused by the agent, which reports them (EPERM; the keyring and the new mount API ENOSYS). */
        static const char *const reported[] = { "keyctl", "add_key", "request_key", "init_module", "finit_module",
                                                "delete_module", "kexec_load", "kexec_file_load", "bpf",
                                                "open_by_handle_at", "fsopen", "fsconfig", "fsmount", "fspick",
                                                "move_mount", "open_tree", "mount_setattr", "open_tree_attr" };
        static const char *const eperm[] = { "io_uring_setup", "io_uring_enter", "io_uring_register" };
        static const char *const vetted[] = { "mount", "umount2", "mknod", "mknodat" };
        for (size_t i = 0; i < ELEMENTSOF(reported); i++)
                ASSERT_VERDICTS(linux_obj, { reported[i], 0, 0, "NOTIFY" });
        for (size_t i = 0; i < ELEMENTSOF(eperm); i++)
                ASSERT_VERDICTS(linux_obj, { eperm[i], 0, 0, "ERRNO 1" });
        for (size_t i = 0; i < ELEMENTSOF(vetted); i++)
                ASSERT_VERDICTS(linux_obj, { vetted[i], 0, 0, "NOTIFY" });
        ASSERT_VERDICTS(linux_obj, { "socket", AF_VSOCK_NUMBER, 1, "NOTIFY" },
                        { "socket", AF_INET_NUMBER, 1, allowed },
                        { "read", 0, 0, allowed },
                        /* Not named by Stockade: refused. */
                        { "sysfs", 0, 0, "ERRNO 1" },
                        { "umount", 0, 0, "ERRNO 1" });

        const cJSON *seccomp = cJSON_GetObjectItem(linux_obj, "seccomp");
        ASSERT_STREQ(listener_of(linux_obj), LISTENER);
        ASSERT_STREQ(json_get_string(seccomp, "listenerMetadata"), "c0ffee");
        const cJSON *arches = cJSON_GetObjectItem(seccomp, "architectures");
        ASSERT_EQ(cJSON_GetArraySize(arches), 1);
        ASSERT_STREQ(arches->child->valuestring, "SCMP_ARCH_X86_64");
}

TEST(default_allow_profile) {
        _cleanup_json_ cJSON *l = narrow("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": "
                                         "[\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\"]}", LISTENER);
        assert_stockade_rules(l, "ALLOW");
        ASSERT_STREQ(json_get_string(cJSON_GetObjectItem(l, "seccomp"), "defaultAction"), "SCMP_ACT_ERRNO");
}

TEST(default_log_profile_keeps_every_stockade_rule) {
        _cleanup_json_ cJSON *l = narrow("{\"defaultAction\": \"SCMP_ACT_LOG\"}", LISTENER);
        assert_stockade_rules(l, "LOG");
}

TEST(default_trace_and_errno_profiles) {
        _cleanup_json_ cJSON *trace = narrow("{\"defaultAction\": \"SCMP_ACT_TRACE\"}", LISTENER);
        assert_stockade_rules(trace, "TRACE");
        /* A denying default stays, with its errno; only what the engine allowed is allowed. */
        _cleanup_json_ cJSON *l = narrow("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38, \"syscalls\": ["
                                         "{\"names\": [\"read\", \"socket\", \"mount\", \"io_uring_setup\", \"sysfs\"], "
                                         "\"action\": \"SCMP_ACT_ALLOW\"}]}", LISTENER);
        ASSERT_VERDICTS(l, { "read", 0, 0, "ALLOW" },
                        { "write", 0, 0, "ERRNO 38" },
                        { "mount", 0, 0, "NOTIFY" },
                        { "umount2", 0, 0, "ERRNO 38" },
                        { "io_uring_setup", 0, 0, "ERRNO 1" },
                        { "sysfs", 0, 0, "ERRNO 38" },
                        { "socket", AF_INET_NUMBER, 1, "ALLOW" },
                        { "socket", AF_VSOCK_NUMBER, 1, "NOTIFY" });
}

TEST(denials_stay_denied_whatever_their_action) {
        _cleanup_json_ cJSON *l = narrow("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                                         "{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ERRNO\"},"
                                         "{\"names\": [\"socket\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 13},"
                                         "{\"names\": [\"keyctl\", \"read\"], \"action\": \"SCMP_ACT_KILL_PROCESS\"},"
                                         "{\"names\": [\"umount2\"], \"action\": \"SCMP_ACT_TRAP\"},"
                                         "{\"names\": [\"mknod\", \"mknodat\"], \"action\": \"SCMP_ACT_KILL\"},"
                                         "{\"names\": [\"mount\", \"socket\", \"read\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
                                         LISTENER);
        ASSERT_VERDICTS(l, { "mount", 0, 0, "ERRNO 1" },
                        { "socket", AF_INET_NUMBER, 1, "ERRNO 13" },
                        { "socket", AF_VSOCK_NUMBER, 1, "ERRNO 13" },
                        { "keyctl", 0, 0, "KILL_PROCESS" },
                        { "read", 0, 0, "KILL_PROCESS" },
                        { "umount2", 0, 0, "TRAP" },
                        { "mknod", 0, 0, "KILL" },
                        { "write", 0, 0, "ALLOW" });
        /* Nothing is vetted, but the refusals go through the agent: a listener all the same. */
        ASSERT_STREQ(listener_of(l), LISTENER);
}

TEST(actions_runc_may_not_know_deny) {
        _cleanup_json_ cJSON *l = narrow("{\"defaultAction\": \"SCMP_ACT_BOGUS\", \"syscalls\": ["
                                         "{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"},"
                                         "{\"names\": [\"chmod\"]},"
                                         "{\"names\": [\"chown\"], \"action\": \"SCMP_ACT_BOGUS\", \"errnoRet\": 5},"
                                         "{\"names\": [\"write\"], \"args\": [{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                                         LISTENER);
        ASSERT_VERDICTS(l, { "read", 0, 0, "ALLOW" },
                        { "chmod", 0, 0, "ERRNO 1" },
                        { "chown", 0, 0, "ERRNO 1" },
                        { "write", 1, 0, "ERRNO 1" },
                        { "write", 2, 0, "ERRNO 1" });
        _cleanup_json_ cJSON *kill = narrow("{\"defaultAction\": \"SCMP_ACT_KILL_PROCESS\"}", LISTENER);
        ASSERT_VERDICTS(kill, { "read", 0, 0, "KILL_PROCESS" },
                        { "socket", AF_VSOCK_NUMBER, 1, "NOTIFY" });
        ASSERT_STREQ(listener_of(l), LISTENER);
}

TEST(argument_filters_kept) {
        _cleanup_json_ cJSON *l = narrow(
                "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
                "{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"clone\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 2114060288, \"valueTwo\": 0, \"op\": \"SCMP_CMP_MASKED_EQ\"}]},"
                "{\"names\": [\"socket\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 1, \"value\": 2, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"socket\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 10, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"socket\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"},"
                "                                                               {\"index\": 1, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"},"
                "                                                               {\"index\": 1, \"value\": 5, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"socket\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 97, \"args\": [{\"index\": 0, \"value\": 17, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 3, \"value\": 4096, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                LISTENER);
        ASSERT_VERDICTS(l, { "personality", 8, 0, "ALLOW" },
                        { "personality", 9, 0, "ERRNO 1" },
                        { "clone", 0x11, 0, "ALLOW" },
                        { "clone", 0x10000000, 0, "ERRNO 1" });
        /* socket(_, SOCK_DGRAM) now leaves AF_VSOCK out. */
        ASSERT_VERDICTS(l, { "socket", AF_INET_NUMBER, 2, "ALLOW" },
                        { "socket", AF_VSOCK_NUMBER, 2, "NOTIFY" },
                        { "socket", 10, 1, "ALLOW" });
        /* A rule runc would split into ORed conditions, one of them any family: dropped. */
        ASSERT_VERDICTS(l, { "socket", AF_VSOCK_NUMBER, 5, "NOTIFY" },
                        { "socket", 17, 3, "ERRNO 97" },
                        { "mount", 0, 0, "ERRNO 1" });
        uint64_t bind_args[6] = { 0, 0, 0, 4096 };
        const cJSON *rule;
        bool trapped = false;
        cJSON_ArrayForEach(rule, cJSON_GetObjectItem(cJSON_GetObjectItem(l, "seccomp"), "syscalls"))
                trapped = trapped || (names(rule, "mount") && rule_matches(rule, bind_args) &&
                                      streq(json_get_string(rule, "action"), "SCMP_ACT_NOTIFY"));
        ASSERT_TRUE(trapped);
}

TEST(no_profile_privileged) {
        _cleanup_json_ cJSON *l = narrow(NULL, LISTENER);
        assert_stockade_rules(l, "ALLOW");
        ASSERT_VERDICTS(l, { "unshare", 0, 0, "ALLOW" },
                        { "setns", 0, 0, "ALLOW" },
                        { "pivot_root", 0, 0, "NOTIFY" });
        /* Without the agent's listener nothing is trapped. */
        _cleanup_json_ cJSON *bare = narrow(NULL, NULL);
        ASSERT_VERDICTS(bare, { "mount", 0, 0, "ALLOW" },
                        { "pivot_root", 0, 0, "ALLOW" },
                        { "io_uring_enter", 0, 0, "ERRNO 1" },
                        { "keyctl", 0, 0, "ERRNO 38" },
                        { "fsopen", 0, 0, "ERRNO 38" },
                        { "socket", AF_VSOCK_NUMBER, 1, "ERRNO 1" });
        ASSERT_TRUE(!listener_of(bare));
}

TEST(unknown_architectures_and_the_engine_listener) {
        _cleanup_json_ cJSON *l = narrow("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"],"
                                         "\"architectures\": [\"SCMP_ARCH_PPC64LE\", \"SCMP_ARCH_X86\", \"SCMP_ARCH_NONSENSE\"],"
                                         "\"listenerPath\": \"/engine.sock\", \"listenerMetadata\": \"engine\","
                                         "\"syscalls\": [{\"names\": [\"chmod\"], \"action\": \"SCMP_ACT_NOTIFY\"},"
                                         "               {\"names\": [\"chown\"], \"action\": \"SCMP_ACT_NOTIFY\", \"args\": "
                                         "                [{\"index\": 1, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                                         LISTENER);
        assert_stockade_rules(l, "ALLOW");
        /* The engine's listener is not asked: what it would have decided is refused. */
        ASSERT_VERDICTS(l, { "chmod", 0, 0, "ERRNO 1" },
                        { "chown", 0, 0, "ERRNO 1" });
        const cJSON *flags = cJSON_GetObjectItem(cJSON_GetObjectItem(l, "seccomp"), "flags");
        ASSERT_STREQ(cJSON_GetArrayItem(flags, 0)->valuestring, "SECCOMP_FILTER_FLAG_LOG");
}

/* A user's profile (--security-opt seccomp=FILE) reaches stockade-runc, which runs as root.
 * A conditional rule naming syscalls again and again gets one copy per syscall, each with
 * that syscall alone: it was one copy per name, each with every name, which kept the runtime
 * busy for minutes with a 2 MB profile. */
TEST(a_name_repeated_is_copied_once) {
        enum { NAMES = 20000 };
        static const char *const repeated[] = { "read", "write", "personality", "socket" };
        _cleanup_json_ cJSON *profile = cJSON_Parse("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [],"
                                                    "\"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 1, \"value\": 1,"
                                                    "\"op\": \"SCMP_CMP_EQ\"}]}]}");
        ASSERT_TRUE(profile);
        cJSON *list = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(profile, "syscalls"), 0), "names");
        for (size_t i = 0; i < NAMES; i++)
                ASSERT_TRUE(cJSON_AddItemToArray(list, cJSON_CreateString(repeated[i % ELEMENTSOF(repeated)])));
        _cleanup_free_ char *text = cJSON_PrintUnformatted(profile);
        ASSERT_TRUE(text);
        _cleanup_json_ cJSON *l = narrow(text, LISTENER);
        ASSERT_VERDICTS(l, { "read", 0, 1, "ALLOW" },
                        { "read", 0, 2, "ERRNO 1" },
                        { "socket", AF_INET_NUMBER, 1, "ALLOW" },
                        { "socket", AF_VSOCK_NUMBER, 1, "NOTIFY" });
        const cJSON *rule;
        size_t copies = 0;
        cJSON_ArrayForEach(rule, cJSON_GetObjectItem(cJSON_GetObjectItem(l, "seccomp"), "syscalls")) {
                ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItem(rule, "names")) <= 400);
                copies += names(rule, "read") || names(rule, "write");
        }
        ASSERT_TRUE(copies == 2);
}
