/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "agent/fetch.h"
#include "test.h"

#define MAX_SIZE (1024 * 1024)

/* tests/unit/https-server.py as a child process, with a certificate for 127.0.0.1 and
 * localhost issued by the CA in ca_file. */
typedef struct Server {
        pid_t pid;
        int port;
        char ca_file[PATH_MAX];
} Server;

static void run(const char *command) {
        int status = system(command);
        if (status != 0) {
                fprintf(stderr, "'%s' failed with status %d\n", command, status);
                abort();
        }
}

/* Writes <name>.crt and <name>.key, a self-signed CA, into the test's directory. */
static void make_ca(const char *name, char ret_cert[static PATH_MAX]) {
        char command[4 * PATH_MAX];
        const char *dir = test_tmpdir();

        snprintf(command, sizeof(command),
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                 "-subj '/CN=Stockade test %s' -keyout %s/%s.key -out %s/%s.crt 2>/dev/null",
                 name, dir, name, dir, name);
        run(command);
        snprintf(ret_cert, PATH_MAX, "%s/%s.crt", dir, name);
}

static void server_start(Server *s) {
        char command[4 * PATH_MAX], cert[PATH_MAX], key[PATH_MAX], script[PATH_MAX];
        const char *dir = test_tmpdir();
        int fds[2];

        if (system("command -v openssl >/dev/null && command -v python3 >/dev/null") != 0)
                test_skip("needs openssl and python3");
        /* Traffic goes to 127.0.0.1 only, never through a proxy from the environment. */
        ASSERT_OK(setenv("no_proxy", "*", 1));

        make_ca("ca", s->ca_file);
        snprintf(cert, sizeof(cert), "%s/server.crt", dir);
        snprintf(key, sizeof(key), "%s/server.key", dir);
        snprintf(command, sizeof(command),
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                 "-subj /CN=localhost -addext basicConstraints=CA:FALSE "
                 "-addext subjectAltName=IP:127.0.0.1,DNS:localhost "
                 "-CA %s -CAkey %s/ca.key -keyout %s -out %s 2>/dev/null",
                 s->ca_file, dir, key, cert);
        run(command);

        const char *top = getenv("STOCKADE_TOP");
        snprintf(script, sizeof(script), "%s/tests/unit/https-server.py", top ?: ".");

        ASSERT_OK(pipe2(fds, O_CLOEXEC));
        pid_t parent = getpid();
        s->pid = fork();
        ASSERT_OK(s->pid);
        if (s->pid == 0) {
                /* Dies with the test process, however that ends (abort() skips all cleanup). */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(1);
                if (dup2(fds[1], STDOUT_FILENO) < 0)
                        _exit(1);
                execlp("python3", "python3", script, cert, key, (char *) NULL);
                _exit(127);
        }
        close(fds[1]);

        FILE *f = fdopen(fds[0], "r");
        ASSERT_TRUE(f);
        ASSERT_EQ(fscanf(f, "%d", &s->port), 1);
        fclose(f);
}

static void server_stop(Server *s) {
        if (s->pid <= 0)
                return;
        (void) kill(s->pid, SIGTERM);
        (void) waitpid(s->pid, NULL, 0);
        s->pid = 0;
}

/* A loop with a fetcher, and a copy of what its callback received. */
typedef struct Client {
        struct ev_loop *loop;
        Fetcher *fetcher;
        int calls;
        FetchResult result;
} Client;

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static void result_free(FetchResult *r) {
        free(r->body);
        free(r->etag);
        free(r->digest);
        free(r->authenticate);
        free(r->reason);
}

static void client_done(Client *c) {
        fetcher_free(c->fetcher);
        if (c->loop)
                ev_loop_destroy(c->loop);
        result_free(&c->result);
}

static void on_done(const FetchResult *result, void *userdata) {
        Client *c = userdata;

        c->calls++;
        result_free(&c->result);
        c->result = *result;
        c->result.body = strdup_or_null(result->body);
        c->result.etag = strdup_or_null(result->etag);
        c->result.reason = strdup_or_null(result->reason);
        c->result.digest = strdup_or_null(result->digest);
        c->result.authenticate = strdup_or_null(result->authenticate);
        ev_break(c->loop, EVBREAK_ALL);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents) {
        ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until the callback fires, or for at most seconds. */
static void run_loop(struct ev_loop *loop, double seconds) {
        ev_timer deadline;

        ev_timer_init(&deadline, on_deadline, seconds, 0.);
        ev_timer_start(loop, &deadline);
        ev_run(loop, 0);
        ev_timer_stop(loop, &deadline);
}

/* Starts fetching path from the server (or req.url if set); fields of req left zero get
 * the test's defaults. */
static int client_start(Client *c, const Server *s, const char *path, FetchRequest req) {
        char url[128];

        if (!req.url) {
                snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", s->port, path);
                req.url = url;
        }
        req.bearer_token = req.bearer_token ?: "good-token";
        req.ca_file = req.ca_file ?: s->ca_file;
        req.max_size = req.max_size ?: MAX_SIZE;
        req.connect_timeout_ms = req.connect_timeout_ms ?: 2000;
        req.total_timeout_ms = req.total_timeout_ms ?: 5000;

        if (!c->loop) {
                c->loop = ev_loop_new(EVFLAG_AUTO);
                ASSERT_TRUE(c->loop);
                ASSERT_OK(fetcher_new(c->loop, &c->fetcher));
        }
        return fetcher_start(c->fetcher, &req, on_done, c);
}

static void fetch(Client *c, const Server *s, const char *path, FetchRequest req) {
        ASSERT_OK(client_start(c, s, path, req));
        run_loop(c->loop, 10);
        ASSERT_EQ(c->calls, 1);
}

TEST(success) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        fetch(&c, &s, "/settings", (FetchRequest) {});
        ASSERT_EQ(c.result.error, 0);
        ASSERT_EQ(c.result.http_status, 200);
        ASSERT_STREQ(c.result.body, "{\"configurationFileVersion\": 2}\n");
        ASSERT_EQ(c.result.body_size, strlen(c.result.body));
        ASSERT_STREQ(c.result.etag, "\"v1\"");
        ASSERT_TRUE(!c.result.reason);
}

/* A registry's manifest lookup: HEAD, an Accept header, the digest from the headers; the
 * challenge of a 401 is handed back for the token dance. */
TEST(head_manifest) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        fetch(&c, &s, "/v2/tool/manifests/1.0", (FetchRequest) { .head = true, .accept = "application/vnd.oci.image.index.v1+json" });
        ASSERT_EQ(c.result.error, 0);
        ASSERT_EQ(c.result.http_status, 200);
        ASSERT_STREQ(c.result.digest, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        ASSERT_STREQ(c.result.body, "");

        c.calls = 0;
        fetch(&c, &s, "/v2/tool/manifests/1.0", (FetchRequest) { .head = true, .anonymous = true });
        ASSERT_EQ(c.result.error, -EACCES);
        ASSERT_EQ(c.result.http_status, 401);
        ASSERT_STREQ(c.result.authenticate, "Bearer realm=\"https://127.0.0.1/token\",service=\"test\"");
        ASSERT_TRUE(!c.result.digest);
}

TEST(wrong_token) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        fetch(&c, &s, "/settings", (FetchRequest) { .bearer_token = "bad-token" });
        ASSERT_EQ(c.result.error, -EACCES);
        ASSERT_EQ(c.result.http_status, 401);
        ASSERT_STREQ(c.result.reason, "HTTP 401");
        ASSERT_TRUE(!c.result.body);
}

TEST(not_modified) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        fetch(&c, &s, "/settings", (FetchRequest) { .etag = "\"v1\"" });
        ASSERT_EQ(c.result.error, 0);
        ASSERT_EQ(c.result.http_status, 304);
        ASSERT_TRUE(!c.result.body);
        ASSERT_STREQ(c.result.etag, "\"v1\"");
}

TEST(too_large) {
        _cleanup_(server_stop) Server s = {};

        server_start(&s);
        /* Refused from Content-Length, and while receiving when there is none. */
        const char *paths[] = { "/big", "/big-unsized" };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                _cleanup_(client_done) Client c = {};

                fetch(&c, &s, paths[i], (FetchRequest) {});
                ASSERT_EQ(c.result.error, -EFBIG);
                ASSERT_STREQ(c.result.reason, "response larger than 1048576 bytes");
                ASSERT_TRUE(!c.result.body);
        }
}

TEST(connection_refused) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        server_stop(&s);
        fetch(&c, &s, "/settings", (FetchRequest) {});
        ASSERT_EQ(c.result.error, -ECONNREFUSED);
        ASSERT_EQ(c.result.http_status, 0);
        ASSERT_CONTAINS(c.result.reason, "connect failed: ");
}

TEST(wrong_ca) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};
        char other_ca[PATH_MAX];

        server_start(&s);
        make_ca("other-ca", other_ca);
        fetch(&c, &s, "/settings", (FetchRequest) { .ca_file = other_ca });
        ASSERT_EQ(c.result.error, -EKEYREJECTED);
        ASSERT_CONTAINS(c.result.reason, "TLS: ");
        ASSERT_CONTAINS(c.result.reason, "certificate");
}

TEST(timeout) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        fetch(&c, &s, "/slow", (FetchRequest) { .total_timeout_ms = 500 });
        ASSERT_EQ(c.result.error, -ETIMEDOUT);
        ASSERT_CONTAINS(c.result.reason, "timed out: ");
}

TEST(http_refused) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};
        char url[128];

        server_start(&s);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/settings", s.port);
        fetch(&c, &s, NULL, (FetchRequest) { .url = url });
        ASSERT_EQ(c.result.error, -EPROTONOSUPPORT);
        ASSERT_STREQ(c.result.reason, "only https:// URLs are allowed");
}

TEST(cancel) {
        _cleanup_(server_stop) Server s = {};
        _cleanup_(client_done) Client c = {};

        server_start(&s);
        ASSERT_EQ(client_start(&c, &s, "/settings", (FetchRequest) { .bearer_token = "t\r\nX-Injected: 1" }),
                  -EINVAL);
        ASSERT_OK(client_start(&c, &s, "/slow", (FetchRequest) {}));
        ASSERT_EQ(client_start(&c, &s, "/settings", (FetchRequest) {}), -EBUSY);
        run_loop(c.loop, 0.3); /* connected, waiting for the answer */
        fetcher_cancel(c.fetcher);

        /* Only the next request calls back. */
        fetch(&c, &s, "/settings", (FetchRequest) {});
        ASSERT_EQ(c.result.http_status, 200);

        /* Freed in flight by client_done(). */
        ASSERT_OK(client_start(&c, &s, "/slow", (FetchRequest) {}));
        run_loop(c.loop, 0.3);
        ASSERT_EQ(c.calls, 1);
}
