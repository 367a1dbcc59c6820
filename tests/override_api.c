// SPDX-License-Identifier: MIT
//
// override_api.c -- the edges of the malloc API, checked against glibc as the
// oracle: errno on exhaustion and overflow, calloc zeroing, the alignment
// functions and their argument checks, realloc's corner cases, usable sizes,
// free keeping errno, malloc(0), and the sized frees.
#include "override_common.h"

#include <stdint.h>

TEST(malloc_of_huge_sizes_fails_with_enomem)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    size_t sizes[] = { SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX,
                       (size_t)1 << 62, (size_t)1 << 50 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        void *p = malloc(opaque(sizes[i]));
        CHECK(p == NULL);
        CHECK(errno == ENOMEM);
        free(p);
    }
    errno = 0;
    void *a = aligned_alloc(64, opaque(SIZE_MAX - 32));
    CHECK(a == NULL && errno == ENOMEM);
    errno = 0;
    a = memalign(4096, opaque(SIZE_MAX / 2));
    CHECK(a == NULL && errno == ENOMEM);
    void *q = (void *)1;
    CHECK(posix_memalign(&q, 64, opaque(SIZE_MAX - 64)) == ENOMEM);
    errno = 0;
    CHECK(valloc(opaque(SIZE_MAX - 100)) == NULL && errno == ENOMEM);
    // The allocator still works after every refusal.
    void *p = malloc(64);
    CHECK(p != NULL);
    free(p);
}

TEST(calloc_and_reallocarray_overflow_give_enomem)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    errno = 0;
    CHECK(calloc(opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(opaque((size_t)1 << 32), (size_t)1 << 32) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(opaque(SIZE_MAX), opaque(SIZE_MAX)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
    char *p = malloc(32);
    strcpy(p, "survives");
    errno = 0;
    CHECK(reallocarray(opaque_ptr(p), opaque((size_t)1 << 40), (size_t)1 << 40) == NULL && errno == ENOMEM);
    CHECK(strcmp(p, "survives") == 0);
    char *r = reallocarray(p, 10, 10);
    CHECK(r != NULL && strcmp(r, "survives") == 0);
    free(r);
}

TEST(calloc_zeroes_even_a_reused_dirty_block)
{
    size_t sizes[] = { 1, 16, 24, 100, 1000, 4096, 40000, 200000, 3000000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int round = 0; round < 4; round++) {
            unsigned char *d = malloc(n);
            memset(d, 0xA5, n);
            free(d);
            unsigned char *c = calloc(n, 1);
            CHECK(c != NULL);
            size_t bad = 0;
            for (size_t k = 0; k < n; k++)
                bad += c[k] != 0;
            CHECK(bad == 0);
            memset(c, 0x5A, n);
            free(c);
        }
    }
    unsigned char *c = calloc(1000, 24);
    size_t bad = 0;
    for (size_t k = 0; k < 24000; k++)
        bad += c[k] != 0;
    CHECK(bad == 0);
    free(c);
    // calloc of zero elements is a unique, freeable pointer, as malloc(0).
    void *z = calloc(0, 10);
    CHECK(z != NULL);
    free(z);
}

TEST(posix_memalign_rejects_bad_alignments_and_keeps_errno)
{
    size_t bad[] = { 0, 3, 24, sizeof(void *) / 2, 48, 4097 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = (void *)0x1234;
        errno = 4321;
        CHECK(posix_memalign(&p, opaque(bad[i]), 64) == EINVAL);
        CHECK(errno == 4321);
    }
    for (size_t a = sizeof(void *); a <= (1u << 20); a *= 2) {
        void *p = NULL;
        errno = 4321;
        CHECK(posix_memalign(&p, a, 100) == 0);
        CHECK(errno == 4321);
        CHECK(p != NULL && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
    }
}

TEST(aligned_alloc_and_memalign_serve_every_power_of_two_exactly)
{
    size_t sizes[] = { 1, 16, 100, 4096, 100000 };
    for (size_t a = 16; a <= (1u << 20); a *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = aligned_alloc(a, n);
            void *q = memalign(a, n);
            CHECK(p != NULL && ((uintptr_t)p & (a - 1)) == 0);
            CHECK(q != NULL && ((uintptr_t)q & (a - 1)) == 0);
            CHECK(malloc_usable_size(p) >= n && malloc_usable_size(q) >= n);
            // libmallet serves the alignment exactly: no over-rounded size.
            // The block is at most what malloc(n) gives (its size class) or
            // less than n + a.
            if (test_on_mallet()) {
                void *m = opaque_ptr(malloc(n));
                size_t plain = malloc_usable_size(m);
                free(m);
                CHECK(malloc_usable_size(p) < n + a || malloc_usable_size(p) <= plain);
                CHECK(malloc_usable_size(q) < n + a || malloc_usable_size(q) <= plain);
            }
            memset(p, 1, n);
            memset(q, 2, n);
            free(p);
            free(q);
        }
    }
    // Many at once: distinct and non-overlapping.
    enum { N = 64 };
    unsigned char *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = memalign(256, 200);
        test_fill(ps[i], 200, (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        CHECK(((uintptr_t)ps[i] & 255) == 0);
        CHECK(test_check_fill(ps[i], 200, (unsigned)i));
        free(ps[i]);
    }
}

TEST(valloc_and_pvalloc_are_page_aligned)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t sizes[] = { 1, 100, 4095, 4096, 4097, 10000, 1 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *v = valloc(sizes[i]);
        void *pv = pvalloc(sizes[i]);
        CHECK(v != NULL && ((uintptr_t)v & (page - 1)) == 0);
        CHECK(pv != NULL && ((uintptr_t)pv & (page - 1)) == 0);
        size_t rounded = (sizes[i] + page - 1) & ~(page - 1);
        CHECK(malloc_usable_size(v) >= sizes[i]);
        // pvalloc rounds the request itself up to whole pages.
        CHECK(malloc_usable_size(pv) >= rounded);
        memset(pv, 3, rounded);
        free(v);
        free(pv);
    }
    void *z = pvalloc(0);
    CHECK(z != NULL && ((uintptr_t)z & (page - 1)) == 0);
    free(z);
}

TEST(realloc_null_and_zero_act_as_glibc)
{
    char *p = realloc(NULL, 40);
    CHECK(p != NULL);
    memset(p, 7, 40);
    // glibc: realloc(p, 0) frees p and returns NULL.
    errno = 0;
    void *r = realloc(p, 0);
    CHECK(r == NULL);
    void *z = realloc(NULL, 0);
    CHECK(z != NULL);
    free(z);
}

TEST(realloc_keeps_the_common_bytes_across_shrink_and_grow)
{
    size_t steps[] = { 1, 24, 17, 200, 100, 4000, 70000, 3000, 2000000, 1500000,
                       5000000, 600, 8, 300000, 40, 9000000, 2 };
    unsigned char *p = NULL;
    size_t have = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        p = realloc(p, n);
        CHECK(p != NULL);
        if (!p)
            return;
        size_t keep = have < n ? have : n;
        CHECK(test_check_fill(p, keep, 99));
        test_fill(p, n, 99);   // whole block carries the pattern from offset 0
        have = n;
        CHECK(((uintptr_t)p & 15) == 0);
    }
    free(p);
}

TEST(realloc_failure_leaves_the_block_alone)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    char *p = malloc(100);
    test_fill((unsigned char *)p, 100, 5);
    errno = 0;
    CHECK(realloc(opaque_ptr(p), opaque(SIZE_MAX - 8)) == NULL && errno == ENOMEM);
    CHECK(test_check_fill((unsigned char *)p, 100, 5));
    char *big = malloc(3 << 20);
    test_fill_ends((unsigned char *)big, 3 << 20, 6);
    errno = 0;
    CHECK(realloc(opaque_ptr(big), opaque((size_t)1 << 62)) == NULL && errno == ENOMEM);
    CHECK(test_check_ends((unsigned char *)big, 3 << 20, 6));
    free(big);
    free(p);
}

TEST(malloc_usable_size_is_zero_for_null_and_covers_the_request)
{
    CHECK(malloc_usable_size(NULL) == 0);
    for (size_t n = 0; n < 70000; n = n * 2 + 3) {
        unsigned char *p = malloc(n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n);
        memset(p, 9, u);   // the whole usable size is the caller's to write
        free(p);
    }
}

TEST(free_never_changes_errno)
{
    void *ps[] = { malloc(0), malloc(1), malloc(100), malloc(5000), malloc(200000),
                   malloc(4 << 20), calloc(3, 30), memalign(4096, 10), NULL };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        errno = 1234;
        free(ps[i]);
        CHECK(errno == 1234);
    }
    // A free that returns a large mapping to the OS also keeps errno.
    for (int i = 0; i < 20; i++) {
        void *p = malloc(((size_t)i + 1) << 20);
        errno = 1234;
        free(p);
        CHECK(errno == 1234);
    }
}

TEST(malloc_zero_is_unique_and_freeable)
{
    enum { N = 100 };
    void *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = malloc(0);
        CHECK(ps[i] != NULL);
        for (int j = 0; j < i; j++)
            CHECK(ps[j] != ps[i]);
    }
    for (int i = 0; i < N; i++)
        free(ps[i]);
}

TEST(free_sized_and_free_aligned_sized)
{
    if (!free_sized || !free_aligned_sized) {
        if (test_on_mallet())
            CHECK(free_sized && free_aligned_sized);
        else
            TEST_SKIP("this glibc has no free_sized/free_aligned_sized");
        return;
    }
    for (size_t n = 1; n < 3000000; n = n * 3 + 1) {
        void *p = malloc(n);
        memset(p, 1, n);
        errno = 77;
        free_sized(p, n);
        CHECK(errno == 77);
        void *q = aligned_alloc(256, n);
        CHECK(((uintptr_t)q & 255) == 0);
        free_aligned_sized(q, 256, n);
        CHECK(errno == 77);
    }
    free_sized(NULL, 10);
    free_aligned_sized(NULL, 64, 10);
}

TEST(mallinfo2_and_malloc_trim_answer)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    void *p = opaque_ptr(malloc(10000));
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.uordblks >= 10000 || mi.hblkhd >= 10000);
    free(p);
    malloc_trim(0);
    p = malloc(100);
    CHECK(p != NULL);
    free(p);
}
