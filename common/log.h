/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <syslog.h>

#include <stdbool.h>

#include "macros.h"

/* The single log sink: journald with structured fields when systemd connected our stderr
 * to the journal (log_open() checks), stderr with file:line otherwise. Messages above
 * max_level are dropped. */
void log_open(void);
void log_set_max_level(int level);
int log_get_max_level(void);

/* Logs and returns error (a negative errno); "%m" in format expands to strerror(-error). */
int log_internal(int level, int error, const char *file, int line, const char *format, ...) _printf_(5, 6);

/* fields: NULL-terminated "KEY=value" journal fields, e.g. "STOCKADE_EVENT=lock.tampered". */
void log_fields_internal(int level, const char *file, int line, const char *const *fields, const char *format, ...)
        _printf_(5, 6);
#define log_fields(level, fields, ...) log_fields_internal((level), __FILE__, __LINE__, (fields), __VA_ARGS__)

#define log_full_errno(level, error, ...) log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)
