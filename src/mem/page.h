// SPDX-License-Identifier: MIT
//
// page.h -- one page: blocks of one class, their three free lists, and the
// marks that tell a free block from a live one; the segment that holds the
// page's descriptor.
//
//   free         blocks to hand out; only the owner pops, in the fast path.
//   local_free   the owner's frees; swapped in when `free` runs dry, which
//                brings the owner into the slow path at a steady cadence.
//   thread_free  frees from other threads, pushed a batch at a time with
//                one compare-and-swap and taken by the owner whole.
//
// local_count counts the blocks on local_free (the push adds to it, the
// collection adds the chain it moved), so a page's free blocks are known
// without walking a list. Only the current page of its class has blocks on
// `free`: a page stops being current when `free` is empty (or its list is
// moved back to local_free, mallet__page_unload), so for every other page,
// blocks in use = capacity - local_count - the count in thread_free.
//
// thread_free is one word: the chain's first and last block (as granules
// in the segment, 18 bits each) and its length. A freer links its batch's
// last block to the chain's first and swaps in a word with the sums, so
// the owner takes every batch with one exchange and splices the chain onto
// local_free without walking it: O(1) per collection, whatever the frees.
//
// Links are encoded: the word in a free block at address `at` holds
// next ^ key ^ at, where key is random per page. A decoded link that leaves
// the segment or is not 16-byte aligned means an overflow rewrote it: the
// program stops with "heap corruption" instead of following it.
//
// Marks: the second word of every free block (on any list, or carved and
// never handed out) holds the page's mark, a random word drawn with the
// page; a block handed out has it cleared. A free that finds the mark is a
// double free: a live block carries the mark only if the program copied it
// there out of freed memory. A malloc clears a block's link as well as its
// mark, so a list that reaches a block handed out already (on the list
// twice: a double free the free could not see, because a write after free
// had rewritten the mark, or a free racing the owner's) stops with "heap
// corruption" at the link check the pop makes anyway. The free writes the block anyway (its link),
// so the test costs no cache line, and it is made by whichever thread
// frees: another thread's free exchanges the mark in atomically, so two
// threads that free one block at once cannot both pass. A pointer that is
// not a block start fails the block-start test: (p - start) * magic <
// limit holds exactly for the first byte of a carved block (magic is
// 2^64 / block_size rounded up, mallet__page_set_limit): a multiply, no
// division.
//
// Segment layout: unit 0 holds mallet_segment_t (descriptors, unit map);
// units 1..63 hold pages. A page's descriptor is pages[u] of its first
// unit u; unit_page[] maps every unit to its page, or to mallet__page_none
// when the unit is free.
#ifndef MALLET_PAGE_H
#define MALLET_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "debug/debug.h"
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

// Aligned to a cache line. The first line holds every field a malloc or a
// free fast path reads or writes.
typedef struct mallet_page {
    uintptr_t free;                 // first block to hand out, 0 when none
    uintptr_t key;                  // link-encoding key, random per page (odd)
    uintptr_t local_free;           // owner's frees since the last refill
    uintptr_t heap;                 // owner | MALLET_PAGE_TAGS, 0 when abandoned
    uint64_t mark;                  // second word of every free block, random per page
    char *start;                    // first block
    uint64_t magic;                 // 2^64 / block_size, rounded up: the block-start test
    uint32_t limit;                 // capacity * (magic * block_size mod 2^64)
    uint32_t local_count;           // blocks on local_free
    // -- the slow paths' fields
    uint32_t block_size;            // class size in bytes (0: not a page)
    uint32_t capacity;              // blocks carved so far (lazily, a few KiB at a time)
    uint32_t reserved;              // blocks that fit
#if MALLET_SECURE
    uint32_t canary;                // laid after every request (harden.h)
#endif
    uint8_t cls;                    // size class
    uint8_t units;                  // length in units
    uint8_t where;                  // MALLET_PAGE_FREE / _QUEUE / _FULLQ / _ABANDONED
    uint8_t spare_seen;             // found empty by one sweep already
    uint8_t internal;               // owned by libmallet's own heap: not in the statistics
    uint64_t thread_free;           // other threads' frees: packed chain (atomic)
#if MALLET_SECURE
    uintptr_t local_tail;           // oldest block of local_free (harden.c's quarantine)
#endif
    struct mallet_page *next;       // in its list
    struct mallet_page *prev;       // in its list
    struct mallet_page *unfull_next; // on its owner's unfull stack
#if MALLET_TRACK_ENABLED
    uint32_t *req;                  // requested size per block (checker builds)
#endif
} __attribute__((aligned(64))) mallet_page_t;

_Static_assert(__builtin_offsetof(mallet_page_t, local_count) < 64, "the fast paths read one line");

typedef struct mallet_page_list {
    mallet_page_t *first;           // head
    mallet_page_t *last;            // tail
} mallet_page_list_t;

typedef struct mallet_segment {
    uint64_t free_units;            // bit u: unit u belongs to no page
    uint64_t purged_units;          // bit u: free unit u's memory went back to the OS
    struct mallet_segment *next;    // in the global segment list
#if MALLET_SECURE
    uint64_t guard_units;           // bit u: unit u's last OS page is a guard (harden.c)
#endif
    uint64_t dirty_ms[MALLET_SEG_UNITS];          // when each free unit was last used
    mallet_page_t *unit_page[MALLET_SEG_UNITS];   // page covering each unit
    mallet_page_t pages[MALLET_SEG_UNITS];        // descriptors, at a page's first unit
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

// Racy counters: the owner writes them without atomics on its fast path,
// the purger reads them (an acquire load) to find empty pages; the value it
// acts on, every block free, cannot change under it, and the owner's last
// touch of the page comes before the store that makes it so. On x86-64 a
// plain store already has release order; ThreadSanitizer is told with a
// release store, which the default build does without.
#if defined(__SANITIZE_THREAD__)
#define MALLET_RACY_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELEASE)
#else
#define MALLET_RACY_ADD(field, n) ((field) += (n))
#endif

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
    MALLET_RACY_ADD(page->local_count, n);
}

// --- marks, the block-start test, thread_free's word -------------------------

// Is p the first byte of a block carved in page (p in the page's units)?
static inline bool mallet__page_block_start(const mallet_page_t *page, uintptr_t p)
{
    return (uint64_t)(p - (uintptr_t)page->start) * page->magic < page->limit;
}

// The mark word of block b, read by a free (b live, or freed twice).
static inline uint64_t mallet__mark_get(uintptr_t b)
{
    MALLET_TRACK_MEM_DEFINED((void *)(b + 8), sizeof(uint64_t));
    return *(const uint64_t *)(b + 8);
}

// Does block b carry its page's mark? A look that changes nothing for the
// checkers (b may be live, its word unwritten).
static inline MALLET_TRACK_UNCHECKED bool mallet__mark_peek(const mallet_page_t *page, uintptr_t b)
{
#if defined(MALLET_TRACK_VALGRIND) && MALLET_TRACK_VALGRIND
    MALLET_TRACK_MEM_DEFINED((void *)(b + 8), sizeof(uint64_t));
#endif
    return *(const volatile uint64_t *)(b + 8) == page->mark;
}

// Does free block b carry its page's mark? A block on a free list without
// it was handed out already: it is on the list twice (a double free the
// free could not see, its mark rewritten after the first) or its word was
// written after its free.
static inline bool mallet__mark_whole(const mallet_page_t *page, uintptr_t b)
{
    MALLET_TRACK_MEM_DEFINED((void *)(b + 8), sizeof(uint64_t));
    bool whole = *(const uint64_t *)(b + 8) == page->mark;
    MALLET_TRACK_MEM_NOACCESS((void *)(b + 8), sizeof(uint64_t));
    return whole;
}

// Mark block b free (owner or sole holder; b not live for the checkers).
static inline void mallet__mark_set(const mallet_page_t *page, uintptr_t b)
{
    MALLET_TRACK_MEM_UNDEFINED((void *)(b + 8), sizeof(uint64_t));
    *(uint64_t *)(b + 8) = page->mark;
    MALLET_TRACK_MEM_NOACCESS((void *)(b + 8), sizeof(uint64_t));
}

// Mark block b free from any thread: false when it carried the mark
// already (a double free, maybe racing with another thread's).
static inline bool mallet__mark_set_atomic(const mallet_page_t *page, uintptr_t b)
{
    MALLET_TRACK_MEM_DEFINED((void *)(b + 8), sizeof(uint64_t));
    return __atomic_exchange_n((uint64_t *)(b + 8), page->mark, __ATOMIC_RELAXED) != page->mark;
}

// Block b is handed out: its link and its mark go. With the mark gone a
// free of b is no double free; with the link gone (0 never decodes to a
// plausible link: keys are odd), a list that reaches b again, because b is
// on it twice, stops with "heap corruption" instead of handing b out
// twice. (The secure build lays the fill in the mark's place, which its
// gap check expects under a short request.)
static inline void mallet__block_handout(uintptr_t b)
{
    MALLET_TRACK_MEM_UNDEFINED((void *)b, 2 * sizeof(uint64_t));
    *(uint64_t *)b = 0;
#if MALLET_SECURE
    *(uint64_t *)(b + 8) = 0xdfdfdfdfdfdfdfdfull;
#else
    *(uint64_t *)(b + 8) = 0;
#endif
}

// thread_free's word: first and last block as granules of the segment, and
// the chain's length above them. 0 is the empty chain (unit 0 holds no
// block, so no chain starts at granule 0).
#define MALLET_TF_SHIFT (MALLET_SEG_SHIFT - MALLET_GRAIN_SHIFT)
#define MALLET_TF_MASK  (((uint64_t)1 << MALLET_TF_SHIFT) - 1)

static inline uint64_t mallet__tf_pack(uintptr_t head, uintptr_t tail, uint64_t n)
{
    return ((head & MALLET_SEG_MASK) >> MALLET_GRAIN_SHIFT) |
           (((tail & MALLET_SEG_MASK) >> MALLET_GRAIN_SHIFT) << MALLET_TF_SHIFT) |
           (n << (2 * MALLET_TF_SHIFT));
}
static inline uintptr_t mallet__tf_head(const mallet_page_t *page, uint64_t tf)
{
    return ((uintptr_t)page & ~(uintptr_t)MALLET_SEG_MASK) + ((tf & MALLET_TF_MASK) << MALLET_GRAIN_SHIFT);
}
static inline uintptr_t mallet__tf_tail(const mallet_page_t *page, uint64_t tf)
{
    return ((uintptr_t)page & ~(uintptr_t)MALLET_SEG_MASK) +
           (((tf >> MALLET_TF_SHIFT) & MALLET_TF_MASK) << MALLET_GRAIN_SHIFT);
}
static inline uint32_t mallet__tf_count(uint64_t tf)
{
    return (uint32_t)(tf >> (2 * MALLET_TF_SHIFT));
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
// Set the block-start test's limit for the page's capacity.
void mallet__page_set_limit(mallet_page_t *page);
// Blocks not on local_free or thread_free: handed out, or on `free` (of
// the current page only), or in another thread's batch not handed over
// yet. Any thread may ask (a racy read of the owner's counters).
static inline uint32_t mallet__page_used(const mallet_page_t *page)
{
    uint64_t tf = __atomic_load_n(&page->thread_free, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&page->capacity, __ATOMIC_RELAXED) -
           __atomic_load_n(&page->local_count, __ATOMIC_ACQUIRE) - mallet__tf_count(tf);
}
// True when no block of a page that is not current is handed out (and none
// is on its way back in another thread's batch).
static inline bool mallet__page_is_empty(const mallet_page_t *page)
{
    return mallet__page_used(page) == 0;
}
// Blocks on the free list (walks it; slow paths only).
uint32_t mallet__page_free_count(const mallet_page_t *page);
// Pop with every check (slow path): NULL when the free list is empty.
void *mallet__page_pop_checked(mallet_page_t *page);
// Is p the start of one of the page's carved blocks?
bool mallet__page_is_block(const mallet_page_t *page, uintptr_t p);
// Report a damaged free list and abort.
MALLET_NORETURN MALLET_COLD void mallet__page_corrupt(const mallet_page_t *page);
// Check every free block of the page (owner or sole holder; thread_free
// collected): its link leads to a block of the page or ends the list, its
// mark is in place, and in the secure build its fill is whole. A damaged
// block is reported in func's name, and the process aborts. `cut` is a
// block whose link the profiler made the end of `free` (0: none), and
// cut_next its real next. Returns the blocks checked.
uint32_t mallet__page_check(const mallet_page_t *page, const char *func, uintptr_t cut, uintptr_t cut_next);

// Page lists (doubly linked, owner or lock holder only): push at the
// front, insert before `at` (at the back when at is NULL), remove from
// anywhere.
void mallet__page_list_push(mallet_page_list_t *l, mallet_page_t *page);
void mallet__page_list_insert_before(mallet_page_list_t *l, mallet_page_t *at, mallet_page_t *page);
void mallet__page_list_remove(mallet_page_list_t *l, mallet_page_t *page);

// Move thread_free onto local_free, in one piece. Owner (or sole holder)
// only. A relaxed look comes first: most pages have nothing
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
