/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enforcer/procfs-render.h"
#include "test.h"
#include "util.h"

/* A fixture tree: ROOT/proc (the VM's files: 4 CPUs, 16 GiB, 1 GiB swap) and ROOT/cgroup. */
static void put(const char *root, const char *path, const char *content) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", root, path);
        for (char *s = full + strlen(root) + 1; (s = strchr(s, '/')); s++) {
                *s = '\0';
                (void) mkdir(full, 0755);
                *s = '/';
        }
        int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(write_all(fd, content, strlen(content)));
        close(fd);
}

static void vm_files(const char *root) {
        put(root, "proc/meminfo", "MemTotal:       16777216 kB\nMemFree:        8000000 kB\nMemAvailable:   9000000 kB\n"
                                  "Buffers:          100000 kB\nCached:          2000000 kB\nSwapCached:            0 kB\n"
                                  "Active:         3000000 kB\nSwapTotal:      1048576 kB\nSwapFree:       1048576 kB\nHugePages_Total:       0\n");
        put(root, "proc/stat", "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 25 0 25 250 0 0 0 0 0 0\ncpu1 25 0 25 250 0 0 0 0 0 0\n"
                               "cpu2 25 0 25 250 0 0 0 0 0 0\ncpu3 25 0 25 250 0 0 0 0 0 0\nintr 1 2\nctxt 99\nbtime 1000\n"
                               "processes 500\nprocs_running 3\nprocs_blocked 0\n");
        put(root, "proc/cpuinfo", "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n"
                                  "processor\t: 2\nmodel name\t: X\n\nprocessor\t: 3\nmodel name\t: X\n\n");
        put(root, "proc/uptime", "5000.00 19000.00\n");
        put(root, "proc/loadavg", "0.50 0.40 0.30 2/300 4242\n");
        put(root, "proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap file 1048576 0 -2\n");
        put(root, "proc/diskstats", "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 0 0 0 0 0 0\n");
}

typedef struct Fixture {
        int proc_fd, cgroup_fd;
        ProcfsCgroups cg;
        ProcfsContext ctx;
} Fixture;

static void fixture_open(Fixture *f, const char *root, const char *proc_cgroup) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/proc", root);
        f->proc_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        snprintf(path, sizeof(path), "%s/cgroup", root);
        f->cgroup_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_TRUE(f->proc_fd >= 0 && f->cgroup_fd >= 0);
        ASSERT_OK(procfs_cgroups_parse(f->cgroup_fd, proc_cgroup, &f->cg));
        f->ctx = (ProcfsContext) { .proc_fd = f->proc_fd, .cgroup_fd = f->cgroup_fd, .cgroups = &f->cg, .now = 5000, .started = 4990 };
}

static char *render(const Fixture *f, ProcfsFile file) {
        char *text;
        size_t size;
        ASSERT_OK(procfs_render(file, &f->ctx, &text, &size));
        ASSERT_EQ(strlen(text), size);
        return text;
}

static void expect(const Fixture *f, ProcfsFile file, const char *needle) {
        _cleanup_free_ char *text = render(f, file);
        ASSERT_CONTAINS(text, needle);
}

static const char v1_cgroup[] = "9:name=systemd:/\n4:memory:/docker/c1\n3:cpuset:/docker/c1\n2:cpuacct:/docker/c1\n1:cpu:/docker/c1\n"
                                "7:blkio:/docker/c1\n0::/\n";

static void v1_tree(const char *root) {
        vm_files(root);
        put(root, "cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
        put(root, "cgroup/memory/docker/c1/memory.limit_in_bytes", "268435456\n");
        put(root, "cgroup/memory/docker/c1/memory.usage_in_bytes", "67108864\n");
        put(root, "cgroup/memory/docker/c1/memory.memsw.limit_in_bytes", "536870912\n");
        put(root, "cgroup/memory/docker/c1/memory.memsw.usage_in_bytes", "68157440\n");
        put(root, "cgroup/memory/docker/c1/memory.stat", "cache 1\ntotal_cache 16777216\ntotal_active_file 8388608\ntotal_inactive_file 4194304\n");
        put(root, "cgroup/cpuset/docker/c1/cpuset.effective_cpus", "1-3\n");
        put(root, "cgroup/cpu/docker/c1/cpu.cfs_quota_us", "150000\n");
        put(root, "cgroup/cpu/docker/c1/cpu.cfs_period_us", "100000\n");
        put(root, "cgroup/cpuacct/docker/c1/cpuacct.stat", "user 300\nsystem 100\n");
        put(root, "cgroup/cpuacct/docker/c1/tasks", "");
        put(root, "cgroup/blkio/docker/c1/blkio.throttle.io_serviced_recursive", "8:0 Read 7\n8:0 Write 9\n");
        put(root, "cgroup/blkio/docker/c1/blkio.throttle.io_service_bytes_recursive", "8:0 Read 4096\n8:0 Write 8192\n");
}

TEST(v1_memory_cpus_and_time) {
        const char *root = test_tmpdir();
        v1_tree(root);
        Fixture f;
        fixture_open(&f, root, v1_cgroup);
        ASSERT_TRUE(!f.cg.v2);
        expect(&f, PROCFS_MEMINFO, "MemTotal:         262144 kB\n");
        expect(&f, PROCFS_MEMINFO, "MemFree:          196608 kB\n");
        expect(&f, PROCFS_MEMINFO, "Cached:            16384 kB\n");
        expect(&f, PROCFS_MEMINFO, "SwapTotal:        262144 kB\n");
        expect(&f, PROCFS_MEMINFO, "SwapFree:         261120 kB\n");
        expect(&f, PROCFS_MEMINFO, "HugePages_Total:       0\n"); /* the VM's lines it has no figure for */
        /* cpuset 1-3 cut to the quota, 1.5 CPUs: 2 of them, numbered from 0 */
        _cleanup_free_ char *cpuinfo = render(&f, PROCFS_CPUINFO);
        ASSERT_STREQ(cpuinfo, "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n");
        expect(&f, PROCFS_CPU_ONLINE, "1-2\n");
        _cleanup_free_ char *stat = render(&f, PROCFS_STAT);
        ASSERT_CONTAINS(stat, "cpu  300 0 100 1600 0");
        ASSERT_CONTAINS(stat, "cpu1 150 0 50 800 0");
        ASSERT_TRUE(!strstr(stat, "cpu2"));
        ASSERT_CONTAINS(stat, "btime 5990\n");
        ASSERT_CONTAINS(stat, "ctxt 99\n");
        expect(&f, PROCFS_UPTIME, "10.00 16.00\n");
        expect(&f, PROCFS_SWAPS, "virtual\t\t262144\t\t1024\t\t0\n");
        expect(&f, PROCFS_DISKSTATS, "sda 7 0 8 0 9 0 16 0");
        procfs_cgroups_done(&f.cg);
}

TEST(v1_no_swap_accounting_and_no_limits) {
        const char *root = test_tmpdir();
        vm_files(root);
        put(root, "cgroup/memory/docker/c1/memory.limit_in_bytes", "9223372036854771712\n");
        put(root, "cgroup/cpu/docker/c1/cpu.cfs_quota_us", "-1\n");
        Fixture f;
        fixture_open(&f, root, v1_cgroup);
        expect(&f, PROCFS_MEMINFO, "MemTotal:       16777216 kB\n");
        expect(&f, PROCFS_MEMINFO, "SwapTotal:       1048576 kB\n");
        expect(&f, PROCFS_CPU_ONLINE, "0-3\n");
        procfs_cgroups_done(&f.cg);
}

static const char v2_cgroup[] = "0::/pod/c1\n";

TEST(v2_max_nested_and_swap_off) {
        const char *root = test_tmpdir();
        vm_files(root);
        put(root, "proc/meminfo", "MemTotal:       16777216 kB\nMemFree:        8000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n");
        put(root, "cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
        /* the parent holds the limits, the container says "max" */
        put(root, "cgroup/pod/memory.max", "536870912\n");
        put(root, "cgroup/pod/cpu.max", "250000 100000\n");
        put(root, "cgroup/pod/c1/memory.max", "max\n");
        put(root, "cgroup/pod/c1/memory.swap.max", "max\n");
        put(root, "cgroup/pod/c1/memory.current", "134217728\n");
        put(root, "cgroup/pod/c1/memory.stat", "anon 1\nfile 33554432\nactive_file 1048576\ninactive_file 1048576\n");
        put(root, "cgroup/pod/c1/cpu.max", "max 100000\n");
        put(root, "cgroup/pod/c1/cpu.stat", "usage_usec 5000000\nuser_usec 3000000\nsystem_usec 2000000\n");
        put(root, "cgroup/pod/c1/cpuset.cpus.effective", "0-3\n");
        put(root, "cgroup/pod/c1/io.stat", "8:0 rbytes=1024 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n");
        Fixture f;
        fixture_open(&f, root, v2_cgroup);
        ASSERT_TRUE(f.cg.v2);
        expect(&f, PROCFS_MEMINFO, "MemTotal:         524288 kB\n");
        expect(&f, PROCFS_MEMINFO, "MemFree:          393216 kB\n");
        expect(&f, PROCFS_MEMINFO, "SwapTotal:             0 kB\n");
        _cleanup_free_ char *swaps = render(&f, PROCFS_SWAPS);
        ASSERT_STREQ(swaps, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
        expect(&f, PROCFS_CPU_ONLINE, "0-2\n"); /* the parent's 2.5 CPUs: 3 */
        expect(&f, PROCFS_STAT, "cpu  300 0 200 ");
        expect(&f, PROCFS_DISKSTATS, "sda 2 0 2 0 0 0 0 0");
        procfs_cgroups_done(&f.cg);
}

TEST(cgroup_vanished_and_unknown_callers) {
        const char *root = test_tmpdir();
        vm_files(root);
        (void) mkdir(strcat(strcpy((char[4096]) {}, root), "/cgroup"), 0755);
        Fixture f;
        /* the cgroup is gone (the container ended while its file was rendered): no limits, whole files */
        fixture_open(&f, root, v1_cgroup);
        expect(&f, PROCFS_MEMINFO, "MemTotal:       16777216 kB\n");
        expect(&f, PROCFS_CPUINFO, "processor\t: 3\n");
        expect(&f, PROCFS_UPTIME, "10.00 ");
        expect(&f, PROCFS_LOADAVG, "0.00 0.00 0.00 0/0 0\n");
        /* a process in no container: the VM's files unchanged */
        f.ctx.cgroups = NULL;
        expect(&f, PROCFS_UPTIME, "5000.00 19000.00\n");
        expect(&f, PROCFS_LOADAVG, "0.50 0.40 0.30 2/300 4242\n");
        expect(&f, PROCFS_MEMINFO, "MemFree:        8000000 kB\n");
        procfs_cgroups_done(&f.cg);
}
