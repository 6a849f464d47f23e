/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/capability.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "mount-util.h"
#include "procfs-render.h"
#include "seccomp-profile.h"
#include "source.h"
#include "spec.h"
#include "idmap.h"
#include "uidrange.h"
#include "util.h"

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


/* Whether array (a JSON array, or anything else) holds the string s. */
static bool string_array_contains(const cJSON *array, const char *s) {
        const cJSON *item;
        if (!cJSON_IsArray(array))
                return false;
        cJSON_ArrayForEach(item, array)
                if (cJSON_IsString(item) && streq(item->valuestring, s))
                        return true;
        return false;
}

static bool string_in(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; s && i < n; i++)
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

static const struct {
        const char *type;
        int clone_flag;
} namespace_kinds[] = {
        { "network", CLONE_NEWNET }, { "pid", CLONE_NEWPID }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
};

int spec_namespace_open(const char *path, int *ret_fd) {
        /* Opened for reading only once it is known to be a namespace file: a spec names it,
         * and opening a device as root can have effects. */
        _cleanup_close_ int path_fd = RET_NERRNO(open(path, O_PATH | O_CLOEXEC));
        if (path_fd < 0)
                return path_fd;
        struct statfs sf;
        if (fstatfs(path_fd, &sf) < 0)
                return -errno;
        if (sf.f_type != NSFS_MAGIC)
                return -EINVAL;
        char reopen[64];
        snprintf(reopen, sizeof(reopen), "/proc/self/fd/%d", path_fd);
        int fd = RET_NERRNO(open(reopen, O_RDONLY | O_CLOEXEC));
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

/* The id of another container that holds the range at base, NULL when none does. */
static const char *range_holder(const SpecPolicy *p, uint32_t base) {
        const cJSON *c;
        cJSON_ArrayForEach(c, p->containers) {
                const char *id = json_get_string(c, "id");
                if (id && container_id_valid(id) && !streq(id, p->container_id) &&
                    json_is_int(cJSON_GetObjectItemCaseSensitive(c, "uid_base"), base, base))
                        return id;
        }
        return NULL;
}

/* A namespace path is joined only when it is another Stockade container's: the user
 * namespace that owns it maps a range the agent gave out. Checked on an open fd that the
 * caller then pins for runc, with that user namespace (*ret_userns). */
static int check_namespace_path(const char *type, int clone_flag, const char *path, const SpecPolicy *p, int *ret_fd,
                                int *ret_userns, uint32_t *ret_base, const char **ret_holder, char **reterr) {
        _cleanup_close_ int fd = -EBADF;
        int r = spec_namespace_open(path, &fd);
        if (r == -EINVAL || (r >= 0 && ioctl(fd, NS_GET_NSTYPE) != clone_flag))
                return error_set(reterr, -EINVAL, "stockade: '%s' is not a %s namespace", path, type);
        if (r < 0)
                return error_set(reterr, r, "stockade: can't inspect the %s namespace '%s': %s", type, path, strerror(-r));

        /* The runtime runs in the VM's namespaces; /proc/self/ns/ names "net" what the spec calls "network". */
        char vm[PATH_MAX];
        snprintf(vm, sizeof(vm), "%s/self/ns/%s", p->proc_root, streq(type, "network") ? "net" : type);
        struct stat st, vm_st;
        if (fstat(fd, &st) < 0 || stat(vm, &vm_st) < 0)
                return error_set(reterr, -errno, "stockade: can't inspect the %s namespace '%s': %m", type, path);
        if (st.st_dev == vm_st.st_dev && st.st_ino == vm_st.st_ino)
                return error_set(reterr, -EPERM, "stockade: containers can't share the %s namespace with the VM", type);

        _cleanup_close_ int userns = RET_NERRNO(ioctl(fd, NS_GET_USERNS));
        uint32_t base;
        const char *holder = userns >= 0 && p->userns_base && p->userns_base(p->userdata, userns, &base) >= 0 ? range_holder(p, base) : NULL;
        if (!holder)
                return error_set(reterr, -EPERM, "stockade: can't join the %s namespace '%s': it is not a Stockade container's", type, path);
        *ret_fd = TAKE_FD(fd);
        *ret_userns = TAKE_FD(userns);
        *ret_base = base;
        *ret_holder = holder;
        return 0;
}

static bool same_inode(int a, int b) {
        struct stat sa, sb;
        return fstat(a, &sa) >= 0 && fstat(b, &sb) >= 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The namespaces joined, and the user namespace that owns them all, which the container
 * joins too: its processes then have the same ids and capabilities over the namespaces
 * it shares as the containers it joins (a new proc of a joined pid namespace, signals,
 * shared memory owners). */
static int check_joins(cJSON *namespaces, const SpecPolicy *p, SpecBinds *binds, char **reterr) {
        _cleanup_close_ int userns = -EBADF;
        const char *first_type = NULL, *first_holder = NULL;
        uint32_t base = 0;
        for (size_t i = 0; i < ELEMENTSOF(namespace_kinds); i++) {
                const char *type = namespace_kinds[i].type;
                const cJSON *ns, *found = NULL;
                cJSON_ArrayForEach(ns, namespaces)
                        if (streq(json_get_string(ns, "type") ?: "", type))
                                found = ns;
                const char *path = json_get_string(found, "path"), *holder = NULL;
                if (!found)
                        return error_set(reterr, -EPERM, "stockade: containers can't share the %s namespace with the VM", type);
                if (!path || path[0] == '\0')
                        continue;
                int fd = -EBADF, owner = -EBADF;
                int r = check_namespace_path(type, namespace_kinds[i].clone_flag, path, p, &fd, &owner, &base, &holder, reterr);
                if (r < 0)
                        return r;
                binds->joins[binds->n_joins++] = (SpecJoin) { .type = type, .fd = fd };
                if (userns < 0) {
                        userns = owner;
                        first_type = type, first_holder = holder;
                        continue;
                }
                bool same = same_inode(userns, owner);
                safe_close(owner);
                if (!same)
                        return error_set(reterr, -EPERM, "stockade: can't join both the %s namespace of container '%s' and the %s namespace of container '%s': their user namespaces differ",
                                         first_type, first_holder, type, holder);
        }
        if (userns < 0)
                return 0;
        if (base != p->base)
                return error_set(reterr, -EPERM, "stockade: can't join the %s namespace of container '%s': this container was not given its uid range %" PRIu32,
                                 first_type, first_holder, base);
        binds->joins[binds->n_joins++] = (SpecJoin) { .type = "user", .fd = TAKE_FD(userns) };
        return 0;
}

static int check_namespaces(cJSON *linux_obj, const SpecPolicy *p, SpecBinds *binds, char **reterr) {
        cJSON *namespaces = ensure_array(linux_obj, "namespaces");
        if (!namespaces)
                return -ENOMEM;
        int r = check_joins(namespaces, p, binds, reterr);
        if (r < 0)
                return r;

        /* A user namespace (our own, or pinned later as the joined one) and a cgroup
         * namespace, whatever was asked; no namespace of the VM's or anyone's by path for
         * these three. */
        cJSON *ns, *next;
        for (ns = namespaces->child; ns; ns = next) {
                next = ns->next;
                const char *type = json_get_string(ns, "type") ?: "", *path = json_get_string(ns, "path");
                bool known = streq(type, "user") || streq(type, "cgroup") || streq(type, "mount");
                for (size_t i = 0; i < ELEMENTSOF(namespace_kinds); i++)
                        known = known || streq(type, namespace_kinds[i].type);
                if (!known)
                        return error_set(reterr, -EINVAL, "stockade: unknown namespace type '%s'", type);
                if ((streq(type, "user") || streq(type, "cgroup") || streq(type, "mount")) && path && path[0])
                        return error_set(reterr, -EPERM, "stockade: containers can't join the %s namespace '%s'", type, path);
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

/* Also for a user namespace joined by path: runc 1.1.5 does not write the maps then, but
 * refuses a user namespace without them ("no uid mappings found"). */
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
        for (size_t i = 0; i < n; i++)
                if (!string_array_contains(list, paths[i]) && !cJSON_AddItemToArray(list, cJSON_CreateString(paths[i])))
                        return -ENOMEM;
        return 0;
}

/* ---- mounts ---- */

/* File systems a spec may mount besides binds: each is made fresh for the container. */
static const char *const fresh_fstypes[] = { "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2" };
/* What a volume driver may mount that is no view of the VM's own files. */
static const char *const volume_fstypes[] = { "tmpfs", "nfs", "nfs4", "cifs", "smb3" };

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

static bool below_any(int fd, const char *const *dirs, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (source_below(fd, dirs[i]) > 0)
                        return true;
        return false;
}

/* Is fd's object a restricted path, inside one (unless it is the engine's own file), or
 * holding one (by inode, wherever it is mounted: a volume with device=/etc is /etc)? */
static bool restricted_hit(int fd, bool own, const SpecPolicy *p) {
        if (source_holds(fd, "/") != 0)
                return true;
        for (size_t i = 0; i < p->n_restricted; i++)
                if ((!own && source_below(fd, p->restricted[i]) != 0) || source_holds(fd, p->restricted[i]) != 0)
                        return true;
        return false;
}

typedef enum Managed {
        MANAGED_NOT,    /* not the engine's: a host share or nothing */
        MANAGED_OWN,    /* the engine's file for this container */
        MANAGED_ORIGIN, /* a volume a driver mounted from elsewhere: *ret_origin is checked instead */
} Managed;

/* A volume's data: "<engine root>/volumes/NAME/_data" or below. A directory there on the
 * engine's own mount is the engine's; a file system mounted there only for the volume
 * (tmpfs, nfs, ...) is the volume's; a bind of a VM directory is what it binds. */
static int engine_volume(int fd, const SpecPolicy *p, int *ret_origin) {
        _cleanup_free_ char *volumes = NULL, *volumes_name = NULL, *name = NULL, *data = NULL;
        if (asprintf(&volumes, "%s/volumes", p->engine_root) < 0)
                return -ENOMEM;
        _cleanup_close_ int volumes_fd = RET_NERRNO(open(volumes, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (volumes_fd < 0 || source_name(volumes_fd, &volumes_name) < 0 || source_name(fd, &name) < 0)
                return MANAGED_NOT;
        const char *rel = path_startswith(name, volumes_name), *slash = rel ? strchr(rel, '/') : NULL;
        if (!slash || slash == rel || !(STARTSWITH(slash, "/_data/") || streq(slash, "/_data")))
                return MANAGED_NOT;
        if (asprintf(&data, "%s/%.*s/_data", volumes_name, (int) (slash - rel), rel) < 0)
                return -ENOMEM;
        _cleanup_close_ int data_fd = RET_NERRNO(open(data, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        SourceId v, d;
        if (data_fd < 0 || source_below(fd, data) <= 0 || source_id(volumes_fd, &v) < 0 || source_id(data_fd, &d) < 0)
                return MANAGED_NOT;
        if (d.mnt_id == v.mnt_id)
                return MANAGED_OWN;
        char fstype[64];
        int r = source_origin(fd, ret_origin, fstype, sizeof(fstype));
        if (r < 0)
                return r;
        if (r > 0)
                return MANAGED_ORIGIN;
        return string_in(fstype, volume_fstypes, ELEMENTSOF(volume_fstypes)) ? MANAGED_OWN : MANAGED_NOT;
}

/* 1: fd lies in the engine's files of container id: Docker's ENGINE_ROOT/containers/ID/,
 * containers/storage's (podman) STORAGE/overlay-containers/ID/userdata/. */
static int below_container_files(int fd, const SpecPolicy *p, const char *id) {
        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "%s/containers/%s", p->engine_root, id) < 0)
                return -ENOMEM;
        int r = source_below(fd, dir);
        for (size_t i = 0; r == 0 && i < p->n_storage; i++) {
                free(dir);
                if (asprintf(&dir, "%s/overlay-containers/%s/userdata", p->storage[i], id) < 0)
                        return -ENOMEM;
                r = source_below(fd, dir);
        }
        return r;
}

/* What the engine manages for this container: its init binary (read-only), its own
 * containers/ID/ files and, when it joins namespaces, those of the containers in the range
 * it shares, volumes. */
static int engine_managed(int fd, const SpecPolicy *p, bool joins, bool *ret_read_only, int *ret_origin) {
        struct stat st, init;
        if (p->engine_init && fstat(fd, &st) >= 0 && stat(p->engine_init, &init) >= 0 && S_ISREG(st.st_mode) &&
            st.st_dev == init.st_dev && st.st_ino == init.st_ino) {
                *ret_read_only = true;
                return MANAGED_OWN;
        }
        if (!p->engine_root)
                return MANAGED_NOT;
        if (below_container_files(fd, p, p->container_id) > 0)
                return MANAGED_OWN;
        const cJSON *c, *shared = joins ? p->containers : NULL;
        cJSON_ArrayForEach(c, shared) {
                const char *id = json_get_string(c, "id");
                if (id && container_id_valid(id) && json_is_int(cJSON_GetObjectItemCaseSensitive(c, "uid_base"), p->base, p->base) &&
                    below_container_files(fd, p, id) > 0)
                        return MANAGED_OWN;
        }
        return engine_volume(fd, p, ret_origin);
}

static int check_bind_source(const char *source, const SpecPolicy *p, bool joins, SpecBind *bind, char **reterr) {
        _cleanup_close_ int fd = -EBADF, origin = -EBADF;
        int r = source_open(source, &fd);
        if (r < 0)
                return error_set(reterr, r, "stockade: can't mount %s: %s", source, strerror(-r));

        struct stat st, sock;
        if (p->engine_socket && fstat(fd, &st) >= 0 && stat(p->engine_socket, &sock) >= 0 && st.st_dev == sock.st_dev &&
            st.st_ino == sock.st_ino) {
                /* The container gets the agent's proxy for it, never the engine's own socket. */
                _cleanup_free_ char *why = NULL;
                int proxy_fd = -EBADF;
                r = p->engine_socket_proxy ? p->engine_socket_proxy(p->userdata, &proxy_fd, &why) : -EPERM;
                if (r < 0)
                        return error_set(reterr, -EPERM, "stockade: can't mount %s: the engine socket is only for the admin's allowed images (%s)",
                                         source, why ? why : strerror(-r));
                bind->fd = proxy_fd;
                return 0;
        }

        bool read_only = false;
        r = engine_managed(fd, p, joins, &read_only, &origin);
        if (r < 0)
                return error_set(reterr, r, "stockade: can't mount %s: %s", source, strerror(-r));
        int checked = r == MANAGED_ORIGIN ? origin : fd;
        if (restricted_hit(checked, r == MANAGED_OWN, p) ||
            (r != MANAGED_OWN && !below_any(checked, p->shares, p->n_shares)))
                return error_set(reterr, -EPERM, "stockade: can't mount %s: restricted VM path", source);
        bind->fd = TAKE_FD(fd);
        bind->read_only = read_only;
        return 0;
}

static int check_mounts(cJSON *spec, const SpecPolicy *p, SpecBinds *binds, char **reterr) {
        cJSON *mounts = cJSON_GetObjectItemCaseSensitive(spec, "mounts"), *m;
        int index = 0;
        cJSON_ArrayForEach(m, mounts) {
                bool recursive;
                const char *source = json_get_string(m, "source"), *type = json_get_string(m, "type");
                if (is_bind(m, &recursive)) {
                        if (!source)
                                return error_set(reterr, -EINVAL, "stockade: bind mount %d has no source", index);
                        if (binds->n >= SPEC_BINDS_MAX)
                                return error_set(reterr, -E2BIG, "stockade: more than %d bind mounts", SPEC_BINDS_MAX);
                        SpecBind *b = &binds->binds[binds->n];
                        *b = (SpecBind) { .index = index, .recursive = recursive, .fd = -EBADF };
                        int r = check_bind_source(source, p, binds->n_joins > 0, b, reterr);
                        if (r < 0)
                                return r;
                        binds->n++;
                } else if (!type || !string_in(type, fresh_fstypes, ELEMENTSOF(fresh_fstypes)))
                        return error_set(reterr, -EPERM, "stockade: can't mount %s (%s): containers mount only binds and proc, sysfs, tmpfs, devpts, mqueue and cgroup file systems",
                                         source ? source : "?", type ? type : "no type");
                index++;
        }
        return 0;
}

/* An engine's overlay mounted elsewhere (buildah's RUN bundle binds the image's at
 * TMPDIR/buildahN/mnt/rootfs): fd is the root of an overlay whose upper directory lies in
 * the engines' storage. */
static bool engine_overlay(int fd, const SpecPolicy *p) {
        _cleanup_free_ char *upper = NULL;
        _cleanup_close_ int upper_fd = -EBADF;
        return idmap_overlay_upper(fd, &upper) >= 0 && source_open(upper, &upper_fd) >= 0 && below_any(upper_fd, p->storage, p->n_storage);
}

/* The root filesystem lies in an engine's storage, and holds nothing restricted. */
static int check_root(cJSON *spec, const SpecPolicy *p, SpecBinds *binds, char **reterr) {
        const char *path = json_get_string(cJSON_GetObjectItemCaseSensitive(spec, "root"), "path");
        if (!path)
                return error_set(reterr, -EINVAL, "stockade: config.json has no root.path");
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s%s%s", path[0] == '/' ? "" : p->bundle ? p->bundle : ".", path[0] == '/' ? "" : "/", path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = -EBADF;
        int r = source_open(full, &fd);
        if (r < 0)
                return error_set(reterr, r, "stockade: can't use the root filesystem '%s': %s", path, strerror(-r));
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || restricted_hit(fd, true, p) ||
            !(below_any(fd, p->storage, p->n_storage) || engine_overlay(fd, p)))
                return error_set(reterr, -EPERM, "stockade: the root filesystem '%s' is not an engine's container storage", path);
        binds->root_fd = TAKE_FD(fd);
        return 0;
}

/* ---- hooks, annotations, fields ---- */

static const char *const hook_kinds[] = { "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop" };

/* Hooks run as the VM's root outside every namespace: only the executables the agent's
 * configuration names (by inode: the engine's "/proc/PID/exe" is its binary). */
static int check_hooks(const cJSON *spec, const SpecPolicy *p, char **reterr) {
        const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(spec, "hooks"), *kind, *hook;
        if (!hooks || cJSON_IsNull(hooks))
                return 0;
        if (!cJSON_IsObject(hooks))
                return error_set(reterr, -EINVAL, "stockade: config.json's hooks is not an object");
        cJSON_ArrayForEach(kind, hooks) {
                if (!string_in(kind->string, hook_kinds, ELEMENTSOF(hook_kinds)) || !(cJSON_IsArray(kind) || cJSON_IsNull(kind)))
                        return error_set(reterr, -EINVAL, "stockade: unknown hook kind '%s'", kind->string);
                cJSON_ArrayForEach(hook, kind) {
                        const char *path = json_get_string(hook, "path") ?: "";
                        bool allowed = false;
                        for (size_t i = 0; i < p->n_hooks && !allowed; i++)
                                allowed = same_file(path, p->hooks[i]);
                        if (!allowed)
                                return error_set(reterr, -EPERM, "stockade: hook '%s' is not allowed: hooks run as VM root outside the container ('hooks' in stockaded.json lists those that may)",
                                                 path);
                }
        }
        return 0;
}

/* Annotations that no runtime acts on; runc and crun act on others (org.systemd.property.*,
 * org.criu.config, run.oci.*) outside the container. */
static const char *const inert_annotations[] = {
        "org.opencontainers.image.", "com.docker.", "io.kubernetes.", "io.containerd.", "io.podman.", "io.container.manager", "nerdctl/",
};

static int check_annotations(const cJSON *spec, char **reterr) {
        const cJSON *a, *annotations = cJSON_GetObjectItemCaseSensitive(spec, "annotations");
        if (annotations && !cJSON_IsObject(annotations) && !cJSON_IsNull(annotations))
                return error_set(reterr, -EINVAL, "stockade: config.json's annotations is not an object");
        cJSON_ArrayForEach(a, annotations) {
                bool inert = false;
                for (size_t i = 0; i < ELEMENTSOF(inert_annotations) && !inert; i++)
                        inert = STARTSWITH(a->string, inert_annotations[i]);
                if (!inert)
                        return error_set(reterr, -EPERM, "stockade: annotation '%s' is not allowed: runtimes act on annotations outside the container",
                                         a->string);
        }
        return 0;
}

static const char *const spec_fields[] = { "ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux" };
static const char *const process_fields[] = {
        "terminal", "consoleSize", "cwd", "env", "args", "commandLine", "rlimits", "apparmorProfile", "capabilities",
        "noNewPrivileges", "oomScoreAdj", "selinuxLabel", "user", "ioPriority",
};
static const char *const root_fields[] = { "path", "readonly" };
static const char *const linux_fields[] = {
        "namespaces", "uidMappings", "gidMappings", "devices", "cgroupsPath", "resources", "rootfsPropagation",
        "seccomp", "sysctl", "maskedPaths", "readonlyPaths", "mountLabel",
};
static const char *const resources_fields[] = {
        "devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified",
};

/* The next character of a key as runc's decoder (Go's encoding/json) matches keys to fields:
 * ASCII letters in either case are one, and so are 'k' and KELVIN SIGN (U+212A), 's' and
 * LATIN SMALL LETTER LONG S (U+017F), Unicode's only other spellings of ASCII letters. */
static int key_fold_next(const char **p) {
        const unsigned char *s = (const unsigned char *) *p;
        if (s[0] == 0xE2 && s[1] == 0x84 && s[2] == 0xAA) {
                *p += 3;
                return 'k';
        }
        if (s[0] == 0xC5 && s[1] == 0xBF) {
                *p += 2;
                return 's';
        }
        if (*s)
                (*p)++;
        return *s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s;
}

static int key_fold_compare(const void *a, const void *b) {
        const char *x = *(const char *const *) a, *y = *(const char *const *) b;
        for (;;) {
                int cx = key_fold_next(&x), cy = key_fold_next(&y);
                if (cx != cy || cx == 0)
                        return cx - cy;
        }
}

int spec_ambiguous_key(const cJSON *item, const char **ret_key) {
        size_t n = 0;
        const cJSON *child;
        cJSON_ArrayForEach(child, item) {
                int r = spec_ambiguous_key(child, ret_key);
                if (r != 0)
                        return r;
                n++;
        }
        if (!cJSON_IsObject(item) || n < 2)
                return 0;
        _cleanup_free_ const char **keys = malloc(n * sizeof(char *));
        if (!keys)
                return -ENOMEM;
        n = 0;
        cJSON_ArrayForEach(child, item)
                keys[n++] = child->string ?: "";
        qsort(keys, n, sizeof(char *), key_fold_compare);
        for (size_t i = 1; i < n; i++)
                if (key_fold_compare(&keys[i - 1], &keys[i]) == 0) {
                        *ret_key = keys[i];
                        return 1;
                }
        return 0;
}

/* Only the fields Stockade knows reach runc. */
static void keep_fields(cJSON *object, const char *const *names, size_t n) {
        cJSON *item, *next;
        for (item = cJSON_IsObject(object) ? object->child : NULL; item; item = next) {
                next = item->next;
                if (!string_in(item->string, names, n))
                        cJSON_Delete(cJSON_DetachItemViaPointer(object, item));
        }
}

static int add_device_rule(cJSON *rules, bool allow, const char *type, double major, double minor) {
        cJSON *rule = cJSON_CreateObject();
        if (!rule || !cJSON_AddItemToArray(rules, rule) || !cJSON_AddBoolToObject(rule, "allow", allow) ||
            (type && !cJSON_AddStringToObject(rule, "type", type)) || (major >= 0 && !cJSON_AddNumberToObject(rule, "major", major)) ||
            (minor >= 0 && !cJSON_AddNumberToObject(rule, "minor", minor)) || !cJSON_AddStringToObject(rule, "access", "rwm"))
                return -ENOMEM;
        return 0;
}

/* The devices cgroup allows the standard character devices and the device nodes kept
 * in linux.devices, whatever the engine asked ("--privileged" asks for all). */
static int set_device_rules(cJSON *linux_obj) {
        static const int standard[][2] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 }, { 1, 9 }, { 5, 0 }, { 5, 1 }, { 5, 2 }, { 136, -1 } };
        cJSON *resources = ensure_object(linux_obj, "resources");
        if (!resources)
                return -ENOMEM;
        cJSON_DeleteItemFromObjectCaseSensitive(resources, "devices");
        cJSON *rules = cJSON_AddArrayToObject(resources, "devices");
        int r = rules ? add_device_rule(rules, false, NULL, -1, -1) : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(standard); i++)
                r = add_device_rule(rules, true, "c", standard[i][0], standard[i][1]);
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(linux_obj, "devices"))
                if (r >= 0)
                        r = add_device_rule(rules, true, json_get_string(d, "type") ?: "c",
                                            cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "major")),
                                            cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "minor")));
        return r;
}

void spec_binds_done(SpecBinds *b) {
        b->root_fd = safe_close(b->root_fd);
        for (size_t i = 0; i < b->n; i++)
                b->binds[i].fd = safe_close(b->binds[i].fd);
        for (size_t i = 0; i < b->n_joins; i++)
                b->joins[i].fd = safe_close(b->joins[i].fd);
        b->n = b->n_joins = 0;
}

int spec_rewrite(cJSON *spec, const SpecPolicy *p, SpecBinds *ret_binds, char **reterr) {
        if (!cJSON_IsObject(spec))
                return error_set(reterr, -EINVAL, "stockade: config.json is not a JSON object");
        const char *key = NULL;
        int r = spec_ambiguous_key(spec, &key);
        if (r < 0)
                return error_set(reterr, r, "stockade: cannot read config.json: %s", strerror(-r));
        if (r > 0)
                return error_set(reterr, -EINVAL, "stockade: config.json names '%.64s' twice in one object", key);
        keep_fields(spec, spec_fields, ELEMENTSOF(spec_fields));
        cJSON *linux_obj = ensure_object(spec, "linux");
        cJSON *process = cJSON_GetObjectItemCaseSensitive(spec, "process");
        if (!linux_obj)
                return -ENOMEM;
        keep_fields(process, process_fields, ELEMENTSOF(process_fields));
        keep_fields(cJSON_GetObjectItemCaseSensitive(spec, "root"), root_fields, ELEMENTSOF(root_fields));
        keep_fields(linux_obj, linux_fields, ELEMENTSOF(linux_fields));
        keep_fields(cJSON_GetObjectItemCaseSensitive(linux_obj, "resources"), resources_fields, ELEMENTSOF(resources_fields));

        _cleanup_(spec_binds_done) SpecBinds binds = SPEC_BINDS_NULL;
        r = check_hooks(spec, p, reterr);
        if (r >= 0)
                r = check_annotations(spec, reterr);
        if (r >= 0)
                r = check_namespaces(linux_obj, p, &binds, reterr);
        if (r >= 0)
                r = check_user(process, p, reterr);
        if (r >= 0)
                r = check_root(spec, p, &binds, reterr);
        if (r >= 0)
                r = check_mounts(spec, p, &binds, reterr);
        if (r < 0)
                return r;

        filter_devices(linux_obj);
        bool sys_writable = !string_array_contains(cJSON_GetObjectItemCaseSensitive(linux_obj, "readonlyPaths"), "/proc/sys");
        if ((r = set_id_mappings(linux_obj, p)) < 0 ||
            (r = fit_sysctls(linux_obj, p)) < 0 ||
            (r = spec_clamp_process(process, p->cap_bound)) < 0 ||
            (r = set_device_rules(linux_obj)) < 0 ||
            (r = ensure_paths(linux_obj, "maskedPaths", masked_paths, ELEMENTSOF(masked_paths))) < 0 ||
            (r = ensure_paths(linux_obj, "readonlyPaths", readonly_paths, ELEMENTSOF(readonly_paths))) < 0 ||
            (r = seccomp_profile_narrow(linux_obj, p->listener_path, p->listener_metadata)) < 0)
                return error_set(reterr, r, "stockade: cannot rewrite config.json: %s", strerror(-r));

        const cJSON *caps = cJSON_GetObjectItemCaseSensitive(process, "capabilities");
        binds.net_sysctls_writable = sys_writable &&
                                     string_array_contains(cJSON_GetObjectItemCaseSensitive(caps, "effective"), "CAP_NET_ADMIN");
        *ret_binds = binds;
        binds = SPEC_BINDS_NULL;
        return 0;
}

static bool spec_mounts_at(const cJSON *mounts, const char *destination) {
        const cJSON *m;
        cJSON_ArrayForEach(m, mounts) {
                const char *d = json_get_string(m, "destination");
                if (d && streq(d, destination))
                        return true;
        }
        return false;
}

int spec_add_procfs_binds(cJSON *spec, const char *dir) {
        cJSON *mounts = ensure_array(spec, "mounts");
        if (!mounts)
                return -ENOMEM;
        bool proc = spec_mounts_at(mounts, "/proc"), sys = spec_mounts_at(mounts, "/sys");
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++) {
                const ProcfsFileInfo *f = &procfs_files[i];
                if (!(STARTSWITH(f->path, "/proc/") ? proc : sys))
                        continue;
                _cleanup_free_ char *source = NULL;
                if (asprintf(&source, "%s/%s", dir, f->name) < 0)
                        return -ENOMEM;
                cJSON *m = cJSON_CreateObject(), *options = cJSON_CreateStringArray((const char *const[]) { "bind", "ro", "nosuid", "nodev", "noexec" }, 5);
                cJSON_AddItemToArray(mounts, m);
                if (!m || !options || !cJSON_AddStringToObject(m, "destination", f->path) || !cJSON_AddStringToObject(m, "type", "bind") ||
                    !cJSON_AddStringToObject(m, "source", source) || !cJSON_AddItemToObject(m, "options", options))
                        return -ENOMEM;
        }
        return 0;
}

/* The CPUs of a cpuset list ("0-2,5"), below n, in set (n bits); false where it is not a
 * plain list (the kernel also takes strides: nothing is hidden then). */
static bool cpu_list_parse(const char *list, unsigned n, uint8_t *set) {
        memset(set, 0, (n + 7) / 8);
        for (const char *p = list; *p;) {
                char *end;
                unsigned long first = strtoul(p, &end, 10), last = first;
                if (end == p || !isdigit((unsigned char) *p))
                        return false;
                if (*end == '-') {
                        p = end + 1;
                        last = strtoul(p, &end, 10);
                        if (end == p || !isdigit((unsigned char) *p) || last < first)
                                return false;
                }
                for (unsigned long i = first; i <= last && i < n; i++)
                        set[i / 8] |= (uint8_t) (1u << (i % 8));
                if (*end != ',' && *end != '\0')
                        return false;
                p = *end == ',' ? end + 1 : end;
        }
        return true;
}

int spec_mask_cpus(cJSON *spec, unsigned n_cpus) {
        cJSON *linux_obj = cJSON_GetObjectItemCaseSensitive(spec, "linux");
        const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(linux_obj, "resources"), "cpu");
        const char *list = json_get_string(cpu, "cpus");
        if (!list || !*list || n_cpus == 0 || n_cpus > SPEC_CPUS_MAX)
                return 0;
        uint8_t set[SPEC_CPUS_MAX / 8];
        if (!cpu_list_parse(list, n_cpus, set))
                return 0;
        for (unsigned i = 0; i < n_cpus; i++) {
                char path[64];
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%u", i);
                const char *paths[] = { path };
                int r = set[i / 8] & (1u << (i % 8)) ? 0 : ensure_paths(linux_obj, "maskedPaths", paths, 1);
                if (r < 0)
                        return r;
        }
        return 0;
}
