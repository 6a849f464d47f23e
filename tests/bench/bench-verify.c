/* SPDX-License-Identifier: Apache-2.0 */
/* Time to verify and parse a typical settings bundle (tests/data/admin-settings.json,
 * Ed25519 and P-256), against the bare signature check on the same bytes as baseline.
 * BENCH_SMOKE=1 runs a few iterations only. */
#include <fcntl.h>
#include <time.h>

#include "policy/bundle.h"
#include "util.h"

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int bench(KeyType type, const char *name, const cJSON *settings, int iterations) {
        Key *key;
        TrustRoot *root;
        char *root_text, *text;
        int64_t t = time(NULL);
        if (key_generate(type, &key) < 0 ||
            trust_root_create(1, 1, &key, 1, NULL, 0, &key, 1, &root_text) < 0 ||
            trust_root_parse(root_text, strlen(root_text), &root, NULL) < 0 ||
            bundle_create("acme", 1, t, t + 86400, settings, &key, 1, &text) < 0)
                return 1;
        size_t size = strlen(text);

        BundleCheck check = { .org = "acme", .now = t };
        double start = now_us();
        for (int i = 0; i < iterations; i++) {
                Bundle *b;
                if (bundle_verify(root, text, size, &check, &b, NULL) < 0)
                        return 1;
                bundle_free(b);
        }
        double verify_us = (now_us() - start) / iterations;

        unsigned char *sig;
        size_t sig_size;
        if (key_sign(key, text, size, &sig, &sig_size) < 0)
                return 1;
        start = now_us();
        for (int i = 0; i < iterations; i++)
                if (key_verify(key, text, size, sig, sig_size) != 1)
                        return 1;
        double raw_us = (now_us() - start) / iterations;

        printf("%-8s bundle %zu bytes: verify+parse %.1f us/op, bare signature check %.1f us/op (%d iterations)\n",
               name, size, verify_us, raw_us, iterations);
        free(sig);
        free(text);
        free(root_text);
        trust_root_free(root);
        key_free(key);
        return 0;
}

int main(void) {
        int iterations = getenv("BENCH_SMOKE") ? 20 : 5000;
        char *text;
        size_t size;
        if (read_full_file(AT_FDCWD, "tests/data/admin-settings.json", 1 << 20, &text, &size) < 0) {
                fprintf(stderr, "run from the source tree: tests/data/admin-settings.json not found\n");
                return 1;
        }
        cJSON *settings = cJSON_Parse(text);
        int r = bench(KEY_ED25519, "ed25519", settings, iterations) || bench(KEY_P256, "p256", settings, iterations);
        cJSON_Delete(settings);
        free(text);
        return r;
}
