// SPDX-License-Identifier: MIT
//
// harden.h -- the secure build's checks in the core's lists (make secure:
// MALLET_SECURE=1). They sit on the fast paths, so they are compiled into
// mem/, not called through a hook; secure/ holds the secure features that
// stand beside the core (malloc(0)'s region, the heap check, the guard).
//
// The secure build adds, on top of the checks every build has (double and
// invalid frees, encoded free-list links):
//   tag          a small block is sized for its request + 8 bytes. Its last
//                8 bytes hold the tag: a check word (the page's canary mixed
//                with the request) and the request. Every byte between the
//                request and the tag, the gap, holds the fill. free and
//                realloc check the tag and the whole gap: "heap overflow
//                past 0x...". An overflow by any number of bytes up to the
//                block's end is seen, whatever the request.
//   fill/check   a free block of up to 1 KiB holds the fill (0xdf) in
//                every byte but its link and its mark (page.h); a larger
//                one in its first and last 64 bytes.
//                When it is handed out again the fill must be whole:
//                "write after free of 0x...". A read after free sees the
//                fill there, not the data.
//                mallet_check(), malloc_trim() and the exit of the process
//                check every free block of the heap the same way.
//   quarantine   when a page's free list runs dry and its local list of
//                freed blocks takes its place, the newest 8 frees (a
//                quarter of the page's blocks at most) go to the back: a
//                freed block comes back only after the page's older free
//                blocks (mallet__secure_swap_in).
//   shuffling    fresh blocks are carved 8 OS pages at a time and dealt
//                from 8 runs, one per OS page, a run chosen at random per
//                block (mallet__secure_carve). A fork child draws its own
//                random state, so its new pages get their own keys,
//                canaries and order.
//   guard pages  the last OS page of every page of blocks, and the last of
//                the segment's metadata unit, are inaccessible; large
//                blocks end at a guard page and are inaccessible once freed,
//                and quarantined (large.c, large_cache.c), and malloc(0)
//                returns a block no one may touch (secure/zero.c).
//
// The per-block work is inline in the fast paths (heap.h), where the block
// and its page are in registers already. A check that fails there sends
// the call down its slow path, which checks again and reports: the fast
// paths stay leaves.
//
// Layout of a small block (block size bs >= req + 8, bs >= 32):
//
//   live:  [ user data: req | gap: fill ...         | check: 4 | req: 4 ]
//   free:  [ link: 8 | mark: 8 | fill ............................... ]
//
// (A write after free over the link is found when the link is followed:
// when the list is cut for the quarantine, when the block is popped, or
// when the heap is checked.)
//
// The check word is the page's random canary xor the request times an odd
// constant, with the top bit of every byte set: a stray NUL or ASCII byte
// never matches it, and a rewritten request no longer matches its check.
// The fill byte has its top bit set too.
//
// Every hook is absent in the default build: the fast paths in heap.h
// compile to the same code with or without this header.
//
// Calls: page.h, os.h (guard pages), debug.h (reports).
#ifndef MALLET_HARDEN_H
#define MALLET_HARDEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "debug/debug.h"
#include "page.h"

#ifndef MALLET_SECURE
#define MALLET_SECURE 0
#endif

#if MALLET_SECURE

#define MALLET_SECURE_TAIL 8        // bytes a small block gets beyond its request: the tag
#define MALLET_QUARANTINE  8        // newest frees of a page sent to the back (harden.c)
#define MALLET_CARVE_RUNS  8        // runs (an OS page each) fresh blocks are dealt from

// A free block of up to MALLET_FILL_ALL bytes holds the fill in every byte
// (the link and mark aside), so that a write after free anywhere in it is
// seen and a read after free sees only the fill. A larger one holds it in
// its first and last MALLET_FILL_EDGE bytes: the two ends are where a
// malloc and a free touch the block anyway (the link, the tag), while its
// whole would cost a cache line per 64 bytes at free and again at reuse,
// whether or not the program ever touched them. Programs allocate blocks of
// up to 1 KiB far more often than larger ones; bench/results.md ("The
// secure build's cost") measures the choice against the two ends alone
// (`make SECURE=edges`) and against every block whole (`make SECURE=whole`).
#define MALLET_FILL_EDGE 64
#ifndef MALLET_FILL_ALL
#define MALLET_FILL_ALL 1024
#endif
_Static_assert(MALLET_FILL_ALL >= 2 * MALLET_FILL_EDGE, "the two ends cover every block not filled whole");

// The size a small block must have to serve a request of n bytes.
#define MALLET_SECURE_PAD(n) ((n) <= SIZE_MAX - MALLET_SECURE_TAIL ? (n) + MALLET_SECURE_TAIL : (n))

#define MALLET_FILL_BYTE  0xdf
#define MALLET_FILL_WORD  0xdfdfdfdfdfdfdfdfull

// Reports (harden.c): one line naming the block, then abort.
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

// Fill checks and stores go 16 bytes at a time (SSE2, which every x86-64
// has; other targets get the same code from the compiler's vector
// lowering). A block is 16-byte aligned and its size a multiple of 16.
typedef uint64_t mallet_vec_t __attribute__((vector_size(16)));
#define MALLET_FILL_VEC ((mallet_vec_t){ MALLET_FILL_WORD, MALLET_FILL_WORD })

static inline MALLET_TRACK_UNCHECKED mallet_vec_t mallet__secure_vload(uintptr_t at)
{
    mallet_vec_t v;
    __builtin_memcpy(&v, (const void *)at, 16);
    return v;
}

static inline MALLET_TRACK_UNCHECKED void mallet__secure_vstore(uintptr_t at, mallet_vec_t v)
{
    __builtin_memcpy((void *)at, &v, 16);
}

// Bits that differ from the fill in the n 16-byte slots from `at` (n is a
// constant at every call, so the loop unrolls).
static inline MALLET_TRACK_UNCHECKED mallet_vec_t mallet__secure_diff_slots(uintptr_t at, unsigned n)
{
    mallet_vec_t d = { 0, 0 };
#pragma GCC unroll 4
    for (unsigned i = 0; i < n; i++)
        d |= mallet__secure_vload(at + 16 * i) ^ MALLET_FILL_VEC;
    return d;
}

static inline MALLET_TRACK_UNCHECKED void mallet__secure_fill_slots(uintptr_t at, unsigned n)
{
#pragma GCC unroll 4
    for (unsigned i = 0; i < n; i++)
        mallet__secure_vstore(at + 16 * i, MALLET_FILL_VEC);
}

// Do the n bytes at `at` (any alignment, any length) all hold the fill?
// The last load overlaps the one before, so a length takes no tail loop.
static inline MALLET_TRACK_UNCHECKED bool mallet__secure_is_fill(uintptr_t at, size_t n)
{
    if (n >= 16) {
        mallet_vec_t d = mallet__secure_vload(at + n - 16) ^ MALLET_FILL_VEC;
        for (size_t i = 0; i + 16 < n; i += 16)
            d |= mallet__secure_vload(at + i) ^ MALLET_FILL_VEC;
        return (d[0] | d[1]) == 0;
    }
    if (n >= 8)
        return ((mallet__secure_load64(at) ^ MALLET_FILL_WORD) |
                (mallet__secure_load64(at + n - 8) ^ MALLET_FILL_WORD)) == 0;
    if (n >= 4)
        return ((mallet__secure_load32(at) ^ (uint32_t)MALLET_FILL_WORD) |
                (mallet__secure_load32(at + n - 4) ^ (uint32_t)MALLET_FILL_WORD)) == 0;
    uint32_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= *(const uint8_t *)(at + i) ^ MALLET_FILL_BYTE;
    return diff == 0;
}

// Does the gap, the n bytes at `at` that end 8 bytes before a block's end,
// hold the fill? Most gaps are under 16 bytes: one load of the 16 bytes
// that end where the gap ends (the block is at least 32 bytes, so they lie
// in it) and a byte mask check them, where the general loop would branch.
static inline MALLET_TRACK_UNCHECKED bool mallet__secure_gap_is_fill(uintptr_t at, size_t n)
{
#if defined(__SSE2__)
    if (n < 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(at + n - 16));
        unsigned same = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)MALLET_FILL_BYTE)));
        unsigned want = 0xffffu & ~((1u << (16 - n)) - 1);
        return (same & want) == want;
    }
#endif
    return mallet__secure_is_fill(at, n);
}

// Fill the n bytes at `at`, any alignment and length: 16-byte stores, the
// last one overlapping the one before. (Not memset: under AddressSanitizer
// its interceptor would check bytes that are the allocator's own; the empty
// asm keeps the compiler from making the loop a memset call.)
static inline MALLET_TRACK_UNCHECKED void mallet__secure_fill_bytes(uintptr_t at, size_t n)
{
    if (n >= 16) {
        for (size_t i = 0; i + 16 < n; i += 16) {
            mallet__secure_vstore(at + i, MALLET_FILL_VEC);
            __asm__ volatile("" ::: "memory");
        }
        mallet__secure_vstore(at + n - 16, MALLET_FILL_VEC);
    } else if (n >= 8) {
        mallet__secure_store64(at, MALLET_FILL_WORD);
        mallet__secure_store64(at + n - 8, MALLET_FILL_WORD);
    } else if (n >= 4) {
        mallet__secure_store32(at, (uint32_t)MALLET_FILL_WORD);
        mallet__secure_store32(at + n - 4, (uint32_t)MALLET_FILL_WORD);
    } else {
        for (size_t i = 0; i < n; i++)
            *(uint8_t *)(at + i) = MALLET_FILL_BYTE;
    }
}

// The check word of a block serving req bytes.
static inline uint32_t mallet__secure_check_word(const mallet_page_t *page, size_t req)
{
    return (page->canary ^ ((uint32_t)req * 0x9e3779b1u)) | 0x80808080u;
}

// Lay the tag of block b, live and serving req bytes.
static inline void mallet__secure_tag(const mallet_page_t *page, uintptr_t b, size_t req)
{
    uint32_t bs = page->block_size;
    mallet__secure_store32(b + bs - 8, mallet__secure_check_word(page, req));
    mallet__secure_store32(b + bs - 4, (uint32_t)req);
}

// mallet__secure_lay for a block whose gap the free fill does not cover
// (harden.c): the link's place under a request of less than 8 bytes, or a
// larger block's middle, is filled first. Returns b.
void *mallet__secure_lay_gap(const mallet_page_t *page, uintptr_t b, size_t req);

// Block b now serves req bytes: lay its tag, and return it. The gap holds
// the fill already where the free fill covers it (the block's two ends);
// the rest is a tail call, so the fast paths keep no registers for it.
static inline void *mallet__secure_lay(const mallet_page_t *page, uintptr_t b, size_t req)
{
    uint32_t bs = page->block_size;
    if (__builtin_expect(req < 8 || (bs > MALLET_FILL_ALL && req + MALLET_FILL_EDGE < bs), 0))
        return mallet__secure_lay_gap(page, b, req);
    mallet__secure_tag(page, b, req);
    return (void *)b;
}

// Are the tag and the gap of block b, live, whole? The request is trusted
// only as far as the check word vouches for it.
static inline bool mallet__secure_intact(const mallet_page_t *page, uintptr_t b)
{
    uint32_t bs = page->block_size;
    uint32_t req = mallet__secure_load32(b + bs - 4);
    return req <= bs - MALLET_SECURE_TAIL &&
           mallet__secure_load32(b + bs - 8) == mallet__secure_check_word(page, req) &&
           mallet__secure_gap_is_fill(b + req, bs - MALLET_SECURE_TAIL - req);
}

// The request block b (live) serves, after checking its tag and gap.
static inline size_t mallet__secure_check(const mallet_page_t *page, uintptr_t b, const char *func)
{
    if (!mallet__secure_intact(page, b))
        mallet__secure_overflow(b, func);
    return mallet__secure_load32(b + page->block_size - 4);
}

// Block b (live, req bytes) keeps its place for a request of n bytes: the
// bytes it gives up join the gap.
static inline void mallet__secure_resize(const mallet_page_t *page, uintptr_t b, size_t req, size_t n)
{
    if (n < req)
        mallet__secure_fill_bytes(b + n, req - n);
    mallet__secure_lay(page, b, n);
}

// Is the fill of free block b whole: its mark and bytes 16..bs-1 (of a
// block of more than MALLET_FILL_ALL bytes, bytes 16..63 and the last 64)?
static inline bool mallet__secure_fill_intact(const mallet_page_t *page, uintptr_t b)
{
    uint32_t bs = page->block_size;
    mallet_vec_t d = { mallet__secure_load64(b + 8) ^ page->mark, 0 };
    if (bs < 80) {
        for (uintptr_t at = b + 16; at < b + bs; at += 16)
            d |= mallet__secure_vload(at) ^ MALLET_FILL_VEC;
    } else {
        // 64 bytes a turn (four independent loads), the last turn the
        // block's last 64, overlapping the one before.
        uintptr_t last = b + bs - 64;
        if (bs > MALLET_FILL_ALL)
            d |= mallet__secure_diff_slots(b + 16, 3);
        else
            for (uintptr_t at = b + 16; at < last; at += 64)
                d |= mallet__secure_diff_slots(at, 4);
        d |= mallet__secure_diff_slots(last, 4);
    }
    return (d[0] | d[1]) == 0;
}

// Fill block b going onto a free list: the same bytes.
static inline void mallet__secure_fill(const mallet_page_t *page, uintptr_t b)
{
    uint32_t bs = page->block_size;
    mallet__secure_store64(b + 8, page->mark);
    if (bs < 80) {
        for (uintptr_t at = b + 16; at < b + bs; at += 16)
            mallet__secure_vstore(at, MALLET_FILL_VEC);
    } else {
        uintptr_t last = b + bs - 64;
        if (bs > MALLET_FILL_ALL)
            mallet__secure_fill_slots(b + 16, 3);
        else
            for (uintptr_t at = b + 16; at < last; at += 64)
                mallet__secure_fill_slots(at, 4);
        mallet__secure_fill_slots(last, 4);
    }
}

// Block b (live) is being freed: check its tag and gap, fill it.
static inline void mallet__secure_on_free(const mallet_page_t *page, uintptr_t b, const char *func)
{
    mallet__secure_check(page, b, func);
    mallet__secure_fill(page, b);
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
