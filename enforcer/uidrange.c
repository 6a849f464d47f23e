/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <inttypes.h>

#include "json.h"
#include "uidrange.h"
#include "util.h"

typedef struct Allocation {
        char *owner;
        uint32_t base, count; /* ids base to base + count - 1 */
        bool mapped;          /* the engine's own mapping, claimed (not one of the pool's ranges) */
} Allocation;

struct UidRanges {
        int dir_fd;
        char *name;
        uint32_t first, size, max;
        Allocation *items;
        size_t n;
};

bool container_id_valid(const char *id) {
        size_t n = strlen(id);
        if (n == 0 || n > 128 || id[0] == '.')
                return false;
        return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int container_key(const char *root, const char *id, char **ret) {
        if (!container_id_valid(id) || (root && (root[0] != '/' || strlen(root) > CONTAINER_ROOT_MAX)))
                return -EINVAL;
        char *key = NULL;
        if (asprintf(&key, "%s%s%s", root ?: "", root && !streq(root, "/") ? "/" : "", id) < 0)
                return -ENOMEM;
        *ret = key;
        return 0;
}

const char *container_key_id(const char *key) {
        const char *slash = strrchr(key, '/');
        return slash ? slash + 1 : key;
}

int container_key_dir(const char *key, char ret[static CONTAINER_DIR_NAME_MAX]) {
        if (!container_key_valid(key))
                return -EINVAL;
        const char *id = container_key_id(key), *root = id == key ? "/run/runc" : key;
        size_t n = id == key ? strlen(root) : (size_t) (id - key) > 1 ? (size_t) (id - key) - 1 : 1;
        snprintf(ret, CONTAINER_DIR_NAME_MAX, "%016" PRIx64 "-%s", hash_fnv1a(root, n), id);
        return 0;
}

int container_dir(const char *run_dir, const char *key, char **ret) {
        char name[CONTAINER_DIR_NAME_MAX];
        int r = container_key_dir(key, name);
        if (r < 0)
                return r;
        return asprintf(ret, "%s/containers/%s", run_dir, name) < 0 ? -ENOMEM : 0;
}

bool container_key_valid(const char *key) {
        const char *id = container_key_id(key);
        return container_id_valid(id) && (id == key || (key[0] == '/' && (size_t) (id - key) <= CONTAINER_ROOT_MAX + 1));
}

UidRanges *uid_ranges_free(UidRanges *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n; i++)
                free(r->items[i].owner);
        free(r->items);
        free(r->name);
        safe_close(r->dir_fd);
        free(r);
        return NULL;
}

static int add(UidRanges *r, const char *owner, Allocation a) {
        Allocation *items = realloc(r->items, (r->n + 1) * sizeof(Allocation));
        if (!items)
                return -ENOMEM;
        r->items = items;
        a.owner = strdup(owner);
        if (!a.owner)
                return -ENOMEM;
        r->items[r->n++] = a;
        return 0;
}

/* ranges.json: {"first", "size", "containers": {"KEY": BASE}, "mapped": {"KEY": [BASE, COUNT]}}. */
static int save(const UidRanges *r) {
        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        cJSON *map = cJSON_AddObjectToObject(json, "containers"), *mapped = cJSON_AddObjectToObject(json, "mapped");
        if (!map || !mapped || !cJSON_AddNumberToObject(json, "first", r->first) || !cJSON_AddNumberToObject(json, "size", r->size))
                return -ENOMEM;
        for (size_t i = 0; i < r->n; i++) {
                const Allocation *a = &r->items[i];
                if (!a->mapped) {
                        if (!cJSON_AddNumberToObject(map, a->owner, a->base))
                                return -ENOMEM;
                        continue;
                }
                cJSON *item = cJSON_AddArrayToObject(mapped, a->owner);
                if (!item || !cJSON_AddItemToArray(item, cJSON_CreateNumber(a->base)) ||
                    !cJSON_AddItemToArray(item, cJSON_CreateNumber(a->count)))
                        return -ENOMEM;
        }
        _cleanup_free_ char *text = cJSON_Print(json);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(r->dir_fd, r->name, text, strlen(text), 0600);
}

int uid_ranges_open(int dir_fd, const char *name, uint32_t first, uint32_t size, uint32_t max,
                    UidRanges **ret, char **reterr) {
        _cleanup_(uid_ranges_freep) UidRanges *r = calloc(1, sizeof(UidRanges));
        if (!r)
                return -ENOMEM;
        r->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        r->name = strdup(name);
        r->first = first, r->size = size, r->max = max;
        if (r->dir_fd < 0 || !r->name)
                return -errno;

        _cleanup_free_ char *text = NULL;
        size_t n;
        int q = read_full_file(dir_fd, name, 4 << 20, &text, &n);
        if (q == -ENOENT) {
                *ret = TAKE_PTR(r);
                return 0;
        }
        if (q < 0)
                return error_set(reterr, q, "cannot read %s: %s", name, strerror(-q));

        _cleanup_json_ cJSON *json = cJSON_ParseWithLength(text, n);
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(json, "containers"), *item;
        const cJSON *mapped = cJSON_GetObjectItemCaseSensitive(json, "mapped");
        if (!cJSON_IsObject(map) || (mapped && !cJSON_IsObject(mapped)))
                return error_set(reterr, -EBADMSG, "%s: malformed", name);
        cJSON_ArrayForEach(item, map) {
                double base = cJSON_GetNumberValue(item);
                if (!json_is_int(item, first, (int64_t) first + (int64_t) (max - 1) * size) ||
                    ((int64_t) base - first) % size != 0 || !container_key_valid(item->string))
                        return error_set(reterr, -EBADMSG, "%s: malformed entry '%s'", name, item->string);
                q = add(r, item->string, (Allocation) { .base = (uint32_t) base, .count = size });
                if (q < 0)
                        return q;
        }
        cJSON_ArrayForEach(item, mapped) {
                const cJSON *base = cJSON_GetArrayItem(item, 0), *count = cJSON_GetArrayItem(item, 1);
                if (cJSON_GetArraySize(item) != 2 || !json_is_int(base, first, UINT32_MAX) || !json_is_int(count, 1, size) ||
                    base->valuedouble + count->valuedouble > UINT32_MAX || !container_key_valid(item->string))
                        return error_set(reterr, -EBADMSG, "%s: malformed entry '%s'", name, item->string);
                q = add(r, item->string, (Allocation) { .base = (uint32_t) base->valuedouble, .count = (uint32_t) count->valuedouble, .mapped = true });
                if (q < 0)
                        return q;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

static Allocation *find(UidRanges *r, const char *owner) {
        for (size_t i = 0; i < r->n; i++)
                if (streq(r->items[i].owner, owner))
                        return &r->items[i];
        return NULL;
}

/* Gives owner the allocation a, on disk before it counts. */
static int record(UidRanges *r, const char *owner, Allocation a, char **reterr) {
        int q = add(r, owner, a);
        if (q >= 0)
                q = save(r);
        if (q < 0) {
                if (r->n > 0 && streq(r->items[r->n - 1].owner, owner))
                        free(r->items[--r->n].owner);
                return error_set(reterr, q, "cannot record the uid range: %s", strerror(-q));
        }
        return 0;
}

/* The allocation that holds an id of base to base + count - 1, NULL when none does. */
static const Allocation *overlapping(const UidRanges *r, uint32_t base, uint32_t count) {
        for (size_t i = 0; i < r->n; i++)
                if ((uint64_t) r->items[i].base < (uint64_t) base + count && (uint64_t) base < (uint64_t) r->items[i].base + r->items[i].count)
                        return &r->items[i];
        return NULL;
}

int uid_ranges_acquire(UidRanges *r, const char *owner, uint32_t *ret_base, char **reterr) {
        Allocation *a = find(r, owner);
        if (a) {
                *ret_base = a->base;
                return 0;
        }

        uint32_t index = 0;
        while (index < r->max && overlapping(r, r->first + index * r->size, r->size))
                index++;
        if (index == r->max)
                return error_set(reterr, -ENOSPC, "all %" PRIu32 " uid ranges are in use", r->max);
        uint32_t base = r->first + index * r->size;
        int q = record(r, owner, (Allocation) { .base = base, .count = r->size }, reterr);
        if (q < 0)
                return q;
        *ret_base = base;
        return 0;
}

int uid_ranges_share(UidRanges *r, const char *owner, uint32_t base, char **reterr) {
        const Allocation *held = overlapping(r, base, 1);
        if (!held || held->base != base)
                return error_set(reterr, -ENOENT, "no container holds the uid range %" PRIu32, base);
        Allocation *a = find(r, owner);
        if (a && a->base != base)
                return error_set(reterr, -EEXIST, "'%s' has the uid range %" PRIu32 " already", owner, a->base);
        return a ? 0 : record(r, owner, (Allocation) { .base = base, .count = held->count, .mapped = held->mapped }, reterr);
}

int uid_ranges_claim(UidRanges *r, const char *owner, uint32_t base, uint32_t count, char **reterr) {
        if (count == 0 || count > r->size)
                return error_set(reterr, -EINVAL, "maps %" PRIu32 " ids, not 1 to %" PRIu32, count, r->size);
        if (base == 0)
                return error_set(reterr, -EPERM, "maps VM root");
        if (base < r->first)
                return error_set(reterr, -EPERM, "maps VM ids below %" PRIu32 ", the floor of Stockade's ranges", r->first);
        if ((uint64_t) base + count > UINT32_MAX)
                return error_set(reterr, -EPERM, "maps ids past the last VM id, %" PRIu32, UINT32_MAX - 1);
        Allocation *a = find(r, owner);
        if (a && a->base == base && a->count == count)
                return 0;
        if (a)
                return error_set(reterr, -EEXIST, "'%s' has the uid range %" PRIu32 " already", owner, a->base);
        const Allocation *other = overlapping(r, base, count);
        if (other)
                return error_set(reterr, -EPERM, "overlaps the ids of container '%s'", container_key_id(other->owner));
        return record(r, owner, (Allocation) { .base = base, .count = count, .mapped = true }, reterr);
}

int uid_ranges_release(UidRanges *r, const char *owner) {
        Allocation *a = find(r, owner);
        if (!a)
                return -ENOENT;
        free(a->owner);
        *a = r->items[--r->n];
        return save(r);
}

size_t uid_ranges_count(const UidRanges *r) {
        return r->n;
}

const char *uid_ranges_get(const UidRanges *r, size_t i, uint32_t *ret_base) {
        *ret_base = r->items[i].base;
        return r->items[i].owner;
}
