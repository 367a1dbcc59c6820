// SPDX-License-Identifier: MIT
//
// 04_coalesce.c -- splitting plus coalescing with boundary tags.
//
// What it adds to split (03_split.c): when a block is freed it merges with
// a free neighbour on either side, so free memory is always in the largest
// pieces it can be. Finding the right neighbour is easy (h + size); finding
// the left one in O(1) needs a boundary tag -- a copy of the size at the
// *end* of every free block (its footer) -- and one bit in each header that
// says whether the block before it is free (P), so used blocks pay no footer.
//
//     used block                       free block
//     [size|P|F magic request][payload] [size|P|F FREED][next|prev ... size]
//                                                        links in the payload  footer
//
// The free list is doubly linked (links in the free payload), so a neighbour
// leaves it in O(1) when it is merged: free is O(1) in all. malloc is first
// fit over that list, cutting the request from the tail end of the block it
// finds (the rest keeps its place on the list). The break grows by the
// shortfall only: new memory merges with a free block at the end of the heap.
//
// Invariants. Blocks tile [base, break); sizes are multiples of 16, at least
// CO_MIN; no two free blocks are neighbours (so a free block's P bit is 0);
// a block's P bit says whether the block before it is free; every free block
// is on the list exactly once and ends with a footer equal to its size.
//
// Known weakness: malloc is still a first-fit walk of one list, O(free
// blocks), and small and large blocks share it; with many small free blocks
// scattered through the heap every request pays for the walk
// (bench/teach_speed: segregated is several times faster on random small
// malloc/free; speed is measured there, not in tests). Coalescing
// also cannot undo fragmentation by blocks that stay in use: a heap of
// alternate live and free blocks stays in pieces.
#include "source.h"

#define CO_MAGIC  0xc0a1e5c0u        // header of a block in use
#define CO_FREED  0xf4eef4eeu        // header of a free block
#define CO_FREE   ((size_t)1)        // F bit: this block is free
#define CO_PFREE  ((size_t)2)        // P bit: the block before this one is free
#define CO_FLAGS  ((size_t)15)       // the low bits of size that are not size

typedef struct co_header {
    size_t size;                     // bytes in the block, header included; low bits F and P
    uint32_t magic;                  // CO_MAGIC in use, CO_FREED free: tells stray pointers
    uint32_t request;                // in use: bytes asked for; the checkers guard the rest
} co_header_t;

typedef struct co_links {
    struct co_header *next;          // next free block (NULL ends the list)
    struct co_header *prev;          // previous free block (NULL: first)
} co_links_t;

#define HDR     sizeof(co_header_t)  // 16: keeps payloads 16-byte aligned
#define CO_MIN  ((size_t)48)         // header + links + footer, rounded to 16

static teach_source_t co_src;        // the break and the large blocks
static co_header_t *co_list;         // the free list, most recently freed first
static bool co_end_pfree;            // the P bit of the (absent) block at the break
static size_t co_live;               // usable bytes of the blocks in use

// --- reading and writing the tags, with the checkers told ----------------------

static co_header_t co_read(co_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(h, HDR);
    co_header_t v = *h;
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
    return v;
}

static void co_write(co_header_t *h, size_t size_flags, uint32_t magic, size_t request)
{
    MALLET_TRACK_MEM_UNDEFINED(h, HDR);
    *h = (co_header_t){ size_flags, magic, (uint32_t)request };
    MALLET_TRACK_MEM_NOACCESS(h, HDR);
}

static co_links_t *co_links_of(co_header_t *h)
{
    return (co_links_t *)((char *)h + HDR);
}

static co_links_t co_get_links(co_header_t *h)
{
    MALLET_TRACK_MEM_DEFINED(co_links_of(h), sizeof(co_links_t));
    co_links_t l = *co_links_of(h);
    MALLET_TRACK_MEM_NOACCESS(co_links_of(h), sizeof(co_links_t));
    return l;
}

static void co_set_links(co_header_t *h, co_header_t *next, co_header_t *prev)
{
    MALLET_TRACK_MEM_UNDEFINED(co_links_of(h), sizeof(co_links_t));
    *co_links_of(h) = (co_links_t){ next, prev };
    MALLET_TRACK_MEM_NOACCESS(co_links_of(h), sizeof(co_links_t));
}

// Mark free block h of `size` bytes: header, and the footer in its last word.
static void co_write_free(co_header_t *h, size_t size)
{
    co_write(h, size | CO_FREE, CO_FREED, 0);
    size_t *foot = (size_t *)((char *)h + size) - 1;
    MALLET_TRACK_MEM_UNDEFINED(foot, sizeof *foot);
    *foot = size;
    MALLET_TRACK_MEM_NOACCESS(foot, sizeof *foot);
}

// The size of the free block that ends just before h, from its footer.
static size_t co_prev_size(co_header_t *h)
{
    size_t *foot = (size_t *)h - 1;
    MALLET_TRACK_MEM_DEFINED(foot, sizeof *foot);
    size_t size = *foot;
    MALLET_TRACK_MEM_NOACCESS(foot, sizeof *foot);
    return size;
}

// Set or clear the P bit of the block at h (which may be the break itself).
static void co_set_pfree(co_header_t *h, bool pfree)
{
    if ((char *)h == source_top(&co_src)) {
        co_end_pfree = pfree;
        return;
    }
    co_header_t v = co_read(h);
    co_write(h, pfree ? v.size | CO_PFREE : v.size & ~CO_PFREE, v.magic, v.request);
}

// --- the free list --------------------------------------------------------------

// Push free block h on the front of the list. Most recently freed first:
// a request like the one just freed finds it at once (appending instead
// makes first fit walk past every old leftover; measured 12x slower on
// random small malloc/free).
static void co_push(co_header_t *h)
{
    co_set_links(h, co_list, NULL);
    if (co_list)
        co_set_links(co_list, co_get_links(co_list).next, h);
    co_list = h;
}

static void co_unlink(co_header_t *h)
{
    co_links_t l = co_get_links(h);
    if (l.prev)
        co_set_links(l.prev, l.next, co_get_links(l.prev).prev);
    else
        co_list = l.next;
    if (l.next)
        co_set_links(l.next, co_get_links(l.next).next, l.prev);
}

// Make the `size` bytes at h (not on the list; h's header holds its P bit)
// a free block, merged with free neighbours on both sides. Returns the block
// that holds them now.
static co_header_t *co_release(co_header_t *h, size_t size)
{
    if (co_read(h).size & CO_PFREE) {             // merge left, via the footer
        size_t left = co_prev_size(h);
        h = (co_header_t *)((char *)h - left);
        co_unlink(h);
        size += left;
    }
    co_header_t *next = (co_header_t *)((char *)h + size);
    if ((char *)next < source_top(&co_src)) {     // merge right
        co_header_t nv = co_read(next);
        if (nv.size & CO_FREE) {
            co_unlink(next);
            size += nv.size & ~CO_FLAGS;
        }
    }
    co_write_free(h, size);
    co_push(h);
    co_set_pfree((co_header_t *)((char *)h + size), true);
    return h;
}

// The whole heap against the invariants above: true when they hold. Costs a
// walk of the heap and the list, so it runs only in DEBUG=3 builds.
static bool co_heap_ok(void)
{
    char *at = source_base(&co_src), *top = source_top(&co_src);
    size_t free_blocks = 0, listed = 0;
    bool prev_free = false;
    while (at && at < top) {
        co_header_t v = co_read((co_header_t *)at);
        size_t size = v.size & ~CO_FLAGS;
        bool is_free = v.size & CO_FREE;
        if (size < CO_MIN || size % TEACH_ALIGN || at + size > top)
            return false;                         // not a block size
        if (!!(v.size & CO_PFREE) != prev_free || (is_free && prev_free))
            return false;                         // P bit wrong, or two free neighbours
        if (is_free && (v.magic != CO_FREED || co_prev_size((co_header_t *)(at + size)) != size))
            return false;                         // free block without its footer
        if (!is_free && v.magic != CO_MAGIC)
            return false;
        free_blocks += is_free;
        prev_free = is_free;
        at += size;
    }
    if (prev_free != co_end_pfree)
        return false;
    for (co_header_t *h = co_list; h; h = co_get_links(h).next)
        if (!(co_read(h).size & CO_FREE) || ++listed > free_blocks)
            return false;                         // a used block, or a cycle, on the list
    return listed == free_blocks;
}

// --- malloc and free ------------------------------------------------------------

// Block size for a request below TEACH_MMAP_THRESHOLD (so no overflow):
// header + payload rounded up to 16, at least CO_MIN.
static size_t co_block_size(size_t n)
{
    size_t size = source_round(n, TEACH_ALIGN) + HDR;
    return size < CO_MIN ? CO_MIN : size;
}

// Hand out `size` bytes of free block h (of `have` bytes, on the list): the
// tail end when the rest can stand alone, else all of it.
static void *co_take(co_header_t *h, size_t have, size_t size, size_t n)
{
    co_header_t *b = h;
    size_t pbit = 0;                  // a free block's P bit is always 0
    if (have - size >= CO_MIN) {
        co_write_free(h, have - size);  // the front stays on the list, smaller
        b = (co_header_t *)((char *)h + have - size);
        pbit = CO_PFREE;
    } else {
        co_unlink(h);
        size = have;
    }
    co_write(b, size | pbit, CO_MAGIC, n);
    co_set_pfree((co_header_t *)((char *)b + size), false);
    co_live += size - HDR;
    void *p = (char *)b + HDR;
    MALLET_TRACK_MALLOC(p, n, size - HDR, false);
    mallet_assert_expensive(co_heap_ok());
    return p;
}

// Grow the break so that the heap ends with a free block of at least `size`
// bytes, and return that block. Only the shortfall is asked for: a free
// block already at the end of the heap merges with the new memory.
static co_header_t *co_grow(size_t size)
{
    size_t grow = size;
    if (co_end_pfree)
        grow -= co_prev_size((co_header_t *)source_top(&co_src));
    co_header_t *h = source_grow(&co_src, grow);
    if (h == NULL)
        return NULL;
    co_write(h, grow | (co_end_pfree ? CO_PFREE : 0), CO_FREED, 0);
    co_end_pfree = false;
    return co_release(h, grow);
}

static void *co_malloc(size_t n)
{
    if (n >= TEACH_MMAP_THRESHOLD) {
        size_t usable;
        void *p = source_large_malloc(&co_src, n, &usable);
        if (p)
            co_live += usable;
        return p;
    }
    size_t size = co_block_size(n);
    for (co_header_t *h = co_list; h; h = co_get_links(h).next) {
        size_t have = co_read(h).size & ~CO_FLAGS;
        if (have >= size)
            return co_take(h, have, size, n);
    }
    co_header_t *h = co_grow(size);
    if (h == NULL)
        return NULL;                          // errno ENOMEM from the break
    return co_take(h, co_read(h).size & ~CO_FLAGS, size, n);
}

// The header of a block we handed out, or a one-line report and abort.
static co_header_t co_check(void *p, const char *func)
{
    co_header_t *h = (co_header_t *)((char *)p - HDR);
    if (((uintptr_t)p & (TEACH_ALIGN - 1)) || !source_in_brk(&co_src, h))
        mallet__fatal("teach-coalesce", func, "invalid pointer", p);
    co_header_t v = co_read(h);
    if ((v.size & CO_FREE) || v.magic == CO_FREED)
        mallet__fatal("teach-coalesce", func, "double free of", p);
    if (v.magic != CO_MAGIC)
        mallet__fatal("teach-coalesce", func, "invalid pointer", p);
    return v;
}

static void co_free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    if (!source_in_brk(&co_src, p)) {
        intptr_t i = source_large_find(&co_src, p);
        if (i < 0)
            mallet__fatal("teach-coalesce", "free", "invalid pointer", p);
        co_live -= source_large_free(&co_src, i);
        errno = saved;
        return;
    }
    co_header_t v = co_check(p, "free");
    size_t size = v.size & ~CO_FLAGS;
    co_live -= size - HDR;
    MALLET_TRACK_FREE(p, size - HDR);
    co_header_t *h = (co_header_t *)((char *)p - HDR);
    // Mark it freed first: if it merges into its left neighbour this header
    // is left inside that block, still saying "freed" to a second free.
    co_write(h, v.size | CO_FREE, CO_FREED, 0);
    co_release(h, size);
    mallet_assert_expensive(co_heap_ok());
    errno = saved;
}

// Usable bytes of a block we handed out, large or not; *request receives
// the bytes asked for.
static size_t co_usable(void *p, const char *func, size_t *request)
{
    if (!source_in_brk(&co_src, p)) {
        intptr_t i = source_large_find(&co_src, p);
        if (i < 0)
            mallet__fatal("teach-coalesce", func, "invalid pointer", p);
        *request = co_src.large[i].request;
        return co_src.large[i].size;
    }
    co_header_t v = co_check(p, func);
    *request = v.request;
    return (v.size & ~CO_FLAGS) - HDR;
}

static size_t co_usable_size(void *p)
{
    size_t request;
    return p ? co_usable(p, "malloc_usable_size", &request) : 0;
}

// Resize used block h (of `have` bytes) in place to `size` bytes (<= have),
// giving the cut-off tail back to the free list.
static void co_trim(co_header_t *h, size_t have, size_t size, size_t n)
{
    co_header_t v = co_read(h);
    if (have - size < CO_MIN)
        size = have;
    co_write(h, size | (v.size & CO_PFREE), CO_MAGIC, n);
    if (size < have) {
        co_header_t *t = (co_header_t *)((char *)h + size);
        co_write(t, have - size, CO_FREED, 0);
        co_release(t, have - size);
    }
    co_live = co_live - have + size;
    mallet_assert_expensive(co_heap_ok());
}

static void *co_realloc(void *p, size_t n)
{
    if (p == NULL)
        return co_malloc(n);
    if (n == 0) {
        co_free(p);
        return NULL;
    }
    size_t request;
    size_t usable = co_usable(p, "realloc", &request);
    bool small = source_in_brk(&co_src, p);
    if (!small && n >= TEACH_MMAP_THRESHOLD) {
        // Large to large: let the kernel move the pages (mremap), no copy.
        intptr_t i = source_large_find(&co_src, p);
        size_t now;
        void *q = source_large_realloc(&co_src, i, n, &now);
        if (q)
            co_live = co_live - usable + now;
        return q;
    }
    if (small && n < TEACH_MMAP_THRESHOLD) {
        co_header_t *h = (co_header_t *)((char *)p - HDR);
        size_t have = usable + HDR, size = co_block_size(n);
        co_header_t *next = (co_header_t *)((char *)h + have);
        if (size > have && (char *)next < source_top(&co_src)) {
            // Grow into a free right neighbour, then trim what is too much.
            co_header_t nv = co_read(next);
            size_t more = nv.size & ~CO_FLAGS;
            if ((nv.size & CO_FREE) && have + more >= size) {
                co_unlink(next);
                co_set_pfree((co_header_t *)((char *)next + more), false);
                co_live += more;
                have += more;
            }
        }
        if (size <= have) {
            MALLET_TRACK_RESIZE(p, request, n, have - HDR);
            co_trim(h, have, size, n);
            return p;
        }
    }
    void *q = co_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, request < n ? request : n);   // the bytes past the request mean nothing
    co_free(p);
    return q;
}

static void co_walk(teach_visit_fn visit, void *ctx)
{
    char *at = source_base(&co_src), *top = source_top(&co_src);
    while (at && at < top) {
        size_t size = co_read((co_header_t *)at).size;
        visit(ctx, at, size & ~CO_FLAGS, !(size & CO_FREE));
        at += size & ~CO_FLAGS;
    }
    source_large_walk(&co_src, visit, ctx);
}

static void co_reset(void)
{
    if (MALLET_TRACK_ENABLED)
        co_walk(source_forget_used, &co_src);
    source_reset(&co_src);
    co_list = NULL;
    co_end_pfree = false;
    co_live = 0;
}

static size_t co_footprint(void)
{
    return source_footprint(&co_src);
}

static size_t co_live_bytes(void)
{
    return co_live;
}

const teach_allocator_t teach_coalesce = {
    .name = "coalesce",
    .design = "split + O(1) coalescing of both neighbours with boundary tags",
    .malloc = co_malloc,
    .free = co_free,
    .realloc = co_realloc,
    .memalign = NULL,
    .usable_size = co_usable_size,
    .walk = co_walk,
    .reset = co_reset,
    .footprint = co_footprint,
    .live_bytes = co_live_bytes,
};
