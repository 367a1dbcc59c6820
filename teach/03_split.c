// SPDX-License-Identifier: MIT
//
// 03_split.c -- first fit with splitting.
//
// What it adds to first fit (02_firstfit.c): a free block bigger than the
// request is cut in two when the rest is worth keeping (SP_KEEP bytes or
// more). The request takes the tail end; the front stays on the free list,
// in the same place, just smaller (K&R's trick: no list surgery). realloc to
// a smaller size gives the cut-off tail back to the list.
//
//     free block found (size 256)          after malloc(40)
//     [hdr|        free 240         ]  ->  [hdr| free 176 ][hdr| used 48 ]
//
//     header (16 bytes):  [ size|F | next ]
//       size   block size, header included (a multiple of 16); bit 0 = F, free
//       next   free: the next free block;
//              in use: SP_MAGIC and the request (the checkers want it)
//
// Requests of TEACH_MMAP_THRESHOLD bytes and more get a mapping of their own
// (teach/source.h).
//
// Invariants. Blocks tile [base, break) with no gaps; each size is a
// multiple of 16, at least SP_MIN; a block is on the free list exactly when
// its F bit is set; a used block's header holds SP_MAGIC.
//
// Known weakness: no coalescing. Splitting only ever makes blocks smaller,
// and two free neighbours never join, so after a phase of small blocks the
// heap is a sand of small free pieces that cannot serve a bigger request:
// the break grows though most of the heap is free (tests/test_teach_weaknesses.c:
// no_coalescing_free_small_then_ask_bigger_grows_the_heap; test_fragmentation.c
// shows the dust). It is also slower than first fit: the pieces pile up on
// the list, too small for most requests, and every malloc walks past them
// (bench/teach_speed: about 2x slower than first fit on random small
// malloc/free, which gets away with it by wasting memory).
#include "source.h"

#define SP_MAGIC 0xf1f1f1f1u         // in the header of every block in use
#define SP_FREE  ((size_t)1)         // the F bit of size

typedef struct sp_header {
    size_t size;                     // bytes in the block, header included; bit 0 = F (free)
    union {
        struct sp_header *next;      // free: the next free block (NULL ends the list)
        struct {
            uint32_t magic;          // in use: SP_MAGIC, tells our blocks from stray pointers
            uint32_t request;        // in use: bytes asked for (< 128 KiB); the checkers guard the rest
        } used;
    };
} sp_header_t;

#define HDR     sizeof(sp_header_t)  // 16: keeps payloads 16-byte aligned
#define SP_MIN  (HDR + TEACH_ALIGN)  // smallest block: a header and 16 bytes
#define SP_KEEP ((size_t)128)        // smallest piece a cut may leave on the list

static teach_source_t sp_src;    // the break and the large blocks
static sp_header_t *sp_list;     // the free list, oldest free block first
static sp_header_t *sp_tail;     // its last block, where free appends
static size_t sp_max_free;       // no free block is bigger (exact after a search that failed)
static size_t sp_live;           // usable bytes of the blocks in use

// Header access, with the checkers told that the allocator (and only the
// allocator) touches these 16 bytes.
static sp_header_t sp_read(sp_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    sp_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void sp_write_free(sp_header_t *h, size_t size, sp_header_t *next)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (sp_header_t){ .size = size | SP_FREE, .next = next };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

static void sp_write_used(sp_header_t *h, size_t size, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (sp_header_t){ .size = size, .used = { SP_MAGIC, (uint32_t)request } };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

// Block size for a request: header + payload rounded up to 16, payload at
// least 16 so that malloc(0) gets a block of its own. 0 when n is absurd.
static size_t sp_block_size(size_t n)
{
    size_t payload = source_round(n ? n : 1, TEACH_ALIGN);
    if (payload == 0 || payload > SIZE_MAX / 2)
        return 0;
    return payload + HDR;
}

static void *sp_hand_out(sp_header_t *h, size_t size, size_t n)
{
    sp_write_used(h, size, n);
    sp_live += size - HDR;
    void *p = (char *)h + HDR;
    MALLET_TRACK_MALLOC(p, n, size - HDR, false);
    (void)n;                            // only the checkers want the request
    return p;
}

// Cut `size` bytes off the tail of free block h (currently `have` bytes);
// return the block to hand out. Cuts leave at least SP_KEEP bytes behind:
// a smaller piece would seldom fit a request, and every later search would
// walk past it (with a 32-byte minimum, random small malloc/free ran 30x
// slower, the list full of such crumbs).
// The front keeps h's place on the free list, so nothing else changes.
static sp_header_t *sp_cut_tail(sp_header_t *h, size_t have, size_t size, sp_header_t *next)
{
    sp_write_free(h, have - size, next);
    return (sp_header_t *)((char *)h + have - size);
}

// Append free block h (of `size` bytes) to the tail of the free list.
// Appending, not pushing: blocks are reused in the order they were freed, so
// a program that frees and asks again for the same sizes gets its blocks back
// in order instead of cutting big blocks for small requests.
static void sp_append(sp_header_t *h, size_t size)
{
    if (size > sp_max_free)
        sp_max_free = size;
    sp_write_free(h, size, NULL);
    if (sp_tail)
        sp_write_free(sp_tail, sp_read(sp_tail).size & ~SP_FREE, h);
    else
        sp_list = h;
    sp_tail = h;
}

// Take h off the free list; prev is the block before it (NULL: h is first).
static void sp_unlink(sp_header_t *prev, sp_header_t *h, sp_header_t *next)
{
    if (prev)
        sp_write_free(prev, sp_read(prev).size & ~SP_FREE, next);
    else
        sp_list = next;
    if (sp_tail == h)
        sp_tail = prev;
}

static void *sp_malloc(size_t n)
{
    if (n >= TEACH_MMAP_THRESHOLD) {
        size_t usable;
        void *p = source_large_malloc(&sp_src, n, &usable);
        if (p)
            sp_live += usable;
        return p;
    }
    size_t size = sp_block_size(n);
    // First fit: the first free block big enough. A search that fails
    // sees every free block, so it learns the biggest; until a bigger block
    // is freed, requests above that skip the walk (cuts only make blocks
    // smaller, so the bound stays true).
    if (size <= sp_max_free) {
        size_t biggest = 0;
        sp_header_t *prev = NULL;
        for (sp_header_t *h = sp_list; h; ) {
            sp_header_t v = sp_read(h);
            size_t have = v.size & ~SP_FREE;
            if (have >= size + SP_KEEP)          // room to spare: split
                return sp_hand_out(sp_cut_tail(h, have, size, v.next), size, n);
            if (have >= size) {                  // too small to split: take whole
                sp_unlink(prev, h, v.next);
                return sp_hand_out(h, have, n);
            }
            biggest = have > biggest ? have : biggest;
            prev = h;
            h = v.next;
        }
        sp_max_free = biggest;
    }
    // Nothing fits: grow the break by exactly one block, as first fit did.
    // (Growing by bigger chunks would save system calls, but the unused end
    // of a chunk would sit on the list as one more free block to walk past.)
    sp_header_t *h = source_grow(&sp_src, size);
    if (h == NULL)
        return NULL;                             // errno ENOMEM from the break
    return sp_hand_out(h, size, n);
}

// The header of a block we handed out, or a one-line report and abort.
static sp_header_t sp_check(void *p, const char *func)
{
    sp_header_t *h = (sp_header_t *)((char *)p - HDR);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&sp_src, h))
        mallet__fatal("teach-split", func, "invalid pointer", p);
    sp_header_t v = sp_read(h);
    if (v.size & SP_FREE)
        mallet__fatal("teach-split", func, "double free of", p);
    if (v.used.magic != SP_MAGIC)
        mallet__fatal("teach-split", func, "invalid pointer", p);
    return v;
}

static void sp_free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    if (!source_in_brk(&sp_src, p)) {
        intptr_t i = source_large_find(&sp_src, p);
        if (i < 0)
            mallet__fatal("teach-split", "free", "invalid pointer", p);
        sp_live -= source_large_free(&sp_src, i);
        errno = saved;
        return;
    }
    sp_header_t v = sp_check(p, "free");
    sp_live -= v.size - HDR;
    MALLET_TRACK_FREE(p, v.size - HDR);
    sp_append((sp_header_t *)((char *)p - HDR), v.size);
    errno = saved;
}

// Usable bytes of a block we handed out, large or not; *request receives
// the bytes asked for.
static size_t sp_usable(void *p, const char *func, size_t *request)
{
    if (!source_in_brk(&sp_src, p)) {
        intptr_t i = source_large_find(&sp_src, p);
        if (i < 0)
            mallet__fatal("teach-split", func, "invalid pointer", p);
        *request = sp_src.large[i].request;
        return sp_src.large[i].size;
    }
    sp_header_t v = sp_check(p, func);
    *request = v.used.request;
    return v.size - HDR;
}

static size_t sp_usable_size(void *p)
{
    size_t request;
    return p ? sp_usable(p, "malloc_usable_size", &request) : 0;
}

static void *sp_realloc(void *p, size_t n)
{
    if (p == NULL)
        return sp_malloc(n);
    if (n == 0) {
        sp_free(p);
        return NULL;
    }
    size_t request;
    size_t usable = sp_usable(p, "realloc", &request);
    bool small = source_in_brk(&sp_src, p);
    if (!small && n >= TEACH_MMAP_THRESHOLD) {
        // Large to large: let the kernel move the pages (mremap), no copy.
        intptr_t i = source_large_find(&sp_src, p);
        size_t now;
        void *q = source_large_realloc(&sp_src, i, n, &now);
        if (q)
            sp_live = sp_live - usable + now;
        return q;
    }
    if (small && n <= usable) {
        // It fits: stay, and give the tail back if it is worth a list entry.
        sp_header_t *h = (sp_header_t *)((char *)p - HDR);
        size_t have = usable + HDR, size = sp_block_size(n);
        MALLET_TRACK_RESIZE(p, request, n, usable);
        if (have >= size + SP_KEEP) {
            sp_header_t *t = (sp_header_t *)((char *)h + size);
            sp_append(t, have - size);
            sp_live -= have - size;
            have = size;
        }
        sp_write_used(h, have, n);
        return p;
    }
    void *q = sp_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, request < n ? request : n);   // the bytes past the request mean nothing
    sp_free(p);
    return q;
}

static void sp_walk(teach_visit_fn visit, void *ctx)
{
    char *at = source_base(&sp_src), *top = source_top(&sp_src);
    while (at && at < top) {
        size_t size = sp_read((sp_header_t *)at).size;
        visit(ctx, at, size & ~SP_FREE, !(size & SP_FREE));
        at += size & ~SP_FREE;
    }
    source_large_walk(&sp_src, visit, ctx);
}

static void sp_reset(void)
{
    if (MALLET_TRACK_ENABLED)
        sp_walk(source_forget_used, &sp_src);
    source_reset(&sp_src);
    sp_list = sp_tail = NULL;
    sp_max_free = 0;
    sp_live = 0;
}

static size_t sp_footprint(void)
{
    return source_footprint(&sp_src);
}

static size_t sp_live_bytes(void)
{
    return sp_live;
}

const teach_allocator_t teach_split = {
    .name = "split",
    .design = "first fit that splits oversized free blocks; no coalescing",
    .malloc = sp_malloc,
    .free = sp_free,
    .realloc = sp_realloc,
    .memalign = NULL,
    .usable_size = sp_usable_size,
    .walk = sp_walk,
    .reset = sp_reset,
    .footprint = sp_footprint,
    .live_bytes = sp_live_bytes,
};
