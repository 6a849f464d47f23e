/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <limits.h>
#include <stdbool.h>

#include "frame.h"
#include "util.h"

#define FRAME_SIZE_MAX (FRAME_PREFIX_SIZE + FRAME_BODY_MAX)
/* Room offered to a reader; the buffer grows past it only when a larger frame is pending. */
#define FRAME_READ_CHUNK (16u * 1024u)

struct FrameDecoder {
        char *buf;
        size_t allocated;
        size_t start; /* first byte not yet returned by frame_decoder_next() */
        size_t end;   /* end of the received bytes; never above FRAME_SIZE_MAX */
};

int frame_decoder_new(FrameDecoder **ret) {
        assert(ret);

        FrameDecoder *d = calloc(1, sizeof(FrameDecoder));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

FrameDecoder *frame_decoder_free(FrameDecoder *d) {
        if (!d)
                return NULL;
        free(d->buf);
        free(d);
        return NULL;
}

/* Drops the bytes already returned and grows the buffer so that want more bytes fit, as
 * far as the limit allows. */
static int frame_decoder_reserve(FrameDecoder *d, size_t want) {
        if (d->start > 0) {
                memmove(d->buf, d->buf + d->start, d->end - d->start);
                d->end -= d->start;
                d->start = 0;
        }

        if (want > FRAME_SIZE_MAX - d->end)
                want = FRAME_SIZE_MAX - d->end;
        if (d->allocated - d->end >= want)
                return 0;

        size_t n = d->end + want;
        if (n < d->allocated * 2)
                n = d->allocated * 2 < FRAME_SIZE_MAX ? d->allocated * 2 : FRAME_SIZE_MAX;
        char *p = realloc(d->buf, n);
        if (!p)
                return -ENOMEM;
        d->buf = p;
        d->allocated = n;
        return 0;
}

int frame_decoder_get_space(FrameDecoder *d, void **ret_buf, size_t *ret_size) {
        assert(d);
        assert(ret_buf);
        assert(ret_size);

        int r = frame_decoder_reserve(d, FRAME_READ_CHUNK);
        if (r < 0)
                return r;
        if (d->end == d->allocated)
                return -ENOBUFS;

        *ret_buf = d->buf + d->end;
        *ret_size = d->allocated - d->end;
        return 0;
}

void frame_decoder_commit(FrameDecoder *d, size_t n) {
        assert(d);
        assert(n <= d->allocated - d->end);

        d->end += n;
}

int frame_decoder_feed(FrameDecoder *d, const void *data, size_t size) {
        assert(d);
        assert(data || size == 0);

        if (size == 0)
                return 0;
        int r = frame_decoder_reserve(d, size);
        if (r < 0)
                return r;
        if (d->allocated - d->end < size)
                return -ENOBUFS;

        memcpy(d->buf + d->end, data, size);
        d->end += size;
        return 0;
}

int frame_decoder_next(FrameDecoder *d, char **ret_body, size_t *ret_size) {
        assert(d);
        assert(ret_body);
        assert(ret_size);

        size_t pending = d->end - d->start;
        if (pending < FRAME_PREFIX_SIZE)
                return 0;

        const unsigned char *p = (const unsigned char *) d->buf + d->start;
        uint32_t length = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
        if (length == 0 || length > FRAME_BODY_MAX)
                return -EMSGSIZE;
        if (pending - FRAME_PREFIX_SIZE < length)
                return 0;

        char *body = malloc(length + 1);
        if (!body)
                return -ENOMEM;
        memcpy(body, p + FRAME_PREFIX_SIZE, length);
        body[length] = '\0';
        d->start += FRAME_PREFIX_SIZE + length;

        *ret_body = body;
        *ret_size = length;
        return 1;
}

int frame_encode(const char *body, size_t size, char **ret, size_t *ret_size) {
        assert(body || size == 0);
        assert(ret);
        assert(ret_size);

        if (size == 0 || size > FRAME_BODY_MAX)
                return -EMSGSIZE;

        unsigned char *frame = malloc(FRAME_PREFIX_SIZE + size);
        if (!frame)
                return -ENOMEM;
        frame[0] = (unsigned char) (size >> 24);
        frame[1] = (unsigned char) (size >> 16);
        frame[2] = (unsigned char) (size >> 8);
        frame[3] = (unsigned char) size;
        memcpy(frame + FRAME_PREFIX_SIZE, body, size);

        *ret = (char *) frame;
        *ret_size = FRAME_PREFIX_SIZE + size;
        return 0;
}

int frame_encode_json(const cJSON *msg, char **ret, size_t *ret_size) {
        assert(msg);

        _cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
        if (!text)
                return -ENOMEM;
        return frame_encode(text, strlen(text), ret, ret_size);
}

struct JsonRpcMessage {
        cJSON *root;
        JsonRpcKind kind;
        const char *method;
        const cJSON *params;
        const cJSON *id;
        const cJSON *result;
        const cJSON *error;
};

JsonRpcMessage *jsonrpc_message_free(JsonRpcMessage *m) {
        if (!m)
                return NULL;
        cJSON_Delete(m->root);
        free(m);
        return NULL;
}

static bool only_json_whitespace(const char *p, size_t size) {
        for (size_t i = 0; i < size; i++)
                if (!strchr(" \t\n\r", p[i]))
                        return false;
        return true;
}

/* Fills in the members of m from its root object, or explains what is wrong. */
static int jsonrpc_classify(JsonRpcMessage *m, char **reterr) {
        const cJSON *root = m->root;

        if (!cJSON_IsObject(root))
                return error_set(reterr, -EINVAL, "invalid message: not a JSON object");
        const char *version = json_get_string(root, "jsonrpc");
        if (!version || !streq(version, "2.0"))
                return error_set(reterr, -EINVAL, "invalid message: 'jsonrpc' must be \"2.0\"");

        m->id = cJSON_GetObjectItemCaseSensitive(root, "id");
        if (m->id && !cJSON_IsString(m->id) && !cJSON_IsNumber(m->id) && !cJSON_IsNull(m->id))
                return error_set(reterr, -EINVAL, "invalid message: 'id' must be a string, a number or null");

        const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
        m->result = cJSON_GetObjectItemCaseSensitive(root, "result");
        m->error = cJSON_GetObjectItemCaseSensitive(root, "error");

        if (method) {
                if (!cJSON_IsString(method))
                        return error_set(reterr, -EINVAL, "invalid request: 'method' must be a string");
                m->params = cJSON_GetObjectItemCaseSensitive(root, "params");
                if (m->params && !cJSON_IsObject(m->params) && !cJSON_IsArray(m->params))
                        return error_set(reterr, -EINVAL, "invalid request: 'params' must be an object or an array");
                if (m->result || m->error)
                        return error_set(reterr, -EINVAL, "invalid request: 'result' and 'error' belong in a response");
                m->method = method->valuestring;
                m->kind = m->id ? JSONRPC_KIND_REQUEST : JSONRPC_KIND_NOTIFICATION;
                return 0;
        }

        if (!m->result && !m->error)
                return error_set(reterr, -EINVAL, "invalid message: one of 'method', 'result' or 'error' is required");
        if (m->result && m->error)
                return error_set(reterr, -EINVAL, "invalid response: exactly one of 'result' and 'error' is allowed");
        if (!m->id)
                return error_set(reterr, -EINVAL, "invalid response: 'id' is required");
        if (m->error) {
                if (!cJSON_IsObject(m->error))
                        return error_set(reterr, -EINVAL, "invalid response: 'error' must be an object");
                if (!json_is_int(cJSON_GetObjectItemCaseSensitive(m->error, "code"), INT_MIN, INT_MAX))
                        return error_set(reterr, -EINVAL, "invalid response: 'error.code' must be an integer");
                if (!json_get_string(m->error, "message"))
                        return error_set(reterr, -EINVAL, "invalid response: 'error.message' must be a string");
        }
        m->kind = JSONRPC_KIND_RESPONSE;
        return 0;
}

int jsonrpc_parse(const char *body, size_t size, JsonRpcMessage **ret, char **reterr) {
        assert(body || size == 0);
        assert(ret);

        /* cJSON would cut strings at a NUL and accept what follows the first value. */
        if (size == 0 || memchr(body, '\0', size))
                return error_set(reterr, -EBADMSG, "parse error: not JSON");
        const char *end = NULL;
        _cleanup_json_ cJSON *root = cJSON_ParseWithLengthOpts(body, size, &end, false);
        if (!root || !only_json_whitespace(end, size - (size_t) (end - body)))
                return error_set(reterr, -EBADMSG, "parse error: not JSON");

        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = calloc(1, sizeof(JsonRpcMessage));
        if (!m)
                return -ENOMEM;
        m->root = TAKE_PTR(root);

        int r = jsonrpc_classify(m, reterr);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

JsonRpcKind jsonrpc_message_kind(const JsonRpcMessage *m) {
        assert(m);
        return m->kind;
}

const char *jsonrpc_message_method(const JsonRpcMessage *m) {
        assert(m);
        return m->method;
}

const cJSON *jsonrpc_message_params(const JsonRpcMessage *m) {
        assert(m);
        return m->params;
}

const cJSON *jsonrpc_message_id(const JsonRpcMessage *m) {
        assert(m);
        return m->id;
}

const cJSON *jsonrpc_message_result(const JsonRpcMessage *m) {
        assert(m);
        return m->result;
}

const cJSON *jsonrpc_message_error(const JsonRpcMessage *m) {
        assert(m);
        return m->error;
}

/* Adds item to object, taking ownership of it. false when item is NULL (its allocation
 * failed) or cannot be added. */
static bool json_add(cJSON *object, const char *name, cJSON *item) {
        if (!item)
                return false;
        if (!cJSON_AddItemToObject(object, name, item)) {
                cJSON_Delete(item);
                return false;
        }
        return true;
}

static cJSON *jsonrpc_new(void) {
        _cleanup_json_ cJSON *m = cJSON_CreateObject();
        if (!m || !json_add(m, "jsonrpc", cJSON_CreateString("2.0")))
                return NULL;
        return TAKE_PTR(m);
}

cJSON *jsonrpc_notification(const char *method, cJSON *params) {
        assert(method);

        _cleanup_json_ cJSON *p = params;
        _cleanup_json_ cJSON *m = jsonrpc_new();
        if (!m || !json_add(m, "method", cJSON_CreateString(method)))
                return NULL;
        if (p && !json_add(m, "params", TAKE_PTR(p)))
                return NULL;
        return TAKE_PTR(m);
}

cJSON *jsonrpc_request(int64_t id, const char *method, cJSON *params) {
        _cleanup_json_ cJSON *m = jsonrpc_notification(method, params);
        if (!m || !json_add(m, "id", cJSON_CreateNumber((double) id)))
                return NULL;
        return TAKE_PTR(m);
}

/* {"jsonrpc": "2.0", "id": <copy of id>, name: value}, taking ownership of value. */
static cJSON *jsonrpc_response(const cJSON *id, const char *name, cJSON *value) {
        _cleanup_json_ cJSON *v = value;
        _cleanup_json_ cJSON *m = jsonrpc_new();
        if (!m || !json_add(m, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull()) ||
            !json_add(m, name, TAKE_PTR(v)))
                return NULL;
        return TAKE_PTR(m);
}

cJSON *jsonrpc_result(const cJSON *id, cJSON *result) {
        return jsonrpc_response(id, "result", result);
}

cJSON *jsonrpc_error(const cJSON *id, int code, const char *message) {
        assert(message);

        _cleanup_json_ cJSON *e = cJSON_CreateObject();
        if (!e || !json_add(e, "code", cJSON_CreateNumber(code)) ||
            !json_add(e, "message", cJSON_CreateString(message)))
                return NULL;
        return jsonrpc_response(id, "error", TAKE_PTR(e));
}
