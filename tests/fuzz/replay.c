/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a fuzz target's corpus as a plain test: every file under the given directories is
 * fed to LLVMFuzzerTestOneInput once. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_dir(const char *path, size_t *count) {
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *buf = NULL;
                size_t size;
                r = read_full_file(dirfd(d), de->d_name, 1 << 20, &buf, &size);
                if (r < 0) {
                        fprintf(stderr, "%s/%s: %s\n", path, de->d_name, strerror(-r));
                        break;
                }
                LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
                (*count)++;
        }
        closedir(d);
        return r;
}

int main(int argc, char *argv[]) {
        for (int i = 1; i < argc; i++) {
                size_t count = 0;
                int r = replay_dir(argv[i], &count);
                if (r < 0 || count == 0) {
                        printf("FAIL: replay %s: %s\n", argv[i], r < 0 ? strerror(-r) : "empty corpus");
                        return 1;
                }
                printf("PASS: replay %s (%zu inputs)\n", argv[i], count);
        }
        return 0;
}
