// SPDX-License-Identifier: MIT
//
// source.h -- where a teaching heap gets its memory: its own break, and
// mmap for large blocks. Read this once; every design in teach/ uses it.
//
// The break. Each design owns one teach_source_t, so several designs live
// side by side in one process and each footprint is exact. It starts empty
// and is set up on first use (no constructor: a preload build may be asked
// for memory before any constructor runs). In-process it is a private
// reservation of address space; in a preload build (TEACH_PRELOAD) it is the
// process's real sbrk(2), as a classic Unix malloc would use.
//
// Large blocks. The free-list designs and buddy hand requests of
// TEACH_MMAP_THRESHOLD bytes and more to mmap, one mapping per block, so a
// big buffer never pins the break and goes back to the OS on free. The list of large blocks lives
// out of band, in a table in its own mapping (never from malloc: we *are*
// malloc in a preload build). A large block's payload starts at its mapping,
// so it is page aligned; free finds it by a scan of the table, which is what
// lets free reject a pointer we never handed out without touching it. (Once
// unmapped a large block leaves no trace, so freeing it twice is reported as
// an invalid pointer, not as a double free.)
//
// Invariants: base <= top of the break; every pointer source_grow returns
// is 16-byte aligned; new break memory is marked NOACCESS for the checkers
// until a design writes a header into it.
#ifndef MALLET_TEACH_SOURCE_H
#define MALLET_TEACH_SOURCE_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "debug/debug.h"
#include "debug/track.h"
#include "os/os.h"
#include "teach.h"

// In-process reservation: as much address space as the system lets us have,
// starting from 64 GiB and halving (a checker such as memcheck limits the
// total). Address space only: pages are committed as the break passes them.
#define SOURCE_RESERVE_MAX ((size_t)64 << 30)
#define SOURCE_RESERVE_MIN ((size_t)1 << 30)

typedef struct source_large {
    char *addr;                 // the mapping, which is also the payload
    size_t size;                // bytes mapped (a whole number of pages)
    size_t request;             // bytes asked for: the checkers guard the rest
} source_large_t;

typedef struct teach_source {
    mallet_brk_t brk;           // the break this design grows
    bool ready;                 // brk set up (done lazily, on first growth)
    source_large_t *large;      // table of large blocks, in its own mapping
    size_t nlarge;              // entries used in `large`
    size_t cap;                 // entries that fit in `large`
    size_t large_bytes;         // sum of large[i].size: mapped bytes
} teach_source_t;

// Round n up to a multiple of `to` (a power of two); 0 when that overflows.
static inline size_t source_round(size_t n, size_t to)
{
    if (n > SIZE_MAX - (to - 1))
        return 0;
    return (n + to - 1) & ~(to - 1);
}

static inline bool source_init(teach_source_t *s)
{
    if (s->ready)
        return true;
#ifdef TEACH_PRELOAD
    mallet__brk_init_sbrk(&s->brk);
#else
    size_t max = SOURCE_RESERVE_MAX;
    while (!mallet__brk_init_private(&s->brk, max)) {
        if (max <= SOURCE_RESERVE_MIN)
            return false;        // errno ENOMEM from the OS seam
        max /= 2;
    }
#endif
    s->ready = true;
    return true;
}

// Move the break up by n bytes (a multiple of 16) and return the old break,
// or NULL with errno ENOMEM. The sbrk break may start unaligned; the first
// growth pads it to 16 bytes.
static inline void *source_grow(teach_source_t *s, size_t n)
{
    if (!source_init(s))
        return NULL;
    if (n > (size_t)INTPTR_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t pad = (size_t)(-(uintptr_t)s->brk.top & (TEACH_ALIGN - 1));
    if (pad && mallet__brk_grow(&s->brk, (intptr_t)pad) == NULL)
        return NULL;
    char *expect = s->brk.top;
    char *old = mallet__brk_grow(&s->brk, (intptr_t)n);
    if (old == NULL)
        return NULL;
    if (old != expect) {
        // Someone else moved the process break: the new memory is not next
        // to our heap, and every design here assumes one contiguous heap.
        // Give it back and say no rather than corrupt the heap.
        mallet__brk_grow(&s->brk, -(intptr_t)n);
        errno = ENOMEM;
        return NULL;
    }
    // Poison up to the end of the committed pages, not just the new break, so
    // one byte past the topmost block is caught too.
    MALLET_TRACK_MEM_NOACCESS(old, (size_t)(s->brk.committed - (char *)old));
    return old;
}

// First byte of the heap and the break itself (both NULL before first use).
static inline char *source_base(const teach_source_t *s)
{
    return s->ready ? s->brk.base + (-(uintptr_t)s->brk.base & (TEACH_ALIGN - 1)) : NULL;
}

static inline char *source_top(const teach_source_t *s)
{
    return s->ready ? s->brk.top : NULL;
}

// True when p lies inside the break (it may still be no block start).
static inline bool source_in_brk(const teach_source_t *s, const void *p)
{
    return s->ready && (const char *)p >= s->brk.base && (const char *)p < s->brk.top;
}

// Make room for one more entry in the large table: a new, doubled mapping.
static inline bool source_large_reserve(teach_source_t *s)
{
    if (s->nlarge < s->cap)
        return true;
    size_t page = mallet__os_page_size();
    size_t bytes = s->cap ? 2 * s->cap * sizeof *s->large : page;
    source_large_t *t = mallet__os_map(bytes, 0);
    if (t == NULL)
        return false;
    if (s->nlarge)
        memcpy(t, s->large, s->nlarge * sizeof *t);
    if (s->large)
        mallet__os_release(s->large, s->cap * sizeof *s->large);
    s->large = t;
    s->cap = bytes / sizeof *t;
    return true;
}

// A large block of at least n bytes, page aligned; NULL + ENOMEM on failure.
// *usable receives the bytes mapped. The checkers see a block of n bytes.
static inline void *source_large_malloc(teach_source_t *s, size_t n, size_t *usable)
{
    size_t size = source_round(n, mallet__os_page_size());
    if (size == 0 || !source_large_reserve(s)) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = mallet__os_map(size, 0);
    if (p == NULL)
        return NULL;
    s->large[s->nlarge++] = (source_large_t){ p, size, n };
    s->large_bytes += size;
    MALLET_TRACK_MEM_NOACCESS(p, size);
    MALLET_TRACK_MALLOC(p, n, size, false);
    *usable = size;
    return p;
}

// Index of the large block whose payload is p, or -1 if p is none of ours.
static inline intptr_t source_large_find(const teach_source_t *s, const void *p)
{
    for (size_t i = 0; i < s->nlarge; i++)
        if (s->large[i].addr == p)
            return (intptr_t)i;
    return -1;
}

// Unmap large block number i; returns its size. The last entry fills the hole.
static inline size_t source_large_free(teach_source_t *s, intptr_t i)
{
    source_large_t b = s->large[i];
    s->large[i] = s->large[--s->nlarge];
    s->large_bytes -= b.size;
    MALLET_TRACK_FREE(b.addr, b.size);
    // The address range may be mapped again by anyone: leave it unpoisoned.
    MALLET_TRACK_MEM_UNDEFINED(b.addr, b.size);
    mallet__os_release(b.addr, b.size);
    return b.size;
}

// Grow or shrink large block i to hold n bytes (mremap may move it).
// Returns the new payload or NULL (errno ENOMEM; the block is unchanged).
static inline void *source_large_realloc(teach_source_t *s, intptr_t i, size_t n, size_t *usable)
{
    size_t size = source_round(n, mallet__os_page_size());
    if (size == 0) {
        errno = ENOMEM;
        return NULL;
    }
    source_large_t *b = &s->large[i];
    if (size == b->size) {
        MALLET_TRACK_RESIZE(b->addr, b->request, n, size);
        b->request = n;
        *usable = size;
        return b->addr;
    }
    // The checkers cannot follow a block through mremap: end the block,
    // move the pages, and start it again with its bytes marked defined
    // (memcheck then stops tracking which of them are uninitialised, which
    // can hide an error but never invents one).
    MALLET_TRACK_FREE(b->addr, b->size);
    MALLET_TRACK_MEM_DEFINED(b->addr, b->size);
    char *q = mallet__os_remap(b->addr, b->size, size);
    if (q == NULL) {
        MALLET_TRACK_MEM_NOACCESS(b->addr, b->size);
        MALLET_TRACK_MALLOC(b->addr, b->request, b->size, true);
        return NULL;
    }
    s->large_bytes = s->large_bytes - b->size + size;
    *b = (source_large_t){ q, size, n };
    MALLET_TRACK_MEM_NOACCESS(q, size);
    MALLET_TRACK_MALLOC(q, n, size, true);
    *usable = size;
    return q;
}

// Visit every large block (each is its own region).
static inline void source_large_walk(const teach_source_t *s, teach_visit_fn visit, void *ctx)
{
    for (size_t i = 0; i < s->nlarge; i++)
        visit(ctx, s->large[i].addr, s->large[i].size, true);
}

// Bytes taken from the OS now: the break plus every large mapping.
static inline size_t source_footprint(const teach_source_t *s)
{
    return (s->ready ? (size_t)(s->brk.top - s->brk.base) : 0) + s->large_bytes;
}

// reset() forgets the blocks still in use; the checkers must hear that they
// are gone, or memcheck finds the next blocks at the same addresses overlap
// them. A design passes this to its own walk(), with ctx its source: every
// used block in the break (all with 16-byte headers) is announced freed; the
// large blocks are announced by source_reset.
static inline void source_forget_used(void *ctx, void *addr, size_t size, bool used)
{
    if (used && source_in_brk((teach_source_t *)ctx, addr))
        MALLET_TRACK_FREE((char *)addr + TEACH_ALIGN, size - TEACH_ALIGN);
    (void)ctx, (void)addr, (void)size, (void)used;
}

// Forget everything: unmap the large blocks and move the break back to base.
static inline void source_reset(teach_source_t *s)
{
    while (s->nlarge)
        source_large_free(s, (intptr_t)s->nlarge - 1);
    if (s->ready) {
        // Unpoison first: the range may serve a different design next.
        MALLET_TRACK_MEM_UNDEFINED(s->brk.base, (size_t)(s->brk.committed - s->brk.base));
        mallet__brk_reset(&s->brk);
    }
}

#endif
