// SPDX-License-Identifier: MIT
//
// teach_evidence.c -- the milestone evidence of the teach designs, measured
// in-process through teach_allocators[] and printed as Markdown tables for
// bench/results.md (bench/sections/10-teach.sh runs it).
//
//   teach_evidence bump        addresses and footprint of 1000 malloc(24)
//   teach_evidence firstfit    100 x 64 B, free every other, 50 again: reuse
//   teach_evidence split       [1024, 16] x 64, free the 1024s, 1024 x 16 B
//   teach_evidence coalesce    free-block sizes (walk) before/after, split vs coalesce
//   teach_evidence internal    requested / block bytes over a random workload
//   teach_evidence arena       many blocks, reset, the same sequence again
//   teach_evidence m6          10 x 1 MiB: the break before, during, after
//
// Each table is measured when asked; nothing here is hard-coded but the
// workloads. Calls only the teach interface and the OS seam's page size.
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os/os.h"
#include "teach.h"

static const teach_allocator_t *need(const char *name)
{
    const teach_allocator_t *a = teach_find(name);
    if (a == NULL) {
        fprintf(stderr, "teach_evidence: no design called %s\n", name);
        exit(1);
    }
    return a;
}

// --- walk summaries ------------------------------------------------------------

typedef struct walk_sum {
    size_t used, used_bytes;     // used blocks, their bytes
    size_t free, free_bytes;     // free blocks, their bytes
    size_t largest;              // biggest free block
    size_t hist[40];             // free blocks by floor(log2(size))
} walk_sum_t;

static void walk_visit(void *ctx, void *addr, size_t size, bool used)
{
    walk_sum_t *w = ctx;
    (void)addr;
    if (used) {
        w->used++;
        w->used_bytes += size;
        return;
    }
    w->free++;
    w->free_bytes += size;
    if (size > w->largest)
        w->largest = size;
    w->hist[size ? 63 - __builtin_clzll(size) : 0]++;
}

static walk_sum_t walk_of(const teach_allocator_t *a)
{
    walk_sum_t w;
    memset(&w, 0, sizeof w);
    a->walk(walk_visit, &w);
    return w;
}

// --- bump ----------------------------------------------------------------------

static void show_bump(void)
{
    const teach_allocator_t *a = need("bump");
    enum { N = 1000 };
    static char *p[N];
    static size_t fp[N];
    for (int i = 0; i < N; i++) {
        p[i] = a->malloc(24);
        fp[i] = a->footprint();
    }
    printf("| block i | address - first | step | footprint (bytes) |\n|---:|---:|---:|---:|\n");
    static const int rows[] = { 0, 1, 2, 3, 10, 100, 250, 500, 750, 999 };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        int i = rows[r];
        printf("| %d | %td | %td | %zu |\n", i, p[i] - p[0], i ? p[i] - p[i - 1] : 0, fp[i]);
    }
    int linear = 0;
    for (int i = 1; i < N; i++)
        linear += p[i] - p[i - 1] == p[1] - p[0];
    for (int i = 0; i < N; i++)
        a->free(p[i]);
    char *q = a->malloc(24);
    printf("\n%d of %d steps equal %td bytes (24 asked + header + rounding). After freeing all %d,"
           " the next malloc(24) lands at first + %td: bump never reuses. Footprint %zu.\n",
           linear, N - 1, p[1] - p[0], N, q - p[0], a->footprint());
    a->reset();
}

// --- firstfit ------------------------------------------------------------------

static void show_firstfit(void)
{
    const teach_allocator_t *a = need("firstfit");
    enum { N = 100 };
    char *p[N], *q[N / 2];
    for (int i = 0; i < N; i++)
        p[i] = a->malloc(64);
    size_t fp0 = a->footprint();
    for (int i = 0; i < N; i += 2)
        a->free(p[i]);
    int reused = 0;
    for (int i = 0; i < N / 2; i++) {
        q[i] = a->malloc(64);
        for (int j = 0; j < N; j += 2)
            reused += q[i] == p[j];
    }
    size_t fp1 = a->footprint();
    printf("| second-round block | address - first | was freed block |\n|---:|---:|---:|\n");
    for (int i = 0; i < 5; i++) {
        int was = -1;
        for (int j = 0; j < N; j += 2)
            if (q[i] == p[j])
                was = j;
        printf("| %d | %td | %d |\n", i, q[i] - p[0], was);
    }
    printf("\n%d of %d new blocks reuse a freed address; footprint %zu before, %zu after"
           " (unchanged: no break growth).\n", reused, N / 2, fp0, fp1);
    for (int i = 1; i < N; i += 2)
        a->free(p[i]);
    for (int i = 0; i < N / 2; i++)
        a->free(q[i]);
}

// --- split ---------------------------------------------------------------------

static void split_row(const teach_allocator_t *a)
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
    int inside = 0;
    for (int i = 0; i < SMALL; i++) {
        small[i] = a->malloc(16);
        for (int j = 0; j < PAIRS; j++)
            inside += small[i] >= big[j] && small[i] + 16 <= big[j] + 1024;
    }
    printf("| %s | %d of %d | %zu |\n", a->name, inside, SMALL, a->footprint() - fp);
    for (int i = 0; i < SMALL; i++)
        a->free(small[i]);
    for (int i = 0; i < PAIRS; i++)
        a->free(tiny[i]);
}

static void show_split(void)
{
    printf("| design | 16 B blocks inside freed 1024s | break growth (bytes) |\n|---|---:|---:|\n");
    split_row(need("firstfit"));
    split_row(need("split"));
}

// --- coalesce ------------------------------------------------------------------

static void hist_cell(const walk_sum_t *w)
{
    int any = 0;
    for (int b = 0; b < 40; b++)
        if (w->hist[b])
            printf("%s%zu in [%zu, %zu)", any++ ? "; " : "", w->hist[b], (size_t)1 << b,
                   (size_t)2 << b);
    printf("%s", any ? "" : "none");
}

static double external(const walk_sum_t *w)
{
    return w->free_bytes ? 1.0 - (double)w->largest / (double)w->free_bytes : 0.0;
}

static void coalesce_rows(const teach_allocator_t *a)
{
    enum { N = 1000, SIZE = 128, BIG = 64 * 1024 };
    static char *p[N];
    for (int i = 0; i < N; i++)
        p[i] = a->malloc(SIZE);
    void *pin = a->malloc(SIZE);
    for (int i = 0; i < N; i += 2)
        a->free(p[i]);
    walk_sum_t before = walk_of(a);
    for (int i = 1; i < N; i += 2)
        a->free(p[i]);
    walk_sum_t after = walk_of(a);
    size_t fp = a->footprint();
    void *big = a->malloc(BIG);
    size_t growth = a->footprint() - fp;
    const walk_sum_t *w[2] = { &before, &after };
    static const char *when[2] = { "every other freed", "all freed" };
    for (int k = 0; k < 2; k++) {
        printf("| %s | %s | %zu | %zu | %zu | %.3f | ", a->name, when[k], w[k]->free,
               w[k]->free_bytes, w[k]->largest, external(w[k]));
        hist_cell(w[k]);
        if (k)
            printf(" | %zu |\n", growth);
        else
            printf(" | |\n");
    }
    a->free(big);
    a->free(pin);
}

static void show_coalesce(void)
{
    printf("| design | after | free blocks | free bytes | largest free | external frag. |"
           " free-block sizes (walk) | then malloc(64 KiB): break growth |\n"
           "|---|---|---:|---:|---:|---:|---|---:|\n");
    coalesce_rows(need("split"));
    coalesce_rows(need("coalesce"));
    printf("\nExternal fragmentation = 1 - largest free block / free bytes. Workload: 1000 x"
           " malloc(128) and a pin block, free the even ones, then the odd ones.\n");
}

// --- internal fragmentation, every design -----------------------------------------

static void show_internal(unsigned ops)
{
    enum { SLOTS = 2000 };
    static void *p[SLOTS];
    static size_t sz[SLOTS];
    printf("| design | requested / usable | requested / block (walk, headers included) |"
           " requested / footprint |\n|---|---:|---:|---:|\n");
    for (const teach_allocator_t *const *ap = teach_allocators; *ap; ap++) {
        const teach_allocator_t *a = *ap;
        uint64_t rng = 12345;
        memset(p, 0, sizeof p);
        double req_sum = 0, usable_sum = 0, block_sum = 0, fp_sum = 0;
        bool walk_sees_frees = true;
        for (unsigned op = 0; op < ops; op++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t k = (size_t)(rng >> 33) % SLOTS;
            if (p[k])
                a->free(p[k]);
            sz[k] = 1 + (size_t)(rng >> 17) % 4096;
            p[k] = a->malloc(sz[k]);
            if (op % 1000 == 999) {
                // Sample the live heap: what was asked against what it takes.
                size_t req = 0, usable = 0, live = 0;
                for (size_t i = 0; i < SLOTS; i++)
                    if (p[i]) {
                        live++;
                        req += sz[i];
                        usable += a->usable_size(p[i]);
                    }
                walk_sum_t w = walk_of(a);
                req_sum += (double)req;
                usable_sum += (double)usable;
                // A design that cannot see frees (bump, arena) counts every
                // block ever made as used; measure those by usable size only.
                walk_sees_frees &= w.used == live;
                block_sum += (double)w.used_bytes;
                fp_sum += (double)a->footprint();
            }
        }
        printf("| %s | %.3f | ", a->name, req_sum / usable_sum);
        if (walk_sees_frees)
            printf("%.3f", req_sum / block_sum);
        else
            printf("n/a (walk cannot tell freed blocks)");
        printf(" | %.3f |\n", req_sum / fp_sum);
        for (size_t i = 0; i < SLOTS; i++)
            a->free(p[i]);
        a->reset();
    }
    printf("\nWorkload: %u random replacements over %d slots, sizes uniform in [1, 4096] bytes;"
           " ratios of sums sampled every 1000 operations.\n", ops, SLOTS);
}

// --- arena ---------------------------------------------------------------------

static void show_arena(void)
{
    const teach_allocator_t *a = need("arena");
    enum { N = 5000 };
    static char *p[N];
    uint64_t rng = 42;
    size_t asked = 0;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = 1 + (size_t)(rng >> 40) % 1000;
        asked += n;
        p[i] = a->malloc(n);
    }
    size_t fp0 = a->footprint(), live0 = a->live_bytes();
    a->reset();
    size_t fp_reset = a->footprint();
    rng = 42;
    int same = 0;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        same += a->malloc(1 + (size_t)(rng >> 40) % 1000) == p[i];
    }
    printf("| | footprint (bytes) | live bytes |\n|---|---:|---:|\n");
    printf("| after %d mallocs (%zu bytes asked) | %zu | %zu |\n", N, asked, fp0, live0);
    printf("| after reset() | %zu | %zu |\n", fp_reset, (size_t)0);
    printf("| after the same %d mallocs again | %zu | %zu |\n", N, a->footprint(), a->live_bytes());
    printf("\n%d of %d blocks came back at the same address after the reset.\n", same, N);
    a->reset();
}

// --- M6 ------------------------------------------------------------------------

static void show_m6(void)
{
    size_t page = mallet__os_page_size();
    size_t mib = ((size_t)1 << 20) + page - 1;
    mib &= ~(page - 1);
    printf("| design | footprint before | with 10 x 1 MiB | after free | break (footprint - mapped)"
           " before / during | page aligned |\n|---|---:|---:|---:|---|---|\n");
    for (const teach_allocator_t *const *ap = teach_allocators; *ap; ap++) {
        const teach_allocator_t *a = *ap;
        void *small = a->malloc(64);
        size_t fp0 = a->footprint();
        char *p[10];
        int aligned = 0;
        for (int i = 0; i < 10; i++) {
            p[i] = a->malloc(1 << 20);
            aligned += p[i] && ((uintptr_t)p[i] & (page - 1)) == 0;
        }
        size_t fp1 = a->footprint();
        for (int i = 0; i < 10; i++)
            a->free(p[i]);
        size_t fp2 = a->footprint();
        a->free(small);
        // Only blocks of their own mapping leave the break alone; then the
        // footprint grows by exactly their pages.
        bool mapped = fp1 - fp0 == 10 * mib && fp2 == fp0;
        if (mapped)
            printf("| %s | %zu | %zu | %zu | %zu / %zu | %d of 10 |\n", a->name, fp0, fp1, fp2,
                   fp0, fp1 - 10 * mib, aligned);
        else
            printf("| %s | %zu | %zu | %zu | grew: blocks live in the heap | %d of 10 |\n",
                   a->name, fp0, fp1, fp2, aligned);
        a->reset();
    }
}

int main(int argc, char **argv)
{
    bool quick = getenv("BENCH_QUICK") && strcmp(getenv("BENCH_QUICK"), "1") == 0;
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "bump") == 0)
        show_bump();
    else if (strcmp(what, "firstfit") == 0)
        show_firstfit();
    else if (strcmp(what, "split") == 0)
        show_split();
    else if (strcmp(what, "coalesce") == 0)
        show_coalesce();
    else if (strcmp(what, "internal") == 0)
        show_internal(quick ? 20000 : 50000);
    else if (strcmp(what, "arena") == 0)
        show_arena();
    else if (strcmp(what, "m6") == 0)
        show_m6();
    else {
        fprintf(stderr, "usage: teach_evidence bump|firstfit|split|coalesce|internal|arena|m6\n");
        return 2;
    }
    return 0;
}
