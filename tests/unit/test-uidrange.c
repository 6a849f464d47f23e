/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>

#include "enforcer/uidrange.h"
#include "util.h"
#include "test.h"

static UidRanges *open_ranges(uint32_t max) {
        int dfd = open(test_tmpdir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_TRUE(dfd >= 0);
        UidRanges *r = NULL;
        ASSERT_OK(uid_ranges_open(dfd, "ranges.json", UID_RANGE_FIRST, UID_RANGE_SIZE, max, &r, NULL));
        close(dfd);
        return r;
}

TEST(exclusive_ranges_survive_reopen_and_are_reused) {
        UidRanges *r = open_ranges(8);
        uint32_t a, b, again;
        ASSERT_OK(uid_ranges_acquire(r, "aaa", &a, NULL));
        ASSERT_OK(uid_ranges_acquire(r, "bbb", &b, NULL));
        ASSERT_EQ(a, 100000);
        ASSERT_EQ(b, 165536);
        ASSERT_OK(uid_ranges_acquire(r, "aaa", &again, NULL));
        ASSERT_EQ(again, a);
        uid_ranges_free(r);

        r = open_ranges(8);
        ASSERT_EQ(uid_ranges_count(r), 2);
        ASSERT_OK(uid_ranges_acquire(r, "bbb", &again, NULL));
        ASSERT_EQ(again, 165536);
        ASSERT_OK(uid_ranges_release(r, "aaa"));
        ASSERT_EQ(uid_ranges_release(r, "aaa"), -ENOENT);
        ASSERT_OK(uid_ranges_acquire(r, "ccc", &again, NULL));
        ASSERT_EQ(again, 100000);
        uid_ranges_free(r);
}

TEST(exhaustion_is_a_clear_error) {
        UidRanges *r = open_ranges(2);
        uint32_t base;
        ASSERT_OK(uid_ranges_acquire(r, "one", &base, NULL));
        ASSERT_OK(uid_ranges_acquire(r, "two", &base, NULL));
        _cleanup_free_ char *why = NULL;
        ASSERT_EQ(uid_ranges_acquire(r, "three", &base, &why), -ENOSPC);
        ASSERT_STREQ(why, "all 2 uid ranges are in use");
        uid_ranges_free(r);
}

TEST(shared_range_is_held_until_its_last_owner_goes) {
        UidRanges *r = open_ranges(8);
        uint32_t pause, other, base;
        ASSERT_OK(uid_ranges_acquire(r, "pause", &pause, NULL));
        ASSERT_OK(uid_ranges_share(r, "member1", pause, NULL));
        ASSERT_OK(uid_ranges_share(r, "member2", pause, NULL));
        ASSERT_OK(uid_ranges_share(r, "member2", pause, NULL));
        ASSERT_OK(uid_ranges_acquire(r, "member1", &base, NULL));
        ASSERT_EQ(base, pause);
        ASSERT_OK(uid_ranges_acquire(r, "other", &other, NULL));
        ASSERT_EQ(other, pause + UID_RANGE_SIZE);
        ASSERT_EQ(uid_ranges_count(r), 4);
        uid_ranges_free(r);

        /* The sharing survives a restart. */
        r = open_ranges(8);
        ASSERT_OK(uid_ranges_acquire(r, "member2", &base, NULL));
        ASSERT_EQ(base, pause);
        ASSERT_OK(uid_ranges_release(r, "pause"));
        ASSERT_OK(uid_ranges_release(r, "member1"));
        ASSERT_OK(uid_ranges_acquire(r, "new1", &base, NULL));
        ASSERT_EQ(base, other + UID_RANGE_SIZE);
        ASSERT_OK(uid_ranges_release(r, "member2"));
        ASSERT_OK(uid_ranges_acquire(r, "new2", &base, NULL));
        ASSERT_EQ(base, pause);
        uid_ranges_free(r);
}

TEST(sharing_needs_a_held_range) {
        UidRanges *r = open_ranges(8);
        uint32_t a, b;
        ASSERT_OK(uid_ranges_acquire(r, "a", &a, NULL));
        ASSERT_OK(uid_ranges_acquire(r, "b", &b, NULL));
        _cleanup_free_ char *why = NULL;
        ASSERT_EQ(uid_ranges_share(r, "x", b + UID_RANGE_SIZE, &why), -ENOENT);
        ASSERT_STREQ(why, "no container holds the uid range 231072");
        ASSERT_EQ(uid_ranges_share(r, "x", a + 1, NULL), -ENOENT);
        ASSERT_EQ(uid_ranges_share(r, "x", 0, NULL), -ENOENT);
        ASSERT_EQ(uid_ranges_share(r, "x", UINT32_MAX, NULL), -ENOENT);
        free(why);
        why = NULL;
        ASSERT_EQ(uid_ranges_share(r, "a", b, &why), -EEXIST);
        ASSERT_STREQ(why, "'a' has the uid range 100000 already");
        ASSERT_EQ(uid_ranges_count(r), 2);
        uid_ranges_free(r);
}

TEST(container_ids) {
        ASSERT_TRUE(container_id_valid("4df15d61558d8dcb5752c4a242a35aac4bab08c29d3aadebec0fd141d3b337b8"));
        ASSERT_TRUE(container_id_valid("my_container-1.2"));
        ASSERT_TRUE(!container_id_valid("../etc"));
        ASSERT_TRUE(!container_id_valid(""));
        ASSERT_TRUE(!container_id_valid(".hidden"));
        ASSERT_TRUE(!container_id_valid("a/b"));
}

TEST(keys_are_root_and_id) {
        _cleanup_free_ char *a = NULL, *b = NULL, *bare = NULL, *top = NULL;
        ASSERT_OK(container_key("/run/runc", "web", &a));
        ASSERT_OK(container_key("/run/docker/runtime-runc/moby", "web", &b));
        ASSERT_OK(container_key(NULL, "web", &bare));
        ASSERT_OK(container_key("/", "web", &top));
        ASSERT_STREQ(a, "/run/runc/web");
        ASSERT_STREQ(bare, "web");
        ASSERT_STREQ(top, "/web");
        ASSERT_STREQ(container_key_id(b), "web");
        ASSERT_TRUE(container_key_valid(a) && container_key_valid(bare) && container_key_valid(top));
        ASSERT_TRUE(!container_key_valid("run/runc/web") && !container_key_valid("/run/runc/"));
        ASSERT_EQ(container_key("run", "web", &a), -EINVAL);
        ASSERT_EQ(container_key("/run", "a/b", &a), -EINVAL);

        /* Each root has a directory of its own for the id; the agent finds the runtime's. */
        _cleanup_free_ char *dir_a = NULL, *dir_b = NULL, *dir_top = NULL;
        ASSERT_OK(container_dir("/run/stockade", a, &dir_a));
        ASSERT_OK(container_dir("/run/stockade", b, &dir_b));
        ASSERT_OK(container_dir("/run/stockade", top, &dir_top));
        ASSERT_TRUE(STARTSWITH(dir_a, "/run/stockade/containers/") && strlen(dir_a) == strlen("/run/stockade/containers/") + 16 + 4);
        ASSERT_STREQ(dir_a + strlen(dir_a) - 4, "-web");
        ASSERT_TRUE(!streq(dir_a, dir_b) && !streq(dir_a, dir_top) && !streq(dir_b, dir_top));
        _cleanup_free_ char *dir_bare = NULL; /* a record from before roots: runc's default root */
        ASSERT_OK(container_dir("/run/stockade", bare, &dir_bare));
        ASSERT_STREQ(dir_bare, dir_a);

        /* The same id under two roots holds two ranges; releasing one leaves the other. */
        UidRanges *r = open_ranges(8);
        uint32_t base_a, base_b, again;
        ASSERT_OK(uid_ranges_acquire(r, a, &base_a, NULL));
        ASSERT_OK(uid_ranges_acquire(r, b, &base_b, NULL));
        ASSERT_TRUE(base_a != base_b);
        ASSERT_OK(uid_ranges_release(r, a));
        ASSERT_OK(uid_ranges_acquire(r, b, &again, NULL));
        ASSERT_EQ(again, base_b);
        ASSERT_OK(uid_ranges_release(r, b));
        uid_ranges_free(r);
}

TEST(ranges_json_of_bare_ids_still_loads) {
        int dfd = open(test_tmpdir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_TRUE(dfd >= 0);
        const char *old = "{\"containers\": {\"web\": 100000, \"db\": 165536}, \"first\": 100000, \"size\": 65536}";
        ASSERT_OK(write_file_atomic(dfd, "ranges.json", old, strlen(old), 0600));
        close(dfd);
        UidRanges *r = open_ranges(8);
        ASSERT_EQ(uid_ranges_count(r), 2);
        uint32_t base;
        ASSERT_OK(uid_ranges_acquire(r, "/run/runc/web", &base, NULL));
        ASSERT_EQ(base, 231072);
        ASSERT_OK(uid_ranges_release(r, "web"));
        ASSERT_OK(uid_ranges_release(r, "db"));
        ASSERT_OK(uid_ranges_release(r, "/run/runc/web"));
        uid_ranges_free(r);
}

TEST(engine_mappings_are_claimed_exclusively) {
        UidRanges *r = open_ranges(8);
        uint32_t plain, next;
        ASSERT_OK(uid_ranges_acquire(r, "plain", &plain, NULL));
        ASSERT_EQ(plain, 100000);
        const struct {
                uint32_t base, count;
                const char *why;
        } refused[] = {
                { 0, 65536, "maps VM root" },
                { 50000, 65536, "maps VM ids below 100000, the floor of Stockade's ranges" },
                { 99999, 1, "maps VM ids below 100000, the floor of Stockade's ranges" },
                { UINT32_MAX - 100, 101, "maps ids past the last VM id, 4294967294" },
                { 120000, 65536, "overlaps the ids of container 'plain'" },
                { 200000, 65537, "maps 65537 ids, not 1 to 65536" },
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_free_ char *why = NULL;
                ASSERT_TRUE(uid_ranges_claim(r, "mapped", refused[i].base, refused[i].count, &why) < 0);
                ASSERT_STREQ(why, refused[i].why);
        }
        ASSERT_EQ(uid_ranges_count(r), 1);

        /* Kept as asked; the pool's next ranges go around it, also after a restart. */
        ASSERT_OK(uid_ranges_claim(r, "/run/containerd/mapped", 200000, 65536, NULL));
        ASSERT_OK(uid_ranges_claim(r, "/run/containerd/mapped", 200000, 65536, NULL));
        _cleanup_free_ char *why = NULL;
        ASSERT_EQ(uid_ranges_claim(r, "other", 265535, 10, &why), -EPERM);
        ASSERT_STREQ(why, "overlaps the ids of container 'mapped'");
        uid_ranges_free(r);
        r = open_ranges(8);
        ASSERT_EQ(uid_ranges_count(r), 2);
        ASSERT_OK(uid_ranges_acquire(r, "next", &next, NULL));
        ASSERT_EQ(next, 100000 + 3 * 65536);
        ASSERT_OK(uid_ranges_share(r, "member", 200000, NULL));
        ASSERT_OK(uid_ranges_release(r, "/run/containerd/mapped"));
        ASSERT_OK(uid_ranges_release(r, "member"));
        ASSERT_OK(uid_ranges_acquire(r, "after", &next, NULL));
        ASSERT_EQ(next, 165536);
        uid_ranges_free(r);
}
