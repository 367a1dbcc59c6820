// SPDX-License-Identifier: MIT
//
// heap.h -- the per-thread heap and the two fast paths.
//
// A thread reaches its heap through an initial-exec TLS pointer that starts
// at mallet__heap_empty, a static heap whose slots all point to a page with
// no free blocks: the first malloc of a thread simply misses the fast path
// and the slow path builds the heap. No "initialised?" test anywhere.
//
// Fast paths (leaves: no calls, no stats, no atomics, no locks):
//   malloc  direct[(size+15)/16] -> page; pop page->free; check the decoded
//           link stays in the segment; clear the block's link and mark.
//   free    segment map bit -> unit map -> page; owner test; block-start
//           test (a multiply); the block must not carry the page's mark
//           (else a double free); push on local_free; lay the mark.
// Each touches the block and one line of its page's descriptor (page.h).
// Anything else tail-calls the slow path.
//
// The heap lock is taken by the owner in its slow paths only, and by the
// purger thread (a try-lock) to retire the owner's empty pages. Other
// threads never wait on it: a free into a page on the owner's full list
// puts the page on the owner's unfull stack, one atomic push, and the owner
// takes the stack back in its next refill.
#ifndef MALLET_HEAP_H
#define MALLET_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "debug/debug.h"
#include "base/base.h"
#include "page.h"
#include "sample.h"
#include "harden.h"
#include "span.h"

typedef struct mallet_heap {
    mallet_page_t *direct[MALLET_DIRECT_SLOTS];    // current page per 16-byte step <= 1 KiB
    mallet_page_t *current[MALLET_CLASSES];        // current page per class
    mallet_page_list_t queue[MALLET_CLASSES];      // owned pages that may have free blocks
    mallet_page_list_t full[MALLET_CLASSES];       // owned pages found with none
    mallet_page_t *cursor[MALLET_CLASSES];         // next page of the queue's round (NULL: its first)
    mallet_page_t *unfull;                         // full pages other threads freed into (atomic stack)
    uint8_t alive;                                 // owned by a running thread
    uint8_t internal;                              // libmallet's own (not in the statistics)
    uint8_t shared;                                // the profiler's: owned by prof_lock's holder (prof/prof.c)
    mallet_page_t *rf_page;                        // page of the pending remote-free batch
    uintptr_t rf_head;                             // batch: first block (links encoded for rf_page)
    uintptr_t rf_tail;                             // batch: last block
    uint32_t rf_count;                             // batch: blocks
    uint64_t next_sweep_ms;                        // clock time of the next housekeeping
    uint32_t clock_countdown;                      // slow paths until the clock is read again
    uint64_t parked_ms;                            // clock time the heap was last parked
    uint32_t parked_calls;                         // parked again within that millisecond
    uint64_t stat[MALLET_STAT_COUNT];              // counters, see stats.h
    mallet_prof_heap_t prof;                       // sampling state, see sample.h
    struct mallet_heap *next;                      // in the list of live heaps / the free pool
    struct mallet_heap *prev;                      // in the list of live heaps
    // Last, and never cleared when a record is reused: another thread may
    // still be waiting on it (trim takes every heap's lock).
    mallet_lock_t lock;                            // owner's slow paths, purger
} __attribute__((aligned(64))) mallet_heap_t;   // records sit side by side: no line shared

_Static_assert(_Alignof(mallet_heap_t) > MALLET_PAGE_TAGS, "a heap's address leaves room for the page tags");

extern mallet_heap_t mallet__heap_empty;
extern __thread mallet_heap_t *mallet__tls_heap __attribute__((tls_model("initial-exec")));
// The thread's heap while it is parked (mallet__tls_heap is then the empty
// heap, so every fast path misses); NULL otherwise. Single-threaded
// programs only (heap.c, mallet__heap_tick).
extern __thread mallet_heap_t *mallet__tls_parked __attribute__((tls_model("initial-exec")));

// Make the parked heap the thread's heap again; it.
mallet_heap_t *mallet__heap_unpark(void);

// The calling thread's heap (the empty heap when it has none), unparked:
// where a call of the program takes a slow path.
static inline mallet_heap_t *mallet__heap_self(void)
{
    if (__builtin_expect(mallet__tls_parked != NULL, 0))
        return mallet__heap_unpark();
    return mallet__tls_heap;
}

// The same, left parked: for a look that is not an allocation or a free
// (statistics, a check, a trim), which must not spend the parked call.
static inline mallet_heap_t *mallet__heap_mine(void)
{
    return mallet__tls_parked ? mallet__tls_parked : mallet__tls_heap;
}

// --- slow paths (heap.c, api/free.c) --------------------------------------------

// Allocate `req` bytes of class cls (cls < 0: the class of req) for heap
// (the size first: it arrives in the register malloc received it in).
void *mallet__malloc_slow(size_t req, mallet_heap_t *heap, int cls);
// Any request the direct slots do not cover: larger small classes, large.
void *mallet__malloc_generic(mallet_heap_t *heap, size_t size);

// Free p, a live block of page, whose owner is heap, as its owner would:
// the page leaves the full list if it is on it.
void mallet__free_owned(mallet_heap_t *heap, mallet_page_t *page, uintptr_t p);

// --- the fast paths -------------------------------------------------------------

// Block b of page now serves req bytes: tell the checkers, lay the secure
// build's tag; returns b.
static inline void *mallet__track_alloc(mallet_page_t *page, uintptr_t b, size_t req)
{
#if MALLET_TRACK_ENABLED
    if (page->req)
        page->req[mallet__page_index(page, b)] = (uint32_t)req;
#endif
    mallet__block_handout(b);
    MALLET_TRACK_MALLOC((void *)b, req, page->block_size, 0);
#if MALLET_SECURE
    return mallet__secure_lay(page, b, req);
#endif
    (void)page, (void)req;
    return (void *)b;
}

// Pop from page->free when the next link is in place; NULL otherwise.
static inline void *mallet__page_pop(mallet_page_t *page, size_t req)
{
    uintptr_t b = page->free;
    if (__builtin_expect(b == 0, 0))
        return NULL;
    // Tested as next ^ b, which is the stored word ^ key; the empty asm
    // keeps next itself from being computed before the test (one register
    // copy fewer).
    uintptr_t x = mallet__link_read(page, b) ^ b;
    __asm__("" : "+r"(x));
    if (__builtin_expect((x & MALLET_LINK_CHECK) != 0, 0))
        return NULL;          // end of list or damage: the slow path decides
    uintptr_t next = x ^ b;
#if MALLET_SECURE
    if (__builtin_expect(!mallet__secure_fill_intact(page, b), 0))
        return NULL;          // written after free: the slow path reports it
#endif
    page->free = next;
#if MALLET_SECURE
    // The next malloc of this class checks the next block's two ends: start
    // loading them now, so that check finds them in the cache.
    __builtin_prefetch((const void *)next);
    __builtin_prefetch((const void *)(next + page->block_size - 8));
#endif
    return mallet__track_alloc(page, b, req);
}

// --- heap_list.c, heap.c ---------------------------------------------------------

extern mallet_lock_t mallet__heaps_lock;
extern mallet_heap_t *mallet__heaps;               // live heaps
// Make the calling thread's heap (NULL + ENOMEM when out of memory).
mallet_heap_t *mallet__heap_create(void);
// A heap for libmallet's own allocations (what pthread_create allocates for
// the purger thread): its blocks are left out of the statistics.
mallet_heap_t *mallet__heap_create_internal(void);
// The profiler's heap: no thread's own, used under prof_lock (prof/prof.c).
mallet_heap_t *mallet__heap_create_shared(void);
// Retire the record of a heap that has no pages left; heaps_lock held.
void mallet__heap_release_locked(mallet_heap_t *heap);
// Collect every page of heap; retire the empty ones (all of them when
// `all`, else keeping one spare per class); heap->lock held by the caller.
// A thread other than the owner passes foreign = true: then only pages that
// are not current and whose bits are all clear are touched.
void mallet__heap_sweep(mallet_heap_t *heap, bool all, bool foreign);
// Blocks on the free list of class c's current page (the owner, or the
// holder of prof_heap_lock for the profiler's heap; heap->lock held).
uint32_t mallet__heap_listed(mallet_heap_t *heap, unsigned c);
// The same for every class, their bytes added to *bytes; takes heap->lock.
uint64_t mallet__heap_listed_all(mallet_heap_t *heap, uint64_t *bytes);
// Collect other threads' frees into every page of heap (lock held).
void mallet__heap_collect_all(mallet_heap_t *heap);
// Retire or abandon every page; the heap is then unused (thread exit, fork).
void mallet__heap_abandon(mallet_heap_t *heap);
// Take a page of the owner's full list back into its queue (lock held).
void mallet__heap_unfull(mallet_heap_t *heap, mallet_page_t *page);
// For heap_list.c, on the owner's lists (lock held): put class c's current
// page away (its cut healed, its free list unloaded); take page out of its
// class's queue; move the unfull stack's pages back to their queues.
void mallet__heap_uninstall(mallet_heap_t *heap, unsigned c);
void mallet__heap_queue_remove(mallet_heap_t *heap, mallet_page_t *page);
void mallet__heap_take_unfull(mallet_heap_t *heap);
// In a fork child: the heaps of the threads that did not come along are
// forgotten; the forking thread's heap is repaired, or given up when another
// thread was sweeping it (api/fork.c).
void mallet__heap_after_fork(void);
// At the end of a slow path, no lock held: every CLOCK_EVERY calls, read
// the clock, do the housekeeping due, start the purger or park the heap.
void mallet__heap_tick(mallet_heap_t *heap);
// Housekeeping on the clock: sweep the heap, purge idle units.
void mallet__heap_housekeeping(mallet_heap_t *heap, uint64_t now);

// --- remote_free.c --------------------------------------------------------------

// Free p, a live block of page, owned by another thread (or by none).
void mallet__remote_free(mallet_heap_t *heap, mallet_page_t *page, uintptr_t p);
// Hand over the pending batch of heap.
void mallet__remote_flush(mallet_heap_t *heap);

#endif
