/* SPDX-License-Identifier: Apache-2.0 */
/* Trapped and untrapped call costs.
 *   notify-loop raw N [A T]  a raw libseccomp notify loop: a child traps mknodat (glibc's mknod) and
 *                          the parent answers each with CONTINUE; prints us per trapped call. With
 *                          A and T the parent runs on CPU A and the child on CPU T.
 *   notify-loop calls N    run inside a container: times N mknod(S_IFIFO)+unlink pairs (the
 *                          mknod trapped for the agent) and N getppid() (never trapped)
 *   notify-loop mounts N   run inside a container: times N mount+umount pairs of a tmpfs
 * Built static so that it also runs in the test image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double time_mknod(long n) {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/notify-loop.%d", getpid());
        double start = now_us();
        for (long i = 0; i < n; i++) {
                if (mknod(path, S_IFIFO | 0600, 0) < 0) {
                        perror("mknod");
                        exit(1);
                }
                unlink(path);
        }
        return (now_us() - start) / n;
}

static double time_mounts(long n) {
        mkdir("/mnt", 0755);
        mkdir("/mnt/bench", 0755);
        double start = now_us();
        for (long i = 0; i < n; i++)
                if (mount("none", "/mnt/bench", "tmpfs", 0, NULL) < 0 || umount("/mnt/bench") < 0) {
                        perror("mount");
                        exit(1);
                }
        return (now_us() - start) / n;
}

static double time_getppid(long n) {
        double start = now_us();
        for (long i = 0; i < n; i++)
                syscall(SYS_getppid);
        return (now_us() - start) / n;
}

static void pin(const char *cpu) {
        if (!cpu)
                return;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(cpu), &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) {
                perror("sched_setaffinity");
                exit(1);
        }
}

static int raw(long n, const char *answerer_cpu, const char *trapped_cpu) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
                return 1;
        pid_t pid = fork();
        if (pid == 0) {
                pin(trapped_cpu);
                scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
                if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(mknodat), 0) < 0 || seccomp_load(ctx) < 0)
                        _exit(2);
                int fd = seccomp_notify_fd(ctx);
                /* Pass the notify fd to the parent. */
                char c = 0;
                struct iovec iov = { .iov_base = &c, .iov_len = 1 };
                char control[CMSG_SPACE(sizeof(int))] = {};
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
                struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
                cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS, cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
                if (sendmsg(sv[1], &msg, 0) < 0)
                        _exit(3);
                close(fd);
                double us = time_mknod(n);
                if (write(sv[1], &us, sizeof(us)) != sizeof(us))
                        _exit(4);
                _exit(0);
        }
        pin(answerer_cpu);
        char c, control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
        if (recvmsg(sv[0], &msg, 0) <= 0)
                return 1;
        int fd;
        memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
        struct seccomp_notif *req;
        struct seccomp_notif_resp *resp;
        if (seccomp_notify_alloc(&req, &resp) < 0)
                return 1;
        for (long i = 0; i < n; i++) {
                memset(req, 0, sizeof(*req));
                if (seccomp_notify_receive(fd, req) < 0)
                        return 1;
                resp->id = req->id, resp->error = 0, resp->val = 0, resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                if (seccomp_notify_respond(fd, resp) < 0)
                        return 1;
        }
        double us;
        if (read(sv[0], &us, sizeof(us)) != sizeof(us))
                return 1;
        waitpid(pid, NULL, 0);
        printf("raw libseccomp notify loop: %.2f us per trapped mknod (%ld calls)\n", us, n);
        return 0;
}

int main(int argc, char *argv[]) {
        long n = argc > 2 ? atol(argv[2]) : 10000;
        if (argc > 1 && strcmp(argv[1], "raw") == 0)
                return raw(n, argc > 4 ? argv[3] : NULL, argc > 4 ? argv[4] : NULL);
        if (argc > 1 && strcmp(argv[1], "calls") == 0) {
                double trapped = time_mknod(n), untrapped = time_getppid(n * 100);
                printf("trapped mknod %.2f us, untrapped getppid %.4f us\n", trapped, untrapped);
                return 0;
        }
        if (argc > 1 && strcmp(argv[1], "mounts") == 0) {
                printf("mount+umount %.2f us\n", time_mounts(n));
                return 0;
        }
        fprintf(stderr, "usage: notify-loop raw N [ANSWERER_CPU TRAPPED_CPU] | calls N | mounts N\n");
        return 2;
}
