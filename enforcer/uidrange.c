/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <inttypes.h>

#include "json.h"
#include "uidrange.h"
#include "util.h"

typedef struct Allocation {
        char *owner;
        uint32_t index; /* base = first + index * size */
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

static int add(UidRanges *r, const char *owner, uint32_t index) {
        Allocation *items = realloc(r->items, (r->n + 1) * sizeof(Allocation));
        if (!items)
                return -ENOMEM;
        r->items = items;
        char *copy = strdup(owner);
        if (!copy)
                return -ENOMEM;
        r->items[r->n++] = (Allocation) { .owner = copy, .index = index };
        return 0;
}

static int save(const UidRanges *r) {
        _cleanup_json_ cJSON *json = cJSON_CreateObject();
        cJSON *map = cJSON_AddObjectToObject(json, "containers");
        if (!map || !cJSON_AddNumberToObject(json, "first", r->first) || !cJSON_AddNumberToObject(json, "size", r->size))
                return -ENOMEM;
        for (size_t i = 0; i < r->n; i++)
                if (!cJSON_AddNumberToObject(map, r->items[i].owner, (double) r->first + (double) r->items[i].index * r->size))
                        return -ENOMEM;
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
        if (!cJSON_IsObject(map))
                return error_set(reterr, -EBADMSG, "%s: malformed", name);
        cJSON_ArrayForEach(item, map) {
                double base = cJSON_GetNumberValue(item);
                if (!json_is_int(item, first, (int64_t) first + (int64_t) (max - 1) * size) ||
                    ((int64_t) base - first) % size != 0 || !container_key_valid(item->string))
                        return error_set(reterr, -EBADMSG, "%s: malformed entry '%s'", name, item->string);
                q = add(r, item->string, (uint32_t) (((int64_t) base - first) / size));
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

/* Gives owner the range at index, on disk before it counts. */
static int record(UidRanges *r, const char *owner, uint32_t index, char **reterr) {
        int q = add(r, owner, index);
        if (q >= 0)
                q = save(r);
        if (q < 0) {
                if (r->n > 0 && streq(r->items[r->n - 1].owner, owner))
                        free(r->items[--r->n].owner);
                return error_set(reterr, q, "cannot record the uid range: %s", strerror(-q));
        }
        return 0;
}

static bool held(const UidRanges *r, uint32_t index) {
        for (size_t i = 0; i < r->n; i++)
                if (r->items[i].index == index)
                        return true;
        return false;
}

int uid_ranges_acquire(UidRanges *r, const char *owner, uint32_t *ret_base, char **reterr) {
        Allocation *a = find(r, owner);
        if (a) {
                *ret_base = r->first + a->index * r->size;
                return 0;
        }

        uint32_t index = 0;
        while (index < r->max && held(r, index))
                index++;
        if (index == r->max)
                return error_set(reterr, -ENOSPC, "all %" PRIu32 " uid ranges are in use", r->max);
        int q = record(r, owner, index, reterr);
        if (q < 0)
                return q;
        *ret_base = r->first + index * r->size;
        return 0;
}

int uid_ranges_share(UidRanges *r, const char *owner, uint32_t base, char **reterr) {
        uint32_t index = (base - r->first) / r->size;
        if (base < r->first || (base - r->first) % r->size != 0 || index >= r->max || !held(r, index))
                return error_set(reterr, -ENOENT, "no container holds the uid range %" PRIu32, base);
        Allocation *a = find(r, owner);
        if (a && a->index != index)
                return error_set(reterr, -EEXIST, "'%s' has the uid range %" PRIu32 " already", owner, r->first + a->index * r->size);
        return a ? 0 : record(r, owner, index, reterr);
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
        *ret_base = r->first + r->items[i].index * r->size;
        return r->items[i].owner;
}
