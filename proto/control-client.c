/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <poll.h>
#include <time.h>

#include "proto/address.h"
#include "proto/control-client.h"
#include "proto/frame.h"
#include "util.h"

struct ControlConnection {
        int fd;
        FrameDecoder *decoder;
        int64_t last_id;
        cJSON *events; /* an array used as a queue of notifications not yet handed out */
        size_t n_events;
};

ControlConnection *control_client_free(ControlConnection *c) {
        if (!c)
                return NULL;
        safe_close(c->fd);
        frame_decoder_free(c->decoder);
        cJSON_Delete(c->events);
        free(c);
        return NULL;
}

int control_client_connect(const char *address, ControlConnection **ret, char **reterr) {
        assert(address);
        assert(ret);

        ControlAddress a;
        int r = control_address_parse(address, &a, reterr);
        if (r < 0)
                return r;

        _cleanup_(control_client_freep) ControlConnection *c = calloc(1, sizeof(ControlConnection));
        if (!c)
                return error_set(reterr, -ENOMEM, "out of memory");
        c->fd = -EBADF;
        c->events = cJSON_CreateArray();
        if (!c->events || frame_decoder_new(&c->decoder) < 0)
                return error_set(reterr, -ENOMEM, "out of memory");

        c->fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return error_set(reterr, -errno, "cannot create a socket for '%s': %s", address, strerror(errno));
        /* Bounds the connect (a unix socket waits this long for room in a full accept queue,
         * then fails with EAGAIN; vsock has its own connect timeout) and each write. */
        struct timeval timeout = { .tv_sec = CONTROL_CLIENT_WRITE_TIMEOUT_MS / 1000 };
        if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0)
                return error_set(reterr, -errno, "cannot set a timeout on the socket for '%s': %s", address, strerror(errno));
        if (connect(c->fd, &a.sa, a.size) < 0) {
                if (errno == EAGAIN)
                        return error_set(reterr, -ETIMEDOUT, "cannot connect to '%s': its accept queue stayed full for %d s",
                                         address, CONTROL_CLIENT_WRITE_TIMEOUT_MS / 1000);
                return error_set(reterr, -errno, "cannot connect to '%s': %s", address, strerror(errno));
        }

        *ret = TAKE_PTR(c);
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the next message: 1 and the message, or 0 when timeout_ms (-1: no limit) passes. */
static int connection_receive(ControlConnection *c, int timeout_ms, JsonRpcMessage **ret, char **reterr) {
        int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

        for (;;) {
                _cleanup_free_ char *body = NULL, *error = NULL;
                size_t size;
                int r = frame_decoder_next(c->decoder, &body, &size);
                if (r == -EMSGSIZE)
                        return error_set(reterr, -EPROTO, "the agent sent an invalid frame length");
                if (r < 0)
                        return error_set(reterr, r, "cannot read from the agent: %s", strerror(-r));
                if (r > 0) {
                        r = jsonrpc_parse(body, size, ret, &error);
                        if (r < 0)
                                return error_set(reterr, r == -ENOMEM ? r : -EPROTO, "invalid message from the agent: %s",
                                                 error ?: strerror(-r));
                        return 1;
                }

                int wait = -1;
                if (deadline >= 0) {
                        int64_t left = deadline - now_ms();
                        wait = left > 0 ? (int) left : 0;
                }
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                r = poll(&p, 1, wait);
                if (r < 0 && errno != EINTR)
                        return error_set(reterr, -errno, "cannot wait for the agent: %s", strerror(errno));
                if (r == 0)
                        return 0;
                if (r < 0)
                        continue;

                void *buf;
                r = frame_decoder_get_space(c->decoder, &buf, &size);
                if (r < 0)
                        return error_set(reterr, r, "cannot read from the agent: %s", strerror(-r));
                ssize_t n = read(c->fd, buf, size);
                if (n < 0 && errno != EINTR)
                        return error_set(reterr, -errno, "cannot read from the agent: %s", strerror(errno));
                if (n == 0)
                        return error_set(reterr, -ECONNRESET, "the agent closed the connection");
                if (n > 0)
                        frame_decoder_commit(c->decoder, (size_t) n);
        }
}

/* The result of the reply m, or its error turned into an errno and *reterr. */
static int reply_result(const JsonRpcMessage *m, cJSON **ret_result, char **reterr) {
        const cJSON *error = jsonrpc_message_error(m);
        if (error) {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
                return error_set(reterr, code->valuedouble == JSONRPC_PERMISSION_DENIED ? -EPERM : -EREMOTEIO, "%s",
                                 json_get_string(error, "message"));
        }

        if (ret_result) {
                cJSON *result = cJSON_Duplicate(jsonrpc_message_result(m), true);
                if (!result)
                        return error_set(reterr, -ENOMEM, "out of memory");
                *ret_result = result;
        }
        return 0;
}

static int connection_send(ControlConnection *c, const char *data, size_t size, char **reterr) {
        while (size > 0) {
                ssize_t n = send(c->fd, data, size, MSG_NOSIGNAL);
                if (n >= 0) {
                        data += n;
                        size -= (size_t) n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN)
                        return error_set(reterr, -ETIMEDOUT, "cannot write to the agent: it read nothing for %d s",
                                         CONTROL_CLIENT_WRITE_TIMEOUT_MS / 1000);
                int r = -errno;
                /* A client the agent refuses is told why, then closed: that reason, if it came,
                 * says more than the broken pipe. */
                _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = NULL;
                if ((r == -EPIPE || r == -ECONNRESET) && connection_receive(c, 0, &m, NULL) > 0 &&
                    jsonrpc_message_kind(m) == JSONRPC_KIND_RESPONSE && jsonrpc_message_error(m))
                        return reply_result(m, NULL, reterr);
                return error_set(reterr, r, "cannot write to the agent: %s", strerror(-r));
        }
        return 0;
}

/* The notification m as a new JSON-RPC object. */
static cJSON *notification_copy(const JsonRpcMessage *m) {
        const cJSON *params = jsonrpc_message_params(m);
        cJSON *copy = NULL;
        if (params) {
                copy = cJSON_Duplicate(params, true);
                if (!copy)
                        return NULL;
        }
        return jsonrpc_notification(jsonrpc_message_method(m), copy);
}

static int connection_keep_event(ControlConnection *c, const JsonRpcMessage *m, char **reterr) {
        if (c->n_events >= CONTROL_CLIENT_EVENTS_MAX)
                return error_set(reterr, -ENOBUFS, "more than %u notifications not read", CONTROL_CLIENT_EVENTS_MAX);

        cJSON *n = notification_copy(m);
        if (!n || !cJSON_AddItemToArray(c->events, n)) {
                cJSON_Delete(n);
                return error_set(reterr, -ENOMEM, "out of memory");
        }
        c->n_events++;
        return 0;
}

int control_client_call(ControlConnection *c, const char *method, cJSON *params, cJSON **ret_result, char **reterr) {
        assert(c);
        assert(method);

        int64_t id = ++c->last_id;
        _cleanup_json_ cJSON *request = jsonrpc_request(id, method, params);
        _cleanup_free_ char *frame = NULL;
        size_t size;
        int r = request ? frame_encode_json(request, &frame, &size) : -ENOMEM;
        if (r < 0)
                return error_set(reterr, r, "cannot encode the request '%s': %s", method, strerror(-r));
        r = connection_send(c, frame, size, reterr);
        if (r < 0)
                return r;

        for (;;) {
                _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = NULL;
                r = connection_receive(c, CONTROL_CLIENT_CALL_TIMEOUT_MS, &m, reterr);
                if (r < 0)
                        return r;
                if (r == 0)
                        return error_set(reterr, -ETIMEDOUT, "no reply to '%s' within %d s", method,
                                         CONTROL_CLIENT_CALL_TIMEOUT_MS / 1000);

                switch (jsonrpc_message_kind(m)) {
                case JSONRPC_KIND_NOTIFICATION:
                        r = connection_keep_event(c, m, reterr);
                        if (r < 0)
                                return r;
                        break;
                case JSONRPC_KIND_RESPONSE: {
                        /* An error with a null id answers a request the agent could not read. */
                        const cJSON *reply_id = jsonrpc_message_id(m);
                        bool ours = cJSON_IsNumber(reply_id) && reply_id->valuedouble == (double) id;
                        if (!ours && !(cJSON_IsNull(reply_id) && jsonrpc_message_error(m)))
                                return error_set(reterr, -EPROTO, "the agent sent a reply to another request");
                        return reply_result(m, ret_result, reterr);
                }
                case JSONRPC_KIND_REQUEST:
                        return error_set(reterr, -EPROTO, "the agent sent a request ('%s')", jsonrpc_message_method(m));
                }
        }
}

int control_client_next_event(ControlConnection *c, int timeout_ms, cJSON **ret_notification) {
        assert(c);
        assert(ret_notification);

        if (c->n_events > 0) {
                c->n_events--;
                *ret_notification = cJSON_DetachItemFromArray(c->events, 0);
                return 1;
        }

        _cleanup_(jsonrpc_message_freep) JsonRpcMessage *m = NULL;
        int r = connection_receive(c, timeout_ms, &m, NULL);
        if (r <= 0)
                return r;
        /* Between calls only notifications are expected; anything else means the agent is
         * closing the connection (an error with a null id) or broke the protocol. */
        if (jsonrpc_message_kind(m) != JSONRPC_KIND_NOTIFICATION)
                return -EPROTO;

        cJSON *n = notification_copy(m);
        if (!n)
                return -ENOMEM;
        *ret_notification = n;
        return 1;
}
