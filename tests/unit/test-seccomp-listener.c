/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "proto/seccomp-listener.h"
#include "test.h"
#include "util.h"

/* What runc 1.1.5 sends for a container started by dockerd (state abbreviated). */
static const char runc_message[] =
        "{\"ociVersion\":\"1.0.2\",\"fds\":[\"seccompFd\"],\"pid\":4242,"
        "\"metadata\":\"stockade-token-3f9a\","
        "\"state\":{\"ociVersion\":\"1.0.2-dev\",\"id\":\"9f0c2a7e1d44\",\"status\":\"creating\",\"pid\":4242,"
        "\"bundle\":\"/run/containerd/io.containerd.runtime.v2.task/moby/9f0c2a7e1d44\","
        "\"annotations\":{\"org.opencontainers.image.stopSignal\":\"15\"}}}";

static int parse(const char *json, size_t n_fds, SeccompListenerMessage *ret, char **reterr) {
        return seccomp_listener_parse(json, strlen(json), n_fds, ret, reterr);
}

TEST(parse_runc_message) {
        SeccompListenerMessage m = {};
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(parse(runc_message, 1, &m, &error));
        ASSERT_TRUE(!error);
        ASSERT_STREQ(m.container_id, "9f0c2a7e1d44");
        ASSERT_STREQ(m.metadata, "stockade-token-3f9a");
        ASSERT_EQ(m.pid, 4242);
        ASSERT_EQ(m.init_pid, 4242);
        ASSERT_STREQ(m.bundle, "/run/containerd/io.containerd.runtime.v2.task/moby/9f0c2a7e1d44");
        ASSERT_EQ(m.seccomp_fd_index, 0);
        ASSERT_EQ(m.n_fds, 1);
        seccomp_listener_message_done(&m);
        ASSERT_TRUE(!m.container_id && !m.metadata && !m.bundle);
        seccomp_listener_message_done(&m);
}

/* What runc 1.1.5 sends for a docker exec: the exec's process, then the init in the state. */
TEST(parse_exec_message) {
        SeccompListenerMessage m = {};
        ASSERT_OK(parse("{\"ociVersion\":\"1.0.2-dev\",\"fds\":[\"seccompFd\"],\"pid\":8073,\"metadata\":\"5b0e\","
                        "\"state\":{\"ociVersion\":\"1.0.2-dev\",\"id\":\"5b0e\",\"status\":\"running\",\"pid\":8042,"
                        "\"bundle\":\"/b\"}}",
                        1, &m, NULL));
        ASSERT_EQ(m.pid, 8073);
        ASSERT_EQ(m.init_pid, 8042);
        seccomp_listener_message_done(&m);
}

TEST(parse_optional_members_and_other_fds) {
        SeccompListenerMessage m = {};
        ASSERT_OK(parse("  {\"fds\":[\"pidFd\",\"seccompFd\"],\"pid\":1,\"future\":[1,2],"
                        "\"state\":{\"id\":\"c1\"}}\n",
                        2, &m, NULL));
        ASSERT_STREQ(m.container_id, "c1");
        ASSERT_TRUE(!m.metadata);
        ASSERT_TRUE(!m.bundle);
        ASSERT_EQ(m.pid, 1);
        ASSERT_EQ(m.init_pid, 1); /* no state.pid: the process is the init */
        ASSERT_EQ(m.seccomp_fd_index, 1);
        ASSERT_EQ(m.n_fds, 2);
        seccomp_listener_message_done(&m);
}

static void assert_refused(const char *json, size_t n_fds, int error, const char *message) {
        SeccompListenerMessage m = { .pid = -7 };
        _cleanup_free_ char *reason = NULL;
        ASSERT_EQ(parse(json, n_fds, &m, &reason), error);
        ASSERT_STREQ(reason, message);
        ASSERT_EQ(m.pid, -7); /* untouched */
}

TEST(parse_errors) {
        assert_refused("", 1, -EBADMSG, "not JSON");
        assert_refused("{\"pid\":1", 1, -EBADMSG, "not JSON");
        assert_refused("{} {}", 1, -EBADMSG, "not JSON");
        assert_refused("[1]", 1, -EINVAL, "not a JSON object");
        assert_refused("{\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'pid' must be a positive integer");
        assert_refused("{\"pid\":0,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'pid' must be a positive integer");
        assert_refused("{\"pid\":-3,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'pid' must be a positive integer");
        assert_refused("{\"pid\":1.5,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'pid' must be a positive integer");
        assert_refused("{\"pid\":4294967297,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'pid' must be a positive integer");
        assert_refused("{\"pid\":\"12\",\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'pid' must be a positive integer");
        assert_refused("{\"pid\":1,\"state\":{\"id\":\"c\"}}", 1, -EINVAL, "'fds' must be an array of strings");
        assert_refused("{\"pid\":1,\"fds\":\"seccompFd\",\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'fds' must be an array of strings");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\",3],\"state\":{\"id\":\"c\"}}", 2, -EINVAL,
                       "'fds' must be an array of strings");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 0, -EINVAL,
                       "'fds' must name the received fds (1 named, 0 received)");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 2, -EINVAL,
                       "'fds' must name the received fds (1 named, 2 received)");
        assert_refused("{\"pid\":1,\"fds\":[],\"state\":{\"id\":\"c\"}}", 0, -EINVAL, "no 'seccompFd' in 'fds'");
        assert_refused("{\"pid\":1,\"fds\":[\"pidFd\"],\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "no 'seccompFd' in 'fds'");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\",\"seccompFd\"],\"state\":{\"id\":\"c\"}}", 2, -EINVAL,
                       "'seccompFd' named more than once in 'fds'");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"]}", 1, -EINVAL, "'state' must be an object");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":\"running\"}", 1, -EINVAL,
                       "'state' must be an object");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{}}", 1, -EINVAL,
                       "'state.id' must be a non-empty string");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":7}}", 1, -EINVAL,
                       "'state.id' must be a non-empty string");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"\"}}", 1, -EINVAL,
                       "'state.id' must be a non-empty string");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\",\"pid\":0}}", 1, -EINVAL,
                       "'state.pid' must be a positive integer");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\",\"pid\":\"1\"}}", 1, -EINVAL,
                       "'state.pid' must be a positive integer");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"metadata\":{},\"state\":{\"id\":\"c\"}}", 1, -EINVAL,
                       "'metadata' must be a string");
        assert_refused("{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\",\"bundle\":null}}", 1, -EINVAL,
                       "'state.bundle' must be a string");
}

TEST(parse_refuses_nul_and_oversize) {
        static const char with_nul[] = "{\"pid\":1,\"fds\":[\"seccompFd\"],\"state\":{\"id\":\"c\0x\"}}";
        SeccompListenerMessage m = {};
        _cleanup_free_ char *reason = NULL;
        ASSERT_EQ(seccomp_listener_parse(with_nul, sizeof(with_nul) - 1, 1, &m, &reason), -EBADMSG);
        ASSERT_STREQ(reason, "not JSON");

        /* Valid JSON padded with whitespace to one byte over the limit. */
        _cleanup_free_ char *big = malloc(SECCOMP_LISTENER_MAX + 1);
        ASSERT_TRUE(big);
        memset(big, ' ', SECCOMP_LISTENER_MAX + 1);
        memcpy(big, runc_message, strlen(runc_message));
        ASSERT_OK(seccomp_listener_parse(big, SECCOMP_LISTENER_MAX, 1, &m, NULL));
        seccomp_listener_message_done(&m);
        ASSERT_EQ(seccomp_listener_parse(big, SECCOMP_LISTENER_MAX + 1, 1, &m, &reason), -EMSGSIZE);
        ASSERT_STREQ(reason, "message larger than 65536 bytes");
}

/* sv[0] sends (blocking), sv[1] receives (non-blocking). */
static void make_pair(int sv[2]) {
        ASSERT_OK(RET_NERRNO(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)));
        ASSERT_OK(RET_NERRNO(fcntl(sv[1], F_SETFL, O_NONBLOCK)));
}

static size_t count_open_fds(void) {
        size_t n = 0;
        for (int fd = 0; fd < 1024; fd++)
                if (fcntl(fd, F_GETFD) >= 0)
                        n++;
        return n;
}

TEST(send_recv_eventfd) {
        int sv[2];
        make_pair(sv);
        _cleanup_close_ int a = sv[0], b = sv[1];
        _cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC);
        ASSERT_TRUE(efd >= 0);

        ASSERT_OK(seccomp_listener_send(a, runc_message, &efd, 1));
        a = safe_close(a); /* as runc does */

        _cleanup_free_ char *data = NULL;
        size_t size, n_fds;
        int fds[SECCOMP_LISTENER_FDS_MAX];
        ASSERT_OK(seccomp_listener_recv(b, &data, &size, fds, &n_fds));
        ASSERT_EQ(size, strlen(runc_message));
        ASSERT_STREQ(data, runc_message);
        ASSERT_EQ(n_fds, 1);
        _cleanup_close_ int received = fds[0];
        ASSERT_TRUE(received != efd);
        ASSERT_EQ(fcntl(received, F_GETFD), FD_CLOEXEC);

        /* The received fd is the same eventfd. */
        uint64_t v = 5;
        ASSERT_EQ(write(received, &v, sizeof(v)), (ssize_t) sizeof(v));
        v = 0;
        ASSERT_EQ(read(efd, &v, sizeof(v)), (ssize_t) sizeof(v));
        ASSERT_EQ(v, 5);

        SeccompListenerMessage m = {};
        ASSERT_OK(seccomp_listener_parse(data, size, n_fds, &m, NULL));
        ASSERT_EQ(m.seccomp_fd_index, 0);
        seccomp_listener_message_done(&m);

        /* Then the runtime is gone. */
        ASSERT_EQ(seccomp_listener_recv(b, &data, &size, fds, &n_fds), -ENODATA);
}

TEST(recv_empty_socket_is_eagain) {
        int sv[2];
        make_pair(sv);
        _cleanup_close_ _unused_ int a = sv[0]; /* the runtime is connected but has sent nothing */
        _cleanup_close_ int b = sv[1];
        char *data = NULL;
        size_t size, n_fds;
        int fds[SECCOMP_LISTENER_FDS_MAX];
        ASSERT_EQ(seccomp_listener_recv(b, &data, &size, fds, &n_fds), -EAGAIN);
        ASSERT_TRUE(!data);
}

/* Sends runc_message with n copies of one eventfd and returns what recv says. */
static int send_recv_fds(size_t n, size_t *ret_n_fds, int fds[static SECCOMP_LISTENER_FDS_MAX]) {
        int sv[2];
        make_pair(sv);
        _cleanup_close_ int a = sv[0], b = sv[1];
        _cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC);
        ASSERT_TRUE(efd >= 0);
        int many[16];
        ASSERT_TRUE(n <= ELEMENTSOF(many));
        for (size_t i = 0; i < n; i++)
                many[i] = efd;
        ASSERT_OK(seccomp_listener_send(a, runc_message, many, n));
        a = safe_close(a);

        _cleanup_free_ char *data = NULL;
        size_t size;
        return seccomp_listener_recv(b, &data, &size, fds, ret_n_fds);
}

TEST(recv_fd_limit) {
        size_t before = count_open_fds();
        int fds[SECCOMP_LISTENER_FDS_MAX];
        size_t n_fds;

        ASSERT_OK(send_recv_fds(SECCOMP_LISTENER_FDS_MAX, &n_fds, fds));
        ASSERT_EQ(n_fds, SECCOMP_LISTENER_FDS_MAX);
        ASSERT_EQ(count_open_fds(), before + SECCOMP_LISTENER_FDS_MAX);
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);

        /* One more than allowed, and far more than that: refused, none of them left open. */
        ASSERT_EQ(send_recv_fds(SECCOMP_LISTENER_FDS_MAX + 1, &n_fds, fds), -EPROTO);
        ASSERT_EQ(count_open_fds(), before);
        ASSERT_EQ(send_recv_fds(16, &n_fds, fds), -EPROTO);
        ASSERT_EQ(count_open_fds(), before);
}

/* A message of size bytes (runc_message padded with spaces) with one fd. */
static int send_recv_size(size_t size, char **ret_data, size_t *ret_size, int fds[static SECCOMP_LISTENER_FDS_MAX],
                          size_t *ret_n_fds) {
        _cleanup_free_ char *json = malloc(size + 1);
        ASSERT_TRUE(json);
        memset(json, ' ', size);
        memcpy(json, runc_message, strlen(runc_message));
        json[size] = '\0';

        int sv[2];
        make_pair(sv);
        _cleanup_close_ int a = sv[0], b = sv[1];
        _cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC);
        ASSERT_TRUE(efd >= 0);
        ASSERT_OK(seccomp_listener_send(a, json, &efd, 1));
        a = safe_close(a);
        return seccomp_listener_recv(b, ret_data, ret_size, fds, ret_n_fds);
}

TEST(recv_size_limit) {
        size_t before = count_open_fds();
        int fds[SECCOMP_LISTENER_FDS_MAX];
        size_t size, n_fds;

        /* The kernel splits this into pieces; recv puts them back together. */
        _cleanup_free_ char *data = NULL;
        ASSERT_OK(send_recv_size(SECCOMP_LISTENER_MAX, &data, &size, fds, &n_fds));
        ASSERT_EQ(size, SECCOMP_LISTENER_MAX);
        ASSERT_EQ(strlen(data), SECCOMP_LISTENER_MAX);
        ASSERT_EQ(n_fds, 1);
        safe_close(fds[0]);
        SeccompListenerMessage m = {};
        ASSERT_OK(seccomp_listener_parse(data, size, n_fds, &m, NULL));
        ASSERT_STREQ(m.container_id, "9f0c2a7e1d44");
        seccomp_listener_message_done(&m);

        char *big = NULL;
        ASSERT_EQ(send_recv_size(SECCOMP_LISTENER_MAX + 1, &big, &size, fds, &n_fds), -EMSGSIZE);
        ASSERT_TRUE(!big);
        ASSERT_EQ(count_open_fds(), before);
}

TEST(send_refuses_empty_message) {
        int sv[2];
        make_pair(sv);
        _cleanup_close_ int a = sv[0], b = sv[1];
        ASSERT_EQ(seccomp_listener_send(a, "", &b, 1), -EINVAL);
}
