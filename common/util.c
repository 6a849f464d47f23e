/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "util.h"

int error_set(char **reterr, int error, const char *format, ...) {
        if (!reterr)
                return error;

        va_list ap;
        va_start(ap, format);
        char *message = NULL;
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        va_end(ap);
        /* One line, whatever the quoted input held. */
        for (char *c = message; c && *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        *c = '?';

        free(*reterr);
        *reterr = message;
        return error;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        size_t allocated = 4096, size = 0;
        _cleanup_free_ char *buf = malloc(allocated + 1);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                if (size == allocated) {
                        if (allocated > max)
                                return -EFBIG;
                        allocated = allocated * 2 > max + 1 ? max + 1 : allocated * 2;
                        char *n = realloc(buf, allocated + 1);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                }
                ssize_t n = read(fd, buf + size, allocated - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max)
                        return -EFBIG;
        }

        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int ns_inode(int dir_fd, const char *path, uint64_t *ret) {
        char link[64];
        ssize_t n = readlinkat(dir_fd, path, link, sizeof(link) - 1);
        if (n < 0)
                return -errno;
        link[n] = '\0';
        const char *bracket = strstr(link, ":[");
        char *end;
        errno = 0;
        unsigned long long ino = bracket ? strtoull(bracket + 2, &end, 10) : 0;
        if (!bracket || end == bracket + 2 || errno || !streq(end, "]"))
                return -EBADMSG;
        *ret = ino;
        return 0;
}

int read_full_file(int dir_fd, const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = RET_NERRNO(openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
        if (fd < 0)
                return fd;
        return read_full_fd(fd, max, ret, ret_size);
}

int write_all(int fd, const void *data, size_t size) {
        const char *p = data;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int unix_socket_remove_stale(const char *path, char **reterr) {
        struct stat st;
        if (lstat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return error_set(reterr, -errno, "cannot check '%s': %s", path, strerror(errno));
        }
        if (!S_ISSOCK(st.st_mode))
                return error_set(reterr, -EEXIST, "'%s' exists and is not a socket", path);
        if (unlink(path) < 0)
                return error_set(reterr, -errno, "cannot remove the stale socket '%s': %s", path, strerror(errno));
        return 0;
}

int write_file_atomic(int dir_fd, const char *name, const void *data, size_t size, mode_t mode) {
        char tmp[PATH_MAX];
        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp))
                return -ENAMETOOLONG;

        _cleanup_close_ int fd = RET_NERRNO(openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
        if (fd < 0)
                return fd;

        int r = write_all(fd, data, size);
        if (r >= 0)
                r = RET_NERRNO(fchmod(fd, mode));
        if (r >= 0)
                r = RET_NERRNO(fsync(fd));
        if (r >= 0)
                r = RET_NERRNO(renameat(dir_fd, tmp, dir_fd, name));
        if (r < 0) {
                (void) unlinkat(dir_fd, tmp, 0);
                return r;
        }

        /* The rename is durable only once the directory entry is. */
        _cleanup_close_ int dfd = dir_fd == AT_FDCWD ? RET_NERRNO(open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
                                                     : RET_NERRNO(fcntl(dir_fd, F_DUPFD_CLOEXEC, 3));
        if (dfd < 0)
                return dfd;
        return RET_NERRNO(fsync(dfd));
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t size) {
        const unsigned char *in = data;
        char *out = malloc((size + 2) / 3 * 4 + 1), *o = out;
        if (!out)
                return NULL;

        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16;
                if (i + 1 < size)
                        v |= (uint32_t) in[i + 1] << 8;
                if (i + 2 < size)
                        v |= in[i + 2];
                *o++ = b64_alphabet[(v >> 18) & 63];
                *o++ = b64_alphabet[(v >> 12) & 63];
                *o++ = i + 1 < size ? b64_alphabet[(v >> 6) & 63] : '=';
                *o++ = i + 2 < size ? b64_alphabet[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

static int b64_value(char c) {
        const char *p = c ? strchr(b64_alphabet, c) : NULL;
        return p ? (int) (p - b64_alphabet) : -1;
}

int base64_decode(const char *text, size_t length, unsigned char **ret, size_t *ret_size) {
        if (length % 4 != 0)
                return -EINVAL;

        _cleanup_free_ unsigned char *out = malloc(length / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;

        size_t n = 0;
        for (size_t i = 0; i < length; i += 4) {
                bool last = i + 4 == length;
                int pad = 0;
                if (last && text[i + 3] == '=')
                        pad = text[i + 2] == '=' ? 2 : 1;

                uint32_t v = 0;
                for (size_t j = 0; j < 4 - (size_t) pad; j++) {
                        int d = b64_value(text[i + j]);
                        if (d < 0)
                                return -EINVAL;
                        v |= (uint32_t) d << (18 - 6 * j);
                }
                /* Non-canonical encodings (stray bits in the padding) are rejected. */
                if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
                        return -EINVAL;

                out[n++] = (unsigned char) (v >> 16);
                if (pad < 2)
                        out[n++] = (unsigned char) (v >> 8);
                if (pad < 1)
                        out[n++] = (unsigned char) v;
        }

        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

void hex_encode(const unsigned char *data, size_t size, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < size; i++) {
                out[2 * i] = digits[data[i] >> 4];
                out[2 * i + 1] = digits[data[i] & 15];
        }
        out[2 * size] = '\0';
}

static int parse_digits(const char **p, int count, int *ret) {
        int v = 0;
        for (int i = 0; i < count; i++) {
                if ((*p)[i] < '0' || (*p)[i] > '9')
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += count;
        *ret = v;
        return 0;
}

static int expect_char(const char **p, const char *allowed) {
        if (**p == '\0' || !strchr(allowed, **p))
                return -EINVAL;
        (*p)++;
        return 0;
}

int rfc3339_parse(const char *text, int64_t *ret) {
        const char *p = text;
        int year, mon, day, hour, min, sec;

        if (parse_digits(&p, 4, &year) < 0 || expect_char(&p, "-") < 0 ||
            parse_digits(&p, 2, &mon) < 0 || expect_char(&p, "-") < 0 ||
            parse_digits(&p, 2, &day) < 0 || expect_char(&p, "Tt") < 0 ||
            parse_digits(&p, 2, &hour) < 0 || expect_char(&p, ":") < 0 ||
            parse_digits(&p, 2, &min) < 0 || expect_char(&p, ":") < 0 ||
            parse_digits(&p, 2, &sec) < 0)
                return -EINVAL;

        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }

        int offset = 0;
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om;
                p++;
                if (parse_digits(&p, 2, &oh) < 0 || expect_char(&p, ":") < 0 || parse_digits(&p, 2, &om) < 0)
                        return -EINVAL;
                if (oh > 23 || om > 59)
                        return -EINVAL;
                offset = sign * (oh * 3600 + om * 60);
        } else
                return -EINVAL;
        if (*p != '\0')
                return -EINVAL;

        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;

        struct tm tm = {
                .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                .tm_hour = hour, .tm_min = min, .tm_sec = sec,
        };
        time_t t = timegm(&tm);
        if (tm.tm_mday != day) /* Feb 29 in a common year */
                return -EINVAL;

        *ret = (int64_t) t - offset;
        return 0;
}

void rfc3339_format(int64_t t, char out[static 32]) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(out, 32, "@%lld", (long long) t);
}

int safe_atoi64(const char *text, int64_t *ret) {
        if (!text || *text == '\0')
                return -EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno != 0)
                return -errno;
        if (*end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int duration_parse(const char *text, int64_t *ret_seconds) {
        size_t n = strlen(text);
        if (n < 2)
                return -EINVAL;

        int64_t unit;
        switch (text[n - 1]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return -EINVAL;
        }

        char number[32];
        if (n - 1 >= sizeof(number))
                return -EINVAL;
        memcpy(number, text, n - 1);
        number[n - 1] = '\0';

        int64_t v;
        if (safe_atoi64(number, &v) < 0 || v <= 0 || v > INT32_MAX)
                return -EINVAL;
        *ret_seconds = v * unit;
        return 0;
}

uint64_t hash_fnv1a(const void *data, size_t size) {
        uint64_t hash = 0xcbf29ce484222325u;
        for (size_t i = 0; i < size; i++)
                hash = (hash ^ ((const unsigned char *) data)[i]) * 0x100000001b3u;
        return hash;
}

char *exe_sibling(const char *relative) {
        char exe[PATH_MAX], *path = NULL;
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n < 0)
                return NULL;
        exe[n] = '\0';
        if (asprintf(&path, "%s/%s", dirname(exe), relative) < 0)
                return NULL;
        if (access(path, X_OK) == 0)
                return path;
        free(path);
        return NULL;
}
