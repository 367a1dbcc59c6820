// SPDX-License-Identifier: MIT
//
// sample.h -- the core's side of sampling: which features sample (the
// profiler, prof/, and the guard, secure/guard.c), a thread heap's sampling
// state, and the countdown the malloc slow path runs before it hands a free
// list to the fast path. The draws, the cut in a free list and the sampled
// blocks themselves are the sampler's (prof/prof.c), reached through the
// hook table (base/hooks.h); prof/prof.h explains the design.
#ifndef MALLET_SAMPLE_H
#define MALLET_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "size_class.h"

struct mallet_heap;
struct mallet_page;

// A thread heap's sampling state; lives in the heap, touched only in its
// slow paths.
typedef struct mallet_prof_heap {
    uint32_t wait[MALLET_CLASSES];       // allocations of the class up to the sampled one (0: not drawn)
    uint32_t rest[MALLET_CLASSES];       // blocks from the cut to the list's end
    uintptr_t cut[MALLET_CLASSES];       // block whose link was made the end of the list (0: none)
    uintptr_t cut_next[MALLET_CLASSES];  // its real next block
    uint32_t fresh;                      // blocks the last refill put on a free list
    uint64_t rng;                        // xorshift state (0: not seeded)
    uint32_t epoch;                      // mallet__options_epoch the countdowns were drawn in
} mallet_prof_heap_t;

// Functions that may stand between the program and the unwinder are put in
// one section, so the stack a sample records starts at the program's call.
#define MALLET_PROF_FRAME __attribute__((section("mallet_text")))

static inline bool mallet__prof_enabled(void)
{
    return __builtin_expect(mallet__option(prof) != 0, 0);
}

#if defined(MALLET_TRACK_ASAN)
#define MALLET_GUARD_BUILD 0
#else
#define MALLET_GUARD_BUILD 1
#endif

static inline bool mallet__guard_enabled(void)
{
    return MALLET_GUARD_BUILD && __builtin_expect(mallet__option(guard) != 0, 1);
}

// Set while the thread is inside the profiler: a malloc the profiler
// causes is not sampled.
extern __thread uint8_t mallet__prof_busy __attribute__((tls_model("initial-exec")));

// Does a heap sample? Profiling or the guard on, the heap not one
// of libmallet's own (internal) or the profiler's (shared), the thread not
// inside the profiler.
static inline bool mallet__prof_heap_samples(bool internal, bool shared)
{
    return (mallet__prof_enabled() || mallet__guard_enabled()) && !internal && !shared && !mallet__prof_busy;
}

// One allocation of the class whose countdown is *wait is being served:
// true when it is the sampled one (then the caller pops nothing and serves
// it with mallet__prof_alloc).
static inline bool mallet__prof_take(struct mallet_heap *heap, uint32_t *wait, unsigned c)
{
    if (*wait > 1) {
        (*wait)--;
        return false;
    }
    return mallet__hooks.sample_take(heap, c);
}
// page->free holds n blocks for the fast path: count them against the
// countdown *wait, cutting the list before the sampled one. The fast path
// pops all but the last block; the slow path takes that one (its link ends
// the list) and counts it then.
static inline void mallet__prof_plan(struct mallet_heap *heap, uint32_t *wait, struct mallet_page *page,
                                     unsigned c, uint32_t n)
{
    if (n == 0)
        return;
    if (*wait >= n)
        *wait -= n - 1;
    else
        mallet__hooks.sample_cut(heap, page, c, n);
}

// The profiler's heap (NULL before the first sample): the sampler makes it
// (a shared heap, mallet__heap_create_shared); the core keeps it across a
// fork (heap_list.c) and free sends its blocks back (api/free.c).
extern struct mallet_heap *mallet__prof_heap;

// The alignment a sampled small allocation is served with, when it is more
// than its size asks for (aligned_alloc and friends set it around the slow
// path; 0 otherwise).
extern __thread size_t mallet__guard_align __attribute__((tls_model("initial-exec")));

#endif
