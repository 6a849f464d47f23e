/* SPDX-License-Identifier: Apache-2.0 */
/* The DSSE envelope parser and signature check, fed arbitrary bytes. */
#include <stdint.h>

#include "policy/dsse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Keyring *ring;
        if (!ring) {
                Key *key;
                if (keyring_new(&ring) < 0 || key_generate(KEY_ED25519, &key) < 0 || keyring_add(ring, key) < 0)
                        abort();
        }

        Envelope *e = NULL;
        char *why = NULL;
        if (envelope_parse((const char *) data, size, &e, &why) >= 0) {
                size_t n;
                (void) envelope_payload(e, &n);
                (void) envelope_verify(e, ring, 1, NULL);
        }
        envelope_free(e);
        free(why);
        return 0;
}
