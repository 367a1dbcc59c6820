// SPDX-License-Identifier: MIT
//
// gc_heap.h -- the collector's heap, shared by gc.c (allocation, sweeping,
// the API) and gc_mark.c (roots and marking). Not a public header.
//
// Glossary:
//   arena  one reserved range of address space, carved from its low end into
//          pages as the heap grows (a private break, src/os/os.h).
//   page   GC_PAGE bytes of the arena. A small page holds blocks of one size
//          class; a large block takes a run of whole pages; a free page holds
//          nothing and has been given back to the OS (it reads as zero).
//   desc   a page's descriptor: its kind, its class and two bitmaps, one bit
//          per block: `used` (handed out) and `mark` (reached in this
//          collection). Descriptors live in an array of their own, indexed by
//          page number, so no user write can damage them, and "which block
//          holds address a" is arithmetic: page = (a - base) / GC_PAGE, then
//          block = offset / block size.
//
// Invariants between collections: every mark bit is clear; a small page is in
// its class's list of pages with free blocks exactly when some block is free;
// bits past the last block of a small page are set in `used`, so the search
// for a free bit never runs off the end.
#ifndef MALLET_TEACH_GC_HEAP_H
#define MALLET_TEACH_GC_HEAP_H

#include "gc.h"
#include "os/os.h"
#include "debug/track.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GC_PAGE_SHIFT  16
#define GC_PAGE        ((size_t)1 << GC_PAGE_SHIFT)   // 64 KiB
#define GC_GRAIN       16                              // smallest block; alignment
#define GC_BITMAP_WORDS (GC_PAGE / GC_GRAIN / 64)      // 64 words: 4096 blocks at most
#define GC_SMALL_MAX   32768                           // larger requests take whole pages
#define GC_CLASSES     40                              // 16..128 by 16, then 4 per power of two
#define GC_MIN_TRIGGER ((size_t)4 << 20)               // collect no more often than every 4 MiB

// Memcheck reports a read past a block's request even when the collector
// makes it, so under memcheck the scan needs every block's request and must
// launder each word it loads; ASan is told to look away instead
// (GC_NO_ASAN), and plain builds read whole blocks, whose tails are zero.
#if MALLET_TRACK_ENABLED && !defined(MALLET_TRACK_ASAN)
#define GC_MEMCHECK 1
#else
#define GC_MEMCHECK 0
#endif

#if defined(MALLET_TRACK_ASAN)
#define GC_NO_ASAN __attribute__((no_sanitize_address))
#else
#define GC_NO_ASAN
#endif

typedef enum {
    GC_PAGE_FREE,          // holds nothing; purged, so it reads as zero
    GC_PAGE_SMALL,         // blocks of one size class
    GC_PAGE_LARGE,         // first page of a large block
    GC_PAGE_LARGE_TAIL,    // a later page of a large block
} gc_page_kind_t;

typedef struct gc_page {
    uint8_t kind;                    // a gc_page_kind_t
    uint8_t cls;                     // small: size class
    bool fresh;                      // small: no block freed since set-up, so unused blocks are zero
    bool dirty;                      // free: freed by the sweep running now, not yet purged
    uint32_t bsize;                  // small: block size
    uint32_t nblocks;                // small: blocks on the page
    uint32_t inverse;                // small: ceil(2^32 / bsize), see gc_block_index
    uint32_t nused;                  // small: blocks handed out
    uint32_t npages;                 // large head, free-run head: pages in the run
    uint32_t head;                   // large tail: page number of the head
    uint32_t cursor;                 // small: first bitmap word that may have a free bit
    size_t req;                      // large: bytes requested
    struct gc_page *next;            // small: next page of the class with free blocks;
                                     // free-run head: next free run
    uint64_t used[GC_BITMAP_WORDS];  // small: 1 = handed out (or past the last block)
    uint64_t mark[GC_BITMAP_WORDS];  // 1 = reached in this collection (large: bit 0)
} gc_page_t;

typedef struct gc_root {
    uintptr_t lo;                    // first byte of a registered range
    uintptr_t hi;                    // one past its last byte
} gc_root_t;

typedef struct gc_heap {
    bool ready;                      // arena reserved, owner known
    pthread_t owner;                 // the only thread allowed to collect
    uintptr_t stack_hi;              // base (highest address) of the owner's stack
    mallet_brk_t arena;              // the pages; grows by whole pages
    mallet_brk_t descs;              // one gc_page_t per arena page, grown in step
#if GC_MEMCHECK
    mallet_brk_t reqs;               // one uint16_t request per possible block, in step
#endif
    uintptr_t base;                  // arena.base as a number
    size_t npages;                   // pages carved from the arena so far
    gc_page_t *avail[GC_CLASSES];    // per class: pages with a free block
    gc_page_t *free_runs;            // runs of free pages, in address order

    size_t live;                     // block bytes handed out, not reclaimed
    size_t heap_bytes;               // bytes of pages that are not free
    size_t collect_at;               // collect when `live` reaches this

    uintptr_t *stack;                // mark stack: blocks marked, not yet scanned
    size_t stack_len;                // entries in use
    size_t stack_cap;                // entries mapped
    bool overflowed;                 // a push was dropped: rescan the marked blocks

    gc_root_t *roots;                // ranges from gc_add_root
    size_t nroots;                   // entries in use
    size_t roots_cap;                // entries mapped

    gc_stats_t stats;                // counters behind gc_stats_get
} gc_heap_t;

// The one heap. The root scan skips this object: its fields point at the
// arena's edges and must not keep the blocks there alive.
extern gc_heap_t mallet__gc;

static inline gc_page_t *gc_desc(size_t page_no)
{
    return (gc_page_t *)mallet__gc.descs.base + page_no;
}

static inline char *gc_page_addr(const gc_page_t *pg)
{
    return mallet__gc.arena.base + ((size_t)(pg - gc_desc(0)) << GC_PAGE_SHIFT);
}

// offset / bsize as a multiply, for the mark loop's sake. Exact for offsets
// below 2^16 and sizes up to 2^15: the rounding of `inverse` adds less than
// 2^-16 to the quotient, and a quotient's fraction is never above 1 - 2^-15.
static inline size_t gc_block_index(const gc_page_t *pg, size_t offset)
{
    return (size_t)(((uint64_t)offset * pg->inverse) >> 32);
}

#if GC_MEMCHECK
static inline uint16_t *gc_reqs(const gc_page_t *pg)
{
    return (uint16_t *)mallet__gc.reqs.base + (size_t)(pg - gc_desc(0)) * (GC_PAGE / GC_GRAIN);
}
#endif

// gc_mark.c: find the owner's stack, then mark everything reachable.
bool mallet__gc_mark_init(void);
void mallet__gc_mark(void);

#endif
