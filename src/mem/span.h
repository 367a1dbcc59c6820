// SPDX-License-Identifier: MIT
//
// span.h -- segments reserved from the OS, carved into pages; the segment
// map that says, for any address, whether it lies in one of our segments.
//
// The segment map is one bit per 4 MiB of the 47-bit user address space
// (4 MiB of zero-filled .bss, touched only where segments live). Together
// with the segment's unit map it gives free(p) its page in O(1), and tells
// at once that a stack, global or foreign pointer is not ours.
//
// Free units keep their memory until purge_delay_ms has passed since their
// page was retired (a page freed now is often wanted again within
// microseconds); then whole runs of units go back with one madvise, and a
// segment whose units are all free goes back to the OS entirely.
#ifndef MALLET_SPAN_H
#define MALLET_SPAN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "page.h"

#define MALLET_SEGMAP_BITS ((uintptr_t)1 << (47 - MALLET_SEG_SHIFT))

extern uint64_t mallet__segmap[MALLET_SEGMAP_BITS / 64];
extern mallet_lock_t mallet__seg_lock;

// Is segment number s (address >> MALLET_SEG_SHIFT) one of ours?
static inline bool mallet__segmap_test(uintptr_t s)
{
    if (s >= MALLET_SEGMAP_BITS)
        return false;
#if defined(__x86_64__)
    bool set;
    // The map's symbol is hidden, so it is addressed from %rip directly,
    // with no address load first.
    __asm__ volatile("btq %1, mallet__segmap(%%rip)" : "=@ccc"(set) : "r"(s));
    return set;
#else
    return (__atomic_load_n(&mallet__segmap[s >> 6], __ATOMIC_RELAXED) >> (s & 63)) & 1;
#endif
}

// The page holding p, or NULL when p is in none of our segments' pages.
static inline mallet_page_t *mallet__span_page_of(uintptr_t p)
{
    if (!mallet__segmap_test(p >> MALLET_SEG_SHIFT))
        return NULL;
    mallet_page_t *page = mallet__segment_of(p)->unit_page[(p >> MALLET_UNIT_SHIFT) & (MALLET_SEG_UNITS - 1)];
    return page->block_size ? page : NULL;
}

// A fresh page of class cls for heap (NULL + ENOMEM when the OS refuses).
mallet_page_t *mallet__span_page_alloc(unsigned cls, struct mallet_heap *heap);
// Give a page with no live blocks back to its segment.
void mallet__span_page_retire(mallet_page_t *page);
// Purge free units idle for purge_delay_ms (all of them when force); return
// segments whose units are all free to the OS. Returns bytes given back.
size_t mallet__span_purge(uint64_t now_ms, bool force);

typedef struct mallet_span_totals {
    uint64_t mapped;       // bytes of segments mapped
    uint64_t resident;     // of those, not purged
    uint64_t active;       // bytes in pages that hold a live block
    uint64_t allocated;    // bytes in live small blocks
    uint64_t live_blocks;  // live small blocks
    uint64_t purged;       // bytes purged, ever
} mallet_span_totals_t;

void mallet__span_totals(mallet_span_totals_t *t);
// In a fork child: give up the segments when a vanished thread held
// seg_lock (api/fork.c).
void mallet__span_after_fork(void);
// Cheap reads of two totals, without the lock.
uint64_t mallet__span_mapped(void);
uint64_t mallet__span_retired(void);

#endif
