/* SPDX-License-Identifier: Apache-2.0 */
/* Built static and run inside a container by tests/adversarial/broker.sh, printing what
 * each call returned ("NAME: succeeded" or "NAME: <strerror>"):
 *   broker-probe mount SOURCE TARGET FSTYPE [DATA]  mount(2), no flags
 *   broker-probe bind SOURCE TARGET                  mount(2) with MS_BIND
 *   broker-probe umount TARGET                       umount2(2), no flags
 *   broker-probe mknod PATH                          mknod(2) of the char device 1:3
 *   broker-probe pivot DIR [LOOK]                    pivot_root(".", ".") in DIR; where it
 *                                                    succeeds, counts the entries of LOOK
 *                                                    ("../sys/firmware": the old root, now
 *                                                    on top of the new one, reached by "..")
 *   broker-probe hold SECONDS CALL...             the call as above twice (a kept helper
 *                                                    starts for a caller's second call), then
 *                                                    stays SECONDS (it ends with its first caller)
 *   broker-probe as UID CALL...                  the call as above, as UID (gid UID, no groups)
 *   broker-probe unshare mount SOURCE TARGET FSTYPE  the mount twice (a kept helper starts),
 *                                                    and 200 ms later once more in a mount
 *                                                    namespace of its own; prints how many
 *                                                    mounts on TARGET that namespace holds
 *   broker-probe stop-helper TARGET                  mounts a proc on TARGET while a child
 *                                                    SIGSTOPs every process named
 *                                                    "stockaded" it can see; prints whether
 *                                                    it stopped one and how long the call took
 *   broker-probe stop-children PID                   (on the VM) until killed, SIGSTOPs every
 *                                                    child and grandchild of PID (the agent's
 *                                                    helper parent and its helpers) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, long r) {
        printf("%s: %s\n", what, r < 0 ? strerror(errno) : "succeeded");
}

/* /proc/NAME/FILE into text (at most size - 1 bytes): 0, or -1 if it cannot be read. */
static int proc_read(const char *name, const char *file, char *text, size_t size) {
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/%s", name, file);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        size_t n = fread(text, 1, size - 1, f);
        fclose(f);
        text[n] = '\0';
        return 0;
}

/* The parent of /proc/NAME, 0 if it cannot tell. */
static pid_t parent_of(const char *name) {
        char text[512];
        if (proc_read(name, "stat", text, sizeof(text)) < 0)
                return 0;
        const char *end = strrchr(text, ')');
        int ppid;
        return end && sscanf(end, ") %*c %d", &ppid) == 1 ? ppid : 0;
}

/* Whether /proc/NAME is a process to stop: a child or grandchild of parent (the agent's
 * helper parent and its helpers), or (parent 0) one named "stockaded" or "stockade-helper". */
static int is_target(const char *name, pid_t parent) {
        if (!parent) {
                char text[64];
                return proc_read(name, "comm", text, sizeof(text)) == 0 &&
                       (strcmp(text, "stockaded\n") == 0 || strcmp(text, "stockade-helper\n") == 0);
        }
        pid_t ppid = parent_of(name);
        char up[32];
        snprintf(up, sizeof(up), "%d", (int) ppid);
        return ppid == parent || (ppid > 0 && parent_of(up) == parent);
}

/* Until killed: stops every target process in sight, counting them in *stopped. */
static void stopper(pid_t parent, volatile int *stopped) {
        for (;;) {
                DIR *d = opendir("/proc");
                if (!d)
                        _exit(1);
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && is_target(de->d_name, parent) &&
                            kill(atoi(de->d_name), SIGSTOP) == 0)
                                (*stopped)++;
                closedir(d);
        }
}

static int stop_helper(const char *target) {
        volatile int *stopped = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (stopped == MAP_FAILED)
                return 1;
        pid_t child = fork();
        if (child < 0)
                return 1;
        if (child == 0)
                stopper(0, stopped);
        usleep(100000);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = mount("proc", target, "proc", 0, NULL);
        int e = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        printf("stopped %d; mount %s after %ld s\n", *stopped, r < 0 ? strerror(e) : "succeeded",
               (long) (t1.tv_sec - t0.tv_sec));
        if (r == 0)
                umount2(target, MNT_DETACH);
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc > 3 && strcmp(argv[1], "hold") == 0) {
                int r = main(argc - 2, argv + 2);
                r = r ?: main(argc - 2, argv + 2);
                fflush(stdout);
                sleep((unsigned) atoi(argv[2]));
                return r;
        }
        if (argc == 6 && strcmp(argv[1], "unshare") == 0) {
                int r = main(argc - 1, argv + 1);
                r = r ?: main(argc - 1, argv + 1);
                usleep(200 * 1000); /* the agent has heard the kept helper's first answer */
                if (r || unshare(CLONE_NEWNS) < 0 || main(argc - 1, argv + 1))
                        return 1;
                char line[4096], point[PATH_MAX + 2];
                int n = 0;
                snprintf(point, sizeof(point), " %s ", argv[4]);
                FILE *f = fopen("/proc/self/mountinfo", "re");
                while (f && fgets(line, sizeof(line), f))
                        n += strstr(line, point) != NULL;
                if (f)
                        fclose(f);
                printf("mounts on %s here: %d\n", argv[4], n);
                return 0;
        }
        if (argc > 3 && strcmp(argv[1], "as") == 0) {
                unsigned id = (unsigned) atoi(argv[2]);
                if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0) {
                        perror("as");
                        return 1;
                }
                return main(argc - 2, argv + 2);
        }
        if ((argc == 5 || argc == 6) && strcmp(argv[1], "mount") == 0)
                report(argv[3], mount(argv[2], argv[3], argv[4], 0, argc == 6 ? argv[5] : NULL));
        else if (argc == 4 && strcmp(argv[1], "bind") == 0)
                report(argv[3], mount(argv[2], argv[3], NULL, MS_BIND, NULL));
        else if (argc == 3 && strcmp(argv[1], "umount") == 0)
                report(argv[2], umount2(argv[2], 0));
        else if (argc == 3 && strcmp(argv[1], "mknod") == 0)
                report(argv[2], mknod(argv[2], S_IFCHR | 0666, makedev(1, 3)));
        else if ((argc == 3 || argc == 4) && strcmp(argv[1], "pivot") == 0) {
                long r = chdir(argv[2]) < 0 ? -1 : syscall(SYS_pivot_root, ".", ".");
                report(argv[2], r);
                DIR *d = r == 0 && argc == 4 ? opendir(argv[3]) : NULL;
                int n = 0;
                while (d && readdir(d))
                        n++;
                if (d)
                        printf("%s: %d entries\n", argv[3], n - 2);
        } else if (argc == 3 && strcmp(argv[1], "stop-helper") == 0)
                return stop_helper(argv[2]);
        else if (argc == 3 && strcmp(argv[1], "stop-children") == 0) {
                int stopped = 0;
                stopper(atoi(argv[2]), &stopped);
        }
        else {
                fprintf(stderr, "usage: see the top of broker-probe.c\n");
                return 2;
        }
        return 0;
}
