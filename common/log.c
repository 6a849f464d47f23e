/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int log_max_level = LOG_INFO;
static bool log_to_journal;

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_open(void) {
        /* systemd sets JOURNAL_STREAM when our stderr is connected to the journal. */
        log_to_journal = getenv("JOURNAL_STREAM") != NULL;
}

static void log_write(int level, const char *file, int line, const char *message, const char *const *fields) {
        if (!log_to_journal) {
                fprintf(stderr, "%s:%d: %s\n", file, line, message);
                return;
        }

        char priority[16], code_file[256], code_line[32], text[2100];
        struct iovec iov[40];
        size_t n = 0;
#define IOV_STR(s) (struct iovec) { .iov_base = (char *) (s), .iov_len = strlen(s) }
        snprintf(priority, sizeof(priority), "PRIORITY=%d", level);
        snprintf(code_file, sizeof(code_file), "CODE_FILE=%s", file);
        snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
        snprintf(text, sizeof(text), "MESSAGE=%s", message);
        iov[n++] = IOV_STR(priority);
        iov[n++] = IOV_STR(code_file);
        iov[n++] = IOV_STR(code_line);
        iov[n++] = IOV_STR(text);
        for (size_t i = 0; fields && fields[i] && n < ELEMENTSOF(iov); i++)
                iov[n++] = IOV_STR(fields[i]);
#undef IOV_STR
        (void) sd_journal_sendv(iov, (int) n);
}

int log_internal(int level, int error, const char *file, int line, const char *format, ...) {
        if (level > log_max_level)
                return error;

        char message[2048];
        va_list ap;
        va_start(ap, format);
        errno = error < 0 ? -error : error;
        vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);

        log_write(level, file, line, message, NULL);
        return error;
}

void log_fields_internal(int level, const char *file, int line, const char *const *fields, const char *format, ...) {
        if (level > log_max_level)
                return;

        char message[2048];
        va_list ap;
        va_start(ap, format);
        vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);

        log_write(level, file, line, message, fields);
}
