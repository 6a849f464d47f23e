/* SPDX-License-Identifier: Apache-2.0 */
/* Input: one byte whose value modulo 4 is the number of fds that "arrived", then the JSON
 * text of an OCI seccomp listener message, which goes through seccomp_listener_parse(). */
#include <assert.h>
#include <stdint.h>

#include "macros.h"
#include "proto/seccomp-listener.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size == 0)
                return 0;
        size_t n_fds = data[0] % 4;
        data++, size--;

        SeccompListenerMessage m = {};
        _cleanup_free_ char *error = NULL;
        int r = seccomp_listener_parse((const char *) data, size, n_fds, &m, &error);
        if (r < 0) {
                assert(r == -ENOMEM || error);
                assert(!m.container_id && !m.metadata && !m.bundle);
                return 0;
        }
        assert(m.pid > 0 && m.init_pid > 0);
        assert(m.n_fds == n_fds);
        assert(m.seccomp_fd_index >= 0 && (size_t) m.seccomp_fd_index < n_fds);
        assert(m.container_id && m.container_id[0] != '\0');
        seccomp_listener_message_done(&m);
        return 0;
}
