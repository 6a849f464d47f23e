/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <stdio.h>

#include "image-ref.h"
#include "macros.h"

bool image_digest_valid(const char *digest) {
        if (!STARTSWITH(digest, "sha256:") || strlen(digest) != IMAGE_DIGEST_MAX)
                return false;
        for (const char *p = digest + 7; *p; p++)
                if (!isdigit((unsigned char) *p) && !(*p >= 'a' && *p <= 'f'))
                        return false;
        return true;
}

static bool repo_valid(const char *repo) {
        if (!*repo || *repo == '/' || repo[strlen(repo) - 1] == '/' || strstr(repo, "//"))
                return false;
        for (const char *p = repo; *p; p++)
                if (!islower((unsigned char) *p) && !isdigit((unsigned char) *p) && !strchr("._-/", *p))
                        return false;
        return true;
}

int image_ref_parse(const char *text, ImageRef *ret) {
        ImageRef ref = {};
        char name[512];
        if (snprintf(name, sizeof(name), "%s", text) >= (int) sizeof(name))
                return -EINVAL;

        char *at = strchr(name, '@');
        if (at) {
                *at = '\0';
                if (!image_digest_valid(at + 1))
                        return -EINVAL;
                strcpy(ref.digest, at + 1);
        }
        /* A tag follows the last ':' after the last '/': "host:5000/tool:1.0". */
        char *slash = strrchr(name, '/'), *colon = strrchr(slash ? slash : name, ':');
        if (colon) {
                *colon = '\0';
                const char *tag = colon + 1;
                if (streq(tag, "*"))
                        ref.any_tag = true;
                else if (!*tag || strlen(tag) >= sizeof(ref.tag) || strspn(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(tag))
                        return -EINVAL;
                else
                        strcpy(ref.tag, tag);
        }
        if (ref.digest[0] && (ref.tag[0] || ref.any_tag))
                ref.tag[0] = '\0', ref.any_tag = false; /* "name:tag@digest": the digest decides */
        else if (!ref.digest[0] && !ref.tag[0] && !ref.any_tag)
                strcpy(ref.tag, "latest");

        /* The first component is a registry when it looks like a host. */
        char *first_slash = strchr(name, '/');
        const char *repo = name;
        strcpy(ref.registry, "docker.io");
        if (first_slash) {
                size_t n = first_slash - name;
                if (memchr(name, '.', n) || memchr(name, ':', n) || (n == 9 && strncmp(name, "localhost", 9) == 0)) {
                        if (n >= sizeof(ref.registry))
                                return -EINVAL;
                        memcpy(ref.registry, name, n);
                        ref.registry[n] = '\0';
                        repo = first_slash + 1;
                }
        }
        if (streq(ref.registry, "index.docker.io") || streq(ref.registry, "registry-1.docker.io"))
                strcpy(ref.registry, "docker.io");
        if (!repo_valid(repo))
                return -EINVAL;
        int n = snprintf(ref.repo, sizeof(ref.repo), "%s%s", streq(ref.registry, "docker.io") && !strchr(repo, '/') ? "library/" : "", repo);
        if (n < 0 || n >= (int) sizeof(ref.repo))
                return -EINVAL;
        *ret = ref;
        return 0;
}

const char *image_ref_api_host(const ImageRef *ref) {
        return streq(ref->registry, "docker.io") ? "registry-1.docker.io" : ref->registry;
}

bool image_ref_same_repo(const ImageRef *a, const ImageRef *b) {
        return streq(a->registry, b->registry) && streq(a->repo, b->repo);
}
