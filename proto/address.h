/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Control API addresses, shared by the agent's server (agent/control.c) and the client (proto/control-client.c):
 * "unix:/path" or "vsock:CID:PORT". Header only. */

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <linux/vm_sockets.h>

#include "util.h"

typedef struct ControlAddress {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
                struct sockaddr_vm vm;
        };
        socklen_t size;
} ControlAddress;

static inline int control_address_parse_u32(const char *text, unsigned *ret) {
        int64_t v;
        if (text[0] < '0' || text[0] > '9' || safe_atoi64(text, &v) < 0 || v < 0 || v > UINT32_MAX)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* Fills in the socket address to connect to; for vsock the server binds the port with
 * VMADDR_CID_ANY instead and uses the CID to check its peers. */
static inline int control_address_parse(const char *address, ControlAddress *ret, char **reterr) {
        ControlAddress a = {};

        if (STARTSWITH(address, "unix:")) {
                const char *path = address + strlen("unix:");
                size_t n = strlen(path);
                if (n == 0 || n >= sizeof(a.un.sun_path))
                        return error_set(reterr, -EINVAL, "invalid address '%s': the path must be 1 to %zu bytes",
                                         address, sizeof(a.un.sun_path) - 1);
                a.un.sun_family = AF_UNIX;
                memcpy(a.un.sun_path, path, n + 1);
                a.size = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
        } else if (STARTSWITH(address, "vsock:")) {
                char cid[16];
                const char *colon = strchr(address + strlen("vsock:"), ':');
                size_t n = colon ? (size_t) (colon - address) - strlen("vsock:") : 0;
                if (n >= sizeof(cid))
                        n = 0;
                memcpy(cid, address + strlen("vsock:"), n);
                cid[n] = '\0';
                a.vm.svm_family = AF_VSOCK;
                if (n == 0 || control_address_parse_u32(cid, &a.vm.svm_cid) < 0 ||
                    control_address_parse_u32(colon + 1, &a.vm.svm_port) < 0)
                        return error_set(reterr, -EINVAL, "invalid address '%s': expected vsock:CID:PORT", address);
                a.size = sizeof(a.vm);
        } else
                return error_set(reterr, -EINVAL, "invalid address '%s': expected unix:/path or vsock:CID:PORT",
                                 address);

        *ret = a;
        return 0;
}
