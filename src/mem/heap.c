// SPDX-License-Identifier: MIT
//
// heap.c -- thread heaps: the malloc slow path, finding a page with free
// blocks, the current page of each class and its queue. A heap's record,
// its sweeps and its abandonment are heap_list.c's.
//
// Where a page is found, in order: the current page's own lists (collect
// other threads' frees, swap in local_free, carve more blocks); the other
// pages in the class's queue; an abandoned page of the class; a new page
// from the segments. A page found with no free block moves to the full list
// and its owner field gets MALLET_PAGE_FULL, so the next free into it misses
// the fast path and moves it back (see mallet__free_slow; another thread's
// free queues it on the heap's unfull stack instead, remote_free.c).
//
// Empty pages stay in their queue until a sweep (every purge_delay_ms / 2 on
// the owner's slow path, or from the purger thread) finds them: one per
// class is kept as a spare for one more sweep, so a program that empties
// and refills a page in a loop does not pay for a new page each time; the
// rest go back to their segment, to be purged after the delay.
//
// Calls: page.c, span.c, thread.c (adoption), remote_free.c, large.c,
// heap_list.c (sweeps).
#include "heap.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/single_threaded.h>

#include "large.h"
#include "base/base.h"
#include "os/os.h"
#include "thread.h"

#define EMPTY_PAGES_DIRECT(n) [0 ... (n) - 1] = &mallet__page_empty

// The sampler's per-thread state (sample.h).
__thread uint8_t mallet__prof_busy __attribute__((tls_model("initial-exec")));
__thread size_t mallet__guard_align __attribute__((tls_model("initial-exec")));

mallet_heap_t mallet__heap_empty = {
    .direct = { EMPTY_PAGES_DIRECT(MALLET_DIRECT_SLOTS) },
    .current = { EMPTY_PAGES_DIRECT(MALLET_CLASSES) },
};

// --- current pages -------------------------------------------------------------

static void heap_set_current(mallet_heap_t *heap, unsigned c, mallet_page_t *page)
{
    const mallet_class_t *k = &mallet__classes[c];
    mallet_assert(page == &mallet__page_empty || (page->cls == c && page->where == MALLET_PAGE_QUEUE));
    heap->current[c] = page;
    for (unsigned i = k->direct_lo; i <= k->direct_hi; i++)
        heap->direct[i] = page;
    if (page != &mallet__page_empty)
        page->spare_seen = 0;
}

void mallet__heap_uninstall(mallet_heap_t *heap, unsigned c)
{
    mallet_page_t *page = heap->current[c];
    if (page == &mallet__page_empty)
        return;
    if (heap->prof.cut[c])
        mallet__hooks.sample_heal(heap, page, c);
    mallet__stat_add(heap, blocks_returned, mallet__page_unload(page));
    heap_set_current(heap, c, &mallet__page_empty);
}

// The queue of a class is walked round by a cursor: the page after the
// current one is the next to serve, and pages are never moved to turn the
// queue (a move writes its neighbours' descriptors, cold by then). Pages
// that join it go just before the cursor, last in the round.
static void heap_queue_insert(mallet_heap_t *heap, mallet_page_t *page)
{
    page->where = MALLET_PAGE_QUEUE;
    mallet__page_list_insert_before(&heap->queue[page->cls], heap->cursor[page->cls], page);
}

void mallet__heap_queue_remove(mallet_heap_t *heap, mallet_page_t *page)
{
    if (heap->cursor[page->cls] == page)
        heap->cursor[page->cls] = page->next;
    mallet__page_list_remove(&heap->queue[page->cls], page);
}

static void heap_make_full(mallet_heap_t *heap, mallet_page_t *page)
{
    mallet_assert(page->where == MALLET_PAGE_QUEUE && page->free == 0 && page->local_free == 0);
    if (heap->current[page->cls] == page)
        heap_set_current(heap, page->cls, &mallet__page_empty);
    mallet__heap_queue_remove(heap, page);
    mallet__page_list_push(&heap->full[page->cls], page);
    page->where = MALLET_PAGE_FULLQ;
    __atomic_store_n(&page->heap, (uintptr_t)heap | MALLET_PAGE_FULL, __ATOMIC_SEQ_CST);
    // A remote free pushed just before the tag was visible would not have
    // seen it: look once more, now that it is (see remote_free.c).
    if (__atomic_load_n(&page->thread_free, __ATOMIC_SEQ_CST) != 0)
        mallet__heap_unfull(heap, page);
}

// Move the pages of the unfull stack back to the queue: every one is on
// this heap's full list, tagged FULL | QUEUED (only the owner clears those
// tags, here, at abandon and after fork).
void mallet__heap_take_unfull(mallet_heap_t *heap)
{
    if (__atomic_load_n(&heap->unfull, __ATOMIC_RELAXED) == NULL)
        return;
    mallet_page_t *page = __atomic_exchange_n(&heap->unfull, NULL, __ATOMIC_ACQUIRE);
    while (page) {
        mallet_page_t *next = page->unfull_next;
        mallet_assert(page->where == MALLET_PAGE_FULLQ &&
                      __atomic_load_n(&page->heap, __ATOMIC_RELAXED) == ((uintptr_t)heap | MALLET_PAGE_TAGS));
        mallet__page_list_remove(&heap->full[page->cls], page);
        heap_queue_insert(heap, page);
        __atomic_store_n(&page->heap, (uintptr_t)heap, __ATOMIC_RELEASE);
        page = next;
    }
}

void mallet__free_owned(mallet_heap_t *heap, mallet_page_t *page, uintptr_t p)
{
    // Our own page, maybe on our full list: back to the queue, then the push.
    mallet__lock(&heap->lock);
    mallet__heap_unfull(heap, page);
    MALLET_TRACK_FREE((void *)p, page->block_size);
    mallet__page_push_local(page, p, p, 1);
    mallet__unlock(&heap->lock);
}

void mallet__heap_unfull(mallet_heap_t *heap, mallet_page_t *page)
{
    // A compare-and-swap, not a store: another thread may be tagging the
    // page QUEUED at this moment, and then the unfull stack brings it back.
    uintptr_t full = (uintptr_t)heap | MALLET_PAGE_FULL;
    if (page->where != MALLET_PAGE_FULLQ ||
        !__atomic_compare_exchange_n(&page->heap, &full, (uintptr_t)heap, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return;
    mallet__page_list_remove(&heap->full[page->cls], page);
    // Last in the round: the page has a free block or two; by the time
    // the cursor comes to it, it has gathered more.
    heap_queue_insert(heap, page);
}

// The current page stays current, its local list swapped in, when that
// list holds at least this many blocks; fewer, and the next page of the
// round, which has gathered frees for longer, serves instead.
static inline uint32_t refill_min(const mallet_page_t *page)
{
    uint32_t t = page->reserved / 16;
    return t < 1 ? 1 : t > 16 ? 16 : t;
}

// Give page (in the queue, `free` empty) free blocks and make it current;
// false when it has none to give.
static bool heap_install(mallet_heap_t *heap, unsigned c, mallet_page_t *page)
{
    if (page->free == 0) {
        uint32_t n = page->local_count ? mallet__page_swap_in(page) : mallet__page_extend(page);
        if (n == 0)
            return false;
        mallet__stat_add(heap, blocks_installed, n);
        heap->prof.fresh = n;
    }
    if (heap->current[c] != page)
        heap_set_current(heap, c, page);
    return true;
}

// The current page of class c is out of blocks: find a page with free
// blocks, in O(1) steps. The current page refills itself when its own
// lists hold enough or it has blocks left to carve; else the cursor's page
// serves (a page found with nothing on the way goes to the full list).
// Then an abandoned page, then a new one.
static mallet_page_t *heap_find_page(mallet_heap_t *heap, unsigned c)
{
    mallet__heap_take_unfull(heap);
    mallet_page_t *page = heap->current[c];
    if (page != &mallet__page_empty) {
        mallet__page_collect(page);
        if ((page->local_count >= refill_min(page) || page->capacity < page->reserved) &&
            heap_install(heap, c, page))
            return page;
    }
    for (;;) {
        page = heap->cursor[c] ? heap->cursor[c] : heap->queue[c].first;
        if (page == NULL)
            break;
        heap->cursor[c] = page->next;
        mallet__page_collect(page);
        if (heap_install(heap, c, page))
            return page;
        heap_make_full(heap, page);
    }
    for (int tries = 0; tries < 8; tries++) {
        page = mallet__thread_adopt(heap, c);
        if (page == NULL)
            break;
        page->internal = heap->internal;
        heap_queue_insert(heap, page);
        if (heap_install(heap, c, page))
            return page;
        heap_make_full(heap, page);
    }
    page = mallet__span_page_alloc(c, heap);
    if (page == NULL)
        return NULL;
    // A heap taking new pages may be one that freed much a while ago:
    // look at the clock at the end of this slow path.
    heap->clock_countdown = 1;
    mallet__stat_add(heap, pages_allocated, 1);
    page->internal = heap->internal;
    heap_queue_insert(heap, page);
    heap_install(heap, c, page);
    return page;
}

// Slow paths between two looks at the clock: housekeeping is due every
// purge_delay_ms / 2, and a clock read on every refill would cost more than
// the refill. A slow path that takes a new page looks at once. The purger
// thread's start (the process has grown) and the parking of a
// single-threaded program's heap are decided on the same beat.
#define CLOCK_EVERY 64
// Parked calls in one millisecond before the heap stays unparked until its
// next slow path (mallet__heap_tick).
#define PARK_BURST 16

__thread mallet_heap_t *mallet__tls_parked __attribute__((tls_model("initial-exec")));

void mallet__heap_tick(mallet_heap_t *heap)
{
    if (--heap->clock_countdown != 0)
        return;
    heap->clock_countdown = CLOCK_EVERY;
    uint64_t now = mallet__clock_ms();
    if (now >= heap->next_sweep_ms) {
        mallet__lock(&heap->lock);
        mallet__heap_housekeeping(heap, now);
        mallet__unlock(&heap->lock);
    }
    mallet__thread_after_slow();
    // A program with one thread has no purger (purge.c): the calls it makes
    // are the only moments memory can go back. Parking the heap sends the
    // next call, whatever it is, down a slow path that looks at the clock,
    // so a process that freed much and now calls malloc seldom still
    // shrinks on the decay clock. Not more than PARK_BURST times in one
    // millisecond: a program that calls faster reaches its slow paths
    // often enough, and pays at most that many extra slow paths a
    // millisecond (and a clock read on its next slow path, which parks it
    // again: callgrind counts the same instructions on lib_churn 1
    // 2000000 either way); one that makes a few calls at a time (a malloc
    // and its free) stays parked.
    if (__libc_single_threaded && !heap->internal && !heap->shared && mallet__option(purger)) {
        if (now != heap->parked_ms) {
            heap->parked_ms = now;
            heap->parked_calls = 0;
        } else if (++heap->parked_calls >= PARK_BURST) {
            heap->clock_countdown = 1;      // busy: the next slow path parks
            return;
        }
        mallet__tls_parked = heap;
        mallet__tls_heap = &mallet__heap_empty;
    }
}

mallet_heap_t *mallet__heap_unpark(void)
{
    mallet_heap_t *heap = mallet__tls_parked;
    mallet__tls_parked = NULL;
    mallet__tls_heap = heap;
    heap->clock_countdown = 1;      // this call's slow path reads the clock
    return heap;
}

MALLET_PROF_FRAME void *mallet__malloc_slow(size_t req, mallet_heap_t *heap, int cls)
{
    if (heap == &mallet__heap_empty && mallet__tls_parked)
        heap = mallet__heap_unpark();
    if (heap == &mallet__heap_empty) {
        if (mallet__tls_exited)
            return mallet__thread_exiting_alloc(req, cls);
        heap = mallet__heap_create();
        if (heap == NULL)
            return NULL;
    }
    unsigned c = cls < 0 ? mallet__size_class(MALLET_SECURE_PAD(req)) : (unsigned)cls;
    if (heap->rf_count)
        mallet__remote_flush(heap);
    mallet__lock(&heap->lock);
    if (__builtin_expect(heap->prof.epoch != __atomic_load_n(&mallet__options_epoch, __ATOMIC_RELAXED), 0))
        mallet__hooks.sample_restart(heap);
    mallet_page_t *page = heap->current[c];
    // Blocks on page->free, for the profiler: the fast path stops at a
    // cut, or at the last block (whose link ends the list), or finds none.
    uint32_t on_list = 1;
    if (heap->prof.cut[c] != 0) {
        on_list = mallet__hooks.sample_heal(heap, page, c);
    } else if (page->free == 0) {
        page = heap_find_page(heap, c);
        on_list = heap->prof.fresh;
    }
    void *b = NULL;
    bool sampled = false;
    if (page != NULL) {
        bool prof = mallet__prof_heap_samples(heap->internal, heap->shared);
        sampled = prof && mallet__prof_take(heap, &heap->prof.wait[c], c);
        if (!sampled) {
            b = mallet__page_pop_checked(page);
            on_list--;
        }
        if (prof)
            mallet__prof_plan(heap, &heap->prof.wait[c], page, c, on_list);
    }
    mallet__unlock(&heap->lock);
    if (sampled) {
        b = mallet__hooks.sample_alloc(req, c);
        if (b == NULL) {
            // Neither the guard nor the profiler took it: served as any
            // other allocation, without drawing again.
            mallet__prof_busy = 1;
            b = mallet__malloc_slow(req, heap, (int)c);
            mallet__prof_busy = 0;
        }
    } else if (b != NULL) {
        b = mallet__track_alloc(page, (uintptr_t)b, req);
    }
    mallet__heap_tick(heap);
    if (b == NULL)
        errno = ENOMEM;
    return b;
}

MALLET_PROF_FRAME void *mallet__malloc_generic(mallet_heap_t *heap, size_t size)
{
    if (MALLET_SECURE_PAD(size) <= MALLET_SMALL_MAX) {
        unsigned c = mallet__size_class(MALLET_SECURE_PAD(size));
        void *b = mallet__page_pop(heap->current[c], size);
        return b ? b : mallet__malloc_slow(size, heap, (int)c);
    }
    return mallet__large_alloc(size, 0, NULL);
}
