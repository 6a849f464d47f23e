/* SPDX-License-Identifier: Apache-2.0 */
#define FUSE_USE_VERSION 34
#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mount-util.h"
#include "procfs-render.h"
#include "procfs.h"
#include "util.h"

#define REQUESTS_PER_CALL 64
#define LOAD_TASKS_MAX 65536
#define INO_FILE(f) ((fuse_ino_t) (f) + 2) /* 1 is the root */

typedef struct Container {
        ino_t pidns;
        pid_t init_pid;
        ProcfsCgroups cgroups;
        double started;
        ProcfsLoad load;
        struct Container *next;
} Container;

/* The text one open rendered, until its release. */
typedef struct Handle {
        uint64_t fh;
        fuse_ino_t ino;
        char *text;
        size_t size;
} Handle;

struct Procfs {
        struct fuse_session *se;
        char *mountpoint;
        bool mounted; /* by us or an agent before us: unmounted unless it is kept */
        dev_t dev;
        int proc_fd, cgroup_fd;
        double ticks_per_sec;
        struct fuse_buf buf;
        Container *containers;
        size_t n_containers;
        /* Handles live in slots; fh is the slot index below a salt drawn at start, so
         * that handles of a previous run (after adoption) are never taken for ours. */
        Handle **slots;
        uint32_t n_slots, *free_slots, n_free;
        uint32_t salt;
        bool swallow_reply;
};

/* ---- callers ---- */

static double boottime(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pidns_of(int proc_fd, pid_t pid, ino_t *ret) {
        char path[64];
        uint64_t ino;
        snprintf(path, sizeof(path), "%d/ns/pid", (int) pid);
        int r = ns_inode(proc_fd, path, &ino);
        if (r >= 0)
                *ret = (ino_t) ino;
        return r;
}

static Container *container_of_pidns(const Procfs *p, ino_t ns) {
        for (Container *c = p->containers; c; c = c->next)
                if (c->pidns == ns)
                        return c;
        return NULL;
}

/* The container of pid's pid namespace, or of the nearest one it is nested in (a proc a
 * container mounted for a pid namespace of its own, as Docker-in-Docker's containers do). */
static Container *container_of_pid(const Procfs *p, pid_t pid) {
        ino_t ns;
        if (pid <= 0 || !p->containers || pidns_of(p->proc_fd, pid, &ns) < 0)
                return NULL;
        Container *c = container_of_pidns(p, ns);
        if (c)
                return c;
        char path[64];
        snprintf(path, sizeof(path), "%d/ns/pid", (int) pid);
        int fd = openat(p->proc_fd, path, O_RDONLY | O_CLOEXEC);
        for (int depth = 0; !c && fd >= 0 && depth < 32; depth++) { /* the kernel nests at most 32 */
                int parent = ioctl(fd, NS_GET_PARENT);
                struct stat st;
                safe_close(fd);
                fd = parent;
                if (fd >= 0 && fstat(fd, &st) == 0)
                        c = container_of_pidns(p, st.st_ino);
        }
        safe_close(fd);
        return c;
}

static ProcfsContext context(const Procfs *p, const Container *c) {
        return (ProcfsContext) {
                .proc_fd = p->proc_fd,
                .cgroup_fd = p->cgroup_fd,
                .cgroups = c ? &c->cgroups : NULL,
                .now = boottime(),
                .started = c ? c->started : 0,
                .load = c ? &c->load : NULL,
        };
}

/* The start of init_pid in seconds since boot: field 22 of /proc/PID/stat. */
static int start_time(const Procfs *p, pid_t pid, double *ret) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "%d/stat", (int) pid);
        _cleanup_close_ int fd = RET_NERRNO(openat(p->proc_fd, path, O_RDONLY | O_CLOEXEC));
        if (fd < 0)
                return fd;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return n < 0 ? -errno : -EIO;
        buf[n] = '\0';
        char *s = strrchr(buf, ')');
        unsigned long long ticks;
        /* after ")": state is field 3, starttime 22 */
        if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &ticks) != 1)
                return -EBADMSG;
        *ret = (double) ticks / p->ticks_per_sec;
        return 0;
}

int procfs_container_add(Procfs *p, pid_t init_pid) {
        if (p->n_containers >= PROCFS_CONTAINERS_MAX)
                return -ENOSPC;
        _cleanup_free_ Container *c = calloc(1, sizeof(Container));
        if (!c)
                return -ENOMEM;
        c->init_pid = init_pid;
        char path[64];
        _cleanup_free_ char *text = NULL;
        size_t size;
        snprintf(path, sizeof(path), "%d/cgroup", (int) init_pid);
        int r = pidns_of(p->proc_fd, init_pid, &c->pidns);
        if (r >= 0)
                r = start_time(p, init_pid, &c->started);
        if (r >= 0)
                r = read_full_file(p->proc_fd, path, 65536, &text, &size);
        if (r >= 0)
                r = procfs_cgroups_parse(p->cgroup_fd, text, &c->cgroups);
        if (r < 0)
                return r;
        /* The pid namespace may already be served (a container that joins another's). */
        for (Container *o = p->containers; o; o = o->next)
                if (o->pidns == c->pidns) {
                        procfs_cgroups_done(&c->cgroups);
                        return 0;
                }
        c->next = p->containers;
        p->containers = TAKE_PTR(c);
        p->n_containers++;
        return 0;
}

void procfs_container_remove(Procfs *p, pid_t init_pid) {
        for (Container **q = &p->containers; *q; q = &(*q)->next)
                if ((*q)->init_pid == init_pid) {
                        Container *c = *q;
                        *q = c->next;
                        procfs_cgroups_done(&c->cgroups);
                        free(c);
                        p->n_containers--;
                        return;
                }
}

size_t procfs_containers(const Procfs *p) {
        return p->n_containers;
}

void procfs_sample(Procfs *p) {
        for (Container *c = p->containers; c; c = c->next) {
                ProcfsContext ctx = context(p, c);
                procfs_load_sample(&ctx, LOAD_TASKS_MAX, &c->load);
        }
}

/* ---- handles ---- */

static Handle *handle_find(const Procfs *p, uint64_t fh, fuse_ino_t ino) {
        uint32_t i = (uint32_t) fh;
        if ((fh >> 32) != p->salt || i >= p->n_slots || !p->slots[i] || p->slots[i]->ino != ino)
                return NULL;
        return p->slots[i];
}

static void handle_free(Procfs *p, Handle *h) {
        uint32_t i = (uint32_t) h->fh;
        p->slots[i] = NULL;
        p->free_slots[p->n_free++] = i;
        free(h->text);
        free(h);
}

/* Renders the file for the caller of req into a new handle. */
static int handle_new(Procfs *p, fuse_req_t req, fuse_ino_t ino, Handle **ret) {
        if (p->n_free == 0) {
                if (p->n_slots >= PROCFS_HANDLES_MAX)
                        return -EMFILE;
                uint32_t n = p->n_slots ? p->n_slots * 2 : 64;
                Handle **slots = reallocarray(p->slots, n, sizeof(Handle *));
                if (slots)
                        p->slots = slots;
                uint32_t *free_slots = reallocarray(p->free_slots, n, sizeof(uint32_t));
                if (free_slots)
                        p->free_slots = free_slots;
                if (!slots || !free_slots)
                        return -ENOMEM;
                for (uint32_t i = n; i > p->n_slots; i--) {
                        p->slots[i - 1] = NULL;
                        p->free_slots[p->n_free++] = i - 1;
                }
                p->n_slots = n;
        }
        _cleanup_free_ Handle *h = calloc(1, sizeof(Handle));
        if (!h)
                return -ENOMEM;
        ProcfsContext ctx = context(p, container_of_pid(p, fuse_req_ctx(req)->pid));
        int r = procfs_render((ProcfsFile) (ino - 2), &ctx, &h->text, &h->size);
        if (r < 0)
                return r;
        uint32_t i = p->free_slots[--p->n_free];
        h->fh = (uint64_t) p->salt << 32 | i;
        h->ino = ino;
        p->slots[i] = h;
        *ret = TAKE_PTR(h);
        return 0;
}

/* ---- FUSE operations ---- */

static bool ino_is_file(fuse_ino_t ino) {
        return ino >= 2 && ino < INO_FILE(_PROCFS_FILE_MAX);
}

static void fill_attr(fuse_ino_t ino, struct stat *st) {
        *st = (struct stat) { .st_ino = ino, .st_nlink = 1 };
        if (ino == FUSE_ROOT_ID) {
                st->st_mode = S_IFDIR | 0555;
                st->st_nlink = 2;
        } else {
                st->st_mode = S_IFREG | 0444;
                /* /proc's files say 0 bytes, sysfs's a page; readers go to the end either way. */
                st->st_size = STARTSWITH(procfs_files[ino - 2].path, "/sys/") ? 4096 : 0;
        }
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        for (size_t i = 0; parent == FUSE_ROOT_ID && i < _PROCFS_FILE_MAX; i++)
                if (streq(name, procfs_files[i].name)) {
                        struct fuse_entry_param e = { .ino = INO_FILE(i), .attr_timeout = 3600, .entry_timeout = 3600 };
                        fill_attr(e.ino, &e.attr);
                        fuse_reply_entry(req, &e);
                        return;
                }
        fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        if (ino != FUSE_ROOT_ID && !ino_is_file(ino)) {
                fuse_reply_err(req, ENOENT);
                return;
        }
        struct stat st;
        fill_attr(ino, &st);
        fuse_reply_attr(req, &st, 3600);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        Procfs *p = fuse_req_userdata(req);
        if (!ino_is_file(ino)) {
                fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
                return;
        }
        if ((fi->flags & O_ACCMODE) != O_RDONLY) {
                fuse_reply_err(req, EACCES);
                return;
        }
        Handle *h;
        int r = handle_new(p, req, ino, &h);
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        fi->fh = h->fh;
        fi->direct_io = 1; /* every read comes here: the sizes are not known in advance */
        if (fuse_reply_open(req, fi) < 0)
                handle_free(p, h); /* the opener is gone: no release will come */
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        Procfs *p = fuse_req_userdata(req);
        Handle *h = handle_find(p, fi->fh, ino);
        /* A file opened before the agent restarted: each read renders it afresh. */
        bool stale = !h;
        int r = stale ? (ino_is_file(ino) ? handle_new(p, req, ino, &h) : -EBADF) : 0;
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        size_t start = off < 0 || (size_t) off > h->size ? h->size : (size_t) off;
        fuse_reply_buf(req, h->text + start, h->size - start < size ? h->size - start : size);
        if (stale)
                handle_free(p, h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        Procfs *p = fuse_req_userdata(req);
        Handle *h = handle_find(p, fi->fh, ino);
        if (h)
                handle_free(p, h);
        fuse_reply_err(req, 0);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        if (ino != FUSE_ROOT_ID) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        char buf[4096];
        size_t used = 0, limit = size < sizeof(buf) ? size : sizeof(buf);
        /* entries ".", "..", then the files; off is the index of the next one */
        for (off_t i = off; i < 2 + _PROCFS_FILE_MAX; i++) {
                struct stat st;
                fuse_ino_t e = i < 2 ? FUSE_ROOT_ID : INO_FILE(i - 2);
                fill_attr(e, &st);
                const char *name = i == 0 ? "." : i == 1 ? ".." : procfs_files[i - 2].name;
                size_t need = fuse_add_direntry(req, buf + used, limit - used, name, &st, i + 1);
                if (used + need > limit)
                        break;
                used += need;
        }
        fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ops = {
        .lookup = op_lookup,
        .getattr = op_getattr,
        .open = op_open,
        .read = op_read,
        .release = op_release,
        .readdir = op_readdir,
};

/* ---- the session ---- */

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata) {
        Procfs *p = userdata;
        if (p->swallow_reply) {
                p->swallow_reply = false;
                size_t n = 0;
                for (int i = 0; i < count; i++)
                        n += iov[i].iov_len;
                return (ssize_t) n;
        }
        return writev(fd, iov, count);
}

static ssize_t io_read(int fd, void *buf, size_t size, void *userdata) {
        return read(fd, buf, size);
}

/* A session adopted from an earlier run has had its INIT: libfuse is told it again, and
 * its answer (which the kernel does not expect) goes nowhere. */
static int replay_init(Procfs *p) {
        struct {
                struct fuse_in_header h;
                struct fuse_init_in in;
        } msg = {
                .h = { .len = sizeof(msg), .opcode = FUSE_INIT, .unique = 1, .nodeid = 0 },
                /* FUSE_MAX_PAGES: libfuse reads with the buffer size it agreed with the kernel then */
                .in = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION, .max_readahead = 131072,
                        .flags = FUSE_MAX_PAGES | FUSE_BIG_WRITES },
        };
        struct fuse_buf buf = { .mem = &msg, .size = sizeof(msg) };
        p->swallow_reply = true;
        fuse_session_process_buf(p->se, &buf);
        if (p->swallow_reply) {
                p->swallow_reply = false;
                return -EPROTO;
        }
        return 0;
}

/* The device of the FUSE mount at path, from the mount table: a stat() would ask the file
 * system, that is ourselves, and wait for an answer forever. -ENOENT: none there. */
static int mount_dev(const char *path, dev_t *ret) {
        _cleanup_close_ int fd = RET_NERRNO(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        if (fd < 0)
                return fd;
        MountTable t;
        int r = mount_table_read(fd, &t);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (size_t i = 0; i < t.n; i++)
                if (streq(t.entries[i].point, path) && streq(t.entries[i].fstype, PROCFS_FSTYPE)) {
                        *ret = makedev(t.entries[i].major, t.entries[i].minor);
                        r = 0; /* the last one is on top */
                }
        mount_table_done(&t);
        return r;
}

/* /dev/fuse mounted at path, as libfuse would mount it (fsname and subtype "stockade");
 * ours, not libfuse's, so that the mount may outlive us (procfs_free()). */
static int fuse_mount_new(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = RET_NERRNO(open("/dev/fuse", O_RDWR | O_CLOEXEC));
        if (fd < 0)
                return fd;
        char options[128];
        snprintf(options, sizeof(options), "fd=%d,rootmode=%o,user_id=%u,group_id=%u,allow_other", fd,
                 (unsigned) S_IFDIR, (unsigned) getuid(), (unsigned) getgid());
        if (mount("stockade", path, PROCFS_FSTYPE, MS_NOSUID | MS_NODEV, options) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static void procfs_unmountp(Procfs **p) {
        procfs_free(*p, false);
}

int procfs_new(const char *mountpoint, int adopt_fd, Procfs **ret, char **reterr) {
        _cleanup_close_ int fuse_fd = adopt_fd;
        Procfs *p = calloc(1, sizeof(Procfs));
        if (!p || !(p->mountpoint = strdup(mountpoint))) {
                free(p);
                return -ENOMEM;
        }
        p->proc_fd = p->cgroup_fd = -EBADF;
        p->ticks_per_sec = (double) sysconf(_SC_CLK_TCK);
        _cleanup_(procfs_unmountp) Procfs *cleanup = p;
        if (getrandom(&p->salt, sizeof(p->salt), 0) != sizeof(p->salt))
                p->salt = (uint32_t) getpid() ^ (uint32_t) time(NULL);
        if ((p->proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return error_set(reterr, -errno, "cannot open /proc: %m");
        if ((p->cgroup_fd = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return error_set(reterr, -errno, "cannot open /sys/fs/cgroup: %m");
        if (mkdir(mountpoint, 0755) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "cannot create '%s': %m", mountpoint);

        dev_t dev;
        if (fuse_fd >= 0 && mount_dev(mountpoint, &dev) < 0)
                fuse_fd = safe_close(fuse_fd); /* nothing to serve again: a fresh mount */

        char *argv[] = { (char *) "stockaded", NULL };
        struct fuse_args args = FUSE_ARGS_INIT(1, argv);
        p->se = fuse_session_new(&args, &ops, sizeof(ops), p);
        fuse_opt_free_args(&args); /* libfuse's copy of them */
        if (!p->se)
                return error_set(reterr, -EINVAL, "cannot start a FUSE session");
        bool fresh = fuse_fd < 0;
        int r;
        if (fresh && (r = fuse_mount_new(mountpoint, &fuse_fd)) < 0)
                return error_set(reterr, r, "cannot mount FUSE at '%s' (is /dev/fuse there?): %s", mountpoint, strerror(-r));
        p->mounted = true;
        if (fresh && (r = mount_dev(mountpoint, &dev)) < 0)
                return error_set(reterr, r, "cannot stat '%s': %s", mountpoint, strerror(-r));
        static const struct fuse_custom_io io = { .writev = io_writev, .read = io_read };
        if (fuse_session_custom_io(p->se, &io, fuse_fd) < 0)
                return error_set(reterr, -EINVAL, "cannot serve the FUSE fd");
        fuse_fd = -EBADF; /* the session's */
        if (!fresh && (r = replay_init(p)) < 0)
                return error_set(reterr, r, "cannot resume the FUSE session at '%s'", mountpoint);
        p->dev = dev;
        int fd = fuse_session_fd(p->se);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                return error_set(reterr, -errno, "cannot make the FUSE fd non-blocking: %m");
        *ret = TAKE_PTR(cleanup);
        return 0;
}

Procfs *procfs_free(Procfs *p, bool keep_mounted) {
        if (!p)
                return NULL;
        if (p->mounted && !keep_mounted)
                (void) umount2(p->mountpoint, MNT_DETACH);
        if (p->se)
                fuse_session_destroy(p->se);
        free(p->buf.mem);
        while (p->containers)
                procfs_container_remove(p, p->containers->init_pid);
        for (uint32_t i = 0; i < p->n_slots; i++)
                if (p->slots[i])
                        free(p->slots[i]->text), free(p->slots[i]);
        free(p->slots);
        free(p->free_slots);
        safe_close(p->proc_fd);
        safe_close(p->cgroup_fd);
        free(p->mountpoint);
        free(p);
        return NULL;
}

int procfs_fd(const Procfs *p) {
        return fuse_session_fd(p->se);
}

dev_t procfs_dev(const Procfs *p) {
        return p->dev;
}

const char *procfs_mountpoint(const Procfs *p) {
        return p->mountpoint;
}

int procfs_process(Procfs *p) {
        for (int i = 0; i < REQUESTS_PER_CALL; i++) {
                int r = fuse_session_receive_buf(p->se, &p->buf);
                if (r == -EAGAIN || r == -EINTR)
                        return 0;
                if (r < 0)
                        return r;
                if (r == 0 || fuse_session_exited(p->se))
                        return -ENODEV;
                fuse_session_process_buf(p->se, &p->buf);
        }
        return 0;
}
