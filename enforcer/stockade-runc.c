/* SPDX-License-Identifier: Apache-2.0 */
/* stockade-runc: the OCI runtime the engine calls instead of runc. "create" and "run"
 * register the container with the agent, rewrite config.json into the container's own
 * user namespace with ID-mapped mounts, then exec the real runc with the same arguments;
 * "exec" clamps the process's capabilities; "delete" releases what "create" took; every
 * other command goes straight to runc. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "defaults.h"
#include "enforcer/helper.h"
#include "enforcer/idmap.h"
#include "enforcer/source.h"
#include "enforcer/spec.h"
#include "enforcer/uidrange.h"
#include "json.h"
#include "proto/control-client.h"
#include "util.h"

#define ENGINE_SOCKET_WAIT_MS 40000

/* runc 1.1's options that take a value, as Go's flag package reads them: "-name" or
 * "--name", the value joined by '=' or as the next argument. */
static const char *const global_value_options[] = { "root", "log", "log-format", "criu", "rootless", "stockade-config" };
static const char *const create_value_options[] = { "bundle", "b", "console-socket", "pid-file", "preserve-fds" };
static const char *const exec_value_options[] = {
        "console-socket", "cwd", "env", "e", "user", "u", "additional-gids", "g", "process", "p", "pid-file",
        "process-label", "apparmor", "cap", "c", "preserve-fds", "cgroup",
};

/* Commands that act on what create set up, or on nothing: they go to runc as they are. */
static const char *const passed_commands[] = {
        "start", "kill", "state", "list", "ps", "pause", "resume", "events", "update", "features", "spec", "help",
};

typedef struct Invocation {
        char **runc_argv; /* our own option removed, argv[0] = "runc"; room for one more */
        int n_argv;
        int command_at;   /* the command's index in runc_argv */
        int path_at;      /* the caller's last --bundle (create, run) or --process (exec) in runc_argv, 0: none */
        bool path_joined; /* given as "--name=value" */
        char *path_option; /* "--name=value" made by set_path_option() */
        int console_at;    /* create, run: the caller's last --console-socket in runc_argv, 0: none */
        bool console_joined;
        char *console_option; /* made absolute by console_socket_absolute() */
        const char *config_path;
        const char *command;
        const char *log_path; /* runc's --log, where the engine looks for the error */
        bool log_json;
        const char *root;     /* runc's --root; NULL: its default */
        const char *bundle;
        const char *process; /* exec --process */
        const char *id;
        bool help;
} Invocation;

typedef struct RuntimeConfig {
        char *control;
        char *runc;
        char *run_dir;
} RuntimeConfig;

static void invocation_done(Invocation *inv) {
        free(inv->runc_argv);
        free(inv->path_option);
        free(inv->console_option);
}

static void runtime_config_done(RuntimeConfig *rc) {
        free(rc->control);
        free(rc->runc);
        free(rc->run_dir);
}

/* Tells the user: on stderr and, in runc's JSON log format, where the engine reads
 * runc's errors from. */
static _printf_(2, 3) int fail(const Invocation *inv, const char *format, ...) {
        char message[2048];
        va_list ap;
        va_start(ap, format);
        vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);
        fprintf(stderr, "%s\n", message);

        if (inv->log_path) {
                FILE *f = fopen(inv->log_path, "ae");
                if (f) {
                        if (inv->log_json) {
                                char now[32];
                                rfc3339_format(time(NULL), now);
                                cJSON *line = cJSON_CreateObject();
                                cJSON_AddStringToObject(line, "level", "error");
                                cJSON_AddStringToObject(line, "msg", message);
                                cJSON_AddStringToObject(line, "time", now);
                                char *text = cJSON_PrintUnformatted(line);
                                fprintf(f, "%s\n", text ? text : "");
                                free(text);
                                cJSON_Delete(line);
                        } else
                                fprintf(f, "%s\n", message);
                        fclose(f);
                }
        }
        return EXIT_FAILURE;
}

static bool in_list(const char *arg, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(arg, list[i]))
                        return true;
        return false;
}

/* An option as Go's flag package reads it ("-name", "--name", "-name=value"): its name and
 * joined value. false for a positional argument. */
static bool option_split(const char *arg, char name[static 64], const char **ret_value) {
        if (arg[0] != '-' || arg[1] == '\0')
                return false;
        arg += arg[1] == '-' ? 2 : 1;
        const char *eq = strchr(arg, '=');
        size_t n = eq ? (size_t) (eq - arg) : strlen(arg);
        snprintf(name, 64, "%.*s", (int) (n < 64 ? n : 63), arg);
        *ret_value = eq ? eq + 1 : NULL;
        return true;
}

/* A boolean flag's value as Go reads it ("-h" alone is true). */
static bool flag_true(const char *value) {
        return !value || in_list(value, (const char *const[]) { "1", "t", "T", "true", "TRUE", "True" }, 6);
}

/* Reads options the way runc 1.1 does: global ones up to the command; then the command's,
 * which for create, run and delete may also follow the container id (exec's process
 * arguments follow it), up to "--". */
static int parse_invocation(int argc, char *argv[], Invocation *inv) {
        inv->config_path = STOCKADE_CONFIG_DEFAULT;
        inv->runc_argv = calloc((size_t) argc + 2, sizeof(char *));
        if (!inv->runc_argv)
                return -ENOMEM;
        inv->runc_argv[inv->n_argv++] = (char *) "runc";

        char name[64];
        const char *value;
        int i = 1;
        for (; i < argc && !streq(argv[i], "--") && option_split(argv[i], name, &value); i++) {
                int first = i;
                if (!value && in_list(name, global_value_options, ELEMENTSOF(global_value_options)) && i + 1 < argc)
                        value = argv[++i];
                if (streq(name, "stockade-config")) {
                        inv->config_path = value ?: inv->config_path;
                        continue;
                }
                for (int k = first; k <= i; k++)
                        inv->runc_argv[inv->n_argv++] = argv[k];
                if (streq(name, "root"))
                        inv->root = value;
                else if (streq(name, "log"))
                        inv->log_path = value;
                else if (streq(name, "log-format"))
                        inv->log_json = value && streq(value, "json");
                else if (streq(name, "h") || streq(name, "help"))
                        inv->help = flag_true(value);
        }
        if (i < argc && streq(argv[i], "--"))
                inv->runc_argv[inv->n_argv++] = argv[i++];
        if (i >= argc)
                return 0;
        inv->command = argv[i];
        inv->command_at = inv->n_argv;
        inv->runc_argv[inv->n_argv++] = argv[i++];

        bool creates = streq(inv->command, "create") || streq(inv->command, "run"), execs = streq(inv->command, "exec");
        const char *const *values = creates ? create_value_options : exec_value_options;
        size_t n_values = creates ? ELEMENTSOF(create_value_options) : execs ? ELEMENTSOF(exec_value_options) : 0; /* delete: none */
        bool options_end = !creates && !execs && !streq(inv->command, "delete");
        for (; i < argc; i++) {
                int first = inv->n_argv;
                inv->runc_argv[inv->n_argv++] = argv[i];
                if (!options_end && streq(argv[i], "--")) {
                        options_end = true;
                        continue;
                }
                if (options_end || !option_split(argv[i], name, &value)) {
                        inv->id = inv->id ?: argv[i];
                        options_end = options_end || execs;
                        continue;
                }
                if (!value && in_list(name, values, n_values) && i + 1 < argc)
                        inv->runc_argv[inv->n_argv++] = (char *) (value = argv[++i]);
                if ((creates && (streq(name, "bundle") || streq(name, "b"))) || (execs && (streq(name, "process") || streq(name, "p")))) {
                        *(creates ? &inv->bundle : &inv->process) = value;
                        inv->path_at = first;
                        inv->path_joined = inv->n_argv == first + 1;
                } else if (creates && streq(name, "console-socket") && value) {
                        inv->console_at = first;
                        inv->console_joined = inv->n_argv == first + 1;
                } else if (streq(name, "h") || streq(name, "help"))
                        inv->help = flag_true(value);
        }
        return 0;
}

/* "runc COMMAND -h": nothing but help after a command Stockade refuses or does not know,
 * which runc only answers with its help (or "No help topic"). */
static bool help_only(const Invocation *inv) {
        char name[64];
        const char *value;
        for (int i = inv->command_at + 1; i < inv->n_argv; i++)
                if (!option_split(inv->runc_argv[i], name, &value) || !(streq(name, "h") || streq(name, "help")) || !flag_true(value))
                        return false;
        return inv->n_argv > inv->command_at + 1;
}

/* Points runc at path instead of the caller's --bundle or --process (the last one given is
 * the one runc reads), or adds the option after the command. */
static int set_path_option(Invocation *inv, const char *option, const char *path) {
        if (inv->path_at > 0 && !inv->path_joined) {
                inv->runc_argv[inv->path_at + 1] = (char *) path;
                return 0;
        }
        char *joined = NULL;
        if (asprintf(&joined, "%s=%s", option, path) < 0)
                return -ENOMEM;
        inv->path_option = joined;
        if (inv->path_at == 0) {
                inv->path_at = inv->command_at + 1;
                memmove(&inv->runc_argv[inv->path_at + 1], &inv->runc_argv[inv->path_at],
                        (size_t) (inv->n_argv - inv->path_at + 1) * sizeof(char *));
                inv->n_argv++;
        }
        inv->runc_argv[inv->path_at] = inv->path_option;
        inv->path_joined = true;
        return 0;
}

/* runc reads a relative --console-socket in the bundle directory, which for runc is
 * Stockade's: the caller's socket is named by its absolute path instead. */
static int console_socket_absolute(Invocation *inv) {
        if (inv->console_at == 0)
                return 0;
        char **arg = &inv->runc_argv[inv->console_at + !inv->console_joined];
        const char *value = inv->console_joined ? strchr(*arg, '=') + 1 : *arg;
        if (value[0] == '/' || value[0] == '\0')
                return 0;
        _cleanup_free_ char *bundle = realpath(inv->bundle ?: ".", NULL);
        if (!bundle)
                return -errno;
        char *absolute = NULL;
        if (asprintf(&absolute, "%s%s/%s", inv->console_joined ? "--console-socket=" : "", bundle, value) < 0)
                return -ENOMEM;
        *arg = inv->console_option = absolute;
        return 0;
}

/* Is child (in parent) safe from everyone but root: root's, in a directory that only root
 * may change, or a sticky one such as /tmp? */
static bool root_only(const struct stat *parent, const struct stat *child) {
        bool parent_safe = !(parent->st_mode & 022) || (parent->st_mode & S_ISVTX);
        return parent->st_uid == 0 && parent_safe && child->st_uid == 0;
}

/* The configuration names the real runc and the agent's socket, so it is read only from a
 * file that root owns and no one else may write, reached without symlinks through
 * directories that only root may change. */
static int open_trusted(const char *path, int *ret_fd) {
        if (path[0] != '/')
                return -EINVAL;
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        _cleanup_close_ int dir = RET_NERRNO(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (dir < 0)
                return dir;
        char *save = NULL, *c = strtok_r(copy, "/", &save);
        while (c) {
                char *next_name = strtok_r(NULL, "/", &save);
                int next = RET_NERRNO(openat(dir, c, (next_name ? O_PATH | O_DIRECTORY : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC));
                if (next < 0)
                        return next == -ELOOP ? -EPERM : next;
                struct stat parent, child;
                if (fstat(dir, &parent) < 0 || fstat(next, &child) < 0) {
                        safe_close(next);
                        return -errno;
                }
                safe_close(dir);
                dir = next;
                if (!root_only(&parent, &child) || (!next_name && (!S_ISREG(child.st_mode) || (child.st_mode & 022))))
                        return -EPERM;
                c = next_name;
        }
        *ret_fd = TAKE_FD(dir);
        return 0;
}

/* What the runtime needs from the agent's config file, with the agent's defaults. */
static int load_runtime_config(const char *path, RuntimeConfig *ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size;
        int r = open_trusted(path, &fd);
        if (r >= 0)
                r = read_full_fd(fd, 1 << 20, &text, &size);
        if (r < 0 && !(r == -ENOENT && streq(path, STOCKADE_CONFIG_DEFAULT)))
                return r;
        _cleanup_json_ cJSON *json = text ? json_parse_commented(text) : NULL;
        if (text && !cJSON_IsObject(json))
                return -EBADMSG;

        const char *control = STOCKADE_CONTROL_DEFAULT;
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(json, "control"))
                if (cJSON_IsString(item) && STARTSWITH(item->valuestring, "unix:")) {
                        control = item->valuestring;
                        break;
                }
        const char *runc = json_get_string(json, "runc"), *run_dir = json_get_string(json, "runDir");
        ret->control = strdup(control);
        ret->runc = strdup(runc ? runc : STOCKADE_RUNC_DEFAULT);
        ret->run_dir = strdup(run_dir ? run_dir : STOCKADE_RUN_DIR_DEFAULT);
        return ret->control && ret->runc && ret->run_dir ? 0 : -ENOMEM;
}

static int exec_runc(const Invocation *inv, const char *runc) {
        execv(runc, inv->runc_argv);
        return fail(inv, "stockade: cannot run '%s': %s", runc, strerror(errno));
}

/* ---- namespaces of other containers ---- */

/* The first id of the user namespace userns_fd's map ("0 BASE COUNT"), read by a child
 * that joins it: a namespace's own map reads relative to its parent there. */
static int userns_base(void *userdata, int userns_fd, uint32_t *ret_base) {
        int pipe_fds[2];
        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                safe_close(pipe_fds[0]);
                safe_close(pipe_fds[1]);
                return -errno;
        }
        if (pid == 0) {
                _cleanup_free_ char *map = NULL;
                if (setns(userns_fd, CLONE_NEWUSER) < 0 || read_full_file(AT_FDCWD, "/proc/self/uid_map", 4096, &map, NULL) < 0)
                        _exit(EXIT_FAILURE);
                _exit(write_all(pipe_fds[1], map, strlen(map)) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        safe_close(pipe_fds[1]);
        _cleanup_free_ char *map = NULL;
        int r = read_full_fd(pipe_fds[0], 4096, &map, NULL);
        safe_close(pipe_fds[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r < 0)
                return r;
        unsigned long first, base, count;
        int n = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || sscanf(map, " %lu %lu %lu %n", &first, &base, &count, &n) != 3 ||
            map[n] != '\0' || first != 0 || count != UID_RANGE_SIZE || base > UINT32_MAX)
                return -ENOENT;
        *ret_base = (uint32_t) base;
        return 0;
}

/* The range of the containers whose namespaces the spec joins, as the paths show before
 * they are checked: the agent gives this container the same range, and the spec's check
 * refuses the container if the namespaces it checks are not in that range. 0: none. */
static uint32_t joined_base(const cJSON *spec) {
        const cJSON *ns;
        cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "linux"), "namespaces")) {
                const char *path = json_get_string(ns, "path");
                _cleanup_close_ int fd = -EBADF;
                _cleanup_close_ int userns = path && spec_namespace_open(path, &fd) >= 0 ? ioctl(fd, NS_GET_USERNS) : -EBADF;
                uint32_t base;
                if (userns >= 0 && userns_base(NULL, userns, &base) >= 0)
                        return base;
        }
        return 0;
}

/* ---- create ---- */

/* The engine's own user namespace mapping (podman --uidmap, ctr --uidmap, userns-remap,
 * hostUsers: false): 1 and "0 BASE COUNT" when the spec asks for a new user namespace with
 * maps, 0 when it has none; refused unless uids and gids are mapped alike, as one range from
 * container id 0 (the agent decides whether those ids are safe to keep). */
static int engine_mapping(const cJSON *spec, uint32_t *ret_base, uint32_t *ret_count, char **reterr) {
        const cJSON *linux_obj = cJSON_GetObjectItemCaseSensitive(spec, "linux"), *ns;
        bool new_userns = false;
        cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(linux_obj, "namespaces"))
                new_userns |= streq(json_get_string(ns, "type") ?: "", "user") && !json_get_string(ns, "path");
        const cJSON *uids = cJSON_GetObjectItemCaseSensitive(linux_obj, "uidMappings");
        const cJSON *gids = cJSON_GetObjectItemCaseSensitive(linux_obj, "gidMappings");
        if (!new_userns || cJSON_GetArraySize(uids) + cJSON_GetArraySize(gids) == 0)
                return 0;
        const cJSON *u = cJSON_GetArrayItem(uids, 0), *g = cJSON_GetArrayItem(gids, 0);
        static const struct {
                const char *name;
                int64_t min, max;
        } fields[] = { { "containerID", 0, 0 }, { "hostID", 0, UINT32_MAX }, { "size", 1, UINT32_MAX } };
        bool alike = cJSON_GetArraySize(uids) == 1 && cJSON_GetArraySize(gids) == 1;
        for (size_t i = 0; alike && i < ELEMENTSOF(fields); i++) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(u, fields[i].name), *b = cJSON_GetObjectItemCaseSensitive(g, fields[i].name);
                alike = json_is_int(a, fields[i].min, fields[i].max) && cJSON_Compare(a, b, true);
        }
        if (!alike)
                return error_set(reterr, -EPERM,
                                 "stockade: the engine's user namespace must map uids and gids alike, as one range from container id 0");
        *ret_base = (uint32_t) cJSON_GetObjectItemCaseSensitive(u, "hostID")->valuedouble;
        *ret_count = (uint32_t) cJSON_GetObjectItemCaseSensitive(u, "size")->valuedouble;
        return 1;
}

static char *bundle_path(const Invocation *inv, const char *name) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", inv->bundle ? inv->bundle : ".", name) < 0)
                return NULL;
        return path;
}

static int strings_from(const cJSON *array, const char **out, size_t max, size_t *ret_n) {
        size_t n = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, array) {
                if (!cJSON_IsString(item))
                        continue;
                if (n >= max)
                        return -E2BIG;
                out[n++] = item->valuestring;
        }
        *ret_n = n;
        return 0;
}

/* Pins a namespace that was checked at dir/ns/TYPE, so runc joins that one. */
static int pin_namespace(cJSON *spec, const SpecJoin *join, const char *dir, char **reterr) {
        char target[PATH_MAX + 64];
        snprintf(target, sizeof(target), "%s/ns", dir);
        if (mkdir(target, 0711) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "stockade: cannot create '%s': %m", target);
        snprintf(target, sizeof(target), "%s/ns/%s", dir, join->type);
        _cleanup_close_ int fd = RET_NERRNO(open(target, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
        char source[64];
        snprintf(source, sizeof(source), "/proc/self/fd/%d", join->fd);
        if (fd < 0 || mount(source, target, NULL, MS_BIND, NULL) < 0)
                return error_set(reterr, fd < 0 ? fd : -errno, "stockade: cannot pin the %s namespace at '%s': %m", join->type, target);
        cJSON *ns;
        cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "linux"), "namespaces"))
                if (streq(json_get_string(ns, "type") ?: "", join->type)) {
                        cJSON_DeleteItemFromObjectCaseSensitive(ns, "path");
                        if (!cJSON_AddStringToObject(ns, "path", target))
                                return -ENOMEM;
                }
        return 0;
}

/* STOCKADE_TIMINGS=FILE: create, run and delete append to FILE where their time went, one
 * line each ("create ID register=1.2 spec=0.4 ... total=52.0", milliseconds), for
 * tests/bench/bench-start.sh. */
typedef struct Timings {
        const char *file; /* NULL: not asked for */
        struct timespec start, last;
        char line[512];
        size_t len;
} Timings;

static void timings_start(Timings *t) {
        *t = (Timings) { .file = getenv("STOCKADE_TIMINGS") };
        clock_gettime(CLOCK_MONOTONIC, &t->start);
        t->last = t->start;
}

static double ms_between(const struct timespec *a, const struct timespec *b) {
        return (double) (b->tv_sec - a->tv_sec) * 1e3 + (double) (b->tv_nsec - a->tv_nsec) / 1e6;
}

/* The time since the last mark goes to phase. */
static void timings_mark(Timings *t, const char *phase) {
        if (!t || !t->file)
                return;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int n = snprintf(t->line + t->len, sizeof(t->line) - t->len, " %s=%.2f", phase, ms_between(&t->last, &now));
        if (n > 0 && (size_t) n < sizeof(t->line) - t->len)
                t->len += (size_t) n;
        t->last = now;
}

static void timings_write(Timings *t, const char *command, const char *id) {
        if (!t->file)
                return;
        timings_mark(t, "rest");
        _cleanup_close_ int fd = open(t->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0)
                dprintf(fd, "%s %s%s total=%.2f\n", command, id ?: "-", t->line, ms_between(&t->start, &t->last));
}

/* ID-maps the root filesystem and every bind mount into dir from the sources as they were
 * checked, and points the spec at them; for an engine that mapped the container itself
 * (premapped), they are plain copies: its files are shifted already. */
static int prepare_mounts(cJSON *spec, const SpecBinds *binds, const char *dir, uint32_t base, uint32_t count, bool premapped,
                          Timings *timings, char **reterr) {
        /* Only the container's root (VM uid base) may traverse into what is prepared here. */
        _cleanup_close_ int userns = -EBADF;
        int r = premapped ? 0 : idmap_userns_open(base, count, &userns, reterr);
        if (r < 0)
                return r;

        cJSON *root = cJSON_GetObjectItemCaseSensitive(spec, "root");
        char target[PATH_MAX + 32];
        snprintf(target, sizeof(target), "%s/rootfs", dir);
        timings_mark(timings, "userns");
        r = idmap_rootfs(userns, binds->root_fd, json_get_string(root, "path"), target, reterr);
        if (r < 0)
                return r;
        cJSON_ReplaceItemInObjectCaseSensitive(root, "path", cJSON_CreateString(target));
        timings_mark(timings, "rootfs");

        snprintf(target, sizeof(target), "%s/mounts", dir);
        if (mkdir(target, 0711) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "stockade: cannot create '%s': %m", target);
        cJSON *mounts = cJSON_GetObjectItemCaseSensitive(spec, "mounts");
        for (size_t i = 0; i < binds->n; i++) {
                const SpecBind *b = &binds->binds[i];
                cJSON *m = cJSON_GetArrayItem(mounts, b->index);
                snprintf(target, sizeof(target), "%s/mounts/%zu", dir, i);
                r = idmap_bind(userns, b->fd, json_get_string(m, "source"), target, b->recursive, b->read_only, reterr);
                if (r < 0)
                        return r;
                cJSON_ReplaceItemInObjectCaseSensitive(m, "source", cJSON_CreateString(target));
        }
        timings_mark(timings, "binds");
        for (size_t i = 0; i < binds->n_joins; i++)
                if ((r = pin_namespace(spec, &binds->joins[i], dir, reterr)) < 0)
                        return r;
        return 0;
}

/* Binds the agent's /proc emulation into the container. The mount checked is the one
 * bound: the container's directory in the agent's FUSE mount (its root, the device the
 * agent named) is cloned into the container's directory and the spec's binds name files
 * below that clone only. */
static int prepare_procfs(cJSON *spec, const cJSON *procfs, const char *dir, char **reterr) {
        const char *path = json_get_string(procfs, "path"), *name = json_get_string(procfs, "dir");
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(procfs, "dev");
        if (!path || !cJSON_IsNumber(dev) || !name || !*name || strspn(name, "0123456789abcdef") != strlen(name))
                return error_set(reterr, -EBADMSG, "stockade: the agent's reply is malformed");
        _cleanup_close_ int fd = -EBADF, tree = -EBADF;
        SourceId id;
        struct statfs sf;
        int r = source_open(path, &fd);
        if (r >= 0)
                r = source_id(fd, &id);
        if (r >= 0 && fstatfs(fd, &sf) < 0)
                r = -errno;
        /* Not there (an agent stopped without a store for its fd, a mount namespace that
         * copied the mount before that): the container sees the VM's files, as with no
         * emulation at all. */
        if (r < 0) {
                fprintf(stderr, "stockade: the agent's /proc emulation '%s' is not available (%s): the container sees the VM's /proc files\n",
                        path, strerror(-r));
                return 0;
        }
        if (sf.f_type != 0x65735546 /* FUSE_SUPER_MAGIC */ || !id.mount_root || id.dev != (dev_t) dev->valuedouble)
                return error_set(reterr, -EPERM, "stockade: '%s' is not the agent's /proc emulation", path);
        char target[PATH_MAX + 16];
        snprintf(target, sizeof(target), "%s/procfs", dir);
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "stockade: cannot create '%s': %m", target);
        tree = open_tree(fd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        if (tree < 0 || move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return error_set(reterr, -errno, "stockade: cannot bind the agent's /proc emulation at '%s': %m", target);
        if ((r = spec_add_procfs_binds(spec, target)) < 0 || (r = spec_mask_cpus(spec, (unsigned) get_nprocs_conf())) < 0)
                return error_set(reterr, r, "stockade: cannot add the /proc emulation's binds: %s", strerror(-r));
        return 0;
}

/* Into the container's fresh directory, read by runc once it is written: no temporary file
 * and no fsync (after a crash the container is gone with its directory). */
static int write_spec(const char *path, const cJSON *spec) {
        _cleanup_free_ char *text = cJSON_PrintUnformatted(spec);
        if (!text)
                return -ENOMEM;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        return write_all(fd, text, strlen(text));
}

static int mkdir_p(const char *path, mode_t mode) {
        char buf[PATH_MAX];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        return mkdir(buf, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* ---- a container: (runc's root, id) ---- */

typedef struct Container {
        const char *id;
        char *root;          /* absolute, as runc makes it */
        char *key;           /* what the agent knows it by, "ROOT/ID" */
        char dir[PATH_MAX];  /* Stockade's files for it: the spec runc reads, the ID-mapped mounts */
} Container;

static void container_done(Container *c) {
        free(c->root);
        free(c->key);
}

/* path (absolute) cleaned lexically, as Go's filepath.Clean does: runc's root is
 * filepath.Abs(--root). */
static char *path_clean(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        char *out = malloc(strlen(path) + 2);
        if (!copy || !out) {
                free(out);
                return NULL;
        }
        size_t n = 0;
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (streq(c, "..")) {
                        while (n > 0 && out[--n] != '/')
                                ;
                } else if (!streq(c, "."))
                        n += (size_t) sprintf(out + n, "/%s", c);
        }
        if (n == 0)
                out[n++] = '/';
        out[n] = '\0';
        return out;
}

/* The container's root, key and directory (container_dir()). */
static int container_open(const Invocation *inv, const RuntimeConfig *rc, Container *ret) {
        const char *root = inv->root ?: "/run/runc";
        _cleanup_free_ char *cwd = root[0] == '/' ? NULL : getcwd(NULL, 0), *absolute = NULL;
        if (root[0] != '/' && !cwd)
                return -errno;
        if (asprintf(&absolute, "%s/%s", cwd ?: "", root) < 0)
                return -ENOMEM;
        *ret = (Container) { .id = inv->id, .root = path_clean(absolute) };
        if (!ret->root)
                return -ENOMEM;
        _cleanup_free_ char *dir = NULL;
        int r = container_key(ret->root, inv->id, &ret->key);
        if (r >= 0)
                r = container_dir(rc->run_dir, ret->key, &dir);
        if (r < 0)
                return r;
        if ((size_t) snprintf(ret->dir, sizeof(ret->dir), "%s", dir) >= sizeof(ret->dir))
                return -ENAMETOOLONG;
        return 0;
}

/* Does runc keep state for it (created, running or stopped, not yet deleted)? */
static bool runc_has_state(const Container *c) {
        _cleanup_free_ char *path = NULL;
        struct stat st;
        if (asprintf(&path, "%s/%s/state.json", c->root, c->id) < 0)
                return true;
        return stat(path, &st) == 0 || errno != ENOENT;
}

/* Removes Stockade's files for it: its spec and the ID-mapped mounts. */
static void remove_files(const Container *c) {
        _cleanup_free_ char *why = NULL;
        if (idmap_container_remove(c->dir, &why) < 0)
                fprintf(stderr, "stockade: %s\n", why ? why : "cannot remove the container's mounts");
}

static cJSON *container_params(const Container *c) {
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "id", c->id);
        cJSON_AddStringToObject(params, "root", c->root);
        return params;
}

/* ---- the engine socket ---- */

/* What the engine socket's check needs: the agent's connection and the container. */
typedef struct Registration {
        ControlConnection *conn;
        const Container *ct;
} Registration;

/* Asks the agent (which looks at the container's image as the engine knows it, and at the
 * registries) until it has decided, then opens the socket it serves for the container:
 * a socket of root's, checked on the fd that is bound. */
static int engine_socket_proxy(void *userdata, int *ret_fd, char **ret_reason) {
        const Registration *reg = userdata;
        for (int i = 0; i < ENGINE_SOCKET_WAIT_MS / 50; i++) {
                _cleanup_json_ cJSON *reply = NULL;
                _cleanup_free_ char *why = NULL;
                int r = control_client_call(reg->conn, "container.engine_socket", container_params(reg->ct), &reply, &why);
                if (r < 0) {
                        *ret_reason = TAKE_PTR(why);
                        return r;
                }
                const char *state = json_get_string(reply, "state"), *path = json_get_string(reply, "socket");
                if (state && streq(state, "refused")) {
                        const char *reason = json_get_string(reply, "reason");
                        *ret_reason = reason ? strdup(reason) : NULL;
                        return -EPERM;
                }
                if (state && streq(state, "allowed") && path) {
                        _cleanup_close_ int fd = RET_NERRNO(open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC));
                        struct stat st;
                        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != 0)
                                return -EPERM;
                        *ret_fd = TAKE_FD(fd);
                        return 0;
                }
                (void) usleep(50 * 1000);
        }
        *ret_reason = strdup("the agent did not decide in time");
        return -ETIMEDOUT;
}

/* Gives back what create took. */
static int give_back(const RuntimeConfig *rc, const Container *c) {
        remove_files(c);
        _cleanup_(control_client_freep) ControlConnection *conn = NULL;
        int r = control_client_connect(rc->control, &conn, NULL);
        if (r < 0)
                return r;
        _cleanup_json_ cJSON *result = NULL;
        return control_client_call(conn, "container.release", container_params(c), &result, NULL);
}

/* Runs runc as a child and waits for it, passing on every signal sent to us (those of a
 * terminal reach runc's process group themselves), so that what create, run or exec took
 * can be given back when runc is done. */
static int run_runc(const Invocation *inv, const char *runc, int *ret_status) {
        sigset_t all, old;
        sigfillset(&all);
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_BLOCK, &all, &old);
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                sigprocmask(SIG_SETMASK, &old, NULL);
                return r;
        }
        if (pid == 0) {
                sigprocmask(SIG_SETMASK, &old, NULL);
                execv(runc, inv->runc_argv);
                fprintf(stderr, "stockade: cannot run '%s': %m\n", runc);
                _exit(127);
        }
        for (;;) {
                siginfo_t si;
                if (sigwaitinfo(&all, &si) < 0)
                        continue;
                if (si.si_signo != SIGCHLD) {
                        if (si.si_code <= 0) /* sent by a process (SI_USER, SI_QUEUE, SI_TKILL) */
                                (void) kill(pid, si.si_signo);
                } else if (waitpid(pid, ret_status, WNOHANG) == pid)
                        break;
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 0;
}

/* Ends as runc ended: its exit status, or the signal that killed it. */
static int exit_like(int status) {
        if (WIFSIGNALED(status)) {
                signal(WTERMSIG(status), SIG_DFL);
                raise(WTERMSIG(status));
                return 128 + WTERMSIG(status);
        }
        return WEXITSTATUS(status);
}

/* The agent traps calls for itself: a second listener would receive the container's notify
 * fd and could answer for the agent. */
static int check_listener(const cJSON *spec, const char *agent_listener, char **reterr) {
        const cJSON *seccomp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "linux"), "seccomp");
        const char *path = json_get_string(seccomp, "listenerPath");
        if (path && !(agent_listener && streq(path, agent_listener)))
                return error_set(reterr, -EPERM,
                                 "stockade: the spec's seccomp listenerPath '%s' is refused: the agent is the only seccomp listener a container may have",
                                 path);
        return 0;
}

/* The container's init as runc's state has it, or -1. */
static pid_t runc_init_pid(const Container *c) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size;
        if (asprintf(&path, "%s/%s/state.json", c->root, c->id) < 0 || read_full_file(AT_FDCWD, path, SPEC_MAX_SIZE, &text, &size) < 0)
                return -1;
        _cleanup_json_ cJSON *state = cJSON_ParseWithLength(text, size);
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(state, "init_process_pid");
        return json_is_int(pid, 1, INT_MAX) ? (pid_t) pid->valuedouble : -1;
}

/* In the container's mount namespace (its init waits for start): /proc/sys/net, read-only
 * with the rest of /proc/sys as runc left it, gets a writable clone of itself on top. */
static void net_sysctls_helper(int socket, const void *userdata) {
        if (setns(*(const int *) userdata, CLONE_NEWNS) < 0)
                helper_fail(socket, -errno, "cannot join the container's mount namespace: %m");
        int tree = open_tree(AT_FDCWD, "/proc/sys/net", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        struct statfs sf;
        if (tree < 0 || fstatfs(tree, &sf) < 0)
                helper_fail(socket, -errno, "cannot copy its /proc/sys/net: %m");
        if (sf.f_type != PROC_SUPER_MAGIC)
                helper_fail(socket, -EXDEV, "its /proc/sys/net is not on procfs");
        struct mount_attr attr = { .attr_clr = MOUNT_ATTR_RDONLY };
        if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ||
            move_mount(tree, "", AT_FDCWD, "/proc/sys/net", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                helper_fail(socket, -errno, "cannot make its /proc/sys/net writable: %m");
        helper_send(socket, -EBADF, 0, "");
}

/* SpecBinds.net_sysctls_writable, once runc created the container. */
static int net_sysctls_writable(const Container *c, char **reterr) {
        pid_t init = runc_init_pid(c);
        _cleanup_close_ int pidfd = init > 0 ? pidfd_open(init, 0) : -1;
        if (pidfd < 0)
                return error_set(reterr, -ESRCH, "the container's init is not there");
        Helper h = HELPER_NULL;
        int r = helper_start(net_sysctls_helper, &pidfd, &h);
        if (r >= 0) {
                int fd = -EBADF;
                r = helper_wait(&h, 5000, "net sysctls", &fd, reterr);
                safe_close(fd);
                helper_done(&h);
        }
        return r;
}

/* create and run: the spec runc reads is Stockade's copy in the container's directory, the
 * caller's bundle is left as it was. Whenever runc ends without state for the container (a
 * foreground run is over, or runc failed), what it took is given back. */
static int cmd_create(Invocation *inv, const RuntimeConfig *rc, Timings *timings) {
        if (!inv->id || !container_id_valid(inv->id))
                return fail(inv, "stockade: a valid container id is required");
        _cleanup_(container_done) Container ct = {};
        int r = container_open(inv, rc, &ct);
        if (r < 0)
                return fail(inv, "stockade: cannot place container '%s' of '%s' in '%s': %s", inv->id, inv->root ?: "/run/runc",
                            rc->run_dir, strerror(-r));
        /* runc refuses an id it holds: leave that container's files alone. */
        if (runc_has_state(&ct))
                return exec_runc(inv, rc->runc);
        /* What a container of this id left when it ended without runc's delete. */
        remove_files(&ct);
        /* Made before the range is: a restarted agent keeps the range of a container whose
         * directory or runc state exists, and frees the others'. */
        if (mkdir_p(ct.dir, 0711) < 0)
                return fail(inv, "stockade: cannot create '%s': %m", ct.dir);

        /* Read before registering: a container that joins another's namespaces shares its range. */
        _cleanup_free_ char *config = bundle_path(inv, "config.json"), *text = NULL;
        size_t size;
        int read_r = config ? read_full_file(AT_FDCWD, config, SPEC_MAX_SIZE, &text, &size) : -ENOMEM;
        _cleanup_json_ cJSON *spec = read_r >= 0 ? cJSON_ParseWithLength(text, size) : NULL;
        uint32_t share_base = joined_base(spec), map_base = 0, map_count = 0;
        _cleanup_free_ char *why = NULL;
        int premapped = engine_mapping(spec, &map_base, &map_count, &why);
        if (premapped < 0)
                return fail(inv, "%s", why);
        timings_mark(timings, "read");

        _cleanup_(control_client_freep) ControlConnection *c = NULL;
        _cleanup_json_ cJSON *reply = NULL;
        r = control_client_connect(rc->control, &c, &why);
        if (r >= 0) {
                cJSON *params = container_params(&ct);
                cJSON *map = premapped ? cJSON_AddArrayToObject(params, "uid_map") : NULL;
                if (map) {
                        cJSON_AddItemToArray(map, cJSON_CreateNumber(map_base));
                        cJSON_AddItemToArray(map, cJSON_CreateNumber(map_count));
                } else if (params && share_base)
                        cJSON_AddNumberToObject(params, "uid_base", share_base);
                r = control_client_call(c, "container.register", params, &reply, &why);
                /* The agent's own refusal says why in its words. */
                if (r == -EPERM || r == -EREMOTEIO) {
                        (void) rmdir(ct.dir);
                        return fail(inv, "%s", why ? why : "stockade: the agent refused the container");
                }
        }
        if (r < 0) {
                (void) rmdir(ct.dir);
                return fail(inv, "stockade: the Stockade agent is not reachable at '%s' (%s): containers are not started without isolation",
                            rc->control, why ? why : strerror(-r));
        }
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "isolate"))) {
                (void) rmdir(ct.dir);
                return exec_runc(inv, rc->runc);
        }
        timings_mark(timings, "register");

        Registration reg = { .conn = c, .ct = &ct };
        const char *restricted[128], *shares[128], *storage[32], *hooks[32];
        const cJSON *uid_base = cJSON_GetObjectItemCaseSensitive(reply, "uid_base"), *count = cJSON_GetObjectItemCaseSensitive(reply, "count");
        SpecPolicy policy = {
                .container_id = inv->id,
                .bundle = inv->bundle ? inv->bundle : ".",
                .restricted = restricted,
                .shares = shares,
                .storage = storage,
                .hooks = hooks,
                .engine_root = json_get_string(reply, "engine_root"),
                .engine_init = json_get_string(reply, "engine_init"),
                .engine_socket = json_get_string(reply, "engine_socket"),
                .engine_socket_proxy = engine_socket_proxy,
                .userns_base = userns_base,
                .containers = cJSON_GetObjectItemCaseSensitive(reply, "containers"),
                .userdata = &reg,
                .proc_root = "/proc",
                .listener_path = json_get_string(reply, "seccomp_listener"),
                .listener_metadata = ct.key,
        };
        if (!json_is_int(count, 1, UID_RANGE_SIZE) || !json_is_int(uid_base, 1, UINT32_MAX - UID_RANGE_SIZE) ||
            strings_from(cJSON_GetObjectItemCaseSensitive(reply, "restricted"), restricted, ELEMENTSOF(restricted), &policy.n_restricted) < 0 ||
            strings_from(cJSON_GetObjectItemCaseSensitive(reply, "shares"), shares, ELEMENTSOF(shares), &policy.n_shares) < 0 ||
            strings_from(cJSON_GetObjectItemCaseSensitive(reply, "storage"), storage, ELEMENTSOF(storage), &policy.n_storage) < 0 ||
            strings_from(cJSON_GetObjectItemCaseSensitive(reply, "hooks"), hooks, ELEMENTSOF(hooks), &policy.n_hooks) < 0)
                r = fail(inv, "stockade: the agent's reply is malformed");
        else if ((r = spec_read_cap_bound(&policy.cap_bound)) < 0)
                r = fail(inv, "stockade: cannot read the capability bounding set: %s", strerror(-r));
        if (r != 0) {
                (void) give_back(rc, &ct);
                return EXIT_FAILURE;
        }
        policy.base = (uint32_t) uid_base->valuedouble;
        policy.count = (uint32_t) count->valuedouble;

        char copy[PATH_MAX + 16];
        snprintf(copy, sizeof(copy), "%s/config.json", ct.dir);
        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        free(why);
        why = NULL;
        if ((r = read_r) < 0)
                r = error_set(&why, r, "stockade: cannot read '%s': %s", config ? config : "config.json", strerror(-r));
        else if (!spec)
                r = error_set(&why, -EBADMSG, "stockade: '%s' is not valid JSON", config);
        else if ((r = check_listener(spec, policy.listener_path, &why)) >= 0)
                r = spec_rewrite(spec, &policy, &binds, &why);
        timings_mark(timings, "spec");
        if (r >= 0)
                r = mkdir_p(ct.dir, 0711) < 0 ? error_set(&why, -errno, "stockade: cannot create '%s': %m", ct.dir) : 0;
        if (r >= 0)
                r = prepare_mounts(spec, &binds, ct.dir, policy.base, policy.count, premapped, timings, &why);
        const cJSON *procfs = cJSON_GetObjectItemCaseSensitive(reply, "procfs");
        if (r >= 0 && procfs)
                r = prepare_procfs(spec, procfs, ct.dir, &why);
        if (r >= 0 && (r = write_spec(copy, spec)) < 0)
                r = error_set(&why, r, "stockade: cannot write '%s': %s", copy, strerror(-r));
        /* before --bundle may be inserted, which moves what follows it */
        if (r >= 0 && (r = console_socket_absolute(inv)) < 0)
                r = error_set(&why, r, "stockade: cannot resolve the console socket's directory '%s': %s", inv->bundle ?: ".",
                              strerror(-r));
        if (r >= 0)
                r = set_path_option(inv, "--bundle", ct.dir);
        if (r < 0) {
                (void) give_back(rc, &ct);
                return fail(inv, "%s", why ? why : strerror(-r));
        }

        timings_mark(timings, "write");
        int status;
        if ((r = run_runc(inv, rc->runc, &status)) < 0)
                status = W_EXITCODE(fail(inv, "stockade: cannot run '%s': %s", rc->runc, strerror(-r)), 0);
        timings_mark(timings, "runc");
        /* run starts the container at once: its /proc/sys stays read-only as a whole. */
        if (binds.net_sysctls_writable && streq(inv->command, "create") && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                free(why);
                why = NULL;
                if (net_sysctls_writable(&ct, &why) < 0)
                        fprintf(stderr, "stockade: warning: the network sysctls of '%s' stay read-only: %s\n", inv->id, why);
        }
        if (!runc_has_state(&ct) && give_back(rc, &ct) < 0)
                fprintf(stderr, "stockade: the agent is not reachable at '%s': the uid range of '%s' stays reserved\n", rc->control, ct.key);
        return exit_like(status);
}

/* exec --process: runc reads a copy clamped to the runtime's capabilities, in runDir; the
 * caller's file (perhaps a pipe, /dev/fd/N) is only read. */
static int cmd_exec(Invocation *inv, const RuntimeConfig *rc) {
        if (!inv->process)
                return exec_runc(inv, rc->runc);
        uint64_t bound;
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r = spec_read_cap_bound(&bound);
        if (r >= 0)
                r = read_full_file(AT_FDCWD, inv->process, SPEC_MAX_SIZE, &text, &size);
        _cleanup_json_ cJSON *process = r >= 0 ? cJSON_ParseWithLength(text, size) : NULL;
        if (!cJSON_IsObject(process))
                return fail(inv, "stockade: cannot read the process spec '%s'", inv->process);
        const char *key = NULL;
        r = spec_ambiguous_key(process, &key);
        if (r < 0)
                return fail(inv, "stockade: cannot read the process spec '%s': %s", inv->process, strerror(-r));
        if (r > 0)
                return fail(inv, "stockade: the process spec names '%.64s' twice in one object", key);
        spec_clamp_process(process, bound);

        _cleanup_free_ char *clamped = cJSON_PrintUnformatted(process);
        char path[PATH_MAX];
        if ((size_t) snprintf(path, sizeof(path), "%s/process-XXXXXX", rc->run_dir) >= sizeof(path))
                return fail(inv, "stockade: the run directory '%s' is too long", rc->run_dir);
        _cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0 || !clamped || (r = write_all(fd, clamped, strlen(clamped))) < 0 || (r = set_path_option(inv, "--process", path)) < 0) {
                r = fd < 0 ? -errno : clamped ? r : -ENOMEM;
                if (fd >= 0)
                        (void) unlink(path);
                return fail(inv, "stockade: cannot write the process spec in '%s': %s", rc->run_dir, strerror(-r));
        }
        fd = safe_close(fd);
        int status;
        r = run_runc(inv, rc->runc, &status);
        (void) unlink(path);
        if (r < 0)
                return fail(inv, "stockade: cannot run '%s': %s", rc->runc, strerror(-r));
        return exit_like(status);
}

/* Runs runc's delete first (it refuses a running container without --force); once runc
 * holds no state for the container, removes its mounts and gives the range back. */
static int cmd_delete(const Invocation *inv, const RuntimeConfig *rc, Timings *timings) {
        int status;
        int r = run_runc(inv, rc->runc, &status);
        if (r < 0)
                return fail(inv, "stockade: cannot run '%s': %s", rc->runc, strerror(-r));
        timings_mark(timings, "runc");
        _cleanup_(container_done) Container ct = {};
        if (!inv->id || !container_id_valid(inv->id) || container_open(inv, rc, &ct) < 0 || runc_has_state(&ct))
                return exit_like(status);
        if (give_back(rc, &ct) < 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return fail(inv, "stockade: the agent is not reachable at '%s': the uid range of '%s' stays reserved", rc->control, ct.key);
        return exit_like(status);
}

int main(int argc, char *argv[]) {
        _cleanup_(invocation_done) Invocation inv = {};
        _cleanup_(runtime_config_done) RuntimeConfig rc = {};
        if (parse_invocation(argc, argv, &inv) < 0) {
                fprintf(stderr, "stockade-runc: out of memory\n");
                return EXIT_FAILURE;
        }
        int r = load_runtime_config(inv.config_path, &rc);
        if (r < 0)
                return fail(&inv, "stockade: cannot read the configuration '%s': %s", inv.config_path,
                            r == -EPERM ? "it must be root's and writable by root only, as must the directories above it" : strerror(-r));

        /* runc prints its help and does nothing else. */
        if (!inv.command || inv.help || help_only(&inv) || in_list(inv.command, passed_commands, ELEMENTSOF(passed_commands)))
                return exec_runc(&inv, rc.runc);
        Timings timings;
        timings_start(&timings);
        if (streq(inv.command, "create") || streq(inv.command, "run")) {
                r = cmd_create(&inv, &rc, &timings);
                timings_write(&timings, inv.command, inv.id);
                return r;
        }
        if (streq(inv.command, "exec"))
                return cmd_exec(&inv, &rc);
        if (streq(inv.command, "delete")) {
                r = cmd_delete(&inv, &rc, &timings);
                timings_write(&timings, inv.command, inv.id);
                return r;
        }
        if (streq(inv.command, "checkpoint") || streq(inv.command, "restore"))
                return fail(&inv, "stockade: 'runc %s' is refused: a checkpoint is restored without Stockade's checks", inv.command);
        return fail(&inv, "stockade: unknown runc command '%s'", inv.command);
}
