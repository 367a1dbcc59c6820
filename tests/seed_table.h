// SPDX-License-Identifier: MIT
//
// seed_table.h -- the checks every malloc must pass, written once against a
// teach_allocator_t-shaped vtable, so each teach design and (through an
// adapter that fills a teach_allocator_t) libmallet run the same table.
//
// Include after test.h. A case is `void case(const seed_target_t *t)`; it
// reports through SEED_CHECK, whose failure line names the allocator:
//
//   CHECK failed [firstfit]: p != NULL  (tests/seed_table.h:123)
//
// seed_run_one(name, case, allocator) runs one case in a child process of
// its own, so a crash is pinned on one allocator, and prints one line
// ("ok   random/buddy"); seed_run_named(name, case) does so for every design
// in teach_allocators[] (TEACH_DESIGN=name restricts it to one). seed_table[]
// lists every case by name.
//
// What a design promises beyond malloc(3) is in its traits (seed_traits
// below): bump and arena cannot reuse a freed block or tell a double free,
// and the table checks that they at least survive one.
//
// Under valgrind (MALLET_TEST_MODE=valgrind) iteration counts shrink by
// `scale`; every check still runs.
#ifndef MALLET_SEED_TABLE_H
#define MALLET_SEED_TABLE_H

#include "teach.h"
#include "os/os.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

// What a design promises; the cases adapt their expectations to these.
enum {
    SEED_REUSES        = 1 << 0, // free() makes the block available again
    SEED_RESETS        = 1 << 1, // reset() is how memory comes back (arena)
    SEED_CATCHES_DFREE = 1 << 2, // double free: one line and abort
    SEED_CATCHES_WILD  = 1 << 3, // free of a pointer it never returned: one line and abort
    SEED_MMAPS_LARGE   = 1 << 4, // blocks >= TEACH_MMAP_THRESHOLD get a mapping of their own
    SEED_LIVE_FREES    = 1 << 5, // live_bytes() drops when a block is freed
    SEED_WALK_FREES    = 1 << 6, // walk() shows a freed block as free
    SEED_SLIVERS       = 1 << 7, // splits but never merges: under random sizes up to
                                 // 128 KiB its list fills with pieces too small for most
                                 // requests, each malloc walks them (100,000 random
                                 // pairs take ~40 s): it gets 20,000
};

typedef struct seed_target {
    const teach_allocator_t *a;  // the allocator under test
    unsigned traits;             // SEED_* promises of this design
    unsigned scale;              // divide iteration counts by this (1, or more under valgrind)
} seed_target_t;

typedef void (*seed_case_fn)(const seed_target_t *t);

// The promises of each teach design, by name. An allocator not listed
// (libmallet through an adapter) is held to reuse, exact live_bytes, and
// catching double and invalid frees; with walk left NULL the walk checks
// are skipped.
static inline unsigned seed_traits(const char *name)
{
    enum {
        FREE_LIST = SEED_REUSES | SEED_LIVE_FREES | SEED_WALK_FREES | SEED_CATCHES_DFREE |
                    SEED_CATCHES_WILD | SEED_MMAPS_LARGE,
    };
    static const struct { const char *name; unsigned traits; } table[] = {
        { "bump",       SEED_LIVE_FREES | SEED_CATCHES_WILD },
        { "firstfit",   FREE_LIST },
        { "split",      FREE_LIST | SEED_SLIVERS },
        { "coalesce",   FREE_LIST },
        { "segregated", FREE_LIST },
        { "buddy",      FREE_LIST },
        { "arena",      SEED_RESETS },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0)
            return table[i].traits;
    return SEED_REUSES | SEED_LIVE_FREES | SEED_WALK_FREES | SEED_CATCHES_DFREE | SEED_CATCHES_WILD;
}


static inline bool seed_check(bool ok, const seed_target_t *t, const char *expr,
                              const char *file, int line)
{
    if (!ok) {
        test_failures++;
        fprintf(stderr, "  CHECK failed [%s]: %s  (%s:%d)\n", t->a->name, expr, file, line);
    }
    return ok;
}

// Evaluates to the truth of expr, so a loop can stop at its first failure:
//   if (!SEED_CHECK(t, p != NULL)) return;
#define SEED_CHECK(t, expr) seed_check((expr), (t), #expr, __FILE__, __LINE__)

// A small deterministic generator (xorshift64*), so a failure replays.
static inline uint64_t seed_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

// A size from 1 to 2^max_log2, spread evenly over the powers of two, the
// way real programs ask: mostly small, now and then very large.
static inline size_t seed_size(uint64_t *s, unsigned max_log2)
{
    unsigned lg = (unsigned)(seed_rand(s) % (max_log2 + 1));
    return 1 + (size_t)(seed_rand(s) % ((size_t)1 << lg));
}

// A block's pattern: byte `tag + i` at offset i for every i below 4096,
// every multiple of 1024 below 64 KiB and every multiple of 64 KiB above
// (so a big block costs a few page faults, not one per page), plus the last
// byte. The sampled offsets do not depend on the block size, so a
// realloc'd prefix checks against the old fill; overlapping blocks clobber
// each other's pattern where it is checked.
static inline size_t seed_next(size_t i)
{
    return i < 4096 ? i + 1 : i < 65536 ? i + 1024 : i + 65536;
}

static inline void seed_fill(void *p, size_t n, uint8_t tag)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i = seed_next(i))
        b[i] = (uint8_t)(tag + i);
    if (n)
        b[n - 1] = (uint8_t)(tag + n - 1);
}

// The first n bytes of a block filled with `tag` (its last byte only when
// `whole`, i.e. n is the size it was filled at).
static inline bool seed_prefix_intact(const void *p, size_t n, uint8_t tag, bool whole)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i = seed_next(i))
        if (b[i] != (uint8_t)(tag + i))
            return false;
    return !whole || n == 0 || b[n - 1] == (uint8_t)(tag + n - 1);
}

static inline bool seed_intact(const void *p, size_t n, uint8_t tag)
{
    return seed_prefix_intact(p, n, tag, true);
}

// --- walk() summaries ----------------------------------------------------------

typedef struct seed_walk {
    size_t used_blocks;      // blocks marked used
    size_t used_bytes;       // their sizes, summed
    size_t free_blocks;      // blocks marked free
    size_t free_bytes;       // their sizes, summed
    size_t largest_free;     // the biggest free block
    size_t free_hist[40];    // free blocks by floor(log2(size))
    uintptr_t lowest;        // lowest block address seen (UINTPTR_MAX: none)
    uintptr_t highest_end;   // end of the highest block seen
} seed_walk_t;

static inline unsigned seed_log2(size_t n)
{
    return n ? (unsigned)(63 - __builtin_clzll(n)) : 0;
}

static inline void seed_walk_visit(void *ctx, void *addr, size_t size, bool used)
{
    seed_walk_t *w = ctx;
    if (used) {
        w->used_blocks++;
        w->used_bytes += size;
    } else {
        w->free_blocks++;
        w->free_bytes += size;
        if (size > w->largest_free)
            w->largest_free = size;
        unsigned b = seed_log2(size);
        w->free_hist[b < 40 ? b : 39]++;
    }
    if ((uintptr_t)addr < w->lowest)
        w->lowest = (uintptr_t)addr;
    if ((uintptr_t)addr + size > w->highest_end)
        w->highest_end = (uintptr_t)addr + size;
}

static inline seed_walk_t seed_walk(const teach_allocator_t *a)
{
    seed_walk_t w;
    memset(&w, 0, sizeof w);
    w.lowest = UINTPTR_MAX;
    if (a->walk)
        a->walk(seed_walk_visit, &w);
    return w;
}

// --- running a case against every design ---------------------------------------

// Run `fn` against allocator `a` in a child; false when it failed.
static inline bool seed_run_one(const char *case_name, seed_case_fn fn,
                                const teach_allocator_t *a)
{
    seed_target_t t = { a, seed_traits(a->name), test_under_valgrind() ? 50 : 1 };
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        test_failures = 0;       // count this allocator's failures only
        fn(&t);
        fflush(NULL);
        _exit(test_failures ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
        test_failures++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "  [%s] %s died with signal %d\n", a->name, case_name,
                    WTERMSIG(status));
    }
    printf("  %-4s %s/%s\n", ok ? "ok" : "FAIL", case_name, a->name);
    fflush(stdout);
    return ok;
}

// Run `fn` against every teach design (or only $TEACH_DESIGN); false when
// any failed.
static inline bool seed_run_named(const char *case_name, seed_case_fn fn)
{
    const char *only = getenv("TEACH_DESIGN");
    bool all_ok = true;
    for (const teach_allocator_t *const *ap = teach_allocators; *ap; ap++)
        if (!only || strcmp(only, (*ap)->name) == 0)
            all_ok &= seed_run_one(case_name, fn, *ap);
    return all_ok;
}

// --- the cases -----------------------------------------------------------------

static inline bool seed_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

static const size_t seed_sizes[] = {
    1, 2, 7, 8, 15, 16, 17, 24, 31, 32, 48, 64, 100, 127, 128, 255, 256, 1000, 4095,
    4096, 5000, 65536, 100000, TEACH_MMAP_THRESHOLD - 1, TEACH_MMAP_THRESHOLD,
    TEACH_MMAP_THRESHOLD + 1, 200000, (1 << 20) + 3,
};
#define SEED_NSIZES (sizeof seed_sizes / sizeof seed_sizes[0])

// Allocate, write, read back, free -- many sizes live at once, then again
// once the first round is free.
static inline void seed_basic(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    for (int round = 0; round < 2; round++) {
        void *p[SEED_NSIZES];
        for (size_t i = 0; i < SEED_NSIZES; i++) {
            p[i] = a->malloc(seed_sizes[i]);
            if (!SEED_CHECK(t, p[i] != NULL))
                return;
            SEED_CHECK(t, a->usable_size(p[i]) >= seed_sizes[i]);
            seed_fill(p[i], seed_sizes[i], (uint8_t)(i * 17 + round));
        }
        for (size_t i = 0; i < SEED_NSIZES; i++)
            SEED_CHECK(t, seed_intact(p[i], seed_sizes[i], (uint8_t)(i * 17 + round)));
        for (size_t i = 0; i < SEED_NSIZES; i++)
            a->free(p[i]);
    }
}

// Every pointer is 16-byte aligned: every size from 0 to 4096, the sizes
// around the mmap threshold, and again after freeing every other block, so
// blocks carved from split free blocks are checked too.
static inline void seed_alignment(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    enum { N = 4097 };
    static void *p[N + SEED_NSIZES];
    size_t bad = 0, got = 0;
    for (size_t n = 0; n < N; n++)
        if ((p[n] = a->malloc(n)) != NULL)
            got++, bad += ((uintptr_t)p[n] & (TEACH_ALIGN - 1)) != 0;
    for (size_t i = 0; i < SEED_NSIZES; i++)
        if ((p[N + i] = a->malloc(seed_sizes[i])) != NULL)
            got++, bad += ((uintptr_t)p[N + i] & (TEACH_ALIGN - 1)) != 0;
    for (size_t n = 1; n < N; n += 2)
        a->free(p[n]);
    for (size_t n = 1; n < N; n += 2)
        if ((p[n] = a->malloc(n / 3)) != NULL)
            got++, bad += ((uintptr_t)p[n] & (TEACH_ALIGN - 1)) != 0;
    SEED_CHECK(t, got == N + SEED_NSIZES + N / 2);
    SEED_CHECK(t, bad == 0);
    for (size_t i = 0; i < N + SEED_NSIZES; i++)
        a->free(p[i]);
}

// Exactly n bytes asked, all n usable, and a neighbour's bytes untouched.
// Plainly run (no checker watching the tail), every byte usable_size()
// reports is writable too.
static inline void seed_boundary(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    bool whole_usable = !seed_asan() && !test_under_valgrind();
    for (size_t i = 0; i < SEED_NSIZES; i++) {
        size_t n = seed_sizes[i];
        unsigned char *p = a->malloc(n), *q = a->malloc(n);
        if (!SEED_CHECK(t, p != NULL && q != NULL))
            return;
        memset(q, 0x5a, n);
        size_t usable = whole_usable ? a->usable_size(p) : n;
        SEED_CHECK(t, usable >= n);
        memset(p, 0xa5, usable);
        size_t bad = 0;
        for (size_t j = 0; j < n; j++)
            bad += (p[j] != 0xa5) + (q[j] != 0x5a);
        if (!SEED_CHECK(t, bad == 0))
            fprintf(stderr, "    size %zu\n", n);
        a->free(q);
        a->free(p);
    }
}

typedef struct { const seed_target_t *t; size_t n; } seed_past_arg_t;

static inline void seed_write_past(void *arg)
{
    const seed_past_arg_t *x = arg;
    volatile char *p = x->t->a->malloc(x->n);
    volatile char *q = x->t->a->malloc(x->n);
    p[x->n] = 1;
    q[0] = p[x->n];
}

// In the SAN=address build, writing one byte past the n asked for is
// reported by ASan: the designs poison the tail of a block, their headers
// and the unused pages past the break through track.h. Sizes that fill
// their 16-byte slot exactly (16, 64, 4096) land on the next header or past
// the break; an allocator without headers would need redzones for those.
static inline void seed_asan_overflow(const seed_target_t *t)
{
    static const size_t sizes[] = { 1, 13, 16, 64, 100, 1001, 4000 + 7, 4096, TEACH_MMAP_THRESHOLD + 5,
                                    (1 << 20) + 3 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char out[4096];
        seed_past_arg_t arg = { t, sizes[i] };
        if (!SEED_CHECK(t, test_dies(seed_write_past, &arg, "AddressSanitizer", out, sizeof out)))
            fprintf(stderr, "    one byte past a %zu-byte block went unreported:\n%.400s\n",
                    sizes[i], out);
    }
}

// Touch the first and last bytes of a big block without faulting in every page.
static inline void seed_mark(unsigned char *p, size_t n, uint8_t tag)
{
    p[0] = tag;
    p[n / 2] = (uint8_t)(tag + 1);
    p[n - 1] = (uint8_t)(tag + 2);
}

static inline bool seed_marked(const unsigned char *p, size_t n, uint8_t tag)
{
    return p[0] == tag && p[n / 2] == (uint8_t)(tag + 1) && p[n - 1] == (uint8_t)(tag + 2);
}

// More than 4 GiB handed out in total over many malloc/free cycles, and the
// footprint does not grow with the cycles. An arena gets its memory back by
// reset() after each cycle. A bump allocator never reuses a byte: it gets a
// smaller total, then its break is made to fail and it must say ENOMEM and
// keep the blocks it has.
static inline void seed_large(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    enum { PER_CYCLE = 24 };
    unsigned char *p[PER_CYCLE];
    size_t sz[PER_CYCLE];
    bool bump = !(t->traits & (SEED_REUSES | SEED_RESETS));
    uint64_t target = bump ? (uint64_t)256 << 20 : (uint64_t)9 << 29;
    target /= t->scale;
    uint64_t total = 0;
    size_t fp_first = 0;
    unsigned cycles = 0;
    while (total < target) {
        for (int i = 0; i < PER_CYCLE; i++) {
            sz[i] = (i & 1 ? (96 << 10) : (1 << 20)) + 16 * (size_t)i;
            p[i] = a->malloc(sz[i]);
            if (!SEED_CHECK(t, p[i] != NULL)) {
                fprintf(stderr, "    after %llu bytes in %u cycles\n",
                        (unsigned long long)total, cycles);
                return;
            }
            seed_mark(p[i], sz[i], (uint8_t)(i + cycles));
            total += sz[i];
        }
        for (int i = 0; i < PER_CYCLE; i++)
            if (!SEED_CHECK(t, seed_marked(p[i], sz[i], (uint8_t)(i + cycles))))
                return;
        if (bump && total >= target)
            break;               // keep the last cycle's blocks for the ENOMEM check
        for (int i = 0; i < PER_CYCLE; i++)
            a->free(p[i]);
        if (t->traits & SEED_RESETS)
            a->reset();
        if (cycles++ == 0)
            fp_first = a->footprint();
    }
    if (!bump) {
        size_t fp = a->footprint();
        if (!SEED_CHECK(t, fp <= 2 * fp_first + (4u << 20)))
            fprintf(stderr, "    footprint %zu after %u cycles, %zu after the first\n", fp,
                    cycles, fp_first);
        SEED_CHECK(t, total > (t->scale == 1 ? (uint64_t)4 << 30 : 0));
        return;
    }
    mallet__os_fake_fail(1, 0);
    errno = 0;
    void *q = a->malloc(1 << 20);
    SEED_CHECK(t, q == NULL && errno == ENOMEM);
    mallet__os_fake_fail(0, 0);
    for (int i = 0; i < PER_CYCLE; i++) {
        SEED_CHECK(t, seed_marked(p[i], sz[i], (uint8_t)(i + cycles)));
        a->free(p[i]);
    }
    a->reset();
}

// 100,000 random malloc/free pairs over 1,000 slots, sizes 1 B .. 1 MiB,
// each block's pattern checked before it is freed; the design's own
// accounting (live_bytes, walk) agrees with what the test holds, and at the
// end nothing is live (under valgrind, memcheck's leak check agrees). A
// design that never reuses memory gets small blocks and fewer pairs; one
// whose free list fills with slivers (SEED_SLIVERS) gets fewer pairs.
static inline void seed_random(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    enum { SLOTS = 1000 };
    static unsigned char *p[SLOTS];
    static size_t sz[SLOTS];
    bool reuses = t->traits & SEED_REUSES;
    unsigned max_log2 = reuses ? 20 : 12;
    unsigned pairs = (reuses && !(t->traits & SEED_SLIVERS) ? 100000 : 20000) / t->scale;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    size_t live = 0, held = 0;
    memset(p, 0, sizeof p);
    for (unsigned op = 0; op < pairs; op++) {
        size_t k = (size_t)(seed_rand(&rng) % SLOTS);
        if (p[k]) {
            if (!SEED_CHECK(t, seed_intact(p[k], sz[k], (uint8_t)k))) {
                fprintf(stderr, "    block %p of %zu bytes overwritten at pair %u\n",
                        (void *)p[k], sz[k], op);
                return;
            }
            live -= a->usable_size(p[k]);
            held--;
            a->free(p[k]);
        }
        sz[k] = seed_size(&rng, max_log2);
        p[k] = a->malloc(sz[k]);
        if (!SEED_CHECK(t, p[k] != NULL && ((uintptr_t)p[k] & (TEACH_ALIGN - 1)) == 0)) {
            fprintf(stderr, "    malloc(%zu) at pair %u: %p\n", sz[k], op, (void *)p[k]);
            return;
        }
        if (!SEED_CHECK(t, a->usable_size(p[k]) >= sz[k]))
            return;
        live += a->usable_size(p[k]);
        held++;
        seed_fill(p[k], sz[k], (uint8_t)k);
        if (op % 5000 == 0) {
            seed_walk_t w = seed_walk(a);
            bool live_ok = !(t->traits & SEED_LIVE_FREES) || a->live_bytes() == live;
            bool walk_ok = !(t->traits & SEED_WALK_FREES) || !a->walk || w.used_blocks == held;
            if (!SEED_CHECK(t, live_ok) || !SEED_CHECK(t, walk_ok)) {
                fprintf(stderr, "    pair %u: live_bytes %zu, expected %zu; walk: %zu used, "
                        "expected %zu\n", op, a->live_bytes(), live, w.used_blocks, held);
                return;
            }
        }
    }
    for (size_t k = 0; k < SLOTS; k++) {
        if (!p[k])
            continue;
        SEED_CHECK(t, seed_intact(p[k], sz[k], (uint8_t)k));
        a->free(p[k]);
    }
    if (t->traits & SEED_LIVE_FREES)
        SEED_CHECK(t, a->live_bytes() == 0);
    if ((t->traits & SEED_WALK_FREES) && a->walk)
        SEED_CHECK(t, seed_walk(a).used_blocks == 0);
    if (!(t->traits & SEED_REUSES)) {
        a->reset();
        SEED_CHECK(t, a->live_bytes() == 0 && seed_walk(a).used_blocks == 0);
    }
}

// realloc keeps min(old, new) bytes across growth and shrinking, in the
// break and across the mmap threshold; realloc(NULL, n) is malloc;
// realloc(p, 0) frees p and returns NULL (glibc); a realloc that cannot be
// served returns NULL with ENOMEM and leaves the block as it was.
static inline void seed_realloc(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    static const size_t steps[] = { 100, 200, 5000, 40, TEACH_MMAP_THRESHOLD + 100,
                                    (1 << 20) + 7, 300000, 1000, 8, 64, 24 };
    size_t base = a->live_bytes();
    unsigned char *p = a->realloc(NULL, 50);
    if (!SEED_CHECK(t, p != NULL && ((uintptr_t)p & (TEACH_ALIGN - 1)) == 0))
        return;
    size_t old = 50;
    seed_fill(p, old, 1);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        unsigned char *q = a->realloc(p, n);
        if (!SEED_CHECK(t, q != NULL && ((uintptr_t)q & (TEACH_ALIGN - 1)) == 0))
            return;
        size_t keep = old < n ? old : n;
        if (!SEED_CHECK(t, seed_prefix_intact(q, keep, (uint8_t)(i + 1), keep == old)))
            fprintf(stderr, "    realloc %zu -> %zu lost bytes\n", old, n);
        SEED_CHECK(t, a->usable_size(q) >= n);
        seed_fill(q, n, (uint8_t)(i + 2));
        p = q;
        old = n;
    }
    errno = 0;
    SEED_CHECK(t, a->realloc(p, SIZE_MAX - 4096) == NULL && errno == ENOMEM);
    SEED_CHECK(t, seed_intact(p, old, (uint8_t)(sizeof steps / sizeof steps[0] + 1)));
    SEED_CHECK(t, a->realloc(p, 0) == NULL);
    if (t->traits & SEED_LIVE_FREES)
        SEED_CHECK(t, a->live_bytes() == base);
}

// memalign, where the design offers it: the block is aligned and usable.
static inline void seed_memalign(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    static const size_t sizes[] = { 1, 100, 5000, TEACH_MMAP_THRESHOLD + 1 };
    if (!a->memalign) {
        printf("    [%s] offers no memalign\n", a->name);
        return;
    }
    for (size_t align = 16; align <= 65536; align *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = a->memalign(align, sizes[i]);
            if (!SEED_CHECK(t, p != NULL && ((uintptr_t)p & (align - 1)) == 0)) {
                fprintf(stderr, "    memalign(%zu, %zu) = %p\n", align, sizes[i], (void *)p);
                return;
            }
            SEED_CHECK(t, a->usable_size(p) >= sizes[i]);
            seed_fill(p, sizes[i], (uint8_t)align);
            SEED_CHECK(t, seed_intact(p, sizes[i], (uint8_t)align));
            a->free(p);
        }
    }
}

static inline void seed_free_twice(void *arg)
{
    const teach_allocator_t *a = ((const seed_target_t *)arg)->a;
    void *keep = a->malloc(48);
    void *p = a->malloc(48);
    a->free(p);
    a->free(p);
    // A design that cannot tell must still be able to go on.
    void *q = a->malloc(48);
    a->free(q);
    a->free(keep);
}

// A double free is reported in one line and aborts where the design can
// tell; bump and arena cannot (free keeps no record there), so for them the
// test is that it does not crash -- except under valgrind, where memcheck
// itself must report the second free (the designs announce every free) and
// fail the process through --error-exitcode; its report goes to valgrind's
// own copy of stderr, so the text cannot be matched here.
static inline void seed_double_free(const seed_target_t *t)
{
    char out[4096];
    if (t->traits & SEED_CATCHES_DFREE) {
        if (!SEED_CHECK(t, test_dies(seed_free_twice, (void *)t, "double free", out, sizeof out)))
            fprintf(stderr, "    stderr was: %.400s\n", out);
        SEED_CHECK(t, strchr(out, '\n') == strrchr(out, '\n') || seed_asan() ||
                          test_under_valgrind());
    } else if (test_under_valgrind()) {
        fprintf(stderr, "  [%s] memcheck reports the next double free, as it should:\n",
                t->a->name);
        SEED_CHECK(t, test_dies(seed_free_twice, (void *)t, "", out, sizeof out));
    } else {
        SEED_CHECK(t, !test_dies(seed_free_twice, (void *)t, "", out, sizeof out));
    }
}

typedef struct { const seed_target_t *t; int kind; } seed_wild_arg_t;

static inline void seed_free_wild(void *arg)
{
    const seed_wild_arg_t *x = arg;
    const teach_allocator_t *a = x->t->a;
    char on_stack[64];
    char *heap = a->malloc(256);
    void *bad[] = { on_stack + 16, (void *)(uintptr_t)0x10000, heap + 32 };
    a->free(bad[x->kind]);
    a->free(heap);
}

// free of a pointer the design never returned -- a stack address, a wild
// address, the inside of a block -- is reported in one line and aborts
// where the design can tell; otherwise it must not crash.
static inline void seed_invalid_free(const seed_target_t *t)
{
    static const char *what[] = { "a stack address", "a wild address", "inside a block" };
    for (int kind = 0; kind < 3; kind++) {
        char out[4096];
        seed_wild_arg_t arg = { t, kind };
        if (t->traits & SEED_CATCHES_WILD) {
            if (!SEED_CHECK(t, test_dies(seed_free_wild, &arg, "invalid pointer", out, sizeof out)))
                fprintf(stderr, "    free of %s: %.400s\n", what[kind], out);
        } else {
            bool died = test_dies(seed_free_wild, &arg, "", out, sizeof out);
            if (!SEED_CHECK(t, !died))
                fprintf(stderr, "    free of %s crashed: %.400s\n", what[kind], out);
        }
    }
}

// malloc(0) is unique and freeable; impossible sizes fail with ENOMEM and
// leave the heap usable; free(NULL) does nothing; free never changes errno.
static inline void seed_bad_input(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    void *z[8];
    for (int i = 0; i < 8; i++) {
        z[i] = a->malloc(0);
        if (!SEED_CHECK(t, z[i] != NULL && ((uintptr_t)z[i] & (TEACH_ALIGN - 1)) == 0))
            return;
        for (int j = 0; j < i; j++)
            SEED_CHECK(t, z[i] != z[j]);
    }
    static const size_t huge[] = { SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 4096, SIZE_MAX / 2 + 1,
                                   (size_t)PTRDIFF_MAX, (size_t)1 << 52 };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = a->malloc(huge[i]);
        if (!SEED_CHECK(t, p == NULL && errno == ENOMEM))
            fprintf(stderr, "    malloc(%#zx) = %p, errno %d\n", huge[i], p, errno);
    }
    char *p = a->malloc(100);
    SEED_CHECK(t, p != NULL);
    errno = 4321;
    a->free(NULL);
    SEED_CHECK(t, errno == 4321);
    void *blocks[SEED_NSIZES];
    for (size_t i = 0; i < SEED_NSIZES; i++)
        blocks[i] = a->malloc(seed_sizes[i]);
    for (size_t i = SEED_NSIZES; i-- > 0;) {
        errno = 1234;
        a->free(blocks[i]);
        if (!SEED_CHECK(t, errno == 1234))
            fprintf(stderr, "    free of a %zu-byte block set errno %d\n", seed_sizes[i], errno);
    }
    errno = 99;
    for (int i = 0; i < 8; i++)
        a->free(z[i]);
    a->free(p);
    SEED_CHECK(t, errno == 99);
}

// The break cannot grow (the fake OS fails every request): malloc returns
// NULL with ENOMEM, never crashes, the blocks already out are intact, a
// freed block still serves (where the design reuses), and once the OS
// answers again the heap works as before.
static inline void seed_exhausted(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    enum { MAX = 8192, SIZE = 60000 };
    static unsigned char *p[MAX];
    unsigned char *first = a->malloc(64);
    if (!SEED_CHECK(t, first != NULL))
        return;
    seed_fill(first, 64, 3);
    mallet__os_fake_fail(1, 0);
    int n = 0;
    errno = 0;
    while (n < MAX && (p[n] = a->malloc(SIZE)) != NULL)
        seed_mark(p[n], SIZE, (uint8_t)n), n++;
    int err = errno;
    if (!SEED_CHECK(t, n < MAX && err == ENOMEM))
        fprintf(stderr, "    %d blocks served with the OS refusing, errno %d\n", n, err);
    errno = 0;
    SEED_CHECK(t, a->malloc(1 << 20) == NULL && errno == ENOMEM);
    SEED_CHECK(t, seed_intact(first, 64, 3));
    for (int i = 0; i < n; i++)
        SEED_CHECK(t, seed_marked(p[i], SIZE, (uint8_t)i));
    if ((t->traits & SEED_REUSES) && n > 0) {
        a->free(p[n - 1]);
        p[n - 1] = a->malloc(SIZE);
        SEED_CHECK(t, p[n - 1] != NULL);
    }
    mallet__os_fake_fail(0, 0);
    unsigned char *big = a->malloc(1 << 20), *more = a->malloc(SIZE);
    SEED_CHECK(t, big != NULL && more != NULL);
    if (big && more) {
        seed_fill(big, 1 << 20, 5);
        seed_fill(more, SIZE, 6);
        SEED_CHECK(t, seed_intact(big, 1 << 20, 5) && seed_intact(more, SIZE, 6));
    }
    a->free(big);
    a->free(more);
    for (int i = 0; i < n; i++)
        a->free(p[i]);
    a->free(first);
    if (!(t->traits & SEED_REUSES))
        a->reset();
}

// reset() forgets every block, live or free, and gives the memory back:
// the footprint, live_bytes and walk are all empty after it, the heap
// serves again as new, and under valgrind the blocks it forgot are
// announced freed (else the next round's blocks at the same addresses
// overlap them in memcheck's eyes, and leaks are reported).
static inline void seed_reset(const seed_target_t *t)
{
    const teach_allocator_t *a = t->a;
    void *p[SEED_NSIZES];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < SEED_NSIZES; i++) {
            p[i] = a->malloc(seed_sizes[i]);
            if (!SEED_CHECK(t, p[i] != NULL))
                return;
            seed_fill(p[i], seed_sizes[i], (uint8_t)i);
        }
        for (size_t i = 0; i < SEED_NSIZES; i += 2)
            a->free(p[i]);
        a->reset();
        seed_walk_t w = seed_walk(a);
        SEED_CHECK(t, a->footprint() == 0);
        SEED_CHECK(t, a->live_bytes() == 0);
        SEED_CHECK(t, w.used_blocks == 0 && w.free_blocks == 0);
    }
}

// The table: every case, by name, for a runner that loops over allocators.
__attribute__((unused))
static const struct { const char *name; seed_case_fn fn; } seed_table[] = {
    { "basic", seed_basic },           { "alignment", seed_alignment },
    { "boundary", seed_boundary },     { "asan_overflow", seed_asan_overflow },
    { "large", seed_large },           { "random", seed_random },
    { "realloc", seed_realloc },       { "memalign", seed_memalign },
    { "double_free", seed_double_free }, { "invalid_free", seed_invalid_free },
    { "bad_input", seed_bad_input },   { "exhausted", seed_exhausted },
    { "reset", seed_reset },
};

// The design called `name`; the test is skipped while it is not in the registry.
static inline const teach_allocator_t *design(const char *name)
{
    const teach_allocator_t *a = teach_find(name);
    if (a == NULL) {
        fprintf(stderr, "  no design called %s in teach_allocators[]\n", name);
        TEST_SKIP("design not built");
    }
    return a;
}

#endif
