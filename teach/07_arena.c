// SPDX-License-Identifier: MIT
//
// 07_arena.c -- an arena (region): allocate by bumping, free everything at once.
//
// What it is. Like bump (01_bump.c), malloc moves a pointer up and free does
// nothing. Two things differ, and they are why real programs use arenas:
//   - the break grows in chunks of ARENA_CHUNK, so almost every malloc is a
//     compare and an add, with no call to the OS;
//   - reset() throws every block away in one step and the next malloc starts
//     again at the bottom, on the same memory. A server that allocates while
//     handling one request and resets when it is done never fragments and
//     never pays for free.
//
//     base                       cur (next block)       break
//     [hdr|blk][hdr|blk][hdr|blk][ . . . unused . . . ]|
//
// memalign is easy here: skip ahead to the alignment, and give the skipped
// bytes a header of their own (a pad block) so walk can step over them.
//
// Invariants. Blocks tile [base, cur) with no gaps; base <= cur <= break;
// every header holds one of the ARENA_* marks and its block size.
//
// Known weakness: nothing is reused before reset. One long-lived block pins
// the whole arena, and a program that is not request-shaped (frees as it
// goes, never resets) grows like bump (tests/test_teach_weaknesses.c:
// arena_without_reset_grows_like_bump).
// Because free keeps no record, a double free or a free of a stray pointer
// cannot be told and is ignored; the one mark free leaves in a header is for
// the memory checkers, so that reset does not report a block freed twice.
#include "source.h"

#define ARENA_USED  0xa7e0               // a block handed out
#define ARENA_FREED 0xa7ef               // a block free() was called on (checkers only)
#define ARENA_PAD   0xa7ad               // bytes skipped to align the next block
#define ARENA_CHUNK ((size_t)64 << 10)   // the break grows at least this much at a time

typedef struct arena_header {
    uint64_t size : 48;          // bytes in the block, header included
    uint64_t mark : 16;          // ARENA_USED, ARENA_FREED or ARENA_PAD
    uint64_t request;            // bytes asked for; the checkers guard the rest
} arena_header_t;

#define HDR sizeof(arena_header_t)   // 16: keeps payloads 16-byte aligned

static teach_source_t arena_src;     // the break
static char *arena_cur;              // where the next block starts (NULL: nothing yet)
static size_t arena_live;            // usable bytes handed out since the last reset

static arena_header_t arena_read(arena_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    arena_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void arena_write(arena_header_t *h, size_t size, unsigned mark, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (arena_header_t){ .size = size, .mark = mark, .request = request };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

// Make sure `n` bytes are free at arena_cur, growing the break by whole
// chunks. false + ENOMEM when it cannot grow.
static bool arena_room(size_t n)
{
    char *top = source_top(&arena_src);
    if (arena_cur && (size_t)(top - arena_cur) >= n)
        return true;
    size_t have = arena_cur ? (size_t)(top - arena_cur) : 0;
    size_t grow = source_round(n - have, ARENA_CHUNK);
    if (grow == 0) {
        errno = ENOMEM;
        return false;
    }
    char *p = source_grow(&arena_src, grow);
    if (p == NULL)
        return false;
    if (arena_cur == NULL)
        arena_cur = p;
    return true;
}

// A block for n bytes whose payload is aligned to `align` (16 or more).
static void *arena_alloc(size_t align, size_t n)
{
    size_t payload = source_round(n ? n : 1, TEACH_ALIGN);
    if (payload == 0 || payload > SIZE_MAX / 4 || align > SIZE_MAX / 4) {
        errno = ENOMEM;
        return NULL;
    }
    size_t size = payload + HDR;
    // Bytes to skip so the payload lands on the alignment; a skip must hold
    // a pad header, so it is 0 or at least 16 (it is a multiple of 16).
    size_t pad = 0;
    if (arena_cur) {
        uintptr_t at = (uintptr_t)arena_cur + HDR;
        pad = (size_t)(-at & (align - 1));
    }
    if (!arena_room(pad + size + align - TEACH_ALIGN))
        return NULL;                      // errno ENOMEM from the break
    pad = (size_t)(-((uintptr_t)arena_cur + HDR) & (align - 1));
    if (pad) {
        arena_write((arena_header_t *)arena_cur, pad, ARENA_PAD, 0);
        arena_cur += pad;
    }
    arena_header_t *h = (arena_header_t *)arena_cur;
    arena_write(h, size, ARENA_USED, n);
    arena_cur += size;
    arena_live += payload;
    void *p = (char *)h + HDR;
    MALLET_TRACK_MALLOC(p, n, payload, false);
    return p;
}

static void *arena_malloc(size_t n)
{
    return arena_alloc(TEACH_ALIGN, n);
}

static void *arena_memalign(size_t align, size_t n)
{
    if (align < TEACH_ALIGN)
        align = TEACH_ALIGN;
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    return arena_alloc(align, n);
}

// The header of a block we handed out, or NULL when p does not look like one.
static arena_header_t *arena_header_of(void *p)
{
    arena_header_t *h = (arena_header_t *)((char *)p - HDR);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&arena_src, h) ||
        (char *)h >= arena_cur)
        return NULL;
    unsigned mark = arena_read(h).mark;
    return mark == ARENA_USED || mark == ARENA_FREED ? h : NULL;
}

static void arena_free(void *p)
{
    // Nothing to do: the memory comes back at reset. Only the checkers hear
    // of the free, so a use after it is reported.
    arena_header_t *h = p ? arena_header_of(p) : NULL;
    if (h == NULL)
        return;
    arena_header_t v = arena_read(h);
    arena_write(h, v.size, ARENA_FREED, v.request);
    MALLET_TRACK_FREE(p, v.size - HDR);
}

static size_t arena_usable_size(void *p)
{
    arena_header_t *h = p ? arena_header_of(p) : NULL;
    if (h == NULL) {
        if (p)
            mallet__fatal("teach-arena", "malloc_usable_size", "invalid pointer", p);
        return 0;
    }
    return arena_read(h).size - HDR;
}

static void *arena_realloc(void *p, size_t n)
{
    if (p == NULL)
        return arena_malloc(n);
    if (n == 0) {
        arena_free(p);
        return NULL;
    }
    arena_header_t *h = arena_header_of(p);
    if (h == NULL)
        mallet__fatal("teach-arena", "realloc", "invalid pointer", p);
    arena_header_t v = arena_read(h);
    size_t usable = v.size - HDR;
    size_t payload = source_round(n, TEACH_ALIGN);
    if (n <= usable || ((char *)h + v.size == arena_cur && payload && payload <= SIZE_MAX / 4 &&
                        arena_room(payload - usable))) {
        // It fits, or it is the last block and can grow where it is.
        if (n > usable) {
            arena_cur += payload - usable;
            arena_live += payload - usable;
            usable = payload;
        }
        arena_write(h, usable + HDR, ARENA_USED, n);
        MALLET_TRACK_RESIZE(p, v.request, n, usable);
        return p;
    }
    void *q = arena_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, v.request);             // the bytes past the request mean nothing
    arena_free(p);
    return q;
}

// Every block counts as used until reset: free keeps no record.
static void arena_walk(teach_visit_fn visit, void *ctx)
{
    char *at = source_base(&arena_src);
    while (at && at < arena_cur) {
        arena_header_t v = arena_read((arena_header_t *)at);
        visit(ctx, at, v.size, v.mark != ARENA_PAD);
        at += v.size;
    }
    char *top = source_top(&arena_src);
    if (arena_cur && arena_cur < top)
        visit(ctx, arena_cur, (size_t)(top - arena_cur), false);
}

static void arena_reset(void)
{
    // The checkers hear that every block still in use is gone.
    char *at = source_base(&arena_src);
    while (at && at < arena_cur) {
        arena_header_t v = arena_read((arena_header_t *)at);
        if (v.mark == ARENA_USED)
            MALLET_TRACK_FREE(at + HDR, v.size - HDR);
        at += v.size;
    }
    source_reset(&arena_src);
    arena_cur = NULL;
    arena_live = 0;
}

static size_t arena_footprint(void)
{
    return source_footprint(&arena_src);
}

static size_t arena_live_bytes(void)
{
    return arena_live;
}

const teach_allocator_t teach_arena = {
    .name = "arena",
    .design = "bump allocation in chunks; free does nothing; reset releases everything",
    .malloc = arena_malloc,
    .free = arena_free,
    .realloc = arena_realloc,
    .memalign = arena_memalign,
    .usable_size = arena_usable_size,
    .walk = arena_walk,
    .reset = arena_reset,
    .footprint = arena_footprint,
    .live_bytes = arena_live_bytes,
};
