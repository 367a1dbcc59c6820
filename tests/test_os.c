// SPDX-License-Identifier: MIT
//
// test_os.c -- the OS seam: reserve/commit/purge/release, the private and
// fake breaks, and fault injection through the fake OS.
#include "test.h"
#include "os/os.h"

#include <errno.h>
#include <stdint.h>

TEST(reserve_is_aligned_and_commit_makes_it_usable)
{
    size_t align = 1 << 22;
    char *p = mallet__os_reserve(1 << 20, align);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & (align - 1)) == 0);
    CHECK(mallet__os_commit(p, 1 << 20));
    CHECK(p[12345] == 0);
    p[12345] = 7;
    CHECK(mallet__os_purge(p, 1 << 20));
    CHECK(p[12345] == 0);
    mallet__os_release(p, 1 << 20);
}

TEST(remap_keeps_contents)
{
    size_t page = mallet__os_page_size();
    char *p = mallet__os_map(page, 0);
    CHECK(p != NULL);
    p[0] = 'x';
    char *q = mallet__os_remap(p, page, 64 * page);
    CHECK(q != NULL && q[0] == 'x');
    q[64 * page - 1] = 'y';
    mallet__os_release(q, 64 * page);
}

TEST(private_breaks_are_independent_and_exact)
{
    mallet_brk_t a, b;
    CHECK(mallet__brk_init_private(&a, 1 << 24));
    CHECK(mallet__brk_init_private(&b, 1 << 24));
    char *pa = mallet__brk_grow(&a, 100);
    char *pb = mallet__brk_grow(&b, 5000);
    CHECK(pa == a.base && pb == b.base);
    pa[99] = 1;
    pb[4999] = 1;
    CHECK(mallet__brk_footprint(&a) == 100);
    CHECK(mallet__brk_footprint(&b) == 5000);
    CHECK(mallet__brk_grow(&a, -50) == pa + 100);
    CHECK(mallet__brk_footprint(&a) == 50);
    errno = 0;
    CHECK(mallet__brk_grow(&a, 1 << 25) == NULL && errno == ENOMEM);
    CHECK(mallet__brk_footprint(&a) == 50);
    mallet__brk_reset(&a);
    CHECK(mallet__brk_footprint(&a) == 0);
    mallet__brk_destroy(&a);
    mallet__brk_destroy(&b);
}

TEST(fake_os_serves_from_buffer_and_fails_the_nth_request)
{
    static char buf[1 << 20] __attribute__((aligned(4096)));
    mallet__os_fake_use(buf, sizeof buf);
    char *p = mallet__os_map(4096, 0);
    CHECK(p >= buf && p < buf + sizeof buf);
    mallet__os_fake_fail(2, 1);
    CHECK(mallet__os_map(4096, 0) != NULL);          // request 1
    errno = 0;
    CHECK(mallet__os_map(4096, 0) == NULL && errno == ENOMEM); // request 2
    CHECK(mallet__os_map(4096, 0) != NULL);          // request 3
    errno = 0;
    CHECK(mallet__os_map(sizeof buf, 0) == NULL && errno == ENOMEM); // too big
    mallet__os_fake_use(NULL, 0);
}

TEST(fault_injection_stops_a_break)
{
    mallet_brk_t b;
    CHECK(mallet__brk_init_private(&b, 1 << 20));
    mallet__os_fake_fail(1, 0);
    errno = 0;
    CHECK(mallet__brk_grow(&b, 16) == NULL && errno == ENOMEM);
    CHECK(mallet__brk_footprint(&b) == 0);
    mallet__os_fake_fail(0, 0);
    CHECK(mallet__brk_grow(&b, 16) != NULL);
    mallet__brk_destroy(&b);
}
