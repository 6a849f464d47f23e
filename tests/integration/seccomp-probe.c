/* SPDX-License-Identifier: Apache-2.0 */
/* Built static and run inside a container: tries the doors around a seccomp rule and
 * prints what a user would see. An AF_VSOCK socket it manages to create is closed at once,
 * never connected or bound.
 *   seccomp-probe uring-vsock        io_uring IORING_OP_SOCKET for AF_VSOCK
 *   seccomp-probe open-tree-attr P   open_tree_attr (467) cloning P with RDONLY cleared
 *   seccomp-probe i386-vsock         socketcall(SYS_SOCKET, AF_VSOCK) and socket(AF_VSOCK)
 *                                    through int 0x80
 *   seccomp-probe i386-umount P      umount (22) and umount2 (52) of P through int 0x80
 *   seccomp-probe i386-getpid        getpid (20) through int 0x80: whether the kernel runs
 *                                    the i386 ABI at all
 *   seccomp-probe x32-vsock          socket(AF_VSOCK) with the x32 bit
 *   seccomp-probe x32-umount P       umount2 of P with the x32 bit
 *   seccomp-probe inet               socket(AF_INET, SOCK_DGRAM)
 *   seccomp-probe sysfs              sysfs(3): a harmless call no profile of Docker's names
 *   seccomp-probe refused            the calls Stockade refuses, with harmless arguments
 * Each attempt runs in a child, so a call that kills it is reported too. */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/mount.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_OPEN_TREE_ATTR 467
#define X32_BIT 0x40000000L
#define I386_SOCKETCALL 102
#define I386_SOCKET 359
#define I386_UMOUNT 22
#define I386_UMOUNT2 52
#define I386_GETPID 20
#define SYS_SOCKET_CALL 1
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define MNT_DETACH 2

/* Prints "what: created" (closing the fd) or "what: <errno text>" for a raw result. */
static void report_fd(const char *what, long r) {
        if (r >= 0) {
                close((int) r);
                printf("%s: created\n", what);
        } else
                printf("%s: %s\n", what, strerror((int) -r));
}

static void report(const char *what, long r) {
        printf("%s: %s\n", what, r >= 0 ? "succeeded" : strerror((int) -r));
}

static long raw(long nr, long a, long b, long c, long d, long e) {
        long r = syscall(nr, a, b, c, d, e);
        return r < 0 ? -errno : r;
}

static long int80(long nr, long a, long b, long c) {
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory", "r8", "r9", "r10", "r11");
        return (int) r; /* the 32-bit ABI's result */
}

/* Memory below 4 GiB, the only kind int 0x80 can point at. */
static void *low_page(void) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (p == MAP_FAILED) {
                perror("mmap");
                exit(2);
        }
        return p;
}

static int uring_vsock(void) {
        struct io_uring_params p = {};
        long ring = raw(__NR_io_uring_setup, 4, (long) &p, 0, 0, 0);
        if (ring < 0) {
                report("io_uring_setup", ring);
                return 1;
        }
        size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
        size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
        char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int) ring, IORING_OFF_SQ_RING);
        char *cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int) ring, IORING_OFF_CQ_RING);
        struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE, MAP_SHARED,
                                         (int) ring, IORING_OFF_SQES);
        if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
                perror("mmap ring");
                return 2;
        }
        memset(&sqes[0], 0, sizeof(sqes[0]));
        sqes[0].opcode = IORING_OP_SOCKET;
        sqes[0].fd = AF_VSOCK;
        sqes[0].off = SOCK_STREAM;
        uint32_t *tail = (uint32_t *) (sq + p.sq_off.tail), mask = *(uint32_t *) (sq + p.sq_off.ring_mask);
        ((uint32_t *) (sq + p.sq_off.array))[*tail & mask] = 0;
        __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
        long r = raw(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, 0);
        if (r < 0) {
                report("io_uring_enter", r);
                return 1;
        }
        uint32_t head = __atomic_load_n((uint32_t *) (cq + p.cq_off.head), __ATOMIC_ACQUIRE);
        struct io_uring_cqe *cqe = (struct io_uring_cqe *) (cq + p.cq_off.cqes) +
                                   (head & *(uint32_t *) (cq + p.cq_off.ring_mask));
        report_fd("io_uring socket(AF_VSOCK)", cqe->res);
        return cqe->res >= 0 ? 0 : 1;
}

static int open_tree_attr(const char *path) {
        struct mount_attr attr = { .attr_clr = MOUNT_ATTR_RDONLY };
        long r = raw(NR_OPEN_TREE_ATTR, AT_FDCWD, (long) path, OPEN_TREE_CLONE | AT_RECURSIVE, (long) &attr, sizeof(attr));
        char what[300];
        snprintf(what, sizeof(what), "open_tree_attr(%s)", path);
        report_fd(what, r);
        return r >= 0 ? 0 : 1;
}

static int i386_vsock(void) {
        unsigned int *args = low_page();
        args[0] = AF_VSOCK;
        args[1] = SOCK_STREAM;
        args[2] = 0;
        long r1 = int80(I386_SOCKETCALL, SYS_SOCKET_CALL, (long) args, 0);
        report_fd("i386 socketcall(AF_VSOCK)", r1);
        long r2 = int80(I386_SOCKET, AF_VSOCK, SOCK_STREAM, 0);
        report_fd("i386 socket(AF_VSOCK)", r2);
        return r1 >= 0 || r2 >= 0 ? 0 : 1;
}

static int i386_umount(const char *path) {
        char *p = low_page();
        snprintf(p, 4096, "%s", path);
        long r1 = int80(I386_UMOUNT, (long) p, 0, 0);
        report("i386 umount", r1);
        long r2 = int80(I386_UMOUNT2, (long) p, MNT_DETACH, 0);
        report("i386 umount2", r2);
        return r1 >= 0 || r2 >= 0 ? 0 : 1;
}

static int x32_vsock(void) {
        long r = raw(X32_BIT | __NR_socket, AF_VSOCK, SOCK_STREAM, 0, 0, 0);
        report_fd("x32 socket(AF_VSOCK)", r);
        return r >= 0 ? 0 : 1;
}

static int x32_umount(const char *path) {
        /* x32's umount2 has the x86-64 number. */
        long r = raw(X32_BIT | __NR_umount2, (long) path, MNT_DETACH, 0, 0, 0);
        report("x32 umount2", r);
        return r >= 0 ? 0 : 1;
}

static int inet(void) {
        long r = raw(__NR_socket, AF_INET, SOCK_DGRAM, 0, 0, 0);
        report_fd("socket(AF_INET)", r);
        return r >= 0 ? 0 : 1;
}

/* Arguments that make each call fail harmlessly where seccomp lets it through. */
static int refused(void) {
        static const struct {
                const char *name;
                long nr, a, b;
        } calls[] = {
                { "keyctl", __NR_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */ },
                { "add_key", __NR_add_key, 0, 0 },
                { "request_key", __NR_request_key, 0, 0 },
                { "init_module", __NR_init_module, 0, 0 },
                { "finit_module", __NR_finit_module, -1, 0 },
                { "delete_module", __NR_delete_module, 0, 0 },
                { "kexec_load", __NR_kexec_load, 0, 0 },
                { "kexec_file_load", __NR_kexec_file_load, -1, -1 },
                { "bpf", __NR_bpf, -1, 0 },
                { "open_by_handle_at", __NR_open_by_handle_at, -1, 0 },
                { "io_uring_setup", __NR_io_uring_setup, 1, 0 },
                { "io_uring_enter", __NR_io_uring_enter, -1, 0 },
                { "io_uring_register", __NR_io_uring_register, -1, 0 },
                { "fsopen", __NR_fsopen, 0, 0 },
                { "fsconfig", __NR_fsconfig, -1, 0 },
                { "fsmount", __NR_fsmount, -1, 0 },
                { "fspick", __NR_fspick, -1, 0 },
                { "move_mount", __NR_move_mount, -1, 0 },
                { "open_tree", __NR_open_tree, -1, 0 },
                { "mount_setattr", __NR_mount_setattr, -1, 0 },
                { "open_tree_attr", NR_OPEN_TREE_ATTR, -1, 0 },
        };
        for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
                report_fd(calls[i].name, raw(calls[i].nr, calls[i].a, calls[i].b, 0, 0, 0));
        return 0;
}

static int attempt(int argc, char **argv) {
        const char *what = argv[1], *path = argc > 2 ? argv[2] : "/";
        if (strcmp(what, "uring-vsock") == 0)
                return uring_vsock();
        if (strcmp(what, "open-tree-attr") == 0)
                return open_tree_attr(path);
        if (strcmp(what, "i386-vsock") == 0)
                return i386_vsock();
        if (strcmp(what, "i386-umount") == 0)
                return i386_umount(path);
        if (strcmp(what, "i386-getpid") == 0) {
                long r = int80(I386_GETPID, 0, 0, 0);
                report("i386 getpid", r);
                return r >= 0 ? 0 : 1;
        }
        if (strcmp(what, "x32-vsock") == 0)
                return x32_vsock();
        if (strcmp(what, "x32-umount") == 0)
                return x32_umount(path);
        if (strcmp(what, "inet") == 0)
                return inet();
        if (strcmp(what, "sysfs") == 0) {
                long r = raw(__NR_sysfs, 3, 0, 0, 0, 0);
                report("sysfs", r);
                return r >= 0 ? 0 : 1;
        }
        if (strcmp(what, "refused") == 0)
                return refused();
        fprintf(stderr, "seccomp-probe: unknown attempt '%s'\n", what);
        return 2;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: seccomp-probe ATTEMPT [PATH]\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IONBF, 0);
        pid_t pid = fork();
        if (pid < 0) {
                perror("fork");
                return 2;
        }
        if (pid == 0)
                _exit(attempt(argc, argv));
        int status;
        if (waitpid(pid, &status, 0) < 0) {
                perror("waitpid");
                return 2;
        }
        if (WIFSIGNALED(status)) {
                printf("%s: killed by %s\n", argv[1], strsignal(WTERMSIG(status)));
                return 1;
        }
        return WEXITSTATUS(status);
}
