// SPDX-License-Identifier: MIT
//
// remote_free.c -- frees of blocks whose page another thread owns (or
// nobody owns: an abandoned page).
//
// Such frees are batched per page: the freeing heap chains up to
// REMOTE_BATCH blocks of one page (links already encoded with that page's
// key, marks laid by the free) and hands the whole chain over with one
// compare-and-swap on the page's thread_free, whose word carries the
// chain's two ends and length (page.h): the owner takes every batch with
// one exchange and never touches their blocks to collect them. A
// producer/consumer pair thus pays one atomic operation per batch, not per
// block, on either side. A batch is handed over when the next remote free
// is for another page, when it is full, and on the freeing thread's next
// slow path, trim or exit. Until then its blocks count as in use (page.h),
// so their page cannot be retired meanwhile.
//
// A thread with no heap (its first call was free) pushes single blocks
// and builds nothing for its first REMOTE_HEAPLESS frees; past them it is
// a consumer of other threads' blocks, and builds a heap so that its frees
// are batched like everyone's.
//
// A page on its owner's full list (owner field tagged MALLET_PAGE_FULL) is
// put on the owner's unfull stack after the push: the freer that tags it
// MALLET_PAGE_QUEUED (one compare-and-swap, so only one freer does) pushes
// it, and the owner moves the stack's pages back to its queue in its next
// refill. No freer waits on the owner. The push is a seq_cst operation and
// the owner re-reads thread_free after tagging, so one of the two sides
// always sees the other.
#include "heap.h"
#include "thread.h"

#define REMOTE_BATCH 64
#define REMOTE_HEAPLESS 32

static __thread uint32_t heapless_frees __attribute__((tls_model("initial-exec")));

static void page_push_chain(mallet_page_t *page, uintptr_t head, uintptr_t tail, uint32_t n)
{
    uint64_t old = __atomic_load_n(&page->thread_free, __ATOMIC_RELAXED), tf;
    do {
        // The chain grows at its head: its last block stays the first
        // batch's.
        mallet__link_write(page, tail, old ? mallet__tf_head(page, old) : 0);
        tf = mallet__tf_pack(head, old ? mallet__tf_tail(page, old) : tail, mallet__tf_count(old) + n);
    } while (!__atomic_compare_exchange_n(&page->thread_free, &old, tf, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    uintptr_t owner = __atomic_load_n(&page->heap, __ATOMIC_SEQ_CST);
    if ((owner & MALLET_PAGE_TAGS) == MALLET_PAGE_FULL &&
        __atomic_compare_exchange_n(&page->heap, &owner, owner | MALLET_PAGE_QUEUED, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
        mallet_heap_t *h = (mallet_heap_t *)(owner & ~MALLET_PAGE_TAGS);
        mallet_page_t *top = __atomic_load_n(&h->unfull, __ATOMIC_RELAXED);
        do {
            page->unfull_next = top;
        } while (!__atomic_compare_exchange_n(&h->unfull, &top, page, true, __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED));
    }
}

void mallet__remote_flush(mallet_heap_t *heap)
{
    if (heap->rf_count == 0)
        return;
    page_push_chain(heap->rf_page, heap->rf_head, heap->rf_tail, heap->rf_count);
    mallet__stat_add(heap, remote_batches, 1);
    heap->rf_page = NULL;
    heap->rf_head = heap->rf_tail = 0;
    heap->rf_count = 0;
}

void mallet__remote_free(mallet_heap_t *heap, mallet_page_t *page, uintptr_t p)
{
    if (heap == &mallet__heap_empty) {
        // (A thread past its exit builds none: nothing would abandon it.)
        if (++heapless_frees <= REMOTE_HEAPLESS || mallet__tls_exited ||
            (heap = mallet__heap_create()) == NULL) {
            mallet__stat_orphan_add(MALLET_STAT_remote_frees, 1);
            mallet__stat_orphan_add(MALLET_STAT_remote_batches, 1);
            page_push_chain(page, p, p, 1);
            return;
        }
    }
    mallet__stat_add(heap, remote_frees, 1);
    if (heap->rf_page != page)
        mallet__remote_flush(heap);
    if (heap->rf_count == 0) {
        heap->rf_page = page;
        heap->rf_tail = p;
    } else {
        mallet__link_write(page, p, heap->rf_head);
    }
    heap->rf_head = p;
    if (++heap->rf_count >= REMOTE_BATCH)
        mallet__remote_flush(heap);
}
