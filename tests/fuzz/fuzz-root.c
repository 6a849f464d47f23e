/* SPDX-License-Identifier: Apache-2.0 */
/* The trust root parser (envelope, key map, PEM keys, self-signature), fed arbitrary bytes. */
#include <stdint.h>

#include "policy/root.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        TrustRoot *root = NULL;
        char *why = NULL;
        if (trust_root_parse((const char *) data, size, &root, &why) >= 0)
                (void) trust_root_check_successor(root, root, NULL);
        trust_root_free(root);
        free(why);
        return 0;
}
