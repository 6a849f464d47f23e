/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static TestCase *tests_head, **tests_tail = &tests_head;
static char tmpdir[64];

void test_register(TestCase *t) {
        *tests_tail = t;
        tests_tail = &t->next;
}

_Noreturn void test_skip(const char *why) {
        fprintf(stderr, "skipped: %s\n", why);
        exit(77);
}

const char *test_tmpdir(void) {
        return tmpdir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(path);
}

static int run_child(const TestCase *t) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                perror("fork");
                return 1;
        }
        if (pid == 0) {
                t->func();
                exit(0); /* not _exit(): LeakSanitizer checks at exit */
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return 1;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        fprintf(stderr, "%s: killed by signal %d\n", t->name, WTERMSIG(status));
        return 1;
}

static int run_one(const TestCase *t) {
        /* The parent owns the directory so that it is removed even when the test aborts. */
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/stockade-test.XXXXXX");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        int r = run_child(t);
        (void) nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return r;
}

int main(int argc, char *argv[]) {
        const char *prog = basename(argv[0]);
        int failed = 0;

        for (const TestCase *t = tests_head; t; t = t->next) {
                if (argc > 1 && strcmp(argv[1], t->name) != 0)
                        continue;
                int r = run_one(t);
                const char *verdict = r == 0 ? "PASS" : r == 77 ? "SKIP" : "FAIL";
                printf("%s: %s.%s\n", verdict, prog, t->name);
                if (r != 0 && r != 77)
                        failed++;
        }
        return failed ? 1 : 0;
}
