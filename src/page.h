// SPDX-License-Identifier: MIT
//
// page.h -- one page: blocks of one class and their three free lists; the
// segment that holds the page's descriptor and block bitmap.
//
//   free         blocks to hand out; only the owner pops, in the fast path.
//   local_free   the owner's frees; swapped in when `free` runs dry, which
//                brings the owner into the slow path at a steady cadence.
//   thread_free  frees from other threads, pushed with one atomic operation
//                (a whole batch at a time) and collected by the owner.
//
// local_count counts the blocks on local_free (the push adds to it, the
// collection adds the chain it moved), so a page's free blocks are known
// without walking a list or counting bits. Only the current page of its
// class has blocks on `free`: a page stops being current when `free` is
// empty (or its list is moved back to local_free, mallet__page_unload), so
// for every other page, blocks in use = capacity - local_count once
// thread_free is collected.
//
// Links are encoded: the word in a free block at address `at` holds
// next ^ key ^ at, where key is random per page. A decoded link that leaves
// the segment or is not 16-byte aligned means an overflow rewrote it: the
// program stops with "heap corruption" instead of following it.
//
// The block bitmap of a segment has one bit per 16-byte granule; the bit of
// a block's first granule is set while the block is handed out. free(p)
// therefore tells a live block (bit set) from a double free or an interior
// pointer (bit clear) with one load, and the owner is the only writer of the
// bits of its pages (other threads' frees clear theirs when collected).
//
// Segment layout: unit 0 holds mallet_segment_t (descriptors, unit map,
// bitmap); units 1..63 hold pages. A page's descriptor is pages[u] of its
// first unit u; unit_page[] maps every unit to its page, or to
// mallet__page_none when the unit is free.
#ifndef MALLET_PAGE_H
#define MALLET_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "debug/debug.h"
#include "debug/track.h"
#include "size_class.h"

struct mallet_heap;

// page->heap is the owner's address, or'ed with this while the page is on
// the owner's full list (so a free into a full page misses the fast path and
// moves the page back where the owner looks for blocks); 0 when abandoned.
#define MALLET_PAGE_FULL ((uintptr_t)1)
// ... and with this too once another thread's free has put the full page on
// the owner's unfull stack (remote_free.c), so it is put there only once.
#define MALLET_PAGE_QUEUED ((uintptr_t)2)
#define MALLET_PAGE_TAGS (MALLET_PAGE_FULL | MALLET_PAGE_QUEUED)

// Where a page's descriptor is listed.
enum {
    MALLET_PAGE_FREE = 0,     // units not in use; descriptor unused
    MALLET_PAGE_QUEUE,        // owner's queue of pages with (maybe) free blocks
    MALLET_PAGE_FULLQ,        // owner's full list
    MALLET_PAGE_ABANDONED,    // global abandoned list of its class
};

// Aligned to a cache line, with the fields the fast paths touch first: a
// malloc or free reads one line of its page's descriptor.
typedef struct mallet_page {
    uintptr_t free;                 // first block to hand out, 0 when none
    uintptr_t key;                  // link-encoding key, random per page
    uintptr_t local_free;           // owner's frees since the last refill
    uintptr_t heap;                 // owner | MALLET_PAGE_TAGS, 0 when abandoned
    uint64_t *bitbase;              // segment bitmap, biased: bit (address >> 4) is the block's
    uint32_t block_size;            // class size in bytes (0: not a page)
    uint32_t capacity;              // blocks carved so far (lazily, a few KiB at a time)
    uint32_t local_count;           // blocks on local_free
#if MALLET_SECURE
    uint32_t canary;                // laid after every request (secure.h)
#endif
    uint32_t reserved;              // blocks that fit
    uint8_t cls;                    // size class
    uint8_t units;                  // length in units
    uint8_t where;                  // MALLET_PAGE_FREE / _QUEUE / _FULLQ / _ABANDONED
    uint8_t spare_seen;             // found empty by one sweep already
    uint8_t internal;               // owned by libmallet's own heap: not in the statistics
    uintptr_t thread_free;          // other threads' frees (atomic)
#if MALLET_SECURE
    uintptr_t local_tail;           // oldest block of local_free (secure.c's quarantine)
#endif
    char *start;                    // first block
    struct mallet_page *next;       // in its list
    struct mallet_page *prev;       // in its list
    struct mallet_page *unfull_next; // on its owner's unfull stack
#if MALLET_TRACK_ENABLED
    uint32_t *req;                  // requested size per block (checker builds)
#endif
} __attribute__((aligned(64))) mallet_page_t;

typedef struct mallet_page_list {
    mallet_page_t *first;           // head
    mallet_page_t *last;            // tail
} mallet_page_list_t;

typedef struct mallet_segment {
    uint64_t free_units;            // bit u: unit u belongs to no page
    uint64_t purged_units;          // bit u: free unit u's memory went back to the OS
    struct mallet_segment *next;    // in the global segment list
#if MALLET_SECURE
    uint64_t guard_units;           // bit u: unit u's last OS page is a guard (secure.c)
#endif
    uint64_t dirty_ms[MALLET_SEG_UNITS];          // when each free unit was last used
    mallet_page_t *unit_page[MALLET_SEG_UNITS];   // page covering each unit
    mallet_page_t pages[MALLET_SEG_UNITS];        // descriptors, at a page's first unit
    uint64_t bits[MALLET_SEG_GRAINS / 64];        // 1 = a live block starts at this granule
} mallet_segment_t;

_Static_assert(sizeof(mallet_segment_t) <= MALLET_UNIT_SIZE, "segment metadata fits unit 0");

// Unused units point here: block_size 0, owner 0, so frees miss the fast path.
extern mallet_page_t mallet__page_none;
// The page every slot of the empty heap points to: no free blocks.
extern mallet_page_t mallet__page_empty;

static inline mallet_segment_t *mallet__segment_of(uintptr_t p)
{
    return (mallet_segment_t *)(p & ~(uintptr_t)MALLET_SEG_MASK);
}

// A decoded link is plausible when it stays in the block's segment and is
// 16-byte aligned; 0 (end of list) fails this test and is handled apart.
#define MALLET_LINK_CHECK (~(uintptr_t)MALLET_SEG_MASK | (MALLET_GRAIN - 1))

static inline uintptr_t mallet__link_read(const mallet_page_t *page, uintptr_t at)
{
    MALLET_TRACK_MEM_DEFINED((void *)at, sizeof(uintptr_t));
    uintptr_t v = *(uintptr_t *)at ^ page->key ^ at;
    MALLET_TRACK_MEM_NOACCESS((void *)at, sizeof(uintptr_t));
    return v;
}

static inline void mallet__link_write(const mallet_page_t *page, uintptr_t at, uintptr_t next)
{
    MALLET_TRACK_MEM_UNDEFINED((void *)at, sizeof(uintptr_t));
    *(uintptr_t *)at = next ^ page->key ^ at;
    MALLET_TRACK_MEM_NOACCESS((void *)at, sizeof(uintptr_t));
}

// Push the chain first..last of n blocks (linked already; a single block:
// first == last, n == 1) on page->local_free. Owner only.
static inline void mallet__page_push_local(mallet_page_t *page, uintptr_t first, uintptr_t last, uint32_t n)
{
#if MALLET_SECURE
    if (page->local_free == 0)
        page->local_tail = last;
#endif
    mallet__link_write(page, last, page->local_free);
    page->local_free = first;
    page->local_count += n;
}

// Bit n of a bitmap whose base may be biased (n can be far from base): on
// x86-64 the memory forms of bt/bts/btr address the word themselves, which
// keeps the fast paths short.
#if defined(__x86_64__)
static inline bool mallet__bits_test(const uint64_t *base, uintptr_t n)
{
    bool set;
    __asm__("btq %2, (%1)" : "=@ccc"(set) : "r"(base), "r"(n));
    return set;
}
static inline bool mallet__bits_test_set(uint64_t *base, uintptr_t n)
{
    bool was;
    __asm__ volatile("btsq %2, (%1)" : "=@ccc"(was) : "r"(base), "r"(n) : "memory");
    return was;
}
static inline void mallet__bits_clear(uint64_t *base, uintptr_t n)
{
    __asm__ volatile("btrq %1, (%0)" : : "r"(base), "r"(n) : "memory", "cc");
}
#else
static inline bool mallet__bits_test(const uint64_t *base, uintptr_t n)
{
    return (base[n >> 6] >> (n & 63)) & 1;
}
static inline bool mallet__bits_test_set(uint64_t *base, uintptr_t n)
{
    bool was = (base[n >> 6] >> (n & 63)) & 1;
    base[n >> 6] |= (uint64_t)1 << (n & 63);
    return was;
}
static inline void mallet__bits_clear(uint64_t *base, uintptr_t n)
{
    base[n >> 6] &= ~((uint64_t)1 << (n & 63));
}
#endif

// The biased bitmap base of the segment holding p: bit (p >> 4) of it is
// p's bit. Segments are 4 MiB aligned, so the bias is whole words. The
// bias is applied to the address, not as an index into bits[] (an index
// that far out of the array is undefined, and clang's bounds check stops).
static inline uint64_t *mallet__bitbase_of(uintptr_t p)
{
    mallet_segment_t *seg = mallet__segment_of(p);
    uintptr_t bias = (((uintptr_t)seg >> MALLET_GRAIN_SHIFT) >> 6) * sizeof(uint64_t);
    return (uint64_t *)((uintptr_t)seg->bits - bias);
}

// The bitmap word and bit of the block at p.
static inline uint64_t *mallet__bit_word(uintptr_t p)
{
    return &mallet__segment_of(p)->bits[(p & MALLET_SEG_MASK) >> (MALLET_GRAIN_SHIFT + 6)];
}
static inline uint64_t mallet__bit_mask(uintptr_t p)
{
    return (uint64_t)1 << ((p >> MALLET_GRAIN_SHIFT) & 63);
}
static inline bool mallet__bit_get(uintptr_t p)
{
    return (__atomic_load_n(mallet__bit_word(p), __ATOMIC_RELAXED) & mallet__bit_mask(p)) != 0;
}

// --- page.c -----------------------------------------------------------------

// Make a fresh page of class cls over `units` units at start, owned by heap.
void mallet__page_init(mallet_page_t *page, char *start, unsigned cls, struct mallet_heap *heap);
// Carve more blocks onto the free list: how many (0 when the page is
// carved out).
uint32_t mallet__page_extend(mallet_page_t *page);
// When `free` is empty, make local_free the free list: how many blocks.
uint32_t mallet__page_swap_in(mallet_page_t *page);
// Move the free list back onto local_free (the page stops being current):
// how many blocks.
uint32_t mallet__page_unload(mallet_page_t *page);
// True when no block of the page is handed out (all bits clear).
bool mallet__page_is_empty(const mallet_page_t *page);
// Blocks handed out (bits set).
uint32_t mallet__page_used(const mallet_page_t *page);
// Blocks on the free list (walks it; slow paths only).
uint32_t mallet__page_free_count(const mallet_page_t *page);
// Pop with every check (slow path): NULL when the free list is empty.
void *mallet__page_pop_checked(mallet_page_t *page);
// Is p the start of one of the page's carved blocks?
bool mallet__page_is_block(const mallet_page_t *page, uintptr_t p);
// Report a damaged free list and abort.
MALLET_NORETURN MALLET_COLD void mallet__page_corrupt(const mallet_page_t *page);
// Check every free block of the page (owner or sole holder): its link
// leads to a block of the page or ends the list, and in the secure build
// its fill is whole. A damaged block is reported in func's name, and the
// process aborts. Returns the blocks checked.
uint32_t mallet__page_check(const mallet_page_t *page, const char *func);

// Page lists (doubly linked, owner or lock holder only): push at the
// front, insert before `at` (at the back when at is NULL), remove from
// anywhere.
void mallet__page_list_push(mallet_page_list_t *l, mallet_page_t *page);
void mallet__page_list_insert_before(mallet_page_list_t *l, mallet_page_t *at, mallet_page_t *page);
void mallet__page_list_remove(mallet_page_list_t *l, mallet_page_t *page);

// Move thread_free onto local_free, clearing the blocks' bits. Owner (or
// sole holder) only. A relaxed look comes first: most pages have nothing
// there, and the exchange is a locked instruction.
void mallet__page_collect_chain(mallet_page_t *page);
static inline void mallet__page_collect(mallet_page_t *page)
{
    if (__atomic_load_n(&page->thread_free, __ATOMIC_RELAXED) != 0)
        mallet__page_collect_chain(page);
}

#if MALLET_TRACK_ENABLED
static inline uint32_t mallet__page_index(const mallet_page_t *page, uintptr_t p)
{
    return (uint32_t)((p - (uintptr_t)page->start) / page->block_size);
}
#endif

#endif
