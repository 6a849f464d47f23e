/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>

#include "log.h"

static int log_max_level = LOG_INFO;

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
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

        fprintf(stderr, "%s:%d: %s\n", file, line, message);
        return error;
}
