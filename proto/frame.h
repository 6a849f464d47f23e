/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The control API's wire format: each frame is a 4-byte big-endian body length followed by
 * the body, one JSON-RPC 2.0 object. A length of 0 or more than FRAME_BODY_MAX is invalid.
 * Pure code: no I/O, the caller moves the bytes. */

#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define FRAME_PREFIX_SIZE 4u
#define FRAME_BODY_MAX (1024u * 1024u)

/* Reassembles frames from a byte stream cut at arbitrary points. It never holds more than
 * FRAME_PREFIX_SIZE + FRAME_BODY_MAX bytes, and a bad length is reported as soon as its
 * 4 bytes are in, without waiting for the body. */
typedef struct FrameDecoder FrameDecoder;

int frame_decoder_new(FrameDecoder **ret);
FrameDecoder *frame_decoder_free(FrameDecoder *d);
DEFINE_POINTER_CLEANUP(FrameDecoder, frame_decoder_free);

/* Zero-copy input for a socket reader: where the next read() may write (*ret_size >= 1),
 * then frame_decoder_commit() with the number of bytes read. -ENOBUFS when the decoder is
 * full, which only happens if frame_decoder_next() was not called until it returned 0. */
int frame_decoder_get_space(FrameDecoder *d, void **ret_buf, size_t *ret_size);
void frame_decoder_commit(FrameDecoder *d, size_t n);

/* Copies bytes the caller already holds; several frames or pieces of frames are fine.
 * -ENOBUFS (and nothing is taken) if they do not fit, see frame_decoder_get_space(). */
int frame_decoder_feed(FrameDecoder *d, const void *data, size_t size);

/* Returns 1 and the next complete body (malloc'd, NUL-terminated, *ret_size excludes the
 * NUL), 0 when more bytes are needed, -EMSGSIZE when the announced length is 0 or above
 * FRAME_BODY_MAX. The error is sticky: the stream cannot be resynchronised, drop it. */
int frame_decoder_next(FrameDecoder *d, char **ret_body, size_t *ret_size);

/* Prefixes body with its length into a new buffer. -EMSGSIZE for an empty or oversized body. */
int frame_encode(const char *body, size_t size, char **ret, size_t *ret_size);
/* The same for a message serialised without whitespace. */
int frame_encode_json(const cJSON *msg, char **ret, size_t *ret_size);

/* Standard JSON-RPC 2.0 error codes, then Stockade's own. */
typedef enum JsonRpcErrorCode {
        JSONRPC_PARSE_ERROR = -32700,
        JSONRPC_INVALID_REQUEST = -32600,
        JSONRPC_METHOD_NOT_FOUND = -32601,
        JSONRPC_INVALID_PARAMS = -32602,
        JSONRPC_INTERNAL_ERROR = -32603,
        JSONRPC_PERMISSION_DENIED = -32001,
        JSONRPC_REJECTED = -32002,
} JsonRpcErrorCode;

typedef enum JsonRpcKind {
        JSONRPC_KIND_REQUEST,      /* method and id */
        JSONRPC_KIND_NOTIFICATION, /* method, no id */
        JSONRPC_KIND_RESPONSE,     /* id and exactly one of result and error */
} JsonRpcKind;

typedef struct JsonRpcMessage JsonRpcMessage;

/* Parses and validates one frame body (batches are not supported; members other than the
 * standard ones are ignored). On failure *reterr holds one line such as "invalid request:
 * 'method' must be a string", and the return value says how to answer: -EBADMSG when the
 * body is not one JSON value ("parse error: ...", JSONRPC_PARSE_ERROR), -EINVAL when it is
 * not a valid message ("invalid message/request/response: ...", JSONRPC_INVALID_REQUEST);
 * either way with a null id. */
int jsonrpc_parse(const char *body, size_t size, JsonRpcMessage **ret, char **reterr);
JsonRpcMessage *jsonrpc_message_free(JsonRpcMessage *m);
DEFINE_POINTER_CLEANUP(JsonRpcMessage, jsonrpc_message_free);

/* Accessors return NULL for members the message does not have; the pointers live as long
 * as the message. params is an object or an array; id is a string, a number or null;
 * error is an object with an integer "code" and a string "message". */
JsonRpcKind jsonrpc_message_kind(const JsonRpcMessage *m);
const char *jsonrpc_message_method(const JsonRpcMessage *m);
const cJSON *jsonrpc_message_params(const JsonRpcMessage *m);
const cJSON *jsonrpc_message_id(const JsonRpcMessage *m);
const cJSON *jsonrpc_message_result(const JsonRpcMessage *m);
const cJSON *jsonrpc_message_error(const JsonRpcMessage *m);

/* Message builders; NULL when out of memory. They take ownership of params and result,
 * freeing them even on failure, so a builder's result can be passed in directly: a NULL
 * result (a failed allocation) gives NULL, a NULL params is left out. id is copied (NULL
 * means null), so a response can echo jsonrpc_message_id() of the request it answers;
 * request ids are counters, exact up to 2^53. */
cJSON *jsonrpc_request(int64_t id, const char *method, cJSON *params);
cJSON *jsonrpc_notification(const char *method, cJSON *params);
cJSON *jsonrpc_result(const cJSON *id, cJSON *result);
cJSON *jsonrpc_error(const cJSON *id, int code, const char *message);
