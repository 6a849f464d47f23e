/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procfs-render.h"
#include "util.h"

#define HOST_FILE_MAX (4u * 1024u * 1024u)
#define NO_LIMIT UINT64_MAX
#define USER_HZ 100 /* the unit of /proc/stat; sysconf(_SC_CLK_TCK) on every Linux ABI */

const ProcfsFileInfo procfs_files[_PROCFS_FILE_MAX] = {
        [PROCFS_MEMINFO] = { "meminfo", "/proc/meminfo" },
        [PROCFS_CPUINFO] = { "cpuinfo", "/proc/cpuinfo" },
        [PROCFS_STAT] = { "stat", "/proc/stat" },
        [PROCFS_UPTIME] = { "uptime", "/proc/uptime" },
        [PROCFS_LOADAVG] = { "loadavg", "/proc/loadavg" },
        [PROCFS_SWAPS] = { "swaps", "/proc/swaps" },
        [PROCFS_DISKSTATS] = { "diskstats", "/proc/diskstats" },
        [PROCFS_CPU_ONLINE] = { "cpu-online", "/sys/devices/system/cpu/online" },
};

/* ---- cgroup files ---- */

void procfs_cgroups_done(ProcfsCgroups *c) {
        free(c->memory), free(c->cpu), free(c->cpuacct), free(c->cpuset), free(c->blkio), free(c->tasks);
        *c = (ProcfsCgroups) {};
}

/* "dir/path" without the path's leading slash; "dir" alone for the root. */
static char *join(const char *dir, const char *path) {
        while (*path == '/')
                path++;
        char *s;
        if (asprintf(&s, "%s%s%s", dir, *dir && *path ? "/" : "", *dir || *path ? path : ".") < 0)
                return NULL;
        return s;
}

static bool list_has(const char *list, size_t len, const char *word) {
        size_t n = strlen(word);
        for (const char *p = list, *end = list + len; p < end;) {
                const char *comma = memchr(p, ',', (size_t) (end - p));
                size_t l = comma ? (size_t) (comma - p) : (size_t) (end - p);
                if (l == n && memcmp(p, word, n) == 0)
                        return true;
                p += l + 1;
        }
        return false;
}

int procfs_cgroups_parse(int cgroup_fd, const char *text, ProcfsCgroups *ret) {
        ProcfsCgroups c = { .v2 = faccessat(cgroup_fd, "cgroup.controllers", F_OK, 0) == 0 };
        static const char *const v1[] = { "memory", "cpu", "cpuacct", "cpuset", "blkio" };
        char **slots[] = { &c.memory, &c.cpu, &c.cpuacct, &c.cpuset, &c.blkio };
        int r = 0;
        for (const char *line = text; *line && r >= 0;) {
                const char *nl = strchrnul(line, '\n');
                const char *c1 = memchr(line, ':', (size_t) (nl - line));
                const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t) (nl - c1 - 1)) : NULL;
                if (c2) {
                        _cleanup_free_ char *path = strndup(c2 + 1, (size_t) (nl - c2 - 1));
                        _cleanup_free_ char *controllers = strndup(c1 + 1, (size_t) (c2 - c1 - 1));
                        if (!path || !controllers)
                                r = -ENOMEM;
                        else if (c.v2 && controllers[0] == '\0' && STARTSWITH(line, "0:")) {
                                for (size_t i = 0; i < ELEMENTSOF(slots) && r >= 0; i++)
                                        if (!*slots[i] && !(*slots[i] = join("", path)))
                                                r = -ENOMEM;
                        } else if (!c.v2)
                                for (size_t i = 0; i < ELEMENTSOF(v1) && r >= 0; i++)
                                        if (!*slots[i] && list_has(controllers, strlen(controllers), v1[i]) &&
                                            !(*slots[i] = join(controllers, path)))
                                                r = -ENOMEM;
                }
                line = *nl ? nl + 1 : nl;
        }
        /* The tasks to sample for the load: any hierarchy holding them all. */
        const char *tasks = c.cpuacct ? c.cpuacct : c.cpu ? c.cpu : c.memory;
        if (r >= 0 && tasks && !(c.tasks = strdup(tasks)))
                r = -ENOMEM;
        if (r < 0) {
                procfs_cgroups_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

/* Reads dir/name (a small cgroup file) into buf: false when it cannot. */
static bool read_small(int cgroup_fd, const char *dir, const char *name, char *buf, size_t size) {
        if (!dir)
                return false;
        char path[PATH_MAX];
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
                return false;
        int fd = openat(cgroup_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, size - 1);
        safe_close(fd);
        if (n < 0)
                return false;
        buf[n] = '\0';
        return true;
}

/* A number, or "max" (and v1's "unlimited" sentinels, anything past 2^62) for no limit. */
static uint64_t read_number(int cgroup_fd, const char *dir, const char *name, uint64_t fallback) {
        char buf[64];
        if (!read_small(cgroup_fd, dir, name, buf, sizeof(buf)))
                return fallback;
        if (STARTSWITH(buf, "max"))
                return NO_LIMIT;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno != 0 || end == buf || buf[0] == '-')
                return fallback;
        return v >= (1ull << 62) ? NO_LIMIT : v;
}

/* The tightest limit on dir and its ancestors (a parent's limit holds for its children). */
static uint64_t read_limit(int cgroup_fd, const char *dir, const char *name) {
        if (!dir)
                return NO_LIMIT;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s", dir);
        uint64_t limit = NO_LIMIT;
        for (;;) {
                uint64_t v = read_number(cgroup_fd, path, name, NO_LIMIT);
                if (v < limit)
                        limit = v;
                char *slash = strrchr(path, '/');
                if (!slash)
                        break;
                *slash = '\0';
        }
        return limit;
}

/* The value of key in a "key value" file (memory.stat, cpu.stat, cpuacct.stat). */
static uint64_t stat_value(const char *text, const char *key) {
        size_t n = strlen(key);
        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, key, n) == 0 && p[n] == ' ')
                        return strtoull(p + n + 1, NULL, 10);
        return 0;
}

/* ---- CPUs ---- */

typedef struct CpuSet {
        uint64_t bits[PROCFS_CPUS_MAX / 64];
} CpuSet;

static void cpuset_add(CpuSet *s, unsigned cpu) {
        if (cpu < PROCFS_CPUS_MAX)
                s->bits[cpu / 64] |= 1ull << (cpu % 64);
}

static bool cpuset_has(const CpuSet *s, unsigned cpu) {
        return cpu < PROCFS_CPUS_MAX && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

static unsigned cpuset_count(const CpuSet *s) {
        unsigned n = 0;
        for (size_t i = 0; i < ELEMENTSOF(s->bits); i++)
                n += (unsigned) __builtin_popcountll(s->bits[i]);
        return n;
}

/* "0-3,5": false for anything else (an empty list included). */
static bool cpuset_parse(const char *text, CpuSet *ret) {
        CpuSet s = {};
        const char *p = text;
        while (*p && *p != '\n') {
                char *end;
                unsigned long a = strtoul(p, &end, 10), b = a;
                if (end == p)
                        return false;
                if (*end == '-') {
                        p = end + 1;
                        b = strtoul(p, &end, 10);
                        if (end == p || b < a)
                                return false;
                }
                for (unsigned long c = a; c <= b && c < PROCFS_CPUS_MAX; c++)
                        cpuset_add(&s, (unsigned) c);
                p = *end == ',' ? end + 1 : end;
                if (p == end && *p && *p != '\n')
                        return false;
        }
        *ret = s;
        return cpuset_count(&s) > 0;
}

/* The VM's CPUs: the "cpuN" lines of its /proc/stat (at least one). */
static void host_cpus(const char *stat, CpuSet *ret) {
        *ret = (CpuSet) {};
        for (const char *p = stat; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (STARTSWITH(p, "cpu") && p[3] >= '0' && p[3] <= '9')
                        cpuset_add(ret, (unsigned) strtoul(p + 3, NULL, 10));
        if (cpuset_count(ret) == 0)
                cpuset_add(ret, 0);
}

/* The CFS quota in CPUs, rounded up (--cpus 1.5 is 2); UINT32_MAX for none. */
static unsigned quota_cpus(const ProcfsContext *ctx) {
        const char *dir = ctx->cgroups->cpu;
        uint64_t quota = NO_LIMIT, period = 100000;
        if (!dir)
                return UINT32_MAX;
        if (ctx->cgroups->v2) {
                /* "max 100000" or "150000 100000", on the cgroup or an ancestor */
                char path[PATH_MAX], buf[64];
                snprintf(path, sizeof(path), "%s", dir);
                unsigned best = UINT32_MAX;
                for (;;) {
                        unsigned long long q, p;
                        if (read_small(ctx->cgroup_fd, path, "cpu.max", buf, sizeof(buf)) &&
                            sscanf(buf, "%llu %llu", &q, &p) == 2 && p > 0) {
                                unsigned n = (unsigned) ((q + p - 1) / p);
                                if (n < best)
                                        best = n ? n : 1;
                        }
                        char *slash = strrchr(path, '/');
                        if (!slash)
                                break;
                        *slash = '\0';
                }
                return best;
        }
        char buf[64];
        if (!read_small(ctx->cgroup_fd, dir, "cpu.cfs_quota_us", buf, sizeof(buf)) || buf[0] == '-')
                return UINT32_MAX;
        quota = strtoull(buf, NULL, 10);
        period = read_number(ctx->cgroup_fd, dir, "cpu.cfs_period_us", 100000);
        if (quota == 0 || period == 0 || period == NO_LIMIT)
                return UINT32_MAX;
        unsigned n = (unsigned) ((quota + period - 1) / period);
        return n ? n : 1;
}

/* The CPUs the container sees: its cpuset among the VM's, cut to its quota (the first
 * ones). Without cgroups, the VM's. */
static void container_cpus(const ProcfsContext *ctx, const char *host_stat, CpuSet *ret) {
        CpuSet host, set;
        host_cpus(host_stat, &host);
        *ret = host;
        if (!ctx->cgroups)
                return;
        char buf[4096];
        const char *dir = ctx->cgroups->cpuset;
        if (!(read_small(ctx->cgroup_fd, dir, ctx->cgroups->v2 ? "cpuset.cpus.effective" : "cpuset.effective_cpus", buf,
                         sizeof(buf)) &&
              cpuset_parse(buf, &set)) &&
            !(read_small(ctx->cgroup_fd, dir, "cpuset.cpus", buf, sizeof(buf)) && cpuset_parse(buf, &set)))
                set = host;
        unsigned quota = quota_cpus(ctx), n = 0;
        *ret = (CpuSet) {};
        for (unsigned c = 0; c < PROCFS_CPUS_MAX && n < quota; c++)
                if (cpuset_has(&set, c) && cpuset_has(&host, c)) {
                        cpuset_add(ret, c);
                        n++;
                }
        if (n == 0)
                *ret = host;
}

/* ---- output ---- */

typedef struct Out {
        FILE *f;
        char *text;
        size_t size;
} Out;

static int out_open(Out *o) {
        *o = (Out) {};
        o->f = open_memstream(&o->text, &o->size);
        return o->f ? 0 : -ENOMEM;
}

static int out_finish(Out *o, char **ret, size_t *ret_size) {
        bool failed = ferror(o->f);
        if (fclose(o->f) != 0 || failed) {
                free(o->text);
                return -ENOMEM;
        }
        *ret = o->text;
        *ret_size = o->size;
        return 0;
}

static int copy_host(const ProcfsContext *ctx, const char *name, char **ret, size_t *ret_size) {
        return read_full_file(ctx->proc_fd, name, HOST_FILE_MAX, ret, ret_size);
}

/* The CPUs the container sees (container_cpus()), from the VM's /proc/stat. */
static int container_cpus_read(const ProcfsContext *ctx, CpuSet *ret) {
        _cleanup_free_ char *stat = NULL;
        size_t size;
        int r = copy_host(ctx, "stat", &stat, &size);
        if (r >= 0)
                container_cpus(ctx, stat, ret);
        return r;
}

/* The value in kB of a /proc/meminfo line. */
static uint64_t meminfo_value(const char *text, const char *key) {
        size_t n = strlen(key);
        for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, key, n) == 0 && p[n] == ':')
                        return strtoull(p + n + 1, NULL, 10);
        return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
        return a < b ? a : b;
}

static uint64_t sub0(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

typedef struct Memory {
        uint64_t total, free, available, cached, shmem, mapped, active_anon, inactive_anon, active_file, inactive_file;
        uint64_t swap_total, swap_free;
} Memory;

/* In kB, from the cgroup's limits and usage within the VM's figures. */
static void container_memory(const ProcfsContext *ctx, const char *host, Memory *m) {
        const ProcfsCgroups *cg = ctx->cgroups;
        int fd = ctx->cgroup_fd;
        const char *dir = cg->memory;
        bool v2 = cg->v2;
        uint64_t host_total = meminfo_value(host, "MemTotal"), host_swap = meminfo_value(host, "SwapTotal");
        uint64_t limit = read_limit(fd, dir, v2 ? "memory.max" : "memory.limit_in_bytes");
        uint64_t usage = read_number(fd, dir, v2 ? "memory.current" : "memory.usage_in_bytes", 0);
        if (usage == NO_LIMIT)
                usage = 0;
        char stat[8192] = "";
        (void) read_small(fd, dir, "memory.stat", stat, sizeof(stat));
        /* v1's hierarchical totals include nested cgroups, as v2's figures always do. */
        const char *const *k = v2 ? (const char *const[]) { "file", "shmem", "file_mapped", "active_anon", "inactive_anon", "active_file", "inactive_file" }
                                  : (const char *const[]) { "total_cache", "total_shmem", "total_mapped_file", "total_active_anon",
                                                            "total_inactive_anon", "total_active_file", "total_inactive_file" };
        m->total = limit == NO_LIMIT ? host_total : min_u64(limit / 1024, host_total);
        m->free = sub0(m->total, usage / 1024);
        m->cached = stat_value(stat, k[0]) / 1024;
        m->shmem = stat_value(stat, k[1]) / 1024;
        m->mapped = stat_value(stat, k[2]) / 1024;
        m->active_anon = stat_value(stat, k[3]) / 1024;
        m->inactive_anon = stat_value(stat, k[4]) / 1024;
        m->active_file = stat_value(stat, k[5]) / 1024;
        m->inactive_file = stat_value(stat, k[6]) / 1024;
        m->available = min_u64(m->total, m->free + m->active_file + m->inactive_file);

        /* Swap: v1 limits memory+swap together (memory.memsw.*, missing without swap
         * accounting), v2 swap alone. */
        uint64_t swap_limit, swap_used;
        if (v2) {
                swap_limit = read_limit(fd, dir, "memory.swap.max");
                swap_used = read_number(fd, dir, "memory.swap.current", 0);
        } else {
                uint64_t memsw = read_limit(fd, dir, "memory.memsw.limit_in_bytes");
                uint64_t memsw_usage = read_number(fd, dir, "memory.memsw.usage_in_bytes", usage);
                swap_limit = memsw == NO_LIMIT || limit == NO_LIMIT ? memsw : sub0(memsw, limit);
                swap_used = sub0(memsw_usage == NO_LIMIT ? usage : memsw_usage, usage);
        }
        m->swap_total = swap_limit == NO_LIMIT ? host_swap : min_u64(swap_limit / 1024, host_swap);
        m->swap_free = sub0(m->swap_total, swap_used / 1024);
}

static int render_meminfo(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        _cleanup_free_ char *host = NULL;
        size_t size;
        int r = copy_host(ctx, "meminfo", &host, &size);
        if (r < 0)
                return r;
        Memory m;
        container_memory(ctx, host, &m);
        const struct {
                const char *key;
                uint64_t value;
        } lines[] = {
                { "MemTotal", m.total },
                { "MemFree", m.free },
                { "MemAvailable", m.available },
                { "Buffers", 0 },
                { "Cached", m.cached },
                { "SwapCached", 0 },
                { "Active", m.active_anon + m.active_file },
                { "Inactive", m.inactive_anon + m.inactive_file },
                { "Active(anon)", m.active_anon },
                { "Inactive(anon)", m.inactive_anon },
                { "Active(file)", m.active_file },
                { "Inactive(file)", m.inactive_file },
                { "SwapTotal", m.swap_total },
                { "SwapFree", m.swap_free },
                { "Mapped", m.mapped },
                { "Shmem", m.shmem },
        };
        Out o;
        if ((r = out_open(&o)) < 0)
                return r;
        /* The VM's lines in the VM's order, the container's figures where it has them. */
        for (char *p = host; *p;) {
                char *nl = strchrnul(p, '\n'), *colon = memchr(p, ':', (size_t) (nl - p));
                bool replaced = false;
                for (size_t i = 0; colon && i < ELEMENTSOF(lines) && !replaced; i++)
                        if ((size_t) (colon - p) == strlen(lines[i].key) && memcmp(p, lines[i].key, (size_t) (colon - p)) == 0) {
                                int width = 23 - (int) strlen(lines[i].key); /* the kernel's columns */
                                fprintf(o.f, "%s:%*" PRIu64 " kB\n", lines[i].key, width, lines[i].value);
                                replaced = true;
                        }
                if (!replaced)
                        fprintf(o.f, "%.*s\n", (int) (nl - p), p);
                p = *nl ? nl + 1 : nl;
        }
        return out_finish(&o, ret, ret_size);
}

/* The container's CPU time in USER_HZ ticks. */
static void container_cpu_time(const ProcfsContext *ctx, uint64_t *ret_user, uint64_t *ret_system) {
        char buf[1024] = "";
        if (ctx->cgroups->v2) {
                (void) read_small(ctx->cgroup_fd, ctx->cgroups->cpu, "cpu.stat", buf, sizeof(buf));
                *ret_user = stat_value(buf, "user_usec") * USER_HZ / 1000000;
                *ret_system = stat_value(buf, "system_usec") * USER_HZ / 1000000;
        } else {
                (void) read_small(ctx->cgroup_fd, ctx->cgroups->cpuacct, "cpuacct.stat", buf, sizeof(buf));
                *ret_user = stat_value(buf, "user");
                *ret_system = stat_value(buf, "system");
        }
}

static double container_uptime(const ProcfsContext *ctx) {
        double up = ctx->now - ctx->started;
        return up > 0 ? up : 0;
}

static int render_cpuinfo(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        _cleanup_free_ char *host = NULL;
        size_t size;
        CpuSet cpus;
        int r = copy_host(ctx, "cpuinfo", &host, &size);
        if (r < 0 || (r = container_cpus_read(ctx, &cpus)) < 0)
                return r;
        Out o;
        if ((r = out_open(&o)) < 0)
                return r;
        /* One block per CPU, each starting with "processor\t: N": the container's CPUs,
         * numbered from 0. */
        unsigned shown = 0;
        for (char *p = host; *p;) {
                char *end = strstr(p, "\n\n");
                end = end ? end + 2 : p + strlen(p);
                unsigned cpu;
                int skip = 0;
                if (sscanf(p, "processor : %u%n", &cpu, &skip) == 1 || sscanf(p, "processor\t: %u%n", &cpu, &skip) == 1) {
                        if (cpuset_has(&cpus, cpu))
                                fprintf(o.f, "processor\t: %u%.*s", shown++, (int) (end - p - skip), p + skip);
                } else
                        fprintf(o.f, "%.*s", (int) (end - p), p);
                p = end;
        }
        return out_finish(&o, ret, ret_size);
}

static int render_stat(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        _cleanup_free_ char *host = NULL;
        size_t size;
        int r = copy_host(ctx, "stat", &host, &size);
        if (r < 0)
                return r;
        CpuSet cpus;
        container_cpus(ctx, host, &cpus);
        unsigned n = cpuset_count(&cpus);
        uint64_t user, system;
        container_cpu_time(ctx, &user, &system);
        uint64_t up = (uint64_t) (container_uptime(ctx) * USER_HZ);
        /* Spread evenly over the container's CPUs; idle is what is left of the uptime. */
        uint64_t u = user / n, s = system / n, idle = sub0(up, u + s);
        Out o;
        if ((r = out_open(&o)) < 0)
                return r;
        fprintf(o.f, "cpu  %" PRIu64 " 0 %" PRIu64 " %" PRIu64 " 0 0 0 0 0 0\n", user, system, idle * n);
        for (unsigned i = 0; i < n; i++)
                fprintf(o.f, "cpu%u %" PRIu64 " 0 %" PRIu64 " %" PRIu64 " 0 0 0 0 0 0\n", i, u, s, idle);
        const ProcfsLoad *l = ctx->load;
        for (char *p = host; *p;) {
                char *nl = strchrnul(p, '\n');
                unsigned long long btime;
                if (STARTSWITH(p, "cpu"))
                        ; /* replaced above */
                else if (sscanf(p, "btime %llu", &btime) == 1)
                        fprintf(o.f, "btime %llu\n", btime + (unsigned long long) (ctx->started + 0.5));
                else if (STARTSWITH(p, "processes "))
                        fprintf(o.f, "processes %u\n", l ? l->total : 0);
                else if (STARTSWITH(p, "procs_running "))
                        fprintf(o.f, "procs_running %u\n", l && l->running ? l->running : 1);
                else if (STARTSWITH(p, "procs_blocked "))
                        fprintf(o.f, "procs_blocked %u\n", l ? l->blocked : 0);
                else
                        fprintf(o.f, "%.*s\n", (int) (nl - p), p);
                p = *nl ? nl + 1 : nl;
        }
        return out_finish(&o, ret, ret_size);
}

static int render_uptime(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        CpuSet cpus;
        int r = container_cpus_read(ctx, &cpus);
        if (r < 0)
                return r;
        uint64_t user, system;
        container_cpu_time(ctx, &user, &system);
        double up = container_uptime(ctx), busy = (double) (user + system) / USER_HZ;
        double idle = up * cpuset_count(&cpus) - busy;
        return asprintf(ret, "%.2f %.2f\n", up, idle > 0 ? idle : 0) < 0 ? -ENOMEM : (*ret_size = strlen(*ret), 0);
}

static int render_loadavg(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        ProcfsLoad none = {};
        const ProcfsLoad *l = ctx->load ? ctx->load : &none;
        /* The last pid is the container's own business: none is shown. */
        return asprintf(ret, "%.2f %.2f %.2f %u/%u 0\n", l->avg[0], l->avg[1], l->avg[2], l->running, l->total) < 0
                       ? -ENOMEM
                       : (*ret_size = strlen(*ret), 0);
}

static int render_swaps(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        _cleanup_free_ char *host = NULL;
        size_t size;
        int r = copy_host(ctx, "meminfo", &host, &size);
        if (r < 0)
                return r;
        Memory m;
        container_memory(ctx, host, &m);
        Out o;
        if ((r = out_open(&o)) < 0)
                return r;
        fputs("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n", o.f);
        if (m.swap_total > 0)
                fprintf(o.f, "none%36s\tvirtual\t\t%" PRIu64 "\t\t%" PRIu64 "\t\t0\n", "", m.swap_total, m.swap_total - m.swap_free);
        return out_finish(&o, ret, ret_size);
}

/* The container's I/O per device "MAJ:MIN": v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3
 * wios=4 ..."), v1 blkio's throttle counters ("8:0 Read 3"). */
typedef struct DiskIo {
        unsigned major, minor;
        uint64_t rbytes, wbytes, rios, wios;
} DiskIo;

static size_t container_io(const ProcfsContext *ctx, DiskIo *io, size_t max) {
        char buf[16384];
        size_t n = 0;
        const char *dir = ctx->cgroups->blkio;
        if (ctx->cgroups->v2) {
                if (!read_small(ctx->cgroup_fd, dir, "io.stat", buf, sizeof(buf)))
                        return 0;
                for (char *p = buf; *p && n < max; p = strchrnul(p, '\n'), p = *p ? p + 1 : p) {
                        DiskIo d = {};
                        if (sscanf(p, "%u:%u", &d.major, &d.minor) != 2)
                                continue;
                        char *nl = strchrnul(p, '\n');
                        const char *keys[] = { "rbytes=", "wbytes=", "rios=", "wios=" };
                        uint64_t *vals[] = { &d.rbytes, &d.wbytes, &d.rios, &d.wios };
                        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                                char *k = strstr(p, keys[i]);
                                if (k && k < nl)
                                        *vals[i] = strtoull(k + strlen(keys[i]), NULL, 10);
                        }
                        io[n++] = d;
                }
                return n;
        }
        const char *files[] = { "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive" };
        for (size_t f = 0; f < ELEMENTSOF(files); f++) {
                if (!read_small(ctx->cgroup_fd, dir, files[f], buf, sizeof(buf)))
                        continue;
                for (char *p = buf; *p; p = strchrnul(p, '\n'), p = *p ? p + 1 : p) {
                        unsigned ma, mi;
                        char op[16];
                        unsigned long long v;
                        if (sscanf(p, "%u:%u %15s %llu", &ma, &mi, op, &v) != 4)
                                continue;
                        size_t i = 0;
                        while (i < n && !(io[i].major == ma && io[i].minor == mi))
                                i++;
                        if (i == n) {
                                if (n == max)
                                        continue;
                                io[n++] = (DiskIo) { .major = ma, .minor = mi };
                        }
                        uint64_t *slot = streq(op, "Read") ? (f == 0 ? &io[i].rbytes : &io[i].rios)
                                       : streq(op, "Write") ? (f == 0 ? &io[i].wbytes : &io[i].wios)
                                                            : NULL;
                        if (slot)
                                *slot = v;
                }
        }
        return n;
}

static int render_diskstats(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        _cleanup_free_ char *host = NULL;
        size_t size;
        int r = copy_host(ctx, "diskstats", &host, &size);
        if (r < 0)
                return r;
        DiskIo io[64];
        size_t n = container_io(ctx, io, ELEMENTSOF(io));
        Out o;
        if ((r = out_open(&o)) < 0)
                return r;
        /* The VM's devices the container used, with the container's counts only. */
        for (char *p = host; *p;) {
                char *nl = strchrnul(p, '\n');
                unsigned ma, mi;
                char name[64];
                if (sscanf(p, "%u %u %63s", &ma, &mi, name) == 3)
                        for (size_t i = 0; i < n; i++)
                                if (io[i].major == ma && io[i].minor == mi && (io[i].rios || io[i].wios))
                                        fprintf(o.f, "%4u %7u %s %" PRIu64 " 0 %" PRIu64 " 0 %" PRIu64 " 0 %" PRIu64 " 0 0 0 0 0 0 0 0 0 0\n",
                                                ma, mi, name, io[i].rios, io[i].rbytes / 512, io[i].wios, io[i].wbytes / 512);
                p = *nl ? nl + 1 : nl;
        }
        return out_finish(&o, ret, ret_size);
}

static int render_cpu_online(const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        CpuSet cpus;
        int r = container_cpus_read(ctx, &cpus);
        if (r < 0)
                return r;
        Out o;
        if ((r = out_open(&o)) < 0)
                return r;
        const char *sep = "";
        for (unsigned c = 0; c < PROCFS_CPUS_MAX; c++) {
                if (!cpuset_has(&cpus, c))
                        continue;
                unsigned last = c;
                while (last + 1 < PROCFS_CPUS_MAX && cpuset_has(&cpus, last + 1))
                        last++;
                fprintf(o.f, last > c ? "%s%u-%u" : "%s%u", sep, c, last);
                sep = ",";
                c = last;
        }
        fputc('\n', o.f);
        return out_finish(&o, ret, ret_size);
}

int procfs_render(ProcfsFile file, const ProcfsContext *ctx, char **ret, size_t *ret_size) {
        static int (*const renderers[_PROCFS_FILE_MAX])(const ProcfsContext *, char **, size_t *) = {
                [PROCFS_MEMINFO] = render_meminfo,     [PROCFS_CPUINFO] = render_cpuinfo,
                [PROCFS_STAT] = render_stat,           [PROCFS_UPTIME] = render_uptime,
                [PROCFS_LOADAVG] = render_loadavg,     [PROCFS_SWAPS] = render_swaps,
                [PROCFS_DISKSTATS] = render_diskstats, [PROCFS_CPU_ONLINE] = render_cpu_online,
        };
        assert(file >= 0 && file < _PROCFS_FILE_MAX);
        /* A process in no container: the VM's own file (cpu/online is made from /proc/stat). */
        if (!ctx->cgroups && STARTSWITH(procfs_files[file].path, "/proc/"))
                return copy_host(ctx, procfs_files[file].name, ret, ret_size);
        return renderers[file](ctx, ret, ret_size);
}

/* ---- load ---- */

/* Counts the tasks listed in dir/tasks-file and in its nested cgroups. */
static void count_tasks(const ProcfsContext *ctx, const char *dir, unsigned depth, unsigned max, ProcfsLoad *l) {
        char path[PATH_MAX];
        if (depth > 8 || (size_t) snprintf(path, sizeof(path), "%s/%s", dir, ctx->cgroups->v2 ? "cgroup.threads" : "tasks") >= sizeof(path))
                return;
        _cleanup_fclose_ FILE *f = NULL;
        int fd = openat(ctx->cgroup_fd, path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && !(f = fdopen(fd, "r")))
                safe_close(fd);
        unsigned long tid;
        while (f && l->total < max && fscanf(f, "%lu", &tid) == 1) {
                char stat_path[64], buf[512];
                snprintf(stat_path, sizeof(stat_path), "%lu/stat", tid);
                int sfd = openat(ctx->proc_fd, stat_path, O_RDONLY | O_CLOEXEC);
                if (sfd < 0)
                        continue;
                ssize_t n = read(sfd, buf, sizeof(buf) - 1);
                safe_close(sfd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                char *paren = strrchr(buf, ')');
                l->total++;
                if (paren && paren[1] == ' ' && paren[2] == 'R')
                        l->running++;
                else if (paren && paren[1] == ' ' && paren[2] == 'D')
                        l->blocked++;
        }
        int dfd = openat(ctx->cgroup_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return;
        DIR *d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return;
        }
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_type == DT_DIR && e->d_name[0] != '.' && (size_t) snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
                        count_tasks(ctx, path, depth + 1, max, l);
        closedir(d);
}

void procfs_load_sample(const ProcfsContext *ctx, unsigned max_tasks, ProcfsLoad *load) {
        static const double decay[3] = { 0.920044415 /* exp(-5/60) */, 0.983471454 /* exp(-5/300) */, 0.994459848 /* exp(-5/900) */ };
        ProcfsLoad now = {};
        if (ctx->cgroups && ctx->cgroups->tasks)
                count_tasks(ctx, ctx->cgroups->tasks, 0, max_tasks, &now);
        for (size_t i = 0; i < 3; i++)
                now.avg[i] = load->avg[i] * decay[i] + (now.running + now.blocked) * (1 - decay[i]);
        *load = now;
}
