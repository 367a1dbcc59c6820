// SPDX-License-Identifier: MIT
//
// alloc.c -- the allocation side of the malloc family under mallet_* names,
// with glibc's rules (the README's table has each one, and tests/override_api.c
// checks it against glibc): errno ENOMEM on exhaustion (never a crash), NULL +
// ENOMEM when count * size overflows, EINVAL from posix_memalign for an
// alignment that is not a power-of-two multiple of sizeof(void *) (errno
// left alone) and ENOMEM when memory runs out (errno ENOMEM too),
// aligned_alloc NULL + EINVAL for an alignment that is not a power of two
// (C23), realloc(p, 0) frees and returns NULL, realloc(NULL, n) is
// malloc(n), realloc to a size the block already holds keeps the block,
// malloc(0) a unique block.
//
// Alignment is served exactly: up to 64 KiB by the smallest class whose
// size is a multiple of the alignment (pages start 64 KiB aligned, so every
// block of such a class is aligned; the waste stays below the alignment),
// above that by an aligned large mapping. No request is rounded up to its
// alignment.
#include <errno.h>
#include <string.h>

#include "secure/secure.h"
#include "mem/mem.h"
#include "fast.h"
#include "mallet.h"
#include "os/os.h"

#if MALLET_SECURE
// malloc(0) in the secure build, from the malloc fast path (fast.h).
void *mallet__malloc_zero(void)
{
    void *p = mallet__zero_alloc();
    return p ? p : mallet__malloc_slow(0, mallet__heap_self(), -1);
}
#endif

MALLET_API MALLET_PROF_FRAME void *mallet_malloc(size_t size)
{
    return mallet__malloc_fast(size);
}

MALLET_API MALLET_PROF_FRAME void *mallet_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total > MALLET_SMALL_MAX) {
        bool zeroed = false;
        void *p = mallet__large_alloc(total, 0, &zeroed);
        if (p && !zeroed)
            memset(p, 0, total);
        return p;
    }
    void *p = mallet__malloc_fast(total);
    if (p)
        memset(p, 0, total);
    return p;
}

// block_sizes' block size of a guarded block (secure/guard.h).
#define BLOCK_GUARDED SIZE_MAX

// The bytes a live block holds for its user (what a copy must carry), and
// its block size. Reports func's error and aborts when p is not a live
// block of ours.
static size_t block_sizes(const void *ptr, const char *func, size_t *block)
{
    uintptr_t p = (uintptr_t)ptr;
    mallet_page_t *page = mallet__span_page_of(p);
    if (page == NULL) {
        size_t n;
#if MALLET_SECURE
        if (mallet__zero_live(ptr)) {
            *block = 0;
            return 0;
        }
#endif
        if (mallet__large_usable(ptr, &n)) {
            *block = n;
            return n;
        }
        if (!mallet__guard_owns(ptr))
            mallet__fatal("mallet", func, "invalid pointer", ptr);
        *block = BLOCK_GUARDED;
        return mallet__guard_usable(ptr, func);
    }
    if (!mallet__page_is_block(page, p) || mallet__mark_peek(page, p))
        mallet__fatal("mallet", func, "invalid pointer", ptr);
    *block = page->block_size;
#if MALLET_SECURE
    return mallet__secure_check(page, p, func);
#endif
#if MALLET_TRACK_ENABLED
    if (page->req)
        return page->req[mallet__page_index(page, p)];
#endif
    return page->block_size;
}

MALLET_API MALLET_PROF_FRAME size_t mallet_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    size_t block;
    return block_sizes(p, "malloc_usable_size", &block);
}

// realloc moves a block that grows to this size or beyond to a mapping.
#define REALLOC_MAPPED ((size_t)64 << 10)

MALLET_API MALLET_PROF_FRAME void *mallet_realloc(void *p, size_t size)
{
    if (p == NULL)
        return mallet__malloc_fast(size);
    if (size == 0) {
        mallet__free_fast(p, "realloc");
        return NULL;
    }
    size_t block, held = block_sizes(p, "realloc", &block);
    if (block == BLOCK_GUARDED) {
        // A guarded block moves, always: the new one may be guarded or not.
        void *q = mallet__malloc_fast(size);
        if (q == NULL)
            return NULL;
        memcpy(q, p, held < size ? held : size);
        mallet__guard_free(p, "realloc");
        return q;
    }
    if (block == 0) {
        // A zero-size block (secure build): nothing to carry over.
        void *q = mallet__malloc_fast(size);
        if (q)
            mallet__free_fast(p, "realloc");
        return q;
    }
    mallet_page_t *page = block <= MALLET_SMALL_MAX ? mallet__span_page_of((uintptr_t)p) : NULL;
    if (page) {
        // In place when the block holds the new size, unless a move would
        // halve it (a shrink below half moves, to give the memory back; not
        // into a block of the same size); and always for the size
        // malloc_usable_size(p) reports, which glibc keeps in place and
        // programs count on.
        size_t need = MALLET_SECURE_PAD(size);
        if (need <= block && (need >= block / 2 || size == held ||
                              mallet__class_size(mallet__size_class(need)) == block)) {
#if MALLET_SECURE
            mallet__secure_resize(page, (uintptr_t)p, held, size);
#endif
#if MALLET_TRACK_ENABLED
            if (page->req)
                page->req[mallet__page_index(page, (uintptr_t)p)] = (uint32_t)size;
#endif
            MALLET_TRACK_RESIZE(p, held, size, block);
            return p;
        }
    } else if (size > MALLET_SMALL_MAX || size >= REALLOC_MAPPED) {
        return mallet__large_resize(p, size);
    }
    // A small block that grows past REALLOC_MAPPED moves to a mapping of its
    // own, which later growth extends with mremap, without a copy. Left in
    // the size classes, a buffer grown step by step leaves a trail of pages
    // in every class it passes through, resident until they are purged.
    void *q = size >= REALLOC_MAPPED && size > held ? mallet__large_alloc(size, 0, NULL)
                                                   : mallet__malloc_fast(size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, held < size ? held : size);
    mallet__free_fast(p, "realloc");
    return q;
}

MALLET_API MALLET_PROF_FRAME void *mallet_reallocarray(void *p, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return mallet_realloc(p, total);
}

// align: a power of two.
MALLET_PROF_FRAME static void *aligned_block(size_t align, size_t size)
{
    if (align <= MALLET_GRAIN)
        return mallet__malloc_fast(size);
    if (align <= MALLET_UNIT_SIZE && MALLET_SECURE_PAD(size) <= MALLET_SMALL_MAX) {
        unsigned c = mallet__size_class(MALLET_SECURE_PAD(size));
        while (c < MALLET_CLASSES && mallet__class_size(c) % align != 0)
            c++;
        if (c < MALLET_CLASSES) {
            mallet_heap_t *heap = mallet__tls_heap;     // (parked: the empty heap's page)
            void *b = mallet__page_pop(heap->current[c], size);
            if (b)
                return b;
            mallet__guard_align = align;      // a guarded block is placed so
            b = mallet__malloc_slow(size, heap, (int)c);
            mallet__guard_align = 0;
            return b;
        }
    }
    return mallet__large_alloc(size, align, NULL);
}

MALLET_API MALLET_PROF_FRAME void *mallet_memalign(size_t align, size_t size)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1))
        align = (size_t)1 << (64 - __builtin_clzl(align));
    return aligned_block(align, size);
}

// C23: an alignment the implementation does not support fails; glibc (from
// 2.38) fails every one that is not a power of two, 0 included, with EINVAL.
// memalign keeps rounding such an alignment up, as glibc's does.
MALLET_API MALLET_PROF_FRAME void *mallet_aligned_alloc(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return aligned_block(align, size);
}

MALLET_API MALLET_PROF_FRAME int mallet_posix_memalign(void **out, size_t align, size_t size)
{
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0 || align == 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned_block(align, size);
    if (p == NULL)
        return ENOMEM;      // errno is ENOMEM too, as glibc leaves it
    errno = saved;
    *out = p;
    return 0;
}

MALLET_API MALLET_PROF_FRAME void *mallet_valloc(size_t size)
{
    return aligned_block(mallet__os_page_size(), size);
}

MALLET_API MALLET_PROF_FRAME void *mallet_pvalloc(size_t size)
{
    size_t pg = mallet__os_page_size();
    if (size > SIZE_MAX - pg) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_block(pg, (size + pg - 1) & ~(pg - 1));
}
