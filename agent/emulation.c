/* SPDX-License-Identifier: Apache-2.0 */
#include <ev.h>
#include <stdlib.h>

#include "agent/emulation.h"
#include "agent/fdstore.h"
#include "log.h"
#include "util.h"

struct Emulation {
        struct ev_loop *loop;
        Procfs *procfs;
        ev_io io;
        ev_timer sample;
        bool stored; /* the fd outlives us in the service manager's store */
};

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
        Emulation *e = container_of(w, Emulation, io);
        int r = procfs_process(e->procfs);
        if (r < 0) {
                log_error_errno(r, "The /proc emulation at '%s' stopped: %m", procfs_mountpoint(e->procfs));
                ev_io_stop(loop, w);
                ev_timer_stop(loop, &e->sample);
        }
}

static void sample_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        Emulation *e = container_of(w, Emulation, sample);
        procfs_sample(e->procfs);
}

int emulation_start(struct ev_loop *loop, const char *run_dir, FdStore *store, Emulation **ret, char **reterr) {
        int adopt_fd = fdstore_take(store, EMULATION_FDNAME);
        _cleanup_free_ char *mountpoint = NULL;
        if (asprintf(&mountpoint, "%s/procfs", run_dir) < 0) {
                safe_close(adopt_fd);
                return -ENOMEM;
        }
        _cleanup_(emulation_freep) Emulation *e = calloc(1, sizeof(Emulation));
        if (!e) {
                safe_close(adopt_fd);
                return -ENOMEM;
        }
        e->loop = loop;
        bool adopted = adopt_fd >= 0;
        int r = procfs_new(mountpoint, adopted ? adopt_fd : -EBADF, &e->procfs, reterr);
        if (r < 0)
                return r;
        int fd = procfs_fd(e->procfs);
        /* An adopted fd is in the store already. */
        e->stored = adopted || (fdstore_enabled(store) && fdstore_keep(store, EMULATION_FDNAME, fd) >= 0);
        ev_io_init(&e->io, io_cb, fd, EV_READ);
        ev_io_start(loop, &e->io);
        ev_timer_init(&e->sample, sample_cb, PROCFS_SAMPLE_SEC, PROCFS_SAMPLE_SEC);
        ev_timer_start(loop, &e->sample);
        *ret = TAKE_PTR(e);
        return 0;
}

Emulation *emulation_free(Emulation *e) {
        if (!e)
                return NULL;
        if (e->procfs) {
                ev_io_stop(e->loop, &e->io);
                ev_timer_stop(e->loop, &e->sample);
                procfs_free(e->procfs, e->stored);
        }
        free(e);
        return NULL;
}

Procfs *emulation_procfs(const Emulation *e) {
        return e ? e->procfs : NULL;
}

cJSON *emulation_json(const Emulation *e, const char *key) {
        char dir[PROCFS_DIR_NAME_MAX];
        procfs_dir_name(key, dir);
        cJSON *json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "dir", dir);
        cJSON_AddStringToObject(json, "path", procfs_mountpoint(e->procfs));
        cJSON_AddNumberToObject(json, "dev", (double) procfs_dev(e->procfs));
        return json;
}
