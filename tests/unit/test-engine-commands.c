/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "policy/engine-commands.h"
#include "policy/image-ref.h"
#include "test.h"

TEST(routes) {
        ASSERT_STREQ(engine_request_commands("GET", "/v1.41/containers/json"), "ps|container ls|container list|container ps");
        ASSERT_STREQ(engine_request_commands("GET", "/containers/json"), "ps|container ls|container list|container ps");
        ASSERT_STREQ(engine_request_commands("POST", "/v1.41/images/127.0.0.1:5000/a/b/push"), "push|image push");
        ASSERT_STREQ(engine_request_commands("GET", "/v1.41/images/a/json/json"), "image inspect|inspect");
        ASSERT_STREQ(engine_request_commands("DELETE", "/v1.24/containers/abc"), "rm|container rm");
        ASSERT_STREQ(engine_request_commands("POST", "/swarm/init"), "swarm");
        ASSERT_TRUE(!engine_request_commands("GET", "/containers/abc/unknown"));
        ASSERT_TRUE(!engine_request_commands("PATCH", "/containers/json"));
        ASSERT_TRUE(!engine_request_commands("GET", "/v/containers/json"));
        ASSERT_TRUE(engine_request_hijacks("POST", "/v1.41/exec/e1/start"));
        ASSERT_TRUE(engine_request_hijacks("POST", "/containers/c1/attach"));
        ASSERT_TRUE(!engine_request_hijacks("GET", "/containers/c1/logs"));
}

static bool allowed(bool allow, const char *const *patterns, size_t n, const char *method, const char *path, char command[64]) {
        CommandList list = { .allow = allow, .commands = patterns, .n_commands = n };
        return engine_request_allowed(&list, method, path, command);
}

TEST(command_lists) {
        char command[64];
        static const char *const deny_push[] = { "push" };
        ASSERT_TRUE(!allowed(false, deny_push, 1, "POST", "/v1.41/images/x/push", command));
        ASSERT_STREQ(command, "push");
        ASSERT_TRUE(allowed(false, deny_push, 1, "GET", "/v1.41/containers/json", command));
        static const char *const deny_container[] = { "container*" };
        ASSERT_TRUE(!allowed(false, deny_container, 1, "GET", "/v1.41/containers/json", command));
        ASSERT_STREQ(command, "ps");
        ASSERT_TRUE(allowed(false, deny_container, 1, "GET", "/v1.41/images/json", command));
        static const char *const allow_version[] = { "version" };
        ASSERT_TRUE(allowed(true, allow_version, 1, "GET", "/v1.41/version", command));
        ASSERT_TRUE(allowed(true, allow_version, 1, "HEAD", "/_ping", command));
        ASSERT_TRUE(!allowed(true, allow_version, 1, "GET", "/v1.41/containers/json", command));
        static const char *const allow_all[] = { "*" };
        ASSERT_TRUE(allowed(true, allow_all, 1, "POST", "/build", command));
        /* A route not in the table is refused whatever the list says. */
        ASSERT_TRUE(!allowed(true, allow_all, 1, "POST", "/containers/x/checkpoints", command));
        ASSERT_STREQ(command, "");
        ASSERT_TRUE(!allowed(false, NULL, 0, "GET", "/debug/pprof/", command));
        /* allow "run" lets everything docker run does through. */
        static const char *const allow_run[] = { "run" };
        static const char *const run_requests[][2] = {
                { "POST", "/v1.41/containers/create" }, { "POST", "/v1.41/containers/c/attach" },
                { "POST", "/v1.41/containers/c/start" }, { "POST", "/v1.41/containers/c/wait" },
                { "POST", "/v1.41/images/create" },
        };
        for (size_t i = 0; i < sizeof(run_requests) / sizeof(run_requests[0]); i++)
                ASSERT_TRUE(allowed(true, allow_run, 1, run_requests[i][0], run_requests[i][1], command));
        ASSERT_TRUE(!allowed(true, allow_run, 1, "POST", "/v1.41/containers/c/exec", command));
        ASSERT_STREQ(command, "exec");
}

TEST(image_refs) {
        ImageRef r;
        ASSERT_OK(image_ref_parse("ryuk", &r));
        ASSERT_STREQ(r.registry, "docker.io");
        ASSERT_STREQ(r.repo, "library/ryuk");
        ASSERT_STREQ(r.tag, "latest");
        ASSERT_STREQ(image_ref_api_host(&r), "registry-1.docker.io");
        ASSERT_OK(image_ref_parse("docker.io/testcontainers/ryuk:*", &r));
        ASSERT_TRUE(r.any_tag);
        ASSERT_STREQ(r.repo, "testcontainers/ryuk");
        ASSERT_OK(image_ref_parse("127.0.0.1:5000/allowed/tool:1.0", &r));
        ASSERT_STREQ(r.registry, "127.0.0.1:5000");
        ASSERT_STREQ(r.repo, "allowed/tool");
        ASSERT_STREQ(r.tag, "1.0");
        ASSERT_OK(image_ref_parse("localhost/tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &r));
        ASSERT_STREQ(r.registry, "localhost");
        ASSERT_STREQ(r.digest, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        ASSERT_STREQ(r.tag, "");
        ImageRef a, b;
        ASSERT_OK(image_ref_parse("testcontainers/ryuk@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &a));
        ASSERT_OK(image_ref_parse("index.docker.io/testcontainers/ryuk:0.5", &b));
        ASSERT_TRUE(image_ref_same_repo(&a, &b));
        ASSERT_OK(image_ref_parse("testcontainers/ryuk-evil:1", &b));
        ASSERT_TRUE(!image_ref_same_repo(&a, &b));
        ASSERT_EQ(image_ref_parse("Upper/case", &r), -EINVAL);
        ASSERT_EQ(image_ref_parse("a@sha256:short", &r), -EINVAL);
        ASSERT_EQ(image_ref_parse("a//b", &r), -EINVAL);
        ASSERT_EQ(image_ref_parse("", &r), -EINVAL);
}
