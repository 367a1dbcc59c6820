// SPDX-License-Identifier: MIT
//
// heap_list.c -- a heap's life: its record (taken from the OS a batch at a
// time, kept in the list of live heaps, pooled when its thread is done),
// the list's repair in a fork child, sweeping its empty pages, abandoning
// it at thread exit. heap.c serves from a live heap.
//
// Calls: heap.c (a class's current page and queue), page.c, span.c,
// thread.c (abandoned pages), remote_free.c.
#include "heap.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "base/base.h"
#include "os/os.h"
#include "large.h"
#include "thread.h"

mallet_lock_t mallet__heaps_lock;
mallet_heap_t *mallet__heaps;
mallet_heap_t *mallet__prof_heap;                 // sample.h
static mallet_heap_t *heap_pool;         // heaps of exited threads, for reuse

// --- the heap records themselves --------------------------------------------

static mallet_heap_t *heap_record(void)
{
    mallet__lock(&mallet__heaps_lock);
    mallet_heap_t *heap = heap_pool;
    if (heap) {
        heap_pool = heap->next;
    } else {
        // Heap records come from the OS a batch at a time, never from malloc.
        size_t chunk = 64 * 1024, n = chunk / sizeof(mallet_heap_t);
        mallet_heap_t *batch = mallet__os_map(chunk, 0);
        if (batch == NULL) {
            mallet__unlock(&mallet__heaps_lock);
            return NULL;
        }
        for (size_t i = 1; i < n; i++) {
            batch[i].next = heap_pool;
            heap_pool = &batch[i];
        }
        heap = &batch[0];
    }
    memset(heap, 0, offsetof(mallet_heap_t, lock));
    for (unsigned i = 0; i < MALLET_DIRECT_SLOTS; i++)
        heap->direct[i] = &mallet__page_empty;
    for (unsigned c = 0; c < MALLET_CLASSES; c++)
        heap->current[c] = &mallet__page_empty;
    heap->alive = 1;
    heap->next = mallet__heaps;
    if (mallet__heaps)
        mallet__heaps->prev = heap;
    mallet__heaps = heap;
    mallet__unlock(&mallet__heaps_lock);
    return heap;
}

mallet_heap_t *mallet__heap_create(void)
{
    mallet__init();
    // Start-up may have allocated (pthread_atfork): the heap may exist now.
    if (mallet__tls_heap != &mallet__heap_empty)
        return mallet__tls_heap;
    mallet_heap_t *heap = heap_record();
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    heap->next_sweep_ms = mallet__clock_ms() + 1;
    heap->clock_countdown = 1;
    mallet__tls_heap = heap;
    mallet__thread_attach(heap);
    return heap;
}

mallet_heap_t *mallet__heap_create_internal(void)
{
    mallet_heap_t *heap = heap_record();
    if (heap)
        heap->internal = 1;
    return heap;
}

mallet_heap_t *mallet__heap_create_shared(void)
{
    mallet_heap_t *heap = heap_record();
    if (heap) {
        heap->shared = 1;
        heap->next_sweep_ms = mallet__clock_ms() + 1;
        heap->clock_countdown = 1;
    }
    return heap;
}

// Take heap out of the live list, its counters folded into the orphan
// totals. heaps_lock held.
static void heap_forget_locked(mallet_heap_t *heap)
{
    for (int i = 0; i < MALLET_STAT_COUNT; i++)
        mallet__stat_orphan_add((mallet_stat_id_t)i, heap->stat[i]);
    if (heap->prev)
        heap->prev->next = heap->next;
    else
        mallet__heaps = heap->next;
    if (heap->next)
        heap->next->prev = heap->prev;
    heap->alive = 0;
}

// Forget heap and put its record in the pool. heaps_lock held.
void mallet__heap_release_locked(mallet_heap_t *heap)
{
    heap_forget_locked(heap);
    heap->prev = NULL;
    heap->next = heap_pool;
    heap_pool = heap;
}

// --- a fork child's heaps ------------------------------------------------------

// The forking thread's heap, in a fork child: pages whose pusher onto the
// unfull stack did not come along are taken back. Lock held.
static void heap_own_after_fork(mallet_heap_t *heap)
{
    mallet__heap_take_unfull(heap);
    for (unsigned c = 0; c < MALLET_CLASSES; c++)
        for (mallet_page_t *page = heap->full[c].first; page; page = page->next)
            if (__atomic_load_n(&page->heap, __ATOMIC_RELAXED) & MALLET_PAGE_QUEUED)
                __atomic_store_n(&page->heap, (uintptr_t)heap | MALLET_PAGE_FULL, __ATOMIC_RELAXED);
}

void mallet__heap_after_fork(void)
{
    mallet_heap_t *self = mallet__heap_self();
    if (self != &mallet__heap_empty) {
        mallet_lock_found_t found = mallet__lock_after_fork(&self->lock);
        if (found == MALLET_LOCK_WAS_FREE) {
            heap_own_after_fork(self);
            mallet__unlock(&self->lock);
        } else if (found == MALLET_LOCK_WAS_LOST) {
            // The purger or a trim was sweeping it: its lists may be half
            // linked. The child gives it up (its lock stays taken, so
            // nothing walks it) and builds a new heap on its next malloc.
            self->alive = 0;
            mallet__tls_heap = &mallet__heap_empty;
        }
    }
    mallet_lock_found_t list = mallet__lock_after_fork(&mallet__heaps_lock);
    if (list == MALLET_LOCK_WAS_MINE)
        return;
    if (list == MALLET_LOCK_WAS_LOST) {
        // The list or the pool may be half linked: only the child's own
        // heap is kept; the other records are never used again.
        heap_pool = NULL;
        mallet__heaps = NULL;
        mallet_heap_t *keep[2] = { self, mallet__prof_heap };
        for (int i = 0; i < 2; i++) {
            mallet_heap_t *h = keep[i];
            if (h == NULL || !h->alive || (i == 1 && !h->shared))
                continue;
            h->prev = NULL;
            h->next = mallet__heaps;
            if (mallet__heaps)
                mallet__heaps->prev = h;
            mallet__heaps = h;
        }
    } else {
        // The other threads are gone, and each may have stopped in the
        // middle of a fast path, leaving its pages half updated: their heaps
        // are not walked, only forgotten (records and pages stay unused;
        // frees of their blocks still land safely on thread_free).
        // libmallet's own heaps stay (the profiler's too, unless prof/prof.c
        // gave it up), unless the purger was sweeping one.
        for (mallet_heap_t *h = mallet__heaps, *next; h; h = next) {
            next = h->next;
            if (h == self && h->alive)
                continue;
            if ((h->internal || h->shared) && h->alive) {
                mallet_lock_found_t found = mallet__lock_after_fork(&h->lock);
                if (found == MALLET_LOCK_WAS_FREE)
                    mallet__unlock(&h->lock);
                if (found != MALLET_LOCK_WAS_LOST)
                    continue;
            }
            heap_forget_locked(h);
        }
    }
    mallet__unlock(&mallet__heaps_lock);
}

// --- sweeping and abandoning --------------------------------------------------

uint64_t mallet__heap_listed_all(mallet_heap_t *heap, uint64_t *bytes)
{
    uint64_t n = 0;
    mallet__lock(&heap->lock);
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        uint32_t k = mallet__heap_listed(heap, c);
        n += k;
        *bytes += (uint64_t)k * mallet__classes[c].size;
    }
    mallet__unlock(&heap->lock);
    return n;
}

uint32_t mallet__heap_listed(mallet_heap_t *heap, unsigned c)
{
    mallet_page_t *page = heap->current[c];
    if (page == &mallet__page_empty)
        return 0;
    uint32_t n = mallet__page_free_count(page);
    // A list cut for the profiler: the walk stopped at the cut block.
    if (heap->prof.cut[c])
        n += heap->prof.rest[c] - 1;
    return n;
}

void mallet__heap_sweep(mallet_heap_t *heap, bool all, bool foreign)
{
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        bool spare_kept = false;
        for (mallet_page_t *page = heap->queue[c].first; page;) {
            mallet_page_t *next = page->next;
            bool current = page == heap->current[c];
            if (foreign && current) {
                page = next;
                continue;
            }
            // A page that is not current is empty when every carved block
            // is on its local list or in thread_free; the current one's
            // free list is walked, by the owner only (the purger skips it).
            if (!foreign)
                mallet__page_collect(page);
            uint32_t used = mallet__page_used(page);
            bool empty = used == 0 || (current && used == mallet__heap_listed(heap, c));
            if (empty) {
                if (!all && !spare_kept && !page->spare_seen) {
                    page->spare_seen = 1;
                    spare_kept = true;
                } else if (!all && current) {
                    spare_kept = true;
                } else {
                    if (current)
                        mallet__heap_uninstall(heap, c);
                    mallet__heap_queue_remove(heap, page);
                    mallet__stat_add(heap, pages_retired, 1);
                    mallet__span_page_retire(page);
                }
            }
            page = next;
        }
    }
}

void mallet__heap_collect_all(mallet_heap_t *heap)
{
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        for (mallet_page_t *page = heap->queue[c].first; page; page = page->next)
            mallet__page_collect(page);
        for (mallet_page_t *page = heap->full[c].first; page;) {
            mallet_page_t *next = page->next;
            mallet__page_collect(page);
            if (page->free || page->local_free)
                mallet__heap_unfull(heap, page);
            page = next;
        }
    }
}

void mallet__heap_abandon(mallet_heap_t *heap)
{
    if (heap->rf_count)
        mallet__remote_flush(heap);
    mallet__lock(&heap->lock);
    // Untag the full pages, so no other thread queues one from now on, and
    // wait for the ones being queued: a pusher is between two instructions,
    // and no page may leave this heap while it is linked on the stack.
    unsigned pending = 0;
    for (unsigned c = 0; c < MALLET_CLASSES; c++)
        for (mallet_page_t *page = heap->full[c].first; page; page = page->next)
            if (__atomic_exchange_n(&page->heap, (uintptr_t)heap, __ATOMIC_SEQ_CST) & MALLET_PAGE_QUEUED)
                pending++;
    while (pending > 0) {
        mallet_page_t *page = __atomic_exchange_n(&heap->unfull, NULL, __ATOMIC_ACQUIRE);
        for (; page; page = page->unfull_next)
            pending--;
        if (pending > 0)
            sched_yield();
    }
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        mallet__heap_uninstall(heap, c);
        mallet_page_list_t *lists[2] = { &heap->queue[c], &heap->full[c] };
        for (int l = 0; l < 2; l++) {
            mallet_page_t *page;
            while ((page = lists[l]->first) != NULL) {
                mallet__page_list_remove(lists[l], page);
                mallet__page_collect(page);
                if (mallet__page_is_empty(page)) {
                    mallet__stat_add(heap, pages_retired, 1);
                    mallet__span_page_retire(page);
                } else {
                    mallet__stat_add(heap, pages_abandoned, 1);
                    mallet__thread_abandon_page(page);
                }
            }
        }
        heap->cursor[c] = NULL;
    }
    mallet__unlock(&heap->lock);
}

void mallet__heap_housekeeping(mallet_heap_t *heap, uint64_t now)
{
    mallet__heap_sweep(heap, false, false);
    mallet__span_purge(now, false);
    mallet__large_decay(now, false);
    heap->next_sweep_ms = now + (uint64_t)mallet__option(purge_delay_ms) / 2 + 1;
}
