/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "macros.h"

#define CHUNK_LINE_MAX 4096u

static bool is_tchar(char c) {
        return isalnum((unsigned char) c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the head ("\r\n\r\n" included), 0 when it is not in buf yet. */
static ssize_t head_end(const char *buf, size_t size) {
        const char *end = memmem(buf, size < HTTP_HEAD_MAX ? size : HTTP_HEAD_MAX, "\r\n\r\n", 4);
        if (end)
                return end + 4 - buf;
        return size >= HTTP_HEAD_MAX ? -EMSGSIZE : 0;
}

static bool token_in_list(const char *value, size_t n, const char *token) {
        size_t len = strlen(token);
        for (size_t i = 0; i < n;) {
                while (i < n && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
                        i++;
                size_t start = i;
                while (i < n && value[i] != ',')
                        i++;
                size_t end = i;
                while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
                        end--;
                if (end - start == len && strncasecmp(value + start, token, len) == 0)
                        return true;
        }
        return false;
}

static bool starts_with_nocase(const char *v, size_t n, const char *prefix) {
        size_t len = strlen(prefix);
        return n >= len && strncasecmp(v, prefix, len) == 0;
}

typedef struct Fields {
        bool has_length, chunked, upgrade, raw_stream;
        uint64_t content_length;
} Fields;

/* Header lines from p up to the blank line that ends the head at end. */
static int parse_fields(const char *p, const char *end, Fields *f) {
        while (p < end - 2) {
                const char *eol = memmem(p, end - p, "\r\n", 2);
                assert(eol);
                const char *colon = memchr(p, ':', eol - p);
                if (!colon || colon == p)
                        return -EBADMSG;
                for (const char *c = p; c < colon; c++)
                        if (!is_tchar(*c))
                                return -EBADMSG; /* also refuses folded lines and space before ':' */
                const char *v = colon + 1, *v_end = eol;
                while (v < v_end && (*v == ' ' || *v == '\t'))
                        v++;
                while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
                        v_end--;
                for (const char *c = v; c < v_end; c++)
                        if ((unsigned char) *c < 0x20 ? *c != '\t' : *c == 0x7f)
                                return -EBADMSG;
                size_t name_len = colon - p, n = v_end - v;
#define NAME_IS(s) (name_len == strlen(s) && strncasecmp(p, s, name_len) == 0)
                if (NAME_IS("Content-Length")) {
                        if (f->has_length || n == 0 || n > 18)
                                return -EBADMSG;
                        uint64_t value = 0;
                        for (size_t i = 0; i < n; i++) {
                                if (!isdigit((unsigned char) v[i]))
                                        return -EBADMSG;
                                value = value * 10 + (uint64_t) (v[i] - '0');
                        }
                        f->has_length = true;
                        f->content_length = value;
                } else if (NAME_IS("Transfer-Encoding")) {
                        if (f->chunked || n != 7 || strncasecmp(v, "chunked", 7) != 0)
                                return -EBADMSG;
                        f->chunked = true;
                } else if (NAME_IS("Upgrade"))
                        f->upgrade = true;
                else if (NAME_IS("Content-Type"))
                        f->raw_stream = starts_with_nocase(v, n, "application/vnd.docker.raw-stream") ||
                                        starts_with_nocase(v, n, "application/vnd.docker.multiplexed-stream");
                else if (NAME_IS("Connection") && token_in_list(v, n, "upgrade"))
                        f->upgrade = true;
#undef NAME_IS
                p = eol + 2;
        }
        if (f->has_length && f->chunked)
                return -EBADMSG;
        return 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the path part of target[0..n) into out, refusing what the engine would rewrite. */
static int decode_path(const char *target, size_t n, char out[static HTTP_PATH_MAX]) {
        size_t path_n = 0;
        while (path_n < n && target[path_n] != '?')
                path_n++;
        if (path_n == 0 || target[0] != '/' || memchr(target, '#', n))
                return -EBADMSG;
        size_t o = 0;
        for (size_t i = 0; i < path_n; i++) {
                char c = target[i];
                if (c == '%') {
                        int hi = i + 2 < path_n ? hex_value(target[i + 1]) : -1, lo = hi >= 0 ? hex_value(target[i + 2]) : -1;
                        if (lo < 0)
                                return -EBADMSG;
                        c = (char) (hi * 16 + lo);
                        i += 2;
                }
                if (c == '\0' || o + 1 >= HTTP_PATH_MAX)
                        return -EBADMSG;
                out[o++] = c;
        }
        out[o] = '\0';
        if (strstr(out, "//") || strstr(out, "/./") || strstr(out, "/../") || (o >= 2 && streq(out + o - 2, "/.")) ||
            (o >= 3 && streq(out + o - 3, "/..")))
                return -EBADMSG;
        return 0;
}

ssize_t http_request_parse(const char *buf, size_t size, HttpRequest *ret) {
        ssize_t end = head_end(buf, size);
        if (end <= 0)
                return end;
        HttpRequest req = {};
        const char *line_end = memmem(buf, end, "\r\n", 2);
        const char *sp1 = memchr(buf, ' ', line_end - buf);
        if (!sp1 || sp1 == buf || (size_t) (sp1 - buf) >= sizeof(req.method))
                return -EBADMSG;
        for (const char *c = buf; c < sp1; c++)
                if (!isupper((unsigned char) *c))
                        return -EBADMSG;
        memcpy(req.method, buf, sp1 - buf);
        const char *target = sp1 + 1, *sp2 = memchr(target, ' ', line_end - target);
        if (!sp2 || line_end - sp2 != 9 || (strncmp(sp2 + 1, "HTTP/1.1", 8) != 0 && strncmp(sp2 + 1, "HTTP/1.0", 8) != 0))
                return -EBADMSG;
        for (const char *c = target; c < sp2; c++)
                if ((unsigned char) *c <= 0x20 || *c == 0x7f)
                        return -EBADMSG;
        if (decode_path(target, sp2 - target, req.path) < 0)
                return -EBADMSG;
        bool http10 = sp2[8] == '0';

        Fields f = {};
        if (parse_fields(line_end + 2, buf + end, &f) < 0 || (f.chunked && http10))
                return -EBADMSG;
        req.body = f.chunked ? HTTP_BODY_CHUNKED : f.has_length && f.content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
        req.content_length = f.content_length;
        req.upgrade = f.upgrade;
        *ret = req;
        return end;
}

ssize_t http_response_parse(const char *buf, size_t size, bool head_request, HttpResponse *ret) {
        ssize_t end = head_end(buf, size);
        if (end <= 0)
                return end;
        const char *line_end = memmem(buf, end, "\r\n", 2);
        if (line_end - buf < 12 || (strncmp(buf, "HTTP/1.1 ", 9) != 0 && strncmp(buf, "HTTP/1.0 ", 9) != 0) ||
            !isdigit((unsigned char) buf[9]) || !isdigit((unsigned char) buf[10]) || !isdigit((unsigned char) buf[11]) ||
            (line_end - buf > 12 && buf[12] != ' '))
                return -EBADMSG;
        HttpResponse res = { .status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0') };
        if (res.status < 100)
                return -EBADMSG;
        Fields f = {};
        if (parse_fields(line_end + 2, buf + end, &f) < 0)
                return -EBADMSG;
        res.raw_stream = f.raw_stream;
        res.content_length = f.content_length;
        if (head_request || res.status < 200 || res.status == 204 || res.status == 304)
                res.body = HTTP_BODY_NONE;
        else if (f.chunked)
                res.body = HTTP_BODY_CHUNKED;
        else if (f.has_length)
                res.body = f.content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
        else
                res.body = HTTP_BODY_UNTIL_CLOSE;
        *ret = res;
        return end;
}

enum {
        CHUNK_SIZE,       /* hex digits of the next chunk's size */
        CHUNK_EXTENSION,  /* ";..." up to CR */
        CHUNK_SIZE_LF,
        CHUNK_DATA,
        CHUNK_DATA_CR,
        CHUNK_DATA_LF,
        CHUNK_TRAILER,    /* a trailer line, or the blank line that ends the body */
        CHUNK_TRAILER_LF,
        CHUNK_DONE,
};

ssize_t http_chunks_feed(HttpChunks *c, const char *data, size_t size, bool *ret_done) {
        size_t i = 0;
        *ret_done = false;
        while (i < size && c->state != CHUNK_DONE) {
                char ch = data[i];
                switch (c->state) {
                case CHUNK_SIZE: {
                        int v = hex_value(ch);
                        if (v >= 0) {
                                if (c->line >= 15)
                                        return -EBADMSG;
                                c->remaining = c->remaining * 16 + (uint64_t) v;
                                c->line++;
                        } else if (c->line > 0 && (ch == ';' || ch == '\r'))
                                c->state = ch == ';' ? CHUNK_EXTENSION : CHUNK_SIZE_LF;
                        else
                                return -EBADMSG;
                        i++;
                        break;
                }
                case CHUNK_EXTENSION:
                        if (ch == '\n' || ++c->line > CHUNK_LINE_MAX)
                                return -EBADMSG;
                        if (ch == '\r')
                                c->state = CHUNK_SIZE_LF;
                        i++;
                        break;
                case CHUNK_SIZE_LF:
                        if (ch != '\n')
                                return -EBADMSG;
                        c->line = 0;
                        c->state = c->remaining > 0 ? CHUNK_DATA : CHUNK_TRAILER;
                        i++;
                        break;
                case CHUNK_DATA: {
                        size_t n = size - i < c->remaining ? size - i : (size_t) c->remaining;
                        c->remaining -= n;
                        i += n;
                        if (c->remaining == 0)
                                c->state = CHUNK_DATA_CR;
                        break;
                }
                case CHUNK_DATA_CR:
                case CHUNK_TRAILER_LF:
                case CHUNK_DATA_LF:
                        if (ch != (c->state == CHUNK_DATA_CR ? '\r' : '\n'))
                                return -EBADMSG;
                        if (c->state == CHUNK_TRAILER_LF)
                                c->state = c->line == 0 ? CHUNK_DONE : CHUNK_TRAILER;
                        else
                                c->state = c->state == CHUNK_DATA_CR ? CHUNK_DATA_LF : CHUNK_SIZE;
                        if (c->state != CHUNK_DONE)
                                c->line = 0;
                        i++;
                        break;
                case CHUNK_TRAILER:
                        if (ch == '\n' || ++c->line > CHUNK_LINE_MAX)
                                return -EBADMSG;
                        if (ch == '\r') {
                                c->line--;
                                c->state = CHUNK_TRAILER_LF;
                        }
                        i++;
                        break;
                }
        }
        *ret_done = c->state == CHUNK_DONE;
        return (ssize_t) i;
}
