// SPDX-License-Identifier: MIT
//
// test_teach_milestones.c -- each teach design shows the one thing it adds:
//
//   bump      addresses (and the footprint) grow linearly; a freed block is
//             never handed out again
//   firstfit  allocate 100, free every other, allocate again: the same
//             addresses come back, the footprint stays
//   split     after [1024, 16, 1024, 16, ...] the 1024s are freed: small
//             requests are carved from their leftovers, the break stays
//   M6        10 blocks of 1 MiB are mappings of their own: page aligned,
//             the footprint grows by exactly their pages and falls back when
//             they are freed, so the break never moved
//   arena     many blocks, one reset, the same addresses again
//
// (Alignment, milestone 5, is seed_alignment in test_teach_seed.c, for all.)
#include "test.h"
#include "seed_table.h"

TEST(bump_grows_linearly_and_never_reuses)
{
    const teach_allocator_t *a = design("bump");
    enum { N = 1000 };
    static char *p[N];
    static size_t fp[N];
    for (int i = 0; i < N; i++) {
        p[i] = a->malloc(24);
        fp[i] = a->footprint();
        CHECK(p[i] != NULL);
    }
    ptrdiff_t stride = p[1] - p[0];
    CHECK(stride >= 24 && stride <= 64);
    int linear = 0;
    for (int i = 1; i < N; i++)
        linear += p[i] - p[i - 1] == stride;
    CHECK(linear == N - 1);
    // The footprint follows the addresses (within a page of growth slack).
    CHECK(fp[N - 1] - fp[0] >= (size_t)(stride * (N - 1)));
    CHECK(fp[N - 1] - fp[0] <= (size_t)(stride * (N - 1)) + mallet__os_page_size());
    a->free(p[N - 1]);
    char *q = a->malloc(24);
    CHECK(q == p[N - 1] + stride);
    CHECK(a->footprint() >= fp[N - 1]);
    for (int i = 0; i < N - 1; i++)
        a->free(p[i]);
    a->free(q);
    CHECK(a->live_bytes() == 0);
    a->reset();
}

TEST(firstfit_reuses_freed_blocks)
{
    const teach_allocator_t *a = design("firstfit");
    enum { N = 100 };
    char *p[N], *q[N / 2];
    for (int i = 0; i < N; i++)
        CHECK((p[i] = a->malloc(64)) != NULL);
    size_t fp = a->footprint();
    for (int i = 0; i < N; i += 2)
        a->free(p[i]);
    int reused = 0;
    for (int i = 0; i < N / 2; i++) {
        q[i] = a->malloc(64);
        for (int j = 0; j < N; j += 2)
            reused += q[i] == p[j];
    }
    CHECK(reused == N / 2);
    CHECK(a->footprint() == fp);
    for (int i = 1; i < N; i += 2)
        a->free(p[i]);
    for (int i = 0; i < N / 2; i++)
        a->free(q[i]);
    CHECK(a->live_bytes() == 0);
}

typedef struct { size_t inside, outside; } leftover_t;

// Count small blocks landing inside the freed 1024-byte blocks, for one design.
static leftover_t leftovers(const teach_allocator_t *a, size_t *growth)
{
    enum { PAIRS = 64, SMALL = 16 * PAIRS };
    char *big[PAIRS], *tiny[PAIRS];
    static char *small[SMALL];
    for (int i = 0; i < PAIRS; i++) {
        big[i] = a->malloc(1024);
        tiny[i] = a->malloc(16);
    }
    size_t fp = a->footprint();
    for (int i = 0; i < PAIRS; i++)
        a->free(big[i]);
    leftover_t r = { 0, 0 };
    for (int i = 0; i < SMALL; i++) {
        small[i] = a->malloc(16);
        bool in = false;
        for (int j = 0; j < PAIRS; j++)
            in |= small[i] >= big[j] && small[i] + 16 <= big[j] + 1024;
        in ? r.inside++ : r.outside++;
    }
    *growth = a->footprint() - fp;
    for (int i = 0; i < SMALL; i++)
        a->free(small[i]);
    for (int i = 0; i < PAIRS; i++)
        a->free(tiny[i]);
    return r;
}

TEST(split_carves_small_blocks_from_large_leftovers)
{
    const teach_allocator_t *s = design("split"), *f = design("firstfit");
    size_t sgrow, fgrow;
    leftover_t sl = leftovers(s, &sgrow), fl = leftovers(f, &fgrow);
    printf("  split:    %zu of %zu small blocks inside freed 1024s, break grew %zu\n",
           sl.inside, sl.inside + sl.outside, sgrow);
    printf("  firstfit: %zu of %zu small blocks inside freed 1024s, break grew %zu\n",
           fl.inside, fl.inside + fl.outside, fgrow);
    // Sixteen 16-byte blocks fit in every freed 1024 even with 32 bytes of
    // header each: split serves them all from the leftovers.
    CHECK(sl.outside == 0);
    CHECK(sgrow == 0);
    // First fit hands each freed 1024 out whole: one small block per hole.
    CHECK(fl.inside == 64);
    CHECK(fgrow > 0);
    CHECK(s->live_bytes() == 0 && f->live_bytes() == 0);
}

TEST(m6_large_blocks_leave_the_break_alone)
{
    size_t page = mallet__os_page_size();
    for (const teach_allocator_t *const *ap = teach_allocators; *ap; ap++) {
        const teach_allocator_t *a = *ap;
        if (!(seed_traits(a->name) & SEED_MMAPS_LARGE))
            continue;
        void *small = a->malloc(64);
        size_t fp0 = a->footprint();
        char *p[10];
        bool aligned = true;
        for (int i = 0; i < 10; i++) {
            p[i] = a->malloc(1 << 20);
            aligned &= p[i] != NULL && ((uintptr_t)p[i] & (page - 1)) == 0;
            if (p[i])
                p[i][(1 << 20) - 1] = 1;
        }
        size_t fp1 = a->footprint();
        for (int i = 0; i < 10; i++)
            a->free(p[i]);
        size_t fp2 = a->footprint();
        a->free(small);
        size_t want = 10 * ((((size_t)1 << 20) + page - 1) & ~(page - 1));
        if (!aligned || fp1 - fp0 != want || fp2 != fp0) {
            test_failures++;
            fprintf(stderr, "  CHECK failed [%s]: 10 x 1 MiB page aligned %d, footprint %zu -> "
                    "%zu (+%zu, want +%zu) -> %zu after free\n", a->name, aligned, fp0, fp1,
                    fp1 - fp0, want, fp2);
        } else {
            printf("  %s: break unchanged, +%zu mapped, back to %zu after free\n", a->name,
                   fp1 - fp0, fp2);
        }
    }
}

TEST(arena_reset_reuses_the_same_memory)
{
    const teach_allocator_t *a = design("arena");
    enum { N = 5000 };
    static char *p[N];
    uint64_t rng = 42;
    for (int i = 0; i < N; i++)
        CHECK((p[i] = a->malloc(seed_size(&rng, 12))) != NULL);
    size_t fp = a->footprint();
    a->reset();
    CHECK(a->live_bytes() == 0);
    rng = 42;
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a->malloc(seed_size(&rng, 12)) == p[i];
    CHECK(same == N);
    CHECK(a->footprint() == fp);
    a->reset();
}
