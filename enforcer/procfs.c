/* SPDX-License-Identifier: Apache-2.0 */
#define FUSE_USE_VERSION 34
#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "mount-util.h"
#include "procfs-render.h"
#include "procfs.h"
#include "util.h"

#define REQUESTS_PER_CALL 64
#define LOAD_TASKS_MAX 65536
/* Nodes: the root (1), the VM's files in it, each container's directory (a hash of its
 * key, shifted) and the files in that. */
#define INO_FILE(f) ((fuse_ino_t) (f) + 2)
#define DIR_SHIFT 8
#define DIR_FILE(dir, f) ((dir) | ((fuse_ino_t) (f) + 1))
#define DIR_HEX 14 /* 56 bits of the hash */

/* One rendering of a file: what reads of it are served until the next. */
typedef struct Render {
        char *text;
        size_t size;
        struct timespec at; /* its mtime: a new one makes the kernel drop its cached pages */
        double when;        /* boottime, to drop old ones */
} Render;

typedef struct Container {
        fuse_ino_t dir;
        ProcfsCgroups cgroups;
        double started;
        ProcfsLoad load;
        Render renders[_PROCFS_FILE_MAX];
        struct Container *next;
} Container;

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
        Render vm[_PROCFS_FILE_MAX]; /* the root's files, and those of an unknown directory */
        uint64_t renderings;
        bool swallow_reply;
};

static double boottime(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void render_clear(Render *r) {
        free(r->text);
        *r = (Render) {};
}

/* ---- containers ---- */

static fuse_ino_t dir_of_key(const char *key) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *) key, strlen(key), md);
        uint64_t h = 0;
        for (size_t i = 0; i < DIR_HEX / 2; i++)
                h = h << 8 | md[i];
        return (fuse_ino_t) (h ? h : 1) << DIR_SHIFT;
}

void procfs_dir_name(const char *key, char ret[PROCFS_DIR_NAME_MAX]) {
        snprintf(ret, PROCFS_DIR_NAME_MAX, "%0*" PRIx64, DIR_HEX, (uint64_t) (dir_of_key(key) >> DIR_SHIFT));
}

static Container *container_of_dir(const Procfs *p, fuse_ino_t dir) {
        for (Container *c = p->containers; c; c = c->next)
                if (c->dir == dir)
                        return c;
        return NULL;
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

static Container *container_free(Container *c) {
        procfs_cgroups_done(&c->cgroups);
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++)
                render_clear(&c->renders[i]);
        free(c);
        return NULL;
}

int procfs_container_add(Procfs *p, const char *key, pid_t init_pid) {
        procfs_container_remove(p, key); /* served again from what is read now */
        if (p->n_containers >= PROCFS_CONTAINERS_MAX)
                return -ENOSPC;
        Container *c = calloc(1, sizeof(Container));
        if (!c)
                return -ENOMEM;
        c->dir = dir_of_key(key);
        char path[64];
        _cleanup_free_ char *text = NULL;
        size_t size;
        snprintf(path, sizeof(path), "%d/cgroup", (int) init_pid);
        int r = start_time(p, init_pid, &c->started);
        if (r >= 0)
                r = read_full_file(p->proc_fd, path, 65536, &text, &size);
        if (r >= 0)
                r = procfs_cgroups_parse(p->cgroup_fd, text, &c->cgroups);
        if (r < 0) {
                free(c);
                return r;
        }
        c->next = p->containers;
        p->containers = c;
        p->n_containers++;
        return 0;
}

void procfs_container_remove(Procfs *p, const char *key) {
        fuse_ino_t dir = dir_of_key(key);
        for (Container **q = &p->containers; *q; q = &(*q)->next)
                if ((*q)->dir == dir) {
                        Container *c = *q;
                        *q = c->next;
                        container_free(c);
                        p->n_containers--;
                        return;
                }
}

size_t procfs_containers(const Procfs *p) {
        return p->n_containers;
}

uint64_t procfs_renderings(const Procfs *p) {
        return p->renderings;
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

/* Samples the load and drops renderings older than the period (their readers are done). */
void procfs_sample(Procfs *p) {
        double old = boottime() - PROCFS_SAMPLE_SEC;
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++)
                if (p->vm[i].text && p->vm[i].when < old)
                        render_clear(&p->vm[i]);
        for (Container *c = p->containers; c; c = c->next) {
                ProcfsContext ctx = context(p, c);
                procfs_load_sample(&ctx, LOAD_TASKS_MAX, &c->load);
                for (size_t i = 0; i < _PROCFS_FILE_MAX; i++)
                        if (c->renders[i].text && c->renders[i].when < old)
                                render_clear(&c->renders[i]);
        }
}

/* ---- nodes ---- */

/* What ino is: *ret_dir the root or a container's directory, *ret_file a file in it or -1
 * (the directory itself). */
static bool node_parse(fuse_ino_t ino, fuse_ino_t *ret_dir, int *ret_file) {
        fuse_ino_t sub = ino & ((1 << DIR_SHIFT) - 1);
        if (ino == FUSE_ROOT_ID || (ino >= INO_FILE(0) && ino < INO_FILE(_PROCFS_FILE_MAX))) {
                *ret_dir = FUSE_ROOT_ID;
                *ret_file = ino == FUSE_ROOT_ID ? -1 : (int) (ino - INO_FILE(0));
                return true;
        }
        if (ino >> DIR_SHIFT == 0 || sub > _PROCFS_FILE_MAX)
                return false;
        *ret_dir = ino - sub;
        *ret_file = (int) sub - 1;
        return true;
}

static fuse_ino_t node_of(fuse_ino_t dir, size_t file) {
        return dir == FUSE_ROOT_ID ? INO_FILE(file) : DIR_FILE(dir, file);
}

/* The file's latest rendering, made anew where there is none, or with fresh where it is
 * half PROCFS_TTL_SEC old: a reader that asks for the attributes again and again (statx()
 * with AT_STATX_FORCE_SYNC) gets no more renderings than that. A directory whose container
 * is not (or no longer) served gets the VM's files. */
static int node_render(Procfs *p, fuse_ino_t dir, int file, bool fresh, const Render **ret) {
        Container *c = dir == FUSE_ROOT_ID ? NULL : container_of_dir(p, dir);
        Render *r = c ? &c->renders[file] : &p->vm[file];
        if (!r->text || (fresh && boottime() - r->when >= PROCFS_TTL_SEC / 2)) {
                ProcfsContext ctx = context(p, c);
                Render n = { .when = ctx.now };
                int e = procfs_render((ProcfsFile) file, &ctx, &n.text, &n.size);
                if (e < 0)
                        return e;
                clock_gettime(CLOCK_REALTIME, &n.at);
                p->renderings++;
                render_clear(r);
                *r = n;
        }
        *ret = r;
        return 0;
}

/* A file's attributes come with a fresh rendering, its size and time; the kernel keeps
 * them PROCFS_TTL_SEC and serves reads from its page cache meanwhile. Without render (a
 * lookup: the runtime and the broker's helpers look files up to bind them, and nobody may
 * read them) they are given as already old, so that the first read asks for them. */
static int node_attr(Procfs *p, fuse_ino_t ino, bool render, struct stat *st, double *ret_timeout) {
        fuse_ino_t dir;
        int file;
        if (!node_parse(ino, &dir, &file))
                return -ENOENT;
        *st = (struct stat) { .st_ino = ino, .st_nlink = file < 0 ? 2 : 1, .st_mode = file < 0 ? S_IFDIR | 0555 : S_IFREG | 0444 };
        *ret_timeout = file < 0 ? 3600 : render ? PROCFS_TTL_SEC : 0;
        if (file < 0 || !render)
                return 0;
        const Render *r;
        int e = node_render(p, dir, file, true, &r);
        if (e < 0)
                return e;
        st->st_size = (off_t) r->size;
        st->st_mtim = st->st_ctim = r->at;
        return 0;
}

/* ---- FUSE operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
        /* A read asks for the attributes once they are old, and a new mtime drops the pages. */
        conn->want |= conn->capable & FUSE_CAP_AUTO_INVAL_DATA;
}

static bool dir_name_parse(const char *name, fuse_ino_t *ret) {
        uint64_t h = 0;
        size_t n = 0;
        for (; name[n] && n < DIR_HEX; n++) {
                int d = name[n] >= '0' && name[n] <= '9' ? name[n] - '0' : name[n] >= 'a' && name[n] <= 'f' ? name[n] - 'a' + 10 : -1;
                if (d < 0)
                        return false;
                h = h << 4 | (uint64_t) d;
        }
        if (n != DIR_HEX || name[n] || h == 0)
                return false;
        *ret = (fuse_ino_t) h << DIR_SHIFT;
        return true;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        Procfs *p = fuse_req_userdata(req);
        fuse_ino_t dir, ino = 0;
        int file;
        if (node_parse(parent, &dir, &file) && file < 0) {
                for (size_t i = 0; !ino && i < _PROCFS_FILE_MAX; i++)
                        if (streq(name, procfs_files[i].name))
                                ino = node_of(dir, i);
                if (!ino && dir == FUSE_ROOT_ID && !dir_name_parse(name, &ino))
                        ino = 0;
        }
        struct fuse_entry_param e = { .ino = ino, .entry_timeout = 3600 };
        int r = ino ? node_attr(p, ino, false, &e.attr, &e.attr_timeout) : -ENOENT;
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct stat st;
        double timeout;
        int r = node_attr(fuse_req_userdata(req), ino, true, &st, &timeout);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_attr(req, &st, timeout);
}

/* No open is needed: ENOSYS tells the kernel to stop sending them (and their releases). */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_reply_err(req, (fi->flags & O_ACCMODE) != O_RDONLY ? EACCES : ENOSYS);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        fuse_ino_t dir;
        int file;
        const Render *r;
        int e = node_parse(ino, &dir, &file) && file >= 0 ? node_render(fuse_req_userdata(req), dir, file, false, &r) : -EISDIR;
        if (e < 0) {
                fuse_reply_err(req, -e);
                return;
        }
        size_t start = off < 0 || (size_t) off > r->size ? r->size : (size_t) off;
        fuse_reply_buf(req, r->text + start, r->size - start < size ? r->size - start : size);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        fuse_ino_t dir;
        int file;
        if (!node_parse(ino, &dir, &file) || file >= 0) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        char buf[4096];
        size_t used = 0, limit = size < sizeof(buf) ? size : sizeof(buf);
        /* entries ".", "..", then the files; off is the index of the next one */
        for (off_t i = off < 0 ? 2 + _PROCFS_FILE_MAX : off; i < 2 + _PROCFS_FILE_MAX; i++) {
                struct stat st = { .st_ino = i < 2 ? dir : node_of(dir, (size_t) i - 2), .st_mode = i < 2 ? S_IFDIR : S_IFREG };
                const char *name = i == 0 ? "." : i == 1 ? ".." : procfs_files[i - 2].name;
                size_t need = fuse_add_direntry(req, buf + used, limit - used, name, &st, i + 1);
                if (used + need > limit)
                        break;
                used += need;
        }
        fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ops = {
        .init = op_init,
        .lookup = op_lookup,
        .getattr = op_getattr,
        .open = op_open,
        .read = op_read,
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
        if (mount("stockade", path, PROCFS_FSTYPE, MS_RDONLY | MS_NOSUID | MS_NODEV, options) < 0)
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
        if (!p || (mountpoint && !(p->mountpoint = strdup(mountpoint)))) {
                free(p);
                return -ENOMEM;
        }
        p->proc_fd = p->cgroup_fd = -EBADF;
        p->ticks_per_sec = (double) sysconf(_SC_CLK_TCK);
        _cleanup_(procfs_unmountp) Procfs *cleanup = p;
        if ((p->proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return error_set(reterr, -errno, "cannot open /proc: %m");
        if ((p->cgroup_fd = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return error_set(reterr, -errno, "cannot open /sys/fs/cgroup: %m");
        if (mountpoint && mkdir(mountpoint, 0755) < 0 && errno != EEXIST)
                return error_set(reterr, -errno, "cannot create '%s': %m", mountpoint);

        dev_t dev = 0;
        if (mountpoint && fuse_fd >= 0 && mount_dev(mountpoint, &dev) < 0)
                fuse_fd = safe_close(fuse_fd); /* nothing to serve again: a fresh mount */
        bool adopted = mountpoint && fuse_fd >= 0;

        char *argv[] = { (char *) "stockaded", NULL };
        struct fuse_args args = FUSE_ARGS_INIT(1, argv);
        p->se = fuse_session_new(&args, &ops, sizeof(ops), p);
        fuse_opt_free_args(&args); /* libfuse's copy of them */
        if (!p->se)
                return error_set(reterr, -EINVAL, "cannot start a FUSE session");
        int r;
        bool fresh = mountpoint && !adopted;
        if (fresh && (r = fuse_mount_new(mountpoint, &fuse_fd)) < 0)
                return error_set(reterr, r, "cannot mount FUSE at '%s' (is /dev/fuse there?): %s", mountpoint, strerror(-r));
        p->mounted = mountpoint;
        if (fresh && (r = mount_dev(mountpoint, &dev)) < 0)
                return error_set(reterr, r, "cannot stat '%s': %s", mountpoint, strerror(-r));
        static const struct fuse_custom_io io = { .writev = io_writev, .read = io_read };
        if (fuse_session_custom_io(p->se, &io, fuse_fd) < 0)
                return error_set(reterr, -EINVAL, "cannot serve the FUSE fd");
        fuse_fd = -EBADF; /* the session's */
        if (adopted && (r = replay_init(p)) < 0)
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
        while (p->containers) {
                Container *c = p->containers;
                p->containers = c->next;
                container_free(c);
        }
        for (size_t i = 0; i < _PROCFS_FILE_MAX; i++)
                render_clear(&p->vm[i]);
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
