/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "json.h"
#include "seccomp-listener.h"
#include "util.h"

/* The kernel refuses more fds in one SCM_RIGHTS message (SCM_MAX_FD). */
#define SCM_FDS_MAX 253u

static bool only_json_whitespace(const char *p, size_t size) {
        for (size_t i = 0; i < size; i++)
                if (!strchr(" \t\n\r", p[i]))
                        return false;
        return true;
}

/* The index of the one "seccompFd" in fds, which names exactly n_fds descriptors. */
static int parse_fds(const cJSON *fds, size_t n_fds, int *ret_index, char **reterr) {
        if (!cJSON_IsArray(fds))
                return error_set(reterr, -EINVAL, "'fds' must be an array of strings");

        size_t named = 0;
        int index = -1;
        const cJSON *name;
        cJSON_ArrayForEach(name, fds) {
                if (!cJSON_IsString(name))
                        return error_set(reterr, -EINVAL, "'fds' must be an array of strings");
                if (streq(name->valuestring, "seccompFd")) {
                        if (index >= 0)
                                return error_set(reterr, -EINVAL, "'seccompFd' named more than once in 'fds'");
                        index = (int) named;
                }
                named++;
        }
        if (named != n_fds)
                return error_set(reterr, -EINVAL, "'fds' must name the received fds (%zu named, %zu received)",
                                 named, n_fds);
        if (index < 0)
                return error_set(reterr, -EINVAL, "no 'seccompFd' in 'fds'");

        *ret_index = index;
        return 0;
}

/* An optional string member: *ret is a copy, or NULL when the member is absent. */
static int optional_string(const cJSON *object, const char *name, const char *what, char **ret, char **reterr) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(object, name);
        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (!cJSON_IsString(v))
                return error_set(reterr, -EINVAL, "'%s' must be a string", what);
        char *copy = strdup(v->valuestring);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

int seccomp_listener_parse(const char *data, size_t size, size_t n_fds, SeccompListenerMessage *ret, char **reterr) {
        assert(data || size == 0);
        assert(ret);

        if (size > SECCOMP_LISTENER_MAX)
                return error_set(reterr, -EMSGSIZE, "message larger than %u bytes", SECCOMP_LISTENER_MAX);
        /* cJSON would cut strings at a NUL and accept what follows the first value. */
        if (size == 0 || memchr(data, '\0', size))
                return error_set(reterr, -EBADMSG, "not JSON");
        const char *end = NULL;
        _cleanup_json_ cJSON *root = cJSON_ParseWithLengthOpts(data, size, &end, false);
        if (!root || !only_json_whitespace(end, size - (size_t) (end - data)))
                return error_set(reterr, -EBADMSG, "not JSON");
        if (!cJSON_IsObject(root))
                return error_set(reterr, -EINVAL, "not a JSON object");

        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(root, "pid");
        if (!json_is_int(pid, 1, INT_MAX))
                return error_set(reterr, -EINVAL, "'pid' must be a positive integer");

        int index = -1;
        int r = parse_fds(cJSON_GetObjectItemCaseSensitive(root, "fds"), n_fds, &index, reterr);
        if (r < 0)
                return r;

        const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
        if (!cJSON_IsObject(state))
                return error_set(reterr, -EINVAL, "'state' must be an object");
        const char *id = json_get_string(state, "id");
        if (!id || id[0] == '\0')
                return error_set(reterr, -EINVAL, "'state.id' must be a non-empty string");
        /* The spec requires state.pid once the container is created; while it is being
         * created the process is the init itself. */
        const cJSON *init_pid = cJSON_GetObjectItemCaseSensitive(state, "pid");
        if (!init_pid)
                init_pid = pid;
        else if (!json_is_int(init_pid, 1, INT_MAX))
                return error_set(reterr, -EINVAL, "'state.pid' must be a positive integer");

        _cleanup_free_ char *metadata = NULL, *bundle = NULL;
        r = optional_string(root, "metadata", "metadata", &metadata, reterr);
        if (r < 0)
                return r;
        r = optional_string(state, "bundle", "state.bundle", &bundle, reterr);
        if (r < 0)
                return r;
        char *container_id = strdup(id);
        if (!container_id)
                return -ENOMEM;

        *ret = (SeccompListenerMessage) {
                .container_id = container_id,
                .metadata = TAKE_PTR(metadata),
                .pid = (pid_t) pid->valuedouble,
                .init_pid = (pid_t) init_pid->valuedouble,
                .bundle = TAKE_PTR(bundle),
                .seccomp_fd_index = index,
                .n_fds = n_fds,
        };
        return 0;
}

void seccomp_listener_message_done(SeccompListenerMessage *m) {
        if (!m)
                return;
        free(m->container_id);
        free(m->metadata);
        free(m->bundle);
        *m = (SeccompListenerMessage) { .seccomp_fd_index = -1 };
}

static void close_many(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
}

/* One recvmsg() into buf, appending the fds that come with it to fds[*n_fds..]. Room for one
 * fd more than allowed, so that too many fds are seen as too many rather than as a truncated
 * control message. Returns the number of bytes; after an error the caller closes the fds. */
static ssize_t recv_piece(int sock, char *buf, size_t size, int fds[static SECCOMP_LISTENER_FDS_MAX + 1],
                          size_t *n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * (SECCOMP_LISTENER_FDS_MAX + 1))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };

        ssize_t n;
        do
                n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();

        /* Take every fd that arrived before looking at anything else, so none leaks. */
        int r = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n_new = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const unsigned char *p = CMSG_DATA(c);
                for (size_t i = 0; i < n_new; i++) {
                        int fd;
                        memcpy(&fd, p + i * sizeof(int), sizeof(int));
                        if (*n_fds <= SECCOMP_LISTENER_FDS_MAX)
                                fds[(*n_fds)++] = fd;
                        else {
                                safe_close(fd);
                                r = -EPROTO;
                        }
                }
        }
        if (r < 0 || *n_fds > SECCOMP_LISTENER_FDS_MAX || (mh.msg_flags & MSG_CTRUNC))
                return -EPROTO;
        if (mh.msg_flags & MSG_TRUNC)
                return -EMSGSIZE;
        return n;
}

int seccomp_listener_recv(int sock, char **ret_data, size_t *ret_size, int ret_fds[static SECCOMP_LISTENER_FDS_MAX],
                          size_t *ret_n_fds) {
        assert(sock >= 0);
        assert(ret_data);
        assert(ret_size);
        assert(ret_fds);
        assert(ret_n_fds);

        /* One byte more than allowed tells an oversized message from one of exactly the limit. */
        _cleanup_free_ char *buf = malloc(SECCOMP_LISTENER_MAX + 1);
        if (!buf)
                return -ENOMEM;
        int fds[SECCOMP_LISTENER_FDS_MAX + 1];
        size_t n_fds = 0, size = 0;

        ssize_t n = recv_piece(sock, buf, SECCOMP_LISTENER_MAX + 1, fds, &n_fds);
        if (n == 0)
                n = -ENODATA; /* no stream data comes with fds, so there are none to close */
        /* The kernel hands out the piece that carries fds on its own; the rest follows. */
        while (n > 0) {
                size += (size_t) n;
                if (size > SECCOMP_LISTENER_MAX) {
                        n = -EMSGSIZE;
                        break;
                }
                n = recv_piece(sock, buf + size, SECCOMP_LISTENER_MAX + 1 - size, fds, &n_fds);
        }
        if (n == -EAGAIN && size > 0)
                n = 0; /* all that was queued */
        if (n < 0) {
                close_many(fds, n_fds);
                return (int) n;
        }

        buf[size] = '\0';
        char *data = realloc(buf, size + 1);
        if (data)
                buf = data;
        *ret_data = TAKE_PTR(buf);
        *ret_size = size;
        memcpy(ret_fds, fds, n_fds * sizeof(int));
        *ret_n_fds = n_fds;
        return 0;
}

int seccomp_listener_send(int sock, const char *json, const int *fds, size_t n_fds) {
        assert(sock >= 0);
        assert(json);
        assert(fds || n_fds == 0);

        size_t size = strlen(json);
        /* A stream socket sends no fds without at least one byte. */
        if (size == 0 || n_fds > SCM_FDS_MAX)
                return -EINVAL;

        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * SCM_FDS_MAX)];
        } control = {};
        struct iovec iov = { .iov_base = (void *) json, .iov_len = size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }

        /* The fds go with the first byte; a short send is finished without them. */
        while (iov.iov_len > 0) {
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                iov.iov_base = (char *) iov.iov_base + n;
                iov.iov_len -= (size_t) n;
                mh.msg_control = NULL;
                mh.msg_controllen = 0;
        }
        return 0;
}
