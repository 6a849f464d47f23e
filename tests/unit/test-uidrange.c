/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>

#include "enforcer/uidrange.h"
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
