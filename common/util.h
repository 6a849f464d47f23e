/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "macros.h"

/* Formats a one-line reason into *reterr (if reterr is non-NULL; control characters, such
 * as a newline inside a quoted input, become "?") and returns error. */
int error_set(char **reterr, int error, const char *format, ...) _printf_(3, 4);

/* Reads a whole file, refusing more than max bytes with -EFBIG. The buffer is NUL-terminated. */
int read_full_file(int dir_fd, const char *path, size_t max, char **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);

/* Writes everything, retrying on EINTR and short writes. */
int write_all(int fd, const void *data, size_t size);

/* Removes a socket left behind by an earlier run at path (nothing there is fine); anything
 * else at path is an error. */
int unix_socket_remove_stale(const char *path, char **reterr);

/* Crash-safe replace: write "name.tmp", fsync, rename over name, fsync the directory. */
int write_file_atomic(int dir_fd, const char *name, const void *data, size_t size, mode_t mode);

/* Strict RFC 4648 base64 with padding; no whitespace. */
char *base64_encode(const void *data, size_t size);
int base64_decode(const char *text, size_t length, unsigned char **ret, size_t *ret_size);

void hex_encode(const unsigned char *data, size_t size, char *out /* 2*size+1 */);

/* RFC 3339 timestamps ("2026-01-02T03:04:05Z", offsets and fractions accepted). */
int rfc3339_parse(const char *text, int64_t *ret);
void rfc3339_format(int64_t t, char out[static 32]);

/* "30d", "12h", "45m", "90s" */
int duration_parse(const char *text, int64_t *ret_seconds);

int safe_atoi64(const char *text, int64_t *ret);

/* The inode of the namespace that the link at dir_fd/path (a /proc/PID/ns/TYPE) names,
 * from the link's text "TYPE:[INODE]": a stat() of the link makes the kernel build an
 * inode and a dentry for the namespace and free them again, which costs several times as
 * much. All namespaces are on one file system, so the inode names one. */
int ns_inode(int dir_fd, const char *path, uint64_t *ret);

/* 64-bit FNV-1a: names derived from paths and keys, not for anything an attacker picks
 * to collide. */
uint64_t hash_fnv1a(const void *data, size_t size);

/* relative (e.g. "stockade-runc", "../libexec/x") resolved from the directory of our own
 * executable, newly allocated, if it is an executable there; else NULL. */
char *exe_sibling(const char *relative);
