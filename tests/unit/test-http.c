/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "proto/http.h"
#include "test.h"

static ssize_t request(const char *text, HttpRequest *req) {
        return http_request_parse(text, strlen(text), req);
}

TEST(request_head) {
        HttpRequest req;
        const char *text = "GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: api.moby.localhost\r\n\r\nNEXT";
        ASSERT_EQ(request(text, &req), (ssize_t) strlen(text) - 4);
        ASSERT_STREQ(req.method, "GET");
        ASSERT_STREQ(req.path, "/v1.41/containers/json");
        ASSERT_EQ(req.body, HTTP_BODY_NONE);
        ASSERT_TRUE(!req.upgrade);
        /* Cut anywhere before its end, a head needs more bytes. */
        for (size_t n = 0; n < strlen(text) - 4; n++)
                ASSERT_EQ(http_request_parse(text, n, &req), 0);
}

TEST(request_path_is_decoded) {
        HttpRequest req;
        ASSERT_TRUE(request("POST /images/a%2Fb/push HTTP/1.1\r\n\r\n", &req) > 0);
        ASSERT_STREQ(req.path, "/images/a/b/push");
        ASSERT_TRUE(request("POST /v1.41/images/x%2F..%2Fy/push HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
        ASSERT_TRUE(request("GET /containers/%00/json HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
        ASSERT_TRUE(request("GET /containers/%zz/json HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
        ASSERT_TRUE(request("GET //containers/json HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
        ASSERT_TRUE(request("GET /./containers/json HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
        ASSERT_TRUE(request("GET http://x/containers/json HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
        ASSERT_TRUE(request("GET /a#b HTTP/1.1\r\n\r\n", &req) == -EBADMSG);
}

TEST(request_framing) {
        HttpRequest req;
        ASSERT_TRUE(request("POST /build HTTP/1.1\r\nContent-Length: 12\r\n\r\n", &req) > 0);
        ASSERT_EQ(req.body, HTTP_BODY_LENGTH);
        ASSERT_EQ(req.content_length, 12);
        ASSERT_TRUE(request("POST /build HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n", &req) > 0);
        ASSERT_EQ(req.body, HTTP_BODY_CHUNKED);
        ASSERT_TRUE(request("POST /exec/x/start HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: tcp\r\n\r\n", &req) > 0);
        ASSERT_TRUE(req.upgrade);
        /* Whatever two parsers could read differently is refused (request smuggling). */
        static const char *const bad[] = {
                "POST /build HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "POST /build HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                "POST /build HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                "POST /build HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
                "POST /build HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "POST /build HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
                "POST /build HTTP/1.1\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
                "POST /build HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "POST /build HTTP/1.1\r\nX: a\rb\r\n\r\n",
                "post /build HTTP/1.1\r\n\r\n",
                "POST  /build HTTP/1.1\r\n\r\n",
                "POST /build HTTP/2\r\n\r\n",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (request(bad[i], &req) != -EBADMSG)
                        fprintf(stderr, "accepted: %s\n", bad[i]);
                ASSERT_EQ(request(bad[i], &req), -EBADMSG);
        }
}

TEST(request_head_limit) {
        size_t n = HTTP_HEAD_MAX + 10;
        char *big = malloc(n);
        ASSERT_TRUE(big);
        memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
        memset(big + 19, 'a', n - 19);
        HttpRequest req;
        ASSERT_EQ(http_request_parse(big, n, &req), -EMSGSIZE);
        free(big);
}

TEST(response_head) {
        HttpResponse res;
        const char *up = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        ASSERT_EQ(http_response_parse(up, strlen(up), false, &res), (ssize_t) strlen(up));
        ASSERT_EQ(res.status, 101);
        ASSERT_TRUE(res.raw_stream);
        const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        ASSERT_TRUE(http_response_parse(ok, strlen(ok), false, &res) > 0);
        ASSERT_EQ(res.body, HTTP_BODY_LENGTH);
        ASSERT_TRUE(http_response_parse(ok, strlen(ok), true, &res) > 0);
        ASSERT_EQ(res.body, HTTP_BODY_NONE);
        const char *stream = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
        ASSERT_TRUE(http_response_parse(stream, strlen(stream), false, &res) > 0);
        ASSERT_EQ(res.body, HTTP_BODY_UNTIL_CLOSE);
        ASSERT_EQ(http_response_parse("HTTP/1.1 2x0 OK\r\n\r\n", 19, false, &res), -EBADMSG);
}

TEST(chunks) {
        const char *body = "5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        size_t n = strlen(body) - 4;
        /* Fed one byte at a time or at once, the body ends at the same byte. */
        for (size_t step = 1; step <= n + 4; step += n + 3) {
                HttpChunks c = {};
                bool done = false;
                size_t pos = 0;
                while (!done) {
                        size_t have = step < strlen(body) - pos ? step : strlen(body) - pos;
                        ssize_t k = http_chunks_feed(&c, body + pos, have, &done);
                        ASSERT_TRUE(k >= 0);
                        pos += (size_t) k;
                }
                ASSERT_EQ(pos, n);
        }
        static const char *const bad[] = { "x\r\n", "5\nhello\r\n", "5\r\nhelloX", " 5\r\n", "10000000000000000\r\n" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                HttpChunks c = {};
                bool done;
                ASSERT_EQ(http_chunks_feed(&c, bad[i], strlen(bad[i]), &done), -EBADMSG);
        }
}
