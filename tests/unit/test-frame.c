/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/frame.h"
#include "test.h"
#include "util.h"

static const char request_text[] = "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":7}";

/* request_text as a frame, in a static buffer. */
static const char *request_frame(size_t *ret_size) {
        static char frame[FRAME_PREFIX_SIZE + sizeof(request_text)];
        size_t n = strlen(request_text);
        frame[0] = frame[1] = frame[2] = 0;
        frame[3] = (char) n;
        memcpy(frame + FRAME_PREFIX_SIZE, request_text, n);
        *ret_size = FRAME_PREFIX_SIZE + n;
        return frame;
}

static void assert_next_is_request(FrameDecoder *d) {
        _cleanup_free_ char *body = NULL;
        size_t size;
        ASSERT_EQ(frame_decoder_next(d, &body, &size), 1);
        ASSERT_EQ(size, strlen(request_text));
        ASSERT_STREQ(body, request_text);
}

static void assert_next_needs_more(FrameDecoder *d) {
        char *body = NULL;
        size_t size;
        ASSERT_EQ(frame_decoder_next(d, &body, &size), 0);
        ASSERT_TRUE(!body);
}

TEST(encode_decode_round_trip) {
        _cleanup_json_ cJSON *msg = jsonrpc_request(7, "status", NULL);
        ASSERT_TRUE(msg);
        _cleanup_free_ char *frame = NULL;
        size_t frame_size;
        ASSERT_OK(frame_encode_json(msg, &frame, &frame_size));
        ASSERT_EQ(frame_size, FRAME_PREFIX_SIZE + strlen(request_text));
        ASSERT_EQ(memcmp(frame, "\0\0\0", 3), 0);
        ASSERT_EQ(frame[3], (char) strlen(request_text));

        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        ASSERT_OK(frame_decoder_feed(d, frame, frame_size));
        assert_next_is_request(d);
        assert_next_needs_more(d);
}

TEST(encode_rejects_empty_and_oversized_bodies) {
        char *frame = NULL;
        size_t size;
        ASSERT_EQ(frame_encode("", 0, &frame, &size), -EMSGSIZE);
        _cleanup_free_ char *big = calloc(1, FRAME_BODY_MAX + 1);
        ASSERT_TRUE(big);
        ASSERT_EQ(frame_encode(big, FRAME_BODY_MAX + 1, &frame, &size), -EMSGSIZE);
        ASSERT_TRUE(!frame);
}

TEST(feed_byte_by_byte) {
        size_t size;
        const char *frame = request_frame(&size);
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        for (size_t i = 0; i < size; i++) {
                assert_next_needs_more(d);
                ASSERT_OK(frame_decoder_feed(d, frame + i, 1));
        }
        assert_next_is_request(d);
        assert_next_needs_more(d);
}

TEST(several_frames_in_one_feed) {
        size_t size;
        const char *frame = request_frame(&size);
        char stream[3 * sizeof(request_text) + 3 * FRAME_PREFIX_SIZE];
        for (size_t i = 0; i < 3; i++)
                memcpy(stream + i * size, frame, size);
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        /* Two and a half frames, then the rest. */
        ASSERT_OK(frame_decoder_feed(d, stream, 2 * size + size / 2));
        assert_next_is_request(d);
        assert_next_is_request(d);
        assert_next_needs_more(d);
        ASSERT_OK(frame_decoder_feed(d, stream + 2 * size + size / 2, size - size / 2));
        assert_next_is_request(d);
        assert_next_needs_more(d);
}

TEST(split_prefix) {
        size_t size;
        const char *frame = request_frame(&size);
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        ASSERT_OK(frame_decoder_feed(d, frame, 3));
        assert_next_needs_more(d);
        ASSERT_OK(frame_decoder_feed(d, frame + 3, 1));
        assert_next_needs_more(d);
        ASSERT_OK(frame_decoder_feed(d, frame + 4, size - 4));
        assert_next_is_request(d);
}

TEST(oversized_length_rejected_from_prefix) {
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        /* FRAME_BODY_MAX + 1 = 0x00100001 */
        ASSERT_OK(frame_decoder_feed(d, "\x00\x10\x00", 3));
        assert_next_needs_more(d);
        ASSERT_OK(frame_decoder_feed(d, "\x01", 1));
        char *body = NULL;
        size_t size;
        ASSERT_EQ(frame_decoder_next(d, &body, &size), -EMSGSIZE);
        /* The stream cannot be resynchronised: the error stays. */
        ASSERT_OK(frame_decoder_feed(d, "{}", 2));
        ASSERT_EQ(frame_decoder_next(d, &body, &size), -EMSGSIZE);
        ASSERT_TRUE(!body);
}

TEST(largest_length_waits_for_body) {
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        ASSERT_OK(frame_decoder_feed(d, "\x00\x10\x00\x00", 4));
        assert_next_needs_more(d);
}

TEST(zero_length_rejected) {
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        ASSERT_OK(frame_decoder_feed(d, "\0\0\0\0", 4));
        char *body = NULL;
        size_t size;
        ASSERT_EQ(frame_decoder_next(d, &body, &size), -EMSGSIZE);
}

TEST(largest_frame_through_get_space) {
        _cleanup_free_ char *body = malloc(FRAME_BODY_MAX);
        ASSERT_TRUE(body);
        memset(body, ' ', FRAME_BODY_MAX);
        memcpy(body, "{}", 2);
        _cleanup_free_ char *frame = NULL;
        size_t frame_size;
        ASSERT_OK(frame_encode(body, FRAME_BODY_MAX, &frame, &frame_size));

        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        /* A reader copying as much as it is offered, plus the start of a second frame. */
        size_t done = 0;
        while (done < frame_size) {
                void *buf;
                size_t room;
                assert_next_needs_more(d);
                ASSERT_OK(frame_decoder_get_space(d, &buf, &room));
                ASSERT_TRUE(room > 0);
                size_t n = room < frame_size - done ? room : frame_size - done;
                memcpy(buf, frame + done, n);
                frame_decoder_commit(d, n);
                done += n;
        }
        /* Full: nothing more fits until the frame is taken out. */
        ASSERT_EQ(frame_decoder_feed(d, "\0", 1), -ENOBUFS);
        void *buf;
        size_t room;
        ASSERT_EQ(frame_decoder_get_space(d, &buf, &room), -ENOBUFS);

        _cleanup_free_ char *got = NULL;
        size_t got_size;
        ASSERT_EQ(frame_decoder_next(d, &got, &got_size), 1);
        ASSERT_EQ(got_size, FRAME_BODY_MAX);
        ASSERT_EQ(memcmp(got, body, FRAME_BODY_MAX), 0);

        size_t msg_size;
        const char *msg = request_frame(&msg_size);
        ASSERT_OK(frame_decoder_get_space(d, &buf, &room));
        ASSERT_TRUE(room >= msg_size);
        memcpy(buf, msg, msg_size);
        frame_decoder_commit(d, msg_size);
        assert_next_is_request(d);
}

TEST(feed_refuses_more_than_a_frame) {
        _cleanup_free_ char *stream = calloc(1, FRAME_PREFIX_SIZE + FRAME_BODY_MAX + 1);
        ASSERT_TRUE(stream);
        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        ASSERT_OK(frame_decoder_new(&d));
        ASSERT_EQ(frame_decoder_feed(d, stream, FRAME_PREFIX_SIZE + FRAME_BODY_MAX + 1), -ENOBUFS);
        ASSERT_OK(frame_decoder_feed(d, stream, FRAME_PREFIX_SIZE + FRAME_BODY_MAX));
}

static JsonRpcMessage *parse_ok(const char *text) {
        JsonRpcMessage *m = NULL;
        _cleanup_free_ char *error = NULL;
        int r = jsonrpc_parse(text, strlen(text), &m, &error);
        if (r < 0)
                fprintf(stderr, "%s: %s\n", text, error);
        ASSERT_OK(r);
        ASSERT_TRUE(!error);
        return m;
}

TEST(classify_request) {
        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m =
                parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"settings.push\",\"params\":{\"a\":1},\"id\":\"x\"}");
        ASSERT_EQ(jsonrpc_message_kind(m), JSONRPC_KIND_REQUEST);
        ASSERT_STREQ(jsonrpc_message_method(m), "settings.push");
        ASSERT_TRUE(cJSON_IsObject(jsonrpc_message_params(m)));
        ASSERT_STREQ(jsonrpc_message_id(m)->valuestring, "x");
        ASSERT_TRUE(!jsonrpc_message_result(m));
        ASSERT_TRUE(!jsonrpc_message_error(m));
}

TEST(classify_request_with_null_id_and_array_params) {
        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m =
                parse_ok(" {\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":[1],\"id\":null}\r\n");
        ASSERT_EQ(jsonrpc_message_kind(m), JSONRPC_KIND_REQUEST);
        ASSERT_TRUE(cJSON_IsNull(jsonrpc_message_id(m)));
        ASSERT_TRUE(cJSON_IsArray(jsonrpc_message_params(m)));
}

TEST(classify_notification) {
        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m =
                parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"lock.tampered\"}");
        ASSERT_EQ(jsonrpc_message_kind(m), JSONRPC_KIND_NOTIFICATION);
        ASSERT_STREQ(jsonrpc_message_method(m), "lock.tampered");
        ASSERT_TRUE(!jsonrpc_message_params(m));
        ASSERT_TRUE(!jsonrpc_message_id(m));
}

TEST(classify_responses) {
        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *ok =
                parse_ok("{\"jsonrpc\":\"2.0\",\"result\":{\"state\":\"locked\"},\"id\":7}");
        ASSERT_EQ(jsonrpc_message_kind(ok), JSONRPC_KIND_RESPONSE);
        ASSERT_TRUE(!jsonrpc_message_method(ok));
        ASSERT_EQ(jsonrpc_message_id(ok)->valuedouble, 7);
        ASSERT_STREQ(json_get_string(jsonrpc_message_result(ok), "state"), "locked");
        ASSERT_TRUE(!jsonrpc_message_error(ok));

        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *failed =
                parse_ok("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"no\",\"data\":1},\"id\":null}");
        ASSERT_EQ(jsonrpc_message_kind(failed), JSONRPC_KIND_RESPONSE);
        ASSERT_TRUE(!jsonrpc_message_result(failed));
        ASSERT_EQ(cJSON_GetObjectItem(jsonrpc_message_error(failed), "code")->valueint, JSONRPC_METHOD_NOT_FOUND);
}

TEST(parse_errors) {
        static const struct {
                const char *text;
                int error;
                const char *message;
        } cases[] = {
                { "", -EBADMSG, "parse error: not JSON" },
                { "{\"jsonrpc\":", -EBADMSG, "parse error: not JSON" },
                { "{} {}", -EBADMSG, "parse error: not JSON" },
                { "[{\"jsonrpc\":\"2.0\",\"method\":\"status\"}]", -EINVAL, "invalid message: not a JSON object" },
                { "\"x\"", -EINVAL, "invalid message: not a JSON object" },
                { "{\"method\":\"status\",\"id\":1}", -EINVAL, "invalid message: 'jsonrpc' must be \"2.0\"" },
                { "{\"jsonrpc\":\"1.0\",\"method\":\"status\",\"id\":1}", -EINVAL,
                  "invalid message: 'jsonrpc' must be \"2.0\"" },
                { "{\"jsonrpc\":2.0,\"method\":\"status\",\"id\":1}", -EINVAL,
                  "invalid message: 'jsonrpc' must be \"2.0\"" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":{}}", -EINVAL,
                  "invalid message: 'id' must be a string, a number or null" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":true}", -EINVAL,
                  "invalid message: 'id' must be a string, a number or null" },
                { "{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}", -EINVAL, "invalid request: 'method' must be a string" },
                { "{\"jsonrpc\":\"2.0\",\"method\":null}", -EINVAL, "invalid request: 'method' must be a string" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"params\":\"a\"}", -EINVAL,
                  "invalid request: 'params' must be an object or an array" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"params\":null,\"id\":1}", -EINVAL,
                  "invalid request: 'params' must be an object or an array" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"result\":1,\"id\":1}", -EINVAL,
                  "invalid request: 'result' and 'error' belong in a response" },
                { "{\"jsonrpc\":\"2.0\",\"id\":1}", -EINVAL,
                  "invalid message: one of 'method', 'result' or 'error' is required" },
                { "{\"jsonrpc\":\"2.0\",\"result\":1,\"error\":{\"code\":1,\"message\":\"x\"},\"id\":1}", -EINVAL,
                  "invalid response: exactly one of 'result' and 'error' is allowed" },
                { "{\"jsonrpc\":\"2.0\",\"result\":1}", -EINVAL, "invalid response: 'id' is required" },
                { "{\"jsonrpc\":\"2.0\",\"error\":\"bad\",\"id\":1}", -EINVAL, "invalid response: 'error' must be an object" },
                { "{\"jsonrpc\":\"2.0\",\"error\":{\"message\":\"x\"},\"id\":1}", -EINVAL,
                  "invalid response: 'error.code' must be an integer" },
                { "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1.5,\"message\":\"x\"},\"id\":1}", -EINVAL,
                  "invalid response: 'error.code' must be an integer" },
                { "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1e300,\"message\":\"x\"},\"id\":1}", -EINVAL,
                  "invalid response: 'error.code' must be an integer" },
                { "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":\"1\",\"message\":\"x\"},\"id\":1}", -EINVAL,
                  "invalid response: 'error.code' must be an integer" },
                { "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1},\"id\":1}", -EINVAL,
                  "invalid response: 'error.message' must be a string" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                JsonRpcMessage *m = NULL;
                _cleanup_free_ char *error = NULL;
                ASSERT_EQ(jsonrpc_parse(cases[i].text, strlen(cases[i].text), &m, &error), cases[i].error);
                ASSERT_STREQ(error, cases[i].message);
                ASSERT_TRUE(!m);
        }
}

TEST(parse_rejects_nul_byte) {
        static const char text[] = "{\"jsonrpc\":\"2.0\",\"method\":\"status\0evil\"}";
        JsonRpcMessage *m = NULL;
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(jsonrpc_parse(text, sizeof(text) - 1, &m, &error), -EBADMSG);
        ASSERT_STREQ(error, "parse error: not JSON");
}

static void assert_json(cJSON *msg, const char *expected) {
        ASSERT_TRUE(msg);
        _cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
        ASSERT_STREQ(text, expected);
        cJSON_Delete(msg);
}

TEST(builders) {
        assert_json(jsonrpc_request(7, "status", NULL), request_text);
        assert_json(jsonrpc_request(1, "events.subscribe", cJSON_CreateArray()),
                    "{\"jsonrpc\":\"2.0\",\"method\":\"events.subscribe\",\"params\":[],\"id\":1}");
        assert_json(jsonrpc_notification("lock.restored", cJSON_CreateObject()),
                    "{\"jsonrpc\":\"2.0\",\"method\":\"lock.restored\",\"params\":{}}");
        assert_json(jsonrpc_notification("lock.tampered", NULL), "{\"jsonrpc\":\"2.0\",\"method\":\"lock.tampered\"}");

        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *req =
                parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":\"abc\"}");
        assert_json(jsonrpc_result(jsonrpc_message_id(req), cJSON_CreateTrue()),
                    "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":true}");
        assert_json(jsonrpc_error(jsonrpc_message_id(req), JSONRPC_PERMISSION_DENIED, "root only"),
                    "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"error\":{\"code\":-32001,\"message\":\"root only\"}}");
        assert_json(jsonrpc_error(NULL, JSONRPC_PARSE_ERROR, "parse error: not JSON"),
                    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error: not JSON\"}}");
        ASSERT_TRUE(!jsonrpc_result(NULL, NULL));
}

TEST(built_messages_parse_back) {
        cJSON *built[] = {
                jsonrpc_request(3, "container.register", cJSON_CreateObject()),
                jsonrpc_notification("policy.applied", NULL),
                jsonrpc_result(NULL, cJSON_CreateString("ok")),
                jsonrpc_error(NULL, JSONRPC_REJECTED, "stale settings"),
        };
        static const JsonRpcKind kinds[] = {
                JSONRPC_KIND_REQUEST, JSONRPC_KIND_NOTIFICATION, JSONRPC_KIND_RESPONSE, JSONRPC_KIND_RESPONSE,
        };
        for (size_t i = 0; i < ELEMENTSOF(built); i++) {
                _cleanup_json_ cJSON *msg = built[i];
                ASSERT_TRUE(msg);
                _cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
                _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = parse_ok(text);
                ASSERT_EQ(jsonrpc_message_kind(m), kinds[i]);
        }
}
