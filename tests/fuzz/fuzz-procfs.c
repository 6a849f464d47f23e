/* SPDX-License-Identifier: Apache-2.0 */
/* Input: FUSE requests as the kernel writes them to /dev/fuse, each a 2-byte length
 * (little-endian) and that many bytes, padded with zeros to a fuse_in_header; the harness
 * sets each header's len and unique and ends each request with a NUL (the kernel ends names
 * with one). They go through a socket to the /proc emulation (one session, begun with a
 * FUSE_INIT, with this process served as container "fuzz"), which libfuse parses and
 * procfs.c answers. Every answer must be a whole reply to the request just sent, with 0 or
 * a negative errno. Left out are what the kernel sends only for something that never
 * happens here, and what libfuse then leaks: FUSE_INTERRUPT for a request still waiting
 * (none waits: libfuse keeps one for a request it has not seen, answers it with the next
 * request, and leaks it when the session ends) and FUSE_NOTIFY_REPLY to a
 * FUSE_NOTIFY_RETRIEVE (never sent). */
#include <assert.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "enforcer/procfs.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUEST_MAX 4096

/* Sends one request and has it answered; false once the session has ended. */
static bool request(Procfs *p, int peer, const uint8_t *body, size_t size, uint64_t unique) {
        static uint8_t msg[sizeof(struct fuse_in_header) + REQUEST_MAX + 1];
        size_t n = size < sizeof(struct fuse_in_header) ? sizeof(struct fuse_in_header) : size;
        memset(msg, 0, n + 1);
        memcpy(msg, body, size);
        struct fuse_in_header *h = (struct fuse_in_header *) msg;
        if (h->opcode == FUSE_INTERRUPT || h->opcode == FUSE_NOTIFY_REPLY)
                return true;
        h->len = (uint32_t) n + 1;
        h->unique = unique;
        assert(send(peer, msg, n + 1, 0) == (ssize_t) n + 1);
        if (procfs_process(p) < 0)
                return false;
        static uint8_t reply[1 << 20];
        ssize_t got;
        while ((got = recv(peer, reply, sizeof(reply), MSG_DONTWAIT)) >= 0) {
                const struct fuse_out_header *o = (const struct fuse_out_header *) reply;
                assert((size_t) got >= sizeof(*o) && o->len == (uint32_t) got);
                assert(o->error <= 0 && o->error >= -4095);
                assert(o->unique == unique);
        }
        return true;
}

/* One file system for every input (a new one costs libfuse's 132 KB buffer), made again
 * once an input ended its session (FUSE_DESTROY). */
static Procfs *procfs;
static int peer = -EBADF;
static uint64_t unique;

static bool start(void) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return false;
        peer = sv[1];
        if (procfs_new(NULL, sv[0], &procfs, NULL) < 0) {
                peer = safe_close(peer);
                return false;
        }
        (void) procfs_container_add(procfs, "fuzz", getpid());
        struct {
                struct fuse_in_header h;
                struct fuse_init_in in;
        } init = {
                .h = { .opcode = FUSE_INIT },
                .in = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION, .max_readahead = 131072,
                        .flags = FUSE_AUTO_INVAL_DATA },
        };
        return request(procfs, peer, (const uint8_t *) &init, sizeof(init), ++unique);
}

static void stop(void) {
        procfs = procfs_free(procfs, false);
        peer = safe_close(peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!procfs && !start()) {
                stop();
                return 0;
        }
        bool live = true;
        while (live && size >= 2) {
                size_t n = (size_t) data[0] | (size_t) data[1] << 8;
                data += 2, size -= 2;
                if (n > size)
                        n = size;
                if (n > REQUEST_MAX)
                        n = REQUEST_MAX;
                live = request(procfs, peer, data, n, ++unique);
                data += n, size -= n;
        }
        if (!live)
                stop();
        return 0;
}
