/* SPDX-License-Identifier: Apache-2.0 */
/* The uid range records (ranges.json: pool ranges and engines' own mappings), fed arbitrary
 * bytes through a memfd. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "enforcer/uidrange.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = memfd_create("ranges.json", MFD_CLOEXEC), root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || root < 0 || write_all(fd, data, size) < 0)
                return 0;
        char name[64];
        snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
        UidRanges *r = NULL;
        char *why = NULL;
        if (uid_ranges_open(root, name, UID_RANGE_FIRST, UID_RANGE_SIZE, 16, &r, &why) >= 0)
                for (size_t i = 0; i < uid_ranges_count(r); i++) {
                        uint32_t base;
                        (void) container_key_valid(uid_ranges_get(r, i, &base));
                }
        uid_ranges_free(r);
        free(why);
        return 0;
}
