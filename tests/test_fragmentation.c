// SPDX-License-Identifier: MIT
//
// test_fragmentation.c -- external fragmentation under a worst-case
// interleaving, read from each design's walk(), split against coalesce.
//
// The workload: N equal blocks side by side, then a pin block so the freed
// run is not at the top of the break (where a design may hand it back).
// Free every other block: the holes cannot merge, in any design, because a
// live block sits between each two ("before"). Then free the rest ("after"):
// a design that coalesces turns the run into one free block; one that only
// splits keeps N small free blocks and must grow the break for a request
// larger than one of them, though the free bytes would hold it many times.
//
// External fragmentation here is 1 - largest free block / free bytes: 0
// when all free memory is one block, near 1 when it is dust.
#include "test.h"
#include "seed_table.h"

enum { N = 1000, SIZE = 128, BIG = 64 * 1024 };

typedef struct {
    seed_walk_t before;          // walk after freeing every other block
    seed_walk_t after;           // walk after freeing them all
    size_t fp_before;            // footprint when `before` was taken
    size_t big_growth;           // footprint growth to serve one BIG block after
} frag_t;

static frag_t interleave(const teach_allocator_t *a)
{
    static char *p[N];
    frag_t f;
    for (int i = 0; i < N; i++)
        p[i] = a->malloc(SIZE);
    void *pin = a->malloc(SIZE);
    for (int i = 0; i < N; i += 2)
        a->free(p[i]);
    f.before = seed_walk(a);
    f.fp_before = a->footprint();
    for (int i = 1; i < N; i += 2)
        a->free(p[i]);
    f.after = seed_walk(a);
    size_t fp = a->footprint();
    void *big = a->malloc(BIG);
    f.big_growth = a->footprint() - fp;
    a->free(big);
    a->free(pin);
    return f;
}

static double external(const seed_walk_t *w)
{
    return w->free_bytes ? 1.0 - (double)w->largest_free / (double)w->free_bytes : 0.0;
}

static void report(const char *name, const frag_t *f)
{
    const seed_walk_t *w[2] = { &f->before, &f->after };
    static const char *when[2] = { "every other freed", "all freed" };
    for (int k = 0; k < 2; k++) {
        printf("  %-8s %-18s free blocks %5zu, free bytes %7zu, largest %7zu, external %.3f;"
               " sizes:", name, when[k], w[k]->free_blocks, w[k]->free_bytes,
               w[k]->largest_free, external(w[k]));
        for (int b = 0; b < 40; b++)
            if (w[k]->free_hist[b])
                printf(" [%zu,%zu): %zu", (size_t)1 << b, (size_t)2 << b, w[k]->free_hist[b]);
        printf("\n");
    }
    printf("  %-8s one %d-byte block afterwards grew the footprint by %zu\n", name, BIG,
           f->big_growth);
}

TEST(coalescing_undoes_the_worst_case_interleaving)
{
    const teach_allocator_t *s = teach_find("split"), *c = teach_find("coalesce");
    if (!s || !c)
        TEST_SKIP("split or coalesce not in teach_allocators[]");
    frag_t fs = interleave(s), fc = interleave(c);
    report("split", &fs);
    report("coalesce", &fc);
    // Before: N/2 holes of one block each in both designs, nothing merges.
    CHECK(fs.before.free_blocks >= N / 2 && fc.before.free_blocks >= N / 2);
    CHECK(fs.before.largest_free < 4 * SIZE && fc.before.largest_free < 4 * SIZE);
    // After: coalesce holds the whole run in one free block; split holds dust.
    CHECK(fc.after.largest_free >= (size_t)N * SIZE);
    CHECK(fs.after.largest_free < 4 * SIZE);
    CHECK(fc.after.largest_free >= 100 * fs.after.largest_free);
    CHECK(external(&fc.after) < 0.1);
    CHECK(external(&fs.after) > 0.9);
    // Split's free bytes would hold BIG twice over, yet the break must grow.
    CHECK(fs.after.free_bytes >= 2 * BIG && fs.big_growth >= BIG);
    CHECK(fc.big_growth == 0);
    CHECK(s->live_bytes() == 0 && c->live_bytes() == 0);
}

TEST(free_block_sizes_from_walk_add_up)
{
    // For every design that tracks frees, walk's blocks tile the break:
    // used + free bytes do not exceed the footprint, and freeing everything
    // leaves no used block.
    for (const teach_allocator_t *const *ap = teach_allocators; *ap; ap++) {
        const teach_allocator_t *a = *ap;
        if (!(seed_traits(a->name) & SEED_WALK_FREES) || !a->walk)
            continue;
        frag_t f = interleave(a);
        seed_walk_t end = seed_walk(a);
        bool ok = f.before.used_blocks >= N / 2 &&
                  f.before.used_bytes + f.before.free_bytes <= f.fp_before &&
                  end.used_blocks == 0;
        if (!ok) {
            test_failures++;
            fprintf(stderr, "  CHECK failed [%s]: walk: %zu used (%zu B) + %zu free (%zu B), "
                    "footprint %zu; %zu used at the end\n", a->name, f.before.used_blocks,
                    f.before.used_bytes, f.before.free_blocks, f.before.free_bytes,
                    f.fp_before, end.used_blocks);
        }
        report(a->name, &f);
    }
}
