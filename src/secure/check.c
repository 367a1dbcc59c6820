// SPDX-License-Identifier: MIT
//
// check.c -- the heap check: every free block the calling thread may
// walk, its link and (secure build) its fill, on demand (mallet_check),
// before a trim, and at the exit of a secure-build process.
//
// What is walked: the calling thread's own pages and the abandoned pages of
// threads that have exited. Another running thread's pages are not: their
// owner updates them without a lock, so a walk could see a block between
// two stores. A block damaged after its free and never handed out again is
// otherwise found by nobody; the check finds it, reports it in one line
// (secure build: "write after free of 0x..."; default build: "heap
// corruption") and the stack of the call, and aborts.
//
// The cost is a read of every free block's checked bytes (its link and
// mark; secure build, its first and last 64 bytes, secure.h), list by
// list, page by page: proportional to the free memory the heap holds, with
// no system call and no page fault (purged memory belongs to no page).
//
// Calls: mem/ (the heap, the abandoned pages, page checks), base/ (start-up).
#include "mem/mem.h"
#include "mallet.h"
#include "base/base.h"

uint64_t mallet__check_heap(const char *func)
{
    uint64_t n = 0;
    mallet_heap_t *heap = mallet__heap_mine();
    if (heap != &mallet__heap_empty) {
        mallet__lock(&heap->lock);
        for (unsigned c = 0; c < MALLET_CLASSES; c++) {
            mallet_page_list_t *lists[2] = { &heap->queue[c], &heap->full[c] };
            for (int l = 0; l < 2; l++) {
                for (mallet_page_t *page = lists[l]->first; page; page = page->next) {
                    mallet__page_collect(page);
                    bool cut = page == heap->current[c] && heap->prof.cut[c];
                    n += mallet__page_check(page, func, cut ? heap->prof.cut[c] : 0,
                                            cut ? heap->prof.cut_next[c] : 0);
                }
            }
        }
        mallet__unlock(&heap->lock);
    }
    return n + mallet__thread_check_abandoned(func);
}

MALLET_API size_t mallet_check(void)
{
    mallet__init();
    return (size_t)mallet__check_heap("mallet_check");
}

#if MALLET_SECURE
// At a normal exit (exit(), a return from main), not at _exit or abort:
// the last chance to see a block written after its free that was never
// handed out again.
__attribute__((destructor)) static void check_at_exit(void)
{
    if (mallet__init_state == 2 && mallet__option(check_at_exit))
        mallet__check_heap("exit");
}
#endif
