// SPDX-License-Identifier: MIT
//
// secure.h -- the secure build's checks (make secure: MALLET_SECURE=1).
//
// The secure build adds, on top of the checks every build has (double and
// invalid frees, encoded free-list links):
//   canaries     a small block is sized for its request + 8 bytes. The 4
//                bytes right after the request hold a canary, the block's
//                last 4 the request. free and realloc check the canary the
//                request points at: "heap overflow past 0x...".
//   fill/check   free fills bytes 8..31 of the block with a pattern; when
//                the block is handed out again the pattern must be whole:
//                "write after free of 0x...". (Bytes 0..7 hold the encoded
//                link, which is checked when the list is walked or popped.)
//   quarantine   when a page's free list runs dry and its local list of
//                freed blocks takes its place, the newest 8 frees (a
//                quarter of the page's blocks at most) go to the back: a
//                freed block comes back only after the page's older free
//                blocks (mallet__secure_swap_in).
//   shuffling    fresh blocks are carved 8 OS pages at a time and dealt
//                from 8 runs, one per OS page, a run chosen at random per
//                block (mallet__secure_carve).
//   guard pages  the last OS page of every page of blocks, and the last of
//                the segment's metadata unit, are inaccessible.
//
// The per-block work is a few loads and stores inline in the fast paths
// (heap.h), where the block and its page are in registers already. A check
// that fails there sends the call down its slow path, which checks again
// and reports: the fast paths stay leaves.
//
// Layout of a small block (block size bs >= req + 8, bs >= 32):
//
//   live:  [ user data: req | canary: 4 | ...             | req: 4 ]
//   free:  [ link: 8 | fill: 24 | ...                           ]
//
// (A write after free over the link is found when the link is followed:
// when the list is cut for the quarantine, or when the block is popped.)
//
// The canary is random per page, and each of its bytes has its top bit
// set, so a stray NUL or ASCII byte never matches it.
//
// Every hook is absent in the default build: the fast paths in heap.h
// compile to the same code with or without this header.
//
// Calls: page.h, os.h (guard pages), debug.h (reports).
#ifndef MALLET_SECURE_H
#define MALLET_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "debug/track.h"
#include "page.h"

#ifndef MALLET_SECURE
#define MALLET_SECURE 0
#endif

#if MALLET_SECURE

#define MALLET_SECURE_TAIL 8        // bytes a small block gets beyond its request
#define MALLET_QUARANTINE  8        // newest frees of a page sent to the back (secure.c)
#define MALLET_CARVE_RUNS  8        // runs (an OS page each) fresh blocks are dealt from

// The size a small block must have to serve a request of n bytes.
#define MALLET_SECURE_PAD(n) ((n) <= SIZE_MAX - MALLET_SECURE_TAIL ? (n) + MALLET_SECURE_TAIL : (n))

#define MALLET_FILL_WORD  0xdfdfdfdfdfdfdfdfull    // bytes 8..31 of a free block

// Reports (secure.c): one line naming the block, then abort.
MALLET_NORETURN MALLET_COLD void mallet__secure_overflow(uintptr_t b, const char *func);
MALLET_NORETURN MALLET_COLD void mallet__secure_written(uintptr_t b, const char *func);

static inline MALLET_TRACK_UNCHECKED uint32_t mallet__secure_load32(uintptr_t at)
{
    uint32_t v;
    __builtin_memcpy(&v, (const void *)at, 4);
    return v;
}

static inline MALLET_TRACK_UNCHECKED uint64_t mallet__secure_load64(uintptr_t at)
{
    uint64_t v;
    __builtin_memcpy(&v, (const void *)at, 8);
    return v;
}

static inline MALLET_TRACK_UNCHECKED void mallet__secure_store32(uintptr_t at, uint32_t v)
{
    __builtin_memcpy((void *)at, &v, 4);
}

static inline MALLET_TRACK_UNCHECKED void mallet__secure_store64(uintptr_t at, uint64_t v)
{
    __builtin_memcpy((void *)at, &v, 8);
}

// Block b now serves req bytes: lay its canary and trailer.
static inline void mallet__secure_lay(const mallet_page_t *page, uintptr_t b, size_t req)
{
    mallet__secure_store32(b + req, page->canary);
    mallet__secure_store32(b + page->block_size - 4, (uint32_t)req);
}

// Is the canary of block b, live, whole? The trailer is trusted only as far
// as it points at the canary: an overflow that reaches the trailer has run
// over the canary first, and a damaged trailer points at user bytes or out
// of the block.
static inline bool mallet__secure_intact(const mallet_page_t *page, uintptr_t b)
{
    uint32_t bs = page->block_size;
    uint32_t req = mallet__secure_load32(b + bs - 4);
    return req <= bs - MALLET_SECURE_TAIL && mallet__secure_load32(b + req) == page->canary;
}

// The request block b (live) serves, after checking its canary.
static inline size_t mallet__secure_check(const mallet_page_t *page, uintptr_t b, const char *func)
{
    if (!mallet__secure_intact(page, b))
        mallet__secure_overflow(b, func);
    return mallet__secure_load32(b + page->block_size - 4);
}

// Is the fill of block b, just taken off a free list, whole?
static inline bool mallet__secure_fill_intact(uintptr_t b)
{
    return mallet__secure_load64(b + 8) == MALLET_FILL_WORD &&
           mallet__secure_load64(b + 16) == MALLET_FILL_WORD &&
           mallet__secure_load64(b + 24) == MALLET_FILL_WORD;
}

// Fill bytes 8..31 of a block going onto a free list.
static inline void mallet__secure_fill(uintptr_t b)
{
    mallet__secure_store64(b + 8, MALLET_FILL_WORD);
    mallet__secure_store64(b + 16, MALLET_FILL_WORD);
    mallet__secure_store64(b + 24, MALLET_FILL_WORD);
}

// Block b (live) is being freed: check its canary, fill it.
static inline void mallet__secure_on_free(const mallet_page_t *page, uintptr_t b, const char *func)
{
    mallet__secure_check(page, b, func);
    mallet__secure_fill(b);
}

// Link n fresh blocks from first onto page->free in a random order, filled.
void mallet__secure_carve(mallet_page_t *page, uintptr_t first, uint32_t n);
// Make units u..u+n-1 of seg accessible except the run's last OS page, the
// guard; false (errno ENOMEM) when the OS refuses. seg_lock held.
bool mallet__secure_guard_run(mallet_segment_t *seg, unsigned u, unsigned n);
// The blocks of a freshly initialised page that fit before its guard.
uint32_t mallet__secure_capacity(const mallet_page_t *page);
// The quarantine: make page->local_free the free list (page->free is
// empty), its newest blocks moved to the end.
void mallet__secure_swap_in(mallet_page_t *page);
// Guard the last OS page of a new segment's metadata unit.
void mallet__secure_guard_segment(mallet_segment_t *seg);

#else

#define MALLET_SECURE_PAD(n) (n)

#endif

#endif
