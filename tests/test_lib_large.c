// SPDX-License-Identifier: MIT
//
// test_lib_large.c -- large blocks: realloc through mremap keeps the data,
// the cache reuses freed memory (carved, merged, grown into) while it is
// still resident and gives it back on trim, calloc of reused memory is zero,
// alignment up to 1 MiB is exact, glibc's errno rules hold at the edges.
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "mallet.h"

// These tests check where large blocks are placed and how they are reused: a guarded block (src/secure/guard.h), placed alone
// between inaccessible pages, is none of that, so the guard is off.
__attribute__((constructor)) static void guard_off(void)
{
    setenv("MALLET_GUARD", "0", 1);     // read at start-up, which comes later
}



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

// A small block that realloc grows past 64 KiB moves to a mapping of its
// own (a large block, in the statistics), which keeps growing from there;
// the bytes come along every time.
static uint64_t large_bytes(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.large_allocated;
}

TEST(a_small_block_grown_past_64_kib_moves_to_a_mapping)
{
    size_t n = 40000;
    unsigned char *p = mallet_malloc(n);
    CHECK(p != NULL);
    fill(p, n, 3);
    uint64_t before = large_bytes();
    p = mallet_realloc(p, 70000);
    CHECK(p != NULL && filled(p, n, 3));
    CHECK(large_bytes() >= before + 70000);
    fill(p, 70000, 4);
    p = mallet_realloc(p, 200000);
    CHECK(p != NULL && filled(p, 70000, 4));
    CHECK(mallet_usable_size(p) >= 200000 && large_bytes() >= before + 200000);
    mallet_free(p);
    CHECK(large_bytes() == before);
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

#define MIB ((size_t)1 << 20)

static void free_twice(void *p)
{
    mallet_free(p);
    mallet_free(p);
}

// Pages of [p, p + n) resident now; -1 when part of the range is not mapped.
static long resident_pages(const void *p, size_t n)
{
    static unsigned char vec[(64 << 20) / 4096];
    if (n > sizeof vec * 4096 || mincore((void *)p, n, vec) != 0)
        return -1;
    long r = 0;
    for (size_t i = 0; i < (n + 4095) / 4096; i++)
        r += vec[i] & 1;
    return r;
}

// Whole pages of n bytes.
static long pages(size_t n)
{
    return (long)((n + 4095) / 4096);
}

// A range of n bytes written with `byte` (so resident) and freed: it is now
// in the cache, kept there for 10 s.
static unsigned char *cached_range(size_t n, int byte)
{
    mallet_option_set("purge_delay_ms", 10000);
    unsigned char *p = mallet_malloc(n);
    memset(p, byte, n);
    mallet_free(p);
    return p;
}

TEST(a_smaller_request_is_carved_from_a_freed_block_still_resident)
{
    unsigned char *p = cached_range(24 * MIB, 1);
    unsigned char *a = mallet_malloc(10 * MIB);
    unsigned char *b = mallet_malloc(9 * MIB);
    CHECK(a == p);                          // carved from the front
    CHECK(b == p + 10 * MIB);               // and the rest stays cached
    CHECK(resident_pages(a, 10 * MIB) == pages(10 * MIB));
    CHECK(resident_pages(b, 9 * MIB) == pages(9 * MIB));
    mallet_free(a);
    mallet_free(b);
}

TEST(adjacent_freed_blocks_merge_into_one_range)
{
    unsigned char *p = cached_range(16 * MIB, 1);
    unsigned char *a = mallet_malloc(8 * MIB);
    unsigned char *b = mallet_malloc(8 * MIB);
    CHECK(a == p && b == p + 8 * MIB);
    mallet_free(b);
    mallet_free(a);
    // Neither half holds 12 MiB; the merged range does, all of it resident.
    unsigned char *q = mallet_malloc(12 * MIB);
    CHECK(q == p);
    CHECK(resident_pages(q, 12 * MIB) == pages(12 * MIB));
    mallet_free(q);
}

TEST(a_larger_request_grows_into_a_cached_block)
{
#if defined(__SANITIZE_ADDRESS__) || defined(MALLET_TRACK_VALGRIND)
    TEST_SKIP("checker builds never move a mapping with mremap");
#endif
    size_t n = 6 * MIB, m = 10 * MIB;
    cached_range(n, 1);
    unsigned char *q = mallet_malloc(m);
    CHECK(q != NULL);
    // The 6 MiB already faulted in came along (moved or grown in place, not
    // copied); only the difference is new.
    long r = resident_pages(q, m);
    CHECK(r >= pages(n) && r < pages(m));
    mallet_free(q);
}

TEST(calloc_of_a_carved_block_is_zero_after_its_previous_owner_wrote)
{
    size_t n = 12 * MIB, m = 5 * MIB + 123;
    unsigned char *p = cached_range(n, 0xa5);
    unsigned char *q = mallet_calloc(1, m);
    CHECK(q == p);                          // reused, so calloc had to clear it
    size_t nonzero = 0;
    for (size_t i = 0; i < m; i++)
        nonzero += q[i] != 0;
    CHECK(nonzero == 0);
    mallet_free(q);
}

TEST(trim_unmaps_cached_ranges)
{
    unsigned char *p = cached_range(20 * MIB, 1);
    unsigned char *a = mallet_malloc(4 * MIB);   // leaves 16 MiB cached behind it
    CHECK(a == p);
    CHECK(resident_pages(p + 4 * MIB, 16 * MIB) == pages(16 * MIB));
    mallet_trim();
    CHECK(resident_pages(p + 4 * MIB, 16 * MIB) == -1);
    CHECK(resident_pages(a, 4 * MIB) == pages(4 * MIB));
    mallet_free(a);
}

TEST(double_free_of_a_carved_block_is_caught)
{
    mallet_option_set("purge_delay_ms", 10000);
    void *p = mallet_malloc(8 * MIB);
    mallet_free(p);
    void *arg[2] = { mallet_malloc(3 * MIB), mallet_malloc(3 * MIB) };
    CHECK(arg[0] == p);
    char out[512];
    CHECK(test_dies(free_twice, arg[1], "double free of", out, sizeof out));
    mallet_free(arg[0]);
    mallet_free(arg[1]);
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
    CHECK(mallet_posix_memalign(&p, SIZE_MAX / 2 + 1, 10) == ENOMEM && errno == ENOMEM);
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
