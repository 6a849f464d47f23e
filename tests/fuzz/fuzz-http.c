/* SPDX-License-Identifier: Apache-2.0 */
/* Input: one byte giving the chunk size (0 means 1), then a byte stream read the way the
 * engine socket proxy reads a connection: request heads (each classified into commands)
 * arriving in growing pieces, their bodies by Content-Length or chunked framing, cut into
 * pieces of that size. The same bytes also go through the response parser. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "policy/engine-commands.h"
#include "proto/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void responses(const char *buf, size_t size) {
        HttpResponse res;
        ssize_t n = http_response_parse(buf, size, size % 2, &res);
        assert(n <= (ssize_t) size && (n <= 0 || (res.status >= 100 && res.status <= 999)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        size_t chunk = data[0] ? data[0] : 1;
        const char *buf = (const char *) data + 1;
        size--;
        responses(buf, size);

        static const char *const patterns[] = { "push", "container*", "image ls" };
        CommandList list = { .allow = size % 2, .commands = patterns, .n_commands = 3 };
        size_t pos = 0;
        while (pos < size) {
                /* The head arrives in pieces, the first of the chunk size and each as long as all
                 * before it (so that a long head costs n log n, not n squared): the parser must
                 * wait, then agree. */
                HttpRequest req;
                ssize_t n = 0;
                for (size_t have = chunk < size - pos ? chunk : size - pos;; have = 2 * have < size - pos ? 2 * have : size - pos) {
                        n = http_request_parse(buf + pos, have, &req);
                        if (n != 0 || have == size - pos)
                                break;
                }
                if (n <= 0)
                        return 0;
                assert((size_t) n <= size - pos);
                assert(req.path[0] == '/' && strlen(req.path) < HTTP_PATH_MAX);
                char command[64];
                bool allowed = engine_request_allowed(&list, req.method, req.path, command);
                assert(allowed || strlen(command) < 64);
                pos += (size_t) n;
                if (req.body == HTTP_BODY_LENGTH) {
                        if (req.content_length > size - pos)
                                return 0;
                        pos += (size_t) req.content_length;
                } else if (req.body == HTTP_BODY_CHUNKED) {
                        HttpChunks c = {};
                        bool done = false;
                        while (!done && pos < size) {
                                size_t have = chunk < size - pos ? chunk : size - pos;
                                ssize_t k = http_chunks_feed(&c, buf + pos, have, &done);
                                if (k < 0)
                                        return 0;
                                assert((size_t) k <= have && (done || (size_t) k == have));
                                pos += (size_t) k;
                        }
                }
        }
        return 0;
}
