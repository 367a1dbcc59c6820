// SPDX-License-Identifier: MIT
//
// 05_segregated.c -- a free list per size class in front of a coalescing heap.
//
// What it adds to coalesce (04_coalesce.c): small requests no longer search.
// Payloads of up to 4096 bytes are rounded up to a multiple of 16, which
// names one of 256 size classes, and each class keeps its own list of free
// blocks of exactly that size. malloc pops the first block of its class and
// free pushes it back: O(1), no search, no splitting, no merging. When a
// class runs dry, one block of the coalescing heap below -- a "run" -- is cut
// into a batch of blocks of that class. Bigger requests (and the runs) go
// through the boundary-tag heap of 04_coalesce.c, copied here so this file
// reads on its own; requests of TEACH_MMAP_THRESHOLD and more get a mapping.
//
//     heap:  [run of class 48 ..........][free][used 9000 B][run of class 16 ..]
//             |hdr|48|hdr|48|hdr|48|...              small blocks, each with a header
//
// Invariants. The heap keeps 04's invariants; a run is a used heap block
// with the RUN bit, tiled by small blocks of one class, each with the SMALL
// bit; a small block is on its class list exactly when its F bit is set.
//
// Known weakness: memory given to a class stays in that class. Small blocks
// never merge and runs never go back to the heap, so a program that first
// fills memory with 32-byte blocks, frees them, and then asks for 64-byte
// blocks grows the heap while megabytes sit free in the wrong class
// (tests/test_teach_weaknesses.c: segregated_keeps_memory_in_its_class).
// Rounding to 16 also wastes up to 15 bytes a block, plus a header.
#include "source.h"

#define SG_MAGIC  0xc0a1e5c0u        // header of a block in use
#define SG_FREED  0xf4eef4eeu        // header of a free block
#define SG_FREE   ((size_t)1)        // F bit: this block is free
#define SG_PFREE  ((size_t)2)        // P bit: the block before this one is free
#define SG_RUN    ((size_t)4)        // a heap block cut into small blocks of one class
#define SG_SMALL  ((size_t)8)        // a small block, inside a run
#define SG_FLAGS  ((size_t)15)       // the low bits of size that are not size

typedef struct sg_header {
    size_t size;                     // bytes in the block, header included; low bits F, P, RUN, SMALL
    uint32_t magic;                  // SG_MAGIC in use, SG_FREED free: tells stray pointers
    uint32_t request;                // in use: bytes asked for; the checkers guard the rest
} sg_header_t;

typedef struct sg_links {
    struct sg_header *next;          // next free block (NULL ends the list)
    struct sg_header *prev;          // previous free block (NULL: first; unused in class lists)
} sg_links_t;

#define HDR     sizeof(sg_header_t)  // 16: keeps payloads 16-byte aligned
#define SG_MIN  ((size_t)48)         // header + links + footer, rounded to 16
#define SG_SMALL_MAX  ((size_t)4096) // largest payload served by a size class
#define SG_CLASSES    (SG_SMALL_MAX / TEACH_ALIGN)   // 256 classes: payloads 16, 32, ... 4096

static teach_source_t sg_src;        // the break and the large blocks
static sg_header_t *sg_class[SG_CLASSES];  // per class: its free small blocks, last freed first
static sg_header_t *sg_list;         // the heap's free list, most recently freed first
static bool sg_end_pfree;            // the P bit of the (absent) block at the break
static size_t sg_live;               // usable bytes of the blocks in use

// --- reading and writing the tags, with the checkers told ----------------------

static sg_header_t sg_read(sg_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    sg_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void sg_write(sg_header_t *h, size_t size_flags, uint32_t magic, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (sg_header_t){ size_flags, magic, (uint32_t)request };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

static sg_links_t *sg_links_of(sg_header_t *h)
{
    return (sg_links_t *)((char *)h + HDR);
}

static sg_links_t sg_get_links(sg_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(sg_links_of(h), sizeof(sg_links_t));
    sg_links_t l = *sg_links_of(h);
    MALLET_TRACK_MEM_NOACCESS(sg_links_of(h), sizeof(sg_links_t));
    return l;
}

static void sg_set_links(sg_header_t *h, sg_header_t *next, sg_header_t *prev)
{
    MALLET_TRACK_MEM_UNDEFINED(sg_links_of(h), sizeof(sg_links_t));
    *sg_links_of(h) = (sg_links_t){ next, prev };
    MALLET_TRACK_MEM_NOACCESS(sg_links_of(h), sizeof(sg_links_t));
}

// Mark free block h of `size` bytes: header, and the footer in its last word.
static void sg_write_free(sg_header_t *h, size_t size)
{
    sg_write(h, size | SG_FREE, SG_FREED, 0);
    size_t *foot = (size_t *)((char *)h + size) - 1;
    MALLET_TRACK_MEM_UNDEFINED(foot, sizeof *foot);
    *foot = size;
    MALLET_TRACK_MEM_NOACCESS(foot, sizeof *foot);
}

// The size of the free block that ends just before h, from its footer.
static size_t sg_prev_size(sg_header_t *h)
{
    size_t *foot = (size_t *)h - 1;
    MALLET_TRACK_MEM_DEFINED(foot, sizeof *foot);
    size_t size = *foot;
    MALLET_TRACK_MEM_NOACCESS(foot, sizeof *foot);
    return size;
}

// Set or clear the P bit of the block at h (which may be the break itself).
static void sg_set_pfree(sg_header_t *h, bool pfree)
{
    if ((char *)h == source_top(&sg_src)) {
        sg_end_pfree = pfree;
        return;
    }
    sg_header_t v = sg_read(h);
    sg_write(h, pfree ? v.size | SG_PFREE : v.size & ~SG_PFREE, v.magic, v.request);
}

// --- the heap: first fit with boundary tags, as in 04_coalesce.c --------------------------------------------------------------

// Push free block h on the front of the list. Most recently freed first:
// a request like the one just freed finds it at once (appending instead
// makes first fit walk past every old leftover; measured 12x slower on
// random small malloc/free).
static void sg_push(sg_header_t *h)
{
    sg_set_links(h, sg_list, NULL);
    if (sg_list)
        sg_set_links(sg_list, sg_get_links(sg_list).next, h);
    sg_list = h;
}

static void sg_unlink(sg_header_t *h)
{
    sg_links_t l = sg_get_links(h);
    if (l.prev)
        sg_set_links(l.prev, l.next, sg_get_links(l.prev).prev);
    else
        sg_list = l.next;
    if (l.next)
        sg_set_links(l.next, sg_get_links(l.next).next, l.prev);
}

// Make the `size` bytes at h (not on the list; h's header holds its P bit)
// a free block, merged with free neighbours on both sides. Returns the block
// that holds them now.
static sg_header_t *sg_release(sg_header_t *h, size_t size)
{
    if (sg_read(h).size & SG_PFREE) {             // merge left, via the footer
        size_t left = sg_prev_size(h);
        h = (sg_header_t *)((char *)h - left);
        sg_unlink(h);
        size += left;
    }
    sg_header_t *next = (sg_header_t *)((char *)h + size);
    if ((char *)next < source_top(&sg_src)) {     // merge right
        sg_header_t nv = sg_read(next);
        if (nv.size & SG_FREE) {
            sg_unlink(next);
            size += nv.size & ~SG_FLAGS;
        }
    }
    sg_write_free(h, size);
    sg_push(h);
    sg_set_pfree((sg_header_t *)((char *)h + size), true);
    return h;
}

// --- malloc and free ----------------------------------------------------------

// Block size for a request below TEACH_MMAP_THRESHOLD (so no overflow):
// header + payload rounded up to 16, at least SG_MIN.

// Block size for a heap request below TEACH_MMAP_THRESHOLD (so no
// overflow): header + payload rounded up to 16, at least SG_MIN.
static size_t sg_block_size(size_t n)
{
    size_t size = source_round(n, TEACH_ALIGN) + HDR;
    return size < SG_MIN ? SG_MIN : size;
}

// Take `size` bytes from free heap block h (of `have` bytes, on the list):
// the tail end when the rest can stand alone, else all of it. Returns the
// used block, marked with `flags` (0 or SG_RUN); *got receives its size.
static sg_header_t *sg_take(sg_header_t *h, size_t have, size_t size, size_t flags,
                            size_t request, size_t *got)
{
    sg_header_t *b = h;
    size_t pbit = 0;                  // a free block's P bit is always 0
    if (have - size >= SG_MIN) {
        sg_write_free(h, have - size);  // the front stays on the list, smaller
        b = (sg_header_t *)((char *)h + have - size);
        pbit = SG_PFREE;
    } else {
        sg_unlink(h);
        size = have;
    }
    sg_write(b, size | pbit | flags, SG_MAGIC, request);
    sg_set_pfree((sg_header_t *)((char *)b + size), false);
    *got = size;
    return b;
}

// A used heap block of at least `size` bytes: first fit, else grow the
// break by the shortfall. NULL + ENOMEM when the break cannot grow.
static sg_header_t *sg_heap_alloc(size_t size, size_t flags, size_t request, size_t *got)
{
    for (sg_header_t *h = sg_list; h; h = sg_get_links(h).next) {
        size_t have = sg_read(h).size & ~SG_FLAGS;
        if (have >= size)
            return sg_take(h, have, size, flags, request, got);
    }
    size_t grow = size;
    if (sg_end_pfree)
        grow -= sg_prev_size((sg_header_t *)source_top(&sg_src));
    sg_header_t *h = source_grow(&sg_src, grow);
    if (h == NULL)
        return NULL;
    sg_write(h, grow | (sg_end_pfree ? SG_PFREE : 0), SG_FREED, 0);
    sg_end_pfree = false;
    h = sg_release(h, grow);
    return sg_take(h, sg_read(h).size & ~SG_FLAGS, size, flags, request, got);
}

// --- the size classes ----------------------------------------------------------

// The class of a payload of n bytes (n <= SG_SMALL_MAX): 0 for 1..16, ...
static size_t sg_class_of(size_t n)
{
    return n ? (n - 1) / TEACH_ALIGN : 0;
}

static sg_header_t *sg_small_next(sg_header_t *h)
{
    return sg_get_links(h).next;
}

// Cut a new run into free blocks of class c and put them on its list.
// A run holds about 4 KiB (at least 2 blocks): enough that a refill is rare,
// small enough that 256 classes do not each sit on much unused memory.
static bool sg_refill(size_t c)
{
    size_t block = (c + 1) * TEACH_ALIGN + HDR;
    size_t count = (4 << 10) / block;
    if (count < 2)
        count = 2;
    size_t got;
    sg_header_t *run = sg_heap_alloc(HDR + count * block, SG_RUN, 0, &got);
    if (run == NULL)
        return false;
    // Blocks tile the run; a run cut from a bigger free block may have room
    // for a few more, which the last block absorbs so the tiling holds.
    char *at = (char *)run + HDR, *end = (char *)run + got;
    for (size_t i = 0; i < count; i++, at += block) {
        sg_header_t *b = (sg_header_t *)at;
        size_t size = i + 1 == count ? (size_t)(end - at) : block;
        sg_write(b, size | SG_SMALL | SG_FREE, SG_FREED, 0);
        sg_set_links(b, sg_class[c], NULL);
        sg_class[c] = b;
    }
    return true;
}

static void *sg_malloc(size_t n)
{
    if (n >= TEACH_MMAP_THRESHOLD) {
        size_t usable;
        void *p = source_large_malloc(&sg_src, n, &usable);
        if (p)
            sg_live += usable;
        return p;
    }
    sg_header_t *b;
    size_t size;
    if (n <= SG_SMALL_MAX) {
        size_t c = sg_class_of(n);
        if (sg_class[c] == NULL && !sg_refill(c))
            return NULL;                      // errno ENOMEM from the break
        b = sg_class[c];
        sg_class[c] = sg_small_next(b);
        size = sg_read(b).size & ~SG_FLAGS;
        sg_write(b, size | SG_SMALL, SG_MAGIC, n);
    } else {
        b = sg_heap_alloc(sg_block_size(n), 0, n, &size);
        if (b == NULL)
            return NULL;                      // errno ENOMEM from the break
    }
    sg_live += size - HDR;
    void *p = (char *)b + HDR;
    MALLET_TRACK_MALLOC(p, n, size - HDR, false);
    return p;
}

// The header of a block we handed out, or a one-line report and abort.
static sg_header_t sg_check(void *p, const char *func)
{
    sg_header_t *h = (sg_header_t *)((char *)p - HDR);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&sg_src, h))
        mallet__fatal("teach-segregated", func, "invalid pointer", p);
    sg_header_t v = sg_read(h);
    if ((v.size & SG_FREE) || v.magic == SG_FREED)
        mallet__fatal("teach-segregated", func, "double free of", p);
    if (v.magic != SG_MAGIC || (v.size & SG_RUN))
        mallet__fatal("teach-segregated", func, "invalid pointer", p);
    return v;
}

static void sg_free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    if (!source_in_brk(&sg_src, p)) {
        intptr_t i = source_large_find(&sg_src, p);
        if (i < 0)
            mallet__fatal("teach-segregated", "free", "invalid pointer", p);
        sg_live -= source_large_free(&sg_src, i);
        errno = saved;
        return;
    }
    sg_header_t v = sg_check(p, "free");
    size_t size = v.size & ~SG_FLAGS;
    sg_live -= size - HDR;
    MALLET_TRACK_FREE(p, size - HDR);
    sg_header_t *h = (sg_header_t *)((char *)p - HDR);
    if (v.size & SG_SMALL) {                  // back on its class list: O(1)
        // A block's class follows from its size; only the last block of a
        // run, which took the run's spare room, can be above the classes.
        size_t c = sg_class_of(size - HDR);
        if (c >= SG_CLASSES)
            c = SG_CLASSES - 1;
        sg_write(h, v.size | SG_FREE, SG_FREED, 0);
        sg_set_links(h, sg_class[c], NULL);
        sg_class[c] = h;
    } else {
        // Mark it freed first: if it merges into its left neighbour this
        // header is left inside that block, still saying "freed".
        sg_write(h, v.size | SG_FREE, SG_FREED, 0);
        sg_release(h, size);
    }
    errno = saved;
}

// Usable bytes of a block we handed out, large or not; *request receives
// the bytes asked for.
static size_t sg_usable(void *p, const char *func, size_t *request)
{
    if (!source_in_brk(&sg_src, p)) {
        intptr_t i = source_large_find(&sg_src, p);
        if (i < 0)
            mallet__fatal("teach-segregated", func, "invalid pointer", p);
        *request = sg_src.large[i].request;
        return sg_src.large[i].size;
    }
    sg_header_t v = sg_check(p, func);
    *request = v.request;
    return (v.size & ~SG_FLAGS) - HDR;
}

static size_t sg_usable_size(void *p)
{
    size_t request;
    return p ? sg_usable(p, "malloc_usable_size", &request) : 0;
}

static void *sg_realloc(void *p, size_t n)
{
    if (p == NULL)
        return sg_malloc(n);
    if (n == 0) {
        sg_free(p);
        return NULL;
    }
    size_t request;
    size_t usable = sg_usable(p, "realloc", &request);
    bool in_brk = source_in_brk(&sg_src, p);
    if (!in_brk && n >= TEACH_MMAP_THRESHOLD) {
        // Large to large: let the kernel move the pages (mremap), no copy.
        intptr_t i = source_large_find(&sg_src, p);
        size_t now;
        void *q = source_large_realloc(&sg_src, i, n, &now);
        if (q)
            sg_live = sg_live - usable + now;
        return q;
    }
    // Stay when it fits and the size still belongs where the block is (a
    // small block for a small size, a heap block for a heap size).
    if (in_brk && n <= usable && (n <= SG_SMALL_MAX) == (usable <= SG_SMALL_MAX)) {
        sg_header_t *h = (sg_header_t *)((char *)p - HDR);
        sg_header_t v = sg_read(h);
        sg_write(h, v.size, SG_MAGIC, n);
        MALLET_TRACK_RESIZE(p, request, n, usable);
        return p;
    }
    void *q = sg_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, request < n ? request : n);   // the bytes past the request mean nothing
    sg_free(p);
    return q;
}

static void sg_walk(teach_visit_fn visit, void *ctx)
{
    char *at = source_base(&sg_src), *top = source_top(&sg_src);
    while (at && at < top) {
        size_t size = sg_read((sg_header_t *)at).size;
        char *end = at + (size & ~SG_FLAGS);
        if (size & SG_RUN) {                  // a run: show its small blocks
            for (char *b = at + HDR; b < end; ) {
                size_t bs = sg_read((sg_header_t *)b).size;
                visit(ctx, b, bs & ~SG_FLAGS, !(bs & SG_FREE));
                b += bs & ~SG_FLAGS;
            }
        } else {
            visit(ctx, at, size & ~SG_FLAGS, !(size & SG_FREE));
        }
        at = end;
    }
    source_large_walk(&sg_src, visit, ctx);
}

static void sg_reset(void)
{
    if (MALLET_TRACK_ENABLED)
        sg_walk(source_forget_used, &sg_src);
    source_reset(&sg_src);
    memset(sg_class, 0, sizeof sg_class);
    sg_list = NULL;
    sg_end_pfree = false;
    sg_live = 0;
}

static size_t sg_footprint(void)
{
    return source_footprint(&sg_src);
}

static size_t sg_live_bytes(void)
{
    return sg_live;
}

const teach_allocator_t teach_segregated = {
    .name = "segregated",
    .design = "a free list per size class (16..4096) over a coalescing heap",
    .malloc = sg_malloc,
    .free = sg_free,
    .realloc = sg_realloc,
    .memalign = NULL,
    .usable_size = sg_usable_size,
    .walk = sg_walk,
    .reset = sg_reset,
    .footprint = sg_footprint,
    .live_bytes = sg_live_bytes,
};
