// SPDX-License-Identifier: MIT
//
// 06_buddy.c -- the binary buddy system.
//
// What it changes from the free-list designs: every block is a power of two,
// 2^k bytes at an offset (from the heap's base) that is a multiple of 2^k.
// Then each block has exactly one "buddy", the other half of the block of
// twice its size that contains it, and its offset is one XOR away:
//
//     buddy(off, k) = off ^ 2^k
//
//     order 12 [                      4096                       ]
//     order 11 [          2048          ][          2048          ]
//     order 10 [   1024   ][   1024   ] ...     buddies: 0 <-> 1024
//
// malloc rounds the block (request + 16-byte header) up to 2^k, takes a free
// block of the smallest order >= k from one list per order, and splits it in
// halves, putting each unused upper half on its own list, until it is 2^k.
// free does the reverse: while the buddy is free and of the same order, take
// it off its list and merge; both steps are O(log heap). No footers, no
// search. The heap itself is one block of 2^H bytes; to grow it, the break
// doubles and the new upper half is a free block of order H. Requests of
// TEACH_MMAP_THRESHOLD and more get a mapping of their own (teach/source.h).
//
// Invariants. Blocks tile [base, base + 2^H); a block of order k sits at an
// offset that is a multiple of 2^k; a block is on list k exactly when it is
// free and of order k; two free buddies of the same order never coexist
// (they would have merged).
//
// Known weakness: internal fragmentation. Rounding to a power of two wastes
// up to half of every block: malloc(1025) takes 2048 bytes, and a request
// just above a power of two minus the header nearly doubles
// (tests/test_teach_weaknesses.c: buddy_rounds_to_the_next_power_of_two).
// The heap also doubles when it
// grows, so its footprint can be twice what the program uses. And two free
// neighbours that are not buddies never merge.
#include "source.h"

#define BD_MAGIC     0xb0dd1e5u      // header of a block in use
#define BD_FREED     0xf4eeb0ddu     // header of a free block
#define BD_MIN_ORDER 5               // 32 bytes: a header and room for two links
#define BD_START     12              // a new heap starts with 4 KiB
#define BD_ORDERS    48              // orders 0..47: more than any address space

typedef struct bd_header {
    uint32_t magic;                  // BD_MAGIC in use, BD_FREED free: tells stray pointers
    uint8_t order;                   // the block is 2^order bytes, header included
    uint8_t free;                    // 1 while on the free list of its order
    uint16_t spare;                  // keeps `request` 8-byte aligned; always 0
    uint64_t request;                // in use: bytes asked for; the checkers guard the rest
} bd_header_t;

typedef struct bd_links {
    struct bd_header *next;          // next free block of this order (NULL ends)
    struct bd_header *prev;          // previous one (NULL: first), so a buddy leaves in O(1)
} bd_links_t;

#define HDR sizeof(bd_header_t)      // 16: keeps payloads 16-byte aligned

static teach_source_t bd_src;        // the break and the large blocks
static char *bd_base;                // offset 0 of the heap (NULL: no heap yet)
static unsigned bd_heap_order;       // the heap is 2^bd_heap_order bytes (H above)
static bd_header_t *bd_list[BD_ORDERS];  // per order: its free blocks
static size_t bd_live;               // usable bytes of the blocks in use

// --- tags and links, with the checkers told -------------------------------------

static bd_header_t bd_read(bd_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    bd_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void bd_write(bd_header_t *h, unsigned order, bool free, uint32_t magic, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (bd_header_t){ magic, (uint8_t)order, free, 0, request };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

static bd_links_t *bd_links_of(bd_header_t *h)
{
    return (bd_links_t *)((char *)h + HDR);
}

static bd_links_t bd_get_links(bd_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(bd_links_of(h), sizeof(bd_links_t));
    bd_links_t l = *bd_links_of(h);
    MALLET_TRACK_MEM_NOACCESS(bd_links_of(h), sizeof(bd_links_t));
    return l;
}

static void bd_set_links(bd_header_t *h, bd_header_t *next, bd_header_t *prev)
{
    MALLET_TRACK_MEM_UNDEFINED(bd_links_of(h), sizeof(bd_links_t));
    *bd_links_of(h) = (bd_links_t){ next, prev };
    MALLET_TRACK_MEM_NOACCESS(bd_links_of(h), sizeof(bd_links_t));
}

// --- the free lists, one per order ----------------------------------------------

// Make the block at h a free block of order k, first on list k.
static void bd_push(bd_header_t *h, unsigned k)
{
    bd_write(h, k, true, BD_FREED, 0);
    bd_set_links(h, bd_list[k], NULL);
    if (bd_list[k])
        bd_set_links(bd_list[k], bd_get_links(bd_list[k]).next, h);
    bd_list[k] = h;
}

static void bd_unlink(bd_header_t *h, unsigned k)
{
    bd_links_t l = bd_get_links(h);
    if (l.prev)
        bd_set_links(l.prev, l.next, bd_get_links(l.prev).prev);
    else
        bd_list[k] = l.next;
    if (l.next)
        bd_set_links(l.next, bd_get_links(l.next).next, l.prev);
}

// Double the heap (or start it with 2^k bytes, at least 4 KiB): the new
// upper half is one free block whose buddy is the whole old heap.
static bool bd_grow(unsigned k)
{
    if (bd_base == NULL) {
        unsigned order = k > BD_START ? k : BD_START;
        char *p = source_grow(&bd_src, (size_t)1 << order);
        if (p == NULL)
            return false;
        bd_base = p;
        bd_heap_order = order;
        bd_push((bd_header_t *)p, order);
        return true;
    }
    if (bd_heap_order + 1 >= BD_ORDERS) {
        errno = ENOMEM;
        return false;
    }
    size_t half = (size_t)1 << bd_heap_order;
    char *p = source_grow(&bd_src, half);
    if (p == NULL)
        return false;
    bd_push((bd_header_t *)p, bd_heap_order);
    bd_heap_order++;
    return true;
}

// --- malloc and free ------------------------------------------------------------

// The order of the block for a request below TEACH_MMAP_THRESHOLD.
static unsigned bd_order_of(size_t n)
{
    unsigned k = BD_MIN_ORDER;
    while (((size_t)1 << k) < n + HDR)
        k++;
    return k;
}

static void *bd_malloc(size_t n)
{
    if (n >= TEACH_MMAP_THRESHOLD) {
        size_t usable;
        void *p = source_large_malloc(&bd_src, n, &usable);
        if (p)
            bd_live += usable;
        return p;
    }
    unsigned k = bd_order_of(n), j;
    for (;;) {
        for (j = k; j < BD_ORDERS && bd_list[j] == NULL; j++)
            continue;
        if (j < BD_ORDERS)
            break;
        if (!bd_grow(k))
            return NULL;                      // errno ENOMEM from the break
    }
    bd_header_t *h = bd_list[j];
    bd_unlink(h, j);
    while (j > k) {                           // split: the upper half goes free
        j--;
        bd_push((bd_header_t *)((char *)h + ((size_t)1 << j)), j);
    }
    bd_write(h, k, false, BD_MAGIC, n);
    size_t usable = ((size_t)1 << k) - HDR;
    bd_live += usable;
    void *p = (char *)h + HDR;
    MALLET_TRACK_MALLOC(p, n, usable, false);
    return p;
}

// The header of a block we handed out, or a one-line report and abort.
static bd_header_t bd_check(void *p, const char *func)
{
    bd_header_t *h = (bd_header_t *)((char *)p - HDR);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&bd_src, h) || (char *)h < bd_base)
        mallet__fatal("teach-buddy", func, "invalid pointer", p);
    bd_header_t v = bd_read(h);
    if (v.free || v.magic == BD_FREED)
        mallet__fatal("teach-buddy", func, "double free of", p);
    size_t off = (size_t)((char *)h - bd_base);
    if (v.magic != BD_MAGIC || v.order < BD_MIN_ORDER || v.order > bd_heap_order ||
        (off & (((size_t)1 << v.order) - 1)))
        mallet__fatal("teach-buddy", func, "invalid pointer", p);
    return v;
}

static void bd_free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    if (!source_in_brk(&bd_src, p)) {
        intptr_t i = source_large_find(&bd_src, p);
        if (i < 0)
            mallet__fatal("teach-buddy", "free", "invalid pointer", p);
        bd_live -= source_large_free(&bd_src, i);
        errno = saved;
        return;
    }
    bd_header_t v = bd_check(p, "free");
    unsigned k = v.order;
    bd_live -= ((size_t)1 << k) - HDR;
    MALLET_TRACK_FREE(p, ((size_t)1 << k) - HDR);
    size_t off = (size_t)((char *)p - HDR - bd_base);
    // Merge with the buddy while it is free and whole (same order).
    while (k < bd_heap_order) {
        bd_header_t *b = (bd_header_t *)(bd_base + (off ^ ((size_t)1 << k)));
        bd_header_t bv = bd_read(b);
        if (!bv.free || bv.order != k)
            break;
        bd_unlink(b, k);
        off &= ~((size_t)1 << k);             // the merged block starts at the lower buddy
        k++;
    }
    bd_push((bd_header_t *)(bd_base + off), k);
    errno = saved;
}

// Usable bytes of a block we handed out, large or not; *request receives
// the bytes asked for.
static size_t bd_usable(void *p, const char *func, size_t *request)
{
    if (!source_in_brk(&bd_src, p)) {
        intptr_t i = source_large_find(&bd_src, p);
        if (i < 0)
            mallet__fatal("teach-buddy", func, "invalid pointer", p);
        *request = bd_src.large[i].request;
        return bd_src.large[i].size;
    }
    bd_header_t v = bd_check(p, func);
    *request = v.request;
    return ((size_t)1 << v.order) - HDR;
}

static size_t bd_usable_size(void *p)
{
    size_t request;
    return p ? bd_usable(p, "malloc_usable_size", &request) : 0;
}

static void *bd_realloc(void *p, size_t n)
{
    if (p == NULL)
        return bd_malloc(n);
    if (n == 0) {
        bd_free(p);
        return NULL;
    }
    size_t request;
    size_t usable = bd_usable(p, "realloc", &request);
    bool in_brk = source_in_brk(&bd_src, p);
    if (!in_brk && n >= TEACH_MMAP_THRESHOLD) {
        // Large to large: let the kernel move the pages (mremap), no copy.
        intptr_t i = source_large_find(&bd_src, p);
        size_t now;
        void *q = source_large_realloc(&bd_src, i, n, &now);
        if (q)
            bd_live = bd_live - usable + now;
        return q;
    }
    // Stay when the new size needs a block of the same order.
    if (in_brk && n < TEACH_MMAP_THRESHOLD && bd_order_of(n) == bd_order_of(usable)) {
        bd_header_t *h = (bd_header_t *)((char *)p - HDR);
        bd_write(h, bd_read(h).order, false, BD_MAGIC, n);
        MALLET_TRACK_RESIZE(p, request, n, usable);
        return p;
    }
    void *q = bd_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, request < n ? request : n);   // the bytes past the request mean nothing
    bd_free(p);
    return q;
}

static void bd_walk(teach_visit_fn visit, void *ctx)
{
    if (bd_base) {
        char *end = bd_base + ((size_t)1 << bd_heap_order);
        for (char *at = bd_base; at < end; ) {
            bd_header_t v = bd_read((bd_header_t *)at);
            visit(ctx, at, (size_t)1 << v.order, !v.free);
            at += (size_t)1 << v.order;
        }
    }
    source_large_walk(&bd_src, visit, ctx);
}

static void bd_reset(void)
{
    if (MALLET_TRACK_ENABLED)
        bd_walk(source_forget_used, &bd_src);
    source_reset(&bd_src);
    memset(bd_list, 0, sizeof bd_list);
    bd_base = NULL;
    bd_heap_order = 0;
    bd_live = 0;
}

static size_t bd_footprint(void)
{
    return source_footprint(&bd_src);
}

static size_t bd_live_bytes(void)
{
    return bd_live;
}

const teach_allocator_t teach_buddy = {
    .name = "buddy",
    .design = "binary buddy system: power-of-two blocks split and merged by offset XOR",
    .malloc = bd_malloc,
    .free = bd_free,
    .realloc = bd_realloc,
    .memalign = NULL,
    .usable_size = bd_usable_size,
    .walk = bd_walk,
    .reset = bd_reset,
    .footprint = bd_footprint,
    .live_bytes = bd_live_bytes,
};
