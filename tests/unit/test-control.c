/* SPDX-License-Identifier: Apache-2.0 */
/* The control server runs in a forked child on a unix socket under test_tmpdir(); the test
 * talks to it with the blocking client and with raw sockets. Never vsock: the machine's
 * host uses it. */
#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "proto/address.h"
#include "proto/control-client.h"
#include "agent/control.h"
#include "log.h"
#include "proto/frame.h"
#include "test.h"
#include "util.h"

#define READER_GID 4242
#define NOBODY 65534
#define NO_GROUP ((gid_t) -1)

typedef struct TestServer {
        char address[128]; /* "unix:<tmpdir>/control.sock" */
        const char *path;  /* the socket, inside address */
        char log[128];     /* the server's stderr */
        pid_t pid;
        int stop_fd; /* closing it stops the server */
} TestServer;

/* ---- the server's side, in the child ---- */

static int method_echo(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret_result,
                       char **ret_message) {
        cJSON *copy = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
        if (!copy)
                return -ENOMEM;
        *ret_result = copy;
        return 0;
}

static long vm_rss_kib(void) {
        _cleanup_free_ char *status = NULL;
        if (read_full_file(AT_FDCWD, "/proc/self/status", 1 << 16, &status, NULL) < 0)
                return -1;
        const char *p = strstr(status, "VmRSS:");
        return p ? strtol(p + strlen("VmRSS:"), NULL, 10) : -1;
}

/* Emits params.events notifications "test.event" {"seq": i, "pad": "xxx..." (params.pad
 * bytes)}, then answers with the server's counters. */
static int method_poke(void *userdata, ControlClient *client, const cJSON *params, cJSON **ret_result,
                       char **ret_message) {
        ControlServer *s = *(ControlServer **) userdata;
        const cJSON *events = cJSON_GetObjectItemCaseSensitive(params, "events");
        const cJSON *pad = cJSON_GetObjectItemCaseSensitive(params, "pad");
        if (!json_is_int(events, 0, 1000) || !json_is_int(pad, 0, 512 * 1024))
                return error_set(ret_message, JSONRPC_INVALID_PARAMS, "'events' and 'pad' must be small integers");

        _cleanup_free_ char *padding = malloc((size_t) pad->valueint + 1);
        if (!padding)
                return -ENOMEM;
        memset(padding, 'x', (size_t) pad->valueint);
        padding[pad->valueint] = '\0';
        for (int i = 0; i < events->valueint; i++) {
                cJSON *p = cJSON_CreateObject();
                if (!p || !cJSON_AddNumberToObject(p, "seq", i) || !cJSON_AddStringToObject(p, "pad", padding)) {
                        cJSON_Delete(p);
                        return -ENOMEM;
                }
                control_server_emit(s, "test.event", p);
        }

        _cleanup_json_ cJSON *result = cJSON_CreateObject();
        if (!result || !cJSON_AddNumberToObject(result, "clients", (double) control_server_n_clients(s)) ||
            !cJSON_AddNumberToObject(result, "queued_bytes", (double) control_server_queued_bytes(s)) ||
            !cJSON_AddNumberToObject(result, "rss_kib", (double) vm_rss_kib()))
                return -ENOMEM;
        *ret_result = TAKE_PTR(result);
        return 0;
}

static const ControlMethod test_methods[] = {
        { "echo", true, method_echo },
        { "poke", false, method_poke },
};

static void on_stop(struct ev_loop *loop, ev_io *w, int revents) {
        ev_break(loop, EVBREAK_ALL);
}

static _Noreturn void server_run(const TestServer *t, int stop_fd) {
        int log_fd = open(t->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_OK(log_fd);
        ASSERT_OK(dup2(log_fd, STDERR_FILENO));
        log_set_max_level(LOG_DEBUG);

        struct ev_loop *loop = ev_default_loop(0);
        ASSERT_TRUE(loop);
        ControlServer *s = NULL;
        ASSERT_OK(control_server_new(loop, test_methods, ELEMENTSOF(test_methods), &s, READER_GID, &s));
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(control_server_listen(s, t->address, &error));

        ev_io stop;
        ev_io_init(&stop, on_stop, stop_fd, EV_READ);
        ev_io_start(loop, &stop);
        ASSERT_EQ(write(stop_fd, "R", 1), 1);
        ev_run(loop, 0);

        control_server_free(s);
        ev_io_stop(loop, &stop);
        ev_loop_destroy(loop);
        _exit(0);
}

/* ---- the test's side ---- */

static void server_start(TestServer *t) {
        /* Let the unprivileged peers reach the socket. */
        ASSERT_OK(chmod(test_tmpdir(), 0755));
        snprintf(t->address, sizeof(t->address), "unix:%s/control.sock", test_tmpdir());
        t->path = t->address + strlen("unix:");
        snprintf(t->log, sizeof(t->log), "%s/server.log", test_tmpdir());

        int sv[2];
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        fflush(NULL);
        t->pid = fork();
        ASSERT_OK(t->pid);
        if (t->pid == 0) {
                close(sv[0]);
                server_run(t, sv[1]);
        }
        close(sv[1]);
        t->stop_fd = sv[0];

        char ready;
        ASSERT_EQ(read(t->stop_fd, &ready, 1), 1);
}

/* Stops the server, checks that it exited cleanly and returns its log. */
static char *server_stop(TestServer *t) {
        close(t->stop_fd);
        int status;
        ASSERT_EQ(waitpid(t->pid, &status, 0), t->pid);

        char *log = NULL;
        ASSERT_OK(read_full_file(AT_FDCWD, t->log, 16 * 1024 * 1024, &log, NULL));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "server log:\n%s", log);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        return log;
}

static ControlConnection *client_connect(const TestServer *t) {
        ControlConnection *c = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(control_client_connect(t->address, &c, &error));
        return c;
}

static cJSON *parse(const char *text) {
        cJSON *json = cJSON_Parse(text);
        ASSERT_TRUE(json);
        return json;
}

static void assert_json(const cJSON *json, const char *expected) {
        _cleanup_free_ char *text = cJSON_PrintUnformatted(json);
        ASSERT_STREQ(text, expected);
}

static int call(ControlConnection *c, const char *method, const char *params, cJSON **ret_result, char **reterr) {
        return control_client_call(c, method, params ? parse(params) : NULL, ret_result, reterr);
}

/* Calls poke and returns the counter name from its result. */
static double poke(ControlConnection *c, int events, int pad, const char *counter) {
        char params[64];
        snprintf(params, sizeof(params), "{\"events\":%d,\"pad\":%d}", events, pad);
        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(call(c, "poke", params, &result, &error));
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(result, counter);
        ASSERT_TRUE(cJSON_IsNumber(v));
        return v->valuedouble;
}

static void assert_next_event(ControlConnection *c, int seq) {
        _cleanup_json_ cJSON *n = NULL;
        ASSERT_EQ(control_client_next_event(c, 5000, &n), 1);
        ASSERT_STREQ(json_get_string(n, "method"), "test.event");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(n, "params"), "seq");
        ASSERT_TRUE(cJSON_IsNumber(s));
        ASSERT_EQ(s->valueint, seq);
}

static int raw_connect(const TestServer *t) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(fd);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->path);
        ASSERT_OK(connect(fd, (struct sockaddr *) &sa, sizeof(sa)));
        /* A reply that never comes fails the test instead of hanging it. */
        struct timeval timeout = { .tv_sec = 5 };
        ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)));
        return fd;
}

static void raw_write(int fd, const void *data, size_t size) {
        ASSERT_EQ(write(fd, data, size), (ssize_t) size);
}

/* body as a frame, appended to *buf. */
static void frame_append(char **buf, size_t *size, const char *body) {
        _cleanup_free_ char *frame = NULL;
        size_t n;
        ASSERT_OK(frame_encode(body, strlen(body), &frame, &n));
        *buf = realloc(*buf, *size + n);
        ASSERT_TRUE(*buf);
        memcpy(*buf + *size, frame, n);
        *size += n;
}

static void raw_read(int fd, void *buf, size_t size) {
        ASSERT_EQ(recv(fd, buf, size, MSG_WAITALL), (ssize_t) size);
}

static cJSON *raw_receive(int fd) {
        unsigned char prefix[FRAME_PREFIX_SIZE];
        raw_read(fd, prefix, sizeof(prefix));
        size_t n = (size_t) prefix[0] << 24 | (size_t) prefix[1] << 16 | (size_t) prefix[2] << 8 | prefix[3];
        ASSERT_TRUE(n > 0 && n <= FRAME_BODY_MAX);
        _cleanup_free_ char *body = malloc(n + 1);
        ASSERT_TRUE(body);
        raw_read(fd, body, n);
        body[n] = '\0';
        return parse(body);
}

/* Reads until the server closes the connection; returns how many bytes came first. */
static size_t raw_drain_until_eof(int fd) {
        static char buf[64 * 1024];
        size_t total = 0;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                ASSERT_OK(n);
                if (n == 0)
                        return total;
                total += (size_t) n;
        }
}

static void assert_error_reply(const cJSON *reply, int code, const char *message) {
        ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(reply, "id")));
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
        ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(error, "code")->valueint, code);
        ASSERT_STREQ(json_get_string(error, "message"), message);
}

/* Sends body as one frame on a new connection and expects an error reply, then EOF. */
static void assert_refused_then_closed(const TestServer *t, const char *data, size_t size, int code,
                                       const char *message) {
        _cleanup_close_ int fd = raw_connect(t);
        raw_write(fd, data, size);
        _cleanup_json_ cJSON *reply = raw_receive(fd);
        assert_error_reply(reply, code, message);
        ASSERT_EQ(raw_drain_until_eof(fd), 0);
}

static void assert_echo_works(const TestServer *t) {
        _cleanup_(control_client_freep) ControlConnection *c = client_connect(t);
        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(call(c, "echo", "{\"still\":\"here\"}", &result, &error));
        assert_json(result, "{\"still\":\"here\"}");
}

/* Runs body in a child with the given credentials (extra_group: a supplementary group, or
 * NO_GROUP) and checks that it passed. */
static void run_as(const TestServer *t, uid_t uid, gid_t gid, gid_t extra_group, void (*body)(const TestServer *t)) {
        if (geteuid() != 0)
                test_skip("needs root to run a peer as another uid");
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_OK(pid);
        if (pid == 0) {
                if (setgroups(extra_group == NO_GROUP ? 0 : 1, &extra_group) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                        _exit(2);
                body(t);
                fflush(NULL);
                _exit(0);
        }
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(call_round_trip) {
        TestServer t;
        server_start(&t);

        _cleanup_(control_client_freep) ControlConnection *c = client_connect(&t);
        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(call(c, "echo", "{\"text\":\"hello\",\"list\":[1,2]}", &result, &error));
        assert_json(result, "{\"text\":\"hello\",\"list\":[1,2]}");
        ASSERT_EQ(poke(c, 0, 0, "clients"), 1);

        /* A handler's own error comes back as it was raised. */
        ASSERT_EQ(call(c, "poke", "{\"events\":\"many\"}", NULL, &error), -EREMOTEIO);
        ASSERT_STREQ(error, "'events' and 'pad' must be small integers");

        free(server_stop(&t));
}

TEST(socket_is_for_root_and_the_reader_group) {
        TestServer t;
        server_start(&t);
        struct stat st;
        ASSERT_OK(stat(t.path, &st));
        ASSERT_TRUE(S_ISSOCK(st.st_mode));
        ASSERT_EQ(st.st_mode & 07777, 0660);
        ASSERT_EQ(st.st_uid, 0);
        ASSERT_EQ(st.st_gid, READER_GID);
        free(server_stop(&t));
}

TEST(frame_written_one_byte_at_a_time) {
        TestServer t;
        server_start(&t);

        _cleanup_close_ int fd = raw_connect(&t);
        _cleanup_free_ char *frame = NULL;
        size_t size = 0;
        frame_append(&frame, &size, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"a\":1}}");
        for (size_t i = 0; i < size; i++) {
                raw_write(fd, frame + i, 1);
                usleep(500);
        }
        _cleanup_json_ cJSON *reply = raw_receive(fd);
        assert_json(reply, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1}}");

        free(server_stop(&t));
}

TEST(two_frames_in_one_write) {
        TestServer t;
        server_start(&t);

        _cleanup_close_ int fd = raw_connect(&t);
        _cleanup_free_ char *frames = NULL;
        size_t size = 0;
        frame_append(&frames, &size, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"n\":1}}");
        frame_append(&frames, &size, "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"echo\",\"params\":{\"n\":2}}");
        raw_write(fd, frames, size);

        _cleanup_json_ cJSON *first = raw_receive(fd), *second = raw_receive(fd);
        assert_json(first, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"n\":1}}");
        assert_json(second, "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"result\":{\"n\":2}}");

        free(server_stop(&t));
}

TEST(notifications_from_clients_are_ignored) {
        TestServer t;
        server_start(&t);

        _cleanup_close_ int fd = raw_connect(&t);
        _cleanup_free_ char *frames = NULL;
        size_t size = 0;
        frame_append(&frames, &size, "{\"jsonrpc\":\"2.0\",\"method\":\"poke\",\"params\":{\"events\":1,\"pad\":0}}");
        frame_append(&frames, &size, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}");
        raw_write(fd, frames, size);

        _cleanup_json_ cJSON *reply = raw_receive(fd);
        assert_json(reply, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}");

        free(server_stop(&t));
}

TEST(bad_frame_length_is_answered_then_closed) {
        TestServer t;
        server_start(&t);

        /* FRAME_BODY_MAX + 1, refused before any body arrives. */
        assert_refused_then_closed(&t, "\x00\x10\x00\x01", 4, JSONRPC_INVALID_REQUEST,
                                   "invalid frame: the length must be 1 to 1048576 bytes");
        assert_refused_then_closed(&t, "\0\0\0\0", 4, JSONRPC_INVALID_REQUEST,
                                   "invalid frame: the length must be 1 to 1048576 bytes");
        assert_echo_works(&t);

        free(server_stop(&t));
}

TEST(malformed_body_is_answered_then_closed) {
        TestServer t;
        server_start(&t);

        _cleanup_free_ char *frame = NULL;
        size_t size = 0;
        frame_append(&frame, &size, "{\"jsonrpc\":");
        assert_refused_then_closed(&t, frame, size, JSONRPC_PARSE_ERROR, "parse error: not JSON");

        size = 0;
        frame_append(&frame, &size, "[1,2]");
        assert_refused_then_closed(&t, frame, size, JSONRPC_INVALID_REQUEST, "invalid message: not a JSON object");

        size = 0;
        frame_append(&frame, &size, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}");
        assert_refused_then_closed(&t, frame, size, JSONRPC_INVALID_REQUEST, "invalid request: 'method' must be a string");

        assert_echo_works(&t);
        free(server_stop(&t));
}

TEST(unknown_method) {
        TestServer t;
        server_start(&t);

        _cleanup_(control_client_freep) ControlConnection *c = client_connect(&t);
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(call(c, "nope", NULL, NULL, &error), -EREMOTEIO);
        ASSERT_STREQ(error, "unknown method 'nope'");
        /* The connection stays usable. */
        ASSERT_EQ(poke(c, 0, 0, "clients"), 1);

        free(server_stop(&t));
}

static void peer_cannot_connect(const TestServer *t) {
        ControlConnection *c = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(control_client_connect(t->address, &c, &error), -EACCES);
        ASSERT_CONTAINS(error, "Permission denied");
}

/* Many connections at once: each is told why and closed at accept. */
static void peer_is_closed_at_accept(const TestServer *t) {
        int fds[100];
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = raw_connect(t);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                _cleanup_json_ cJSON *reply = raw_receive(fds[i]);
                assert_error_reply(reply, JSONRPC_PERMISSION_DENIED,
                                   "permission denied: uid 65534 is neither root nor in the stockade group");
                ASSERT_EQ(raw_drain_until_eof(fds[i]), 0);
                close(fds[i]);
        }
}

/* The client shows the agent's reason, not the write that failed on the closed connection. */
static void refused_client_is_told_why(const TestServer *t) {
        _cleanup_(control_client_freep) ControlConnection *c = client_connect(t);
        usleep(200 * 1000); /* the agent has answered and closed by now */
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(call(c, "echo", "{}", NULL, &error), -EPERM);
        ASSERT_STREQ(error, "permission denied: uid 65534 is neither root nor in the stockade group");
}

TEST(peer_outside_the_group_is_refused) {
        TestServer t;
        server_start(&t);
        _cleanup_(control_client_freep) ControlConnection *c = client_connect(&t);
        run_as(&t, NOBODY, NOBODY, NO_GROUP, peer_cannot_connect);

        /* A socket someone else made world-writable (systemd's SocketMode=) changes nothing. */
        ASSERT_OK(chmod(t.path, 0666));
        run_as(&t, NOBODY, NOBODY, NO_GROUP, peer_is_closed_at_accept);
        run_as(&t, NOBODY, NOBODY, NO_GROUP, refused_client_is_told_why);
        ASSERT_EQ(poke(c, 0, 0, "clients"), 1);
        free(server_stop(&t));
}


static void peer_may_only_read(const TestServer *t) {
        _cleanup_(control_client_freep) ControlConnection *c = client_connect(t);
        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(call(c, "echo", "{\"x\":true}", &result, &error));
        assert_json(result, "{\"x\":true}");
        cJSON_Delete(result);
        ASSERT_OK(call(c, "events.subscribe", NULL, &result, &error));
        assert_json(result, "{\"subscribed\":true}");
        ASSERT_EQ(call(c, "poke", "{\"events\":0,\"pad\":0}", NULL, &error), -EPERM);
        ASSERT_STREQ(error, "permission denied: 'poke' needs root");
}

TEST(reader_group_may_call_read_only_methods) {
        TestServer t;
        server_start(&t);
        run_as(&t, NOBODY, NOBODY, READER_GID, peer_may_only_read); /* supplementary group */
        run_as(&t, NOBODY, READER_GID, NO_GROUP, peer_may_only_read); /* primary group */
        free(server_stop(&t));
}

/* A reader uid holds CONTROL_CLIENTS_PER_UID connections; more are told why and closed. */
static void reader_floods(const TestServer *t) {
        int fds[CONTROL_CLIENTS_PER_UID];
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = raw_connect(t);
        for (int i = 0; i < 10; i++) {
                _cleanup_close_ int fd = raw_connect(t);
                _cleanup_json_ cJSON *reply = raw_receive(fd);
                assert_error_reply(reply, JSONRPC_PERMISSION_DENIED, "too many connections: uid 65534 has 32 open");
                ASSERT_EQ(raw_drain_until_eof(fd), 0);
        }
        /* Held ones still serve. */
        _cleanup_free_ char *frame = NULL;
        size_t size = 0;
        frame_append(&frame, &size, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{}}");
        raw_write(fds[0], frame, size);
        _cleanup_json_ cJSON *reply = raw_receive(fds[0]);
        assert_json(reply, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}

TEST(connections_per_uid_are_capped) {
        TestServer t;
        server_start(&t);
        run_as(&t, NOBODY, NOBODY, READER_GID, reader_floods);
        /* Another reader uid and root are not affected. */
        run_as(&t, NOBODY - 1, READER_GID, NO_GROUP, peer_may_only_read);
        assert_echo_works(&t);
        free(server_stop(&t));
}

TEST(events_reach_subscribers_in_order) {
        TestServer t;
        server_start(&t);

        _cleanup_(control_client_freep) ControlConnection *a = client_connect(&t), *b = client_connect(&t),
                                                          *bystander = client_connect(&t);
        _cleanup_json_ cJSON *result = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(call(a, "events.subscribe", NULL, &result, &error));
        assert_json(result, "{\"subscribed\":true}");
        ASSERT_OK(call(b, "events.subscribe", NULL, NULL, &error));

        /* a's events arrive before its reply to poke; the client keeps them. */
        ASSERT_EQ(poke(a, 5, 10, "clients"), 3);
        for (int i = 0; i < 5; i++) {
                assert_next_event(a, i);
                assert_next_event(b, i);
        }
        cJSON *none = NULL;
        ASSERT_EQ(control_client_next_event(a, 0, &none), 0);
        ASSERT_EQ(control_client_next_event(b, 100, &none), 0);
        ASSERT_EQ(control_client_next_event(bystander, 100, &none), 0);

        free(server_stop(&t));
}

TEST(slow_subscriber_is_dropped) {
        /* Each round emits 4 events of 64 KiB: the subscriber that never reads passes the
         * 4 MiB queue limit (plus what the socket buffers hold) after about 18 rounds. */
        const int rounds = 64, events = 4, pad = 64 * 1024;

        TestServer t;
        server_start(&t);

        _cleanup_close_ int slow = raw_connect(&t);
        _cleanup_free_ char *subscribe = NULL;
        size_t size = 0;
        frame_append(&subscribe, &size, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
        raw_write(slow, subscribe, size);
        _cleanup_json_ cJSON *reply = raw_receive(slow);
        assert_json(reply, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"subscribed\":true}}");

        _cleanup_(control_client_freep) ControlConnection *fast = client_connect(&t);
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(call(fast, "events.subscribe", NULL, NULL, &error));
        ASSERT_EQ(poke(fast, 0, 0, "clients"), 2);
        double rss_start = poke(fast, 0, 0, "rss_kib");

        int dropped_at = -1;
        for (int round = 0; round < rounds; round++) {
                /* Whatever the clients do, the server holds at most the limit per client. */
                double queued = poke(fast, events, pad, "queued_bytes");
                ASSERT_TRUE(queued <= 2.0 * CONTROL_CLIENT_QUEUE_MAX);
                for (int i = 0; i < events; i++)
                        assert_next_event(fast, i);
                if (dropped_at < 0 && poke(fast, 0, 0, "clients") == 1)
                        dropped_at = round;
        }
        ASSERT_TRUE(dropped_at > 0 && dropped_at < 32);

        /* 16 MiB were emitted; the fast subscriber has read everything, so nothing is queued. */
        ASSERT_EQ(poke(fast, 0, 0, "queued_bytes"), 0);
        double rss_end = poke(fast, 0, 0, "rss_kib");
        fprintf(stderr, "slow subscriber dropped in round %d; server RSS %.0f KiB -> %.0f KiB\n", dropped_at, rss_start,
                rss_end);
#ifndef __SANITIZE_ADDRESS__
        /* ASan's quarantine keeps freed memory resident, so RSS only means something without it. */
        ASSERT_TRUE(rss_end - rss_start < 8 * 1024);
#endif
        /* What the slow subscriber got before the server closed its connection. */
        ASSERT_TRUE(raw_drain_until_eof(slow) < (size_t) CONTROL_CLIENT_QUEUE_MAX + 2 * 1024 * 1024);

        _cleanup_free_ char *log = server_stop(&t);
        char expected[64];
        snprintf(expected, sizeof(expected), "dropping slow event subscriber pid %d: ", (int) getpid());
        ASSERT_CONTAINS(log, expected);
        ASSERT_CONTAINS(log, " bytes queued");
}

TEST(subscriber_flooding_itself_is_dropped) {
        /* A subscriber that asks for events but reads neither them nor the replies is
         * dropped, possibly from inside its own handler. */
        TestServer t;
        server_start(&t);

        _cleanup_close_ int fd = raw_connect(&t);
        _cleanup_free_ char *frames = NULL;
        size_t size = 0;
        frame_append(&frames, &size, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
        for (int i = 0; i < 40; i++)
                frame_append(&frames, &size,
                             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"poke\",\"params\":{\"events\":4,\"pad\":65536}}");
        raw_write(fd, frames, size);

        /* Let the server fill the queue before anything is read. */
        _cleanup_(control_client_freep) ControlConnection *c = client_connect(&t);
        for (int i = 0; i < 500 && poke(c, 0, 0, "clients") > 1; i++)
                usleep(10 * 1000);
        ASSERT_EQ(poke(c, 0, 0, "clients"), 1);
        raw_drain_until_eof(fd);

        _cleanup_free_ char *log = server_stop(&t);
        ASSERT_CONTAINS(log, "dropping slow event subscriber pid ");
}

/* Enough fds for the server (a forked child) to hold every client it may. */
static void require_fds_for_all_clients(void) {
        struct rlimit limit;
        ASSERT_OK(getrlimit(RLIMIT_NOFILE, &limit));
        if (limit.rlim_cur < CONTROL_CLIENTS_MAX + 64) {
                limit.rlim_cur = limit.rlim_max < CONTROL_CLIENTS_MAX + 64 ? limit.rlim_max : CONTROL_CLIENTS_MAX + 64;
                ASSERT_OK(setrlimit(RLIMIT_NOFILE, &limit));
                if (limit.rlim_cur < CONTROL_CLIENTS_MAX + 64)
                        test_skip("RLIMIT_NOFILE is too low for the client limit");
        }
}

TEST(connections_beyond_the_limit_are_closed) {
        require_fds_for_all_clients();
        TestServer t;
        server_start(&t);

        _cleanup_(control_client_freep) ControlConnection *c = client_connect(&t);
        int fds[CONTROL_CLIENTS_MAX - 1];
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = raw_connect(&t);
        for (int i = 0; i < 500 && poke(c, 0, 0, "clients") < CONTROL_CLIENTS_MAX; i++)
                usleep(10 * 1000);
        ASSERT_EQ(poke(c, 0, 0, "clients"), CONTROL_CLIENTS_MAX);

        _cleanup_close_ int extra = raw_connect(&t);
        _cleanup_json_ cJSON *reply = raw_receive(extra);
        assert_error_reply(reply, JSONRPC_PERMISSION_DENIED, "too many connections: the agent serves 1024");
        ASSERT_EQ(raw_drain_until_eof(extra), 0);

        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        for (int i = 0; i < 500 && poke(c, 0, 0, "clients") > 1; i++)
                usleep(10 * 1000);
        ASSERT_EQ(poke(c, 0, 0, "clients"), 1);
        assert_echo_works(&t);

        free(server_stop(&t));
}

TEST(listen_rejects_bad_addresses) {
        struct ev_loop *loop = ev_loop_new(0);
        ASSERT_TRUE(loop);
        ControlServer *s = NULL;
        ASSERT_OK(control_server_new(loop, test_methods, ELEMENTSOF(test_methods), NULL, NO_GROUP, &s));
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(control_server_listen(s, "tcp:127.0.0.1:80", &error), -EINVAL);
        ASSERT_STREQ(error, "invalid address 'tcp:127.0.0.1:80': expected unix:/path or vsock:CID:PORT");
        ASSERT_EQ(control_server_listen(s, "unix:", &error), -EINVAL);
        ASSERT_STREQ(error, "invalid address 'unix:': the path must be 1 to 107 bytes");
        /* vsock addresses are only parsed, never bound or connected: the host uses vsock. */
        ControlAddress a;
        ASSERT_OK(control_address_parse("vsock:2:1024", &a, &error));
        ASSERT_EQ(a.vm.svm_family, AF_VSOCK);
        ASSERT_EQ(a.vm.svm_cid, 2);
        ASSERT_EQ(a.vm.svm_port, 1024);
        const char *bad_vsock[] = { "vsock:2", "vsock::5", "vsock:x:5", "vsock:2:", "vsock:-1:5", "vsock:2:4294967296" };
        for (size_t i = 0; i < ELEMENTSOF(bad_vsock); i++) {
                ASSERT_EQ(control_address_parse(bad_vsock[i], &a, &error), -EINVAL);
                ASSERT_CONTAINS(error, "expected vsock:CID:PORT");
        }
        ControlConnection *c = NULL;
        ASSERT_EQ(control_client_connect("unix:", &c, &error), -EINVAL);

        char path[128], address[136];
        snprintf(path, sizeof(path), "%s/file", test_tmpdir());
        snprintf(address, sizeof(address), "unix:%s", path);
        _cleanup_close_ int file = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_OK(file);
        ASSERT_EQ(control_server_listen(s, address, &error), -EEXIST);
        ASSERT_CONTAINS(error, "exists and is not a socket");

        control_server_free(s);
        ev_loop_destroy(loop);
}

TEST(stale_socket_is_replaced_and_adopted_socket_serves) {
        struct ev_loop *loop = ev_loop_new(0);
        ASSERT_TRUE(loop);
        ControlServer *s = NULL;
        ASSERT_OK(control_server_new(loop, test_methods, ELEMENTSOF(test_methods), &s, NO_GROUP, &s));

        /* A socket file left behind by an earlier run. */
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/stale.sock", test_tmpdir());
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)));
        close(fd);
        char address[136];
        snprintf(address, sizeof(address), "unix:%s", sa.sun_path);
        _cleanup_free_ char *error = NULL;
        ASSERT_OK(control_server_listen(s, address, &error));

        /* As systemd would pass it. A connected socket is not a listener. */
        int pair[2];
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
        ASSERT_EQ(control_server_adopt(s, pair[0], &error), -EINVAL);
        ASSERT_CONTAINS(error, "is not a listening stream socket");
        close(pair[0]);
        close(pair[1]);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/activated.sock", test_tmpdir());
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)));
        ASSERT_OK(listen(fd, 8));
        ASSERT_OK(control_server_adopt(s, fd, &error));

        /* The loop runs here, so talk to it without blocking on a reply. */
        _cleanup_close_ int client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(connect(client, (struct sockaddr *) &sa, sizeof(sa)));
        _cleanup_free_ char *frame = NULL;
        size_t size = 0;
        frame_append(&frame, &size, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"echo\",\"params\":[true]}");
        raw_write(client, frame, size);
        for (int i = 0; i < 1000; i++) {
                char b;
                if (recv(client, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
                        break;
                ev_run(loop, EVRUN_NOWAIT);
                usleep(1000);
        }
        ASSERT_EQ(control_server_n_clients(s), 1);
        _cleanup_json_ cJSON *reply = raw_receive(client);
        assert_json(reply, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":[true]}");

        control_server_free(s);
        ev_loop_destroy(loop);
}

static void reader_refused_for_root(const TestServer *t) {
        _cleanup_close_ int fd = raw_connect(t);
        _cleanup_json_ cJSON *reply = raw_receive(fd);
        assert_error_reply(reply, JSONRPC_PERMISSION_DENIED, "too many connections from peers other than root");
        ASSERT_EQ(raw_drain_until_eof(fd), 0);
}

TEST(root_keeps_its_reserve) {
        if (geteuid() != 0)
                test_skip("needs root to run peers as other uids");
        require_fds_for_all_clients();
        TestServer t;
        server_start(&t);
        _cleanup_(control_client_freep) ControlConnection *c = client_connect(&t);

        /* Reader uids 1000, 1001... each hold their share until release closes. */
        enum { HOLDERS = (CONTROL_CLIENTS_MAX - CONTROL_CLIENTS_ROOT_RESERVED) / CONTROL_CLIENTS_PER_UID };
        int release[2];
        ASSERT_OK(pipe2(release, O_CLOEXEC));
        pid_t holders[HOLDERS];
        fflush(NULL);
        for (int i = 0; i < HOLDERS; i++) {
                holders[i] = fork();
                ASSERT_OK(holders[i]);
                if (holders[i] == 0) {
                        close(release[1]);
                        if (setgroups(0, NULL) < 0 || setgid(READER_GID) < 0 || setuid(1000 + (uid_t) i) < 0)
                                _exit(2);
                        int fds[CONTROL_CLIENTS_PER_UID];
                        for (size_t j = 0; j < ELEMENTSOF(fds); j++)
                                fds[j] = raw_connect(&t);
                        char byte;
                        _exit(read(release[0], &byte, 1) == 0 ? 0 : 3);
                }
        }
        close(release[0]);
        const double held = 1 + HOLDERS * CONTROL_CLIENTS_PER_UID;
        for (int i = 0; i < 500 && poke(c, 0, 0, "clients") < held; i++)
                usleep(10 * 1000);
        ASSERT_EQ(poke(c, 0, 0, "clients"), held);

        run_as(&t, 2000, READER_GID, NO_GROUP, reader_refused_for_root);
        assert_echo_works(&t);

        close(release[1]);
        for (int i = 0; i < HOLDERS; i++) {
                int status;
                ASSERT_EQ(waitpid(holders[i], &status, 0), holders[i]);
                ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        free(server_stop(&t));
}

static int64_t elapsed_ms(const struct timespec *start) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (int64_t) (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* A listening socket nobody accepts from: "unix:<tmpdir>/stuck.sock" with backlog 0. */
static int stuck_listener(char address[static 128]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/stuck.sock", test_tmpdir());
        snprintf(address, 128, "unix:%s", sa.sun_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)));
        ASSERT_OK(listen(fd, 0));
        return fd;
}

/* An agent whose accept queue is full: connect gives up instead of waiting for ever (docker
 * run hung in it). */
TEST(connect_to_a_full_accept_queue_times_out) {
        alarm(30); /* a hang fails the test */
        char address[128];
        _cleanup_close_ int listener = stuck_listener(address);
        _cleanup_(control_client_freep) ControlConnection *queued = NULL;
        ASSERT_OK(control_client_connect(address, &queued, NULL)); /* fills the queue */

        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        ControlConnection *c = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(control_client_connect(address, &c, &error), -ETIMEDOUT);
        int64_t waited = elapsed_ms(&start);
        ASSERT_TRUE(waited >= CONTROL_CLIENT_WRITE_TIMEOUT_MS - 100 && waited < CONTROL_CLIENT_WRITE_TIMEOUT_MS + 2000);
        char expected[256];
        snprintf(expected, sizeof(expected), "cannot connect to '%s': its accept queue stayed full for %d s", address,
                 CONTROL_CLIENT_WRITE_TIMEOUT_MS / 1000);
        ASSERT_STREQ(error, expected);
}

/* A connection the agent never serves: a request larger than the socket buffers cannot be
 * written, and the call gives up. */
TEST(call_to_an_agent_that_never_reads_times_out) {
        alarm(30);
        char address[128];
        _cleanup_close_ int listener = stuck_listener(address);
        _cleanup_(control_client_freep) ControlConnection *c = NULL;
        ASSERT_OK(control_client_connect(address, &c, NULL));

        _cleanup_free_ char *big = malloc(FRAME_BODY_MAX / 2);
        ASSERT_TRUE(big);
        memset(big, 'x', FRAME_BODY_MAX / 2 - 1);
        big[FRAME_BODY_MAX / 2 - 1] = '\0';
        cJSON *params = cJSON_CreateObject();
        ASSERT_TRUE(params && cJSON_AddStringToObject(params, "pad", big));

        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(control_client_call(c, "echo", params, NULL, &error), -ETIMEDOUT);
        /* The first write fills the socket buffer and waits its timeout: that is progress; the
         * next makes none. */
        ASSERT_TRUE(elapsed_ms(&start) < 2 * CONTROL_CLIENT_WRITE_TIMEOUT_MS + 2000);
        char expected[128];
        snprintf(expected, sizeof(expected), "cannot write to the agent: it read nothing for %d s",
                 CONTROL_CLIENT_WRITE_TIMEOUT_MS / 1000);
        ASSERT_STREQ(error, expected);
}
