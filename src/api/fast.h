// SPDX-License-Identifier: MIT
//
// fast.h -- malloc's and free's fast paths, inlined into the entry points
// (alloc.c, free.c, override/). They pop and push on the calling thread's
// pages with mem/'s inline helpers; their exits are the entry points' own:
// free's slow path (free.c), which sends a block where it belongs (the
// large blocks, the guard, the profiler, another thread, its owner), and,
// in the secure build, malloc(0) (alloc.c). mem/ never sees them.
#ifndef MALLET_API_FAST_H
#define MALLET_API_FAST_H

#include "mem/mem.h"

#if MALLET_SECURE
// malloc(0): an address in the inaccessible region (secure/zero.c), or,
// when it is full, an ordinary block.
void *mallet__malloc_zero(void);
#endif
// Everything free's fast path did not do: NULL, large, foreign, remote,
// full pages, sampled blocks, and the errors.
void mallet__free_slow(void *p, const char *func);

// Marked for the profiler's unwinder: a checker build may keep it out of
// line, between the program's call and the slow path.
static inline MALLET_PROF_FRAME void *mallet__malloc_fast(size_t size)
{
#if MALLET_SECURE
    if (__builtin_expect(size == 0, 0))
        return mallet__malloc_zero();
#endif
    mallet_heap_t *heap = mallet__tls_heap;
    size_t want = MALLET_SECURE_PAD(size);
    if (__builtin_expect(want <= MALLET_DIRECT_MAX, 1)) {
        mallet_page_t *page = heap->direct[(want + MALLET_GRAIN - 1) >> MALLET_GRAIN_SHIFT];
        void *b = mallet__page_pop(page, size);
        if (__builtin_expect(b != NULL, 1))
            return b;
        return mallet__malloc_slow(size, heap, -1);
    }
    return mallet__malloc_generic(heap, size);
}

static inline void mallet__free_fast(void *ptr, const char *func)
{
    uintptr_t p = (uintptr_t)ptr;
    // NULL and any address outside libmallet's segments fail the segment
    // map; a misaligned one fails the block-start test.
    if (__builtin_expect(mallet__segmap_test(p >> MALLET_SEG_SHIFT), 1)) {
        mallet_segment_t *seg = mallet__segment_of(p);
        mallet_page_t *page = seg->unit_page[(p >> MALLET_UNIT_SHIFT) & (MALLET_SEG_UNITS - 1)];
        uintptr_t owner = __atomic_load_n(&page->heap, __ATOMIC_RELAXED);
        if (__builtin_expect(owner == (uintptr_t)mallet__tls_heap, 1) &&
            __builtin_expect(mallet__page_block_start(page, p), 1) &&
            __builtin_expect(mallet__mark_get(p) != page->mark, 1)) {
#if MALLET_SECURE
            // A damaged tag or gap sends the call to the slow path, which
            // checks again and reports.
            if (__builtin_expect(!mallet__secure_intact(page, p), 0))
                goto slow;
            mallet__secure_fill(page, p);
#endif
            MALLET_TRACK_FREE(ptr, page->block_size);
            mallet__mark_set(page, p);
            mallet__page_push_local(page, p, p, 1);
            return;
        }
    }
#if MALLET_SECURE
slow:
#endif
    mallet__free_slow(ptr, func);
}

#endif
