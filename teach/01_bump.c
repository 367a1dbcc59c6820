// SPDX-License-Identifier: MIT
//
// 01_bump.c -- the simplest allocator there is: a pointer that only moves up.
//
// What it is. malloc moves the break (teach/source.h) up by the block size
// and returns the old break; free does nothing. A block is a 16-byte header
// (its size, a magic number, the request) followed by the payload, so
// usable_size and realloc know how big a block is. The request is kept for
// realloc (which copies only the bytes asked for) and for the memory
// checkers, which guard the bytes past it.
//
//     break before            break after malloc(20)
//     |                       |
//     v                       v
//     [hdr|payload 32 ][hdr|payload 32        ]
//
// Invariants. Blocks tile [base, break) with no gaps, in the order they were
// handed out; every block size is a multiple of 16 and at least 32 bytes;
// every header holds BUMP_MAGIC (or BUMP_FREED, see free).
//
// Known weakness: memory is never reused. A program that frees as much as
// it allocates still grows without end: a loop of malloc(64)/free() moves
// the break on every call (tests/test_teach_weaknesses.c:
// bump_footprint_grows_with_a_malloc_free_loop). Because nothing is reused,
// a double free does no harm and is not reported; free only rejects
// pointers outside the break or without a header. (free does mark the
// header, for the accounting and the memory checkers: see bump_free.)
//
// One nicety: realloc of the last block grows it in place by moving the
// break, which is how a string builder would like it.
#include "source.h"

#define BUMP_MAGIC 0xb0b0                    // marks a header we wrote
#define BUMP_FREED 0xb0bf                    // ... of a block free() was called on

typedef struct bump_header {
    uint64_t size : 48;          // bytes in the block, header included
    uint64_t magic : 16;         // BUMP_MAGIC or BUMP_FREED: tells our headers from stray pointers
    uint64_t request;            // bytes asked for; the checkers guard the rest
} bump_header_t;

#define HDR sizeof(bump_header_t)   // 16: keeps payloads 16-byte aligned

static teach_source_t bump_src;     // the break this design grows
static size_t bump_live;            // usable bytes malloc'd and not yet freed

static bump_header_t *bump_header_of(void *p)
{
    return (bump_header_t *)((char *)p - HDR);
}

// Read a header, telling the checkers the allocator may look at it.
static bump_header_t bump_read(bump_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    bump_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void bump_write(bump_header_t *h, size_t size, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (bump_header_t){ .size = size, .magic = BUMP_MAGIC, .request = request };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

// Block size for a request: header + payload rounded to 16, payload >= 16
// so that malloc(0) still gets a block of its own. 0 when n is absurd.
static size_t bump_block_size(size_t n)
{
    size_t payload = source_round(n ? n : 1, TEACH_ALIGN);
    if (payload == 0 || payload > SIZE_MAX / 2)
        return 0;
    return payload + HDR;
}

static void *bump_malloc(size_t n)
{
    size_t size = bump_block_size(n);
    if (size == 0) {
        errno = ENOMEM;
        return NULL;
    }
    bump_header_t *h = source_grow(&bump_src, size);
    if (h == NULL)
        return NULL;                       // errno ENOMEM from the break
    bump_write(h, size, n);
    bump_live += size - HDR;
    void *p = (char *)h + HDR;
    MALLET_TRACK_MALLOC(p, n, size - HDR, false);
    return p;
}

// The header of p, or a one-line report and abort when p cannot be ours.
static bump_header_t bump_check(void *p, const char *func)
{
    bump_header_t *h = bump_header_of(p);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&bump_src, h))
        mallet__fatal("teach-bump", func, "invalid pointer", p);
    bump_header_t v = bump_read(h);
    if (v.magic != BUMP_MAGIC && v.magic != BUMP_FREED)
        mallet__fatal("teach-bump", func, "invalid pointer", p);
    return v;
}

static void bump_free(void *p)
{
    if (p == NULL)
        return;
    bump_header_t v = bump_check(p, "free");
    // Nothing to give back: the memory stays where it is, forever. Only the
    // accounting and the checkers hear about the free. The mark keeps a
    // second free out of the accounting, and tells reset which blocks the
    // checkers already know are gone; the checkers hear of every free, so
    // under memcheck a double free is reported.
    if (v.magic == BUMP_MAGIC) {
        bump_live -= v.size - HDR;
        bump_header_t *h = bump_header_of(p);
        v.magic = BUMP_FREED;
        MALLET_TRACK_MEM_UNDEFINED(h, HDR);
        *h = v;
        MALLET_TRACK_MEM_NOACCESS(h, HDR);
    }
    MALLET_TRACK_FREE(p, v.size - HDR);
}

static void *bump_realloc(void *p, size_t n)
{
    if (p == NULL)
        return bump_malloc(n);
    if (n == 0) {
        bump_free(p);
        return NULL;
    }
    bump_header_t v = bump_check(p, "realloc");
    bump_header_t *h = bump_header_of(p);
    size_t usable = v.size - HDR;
    if (n <= usable) {
        bump_write(h, v.size, n);
        MALLET_TRACK_RESIZE(p, v.request, n, usable);
        return p;
    }
    size_t size = bump_block_size(n);
    if (size == 0) {
        errno = ENOMEM;
        return NULL;
    }
    // The last block can grow where it is: move the break by the difference.
    if ((char *)h + v.size == source_top(&bump_src)) {
        if (source_grow(&bump_src, size - v.size) == NULL)
            return NULL;
        bump_write(h, size, n);
        bump_live += size - v.size;
        MALLET_TRACK_RESIZE(p, v.request, n, size - HDR);
        return p;
    }
    void *q = bump_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, v.request);            // the bytes past the request mean nothing
    bump_free(p);
    return q;
}

static size_t bump_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    return bump_check(p, "malloc_usable_size").size - HDR;
}

// Every block counts as used: bump never learns which ones were freed.
static void bump_walk(teach_visit_fn visit, void *ctx)
{
    char *at = source_base(&bump_src), *top = source_top(&bump_src);
    while (at && at < top) {
        size_t size = bump_read((bump_header_t *)at).size;
        visit(ctx, at, size, true);
        at += size;
    }
}

static void bump_reset(void)
{
    // The checkers hear that every block not yet freed is gone.
    char *at = source_base(&bump_src), *top = source_top(&bump_src);
    while (MALLET_TRACK_ENABLED && at && at < top) {
        bump_header_t v = bump_read((bump_header_t *)at);
        if (v.magic == BUMP_MAGIC)
            MALLET_TRACK_FREE(at + HDR, v.size - HDR);
        at += v.size;
    }
    source_reset(&bump_src);
    bump_live = 0;
}

static size_t bump_footprint(void)
{
    return source_footprint(&bump_src);
}

static size_t bump_live_bytes(void)
{
    return bump_live;
}

const teach_allocator_t teach_bump = {
    .name = "bump",
    .design = "bump pointer on the break; free does nothing",
    .malloc = bump_malloc,
    .free = bump_free,
    .realloc = bump_realloc,
    .memalign = NULL,
    .usable_size = bump_usable_size,
    .walk = bump_walk,
    .reset = bump_reset,
    .footprint = bump_footprint,
    .live_bytes = bump_live_bytes,
};
