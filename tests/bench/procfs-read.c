/* SPDX-License-Identifier: Apache-2.0 */
/* procfs-read DIR ITERATIONS [EXPECT]: open+read+close of DIR/{meminfo,uptime,stat,cpuinfo}
 * ITERATIONS times each (DIR is /proc, or an emulation's mount); prints "name µs-per-read"
 * per file. With EXPECT (a meminfo line such as "MemTotal: 262144 kB", spaces squeezed),
 * every meminfo read is checked and "wrong N" printed. Static, for the bench's images.
 * procfs-read --force-sync FILE ITERATIONS: statx() of FILE with AT_STATX_FORCE_SYNC, which
 * asks a FUSE file system for the attributes each time, ITERATIONS times. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int first_line_matches(const char *buf, const char *expect) {
        char line[256];
        size_t n = 0;
        for (const char *p = buf; *p && *p != '\n' && n < sizeof(line) - 1; p++)
                if (!(*p == ' ' && n > 0 && line[n - 1] == ' '))
                        line[n++] = *p;
        line[n] = '\0';
        return strcmp(line, expect) == 0;
}

int main(int argc, char *argv[]) {
        if (argc == 4 && strcmp(argv[1], "--force-sync") == 0) {
                struct statx stx;
                for (long i = atol(argv[3]); i > 0; i--)
                        if (statx(AT_FDCWD, argv[2], AT_STATX_FORCE_SYNC, STATX_SIZE, &stx) < 0) {
                                perror(argv[2]);
                                return 1;
                        }
                return 0;
        }
        if (argc < 3)
                return 2;
        const char *names[] = { "meminfo", "uptime", "stat", "cpuinfo" };
        long iterations = atol(argv[2]), wrong = 0;
        static char buf[1 << 20];
        for (size_t f = 0; f < 4; f++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", argv[1], names[f]);
                double start = now_us();
                for (long i = 0; i < iterations; i++) {
                        int fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd < 0) {
                                perror(path);
                                return 1;
                        }
                        ssize_t n, total = 0;
                        while ((n = read(fd, buf + total, sizeof(buf) - 1 - (size_t) total)) > 0)
                                total += n;
                        buf[total] = '\0';
                        close(fd);
                        if (f == 0 && argc > 3 && !first_line_matches(buf, argv[3]))
                                wrong++;
                }
                printf("%s %.2f\n", names[f], (now_us() - start) / (double) iterations);
        }
        if (argc > 3)
                printf("wrong %ld\n", wrong);
        return 0;
}
