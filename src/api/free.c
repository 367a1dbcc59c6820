// SPDX-License-Identifier: MIT
//
// free.c -- free and its slow path: NULL, large blocks, frees into full
// pages, other threads' pages, and the checks that stay on in every build.
//
// Errors are reported in one line and the stack of the call, then abort;
// never allocate:
//   not one of our addresses, not a block start  -> "invalid pointer"
//   a block that carries its page's mark          -> "double free"
// The mark (page.h) makes a double free of a small block visible until its
// block is handed out again, when freeing it is legitimate again; it is
// laid with an atomic exchange here, so of two threads freeing one block
// at once, one sees the other's mark. For a large block the record's
// tombstone plays that part.
//
// A guarded block (secure/guard.h) is none of those: its free goes to the pool.
//
// A block the profiler sampled belongs to the profiler's heap, which is no
// thread's own: its free always comes here and goes back to prof/prof.c.
//
// free never changes errno: the slow path saves and restores it around
// the system calls it may make.
#include <errno.h>

#include "secure/secure.h"
#include "mem/mem.h"
#include "fast.h"
#include "mallet.h"
#include "prof/prof.h"

MALLET_PROF_FRAME void mallet__free_slow(void *ptr, const char *func)
{
    if (ptr == NULL)
        return;
    int saved = errno;
    mallet_heap_t *heap = mallet__heap_self();
    uintptr_t p = (uintptr_t)ptr;
    mallet_page_t *page = mallet__span_page_of(p);
    if (page == NULL) {
#if MALLET_SECURE
        if (mallet__zero_free(ptr, func)) {
            errno = saved;
            return;
        }
#endif
        if (!mallet__large_free(ptr, func)) {
            if (!mallet__guard_owns(ptr))
                mallet__fatal("mallet", func, "invalid pointer", ptr);
            mallet__guard_free(ptr, func);
        }
        errno = saved;
        return;
    }
    if (!mallet__page_is_block(page, p))
        mallet__fatal("mallet", func, "invalid pointer", ptr);
#if MALLET_SECURE
    // The tag and gap are checked before the mark goes in (it lies in the
    // gap of a request under 16 bytes), and a freed block's tag is fill: a
    // look at the mark first names a double free as one.
    if (mallet__mark_peek(page, p))
        mallet__fatal("mallet", func, "double free of", ptr);
    mallet__secure_check(page, p, func);
#endif
    if (!mallet__mark_set_atomic(page, p))
        mallet__fatal("mallet", func, "double free of", ptr);
#if MALLET_SECURE
    mallet__secure_fill(page, p);
#endif
    uintptr_t owner = __atomic_load_n(&page->heap, __ATOMIC_ACQUIRE) & ~MALLET_PAGE_TAGS;
    if (owner == (uintptr_t)heap) {
        mallet__free_owned(heap, page, p);
    } else if (owner != 0 && owner == (uintptr_t)__atomic_load_n(&mallet__prof_heap, __ATOMIC_ACQUIRE)) {
        mallet__prof_free(page, p);          // a sampled block
    } else {
        if (owner != 0 && owner == (uintptr_t)mallet__prof_heap_gone)
            mallet__prof_drop(p, 0);
        MALLET_TRACK_FREE(ptr, page->block_size);
        mallet__remote_free(heap, page, p);
    }
    if (heap != &mallet__heap_empty)
        mallet__heap_tick(heap);
    errno = saved;
}

MALLET_API MALLET_PROF_FRAME void mallet_free(void *p)
{
    mallet__free_fast(p, "free");
}

MALLET_API MALLET_PROF_FRAME void mallet_free_sized(void *p, size_t size)
{
    (void)size;
    mallet__free_fast(p, "free_sized");
}

MALLET_API MALLET_PROF_FRAME void mallet_free_aligned_sized(void *p, size_t align, size_t size)
{
    (void)align, (void)size;
    mallet__free_fast(p, "free_aligned_sized");
}
