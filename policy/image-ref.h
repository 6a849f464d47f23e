/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Image references as imageList entries and the engine's RepoDigests write them, in the
 * engine's normal form: "ryuk" is docker.io/library/ryuk:latest, "testcontainers/ryuk" is
 * on docker.io, "127.0.0.1:5000/tool" and "localhost/tool" on their own registries. Pure. */

#include <stdbool.h>

#define IMAGE_DIGEST_MAX 71 /* "sha256:" and 64 hex digits */

typedef struct ImageRef {
        char registry[256];  /* "docker.io", "127.0.0.1:5000" */
        char repo[256];      /* "library/ryuk" */
        char tag[129];       /* "" when pinned by digest or any tag */
        char digest[IMAGE_DIGEST_MAX + 1]; /* "" unless pinned */
        bool any_tag;        /* "name:*" */
} ImageRef;

/* -EINVAL for what is not a reference. */
int image_ref_parse(const char *text, ImageRef *ret);

/* The registry's API host: "registry-1.docker.io" for docker.io. */
const char *image_ref_api_host(const ImageRef *ref);

/* Whether a and b name the same repository. */
bool image_ref_same_repo(const ImageRef *a, const ImageRef *b);

/* "sha256:" and 64 lowercase hex digits. */
bool image_digest_valid(const char *digest);
