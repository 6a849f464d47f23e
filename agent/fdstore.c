/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include "agent/fdstore.h"
#include "log.h"
#include "util.h"

typedef struct PassedFd {
        int fd; /* -EBADF once taken */
        char *name;
} PassedFd;

struct FdStore {
        bool enabled;
        PassedFd *passed;
        size_t n_passed;
};

int fdstore_new(FdStore **ret) {
        _cleanup_(fdstore_freep) FdStore *s = calloc(1, sizeof(FdStore));
        if (!s)
                return -ENOMEM;
        s->enabled = getenv("NOTIFY_SOCKET") != NULL;
        char **names = NULL;
        int n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return n;
        s->passed = calloc((size_t) n + 1, sizeof(PassedFd));
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                if (s->passed) {
                        s->passed[i] = (PassedFd) { .fd = fd, .name = names ? names[i] : NULL };
                        s->n_passed++;
                } else {
                        safe_close(fd);
                        free(names ? names[i] : NULL);
                }
        }
        free(names);
        if (!s->passed)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

FdStore *fdstore_free(FdStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_passed; i++) {
                safe_close(s->passed[i].fd);
                free(s->passed[i].name);
        }
        free(s->passed);
        free(s);
        return NULL;
}

bool fdstore_enabled(const FdStore *s) {
        return s->enabled;
}

int fdstore_keep(FdStore *s, const char *name, int fd) {
        if (!s->enabled)
                return 0;
        _cleanup_free_ char *message = NULL;
        if (asprintf(&message, "FDSTORE=1\nFDNAME=%s", name) < 0)
                return -ENOMEM;
        int r = sd_pid_notify_with_fds(0, false, message, &fd, 1);
        return r < 0 ? r : 0;
}

int fdstore_forget(FdStore *s, const char *name) {
        if (!s->enabled)
                return 0;
        int r = sd_notifyf(false, "FDSTOREREMOVE=1\nFDNAME=%s", name);
        return r < 0 ? r : 0;
}

int fdstore_take_next(FdStore *s, const char *prefix, const char **ret_name) {
        for (size_t i = 0; i < s->n_passed; i++) {
                PassedFd *p = &s->passed[i];
                if (p->fd >= 0 && p->name && STARTSWITH(p->name, prefix)) {
                        *ret_name = p->name;
                        return TAKE_FD(p->fd);
                }
        }
        return -ENOENT;
}

int fdstore_take_activated(FdStore *s) {
        for (size_t i = 0; i < s->n_passed; i++)
                if (s->passed[i].fd >= 0 && !(s->passed[i].name && strchr(s->passed[i].name, '/')))
                        return TAKE_FD(s->passed[i].fd);
        return -ENOENT;
}

int fdstore_take(FdStore *s, const char *name) {
        for (size_t i = 0; i < s->n_passed; i++)
                if (s->passed[i].fd >= 0 && s->passed[i].name && streq(s->passed[i].name, name))
                        return TAKE_FD(s->passed[i].fd);
        return -ENOENT;
}

void fdstore_drop_rest(FdStore *s) {
        for (size_t i = 0; i < s->n_passed; i++) {
                PassedFd *p = &s->passed[i];
                if (p->fd < 0)
                        continue;
                log_info("Closing the kept fd '%s': nothing uses it any more", p->name ?: "?");
                p->fd = safe_close(p->fd);
                if (p->name)
                        (void) fdstore_forget(s, p->name);
        }
}

void fdstore_name(char buf[static FDSTORE_NAME_MAX + 1], const char *prefix, const char *text) {
        int n = snprintf(buf, FDSTORE_NAME_MAX + 1, "%s/%s", prefix, text);
        for (char *p = buf + strlen(prefix) + 1; n > 0 && *p; p++)
                if (*p == ':')
                        *p = '/';
}
