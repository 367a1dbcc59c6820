// SPDX-License-Identifier: MIT
//
// override_basic.c -- the malloc family through libc's names: basic use,
// 16-byte alignment, size boundaries, many gigabytes over many cycles, and
// 100,000 random malloc/free pairs with their contents checked and, under
// libmallet, the allocated byte count back where it started.
#include "override_common.h"

// Sizes around every power of two and the usual class and page edges.
static const size_t boundary_sizes[] = {
    0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 112, 127, 128, 129,
    160, 192, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049,
    4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 32769,
    65535, 65536, 65537, 131071, 131072, 131073, 262143, 262144, 262145,
    524287, 524288, 524289, 1048575, 1048576, 1048577, 2097151, 2097152, 2097153,
    4194304 + 1, 16777216 + 3,
};
#define NBOUNDARY (sizeof boundary_sizes / sizeof boundary_sizes[0])

TEST(basic_malloc_write_free)
{
    char *p = malloc(100);
    CHECK(p != NULL);
    memset(p, 'a', 100);
    char *q = malloc(100);
    CHECK(q != NULL && q != p);
    CHECK(q + 100 <= p || p + 100 <= q);
    memset(q, 'b', 100);
    for (int i = 0; i < 100; i++)
        CHECK(p[i] == 'a' && q[i] == 'b');
    free(p);
    free(q);
    free(NULL);
}

TEST(every_pointer_is_16_byte_aligned)
{
    enum { N = 4000 };
    static void *ptrs[N];
    uint64_t seed = 42;
    for (int i = 0; i < N; i++) {
        size_t n = (i < 2048) ? (size_t)i : (size_t)(test_rand(&seed) % 300000);
        ptrs[i] = malloc(n);
        CHECK(ptrs[i] != NULL);
        CHECK(((uintptr_t)ptrs[i] & 15) == 0);
    }
    for (int i = 0; i < N; i++) {
        void *c = calloc(1, (size_t)i + 1);
        CHECK(((uintptr_t)c & 15) == 0);
        void *r = realloc(ptrs[i], (size_t)i * 3 + 1);
        CHECK(r != NULL && ((uintptr_t)r & 15) == 0);
        free(r);
        free(c);
    }
}

TEST(boundary_sizes_hold_their_bytes)
{
    void *ptrs[NBOUNDARY];
    for (size_t i = 0; i < NBOUNDARY; i++) {
        size_t n = boundary_sizes[i];
        ptrs[i] = malloc(n);
        CHECK(ptrs[i] != NULL);
        CHECK(malloc_usable_size(ptrs[i]) >= n);
        test_fill(ptrs[i], n, (unsigned)i);
    }
    for (size_t i = 0; i < NBOUNDARY; i++) {
        CHECK(test_check_fill(ptrs[i], boundary_sizes[i], (unsigned)i));
        free(ptrs[i]);
    }
    // The same sizes, freed in the order they were made and remade at once.
    for (size_t i = 0; i < NBOUNDARY; i++) {
        void *p = malloc(boundary_sizes[i]);
        test_fill(p, boundary_sizes[i], 3);
        free(p);
        p = malloc(boundary_sizes[i]);
        CHECK(p != NULL);
        free(p);
    }
}

// Over 4 GiB in total passes through the allocator: blocks of mixed sizes
// from 16 KiB to 4 MiB, about 64 MiB live at a time, freed each cycle.
TEST(more_than_4_gib_in_total_over_many_cycles)
{
    enum { PER_CYCLE = 40 };
    uint64_t seed = 7, total = 0;
    uint64_t start = test_allocated();
    int cycle = 0;
    while (total <= (5ull << 30)) {
        void *ptrs[PER_CYCLE];
        size_t sizes[PER_CYCLE];
        for (int i = 0; i < PER_CYCLE; i++) {
            sizes[i] = 16384 + (size_t)(test_rand(&seed) % (4u << 20));
            ptrs[i] = malloc(sizes[i]);
            CHECK(ptrs[i] != NULL);
            if (!ptrs[i])
                return;
            test_fill_ends(ptrs[i], sizes[i], (unsigned)(cycle + i));
            total += sizes[i];
        }
        for (int i = 0; i < PER_CYCLE; i++) {
            CHECK(test_check_ends(ptrs[i], sizes[i], (unsigned)(cycle + i)));
            free(ptrs[i]);
        }
        cycle++;
    }
    CHECK(total > (4ull << 30));
    CHECK(cycle > 50);
    if (test_on_mallet())
        CHECK_ALLOCATED_IS(start);
}

// 100,000 random pairs (fewer under memcheck): each step frees a random slot
// and refills it with 1 B .. 1 MiB (mostly small), checking the old contents.
TEST(random_malloc_free_pairs_keep_contents_and_leak_nothing)
{
    enum { SLOTS = 1000 };
    static unsigned char *ptrs[SLOTS];
    static size_t sizes[SLOTS];
    static unsigned seeds[SLOTS];
    long steps = test_scaled(100000, 20);
    uint64_t seed = 12345;
    uint64_t start = test_allocated();
    for (long s = 0; s < steps; s++) {
        int i = (int)(test_rand(&seed) % SLOTS);
        if (ptrs[i]) {
            CHECK(test_check_ends(ptrs[i], sizes[i], seeds[i]));
            free(ptrs[i]);
        }
        uint64_t r = test_rand(&seed);
        size_t n;
        switch (r % 16) {
        case 0:  n = 1 + (size_t)(r >> 8) % (1u << 20); break;   // up to 1 MiB
        case 1:
        case 2:  n = 1 + (size_t)(r >> 8) % 65536; break;
        default: n = 1 + (size_t)(r >> 8) % 1024; break;
        }
        ptrs[i] = malloc(n);
        CHECK(ptrs[i] != NULL);
        if (!ptrs[i])
            return;
        sizes[i] = n;
        seeds[i] = (unsigned)s;
        test_fill_ends(ptrs[i], n, seeds[i]);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (ptrs[i]) {
            CHECK(test_check_ends(ptrs[i], sizes[i], seeds[i]));
            free(ptrs[i]);
            ptrs[i] = NULL;
        }
    }
    if (test_on_mallet())
        CHECK_ALLOCATED_IS(start);
}

TEST(mallet_stats_count_what_malloc_hands_out)
{
    if (!test_on_mallet())
        TEST_SKIP("libmallet statistics (glibc build)");
    uint64_t before = test_allocated();
    void *p = opaque_ptr(malloc(1000));
    CHECK(test_allocated() >= before + 1000);
    free(p);
    CHECK(test_allocated() == before);
}
