/* SPDX-License-Identifier: Apache-2.0 */
/* The broker against a container made by hand: a process in its own user (0 -> 100000),
 * mount, pid, network, IPC, UTS and cgroup namespaces, on a tmpfs root (pivot_root) with a
 * read-only bind at /data, a proc at /proc masked like runc masks it, a tmpfs /dev with a
 * bound /dev/null; then a seccomp filter trapping mount, umount2, mknod, mknodat whose
 * listener the test serves with broker_handle() and broker_pending_finish(). The scenarios
 * run in the container and write "name value" lines (0 or an errno, or a count) that the
 * test then checks. Everything is mounted in the container's mount namespace only. */
#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/param.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#include "enforcer/broker-actor.h"
#include "enforcer/broker.h"
#include "enforcer/helper.h"
#include "test.h"
#include "util.h"

#define BASE 100000
#define TMPFS_MAGIC 0x01021994

static const char *const masked[] = {
        "/proc/kcore", "/proc/keys",  "/proc/timer_list", "/proc/sched_debug", "/proc/acpi",
        "/proc/scsi",  "/proc/driver", "/sys/firmware",
};

typedef void (*Scenario)(FILE *out);

/* ---- in the container ---- */

static void result(FILE *out, const char *name, long value) {
        fprintf(out, "%s %ld\n", name, value);
        fflush(out);
}

/* 0 or the errno of a call that returned -1. */
#define E(call) ((call) < 0 ? errno : 0)

static void die(const char *what) {
        fprintf(stderr, "container setup: %s: %s\n", what, strerror(errno));
        _exit(2);
}

static void must(int r, const char *what) {
        if (r < 0)
                die(what);
}

static long read_count(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        char buf[4096];
        long total = 0;
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0 && total < 1 << 20)
                total += n;
        close(fd);
        return n < 0 ? -errno : total;
}

static long dir_entries(const char *path) {
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        long n = 0;
        for (struct dirent *de; (de = readdir(d));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static bool read_only(const char *path) {
        struct statvfs sv;
        return statvfs(path, &sv) == 0 && (sv.f_flag & ST_RDONLY);
}

/* What runc does before the process starts, in the process's own namespaces. */
static void container_setup(const char *root) {
        must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
        must(mount("root", root, "tmpfs", 0, "mode=0755"), "root tmpfs");
        must(chdir(root), "chdir root");
        static const char *const dirs[] = { "data-src", "data", "proc", "sys", "dev", "mnt", "old" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                must(mkdir(dirs[i], 0755), dirs[i]);
        int fd = open("data-src/file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        must(fd, "data file");
        close(fd);

        must(mount("data-src", "data", NULL, MS_BIND, NULL), "bind /data");
        must(mount(NULL, "data", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
             "remount /data read-only");

        must(mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "mount /proc");
        must(mount("proc/sys", "proc/sys", NULL, MS_BIND, NULL), "bind /proc/sys");
        must(mount(NULL, "proc/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
             "remount /proc/sys read-only");
        static const char *const files[] = { "proc/kcore", "proc/keys", "proc/timer_list" };
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                if (access(files[i], F_OK) == 0)
                        must(mount("/dev/null", files[i], NULL, MS_BIND, NULL), files[i]);
        if (access("proc/driver", F_OK) == 0)
                must(mount("tmpfs", "proc/driver", "tmpfs", MS_RDONLY, NULL), "mask /proc/driver");

        /* A new sysfs (or proc) in a user namespace needs one fully visible already. */
        must(mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "mount /sys");
        if (access("sys/firmware", F_OK) == 0)
                must(mount("tmpfs", "sys/firmware", "tmpfs", MS_RDONLY, NULL), "mask /sys/firmware");

        must(mount("dev", "dev", "tmpfs", MS_NOSUID, "mode=0755"), "tmpfs /dev");
        fd = open("dev/null", O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        must(fd, "/dev/null mount point");
        close(fd);
        must(mount("/dev/null", "dev/null", NULL, MS_BIND, NULL), "bind /dev/null");

        must((int) syscall(SYS_pivot_root, ".", "old"), "pivot_root");
        must(chdir("/"), "chdir /");
        must(umount2("/old", MNT_DETACH), "unmount the old root");
        must(rmdir("/old"), "remove /old");
}

static int send_fd(int socket, int fd) {
        char byte = 'F';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control = {};
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof(control.buf) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        return sendmsg(socket, &msg, 0) < 0 ? -errno : 0;
}

static void seccomp_trap(int socket) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                die("seccomp_init");
        static const char *const names[] = { "mount", "umount2", "mknod", "mknodat", "pivot_root" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, seccomp_syscall_resolve_name(names[i]), 0) < 0)
                        die("seccomp_rule_add");
        if (seccomp_load(ctx) < 0)
                die("seccomp_load");
        int fd = seccomp_notify_fd(ctx);
        if (fd < 0 || send_fd(socket, fd) < 0)
                die("send the notify fd");
        close(fd);
        seccomp_release(ctx);
}

/* ---- in the test ---- */

typedef struct Run {
        /* set by the test */
        BrokerLimits limits;
        bool fork_failures; /* our forks (the helpers) fail now and then */
        bool stop_helper;  /* SIGSTOP a helper once it took the caller's ids (the stopper) */
        int stall_parent_ms; /* SIGSTOP the helper parent for this long once the first call went to it */
        bool kill_agent;   /* serve in a child, killed once a call waits in its queue; then anew */
        /* results */
        char pids_cgroup[128]; /* with fork_failures: ours, "" if there is none */
        char *results;
        int handled, pending, queued, denied, continued, cancelled;
        uid_t stopped_owner; /* of /proc/PID of the stopped helper, -1 if none */
        int kept; /* with kill_agent: the calls the new broker took from the journal */
} Run;

static void run_done(Run *r) {
        free(r->results);
}

static long run_result(const Run *r, const char *name) {
        char key[128];
        snprintf(key, sizeof(key), "\n%s ", name);
        const char *at = strstr(r->results, key);
        if (!at) {
                fprintf(stderr, "no result '%s' in:\n%s\n", name, r->results + 1);
                abort();
        }
        return strtol(at + strlen(key), NULL, 10);
}

static void write_file(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static int recv_fd(int socket) {
        char byte;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof(control.buf) };
        if (recvmsg(socket, &msg, MSG_CMSG_CLOEXEC) <= 0)
                return -EBADF;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (!c || c->cmsg_type != SCM_RIGHTS)
                return -EBADF;
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        return fd;
}

static void log_event(const BrokerEvent *e) {
        if (getenv("BROKER_VERBOSE"))
                fprintf(stderr, "  %s by %d: %s%s %s\n", e->syscall, (int) e->pid,
                        e->continued ? "continued" : e->denied ? "denied, " : "",
                        e->continued ? "" : strerror(-e->error), e->reason);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The helper executable of this build: $STOCKADE_BIN/stockade-helper, else the build tree's. */
static const char *helper_path(void) {
        static char path[PATH_MAX];
        const char *bin = getenv("STOCKADE_BIN");
        if (bin)
                snprintf(path, sizeof(path), "%s/stockade-helper", bin);
        else if (!realpath("build/bin/stockade-helper", path))
                test_skip("no stockade-helper: set STOCKADE_BIN");
        return path;
}

/* The first child of pid other than not (/proc/PID/task/PID/children), 0 if none. */
static pid_t child_of(pid_t pid, pid_t not) {
        char path[96], text[4096] = "";
        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) pid, (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
        if (fd >= 0)
                close(fd);
        text[MAX(n, 0)] = '\0';
        char *save = NULL;
        for (char *t = strtok_r(text, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
                if (atoi(t) != not)
                        return atoi(t);
        return 0;
}

/* The stopper, a thread that traces the helper parent: it follows the parent's next helper
 * through its system calls and stops it (SIGSTOP, as a container could) at the first call
 * after it took the caller's ids and capabilities and made itself undumpable again, before
 * it acted or answered; then it looks at who owns the stopped helper's /proc entries. */
typedef struct Stopper {
        pid_t container;
        uid_t owner; /* of /proc/PID/status of the stopped helper, -1 if none was stopped */
} Stopper;

/* Follows one helper, attached at its birth; true once it is left stopped. */
static bool stopper_follow(Stopper *s, pid_t helper) {
        bool took_ids = false;
        int status, sig = 0;
        for (;;) {
                if (waitpid(helper, &status, __WALL) != helper || WIFEXITED(status) || WIFSIGNALED(status))
                        return false;
                if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
                        struct __ptrace_syscall_info info;
                        if (ptrace(PTRACE_GET_SYSCALL_INFO, helper, sizeof(info), &info) <= 0)
                                return false;
                        if (info.op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr == SYS_capset)
                                took_ids = true;
                        else if (info.op == PTRACE_SYSCALL_INFO_ENTRY && took_ids && info.entry.nr != SYS_prctl)
                                break;
                } else if (status >> 16 == 0) /* a signal for it, not a ptrace event */
                        sig = WSTOPSIG(status);
                if (ptrace(PTRACE_SYSCALL, helper, 0, sig) < 0)
                        return false;
                sig = 0;
        }
        /* It stops once this call returns. */
        if (kill(helper, SIGSTOP) < 0 || ptrace(PTRACE_DETACH, helper, 0, 0) < 0)
                return false;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/status", (int) helper);
        for (int i = 0; i < 1000; i++) {
                _cleanup_free_ char *text = NULL;
                size_t size;
                if (read_full_file(AT_FDCWD, path, 1 << 16, &text, &size) < 0)
                        return false;
                unsigned uid = 0;
                const char *line = strstr(text, "\nUid:");
                struct stat st;
                if (strstr(text, "\nState:\tT") && line && sscanf(line, "\nUid: %*u %u", &uid) == 1 && uid >= BASE &&
                    stat(path, &st) == 0) {
                        s->owner = st.st_uid;
                        return true;
                }
                usleep(1000);
        }
        return false;
}

static void *stopper_run(void *arg) {
        Stopper *s = arg;
        pid_t parent = 0;
        for (int i = 0; i < 100000 && parent <= 0; i++) /* started on the first call */
                if ((parent = child_of(getpid(), s->container)) <= 0)
                        usleep(100);
        if (parent <= 0 || ptrace(PTRACE_SEIZE, parent, 0, PTRACE_O_TRACEFORK | PTRACE_O_TRACESYSGOOD) < 0)
                return NULL;
        int status;
        while (waitpid(parent, &status, __WALL) == parent && WIFSTOPPED(status)) {
                unsigned long helper = 0;
                if (status >> 16 == PTRACE_EVENT_FORK && ptrace(PTRACE_GETEVENTMSG, parent, 0, &helper) < 0)
                        break;
                int sig = status >> 16 == 0 ? WSTOPSIG(status) : 0;
                if (ptrace(PTRACE_CONT, parent, 0, sig) < 0)
                        break;
                if (helper > 0 && stopper_follow(s, (pid_t) helper))
                        break;
        }
        return NULL; /* our tracees go free with us */
}

static void count_event(Run *run, const BrokerEvent *e) {
        log_event(e);
        run->denied += e->denied;
        run->continued += e->continued;
}

/* At most max processes in the cgroup, ourselves included: fork() fails past it. */
static void pids_max(const char *cgroup, int max) {
        char path[PATH_MAX], text[32];
        snprintf(path, sizeof(path), "%s/pids.max", cgroup);
        snprintf(text, sizeof(text), "%d", max);
        write_file(path, text);
}

typedef struct Pending {
        BrokerPending *p;
        int64_t deadline;
} Pending;
#define PENDING_MAX 16

/* Starts the queued calls that can start now. */
static void serve_queued(BrokerContainer *c, Pending *pending, size_t *n_pending, Run *run) {
        BrokerEvent e;
        for (int r = 0; r != -EAGAIN;) {
                BrokerPending *q = NULL;
                r = broker_container_dequeue(c, &q, &e);
                ASSERT_TRUE(r >= 0 || r == -ENOENT || r == -EAGAIN);
                if (r == BROKER_PENDING) {
                        ASSERT_TRUE(*n_pending < PENDING_MAX);
                        pending[(*n_pending)++] = (Pending) { q, now_ms() + BROKER_HELPER_TIMEOUT_SEC * 1000 };
                        run->pending++;
                } else if (r == BROKER_ANSWERED)
                        count_event(run, &e);
        }
}

/* What the agent's loop does: answers, watches helpers up to their deadline, starts queued
 * calls when helpers end. */
static void serve(BrokerContainer *c, int notify_fd, pid_t container, Run *run) {
        Pending pending[PENDING_MAX];
        size_t n_pending = 0;
        BrokerEvent e;
        pid_t stalled = 0;
        int64_t resume = 0;
        bool busy = false;
        serve_queued(c, pending, &n_pending, run); /* those taken from a journal */
        for (;;) {
                /* While no helper could start, the calls wait in the kernel's queue. */
                struct pollfd p[1 + ELEMENTSOF(pending)] = { { .fd = notify_fd, .events = busy ? 0 : POLLIN } };
                int64_t now = now_ms(), timeout = 20000;
                if (stalled > 0 && now >= resume) {
                        ASSERT_OK(RET_NERRNO(kill(stalled, SIGCONT)));
                        stalled = 0;
                }
                if (stalled > 0)
                        timeout = resume - now;
                for (size_t i = 0; i < n_pending; i++) {
                        p[1 + i] = (struct pollfd) { .fd = broker_pending_fd(pending[i].p), .events = POLLIN };
                        timeout = MIN(timeout, MAX(pending[i].deadline - now, 0));
                }
                int n = poll(p, 1 + n_pending, (int) timeout);
                ASSERT_TRUE(n >= 0 && (n > 0 || n_pending > 0));
                bool ended = false;
                for (size_t i = n_pending; i > 0; i--) {
                        int r;
                        if (p[i].revents)
                                r = broker_pending_finish(pending[i - 1].p, &e);
                        else if (now_ms() >= pending[i - 1].deadline) {
                                r = broker_pending_cancel(pending[i - 1].p, -EINTR, "too late", &e);
                                run->cancelled++;
                        } else
                                continue;
                        if (r == -EAGAIN)
                                continue; /* the helper parent said it started the helper */
                        ASSERT_TRUE(r >= 0 || r == -ENOENT);
                        pending[i - 1] = pending[--n_pending];
                        ended = true;
                        busy = false;
                        if (r >= 0)
                                count_event(run, &e);
                }
                if (ended)
                        serve_queued(c, pending, &n_pending, run);
                if (p[0].revents & POLLIN) {
                        BrokerPending *q = NULL;
                        int r = broker_handle(c, notify_fd, &q, &e);
                        ASSERT_TRUE(r >= 0 || r == -ENOENT || (r == -EBUSY && n_pending > 0));
                        busy = r == -EBUSY;
                        run->handled += !busy;
                        if (run->pids_cgroup[0] && run->handled % 64 == 0)
                                pids_max(run->pids_cgroup, run->handled % 128 ? 2 : 3);
                        if (r == BROKER_PENDING) {
                                ASSERT_TRUE(n_pending < ELEMENTSOF(pending));
                                pending[n_pending++] = (Pending) { q, now_ms() + BROKER_HELPER_TIMEOUT_SEC * 1000 };
                                run->pending++;
                                if (run->stall_parent_ms > 0 && (stalled = child_of(getpid(), container)) > 0) {
                                        ASSERT_OK(RET_NERRNO(kill(stalled, SIGSTOP)));
                                        resume = now_ms() + run->stall_parent_ms;
                                        run->stall_parent_ms = 0;
                                }
                        } else if (r == BROKER_QUEUED) {
                                run->queued++;
                                if (run->kill_agent) { /* as kill -9 would; the helper parent goes on */
                                        if (stalled > 0)
                                                (void) kill(stalled, SIGCONT);
                                        (void) raise(SIGKILL);
                                }
                        }
                        else if (r == BROKER_ANSWERED)
                                count_event(run, &e);
                } else if (p[0].revents & (POLLHUP | POLLERR) && n_pending == 0)
                        break;
        }
}

/* Our own forks from now on in a new pids cgroup (v1), at first without a limit. "" when
 * there is no pids controller. */
static void pids_cgroup(char *ret_cgroup, size_t size) {
        snprintf(ret_cgroup, size, "/sys/fs/cgroup/pids/stockade-test-broker.%d", (int) getpid());
        if (access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) < 0 || mkdir(ret_cgroup, 0755) < 0) {
                ret_cgroup[0] = '\0';
                return;
        }
        char path[PATH_MAX], text[32];
        snprintf(path, sizeof(path), "%s/cgroup.procs", ret_cgroup);
        snprintf(text, sizeof(text), "%d", (int) getpid());
        write_file(path, text);
}

/* Moves us and the helper parent (started in it) back out, then removes it. A helper the
 * parent forked meanwhile is in it too, and moved out on the next round. */
static void pids_unlimit(const char *cgroup) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
        for (int round = 0;; round++) {
                _cleanup_free_ char *procs = NULL;
                size_t size;
                ASSERT_OK(read_full_file(AT_FDCWD, path, 1 << 16, &procs, &size));
                char *save = NULL;
                int fd = open("/sys/fs/cgroup/pids/cgroup.procs", O_WRONLY | O_CLOEXEC);
                ASSERT_TRUE(fd >= 0);
                for (char *pid = strtok_r(procs, "\n", &save); pid; pid = strtok_r(NULL, "\n", &save))
                        ASSERT_TRUE(write(fd, pid, strlen(pid)) >= 0 || errno == ESRCH); /* a helper that just ended */
                close(fd);
                if (rmdir(cgroup) == 0)
                        return;
                ASSERT_TRUE(errno == EBUSY && round < 100);
                usleep(10 * 1000);
        }
}

/* The agent serves in a child until it is killed with a call in its queue (received, not
 * handed to the helper parent); then a new broker on its journal serves the container. */
static void serve_killed_agent(Broker **b, BrokerContainer **bc, int notify_fd, pid_t container, pid_t init, Run *run) {
        fflush(NULL);
        pid_t agent = fork();
        ASSERT_TRUE(agent >= 0);
        if (agent == 0) {
                serve(*bc, notify_fd, container, run);
                _exit(EXIT_FAILURE); /* not killed: no call was queued */
        }
        int status;
        ASSERT_EQ(waitpid(agent, &status, 0), agent);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        Broker *next = NULL;
        ASSERT_OK(broker_new(broker_limits(*b), broker_journal_fd(*b), &next));
        ASSERT_OK(broker_set_helper(next, helper_path()));
        broker_container_free(*bc);
        broker_free(*b);
        *b = next;
        char *err = NULL;
        ASSERT_OK(broker_container_new(next, "test", init, BASE, masked, ELEMENTSOF(masked), -EBADF, bc, &err));
        run->kept = broker_container_take_kept(*bc, notify_fd);
        broker_journal_settle(next);
        run->kill_agent = false;
}

/* Runs scenario in a fresh container and collects its results; run says how to serve it. */
static void run_container(Scenario scenario, Run *run) {
        if (geteuid() != 0)
                test_skip("needs root");
        char root[PATH_MAX];
        snprintf(root, sizeof(root), "%s/root", test_tmpdir());
        ASSERT_OK(RET_NERRNO(chmod(test_tmpdir(), 0755)));
        ASSERT_OK(RET_NERRNO(mkdir(root, 0755)));

        int sync_pipe[2], go_pipe[2], results[2], sock[2];
        ASSERT_OK(RET_NERRNO(pipe2(sync_pipe, O_CLOEXEC)));
        ASSERT_OK(RET_NERRNO(pipe2(go_pipe, O_CLOEXEC)));
        ASSERT_OK(RET_NERRNO(pipe2(results, O_CLOEXEC)));
        ASSERT_OK(RET_NERRNO(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock)));
        fflush(NULL);
        pid_t child = fork();
        ASSERT_TRUE(child >= 0);
        if (child == 0) {
                close(sync_pipe[0]);
                close(go_pipe[1]);
                close(results[0]);
                close(sock[0]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                            CLONE_NEWUTS | CLONE_NEWCGROUP) < 0)
                        die("unshare");
                char c = 'u';
                if (write(sync_pipe[1], &c, 1) != 1 || read(go_pipe[0], &c, 1) != 1)
                        die("sync");
                must(setresgid(0, 0, 0), "setresgid");
                must(setresuid(0, 0, 0), "setresuid");
                pid_t init = fork(); /* pid 1 of the new pid namespace */
                if (init < 0)
                        die("fork");
                if (init == 0) {
                        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                        container_setup(root);
                        seccomp_trap(sock[1]);
                        FILE *out = fdopen(results[1], "w");
                        if (!out)
                                die("fdopen");
                        fputc('\n', out);
                        scenario(out);
                        fclose(out);
                        _exit(0);
                }
                if (write(sync_pipe[1], &init, sizeof(init)) != sizeof(init))
                        die("report pid");
                int status;
                while (waitpid(init, &status, 0) < 0)
                        if (errno != EINTR)
                                die("wait");
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 3);
        }
        close(sync_pipe[1]);
        close(go_pipe[0]);
        close(results[1]);
        close(sock[1]);

        char c;
        ASSERT_EQ(read(sync_pipe[0], &c, 1), 1);
        char path[64], map[64];
        snprintf(map, sizeof(map), "0 %d 65536\n", BASE);
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int) child);
        write_file(path, map);
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int) child);
        write_file(path, map);
        ASSERT_EQ(write(go_pipe[1], &c, 1), 1);
        pid_t init;
        ASSERT_EQ(read(sync_pipe[0], &init, sizeof(init)), (ssize_t) sizeof(init));

        /* The filter is loaded after the initial mounts: they are what the broker records. */
        int notify_fd = recv_fd(sock[0]);
        ASSERT_TRUE(notify_fd >= 0);
        Broker *b = NULL;
        ASSERT_OK(broker_new(run->limits.helpers ? &run->limits : &BROKER_LIMITS_DEFAULT, -EBADF, &b));
        ASSERT_OK(broker_set_helper(b, helper_path()));
        BrokerContainer *bc = NULL;
        char *err = NULL;
        int r = broker_container_new(b, "test", init, BASE, masked, ELEMENTSOF(masked), -EBADF, &bc, &err);
        if (r < 0)
                fprintf(stderr, "%s\n", err);
        ASSERT_OK(r);
        ASSERT_STREQ(broker_container_id(bc), "test");
        ASSERT_TRUE(broker_container_pidfd(bc) >= 0);

        if (run->fork_failures)
                pids_cgroup(run->pids_cgroup, sizeof(run->pids_cgroup));
        Stopper stopper = { .container = child, .owner = (uid_t) -1 };
        pthread_t stopper_thread;
        if (run->stop_helper)
                ASSERT_EQ(pthread_create(&stopper_thread, NULL, stopper_run, &stopper), 0);
        if (run->kill_agent)
                serve_killed_agent(&b, &bc, notify_fd, child, init, run);
        serve(bc, notify_fd, child, run);
        if (run->pids_cgroup[0])
                pids_unlimit(run->pids_cgroup);
        unsigned helpers, queued;
        broker_usage(b, NULL, &helpers, &queued);
        ASSERT_EQ(helpers, 0u);
        ASSERT_EQ(queued, 0u);

        size_t size;
        ASSERT_OK(read_full_fd(results[0], 1 << 20, &run->results, &size));
        int status;
        ASSERT_EQ(waitpid(child, &status, 0), child);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "container results:%s\n", run->results);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        /* The init's pidfd says when the container is gone. */
        struct pollfd p = { .fd = broker_container_pidfd(bc), .events = POLLIN };
        ASSERT_EQ(poll(&p, 1, 0), 1);
        broker_container_free(bc);
        broker_free(b);
        if (run->stop_helper)
                ASSERT_EQ(pthread_join(stopper_thread, NULL), 0); /* it ends with the helper parent */
        run->stopped_owner = stopper.owner;
        free(err);
        close(notify_fd);
        close(sync_pipe[0]);
        close(go_pipe[1]);
        close(results[0]);
        close(sock[0]);
}

/* Nothing of the test's container shows in our mount table (others' may). */
static bool host_mounts_clean(void) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        ASSERT_OK(read_full_file(AT_FDCWD, "/proc/self/mountinfo", 16 << 20, &text, &size));
        return !strstr(text, test_tmpdir());
}

/* ---- scenarios ---- */

static long elapsed_us(const struct timespec *a, const struct timespec *b) {
        return (b->tv_sec - a->tv_sec) * 1000000L + (b->tv_nsec - a->tv_nsec) / 1000;
}

static void *mount_in_thread(void *unused) {
        mkdir("/m4", 0755);
        return (void *) (intptr_t) E(mount("none", "/m4", "tmpfs", 0, NULL));
}

static void scenario_mounts(FILE *out) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = E(mount("none", "/mnt", "tmpfs", 0, "size=1m,mode=0755"));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        result(out, "tmpfs", r);
        result(out, "tmpfs_us", elapsed_us(&t0, &t1));
        struct statfs sf;
        result(out, "tmpfs_is_tmpfs", statfs("/mnt", &sf) == 0 && sf.f_type == TMPFS_MAGIC);
        int fd = open("/mnt/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        result(out, "tmpfs_write", fd < 0 ? errno : E(write(fd, "hello", 5)));
        if (fd >= 0)
                close(fd);

        mkdir("/b", 0755);
        result(out, "bind", E(mount("/mnt", "/b", NULL, MS_BIND, NULL)));
        result(out, "bind_sees", read_count("/b/x"));
        mkdir("/dn", 0755);
        result(out, "bind_file_on_dir", E(mount("/dev/null", "/dn", NULL, MS_BIND, NULL)));

        mkdir("/mnt/sub", 0755);
        r = chdir("/mnt");
        result(out, "relative", r < 0 ? errno : E(mount("none", "sub", "tmpfs", 0, NULL)));
        struct stat a, b;
        result(out, "relative_is_mount", stat("/mnt/sub", &a) == 0 && stat("/mnt", &b) == 0 && a.st_dev != b.st_dev);
        r = chdir("/");
        result(out, "private", E(mount(NULL, "/mnt", NULL, MS_PRIVATE | MS_REC, NULL)));
        result(out, "bad_propagation", E(mount(NULL, "/mnt", NULL, MS_PRIVATE | MS_SHARED, NULL)));

        mkdir("/m1", 0755);
        mkdir("/m2", 0755);
        (void) mount("none", "/m1", "tmpfs", 0, NULL);
        result(out, "move", E(mount("/m1", "/m2", NULL, MS_MOVE, NULL)));
        result(out, "move_initial", E(mount("/data", "/m1", NULL, MS_MOVE, NULL)));

        result(out, "ext4", E(mount("/dev/vda", "/m1", "ext4", 0, NULL)));
        result(out, "nfs", E(mount("host:/x", "/m1", "nfs", 0, NULL)));
        result(out, "bind_masked", E(mount("/mnt/x", "/proc/keys", NULL, MS_BIND, NULL)));
        result(out, "bind_null_on_masked", E(mount("/dev/null", "/proc/keys", NULL, MS_BIND, NULL)));
        /* The engine keeps a network namespace by binding its file; not a mount namespace's. */
        close(open("/mnt/netns", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        result(out, "bind_netns", E(mount("/proc/self/ns/net", "/mnt/netns", NULL, MS_BIND, NULL)));
        /* Past its own links: not through the agent's /proc, where ".." climbs to the VM's
         * init's; in the caller's root, its /proc shows the helper no "self". */
        result(out, "bind_self_dotdot", E(mount("/proc/self/ns/../../1/ns/net", "/mnt/netns", NULL, MS_BIND, NULL)));
        result(out, "bind_self_fd_dotdot", E(mount("/proc/self/fd/../../1/root", "/mnt/sub", NULL, MS_BIND, NULL)));
        result(out, "bind_mntns", E(mount("/proc/self/ns/mnt", "/mnt/x", NULL, MS_BIND, NULL)));

        result(out, "remount_own_ro", E(mount(NULL, "/mnt", NULL, MS_REMOUNT | MS_RDONLY, "size=2m")));
        result(out, "own_is_ro", read_only("/mnt"));
        result(out, "remount_own_rw", E(mount(NULL, "/mnt", NULL, MS_REMOUNT, NULL)));
        result(out, "own_is_rw", !read_only("/mnt"));

        /* runc mounts onto "/proc/self/fd/N", a directory it holds open: the caller's fd,
         * not one of the helper's. */
        mkdir("/m3", 0755);
        int m3 = open("/m3", O_PATH | O_DIRECTORY | O_CLOEXEC);
        char via[64];
        snprintf(via, sizeof(via), "/proc/self/fd/%d", m3);
        result(out, "via_proc_self_fd", E(mount("none", via, "tmpfs", 0, NULL)));
        result(out, "via_proc_self_fd_is_mount", stat("/m3", &a) == 0 && stat("/", &b) == 0 && a.st_dev != b.st_dev);
        close(m3);
        /* Threads of Go programs make the calls (only a leader had a pidfd before Linux 6.9). */
        pthread_t thread;
        void *thread_result = NULL;
        result(out, "from_a_thread", pthread_create(&thread, NULL, mount_in_thread, NULL) ?: pthread_join(thread, &thread_result) ?: (int) (intptr_t) thread_result);

        result(out, "umount_sub", E(umount2("/mnt/sub", 0)));
        result(out, "umount_bind", E(umount("/b")));
}

/* Sets fs.suid_dumpable to value (if there is one), the old value in old[16] if not NULL. */
static void suid_dumpable_set(const char *value, char *old) {
        const char *path = "/proc/sys/fs/suid_dumpable";
        _cleanup_free_ char *text = NULL;
        size_t size;
        if (old)
                snprintf(old, 16, "%s", read_full_file(AT_FDCWD, path, 15, &text, &size) >= 0 ? text : "");
        if (value[0])
                write_file(path, value);
}

/* The container's processes changed their ids without an exec: with fs.suid_dumpable 0 (the
 * default) they are not dumpable, so that only they may follow their own /proc/self links. */
TEST(mounts) {
        char old[16];
        suid_dumpable_set("0", old);
        Run run = {};
        run_container(scenario_mounts, &run);
        suid_dumpable_set(old, NULL);
        ASSERT_EQ(run_result(&run, "tmpfs"), 0);
        printf("broker: tmpfs mount through the helper took %ld us (trap, helper, answer)\n",
               run_result(&run, "tmpfs_us"));
        ASSERT_EQ(run_result(&run, "tmpfs_is_tmpfs"), 1);
        ASSERT_EQ(run_result(&run, "tmpfs_write"), 0);
        ASSERT_EQ(run_result(&run, "bind"), 0);
        ASSERT_EQ(run_result(&run, "bind_sees"), 5);
        ASSERT_EQ(run_result(&run, "bind_file_on_dir"), ENOTDIR); /* what runc takes as "mask with a tmpfs" */
        ASSERT_EQ(run_result(&run, "relative"), 0);
        ASSERT_EQ(run_result(&run, "relative_is_mount"), 1);
        ASSERT_EQ(run_result(&run, "private"), 0);
        ASSERT_EQ(run_result(&run, "bad_propagation"), EINVAL);
        ASSERT_EQ(run_result(&run, "move"), 0);
        ASSERT_EQ(run_result(&run, "move_initial"), EPERM);
        ASSERT_EQ(run_result(&run, "ext4"), EPERM);
        ASSERT_EQ(run_result(&run, "nfs"), EPERM);
        ASSERT_EQ(run_result(&run, "bind_masked"), EPERM);
        ASSERT_EQ(run_result(&run, "bind_null_on_masked"), 0);
        ASSERT_EQ(run_result(&run, "bind_netns"), 0);
        ASSERT_EQ(run_result(&run, "bind_self_dotdot"), ENOENT);
        ASSERT_EQ(run_result(&run, "bind_self_fd_dotdot"), ENOENT);
        ASSERT_EQ(run_result(&run, "bind_mntns"), EPERM);
        ASSERT_EQ(run_result(&run, "remount_own_ro"), 0);
        ASSERT_EQ(run_result(&run, "own_is_ro"), 1);
        ASSERT_EQ(run_result(&run, "remount_own_rw"), 0);
        ASSERT_EQ(run_result(&run, "own_is_rw"), 1);
        ASSERT_EQ(run_result(&run, "via_proc_self_fd"), 0);
        ASSERT_EQ(run_result(&run, "via_proc_self_fd_is_mount"), 1);
        ASSERT_EQ(run_result(&run, "from_a_thread"), 0);
        ASSERT_EQ(run_result(&run, "umount_sub"), 0);
        ASSERT_EQ(run_result(&run, "umount_bind"), 0);
        ASSERT_EQ(run.denied, 5);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static void scenario_remount(FILE *out) {
        result(out, "initially_ro", read_only("/data"));
        result(out, "remount_bind_rw", E(mount(NULL, "/data", NULL, MS_REMOUNT | MS_BIND, NULL)));
        result(out, "remount_rw", E(mount(NULL, "/data", NULL, MS_REMOUNT, NULL)));
        result(out, "remount_drop_nosuid",
               E(mount(NULL, "/data", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV | MS_NOEXEC, NULL)));
        result(out, "still_ro", read_only("/data"));
        int fd = open("/data/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        result(out, "write", fd < 0 ? errno : 0);
        result(out, "remount_keep",
               E(mount(NULL, "/data", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)));

        mkdir("/data2", 0755);
        result(out, "bind_initial", E(mount("/data", "/data2", NULL, MS_BIND, NULL)));
        result(out, "bind_remount_rw", E(mount(NULL, "/data2", NULL, MS_REMOUNT | MS_BIND, NULL)));
        result(out, "bind_still_ro", read_only("/data2"));
        /* The same files through another bind of the source directory. */
        mkdir("/data3", 0755);
        result(out, "bind_source", E(mount("/data-src", "/data3", NULL, MS_BIND, NULL)));
        result(out, "bind_source_remount_rw", E(mount(NULL, "/data3", NULL, MS_REMOUNT | MS_BIND, NULL)));

        result(out, "proc_sys_rw", E(mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL)));
        result(out, "proc_sys_still_ro", read_only("/proc/sys"));
}

TEST(remount_initial) {
        Run run = {};
        run_container(scenario_remount, &run);
        ASSERT_EQ(run_result(&run, "initially_ro"), 1);
        ASSERT_EQ(run_result(&run, "remount_bind_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "remount_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "remount_drop_nosuid"), EPERM);
        ASSERT_EQ(run_result(&run, "still_ro"), 1);
        ASSERT_EQ(run_result(&run, "write"), EROFS);
        ASSERT_EQ(run_result(&run, "remount_keep"), 0);
        ASSERT_EQ(run_result(&run, "bind_initial"), 0);
        ASSERT_EQ(run_result(&run, "bind_remount_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "bind_still_ro"), 1);
        ASSERT_EQ(run_result(&run, "bind_source"), 0);
        ASSERT_EQ(run_result(&run, "bind_source_remount_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "proc_sys_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "proc_sys_still_ro"), 1);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static void scenario_umount(FILE *out) {
        result(out, "proc", E(umount("/proc")));
        result(out, "proc_detach", E(umount2("/proc", MNT_DETACH)));
        result(out, "root", E(umount2("/", MNT_DETACH)));
        result(out, "dev", E(umount("/dev")));
        result(out, "keys", E(umount("/proc/keys")));
        result(out, "proc_sys", E(umount2("/proc/sys", MNT_DETACH)));
        if (symlink("/proc", "/lnk") < 0)
                die("symlink");
        result(out, "symlink", E(umount("/lnk")));
        result(out, "dotdot", E(umount("/dev/../proc")));
        mkdir("/pc", 0755);
        result(out, "bind_proc_norec", E(mount("/proc", "/pc", NULL, MS_BIND, NULL)));
        result(out, "bind_proc_rec", E(mount("/proc", "/pc", NULL, MS_BIND | MS_REC, NULL)));
        result(out, "copy_keys_bytes", read_count("/pc/keys"));
        result(out, "copy_keys", E(umount2("/pc/keys", MNT_DETACH)));
        result(out, "copy", E(umount2("/pc", MNT_DETACH)));
        result(out, "data", E(umount("/data")));
        result(out, "bad_flags", E(umount2("/mnt", 0x100)));
        result(out, "not_mounted", E(umount("/mnt")));
        result(out, "missing", E(umount("/nonexistent")));
        /* The second call has a kept helper made, which takes the third and ends 2 s after
         * it: the agent learns that only when the fourth cannot be sent to it. */
        for (int i = 0; i < 6; i++) {
                char name[32];
                snprintf(name, sizeof(name), "kept_call_%d", i);
                if (i == 3)
                        sleep(3);
                result(out, name, i % 2 == 0 ? E(mount("none", "/mnt", "tmpfs", 0, NULL)) : E(umount("/mnt")));
        }
}

TEST(umount) {
        Run run = {};
        run_container(scenario_umount, &run);
        ASSERT_EQ(run_result(&run, "proc"), EBUSY);
        ASSERT_EQ(run_result(&run, "proc_detach"), EBUSY);
        ASSERT_EQ(run_result(&run, "root"), EBUSY);
        ASSERT_EQ(run_result(&run, "dev"), EBUSY);
        ASSERT_EQ(run_result(&run, "keys"), EPERM);
        ASSERT_EQ(run_result(&run, "proc_sys"), EPERM);
        ASSERT_EQ(run_result(&run, "symlink"), EBUSY);
        ASSERT_EQ(run_result(&run, "dotdot"), EBUSY);
        ASSERT_EQ(run_result(&run, "bind_proc_norec"), EPERM);
        ASSERT_EQ(run_result(&run, "bind_proc_rec"), 0);
        ASSERT_EQ(run_result(&run, "copy_keys_bytes"), 0);
        ASSERT_EQ(run_result(&run, "copy_keys"), EPERM);
        ASSERT_EQ(run_result(&run, "copy"), 0);
        ASSERT_EQ(run_result(&run, "data"), 0);
        ASSERT_EQ(run_result(&run, "bad_flags"), EINVAL);
        ASSERT_EQ(run_result(&run, "not_mounted"), EINVAL);
        ASSERT_EQ(run_result(&run, "missing"), ENOENT);
        for (int i = 0; i < 6; i++) {
                char name[32];
                snprintf(name, sizeof(name), "kept_call_%d", i);
                ASSERT_EQ(run_result(&run, name), 0);
        }
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static long pivot_root(const char *new_root, const char *put_old) {
        return syscall(SYS_pivot_root, new_root, put_old);
}

static void pivot_root_calls(FILE *out) {
        /* Made the root, a mask would leave what it hides uncovered; a mount the container
         * started with is not moved either. */
        result(out, "into_mask", chdir("/sys/firmware") < 0 ? -1 : E(pivot_root(".", ".")));
        result(out, "into_initial", chdir("/data") < 0 ? -1 : E(pivot_root(".", ".")));
        result(out, "into_proc_sys", E(pivot_root("/proc/sys", "/proc/sys")));
        struct statfs sf;
        result(out, "firmware_masked", statfs("/sys/firmware", &sf) == 0 && sf.f_type == TMPFS_MAGIC);
        /* The two ways runc pivots: to a new root with the old one under it, then (as runc
         * does now) onto the new root itself, unmounting the old one from "." after. */
        mkdir("/nr", 0755);
        result(out, "new_root", E(mount("none", "/nr", "tmpfs", 0, NULL)));
        mkdir("/nr/old", 0755);
        mkdir("/nr/nr2", 0755);
        result(out, "pivot_put_old", chdir("/") < 0 ? -1 : E(pivot_root("/nr", "/nr/old")));
        result(out, "old_under", access("/old/data/file", F_OK) == 0);
        result(out, "old_unmounted", E(umount2("/old", MNT_DETACH)));
        result(out, "new_root2", E(mount("none", "/nr2", "tmpfs", 0, NULL)));
        int fd = open("/nr2/marker", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        result(out, "pivot_dot", chdir("/nr2") < 0 ? -1 : E(pivot_root(".", ".")));
        result(out, "old_unmounted_from_dot", E(umount2(".", MNT_DETACH)));
        result(out, "marker", access("/marker", F_OK) == 0 && access("/nr2", F_OK) < 0);
        result(out, "root_busy", E(umount2("/", MNT_DETACH)));
}

/* In a mount namespace of its own, as a runc inside the container makes: the container's
 * own mounts stay in use meanwhile (their ids and device numbers are not freed for new
 * mounts, which the broker would then take for initial ones). */
static void scenario_pivot_root(FILE *out) {
        fflush(out);
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                if (unshare(CLONE_NEWNS) < 0)
                        die("unshare");
                pivot_root_calls(out);
                fflush(out);
                _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("pivot_root calls");
}

TEST(pivot_root) {
        if (access("/sys/firmware", F_OK) < 0)
                test_skip("no /sys/firmware to mask");
        Run run = {};
        run_container(scenario_pivot_root, &run);
        ASSERT_EQ(run_result(&run, "into_mask"), EPERM);
        ASSERT_EQ(run_result(&run, "into_initial"), EPERM);
        ASSERT_EQ(run_result(&run, "into_proc_sys"), EPERM);
        ASSERT_EQ(run_result(&run, "firmware_masked"), 1);
        ASSERT_EQ(run_result(&run, "new_root"), 0);
        ASSERT_EQ(run_result(&run, "pivot_put_old"), 0);
        ASSERT_EQ(run_result(&run, "old_under"), 1);
        ASSERT_EQ(run_result(&run, "old_unmounted"), 0);
        ASSERT_EQ(run_result(&run, "new_root2"), 0);
        ASSERT_EQ(run_result(&run, "pivot_dot"), 0);
        ASSERT_EQ(run_result(&run, "old_unmounted_from_dot"), 0);
        ASSERT_EQ(run_result(&run, "marker"), 1);
        ASSERT_EQ(run_result(&run, "root_busy"), EBUSY);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

/* 0, or the errno of writing text to path. */
static int write_text(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return errno;
        int r = write(fd, text, strlen(text)) < 0 ? errno : 0;
        close(fd);
        return r;
}

static void scenario_proc(FILE *out) {
        mkdir("/p2", 0755);
        result(out, "proc", E(mount("proc", "/p2", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)));
        result(out, "pid1", access("/p2/1/status", F_OK) == 0);
        result(out, "uptime_bytes", read_count("/p2/uptime"));
        result(out, "kcore_exists", access("/p2/kcore", F_OK) == 0);
        result(out, "kcore_bytes", read_count("/p2/kcore"));
        result(out, "keys_bytes", read_count("/p2/keys"));
        result(out, "timer_list_bytes", read_count("/p2/timer_list"));
        result(out, "driver_entries", dir_entries("/p2/driver"));
        result(out, "driver_ro", read_only("/p2/driver"));
        result(out, "sys_ro", read_only("/p2/sys"));
        result(out, "sys_rw", E(mount(NULL, "/p2/sys", NULL, MS_REMOUNT | MS_BIND, NULL)));
        /* Our own network namespace's sysctls stay writable, the kernel's do not. */
        result(out, "net_write", write_text("/p2/sys/net/ipv4/ip_unprivileged_port_start", "1024"));
        result(out, "net_ro", read_only("/p2/sys/net"));
        result(out, "kernel_ro", read_only("/p2/sys/kernel"));
        result(out, "umount_keys", E(umount("/p2/keys")));
        result(out, "umount_sys", E(umount("/p2/sys")));
        result(out, "umount_p2", E(umount2("/p2", MNT_DETACH)));
        mkdir("/s2", 0755);
        /* Read-only like the container's /sys, or the kernel finds it too revealing. */
        result(out, "sysfs", E(mount("sysfs", "/s2", "sysfs", MS_RDONLY, NULL)));
        result(out, "firmware_entries", dir_entries("/s2/firmware"));
        result(out, "sysfs_rw", E(mount(NULL, "/s2", NULL, MS_REMOUNT | MS_BIND, NULL)));
        result(out, "sys_umount", E(umount("/sys")));
}

TEST(proc_masking) {
        Run run = {};
        run_container(scenario_proc, &run);
        ASSERT_EQ(run_result(&run, "proc"), 0);
        ASSERT_EQ(run_result(&run, "pid1"), 1); /* the container's pid namespace, not the VM's */
        ASSERT_TRUE(run_result(&run, "uptime_bytes") > 0);
        if (access("/proc/kcore", F_OK) == 0) {
                ASSERT_EQ(run_result(&run, "kcore_exists"), 1);
                ASSERT_EQ(run_result(&run, "kcore_bytes"), 0);
        }
        if (access("/proc/driver", F_OK) == 0) {
                ASSERT_EQ(run_result(&run, "driver_entries"), 0);
                ASSERT_EQ(run_result(&run, "driver_ro"), 1);
        }
        if (access("/proc/keys", F_OK) == 0)
                ASSERT_EQ(run_result(&run, "keys_bytes"), 0);
        if (access("/proc/timer_list", F_OK) == 0)
                ASSERT_EQ(run_result(&run, "timer_list_bytes"), 0);
        ASSERT_EQ(run_result(&run, "sys_ro"), 1);
        ASSERT_EQ(run_result(&run, "sys_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "net_write"), 0);
        ASSERT_EQ(run_result(&run, "net_ro"), 0);
        ASSERT_EQ(run_result(&run, "kernel_ro"), 1);
        ASSERT_EQ(run_result(&run, "umount_keys"), EPERM);
        ASSERT_EQ(run_result(&run, "umount_sys"), EPERM);
        ASSERT_EQ(run_result(&run, "umount_p2"), 0);
        ASSERT_EQ(run_result(&run, "sysfs"), 0);
        if (access("/sys/firmware", F_OK) == 0)
                ASSERT_EQ(run_result(&run, "firmware_entries"), 0);
        /* The container's sysfs shares the initial one's superblock: it stays read-only. */
        ASSERT_EQ(run_result(&run, "sysfs_rw"), EPERM);
        ASSERT_EQ(run_result(&run, "sys_umount"), EBUSY);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static void scenario_mknod(FILE *out) {
        result(out, "null", E(mknod("/dev/mynull", S_IFCHR | 0666, makedev(1, 3))));
        int fd = open("/dev/mynull", O_RDWR | O_CLOEXEC);
        result(out, "null_open", fd < 0 ? errno : 0);
        char buf[8] = "abc";
        result(out, "null_write", fd < 0 ? -1 : write(fd, buf, 3));
        result(out, "null_read", fd < 0 ? -1 : read(fd, buf, sizeof(buf)));
        if (fd >= 0)
                close(fd);
        struct stat st;
        result(out, "null_rdev", stat("/dev/mynull", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
        result(out, "null_again", E(mknod("/dev/mynull", S_IFCHR | 0666, makedev(1, 3))));

        int r = chdir("/dev");
        result(out, "zero_relative", r < 0 ? errno : E(mknodat(AT_FDCWD, "myzero", S_IFCHR | 0666, makedev(1, 5))));
        r = chdir("/");
        memset(buf, 'x', sizeof(buf));
        fd = open("/dev/myzero", O_RDONLY | O_CLOEXEC);
        result(out, "zero_read", fd < 0 ? -errno : read(fd, buf, sizeof(buf)) == 8 && buf[0] == 0 && buf[7] == 0);
        if (fd >= 0)
                close(fd);
        int dir = open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
        result(out, "urandom_dirfd", E(mknodat(dir, "myurandom", S_IFCHR | 0666, makedev(1, 9))));
        close(dir);
        result(out, "urandom_read", read_count("/dev/myurandom") < 0 ? 0 : 1);

        result(out, "block", E(mknod("/dev/sda", S_IFBLK | 0600, makedev(8, 0))));
        result(out, "tty1", E(mknod("/dev/tty1", S_IFCHR | 0600, makedev(4, 1))));
        /* The VM's own terminal and console are no container's business. */
        result(out, "tty", E(mknod("/dev/mytty", S_IFCHR | 0666, makedev(5, 0))));
        result(out, "console", E(mknod("/dev/myconsole", S_IFCHR | 0600, makedev(5, 1))));
        result(out, "mem", E(mknod("/dev/mem", S_IFCHR | 0600, makedev(1, 1))));
        result(out, "fifo", E(mknod("/dev/fifo", S_IFIFO | 0600, 0)));
        result(out, "fifo_is_fifo", stat("/dev/fifo", &st) == 0 && S_ISFIFO(st.st_mode));
        result(out, "whiteout", E(mknod("/dev/wh", S_IFCHR, 0)));
        result(out, "regular", E(mknod("/dev/reg", S_IFREG | 0600, 0)));
}

TEST(mknod) {
        Run run = {};
        run_container(scenario_mknod, &run);
        ASSERT_EQ(run_result(&run, "null"), 0);
        ASSERT_EQ(run_result(&run, "null_open"), 0);
        ASSERT_EQ(run_result(&run, "null_write"), 3);
        ASSERT_EQ(run_result(&run, "null_read"), 0);
        ASSERT_EQ(run_result(&run, "null_rdev"), 1);
        ASSERT_EQ(run_result(&run, "null_again"), EEXIST);
        ASSERT_EQ(run_result(&run, "zero_relative"), 0);
        ASSERT_EQ(run_result(&run, "zero_read"), 1);
        ASSERT_EQ(run_result(&run, "urandom_dirfd"), 0);
        ASSERT_EQ(run_result(&run, "urandom_read"), 1);
        ASSERT_EQ(run_result(&run, "block"), EPERM);
        ASSERT_EQ(run_result(&run, "tty1"), EPERM);
        ASSERT_EQ(run_result(&run, "tty"), EPERM);
        ASSERT_EQ(run_result(&run, "console"), EPERM);
        ASSERT_EQ(run_result(&run, "mem"), EPERM);
        ASSERT_EQ(run_result(&run, "fifo"), 0);
        ASSERT_EQ(run_result(&run, "fifo_is_fifo"), 1);
        ASSERT_EQ(run_result(&run, "whiteout"), 0);
        ASSERT_EQ(run_result(&run, "regular"), 0);
        ASSERT_EQ(run.continued, 3);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static void scenario_bad_input(FILE *out) {
        long page = sysconf(_SC_PAGESIZE);
        char *p = mmap(NULL, 2 * (size_t) page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || mprotect(p + page, (size_t) page, PROT_NONE) < 0)
                die("guard page");
        memset(p, 'A', (size_t) page);
        size_t huge_size = 1 << 20;
        char *huge = malloc(huge_size);
        if (!huge)
                die("malloc");
        memset(huge, 'x', huge_size - 1);
        huge[huge_size - 1] = '\0';
        char *long_path = malloc(PATH_MAX + 100);
        if (!long_path)
                die("malloc");
        memset(long_path, 'a', PATH_MAX + 99);
        long_path[0] = '/';
        long_path[PATH_MAX + 99] = '\0';

        result(out, "null_target", E(syscall(SYS_mount, "none", NULL, "tmpfs", 0, NULL)));
        result(out, "unmapped_target", E(syscall(SYS_mount, "none", (void *) 8, "tmpfs", 0, NULL)));
        /* PATH_MAX bytes without a NUL, then one short of that running into the guard page. */
        result(out, "unterminated_target", E(syscall(SYS_mount, "none", p, "tmpfs", 0, NULL)));
        result(out, "faulting_target", E(syscall(SYS_mount, "none", p + 1, "tmpfs", 0, NULL)));
        result(out, "long_target", E(syscall(SYS_mount, "none", long_path, "tmpfs", 0, NULL)));
        result(out, "huge_fstype", E(syscall(SYS_mount, "none", "/mnt", huge, 0, NULL)));
        result(out, "unmapped_fstype", E(syscall(SYS_mount, "none", "/mnt", (void *) 8, 0, NULL)));
        result(out, "unterminated_data", E(syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, p)));
        result(out, "unmapped_data", E(syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, (void *) 8)));
        result(out, "unmapped_umount", E(syscall(SYS_umount2, (void *) 8, 0)));
        result(out, "unterminated_mknod", E(syscall(SYS_mknod, p + 1, S_IFCHR | 0666, makedev(1, 3))));
        result(out, "long_mknod", E(syscall(SYS_mknod, long_path, S_IFCHR | 0666, makedev(1, 3))));
        result(out, "long_fifo", E(syscall(SYS_mknod, long_path, S_IFIFO | 0600, 0)));
        /* A short string right before the guard page reads fine. */
        char *edge = p + page - 5;
        memcpy(edge, "/mnt", 5);
        result(out, "edge_target", E(syscall(SYS_mount, "none", edge, "tmpfs", 0, NULL)));
        memcpy(edge - 6, "size=1", 6);
        memcpy(edge, "m\0\0\0\0", 5);
        result(out, "edge_data", E(syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, edge - 6)));
        result(out, "after", E(mount("none", "/mnt", "tmpfs", 0, NULL)));
        free(huge);
        free(long_path);
}

TEST(bad_input) {
        Run run = {};
        run_container(scenario_bad_input, &run);
        ASSERT_EQ(run_result(&run, "null_target"), EFAULT);
        ASSERT_EQ(run_result(&run, "unmapped_target"), EFAULT);
        ASSERT_EQ(run_result(&run, "unterminated_target"), ENAMETOOLONG);
        ASSERT_EQ(run_result(&run, "faulting_target"), EFAULT);
        ASSERT_EQ(run_result(&run, "long_target"), ENAMETOOLONG);
        ASSERT_EQ(run_result(&run, "huge_fstype"), ENODEV);
        ASSERT_EQ(run_result(&run, "unmapped_fstype"), EFAULT);
        ASSERT_TRUE(run_result(&run, "unterminated_data") != 0); /* 4096 'A's: not a tmpfs option */
        ASSERT_EQ(run_result(&run, "unmapped_data"), EFAULT);
        ASSERT_EQ(run_result(&run, "unmapped_umount"), EFAULT);
        ASSERT_EQ(run_result(&run, "unterminated_mknod"), EFAULT);
        ASSERT_EQ(run_result(&run, "long_mknod"), ENAMETOOLONG);
        ASSERT_EQ(run_result(&run, "long_fifo"), ENAMETOOLONG);
        ASSERT_EQ(run_result(&run, "edge_target"), 0);
        ASSERT_EQ(run_result(&run, "edge_data"), 0);
        ASSERT_EQ(run_result(&run, "after"), 0);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

/* In a child that has become uid 1000 without capabilities (1000 with CAP_SYS_ADMIN in
 * the second round): the kernel's checks decide, with the caller's credentials. */
static void unprivileged_calls(FILE *out, const char *prefix) {
        char name[64];
#define R(what, call) (snprintf(name, sizeof(name), "%s_%s", prefix, what), result(out, name, E(call)))
        R("tmpfs", mount("none", "/mnt", "tmpfs", 0, NULL));
        R("bind_passwd", mount("/user/passwd", "/data-src/file", NULL, MS_BIND, NULL));
        R("mknod_rootonly", mknod("/rootonly/null", S_IFCHR | 0666, makedev(1, 3)));
        R("mknod_own", mknod("/user/null", S_IFCHR | 0666, makedev(1, 3)));
        R("umount_initial", umount("/data"));
        R("fifo_rootonly", mknod("/rootonly/fifo", S_IFIFO | 0600, 0));
#undef R
}

static void scenario_unprivileged(FILE *out) {
        mkdir("/rootonly", 0755);
        mkdir("/user", 0755);
        if (chown("/user", 1000, 1000) < 0)
                die("chown");
        /* One thread, root and then 1000 without capabilities: each call has the
         * credentials the caller has when it makes it (the agent keeps its status open). */
        pid_t same = fork();
        if (same < 0)
                die("fork");
        if (same == 0) {
                result(out, "before_drop_tmpfs", E(mount("none", "/mnt", "tmpfs", 0, NULL)));
                if (setgroups(0, NULL) < 0 || setresgid(1000, 1000, 1000) < 0 || setresuid(1000, 1000, 1000) < 0)
                        die("become 1000");
                result(out, "after_drop_tmpfs", E(mount("none", "/mnt", "tmpfs", 0, NULL)));
                _exit(0);
        }
        if (waitpid(same, NULL, 0) < 0)
                die("wait");
        for (int round = 0; round < 2; round++) {
                pid_t pid = fork();
                if (pid < 0)
                        die("fork");
                if (pid == 0) {
                        if (round == 1 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                                die("keepcaps");
                        if (setgroups(0, NULL) < 0 || setresgid(1000, 1000, 1000) < 0 || setresuid(1000, 1000, 1000) < 0)
                                die("become 1000");
                        if (round == 1) {
                                struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
                                struct __user_cap_data_struct d[2] = { { .effective = 1u << CAP_SYS_ADMIN,
                                                                         .permitted = 1u << CAP_SYS_ADMIN } };
                                if (syscall(SYS_capset, &h, d) < 0)
                                        die("capset");
                        }
                        int fd = open("/user/passwd", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        if (fd >= 0)
                                close(fd);
                        unprivileged_calls(out, round == 0 ? "nocaps" : "sysadmin");
                        _exit(0);
                }
                if (waitpid(pid, NULL, 0) < 0)
                        die("wait");
        }
        /* Root still can. */
        result(out, "root_tmpfs", E(mount("none", "/mnt", "tmpfs", 0, NULL)));
        result(out, "root_mknod", E(mknod("/rootonly/null", S_IFCHR | 0666, makedev(1, 3))));
}

/* A user namespace inside the container as "unshare -r -m" makes one (setgroups denied, its
 * root the container's): the caller's mount namespace, its root's propagation and a tmpfs. */
static void scenario_nested_userns(FILE *out) {
        mkdir("/p3", 0755);
        if (mount("proc", "/p3", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                die("mount proc");
        fflush(out);
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                /* As after an exec of unshare(1): its /proc/self files are its own. */
                if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 || unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                        die("unshare");
                write_file("/p3/self/setgroups", "deny");
                write_file("/p3/self/uid_map", "0 0 1");
                write_file("/p3/self/gid_map", "0 0 1");
                result(out, "nested_propagation", E(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)));
                result(out, "nested_tmpfs", E(mount("none", "/mnt", "tmpfs", 0, NULL)));
                fflush(out);
                _exit(0);
        }
        if (waitpid(pid, NULL, 0) < 0)
                die("wait");
        (void) umount2("/p3", MNT_DETACH);
}

TEST(nested_user_namespace) {
        Run run = {};
        run_container(scenario_nested_userns, &run);
        ASSERT_EQ(run_result(&run, "nested_propagation"), 0);
        ASSERT_EQ(run_result(&run, "nested_tmpfs"), 0);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

TEST(caller_credentials) {
        Run run = {};
        run_container(scenario_unprivileged, &run);
        ASSERT_EQ(run_result(&run, "before_drop_tmpfs"), 0);
        ASSERT_EQ(run_result(&run, "after_drop_tmpfs"), EPERM);
        ASSERT_EQ(run_result(&run, "nocaps_tmpfs"), EPERM);
        ASSERT_EQ(run_result(&run, "nocaps_bind_passwd"), EPERM);
        ASSERT_EQ(run_result(&run, "nocaps_mknod_rootonly"), EACCES);
        ASSERT_EQ(run_result(&run, "nocaps_mknod_own"), EPERM); /* no CAP_MKNOD */
        ASSERT_EQ(run_result(&run, "nocaps_umount_initial"), EPERM);
        ASSERT_EQ(run_result(&run, "nocaps_fifo_rootonly"), EACCES); /* the kernel's own */
        ASSERT_EQ(run_result(&run, "sysadmin_tmpfs"), 0);
        ASSERT_EQ(run_result(&run, "sysadmin_mknod_rootonly"), EACCES);
        ASSERT_EQ(run_result(&run, "root_tmpfs"), 0);
        ASSERT_EQ(run_result(&run, "root_mknod"), 0);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static void overlay(FILE *out, const char *name, const char *lower) {
        char data[256];
        snprintf(data, sizeof(data), "%s,upperdir=/ov/u,workdir=/ov/w", lower);
        int r = E(mount("overlay", "/mnt", "overlay", 0, data));
        result(out, name, r);
        if (r == 0)
                (void) umount2("/mnt", MNT_DETACH);
}

static void scenario_overlay(FILE *out) {
        mkdir("/ov", 0755);
        if (mount("none", "/ov", "tmpfs", 0, NULL) < 0)
                die("tmpfs /ov");
        mkdir("/ov/l", 0755);
        mkdir("/ov/l:2", 0755);
        mkdir("/ov/u", 0755);
        mkdir("/ov/w", 0755);
        overlay(out, "plain", "lowerdir=/ov/l");
        overlay(out, "escaped", "lowerdir=/ov/l\\:2:/ov/l");
        overlay(out, "plus", "lowerdir+=/ov/l,lowerdir+=/ov/l:2");
        overlay(out, "sys", "lowerdir=/sys:/ov/l");
        overlay(out, "sys_plus", "lowerdir+=/ov/l,lowerdir+=/sys");
        overlay(out, "sys_data", "lowerdir=/ov/l::/sys");
        overlay(out, "proc", "lowerdir=/proc");
        overlay(out, "under_masked", "lowerdir=/sys/firmware");
        overlay(out, "relative_proc", "lowerdir=proc");
}

TEST(overlay_layers) {
        Run run = {};
        run_container(scenario_overlay, &run);
        ASSERT_EQ(run_result(&run, "plain"), 0);
        ASSERT_EQ(run_result(&run, "escaped"), 0);
        ASSERT_EQ(run_result(&run, "plus"), 0);
        ASSERT_EQ(run_result(&run, "sys"), EPERM);
        ASSERT_EQ(run_result(&run, "sys_plus"), EPERM);
        ASSERT_EQ(run_result(&run, "sys_data"), EPERM);
        ASSERT_EQ(run_result(&run, "proc"), EPERM);
        if (access("/sys/firmware", F_OK) == 0)
                ASSERT_EQ(run_result(&run, "under_masked"), EPERM);
        ASSERT_EQ(run_result(&run, "relative_proc"), EPERM);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

static void scenario_stopped_helper(FILE *out) {
        /* Until the stopper caught a helper (the first one born after it attached): its call
         * is cut off. Each round's calls come from a UTS namespace of their own, so that no
         * kept helper takes them: each call has a helper born for it. */
        int r = 0;
        for (int i = 0; i < 100 && r != EINTR; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        die("fork");
                if (pid == 0) {
                        if (unshare(CLONE_NEWUTS) < 0)
                                die("unshare");
                        r = E(mount("none", "/mnt", "tmpfs", 0, NULL));
                        if (r == 0)
                                r = E(umount2("/mnt", MNT_DETACH));
                        _exit(r);
                }
                int status;
                if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
                        die("wait");
                r = WEXITSTATUS(status);
        }
        result(out, "cut_off", r);
}

/* The container may stop a helper (it runs with the caller's ids): the agent's deadline
 * still answers the call. A helper that took the container's ids is not dumpable, even
 * where fs.suid_dumpable would make it so: its /proc/PID/ files stay root's. */
TEST(stopped_helper) {
        char old[16];
        suid_dumpable_set("1", old);
        Run run = { .stop_helper = true };
        run_container(scenario_stopped_helper, &run);
        suid_dumpable_set(old, NULL);
        ASSERT_EQ(run_result(&run, "cut_off"), EINTR);
        ASSERT_EQ(run.cancelled, 1);
        ASSERT_EQ(run.stopped_owner, 0u);
        run_done(&run);
}

#define LOAD_PROCESSES 50
#define LOAD_CALLS 200 /* each: 10 000 in all */
static int load_calls = LOAD_CALLS; /* per process, in scenario_load() */

static void scenario_load(FILE *out) {
        /* Per process: calls that returned, succeeded, got EAGAIN. */
        long *counts = mmap(NULL, 3 * LOAD_PROCESSES * sizeof(long), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (counts == MAP_FAILED)
                die("mmap");
        for (int i = 0; i < LOAD_PROCESSES; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        die("fork");
                if (pid > 0)
                        continue;
                char dir[32];
                snprintf(dir, sizeof(dir), "/mnt/%d", i);
                if (mkdir(dir, 0755) < 0)
                        _exit(1);
                for (int j = 0; j < load_calls; j++) {
                        int r = j % 2 ? E(umount2(dir, MNT_DETACH)) : E(mount("none", dir, "tmpfs", 0, NULL));
                        counts[3 * i]++;
                        counts[3 * i + 1] += r == 0;
                        counts[3 * i + 2] += r == EAGAIN;
                }
                _exit(0);
        }
        while (wait(NULL) > 0)
                ;
        long total[3] = {};
        for (int i = 0; i < 3 * LOAD_PROCESSES; i++)
                total[i % 3] += counts[i];
        result(out, "returned", total[0]);
        result(out, "succeeded", total[1]);
        result(out, "eagain", total[2]);
}

/* 10 000 calls from 50 processes, two helpers at most (the other calls wait in the
 * kernel's queue), and our forks failing now and then (when more than one helper runs,
 * every other 64 calls): every call returns. */
TEST(load_with_fork_failures) {
        Run run = { .limits = { .helpers_per_container = 2, .helpers = 2, .queued_per_container = 32, .queued = 32 },
                    .fork_failures = true };
        run_container(scenario_load, &run);
        if (!run.pids_cgroup[0])
                test_skip("no pids cgroup to make fork() fail");
        printf("broker: %ld calls, %ld succeeded, %ld got EAGAIN; %d queued\n", run_result(&run, "returned"),
               run_result(&run, "succeeded"), run_result(&run, "eagain"), run.queued);
        ASSERT_EQ(run_result(&run, "returned"), LOAD_PROCESSES * LOAD_CALLS);
        ASSERT_TRUE(run_result(&run, "succeeded") > 0);
        ASSERT_TRUE(run_result(&run, "eagain") > 0);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

/* 200 calls from 50 processes at once, more helpers allowed than the helper parent's queue
 * holds, and the parent stopped for a moment as it starts (as a new one after the agent's
 * restart, while every container's waiting call comes in): the calls it cannot take yet
 * wait, none fails. */
TEST(load_with_a_stalled_helper_parent) {
        Run run = { .limits = { .helpers_per_container = 16, .helpers = 16, .queued_per_container = 64, .queued = 64 },
                    .stall_parent_ms = 500 };
        load_calls = 4;
        run_container(scenario_load, &run);
        load_calls = LOAD_CALLS;
        printf("broker: %ld calls, %ld succeeded, %ld got EAGAIN; %d queued\n", run_result(&run, "returned"),
               run_result(&run, "succeeded"), run_result(&run, "eagain"), run.queued);
        ASSERT_EQ(run.stall_parent_ms, 0);
        ASSERT_EQ(run_result(&run, "returned"), LOAD_PROCESSES * 4);
        ASSERT_EQ(run_result(&run, "eagain"), 0);
        ASSERT_EQ(run_result(&run, "succeeded"), LOAD_PROCESSES * 4);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

/* The same, and the agent is killed (SIGKILL) with a call in its queue that it received
 * from the kernel and could not hand to the stopped helper parent yet: the next agent
 * finds it in the journal and answers it; no call is lost or fails. */
TEST(killed_agent_with_a_queued_call) {
        Run run = { .limits = { .helpers_per_container = 16, .helpers = 16, .queued_per_container = 64, .queued = 64 },
                    .stall_parent_ms = 3000, .kill_agent = true };
        load_calls = 4;
        run_container(scenario_load, &run);
        load_calls = LOAD_CALLS;
        printf("broker: %ld calls, %ld succeeded, %ld got EAGAIN; %d taken from the journal\n",
               run_result(&run, "returned"), run_result(&run, "succeeded"), run_result(&run, "eagain"), run.kept);
        ASSERT_TRUE(run.kept >= 1);
        ASSERT_EQ(run_result(&run, "returned"), LOAD_PROCESSES * 4);
        ASSERT_EQ(run_result(&run, "eagain"), 0);
        ASSERT_EQ(run_result(&run, "succeeded"), LOAD_PROCESSES * 4);
        ASSERT_TRUE(host_mounts_clean());
        run_done(&run);
}

/* stockade-helper AGENT_PID with a socket we made as fd 3, started by a child of ours (as
 * a helper parent whose agent was killed has another parent): its exit status once our end
 * closed. */
static int helper_parent_exit(pid_t agent) {
        int pair[2];
        ASSERT_OK(RET_NERRNO(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair)));
        fflush(NULL);
        pid_t child = fork();
        ASSERT_TRUE(child >= 0);
        if (child == 0) {
                close(pair[0]);
                char arg[32];
                snprintf(arg, sizeof(arg), "%d", (int) agent);
                char *argv[] = { (char *) "stockade-helper", arg, NULL }, *envp[] = { NULL };
                posix_spawn_file_actions_t actions;
                pid_t pid;
                int status;
                if (posix_spawn_file_actions_init(&actions) != 0 ||
                    posix_spawn_file_actions_adddup2(&actions, pair[1], BROKER_HELPER_FD) != 0 ||
                    posix_spawn(&pid, helper_path(), &actions, NULL, argv, envp) != 0 || waitpid(pid, &status, 0) != pid)
                        _exit(99);
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 98);
        }
        close(pair[1]);
        close(pair[0]);
        int status;
        ASSERT_EQ(waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status));
        return WEXITSTATUS(status);
}

/* The helper parent serves the socket the agent made, also when it is not the agent's child
 * (any more: the agent was killed), and no other. */
TEST(helper_parent_socket) {
        ASSERT_EQ(helper_parent_exit(getpid()), EXIT_SUCCESS);
        ASSERT_EQ(helper_parent_exit(getppid()), EXIT_FAILURE);
}

static void write_spec(const char *path, int n_masked) {
        FILE *f = fopen(path, "we");
        ASSERT_TRUE(f);
        fputs("{\"ociVersion\": \"1.0.2\", \"linux\": {\"maskedPaths\": [", f);
        for (int i = 0; i < n_masked; i++)
                fprintf(f, "%s\"/proc/masked%d\"", i ? ", " : "", i);
        fputs("]}}", f);
        ASSERT_EQ(fclose(f), 0);
}

/* As many masked paths as the broker takes, or none at all: never silently fewer. */
TEST(masked_paths) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/config.json", test_tmpdir());
        char **paths = NULL, *err = NULL;
        size_t n = 0;
        write_spec(path, 100);
        ASSERT_OK(broker_masked_paths(test_tmpdir(), &paths, &n, &err));
        ASSERT_EQ(n, (size_t) 100);
        ASSERT_STREQ(paths[99], "/proc/masked99");
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        free(paths);
        write_spec(path, BROKER_MASKED_MAX + 1);
        ASSERT_EQ(broker_masked_paths(test_tmpdir(), &paths, &n, &err), -E2BIG);
        ASSERT_TRUE(strstr(err, "129 masked paths, at most 128"));
        free(err);
}
