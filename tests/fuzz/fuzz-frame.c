/* SPDX-License-Identifier: Apache-2.0 */
/* Input: one byte giving the chunk size (0 means 1), then a byte stream that is fed to a
 * FrameDecoder in chunks of that size; every decoded body goes through jsonrpc_parse(). */
#include <assert.h>
#include <stdint.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Answering a request with its own params must give a frame that parses as a response. */
static void echo_request(const JsonRpcMessage *m) {
        const cJSON *params = jsonrpc_message_params(m);
        _cleanup_json_ cJSON *reply = jsonrpc_result(jsonrpc_message_id(m),
                                                     params ? cJSON_Duplicate(params, true) : cJSON_CreateNull());
        _cleanup_free_ char *frame = NULL;
        size_t frame_size;
        if (!reply || frame_encode_json(reply, &frame, &frame_size) < 0)
                return;

        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *back = NULL;
        int r = jsonrpc_parse(frame + FRAME_PREFIX_SIZE, frame_size - FRAME_PREFIX_SIZE, &back, NULL);
        assert(r == -ENOMEM || (r >= 0 && jsonrpc_message_kind(back) == JSONRPC_KIND_RESPONSE));
}

static void parse_body(const char *body, size_t size) {
        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = NULL;
        _cleanup_free_ char *error = NULL;
        int r = jsonrpc_parse(body, size, &m, &error);
        if (r < 0)
                assert(r == -ENOMEM || error);
        else if (jsonrpc_message_kind(m) == JSONRPC_KIND_REQUEST)
                echo_request(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        size_t chunk = data[0] ? data[0] : 1;
        data++, size--;

        _cleanup_(frame_decoder_freep) FrameDecoder *d = NULL;
        if (frame_decoder_new(&d) < 0)
                return 0;

        for (size_t done = 0; done < size;) {
                size_t n = size - done < chunk ? size - done : chunk;
                if (frame_decoder_feed(d, data + done, n) < 0)
                        return 0;
                done += n;

                int r;
                char *body;
                size_t body_size;
                while ((r = frame_decoder_next(d, &body, &body_size)) > 0) {
                        assert(body_size > 0 && body_size <= FRAME_BODY_MAX && body[body_size] == '\0');
                        parse_body(body, body_size);
                        free(body);
                }
                if (r < 0)
                        return 0;
        }
        return 0;
}
