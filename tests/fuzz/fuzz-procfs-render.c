/* SPDX-License-Identifier: Apache-2.0 */
/* Input: NUL-separated parts that become a container's /proc/PID/cgroup text, the VM's
 * /proc files and the container's cgroup files, from which every emulated file is
 * rendered. The kernel's FUSE requests are parsed by libfuse, not by Stockade: what is
 * fuzzed here is Stockade's own parsing of what it renders from (a container shapes its
 * cgroup files' content, e.g. io.stat and memory.stat, by what it does). */
#include <assert.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enforcer/procfs-render.h"
#include "macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const files[] = {
        NULL, /* the /proc/PID/cgroup text */
        "proc/meminfo", "proc/stat", "proc/cpuinfo", "proc/diskstats",
        "cgroup/memory/c/memory.limit_in_bytes", "cgroup/memory/c/memory.stat", "cgroup/memory/c/memory.memsw.limit_in_bytes",
        "cgroup/cpuset/c/cpuset.effective_cpus", "cgroup/cpu/c/cpu.cfs_quota_us", "cgroup/cpuacct/c/cpuacct.stat",
        "cgroup/blkio/c/blkio.throttle.io_serviced_recursive",
};

static char root[64];

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path);
}

static void teardown(void) {
        (void) nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void) {
        const char *dirs[] = { "proc", "cgroup", "cgroup/memory", "cgroup/memory/c", "cgroup/cpuset", "cgroup/cpuset/c",
                               "cgroup/cpu", "cgroup/cpu/c", "cgroup/cpuacct", "cgroup/cpuacct/c", "cgroup/blkio", "cgroup/blkio/c" };
        strcpy(root, "/dev/shm/fuzz-procfs.XXXXXX"); /* tmpfs: files written per input */
        assert(mkdtemp(root));
        atexit(teardown);
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                char p[256];
                snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
                assert(mkdir(p, 0755) == 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!root[0])
                setup();
        const char *text = "4:memory:/c\n3:cpuset:/c\n2:cpuacct:/c\n1:cpu:/c\n7:blkio:/c\n";
        char *copy = malloc(size + 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        copy[size] = '\0';
        char *part = copy, *end = copy + size;
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                size_t len = part < end ? strlen(part) : 0;
                if (i == 0 && len > 0)
                        text = part;
                if (files[i]) {
                        char p[256];
                        snprintf(p, sizeof(p), "%s/%s", root, files[i]);
                        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                        assert(fd >= 0);
                        assert(write(fd, part < end ? part : "", len) == (ssize_t) len);
                        close(fd);
                }
                part = part < end ? part + len + 1 : end;
        }
        char p[256];
        snprintf(p, sizeof(p), "%s/proc", root);
        int proc_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        snprintf(p, sizeof(p), "%s/cgroup", root);
        int cgroup_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ProcfsCgroups cg;
        if (procfs_cgroups_parse(cgroup_fd, text, &cg) >= 0) {
                ProcfsLoad load = {};
                ProcfsContext ctx = { .proc_fd = proc_fd, .cgroup_fd = cgroup_fd, .cgroups = &cg, .now = 100, .started = 50, .load = &load };
                for (int f = 0; f < _PROCFS_FILE_MAX; f++) {
                        char *out;
                        size_t n;
                        if (procfs_render((ProcfsFile) f, &ctx, &out, &n) >= 0) {
                                assert(strlen(out) == n || memchr(out, '\0', n));
                                free(out);
                        }
                }
                procfs_cgroups_done(&cg);
        }
        close(proc_fd);
        close(cgroup_fd);
        free(copy);
        return 0;
}
