// SPDX-License-Identifier: MIT
//
// 02_firstfit.c -- one free list, first fit, in the manner of K&R §8.7.
//
// What it adds to bump: memory comes back. free puts a block on a list of
// free blocks; malloc walks that list and takes the first block big enough
// ("first fit"). Only when no free block fits does the break move, by
// exactly one block.
//
//     header (16 bytes)          payload
//     [ size|F  |  next  ]       [ ...user bytes... ]
//       |    |     `-- free: the next free block;
//       |    |         in use: FF_MAGIC and the request (the checkers want it)
//       |    `-------- bit 0: 1 while the block is on the free list
//       `------------- block size, header included (a multiple of 16)
//
// Requests of TEACH_MMAP_THRESHOLD bytes and more get a mapping of their own
// (teach/source.h), so big buffers never fragment the break.
//
// Invariants. Blocks tile [base, break) with no gaps; each header's size is
// a multiple of 16, at least 32; a block is on the free list exactly when its
// F bit is set; a used block's header holds FF_MAGIC.
//
// Known weaknesses (each fixed by a later design):
//   - no splitting: a 16-byte request may take a 4 KiB free block, and all
//     of it stays in use (tests/test_teach_weaknesses.c:
//     firstfit_does_not_split_a_large_free_block);
//   - no coalescing: two free neighbours never make one bigger block, so
//     memory freed as small blocks cannot serve a larger request and the
//     break grows though plenty is free (test_teach_weaknesses.c:
//     no_coalescing_free_small_then_ask_bigger_grows_the_heap);
//   - malloc is a walk of the whole free list: slow with many free blocks.
//     It stays fast only while most free blocks are big enough, which is
//     how never splitting wastes memory.
#include "source.h"

#define FF_MAGIC 0xf1f1f1f1u         // in the header of every block in use
#define FF_FREE  ((size_t)1)         // the F bit of size

typedef struct ff_header {
    size_t size;                     // bytes in the block, header included; bit 0 = F (free)
    union {
        struct ff_header *next;      // free: the next free block (NULL ends the list)
        struct {
            uint32_t magic;          // in use: FF_MAGIC, tells our blocks from stray pointers
            uint32_t request;        // in use: bytes asked for (< 128 KiB); the checkers guard the rest
        } used;
    };
} ff_header_t;

#define HDR sizeof(ff_header_t)  // 16: keeps payloads 16-byte aligned

static teach_source_t ff_src;    // the break and the large blocks
static ff_header_t *ff_list;     // the free list, oldest free block first
static ff_header_t *ff_tail;     // its last block, where free appends
static size_t ff_max_free;       // no free block is bigger (exact after a search that failed)
static size_t ff_live;           // usable bytes of the blocks in use

// Header access, with the checkers told that the allocator (and only the
// allocator) touches these 16 bytes.
static ff_header_t ff_read(ff_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    ff_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void ff_write_free(ff_header_t *h, size_t size, ff_header_t *next)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (ff_header_t){ .size = size | FF_FREE, .next = next };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

static void ff_write_used(ff_header_t *h, size_t size, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (ff_header_t){ .size = size, .used = { FF_MAGIC, (uint32_t)request } };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

// Block size for a request: header + payload rounded up to 16, payload at
// least 16 so that malloc(0) gets a block of its own. 0 when n is absurd.
static size_t ff_block_size(size_t n)
{
    size_t payload = source_round(n ? n : 1, TEACH_ALIGN);
    if (payload == 0 || payload > SIZE_MAX / 2)
        return 0;
    return payload + HDR;
}

static void *ff_hand_out(ff_header_t *h, size_t size, size_t n)
{
    ff_write_used(h, size, n);
    ff_live += size - HDR;
    void *p = (char *)h + HDR;
    MALLET_TRACK_MALLOC(p, n, size - HDR, false);
    (void)n;                            // only the checkers want the request
    return p;
}

// Append free block h (of `size` bytes) to the tail of the free list.
// Appending, not pushing: blocks are reused in the order they were freed, so
// a program that frees and asks again for the same sizes gets its blocks back
// in order instead of cutting big blocks for small requests.
static void ff_append(ff_header_t *h, size_t size)
{
    if (size > ff_max_free)
        ff_max_free = size;
    ff_write_free(h, size, NULL);
    if (ff_tail)
        ff_write_free(ff_tail, ff_read(ff_tail).size & ~FF_FREE, h);
    else
        ff_list = h;
    ff_tail = h;
}

// Take h off the free list; prev is the block before it (NULL: h is first).
static void ff_unlink(ff_header_t *prev, ff_header_t *h, ff_header_t *next)
{
    if (prev)
        ff_write_free(prev, ff_read(prev).size & ~FF_FREE, next);
    else
        ff_list = next;
    if (ff_tail == h)
        ff_tail = prev;
}

static void *ff_malloc(size_t n)
{
    if (n >= TEACH_MMAP_THRESHOLD) {
        size_t usable;
        void *p = source_large_malloc(&ff_src, n, &usable);
        if (p)
            ff_live += usable;
        return p;
    }
    size_t size = ff_block_size(n);
    // First fit: the first free block big enough, taken whole. A search
    // that fails sees every free block, so it learns the biggest; until a
    // bigger block is freed, requests above that skip the walk (without
    // this, a program that is still growing walks the whole list on every
    // malloc).
    if (size <= ff_max_free) {
        size_t biggest = 0;
        ff_header_t *prev = NULL;
        for (ff_header_t *h = ff_list; h; ) {
            ff_header_t v = ff_read(h);
            size_t have = v.size & ~FF_FREE;
            if (have >= size) {
                ff_unlink(prev, h, v.next);
                return ff_hand_out(h, have, n);
            }
            biggest = have > biggest ? have : biggest;
            prev = h;
            h = v.next;
        }
        ff_max_free = biggest;
    }
    ff_header_t *h = source_grow(&ff_src, size);
    if (h == NULL)
        return NULL;                        // errno ENOMEM from the break
    return ff_hand_out(h, size, n);
}

// The header of a block we handed out, or a one-line report and abort.
static ff_header_t ff_check(void *p, const char *func)
{
    ff_header_t *h = (ff_header_t *)((char *)p - HDR);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&ff_src, h))
        mallet__fatal("teach-firstfit", func, "invalid pointer", p);
    ff_header_t v = ff_read(h);
    if (v.size & FF_FREE)
        mallet__fatal("teach-firstfit", func, "double free of", p);
    if (v.used.magic != FF_MAGIC)
        mallet__fatal("teach-firstfit", func, "invalid pointer", p);
    return v;
}

static void ff_free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    if (!source_in_brk(&ff_src, p)) {
        intptr_t i = source_large_find(&ff_src, p);
        if (i < 0)
            mallet__fatal("teach-firstfit", "free", "invalid pointer", p);
        ff_live -= source_large_free(&ff_src, i);
        errno = saved;
        return;
    }
    ff_header_t v = ff_check(p, "free");
    ff_live -= v.size - HDR;
    MALLET_TRACK_FREE(p, v.size - HDR);
    ff_append((ff_header_t *)((char *)p - HDR), v.size);
    errno = saved;
}

// Usable bytes of a block we handed out, large or not; *request receives
// the bytes asked for.
static size_t ff_usable(void *p, const char *func, size_t *request)
{
    if (!source_in_brk(&ff_src, p)) {
        intptr_t i = source_large_find(&ff_src, p);
        if (i < 0)
            mallet__fatal("teach-firstfit", func, "invalid pointer", p);
        *request = ff_src.large[i].request;
        return ff_src.large[i].size;
    }
    ff_header_t v = ff_check(p, func);
    *request = v.used.request;
    return v.size - HDR;
}

static size_t ff_usable_size(void *p)
{
    size_t request;
    return p ? ff_usable(p, "malloc_usable_size", &request) : 0;
}

static void *ff_realloc(void *p, size_t n)
{
    if (p == NULL)
        return ff_malloc(n);
    if (n == 0) {
        ff_free(p);
        return NULL;
    }
    size_t request;
    size_t usable = ff_usable(p, "realloc", &request);
    bool small = source_in_brk(&ff_src, p);
    if (!small && n >= TEACH_MMAP_THRESHOLD) {
        // Large to large: let the kernel move the pages (mremap), no copy.
        intptr_t i = source_large_find(&ff_src, p);
        size_t now;
        void *q = source_large_realloc(&ff_src, i, n, &now);
        if (q)
            ff_live = ff_live - usable + now;
        return q;
    }
    if (small && n <= usable) {
        // It fits: stay (this design cannot split off the rest).
        ff_header_t *h = (ff_header_t *)((char *)p - HDR);
        ff_write_used(h, usable + HDR, n);
        MALLET_TRACK_RESIZE(p, request, n, usable);
        return p;
    }
    void *q = ff_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, request < n ? request : n);   // the bytes past the request mean nothing
    ff_free(p);
    return q;
}

static void ff_walk(teach_visit_fn visit, void *ctx)
{
    char *at = source_base(&ff_src), *top = source_top(&ff_src);
    while (at && at < top) {
        size_t size = ff_read((ff_header_t *)at).size;
        visit(ctx, at, size & ~FF_FREE, !(size & FF_FREE));
        at += size & ~FF_FREE;
    }
    source_large_walk(&ff_src, visit, ctx);
}

static void ff_reset(void)
{
    if (MALLET_TRACK_ENABLED)
        ff_walk(source_forget_used, &ff_src);
    source_reset(&ff_src);
    ff_list = ff_tail = NULL;
    ff_max_free = 0;
    ff_live = 0;
}

static size_t ff_footprint(void)
{
    return source_footprint(&ff_src);
}

static size_t ff_live_bytes(void)
{
    return ff_live;
}

const teach_allocator_t teach_firstfit = {
    .name = "firstfit",
    .design = "one free list, first fit, no splitting or coalescing (K&R-style header)",
    .malloc = ff_malloc,
    .free = ff_free,
    .realloc = ff_realloc,
    .memalign = NULL,
    .usable_size = ff_usable_size,
    .walk = ff_walk,
    .reset = ff_reset,
    .footprint = ff_footprint,
    .live_bytes = ff_live_bytes,
};
