// SPDX-License-Identifier: MIT
//
// test_teach_weaknesses.c -- the known weakness each teach design names in
// its opening comment, shown by a test, each against the design that fixes
// it where there is one:
//
//   bump        a malloc/free loop grows the footprint with the iterations
//   firstfit    no splitting: a small request takes a whole freed 4 KiB block
//   firstfit,   no coalescing: free 1000 x 64, then 500 x 128 grows the
//   split       footprint (coalesce serves them from the freed space)
//   segregated  memory stays in its class: free 1000 x 32, then 500 x 64
//               grows the footprint (not in coalesce)
//   buddy       malloc(2^k) takes almost 2^(k+1) bytes
//   arena       without reset, a malloc/free loop grows like bump
//
// (Coalesce's weakness, the walk over scattered free blocks, is a matter of
// speed: bench/sections/10-teach.sh measures it, tests assert no timings.)
#include "test.h"
#include "seed_table.h"

// Footprint growth over `loops` malloc(64)/free pairs.
static size_t loop_growth(const teach_allocator_t *a, int loops)
{
    size_t fp = a->footprint();
    for (int i = 0; i < loops; i++)
        a->free(a->malloc(64));
    return a->footprint() - fp;
}

TEST(bump_footprint_grows_with_a_malloc_free_loop)
{
    const teach_allocator_t *a = design("bump"), *f = design("firstfit");
    size_t g1 = loop_growth(a, 1000), g2 = loop_growth(a, 2000);
    loop_growth(f, 1);                     // the first block grows any heap
    size_t gf = loop_growth(f, 3000);
    printf("  bump: 1000 pairs grow %zu bytes, 2000 more grow %zu; firstfit: 3000 grow %zu\n",
           g1, g2, gf);
    CHECK(g1 >= 1000 * 64);
    CHECK(g2 >= 2 * g1 - mallet__os_page_size());
    CHECK(gf == 0);
    a->reset();
}

TEST(firstfit_does_not_split_a_large_free_block)
{
    const teach_allocator_t *f = design("firstfit"), *s = design("split");
    const teach_allocator_t *both[2] = { f, s };
    size_t usable[2];
    for (int i = 0; i < 2; i++) {
        const teach_allocator_t *a = both[i];
        void *pin = a->malloc(16);
        void *big = a->malloc(4096);
        void *pin2 = a->malloc(16);
        a->free(big);
        void *small = a->malloc(16);
        usable[i] = a->usable_size(small);
        a->free(small);
        a->free(pin);
        a->free(pin2);
    }
    printf("  malloc(16) after freeing a 4096: usable %zu in firstfit, %zu in split\n",
           usable[0], usable[1]);
    CHECK(usable[0] >= 4096);
    CHECK(usable[1] < 64);
}

// Footprint growth for 500 x malloc(second) after 1000 x malloc(first) were
// freed: the freed bytes would hold the second phase in a design that merges.
static size_t regrow(const teach_allocator_t *a, size_t first, size_t second)
{
    enum { N = 1000 };
    static void *p[N];
    void *pin = a->malloc(16);
    for (int i = 0; i < N; i++)
        p[i] = a->malloc(first);
    void *pin2 = a->malloc(16);
    for (int i = 0; i < N; i++)
        a->free(p[i]);
    size_t fp = a->footprint();
    for (int i = 0; i < N / 2; i++)
        p[i] = a->malloc(second);
    size_t growth = a->footprint() - fp;
    for (int i = 0; i < N / 2; i++)
        a->free(p[i]);
    a->free(pin);
    a->free(pin2);
    return growth;
}

TEST(no_coalescing_free_small_then_ask_bigger_grows_the_heap)
{
    const teach_allocator_t *f = design("firstfit"), *s = design("split");
    const teach_allocator_t *c = design("coalesce");
    size_t gf = regrow(f, 64, 128), gs = regrow(s, 64, 128), gc = regrow(c, 64, 128);
    printf("  free 1000 x 64, malloc 500 x 128: firstfit +%zu, split +%zu, coalesce +%zu\n",
           gf, gs, gc);
    CHECK(gf >= 500 * 128);
    CHECK(gs >= 500 * 128);
    CHECK(gc == 0);
}

TEST(segregated_keeps_memory_in_its_class)
{
    const teach_allocator_t *g = design("segregated"), *c = design("coalesce");
    size_t gg = regrow(g, 32, 64), gc = regrow(c, 32, 64);
    printf("  free 1000 x 32, malloc 500 x 64: segregated +%zu, coalesce +%zu\n", gg, gc);
    CHECK(gg >= 500 * 64);
    CHECK(gc == 0);
}

TEST(buddy_rounds_to_the_next_power_of_two)
{
    const teach_allocator_t *b = design("buddy");
    for (unsigned k = 5; (1u << k) < TEACH_MMAP_THRESHOLD / 2; k++) {
        size_t n = (size_t)1 << k;
        void *p = b->malloc(n);
        size_t usable = b->usable_size(p);
        if (usable < 2 * n - 64) {
            test_failures++;
            fprintf(stderr, "  CHECK failed: buddy usable_size(malloc(%zu)) = %zu, expected "
                    "almost %zu\n", n, usable, 2 * n);
        }
        b->free(p);
    }
    size_t n = 1025;
    void *p = b->malloc(n);
    printf("  buddy: malloc(1025) takes a block with %zu usable bytes\n", b->usable_size(p));
    CHECK(b->usable_size(p) >= 2048 - 64);
    b->free(p);
}

TEST(arena_without_reset_grows_like_bump)
{
    const teach_allocator_t *a = design("arena");
    size_t g1 = loop_growth(a, 10000);
    printf("  arena: 10000 malloc(64)/free pairs grow the footprint by %zu\n", g1);
    CHECK(g1 >= 10000 * 64);
    a->reset();
    CHECK(a->footprint() == 0);
}
