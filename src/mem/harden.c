// SPDX-License-Identifier: MIT
//
// harden.c -- the secure build's slow-path pieces: the reports, shuffled
// and filled carving, the quarantine's refill order, guard pages. The
// inline checks the fast paths make, and the layout of a block, are in
// harden.h. The default build compiles this file to nothing.
//
// Invariant: a block on one of a page's lists (free, local_free,
// thread_free) holds the fill (harden.h: all of it, or its first and last
// 64 bytes) from its free (or carving) until it is handed out again.
//
// Calls: page.h, span.h, os.h, base/random.h (randomness), debug.h (reports).
#include "harden.h"

#if MALLET_SECURE


#include "base/base.h"
#include "os/os.h"
#include "span.h"

_Static_assert(sizeof(mallet_segment_t) + 4096 <= MALLET_UNIT_SIZE,
               "segment metadata leaves room for its guard page");

void mallet__secure_overflow(uintptr_t b, const char *func)
{
    mallet__fatal("mallet", func, "heap overflow past", (void *)b);
}

void mallet__secure_written(uintptr_t b, const char *func)
{
    mallet__fatal("mallet", func, "write after free of", (void *)b);
}

void *mallet__secure_lay_gap(const mallet_page_t *page, uintptr_t b, size_t req)
{
    uint32_t bs = page->block_size;
    if (req < 8)
        mallet__secure_fill_bytes(b + req, 8 - req);
    size_t from = req > MALLET_FILL_EDGE ? req : MALLET_FILL_EDGE;
    if (bs > MALLET_FILL_ALL && from + MALLET_FILL_EDGE < bs)
        mallet__secure_fill_bytes(b + from, bs - MALLET_FILL_EDGE - from);
    mallet__secure_tag(page, b, req);
    return (void *)b;
}

// The n blocks (MALLET_CARVE_RUNS OS pages' worth) are cut into that many
// runs of neighbours, about an OS page each; the list takes the next block
// of a randomly chosen run each time. Consecutive allocations come from
// unrelated runs (the next address cannot be guessed, and the block after
// an overflowing one is rarely the one allocated after it), while each run
// is still walked in address order through its own OS page: blocks
// allocated together keep sharing cache lines and the hardware prefetcher
// still sees one stream per page. (A full shuffle of a page's blocks made a
// program that walks its objects in allocation order, python3's collector,
// a third slower.)
void mallet__secure_carve(mallet_page_t *page, uintptr_t first, uint32_t n)
{
    uint32_t at[MALLET_CARVE_RUNS], end[MALLET_CARVE_RUNS];
    uint32_t runs = n < MALLET_CARVE_RUNS ? n : MALLET_CARVE_RUNS;
    for (uint32_t r = 0; r < runs; r++) {
        at[r] = r * n / runs;
        end[r] = (r + 1) * n / runs;
    }
    uint64_t x = mallet__random_next() | 1;
    uintptr_t bs = page->block_size, head = 0, tail = 0;
    while (runs > 0) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t r = (uint32_t)(x % runs);
        uintptr_t b = first + (uintptr_t)at[r] * bs;
        if (++at[r] == end[r]) {
            // Run r is used up: the last run takes its place.
            runs--;
            at[r] = at[runs];
            end[r] = end[runs];
        }
        mallet__secure_fill(page, b);
        if (tail)
            mallet__link_write(page, tail, b);
        else
            head = b;
        tail = b;
    }
    mallet__link_write(page, tail, page->free);
    page->free = head;
}

// The local list is newest first. Its first `hold` blocks (at most
// MALLET_QUARANTINE, a quarter of the page's blocks) are moved to its end,
// behind the oldest, and the whole list becomes the free list: a freed
// block is handed out again only after the page's older free blocks, and
// the refill still brings every block back. Reuse stays last-in first-out
// beyond the newest few, so the blocks handed out are still warm in the
// cache. A link walked here that leaves the segment was written after its
// block was freed; the link the move rewrites is checked in full first (the
// others are checked again when their blocks are popped), and so is the
// oldest block's, which must still end the list.
void mallet__secure_swap_in(mallet_page_t *page)
{
    uint32_t hold = page->reserved / 4;
    if (hold > MALLET_QUARANTINE)
        hold = MALLET_QUARANTINE;
    if (hold == 0)
        hold = 1;
    uintptr_t head = page->local_free, last = head, rest = 0;
    uintptr_t seen[MALLET_QUARANTINE];     // the blocks walked, newest first
    uint32_t n = 0;
    page->local_free = 0;
    for (uint32_t i = 0; last != 0; i++) {
        seen[n++] = last;
        rest = mallet__link_read(page, last);
        if (((rest ^ last) & MALLET_LINK_CHECK) != 0 && rest != 0)
            mallet__secure_written(last, "malloc");
        if (i + 1 == hold || rest == 0)
            break;
        last = rest;
    }
    if (rest == 0) {
        // No more than `hold` blocks were freed: hand them out oldest
        // first. Relinked from the addresses the walk checked, not by
        // reading the links again: a block written after its free between
        // the two reads would send a second walk through an unchecked link
        // (a non-canonical one faults, as SIGBUS when it sits in %rbp).
        uintptr_t prev = 0;
        for (uint32_t i = 0; i < n; i++) {
            mallet__link_write(page, seen[i], prev);
            prev = seen[i];
        }
        page->free = prev;
        return;
    }
    if (!mallet__page_is_block(page, rest))
        mallet__secure_written(last, "malloc");
    if (mallet__link_read(page, page->local_tail) != 0)
        mallet__secure_written(page->local_tail, "malloc");   // the end of the list, rewritten
    // rest ... tail, then head ... last.
    mallet__link_write(page, last, 0);
    mallet__link_write(page, page->local_tail, head);
    page->free = rest;
}

bool mallet__secure_guard_run(mallet_segment_t *seg, unsigned u, unsigned n)
{
    uint64_t run = (n == 64 ? ~0ull : ((1ull << n) - 1)) << u, last = 1ull << (u + n - 1);
    if ((seg->guard_units & run) == last)
        return true;
    size_t pg = mallet__os_page_size(), len = (size_t)n * MALLET_UNIT_SIZE;
    char *start = (char *)seg + (size_t)u * MALLET_UNIT_SIZE;
    // Open the run's old guards, then close its last OS page.
    if ((seg->guard_units & run) != 0 && !mallet__os_commit(start, len))
        return false;
    seg->guard_units &= ~run;
    // Near the kernel's mapping limit the guard may not be placed: the page
    // is then refused rather than handed out unguarded.
    if (!mallet__os_decommit(start + len - pg, pg))
        return false;
    seg->guard_units |= last;
    return true;
}

uint32_t mallet__secure_capacity(const mallet_page_t *page)
{
    size_t room = (size_t)page->units * MALLET_UNIT_SIZE - mallet__os_page_size();
    uint32_t fit = (uint32_t)(room / page->block_size);
    return fit < page->reserved ? fit : page->reserved;
}

void mallet__secure_guard_segment(mallet_segment_t *seg)
{
    size_t pg = mallet__os_page_size();
    mallet__os_decommit((char *)seg + MALLET_UNIT_SIZE - pg, pg);
}

#endif
