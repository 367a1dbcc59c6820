// SPDX-License-Identifier: MIT
//
// test_lib_large.c -- large blocks: realloc through mremap keeps the data,
// the cache reuses freed mappings, alignment up to 1 MiB is exact, glibc's
// errno rules hold at the edges.
#include "test.h"

#include <errno.h>
#include <stdint.h>

#include "mallet.h"


static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (unsigned char)(seed + i / 4096);
    p[n - 1] = (unsigned char)seed;
}

static int filled(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != (unsigned char)(seed + i / 4096))
            return 0;
    return p[n - 1] == (unsigned char)seed;
}

TEST(large_realloc_grows_and_shrinks_keeping_the_data)
{
    size_t n = 300000;
    unsigned char *p = mallet_malloc(n);
    CHECK(p != NULL);
    fill(p, n, 7);
    for (int step = 0; step < 8; step++) {
        size_t m = n * 2;
        p = mallet_realloc(p, m);
        CHECK(p != NULL);
        CHECK(filled(p, n, 7));
        n = m;
        fill(p, n, 7);
    }
    CHECK(mallet_usable_size(p) >= n);
    p = mallet_realloc(p, 400000);
    CHECK(p != NULL && mallet_usable_size(p) >= 400000);
    CHECK(p[0] == 7);
    p = mallet_realloc(p, 1000);            // large to small
    CHECK(p != NULL && p[0] == 7);
    mallet_free(p);
}

TEST(the_cache_absorbs_grow_shrink_churn)
{
    mallet_option_set("purge_delay_ms", 10000);
    mallet_stats_t a, b;
    void *p = mallet_malloc(1 << 20);
    mallet_free(p);
    mallet_stats_get(&a);
    long rounds = test_under_valgrind() ? 20 : 2000;
    for (long i = 0; i < rounds; i++) {
        void *q = mallet_malloc(1 << 20);
        CHECK(q == p);                      // the same mapping, from the cache
        ((char *)q)[i % (1 << 20)] = 1;
        mallet_free(q);
    }
    mallet_stats_get(&b);
    CHECK(b.mapped == a.mapped);
    mallet_trim();
    mallet_stats_get(&b);
    CHECK(b.mapped < a.mapped);             // trim empties the cache
}

TEST(calloc_of_a_cached_mapping_is_zero)
{
    mallet_option_set("purge_delay_ms", 10000);
    size_t n = 2 << 20;
    unsigned char *p = mallet_malloc(n);
    memset(p, 0xff, n);
    mallet_free(p);
    unsigned char *q = mallet_calloc(1, n);
    CHECK(q != NULL);
    int zero = 1;
    for (size_t i = 0; i < n; i += 512)
        zero &= q[i] == 0;
    CHECK(zero && q[n - 1] == 0);
    mallet_free(q);
}

TEST(alignments_from_16_bytes_to_1_mib_are_exact)
{
    size_t sizes[] = { 1, 16, 100, 4096, 100000, 300000 };
    for (size_t a = 16; a <= (1u << 20); a *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = mallet_aligned_alloc(a, n);
            void *q = NULL;
            CHECK(mallet_posix_memalign(&q, a, n) == 0);
            CHECK(p && ((uintptr_t)p & (a - 1)) == 0);
            CHECK(q && ((uintptr_t)q & (a - 1)) == 0);
            // Aligned blocks cost at most the alignment beyond what an
            // unaligned block of that size would get.
            void *r = mallet_malloc(n);
            size_t plain = mallet_usable_size(r);
            CHECK(mallet_usable_size(p) >= n && mallet_usable_size(p) < plain + a);
            memset(p, 1, n);
            memset(q, 2, n);
            mallet_free(r);
            mallet_free(p);
            mallet_free(q);
        }
    }
}

TEST(glibc_edges_errno_and_overflow)
{
    errno = 0;
    CHECK(mallet_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mallet_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(mallet_reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    void *p = NULL;
    errno = 77;
    CHECK(mallet_posix_memalign(&p, 24, 10) == EINVAL && errno == 77);
    CHECK(mallet_posix_memalign(&p, 4, 10) == EINVAL);
    CHECK(mallet_posix_memalign(&p, SIZE_MAX / 2 + 1, 10) == ENOMEM && errno == 77);
    void *a = mallet_malloc(0), *b = mallet_malloc(0);
    CHECK(a && b && a != b);
    p = mallet_malloc(10);
    errno = 55;
    CHECK(mallet_realloc(p, 0) == NULL);
    mallet_free(a);
    mallet_free(b);
    mallet_free(NULL);
    CHECK(errno == 55);
    CHECK(mallet_option_set("no_such_option", 1) == false);
}
