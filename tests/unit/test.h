/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A unit test executable is a list of TEST()s; each runs in a child process so that a
 * failing assertion (which aborts) is reported and the others still run. Output is one
 * "PASS: file.name" / "FAIL: file.name" / "SKIP: file.name" line per test, read by tests/run. */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TestCase {
        const char *name;
        void (*func)(void);
        struct TestCase *next;
} TestCase;

void test_register(TestCase *t);
/* Exits with status 77: the calling test is reported as skipped. */
_Noreturn void test_skip(const char *why);
/* A fresh temporary directory, removed when the test's process ends. */
const char *test_tmpdir(void);

#define TEST(n)                                                                        \
        static void test_##n(void);                                                    \
        static TestCase test_case_##n = { .name = #n, .func = test_##n };             \
        __attribute__((constructor)) static void test_register_##n(void) {             \
                test_register(&test_case_##n);                                         \
        }                                                                              \
        static void test_##n(void)

#define ASSERT_TRUE(expr)                                                              \
        do {                                                                           \
                if (!(expr)) {                                                         \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                       \
                }                                                                      \
        } while (0)

#define ASSERT_EQ(a, b)                                                                \
        do {                                                                           \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b);                     \
                if (_a != _b) {                                                        \
                        fprintf(stderr, "%s:%d: %s == %s failed: %jd != %jd\n", __FILE__, __LINE__, #a, #b, _a, _b); \
                        abort();                                                       \
                }                                                                      \
        } while (0)

#define ASSERT_OK(expr)                                                                \
        do {                                                                           \
                intmax_t _r = (intmax_t) (expr);                                       \
                if (_r < 0) {                                                          \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, strerror((int) -_r)); \
                        abort();                                                       \
                }                                                                      \
        } while (0)

#define ASSERT_STREQ(a, b)                                                             \
        do {                                                                           \
                const char *_a = (a), *_b = (b);                                       \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                               \
                        fprintf(stderr, "%s:%d: %s == %s failed: '%s' != '%s'\n", __FILE__, __LINE__, #a, #b, \
                                _a ? _a : "(null)", _b ? _b : "(null)");               \
                        abort();                                                       \
                }                                                                      \
        } while (0)

#define ASSERT_CONTAINS(haystack, needle)                                              \
        do {                                                                           \
                const char *_h = (haystack), *_n = (needle);                           \
                if (!_h || !strstr(_h, _n)) {                                          \
                        fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__, \
                                _h ? _h : "(null)", _n);                               \
                        abort();                                                       \
                }                                                                      \
        } while (0)
