/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Stockade's seccomp profile for a container, derived from the engine's (the OCI
 * "linux.seccomp" object; none for --privileged). It is an allowlist: a syscall Stockade
 * does not name is refused, and runc gives ENOSYS to numbers above the highest one named.
 * The engine's profile is only narrowed: what it denies stays denied with its action, its
 * argument filters stay. On top: the keyring, modules, kexec, bpf, open_by_handle_at,
 * io_uring and socket(AF_VSOCK) get EPERM, the new mount API ENOSYS, and mount, umount2,
 * mknod, mknodat are trapped for the agent (listener_path) where the engine allowed them.
 * Only the native ABI is allowed: on x86-64 the i386 and x32 ABIs are refused whole. */

#include "json.h"

/* Rewrites linux_obj's "seccomp" in place. listener_path may be NULL (nothing trapped);
 * metadata becomes the listener metadata. */
int seccomp_profile_narrow(cJSON *linux_obj, const char *listener_path, const char *metadata);
