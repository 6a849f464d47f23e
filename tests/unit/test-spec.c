/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI spec rewrite on specs captured from Docker 20.10 (tests/data/specs/NAME.json)
 * against golden results (NAME.expected.json). The engine's paths are moved into the
 * test's directory so that the checks on real files run here; STOCKADE_UPDATE_GOLDEN=1
 * rewrites the golden files. */
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "enforcer/spec.h"
#include "test.h"
#include "util.h"

#define CAPS_WITHOUT_SYS_RESOURCE (UINT64_C(0x1fffeffffff))

typedef struct Case {
        char *text;      /* the captured spec with the engine's paths moved */
        char id[80];     /* the container id, from its resolv.conf path */
        char tmp[128];
} Case;

static char *replace_all(const char *text, const char *from, const char *to) {
        size_t nf = strlen(from), nt = strlen(to), count = 0;
        for (const char *p = strstr(text, from); p; p = strstr(p + nf, from))
                count++;
        char *out = malloc(strlen(text) + count * (nt + 1) + 1), *o = out;
        ASSERT_TRUE(out);
        for (const char *p = text;;) {
                const char *hit = strstr(p, from);
                if (!hit) {
                        strcpy(o, p);
                        break;
                }
                memcpy(o, p, (size_t) (hit - p));
                o += hit - p;
                memcpy(o, to, nt);
                o += nt;
                p = hit + nf;
        }
        return out;
}

static void touch(const char *dir, const char *name) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        close(fd);
}

static void make_dirs(const char *path) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        (void) mkdir(buf, 0755);
                        *p = '/';
                }
        (void) mkdir(buf, 0755);
}

static void case_load(Case *c, const char *name) {
        char path[256], engine[256], containers[512];
        snprintf(path, sizeof(path), "%s/tests/data/specs/%s.json", getenv("STOCKADE_TOP") ?: ".", name);
        _cleanup_free_ char *raw = NULL;
        ASSERT_OK(read_full_file(AT_FDCWD, path, SPEC_MAX_SIZE, &raw, NULL));
        snprintf(c->tmp, sizeof(c->tmp), "%s", test_tmpdir());

        const char *at = strstr(raw, "/var/lib/docker/containers/");
        ASSERT_TRUE(at);
        at += strlen("/var/lib/docker/containers/");
        snprintf(c->id, sizeof(c->id), "%.64s", at);

        snprintf(engine, sizeof(engine), "%s/engine", c->tmp);
        snprintf(containers, sizeof(containers), "%s/containers/%s", engine, c->id);
        make_dirs(containers);
        touch(containers, "resolv.conf");
        touch(containers, "hostname");
        touch(containers, "hosts");
        snprintf(path, sizeof(path), "%s/srv/data", c->tmp);
        make_dirs(path);

        _cleanup_free_ char *a = replace_all(raw, "/var/lib/docker", engine);
        _cleanup_free_ char *b = replace_all(a, "/srv/data", path);
        c->text = replace_all(b, "/var/run/docker/netns/default", "/proc/self/ns/net");
        cJSON *spec = cJSON_Parse(c->text);
        make_dirs(json_get_string(cJSON_GetObjectItem(spec, "root"), "path"));
        cJSON_Delete(spec);
}

/* Every user namespace maps the range at owner_base, or none (0). */
static uint32_t owner_base;

static int userns_base_stub(void *userdata, int userns_fd, uint32_t *ret_base) {
        if (!owner_base)
                return -ENOENT;
        *ret_base = owner_base;
        return 0;
}

static SpecPolicy policy_for(const Case *c, const char *const *restricted, size_t n) {
        static char engine[256], share[256];
        static const char *storage[1], *shares[1], *hooks[] = { "/bin/true" };
        static cJSON *containers;
        /* As the agent tells a container that shares the range of "other". */
        if (!containers)
                containers = cJSON_Parse("[{\"id\": \"other\", \"uid_base\": 165536}, {\"id\": \"third\", \"uid_base\": 231072}]");
        snprintf(engine, sizeof(engine), "%s/engine", c->tmp);
        snprintf(share, sizeof(share), "%s/srv", c->tmp);
        storage[0] = engine, shares[0] = share;
        return (SpecPolicy) {
                .container_id = c->id,
                .base = 165536,
                .count = 65536,
                .cap_bound = CAPS_WITHOUT_SYS_RESOURCE,
                .restricted = restricted,
                .n_restricted = n,
                .shares = shares,
                .n_shares = 1,
                .storage = storage,
                .n_storage = 1,
                .hooks = hooks,
                .n_hooks = 1,
                .userns_base = userns_base_stub,
                .containers = containers,
                .engine_root = engine,
                .engine_socket = "/nonexistent/docker.sock",
                .proc_root = "/proc",
                .listener_path = "/run/stockade/seccomp.sock",
                .listener_metadata = c->id,
        };
}

/* Rewrites the case; returns the error text or NULL, and the result in *ret_json. */
static char *rewrite(const Case *c, const SpecPolicy *p, cJSON **ret_json, SpecBinds *binds) {
        cJSON *spec = cJSON_Parse(c->text);
        ASSERT_TRUE(spec);
        char *why = NULL;
        spec_binds_done(binds);
        if (spec_rewrite(spec, p, binds, &why) < 0) {
                cJSON_Delete(spec);
                ASSERT_TRUE(why);
                return why;
        }
        *ret_json = spec;
        return NULL;
}

static void check_golden(const char *name) {
        Case c = {};
        case_load(&c, name);
        char engine[256];
        snprintf(engine, sizeof(engine), "%s/engine", c.tmp);
        const char *restricted[] = { "/etc/docker", engine };
        SpecPolicy p = policy_for(&c, restricted, ELEMENTSOF(restricted));
        cJSON *out = NULL;
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        _cleanup_free_ char *why = rewrite(&c, &p, &out, &binds);
        if (why)
                fprintf(stderr, "%s: %s\n", name, why);
        ASSERT_TRUE(!why);

        _cleanup_free_ char *printed = cJSON_Print(out);
        _cleanup_free_ char *portable = replace_all(printed, c.tmp, "@TMP@");
        char path[256];
        snprintf(path, sizeof(path), "%s/tests/data/specs/%s.expected.json", getenv("STOCKADE_TOP") ?: ".", name);
        if (getenv("STOCKADE_UPDATE_GOLDEN")) {
                FILE *f = fopen(path, "we");
                ASSERT_TRUE(f);
                fprintf(f, "%s\n", portable);
                fclose(f);
        }
        _cleanup_free_ char *golden = NULL;
        ASSERT_OK(read_full_file(AT_FDCWD, path, SPEC_MAX_SIZE, &golden, NULL));
        cJSON *want = cJSON_Parse(golden), *got = cJSON_Parse(portable);
        /* Names the parts that differ (STOCKADE_UPDATE_GOLDEN=1 and git diff show how). */
        const cJSON *w;
        cJSON_ArrayForEach(w, want) {
                const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string), *wl;
                if (streq(w->string, "linux")) {
                        cJSON_ArrayForEach(wl, w)
                                if (!cJSON_Compare(wl, cJSON_GetObjectItemCaseSensitive(g, wl->string), true))
                                        fprintf(stderr, "%s: linux.%s differs from %s\n", name, wl->string, path);
                } else if (!cJSON_Compare(w, g, true))
                        fprintf(stderr, "%s: %s differs from %s\n", name, w->string, path);
        }
        ASSERT_TRUE(cJSON_Compare(want, got, true));
        cJSON_Delete(want), cJSON_Delete(got), cJSON_Delete(out);
        free(c.text);
}

TEST(golden_plain) {
        check_golden("plain");
}

TEST(golden_privileged) {
        check_golden("privileged");
}

TEST(golden_volume) {
        check_golden("volume");
}

/* Loads case name, edited by edit (if any), and rewrites it with /etc/docker restricted:
 * the refusal's text. */

/* As refusal_of(), with the result in *ret_json and *binds when it is not refused. */
static char *rewrite_edited(Case *c, const char *name, void (*edit)(cJSON *spec), cJSON **ret_json, SpecBinds *binds) {
        case_load(c, name);
        if (edit) {
                cJSON *spec = cJSON_Parse(c->text);
                edit(spec);
                free(c->text);
                c->text = cJSON_PrintUnformatted(spec);
                cJSON_Delete(spec);
        }
        const char *restricted[] = { "/etc/docker" };
        SpecPolicy p = policy_for(c, restricted, 1);
        return rewrite(c, &p, ret_json, binds);
}

static char *refusal_of(Case *c, const char *name, void (*edit)(cJSON *spec)) {
        cJSON *out = NULL;
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        char *why = rewrite_edited(c, name, edit, &out, &binds);
        cJSON_Delete(why ? NULL : out);
        return why;
}

static void assert_refused(const char *name, void (*edit)(cJSON *spec), const char *reason) {
        Case c = {};
        _cleanup_free_ char *why = refusal_of(&c, name, edit);
        ASSERT_STREQ(why, reason);
        free(c.text);
}

TEST(network_host_refused) {
        assert_refused("network-host", NULL, "stockade: containers can't share the network namespace with the VM");
}

static void drop_pid_namespace(cJSON *spec) {
        cJSON *ns = cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "linux"), "namespaces"), *n, *next;
        for (n = ns->child; n; n = next) {
                next = n->next;
                if (streq(json_get_string(n, "type"), "pid"))
                        cJSON_Delete(cJSON_DetachItemViaPointer(ns, n));
        }
}

TEST(missing_namespace_refused) {
        assert_refused("plain", drop_pid_namespace, "stockade: containers can't share the pid namespace with the VM");
}

static void bind_etc(cJSON *spec) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "destination", "/x");
        cJSON_AddStringToObject(m, "type", "bind");
        cJSON_AddStringToObject(m, "source", "/etc");
        cJSON_AddItemToArray(cJSON_GetObjectItem(spec, "mounts"), m);
}

static void bind_root(cJSON *spec) {
        bind_etc(spec);
        cJSON *mounts = cJSON_GetObjectItem(spec, "mounts");
        cJSON *m = cJSON_GetArrayItem(mounts, cJSON_GetArraySize(mounts) - 1);
        cJSON_ReplaceItemInObject(m, "source", cJSON_CreateString("/"));
}

static void high_uid(cJSON *spec) {
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "process"), "user"), "uid", cJSON_CreateNumber(70000));
}

TEST(restricted_binds_refused) {
        assert_refused("plain", bind_etc, "stockade: can't mount /etc: restricted VM path");
        assert_refused("plain", bind_root, "stockade: can't mount /: restricted VM path");
        assert_refused("plain", high_uid, "stockade: uid 70000 is outside the container's 65536 ids");
}

/* A bind of alias_source: another name a test gives to a restricted directory. */
static char alias_source[512];

static void bind_alias(cJSON *spec) {
        bind_etc(spec);
        cJSON *mounts = cJSON_GetObjectItem(spec, "mounts");
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(mounts, cJSON_GetArraySize(mounts) - 1), "source",
                                  cJSON_CreateString(alias_source));
}

TEST(bind_alias_of_restricted_dir_refused) {
        /* A "volume" below the engine's root that is a bind mount of /etc (as
         * "docker volume create -o type=none -o o=bind -o device=/etc" makes). */
        if (geteuid() != 0)
                test_skip("needs root for the bind mount");
        ASSERT_OK(RET_NERRNO(unshare(CLONE_NEWNS)));
        ASSERT_OK(RET_NERRNO(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)));
        snprintf(alias_source, sizeof(alias_source), "%s/engine/volumes/etcvol/_data", test_tmpdir());
        make_dirs(alias_source);
        ASSERT_OK(RET_NERRNO(mount("/etc", alias_source, NULL, MS_BIND, NULL)));

        Case c = {};
        _cleanup_free_ char *why = refusal_of(&c, "plain", bind_alias);
        char want[600];
        snprintf(want, sizeof(want), "stockade: can't mount %s: restricted VM path", alias_source);
        ASSERT_STREQ(why, want);
        (void) umount2(alias_source, MNT_DETACH);
        free(c.text);
}

TEST(bind_sources_only_from_host_shares) {
        Case c = {};
        case_load(&c, "volume");
        char other[256];
        snprintf(other, sizeof(other), "%s/elsewhere", c.tmp);
        make_dirs(other);
        const char *restricted[] = { "/etc/docker" };
        SpecPolicy p = policy_for(&c, restricted, 1);
        cJSON *out = NULL;
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;

        _cleanup_free_ char *ok = rewrite(&c, &p, &out, &binds);
        ASSERT_TRUE(!ok);
        ASSERT_EQ(binds.n, 4); /* resolv.conf, hostname, hosts (the engine's own) and the volume */
        for (size_t i = 0; i < binds.n; i++)
                ASSERT_TRUE(binds.binds[i].fd >= 0);
        ASSERT_TRUE(binds.root_fd >= 0);
        cJSON_Delete(out);

        const char *elsewhere[] = { other };
        p.shares = elsewhere;
        _cleanup_free_ char *why = rewrite(&c, &p, &out, &binds);
        ASSERT_CONTAINS(why, "srv/data: restricted VM path");
        free(c.text);
}

TEST(symlink_in_a_share_is_what_it_points_to) {
        /* A link inside the share to /etc is /etc. */
        Case c = {};
        case_load(&c, "plain");
        char share[300];
        snprintf(share, sizeof(share), "%s/srv", c.tmp);
        make_dirs(share);
        snprintf(alias_source, sizeof(alias_source), "%s/link", share);
        ASSERT_OK(RET_NERRNO(symlink("/etc", alias_source)));
        free(c.text);
        _cleanup_free_ char *why = refusal_of(&c, "plain", bind_alias);
        char want[600];
        snprintf(want, sizeof(want), "stockade: can't mount %s: restricted VM path", alias_source);
        ASSERT_STREQ(why, want);
        free(c.text);
}

static void add_hook(cJSON *spec) {
        cJSON_ReplaceItemInObject(spec, "hooks", cJSON_Parse("{\"prestart\": [{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"id\"]}]}"));
}

static void add_allowed_hook(cJSON *spec) {
        cJSON_ReplaceItemInObject(spec, "hooks", cJSON_Parse("{\"prestart\": [{\"path\": \"/bin/true\"}]}"));
}

static void add_annotation(cJSON *spec) {
        cJSON_AddItemToObject(spec, "annotations", cJSON_Parse("{\"org.systemd.property.ExecStartPre\": \"/bin/sh\"}"));
}

static void root_is_vm_root(cJSON *spec) {
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(spec, "root"), "path", cJSON_CreateString("/"));
}

static void root_outside_storage(cJSON *spec) {
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(spec, "root"), "path", cJSON_CreateString("/usr"));
}

static void join_namespace(cJSON *spec, const char *type, const char *path) {
        cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "linux"), "namespaces"))
                if (streq(json_get_string(n, "type"), type))
                        cJSON_AddStringToObject(n, "path", path);
}

static char foreign_netns[64];

static void foreign_network(cJSON *spec) {
        join_namespace(spec, "network", foreign_netns);
}

static void vm_mount_namespace(cJSON *spec) {
        join_namespace(spec, "mount", "/proc/self/ns/mnt");
}

static void device_mount(cJSON *spec) {
        cJSON_AddItemToArray(cJSON_GetObjectItem(spec, "mounts"),
                             cJSON_Parse("{\"destination\": \"/disk\", \"type\": \"ext4\", \"source\": \"/dev/vda\"}"));
}

TEST(fields_refused_with_their_reason) {
        assert_refused("plain", add_hook,
                       "stockade: hook '/bin/sh' is not allowed: hooks run as VM root outside the container ('hooks' in stockaded.json lists those that may)");
        assert_refused("plain", add_annotation,
                       "stockade: annotation 'org.systemd.property.ExecStartPre' is not allowed: runtimes act on annotations outside the container");
        assert_refused("plain", root_is_vm_root, "stockade: the root filesystem '/' is not an engine's container storage");
        assert_refused("plain", root_outside_storage, "stockade: the root filesystem '/usr' is not an engine's container storage");
        assert_refused("plain", vm_mount_namespace, "stockade: containers can't join the mount namespace '/proc/self/ns/mnt'");
        assert_refused("plain", device_mount,
                       "stockade: can't mount /dev/vda (ext4): containers mount only binds and proc, sysfs, tmpfs, devpts, mqueue and cgroup file systems");

        Case c = {};
        _cleanup_free_ char *ok = refusal_of(&c, "plain", add_allowed_hook);
        ASSERT_TRUE(!ok);
        free(c.text);
}

static int ambiguous(const char *text) {
        _cleanup_json_ cJSON *json = cJSON_Parse(text);
        ASSERT_TRUE(json);
        const char *key = NULL;
        return spec_ambiguous_key(json, &key);
}

static void add_second_linux(cJSON *spec) {
        cJSON_AddItemToObject(spec, "linux", cJSON_CreateObject());
}

/* runc (Go) takes the last of keys that match alike, in either case, with Kelvin sign and
 * long s for k and s; cJSON the first: each would let one value be checked and another used. */
TEST(keys_runc_reads_otherwise_refused) {
        static const char *const twice[] = {
                "{\"linux\": {}, \"Linux\": {}}",
                "{\"seccomp\": {\"syscalls\": [{\"names\": [\"x\"], \"action\": \"A\", \"action\": \"B\"}]}}",
                "{\"mounts\": [{\"destination\\u0000\": \"/ok\", \"destination\": \"/etc\"}]}",
                "{\"namespaces\": [], \"namespace\\u017f\": []}",
                "{\"\\u212aey\": 1, \"key\": 2}",
        };
        for (size_t i = 0; i < ELEMENTSOF(twice); i++)
                ASSERT_EQ(ambiguous(twice[i]), 1);
        ASSERT_EQ(ambiguous("{\"a\": 1, \"ab\": {\"b\": [{\"a\": 1}, {\"a\": 2}]}, \"annotations\": {\"x\": \"k\", \"y\": \"s\"}}"), 0);
        assert_refused("plain", add_second_linux, "stockade: config.json names 'linux' twice in one object");
}

/* A child that unshares first, then then (0: nothing) and stays until *ret_hold is
 * closed; returned once its namespace ns is no longer ours. */
static pid_t namespace_child(int first, int then, const char *ns, int *ret_hold) {
        int pipe_fds[2];
        ASSERT_OK(RET_NERRNO(pipe(pipe_fds)));
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                char c;
                close(pipe_fds[1]);
                _exit(unshare(first) < 0 || (then && unshare(then) < 0) || read(pipe_fds[0], &c, 1) < 0);
        }
        close(pipe_fds[0]);
        char path[64], ours[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, ns);
        snprintf(ours, sizeof(ours), "/proc/self/ns/%s", ns);
        for (int i = 0; i < 100; i++) {
                struct stat a, b;
                if (stat(path, &a) == 0 && stat(ours, &b) == 0 && a.st_ino != b.st_ino)
                        break;
                usleep(10000);
        }
        *ret_hold = pipe_fds[1];
        return pid;
}

TEST(namespace_paths_only_of_stockade_containers) {
        if (geteuid() != 0)
                test_skip("needs root for a network namespace");
        int hold;
        pid_t pid = namespace_child(CLONE_NEWNET, 0, "net", &hold);
        snprintf(foreign_netns, sizeof(foreign_netns), "/proc/%d/ns/net", (int) pid);

        char want[200];
        snprintf(want, sizeof(want), "stockade: can't join the network namespace '%s': it is not a Stockade container's", foreign_netns);
        assert_refused("plain", foreign_network, want);

        /* A namespace in the range of "other", which the agent gave this container too:
         * joined, and its user namespace with it (pinned by the caller; the maps stay,
         * as runc 1.1.5 wants them). */
        owner_base = 165536;
        Case c = {};
        cJSON *out = NULL;
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        _cleanup_free_ char *ok = rewrite_edited(&c, "plain", foreign_network, &out, &binds);
        ASSERT_TRUE(!ok);
        ASSERT_EQ(binds.n_joins, 2);
        ASSERT_STREQ(binds.joins[0].type, "network");
        ASSERT_STREQ(binds.joins[1].type, "user");
        struct stat joined, vm_user;
        ASSERT_OK(RET_NERRNO(fstat(binds.joins[1].fd, &joined)));
        ASSERT_OK(RET_NERRNO(stat("/proc/self/ns/user", &vm_user)));
        ASSERT_EQ(joined.st_ino, vm_user.st_ino);
        const cJSON *linux_obj = cJSON_GetObjectItem(out, "linux"), *n;
        int users = 0;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(linux_obj, "namespaces"))
                users += streq(json_get_string(n, "type"), "user");
        ASSERT_EQ(users, 1);
        ASSERT_TRUE(json_is_int(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(linux_obj, "uidMappings"), 0), "hostID"), 165536, 165536));
        cJSON_Delete(out);
        free(c.text);

        /* A Stockade container's, but of a range this container was not given. */
        owner_base = 231072;
        assert_refused("plain", foreign_network,
                       "stockade: can't join the network namespace of container 'third': this container was not given its uid range 231072");
        owner_base = 0;
        close(hold);
        waitpid(pid, NULL, 0);
}

static char child_ns[2][64];   /* a network namespace of the VM's user namespace, an IPC namespace of another */
static char bind_source[512];

static void join_child_network(cJSON *spec) {
        join_namespace(spec, "network", child_ns[0]);
}

static void join_child_network_and_ipc(cJSON *spec) {
        join_namespace(spec, "network", child_ns[0]);
        join_namespace(spec, "ipc", child_ns[1]);
}

static void add_bind(cJSON *spec) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "destination", "/x");
        cJSON_AddStringToObject(m, "type", "bind");
        cJSON_AddStringToObject(m, "source", bind_source);
        cJSON_AddItemToArray(cJSON_GetObjectItem(spec, "mounts"), m);
}

static void join_child_network_and_bind(cJSON *spec) {
        join_child_network(spec);
        add_bind(spec);
}

/* The engine's files of another container, made in the cases' engine directory. */
static void container_file(const char *id) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/engine/containers/%s", test_tmpdir(), id);
        make_dirs(dir);
        touch(dir, "hosts");
        snprintf(bind_source, sizeof(bind_source), "%s/hosts", dir);
}

static int no_proxy(void *userdata, int *ret_fd, char **ret_reason) {
        *ret_reason = strdup("the agent said no");
        return -EPERM;
}

/* Rewrites case "plain" with a bind of bind_source, the engine socket at engine_socket
 * (restricted, as the agent makes it) and an agent that refuses it: the refusal, NULL
 * when the spec passes. */
static char *refusal_with_engine_socket(const char *engine_socket) {
        Case c = {};
        case_load(&c, "plain");
        cJSON *spec = cJSON_Parse(c.text);
        add_bind(spec);
        const char *restricted[] = { "/etc/docker", engine_socket };
        SpecPolicy p = policy_for(&c, restricted, ELEMENTSOF(restricted));
        p.engine_socket = engine_socket;
        p.engine_socket_proxy = no_proxy;
        char *why = NULL;
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        if (spec_rewrite(spec, &p, &binds, &why) >= 0)
                ASSERT_TRUE(!why);
        cJSON_Delete(spec);
        free(c.text);
        return why;
}

TEST(engine_socket_and_the_directory_holding_it) {
        char dir[300], sock[340], link[340], want[800];
        snprintf(dir, sizeof(dir), "%s/srv/run", test_tmpdir());
        make_dirs(dir);
        snprintf(sock, sizeof(sock), "%s/docker.sock", dir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ASSERT_TRUE(strlen(sock) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, sock);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(RET_NERRNO(bind(fd, (struct sockaddr *) &sa, sizeof(sa))));

        /* The socket, by its name or through a link, is what the agent decides. */
        snprintf(link, sizeof(link), "%s/srv/link", test_tmpdir());
        ASSERT_OK(RET_NERRNO(symlink(sock, link)));
        const char *names[] = { sock, link };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                snprintf(bind_source, sizeof(bind_source), "%s", names[i]);
                _cleanup_free_ char *why = refusal_with_engine_socket(sock);
                snprintf(want, sizeof(want), "stockade: can't mount %s: the engine socket is only for the admin's allowed images (the agent said no)",
                         names[i]);
                ASSERT_STREQ(why, want);
        }
        /* Its directory, a share's directory, holds it: restricted. */
        snprintf(bind_source, sizeof(bind_source), "%s", dir);
        _cleanup_free_ char *why = refusal_with_engine_socket(sock);
        snprintf(want, sizeof(want), "stockade: can't mount %s: restricted VM path", dir);
        ASSERT_STREQ(why, want);
        /* Another directory of the share does not. */
        snprintf(bind_source, sizeof(bind_source), "%s/srv/data", test_tmpdir());
        _cleanup_free_ char *ok = refusal_with_engine_socket(sock);
        ASSERT_TRUE(!ok);
        close(fd);
}

TEST(joins_share_one_user_namespace_and_its_containers_files) {
        if (geteuid() != 0)
                test_skip("needs root for namespaces");
        int hold;
        pid_t pid = namespace_child(CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWIPC, "ipc", &hold);
        snprintf(child_ns[0], sizeof(child_ns[0]), "/proc/%d/ns/net", (int) pid);
        snprintf(child_ns[1], sizeof(child_ns[1]), "/proc/%d/ns/ipc", (int) pid);

        owner_base = 165536;
        assert_refused("plain", join_child_network_and_ipc,
                       "stockade: can't join both the network namespace of container 'other' and the ipc namespace of container 'other': their user namespaces differ");

        /* The engine's files of the containers in the shared range, and only of those. */
        Case c = {};
        container_file("other");
        _cleanup_free_ char *ok = refusal_of(&c, "plain", join_child_network_and_bind);
        ASSERT_TRUE(!ok);
        free(c.text);
        char want[700];
        snprintf(want, sizeof(want), "stockade: can't mount %s: restricted VM path", bind_source);
        assert_refused("plain", add_bind, want);
        container_file("third");
        snprintf(want, sizeof(want), "stockade: can't mount %s: restricted VM path", bind_source);
        assert_refused("plain", join_child_network_and_bind, want);
        owner_base = 0;
        close(hold);
        waitpid(pid, NULL, 0);
}

TEST(unknown_fields_dropped_and_devices_fixed) {
        Case c = {};
        case_load(&c, "privileged");
        cJSON *spec = cJSON_Parse(c.text);
        cJSON_AddStringToObject(spec, "vm", "x");
        cJSON_AddStringToObject(cJSON_GetObjectItem(spec, "linux"), "intelRdt", "x");
        free(c.text);
        c.text = cJSON_PrintUnformatted(spec);
        cJSON_Delete(spec);
        const char *restricted[] = { "/etc/docker" };
        SpecPolicy p = policy_for(&c, restricted, 1);
        cJSON *out = NULL;
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        _cleanup_free_ char *why = rewrite(&c, &p, &out, &binds);
        ASSERT_TRUE(!why);
        ASSERT_TRUE(!cJSON_GetObjectItem(out, "vm"));
        ASSERT_TRUE(!cJSON_GetObjectItem(cJSON_GetObjectItem(out, "linux"), "intelRdt"));
        /* --privileged asked for every device; the first rule denies all, none allows all. */
        const cJSON *rule, *rules = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(out, "linux"), "resources"), "devices");
        ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(rules, 0), "allow")));
        cJSON_ArrayForEach(rule, rules)
                ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(rule, "allow")) || cJSON_GetObjectItem(rule, "major"));
        cJSON_Delete(out);
        free(c.text);
}

/* /proc/sys stays read-only; /proc/sys/net is made writable (stockade-runc, after runc's
 * create) only where the engine left /proc/sys writable and the process has CAP_NET_ADMIN. */
TEST(net_sysctls_writable_only_for_privileged) {
        static const struct {
                const char *name;
                bool writable;
        } cases[] = { { "plain", false }, { "privileged", true } };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Case c = {};
                case_load(&c, cases[i].name);
                const char *restricted[] = { "/etc/docker" };
                SpecPolicy p = policy_for(&c, restricted, 1);
                cJSON *out = NULL;
                _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
                _cleanup_free_ char *why = rewrite(&c, &p, &out, &binds);
                ASSERT_TRUE(!why);
                ASSERT_EQ(binds.net_sysctls_writable, cases[i].writable);
                bool ro = false;
                const cJSON *path;
                cJSON_ArrayForEach(path, cJSON_GetObjectItem(cJSON_GetObjectItem(out, "linux"), "readonlyPaths"))
                        ro = ro || streq(path->valuestring, "/proc/sys");
                ASSERT_TRUE(ro);
                cJSON_Delete(out);
                free(c.text);
        }
}

TEST(clamp_process_capabilities) {
        cJSON *process = cJSON_Parse("{\"capabilities\": {\"bounding\": [\"CAP_SYS_ADMIN\", \"CAP_SYS_RESOURCE\", \"CAP_BOGUS\"],"
                                     " \"effective\": [\"CAP_SYS_RESOURCE\", \"CAP_KILL\"]}}");
        ASSERT_OK(spec_clamp_process(process, CAPS_WITHOUT_SYS_RESOURCE));
        _cleanup_free_ char *text = cJSON_PrintUnformatted(process);
        ASSERT_STREQ(text, "{\"capabilities\":{\"bounding\":[\"CAP_SYS_ADMIN\"],\"effective\":[\"CAP_KILL\"]}}");
        cJSON_Delete(process);
}

/* The cpuN directories of the CPUs a cpuset leaves out are masked; none without a cpuset
 * or with a list the kernel reads differently (a stride). */
static char *masked_after(const char *resources, unsigned n_cpus) {
        _cleanup_free_ char *text = NULL;
        ASSERT_TRUE(asprintf(&text, "{\"linux\": {\"resources\": %s, \"maskedPaths\": [\"/proc/kcore\"]}}", resources) > 0);
        cJSON *spec = cJSON_Parse(text);
        ASSERT_OK(spec_mask_cpus(spec, n_cpus));
        char *masked = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "linux"), "maskedPaths"));
        cJSON_Delete(spec);
        return masked;
}

TEST(cpus_outside_the_cpuset_masked) {
        const char *cases[][3] = {
                { "{\"cpu\": {\"cpus\": \"0\"}}", "4",
                  "[\"/proc/kcore\",\"/sys/devices/system/cpu/cpu1\",\"/sys/devices/system/cpu/cpu2\",\"/sys/devices/system/cpu/cpu3\"]" },
                { "{\"cpu\": {\"cpus\": \"1-2,5\"}}", "6",
                  "[\"/proc/kcore\",\"/sys/devices/system/cpu/cpu0\",\"/sys/devices/system/cpu/cpu3\",\"/sys/devices/system/cpu/cpu4\"]" },
                { "{\"cpu\": {\"cpus\": \"0-7\"}}", "2", "[\"/proc/kcore\"]" },
                { "{\"cpu\": {\"shares\": 512}}", "4", "[\"/proc/kcore\"]" },
                { "{\"cpu\": {\"cpus\": \"0-7:2\"}}", "8", "[\"/proc/kcore\"]" },
                { "{\"cpu\": {\"cpus\": \"3-1\"}}", "4", "[\"/proc/kcore\"]" },
                { "{\"cpu\": {\"cpus\": \"-1\"}}", "4", "[\"/proc/kcore\"]" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *masked = masked_after(cases[i][0], (unsigned) atoi(cases[i][1]));
                ASSERT_STREQ(masked, cases[i][2]);
        }
}
