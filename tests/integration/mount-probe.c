/* SPDX-License-Identifier: Apache-2.0 */
/* Built static and run inside a container, printing what each call returned:
 *   mount-probe bad              passes the agent's broker bad pointers, unterminated
 *                                strings and huge lengths in trapped calls
 *   mount-probe remount-rw PATH  mount(2) with MS_REMOUNT|MS_BIND, no MS_RDONLY
 *   mount-probe own-listener     installs a seccomp filter of its own that would send
 *                                mount(2) to a listener of its own (which could answer
 *                                CONTINUE past the agent)
 *   mount-probe loop STOPFILE    mounts and unmounts a tmpfs until STOPFILE exists, then
 *                                prints "calls N failed F"; prints each failure and each
 *                                call slower than 50 ms ("slow D_US ended END_US", END
 *                                by CLOCK_REALTIME) as it happens */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, long r) {
        printf("%s: %s\n", what, r < 0 ? strerror(errno) : "succeeded");
}

static int bad_calls(void) {
        long page = sysconf(_SC_PAGESIZE);
        /* A page of 'A's followed by an inaccessible page: a string with no end. */
        char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || mprotect(p + page, page, PROT_NONE) < 0)
                return 1;
        memset(p, 'A', page);
        static char huge[1 << 20];
        memset(huge, 'x', sizeof(huge) - 1);

        report("null target", syscall(SYS_mount, "none", NULL, "tmpfs", 0, NULL));
        report("unmapped target", syscall(SYS_mount, "none", (void *) 8, "tmpfs", 0, NULL));
        report("unterminated target", syscall(SYS_mount, "none", p, "tmpfs", 0, NULL));
        report("huge fstype", syscall(SYS_mount, "none", "/mnt", huge, 0, NULL));
        report("unterminated data", syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, p));
        report("unmapped umount", syscall(SYS_umount2, (void *) 8, 0));
        report("huge mknod path", syscall(SYS_mknod, huge, S_IFIFO | 0600, 0));
        report("good tmpfs after all that", syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, NULL));
        return 0;
}

static int own_listener(void) {
        struct sock_filter code[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mount, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return 1;
        report("own seccomp listener",
               syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
        return 0;
}

static long long now_us(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* One trapped call, timed: 1 if it failed. */
static int timed(const char *what, long r, long long start) {
        long long took = now_us(CLOCK_MONOTONIC) - start;
        if (took > 50000)
                printf("slow %lld ended %lld\n", took, now_us(CLOCK_REALTIME));
        if (r < 0)
                printf("%s failed: %s\n", what, strerror(errno));
        fflush(stdout);
        return r < 0;
}

static int loop(const char *stop) {
        long long calls = 0, failed = 0;
        mkdir("/mnt/loop", 0755);
        while (access(stop, F_OK) < 0) {
                long long start = now_us(CLOCK_MONOTONIC);
                long r = mount("none", "/mnt/loop", "tmpfs", 0, NULL);
                failed += timed("mount", r, start);
                if (r == 0) {
                        start = now_us(CLOCK_MONOTONIC);
                        failed += timed("umount", umount("/mnt/loop"), start);
                }
                calls += r == 0 ? 2 : 1;
        }
        printf("calls %lld failed %lld\n", calls, failed);
        return failed > 0;
}

int main(int argc, char *argv[]) {
        mkdir("/mnt", 0755);
        if (argc == 2 && strcmp(argv[1], "bad") == 0)
                return bad_calls();
        if (argc == 3 && strcmp(argv[1], "remount-rw") == 0) {
                report(argv[2], mount(NULL, argv[2], NULL, MS_REMOUNT | MS_BIND, NULL));
                return 0;
        }
        if (argc == 2 && strcmp(argv[1], "own-listener") == 0)
                return own_listener();
        if (argc == 3 && strcmp(argv[1], "loop") == 0)
                return loop(argv[2]);
        fprintf(stderr, "usage: mount-probe bad | remount-rw PATH | own-listener | loop STOPFILE\n");
        return 2;
}
