/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/capability.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "seccomp-profile.h"
#include "spec.h"
#include "util.h"

/* Namespaces a container may never share with the VM. */
static const char *const isolated_namespaces[] = { "network", "pid", "ipc", "uts" };

/* Device nodes a container may have, privileged or not. */
static const char *const safe_devices[] = {
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
        "/dev/tty", "/dev/console", "/dev/ptmx", "/dev/fuse", "/dev/net/tun",
};

/* Kept even for --privileged, which clears them. */
static const char *const masked_paths[] = {
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
};
static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static bool path_below(const char *path, const char *dir) {
        size_t n = strlen(dir);
        if (n == 1 && dir[0] == '/')
                return true;
        return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool string_in(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

static cJSON *ensure_object(cJSON *parent, const char *name) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
        if (cJSON_IsObject(o))
                return o;
        cJSON_DeleteItemFromObjectCaseSensitive(parent, name);
        return cJSON_AddObjectToObject(parent, name);
}

static cJSON *ensure_array(cJSON *parent, const char *name) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(parent, name);
        if (cJSON_IsArray(a))
                return a;
        cJSON_DeleteItemFromObjectCaseSensitive(parent, name);
        return cJSON_AddArrayToObject(parent, name);
}

/* ---- namespaces and ids ---- */

static bool same_file(const char *a, const char *b) {
        struct stat sa, sb;
        return stat(a, &sa) >= 0 && stat(b, &sb) >= 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int check_namespaces(cJSON *linux_obj, const SpecPolicy *p, char **reterr) {
        cJSON *namespaces = ensure_array(linux_obj, "namespaces");
        if (!namespaces)
                return -ENOMEM;

        for (size_t i = 0; i < ELEMENTSOF(isolated_namespaces); i++) {
                const char *type = isolated_namespaces[i];
                const cJSON *ns, *found = NULL;
                cJSON_ArrayForEach(ns, namespaces)
                        if (streq(json_get_string(ns, "type") ?: "", type))
                                found = ns;
                const char *path = json_get_string(found, "path");
                if (!found)
                        return error_set(reterr, -EPERM, "stockade: containers can't share the %s namespace with the VM", type);
                if (!path || path[0] == '\0')
                        continue;

                /* The runtime runs in the VM's namespaces; /proc/self/ns/ names "net" what the spec calls "network". */
                char vm[PATH_MAX];
                snprintf(vm, sizeof(vm), "%s/self/ns/%s", p->proc_root, streq(type, "network") ? "net" : type);
                struct stat st;
                if (stat(path, &st) < 0)
                        return error_set(reterr, -errno, "stockade: can't inspect the %s namespace '%s': %m", type, path);
                if (same_file(path, vm))
                        return error_set(reterr, -EPERM, "stockade: containers can't share the %s namespace with the VM", type);
        }

        /* A user namespace of our own and a cgroup namespace, whatever was asked. */
        cJSON *ns, *next;
        for (ns = namespaces->child; ns; ns = next) {
                next = ns->next;
                const char *type = json_get_string(ns, "type") ?: "";
                if (streq(type, "user") || streq(type, "cgroup"))
                        cJSON_Delete(cJSON_DetachItemViaPointer(namespaces, ns));
        }
        const char *added[] = { "user", "cgroup" };
        for (size_t i = 0; i < ELEMENTSOF(added); i++) {
                cJSON *entry = cJSON_CreateObject();
                if (!entry || !cJSON_AddItemToArray(namespaces, entry) || !cJSON_AddStringToObject(entry, "type", added[i]))
                        return -ENOMEM;
        }
        return 0;
}

static int set_id_mappings(cJSON *linux_obj, const SpecPolicy *p) {
        const char *names[] = { "uidMappings", "gidMappings" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                cJSON_DeleteItemFromObjectCaseSensitive(linux_obj, names[i]);
                cJSON *list = cJSON_AddArrayToObject(linux_obj, names[i]);
                cJSON *m = cJSON_CreateObject();
                if (!list || !m || !cJSON_AddItemToArray(list, m) ||
                    !cJSON_AddNumberToObject(m, "containerID", 0) ||
                    !cJSON_AddNumberToObject(m, "hostID", p->base) ||
                    !cJSON_AddNumberToObject(m, "size", p->count))
                        return -ENOMEM;
        }
        return 0;
}

static int check_user(const cJSON *process, const SpecPolicy *p, char **reterr) {
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(process, "user");
        const char *ids[] = { "uid", "gid" };
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(user, ids[i]);
                if (id && !json_is_int(id, 0, (int64_t) p->count - 1))
                        return error_set(reterr, -ERANGE, "stockade: %s %.0f is outside the container's %" PRIu32 " ids",
                                         ids[i], cJSON_GetNumberValue(id), p->count);
        }
        return 0;
}

/* The engine opens ping sockets to every gid ("0 2147483647"); inside the user namespace
 * only the mapped gids exist, and the kernel refuses the rest. */
static int fit_sysctls(cJSON *linux_obj, const SpecPolicy *p) {
        cJSON *sysctl = cJSON_GetObjectItemCaseSensitive(linux_obj, "sysctl");
        if (!cJSON_GetObjectItemCaseSensitive(sysctl, "net.ipv4.ping_group_range"))
                return 0;
        char range[32];
        snprintf(range, sizeof(range), "0 %" PRIu32, p->count - 1);
        return cJSON_ReplaceItemInObjectCaseSensitive(sysctl, "net.ipv4.ping_group_range", cJSON_CreateString(range)) ? 0 : -ENOMEM;
}

/* ---- capabilities ---- */

int spec_read_cap_bound(uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r = read_full_file(AT_FDCWD, "/proc/self/status", 64 * 1024, &text, NULL);
        if (r < 0)
                return r;
        const char *line = strstr(text, "\nCapBnd:");
        if (!line)
                return -EBADMSG;
        *ret = strtoull(line + strlen("\nCapBnd:"), NULL, 16);
        return 0;
}

static bool cap_allowed(const char *name, uint64_t bound) {
        char lower[64];
        size_t n = strlen(name);
        if (n >= sizeof(lower))
                return false;
        for (size_t i = 0; i <= n; i++)
                lower[i] = (char) tolower((unsigned char) name[i]);
        cap_value_t value;
        return cap_from_name(lower, &value) == 0 && value < 64 && (bound & (UINT64_C(1) << value));
}

int spec_clamp_process(cJSON *process, uint64_t cap_bound) {
        cJSON *caps = cJSON_GetObjectItemCaseSensitive(process, "capabilities"), *set;
        cJSON_ArrayForEach(set, caps) {
                if (!cJSON_IsArray(set))
                        continue;
                cJSON *c, *next;
                for (c = set->child; c; c = next) {
                        next = c->next;
                        if (!cJSON_IsString(c) || !cap_allowed(c->valuestring, cap_bound))
                                cJSON_Delete(cJSON_DetachItemViaPointer(set, c));
                }
        }
        return 0;
}

/* ---- devices, masked paths ---- */

static void filter_devices(cJSON *linux_obj) {
        cJSON *devices = cJSON_GetObjectItemCaseSensitive(linux_obj, "devices"), *d, *next;
        if (!cJSON_IsArray(devices))
                return;
        for (d = devices->child; d; d = next) {
                next = d->next;
                const char *path = json_get_string(d, "path");
                if (!path || !string_in(path, safe_devices, ELEMENTSOF(safe_devices)))
                        cJSON_Delete(cJSON_DetachItemViaPointer(devices, d));
        }
}

static int ensure_paths(cJSON *linux_obj, const char *name, const char *const *paths, size_t n) {
        cJSON *list = ensure_array(linux_obj, name);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                bool present = false;
                const cJSON *item;
                cJSON_ArrayForEach(item, list)
                        present = present || (cJSON_IsString(item) && streq(item->valuestring, paths[i]));
                if (!present && !cJSON_AddItemToArray(list, cJSON_CreateString(paths[i])))
                        return -ENOMEM;
        }
        return 0;
}

/* ---- mounts ---- */

static bool is_bind(const cJSON *m, bool *ret_recursive) {
        const char *type = json_get_string(m, "type");
        bool bind = type && streq(type, "bind"), recursive = false;
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(m, "options"))
                if (cJSON_IsString(o)) {
                        recursive = recursive || streq(o->valuestring, "rbind");
                        bind = bind || streq(o->valuestring, "bind") || streq(o->valuestring, "rbind");
                }
        *ret_recursive = recursive;
        return bind;
}

static bool inode_of(const char *path, struct stat *ret) {
        return stat(path, ret) >= 0;
}

/* Is source (resolved) one of the restricted paths, inside one, or holding one? Paths are
 * compared both as strings and by inode, so that a bind mount of a restricted directory
 * elsewhere (a volume with device=/etc) is caught too. The engine's own files live below
 * its data root, itself restricted: for them only "is or holds" counts. */
static bool restricted_hit(const char *real, bool own, const SpecPolicy *p) {
        struct stat src;
        if (!inode_of(real, &src))
                return true;

        for (size_t i = 0; i < p->n_restricted; i++) {
                char r_real[PATH_MAX];
                const char *r = realpath(p->restricted[i], r_real) ? r_real : p->restricted[i];
                if (!own && (path_below(real, r) || path_below(r, real)))
                        return true;

                /* Walk up from the restricted path: meeting the source means the source holds it. */
                char walk[PATH_MAX];
                snprintf(walk, sizeof(walk), "%s", r);
                for (;;) {
                        struct stat st;
                        if (inode_of(walk, &st) && st.st_dev == src.st_dev && st.st_ino == src.st_ino)
                                return true;
                        char *slash = strrchr(walk, '/');
                        if (!slash || slash == walk)
                                break;
                        *slash = '\0';
                }
        }
        struct stat root;
        return inode_of("/", &root) && root.st_dev == src.st_dev && root.st_ino == src.st_ino;
}

static bool own_engine_path(const char *real, const SpecPolicy *p) {
        char init[PATH_MAX];
        if (p->engine_init && realpath(p->engine_init, init) && streq(real, init))
                return true;
        if (!p->engine_root)
                return false;
        char root[PATH_MAX], dir[PATH_MAX + 128];
        const char *r = realpath(p->engine_root, root) ? root : p->engine_root;
        snprintf(dir, sizeof(dir), "%s/containers/%s", r, p->container_id);
        if (path_below(real, dir))
                return true;
        snprintf(dir, sizeof(dir), "%s/volumes", r);
        return path_below(real, dir) && !streq(real, dir);
}

static int check_bind_source(const char *source, const SpecPolicy *p, char **reterr) {
        char real[PATH_MAX];
        if (!realpath(source, real))
                return error_set(reterr, -errno, "stockade: can't mount %s: %m", source);

        if (p->engine_socket && same_file(real, p->engine_socket)) {
                int r = p->engine_socket_allowed ? p->engine_socket_allowed(p->userdata) : 0;
                if (r > 0)
                        return 0;
                return error_set(reterr, -EPERM, "stockade: can't mount %s: the engine socket is only for the admin's allowed images%s",
                                 source, r < 0 ? " (the container's image could not be determined)" : "");
        }

        bool own = own_engine_path(real, p);
        if (restricted_hit(real, own, p))
                return error_set(reterr, -EPERM, "stockade: can't mount %s: restricted VM path", source);
        if (own || !(p->allowed_enforced || p->n_allowed > 0))
                return 0;
        for (size_t i = 0; i < p->n_allowed; i++) {
                char dir[PATH_MAX];
                if (realpath(p->allowed[i], dir) && path_below(real, dir))
                        return 0;
        }
        return error_set(reterr, -EPERM, "stockade: can't mount %s: not below a directory allowed by the admin (filesharingAllowedDirectories)",
                         source);
}

static int check_mounts(cJSON *spec, const SpecPolicy *p, SpecBinds *binds, char **reterr) {
        cJSON *mounts = cJSON_GetObjectItemCaseSensitive(spec, "mounts"), *m;
        int index = 0;
        cJSON_ArrayForEach(m, mounts) {
                bool recursive;
                if (is_bind(m, &recursive)) {
                        const char *source = json_get_string(m, "source");
                        if (!source)
                                return error_set(reterr, -EINVAL, "stockade: bind mount %d has no source", index);
                        int r = check_bind_source(source, p, reterr);
                        if (r < 0)
                                return r;
                        if (binds->n >= SPEC_BINDS_MAX)
                                return error_set(reterr, -E2BIG, "stockade: more than %d bind mounts", SPEC_BINDS_MAX);
                        binds->binds[binds->n++] = (SpecBind) { .index = index, .recursive = recursive };
                }
                index++;
        }
        return 0;
}

int spec_rewrite(cJSON *spec, const SpecPolicy *p, SpecBinds *ret_binds, char **reterr) {
        if (!cJSON_IsObject(spec))
                return error_set(reterr, -EINVAL, "stockade: config.json is not a JSON object");
        cJSON *linux_obj = ensure_object(spec, "linux");
        cJSON *process = cJSON_GetObjectItemCaseSensitive(spec, "process");
        if (!linux_obj)
                return -ENOMEM;

        SpecBinds binds = {};
        int r = check_namespaces(linux_obj, p, reterr);
        if (r >= 0)
                r = check_user(process, p, reterr);
        if (r >= 0)
                r = check_mounts(spec, p, &binds, reterr);
        if (r < 0)
                return r;

        if ((r = set_id_mappings(linux_obj, p)) < 0 ||
            (r = fit_sysctls(linux_obj, p)) < 0 ||
            (r = spec_clamp_process(process, p->cap_bound)) < 0 ||
            (r = ensure_paths(linux_obj, "maskedPaths", masked_paths, ELEMENTSOF(masked_paths))) < 0 ||
            (r = ensure_paths(linux_obj, "readonlyPaths", readonly_paths, ELEMENTSOF(readonly_paths))) < 0 ||
            (r = seccomp_profile_narrow(linux_obj, p->listener_path, p->container_id)) < 0)
                return error_set(reterr, r, "stockade: cannot rewrite config.json: %s", strerror(-r));
        filter_devices(linux_obj);

        *ret_binds = binds;
        return 0;
}

/* "busybox" → "docker.io/library/busybox:latest"; "*" patterns keep their tag. */
static void image_normalize(const char *image, char *out, size_t size) {
        const char *slash = strchr(image, '/');
        size_t first = slash ? (size_t) (slash - image) : 0;
        bool has_domain = slash && (memchr(image, '.', first) || memchr(image, ':', first) ||
                                    (first == strlen("localhost") && STARTSWITH(image, "localhost")));
        const char *last = strrchr(image, '/');
        bool has_tag = strchr(last ? last : image, ':') || strchr(image, '@');
        snprintf(out, size, "%s%s%s%s", has_domain ? "" : "docker.io/", has_domain || slash ? "" : "library/", image,
                 has_tag ? "" : ":latest");
}

bool spec_image_matches(const char *image, const char *pattern) {
        if (streq(pattern, "*"))
                return true;
        char img[512], pat[512];
        image_normalize(image, img, sizeof(img));
        image_normalize(pattern, pat, sizeof(pat));
        size_t n = strlen(pat);
        if (n >= 2 && streq(pat + n - 2, ":*"))
                return strncmp(img, pat, n - 1) == 0;
        return streq(img, pat);
}
