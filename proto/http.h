/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 message heads and chunked bodies, as the engine socket proxy sees them: pure code
 * over bytes the caller holds. The parser is strict where a laxer one could disagree with
 * the engine about where a message ends (request smuggling): lines end in CRLF, no folded
 * headers, one Content-Length of digits only, Transfer-Encoding only "chunked" and never
 * together with Content-Length. Anything else is -EBADMSG and the connection is dropped. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_HEAD_MAX (64u * 1024u)
#define HTTP_PATH_MAX 4096u

typedef enum HttpBody {
        HTTP_BODY_NONE,
        HTTP_BODY_LENGTH,       /* content_length bytes */
        HTTP_BODY_CHUNKED,
        HTTP_BODY_UNTIL_CLOSE,  /* responses only: no length given */
} HttpBody;

typedef struct HttpRequest {
        char method[16];
        char path[HTTP_PATH_MAX]; /* percent-decoded, without the query */
        HttpBody body;
        uint64_t content_length;
        bool upgrade;             /* an Upgrade header: the engine may hijack the connection */
} HttpRequest;

typedef struct HttpResponse {
        int status;
        HttpBody body;
        uint64_t content_length;
        bool raw_stream;          /* Content-Type application/vnd.docker.raw-stream or multiplexed-stream */
} HttpResponse;

/* Returns the size of the head (> 0) once buf holds all of it, 0 when more bytes are
 * needed, -EMSGSIZE when no head ends within HTTP_HEAD_MAX bytes, -EBADMSG when it is not
 * a request head this parser accepts. Paths that the engine would clean ("//", "/./",
 * "/../"), that are not absolute, or that hold a NUL once decoded are -EBADMSG. */
ssize_t http_request_parse(const char *buf, size_t size, HttpRequest *ret);

/* The same for a response head; head_request says the request was HEAD (no body follows). */
ssize_t http_response_parse(const char *buf, size_t size, bool head_request, HttpResponse *ret);

/* Follows a chunked body through bytes cut at arbitrary points. */
typedef struct HttpChunks {
        int state;
        uint64_t remaining;
        size_t line;
} HttpChunks;

/* Consumes bytes of the body: returns how many of size belong to it (all of them unless the
 * body ends inside data), sets *ret_done once its last byte is consumed; -EBADMSG for bad
 * framing. */
ssize_t http_chunks_feed(HttpChunks *c, const char *data, size_t size, bool *ret_done);
