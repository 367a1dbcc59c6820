// SPDX-License-Identifier: MIT
//
// gc.c -- 08: conservative mark-sweep garbage collection: allocation, the
// sweep, and the API of gc.h. Marking and the roots are in gc_mark.c; the
// heap's layout is described in gc_heap.h.
//
// What it adds to 07 (arena): the program never frees. The allocator finds
// garbage itself by tracing from the roots, so it must answer "is this word
// a pointer into one of my blocks?" for any word at all -- which is why the
// heap is a page table rather than a free list of headers.
//
// Allocation. Requests up to 32 KiB round up to one of 40 size classes; a
// class's blocks sit on 64 KiB pages of that class alone. Each page has an
// allocation bitmap, and allocating is "find the first clear bit" in the
// first page of the class's list of pages with room. A larger request takes
// a run of whole pages (first fit over the runs of free pages). Every block
// is zeroed: a stale pointer left in a reused block would keep garbage alive.
//
// The sweep. After marking, a small page's live blocks are exactly its mark
// bits, so the sweep ANDs the allocation bitmap with the mark bitmap, 64
// blocks per instruction, and never touches the blocks themselves. Then it
// rebuilds the free lists from scratch: per class the list of pages with a
// free block, and the address-ordered list of free page runs (neighbours
// merge by being adjacent). Emptied pages go back to the OS (purge), except
// for a few MiB kept to be reused by the next cycle at once.
//
// When to collect: when the block bytes handed out since the last
// collection reach the bytes that survived it -- the heap has doubled -- and
// are at least GC_MIN_TRIGGER. Nothing is freed between collections, so
// that is one comparison of the live bytes with a mark set at the end of
// each collection, and it sits on the slow path only (a class out of pages,
// a large block), so the fast path pays nothing for it.
//
// Invariants: at the top of gc_heap.h (marks clear between collections,
// class lists hold exactly the pages with room); DEBUG=3 checks them after
// every collection.
//
// Known weakness: a large block rounds up to whole 64 KiB pages (a 33 KiB
// request takes 64 KiB), and a page keeps every surviving block where it is,
// so a few survivors pin whole pages (test_gc's bounded-heap test watches
// the peak). See gc.h for what being conservative costs.
//
// Calls: src/os (the break, purge, map), src/debug (track.h, fatal), and
// gc_mark.c.
#define _GNU_SOURCE
#include "gc.h"
#include "gc_heap.h"
#include "debug/debug.h"

#include <errno.h>
#include <string.h>
#include <time.h>

// Address space reserved for the arena, largest first: it costs nothing
// until used, but a process with a small RLIMIT_AS needs a smaller one.
static const size_t gc_arena_sizes[] = {
    (size_t)16 << 30, (size_t)4 << 30, (size_t)1 << 30, (size_t)256 << 20,
};
// Free pages kept from the OS after a sweep: the next cycle reuses them
// within microseconds, and purging them would cost a page fault per 4 KiB.
#define GC_KEEP_FREE ((size_t)4 << 20)
// Dead stack zeroed below the caller before each collection: more than the
// collector's own frames reach (about 1 KiB; a few under ASan).
#define GC_CLEAR_STACK ((size_t)8 << 10)

gc_heap_t mallet__gc;
#define heap mallet__gc      // the one heap, under a short name in this file

// ---------------------------------------------------------------------------
// Size classes: 16..128 in steps of 16, then four classes per power of two,
// so above 128 bytes a block wastes at most a fifth of itself.

static unsigned gc_class_of(size_t n)
{
    if (n <= 128)
        return n <= GC_GRAIN ? 0 : (unsigned)((n - 1) / GC_GRAIN);
    unsigned lg = 63u - (unsigned)__builtin_clzll(n - 1);      // 2^lg <= n-1 < 2^(lg+1)
    unsigned quarter = (unsigned)((n - 1) >> (lg - 2));        // 4..7
    return 8 + (lg - 7) * 4 + (quarter - 4);
}

static uint32_t gc_class_size(unsigned c)
{
    if (c < 8)
        return (c + 1) * GC_GRAIN;
    uint32_t group = 128u << ((c - 8) / 4);
    return group + ((c - 8) % 4 + 1) * (group / 4);
}

// ---------------------------------------------------------------------------
// Pages

// Bits of the last bitmap word that lie past the page's last block.
static uint64_t gc_pad_bits(const gc_page_t *pg)
{
    unsigned used = pg->nblocks % 64;
    return used ? ~0ull << used : 0;
}

static void gc_heap_grew(size_t bytes)
{
    heap.heap_bytes += bytes;
    if (heap.heap_bytes > heap.stats.peak_heap_bytes)
        heap.stats.peak_heap_bytes = heap.heap_bytes;
}

// Carve k new pages from the arena; their descriptors start zeroed (free,
// clean). NULL when the reservation is full or the OS says no.
static gc_page_t *gc_pages_grow(size_t k)
{
    if (mallet__brk_grow(&heap.arena, (intptr_t)(k * GC_PAGE)) == NULL)
        return NULL;
    if (mallet__brk_grow(&heap.descs, (intptr_t)(k * sizeof(gc_page_t))) == NULL)
        goto undo_arena;
#if GC_MEMCHECK
    if (mallet__brk_grow(&heap.reqs, (intptr_t)(k * GC_PAGE / GC_GRAIN * sizeof(uint16_t))) == NULL) {
        mallet__brk_grow(&heap.descs, -(intptr_t)(k * sizeof(gc_page_t)));
        goto undo_arena;
    }
#endif
    gc_page_t *pg = gc_desc(heap.npages);
    heap.npages += k;
    MALLET_TRACK_MEM_NOACCESS(gc_page_addr(pg), k * GC_PAGE);
    return pg;
undo_arena:
    mallet__brk_grow(&heap.arena, -(intptr_t)(k * GC_PAGE));
    return NULL;
}

// k contiguous free pages: the first run that fits, split from its front,
// else new pages.
static gc_page_t *gc_pages_take(size_t k)
{
    for (gc_page_t **link = &heap.free_runs; *link; link = &(*link)->next) {
        gc_page_t *run = *link;
        if (run->npages < k)
            continue;
        if (run->npages > k) {
            gc_page_t *rest = run + k;
            rest->npages = run->npages - (uint32_t)k;
            rest->next = run->next;
            *link = rest;
        } else {
            *link = run->next;
        }
        return run;
    }
    return gc_pages_grow(k);
}

static void gc_small_setup(gc_page_t *pg, unsigned c)
{
    bool dirty = pg->dirty;
    memset(pg, 0, sizeof *pg);
    pg->kind = GC_PAGE_SMALL;
    pg->cls = (uint8_t)c;
    pg->fresh = !dirty;
    pg->bsize = gc_class_size(c);
    pg->nblocks = (uint32_t)(GC_PAGE / pg->bsize);
    pg->inverse = (uint32_t)(((1ull << 32) + pg->bsize - 1) / pg->bsize);
    pg->used[(pg->nblocks - 1) / 64] = gc_pad_bits(pg);
    gc_heap_grew(GC_PAGE);
}

// ---------------------------------------------------------------------------
// Collection

// The collecting thread's CPU clock: a pause measured in it does not count
// the time other processes held the CPU.
static uint64_t gc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

// Sweep one small page: the live blocks are its mark bits. Returns true if
// the page is now empty.
static bool gc_sweep_small(gc_page_t *pg)
{
    unsigned nwords = (pg->nblocks + 63) / 64;
    uint64_t freed = 0;
    for (unsigned w = 0; w < nwords; w++) {
        uint64_t pad = w == nwords - 1 ? gc_pad_bits(pg) : 0;
        uint64_t dead = pg->used[w] & ~pg->mark[w] & ~pad;
        pg->mark[w] = 0;
        if (dead == 0)
            continue;
        pg->used[w] &= ~dead;
        freed += (uint64_t)__builtin_popcountll(dead);
        if (MALLET_TRACK_ENABLED) {
            for (uint64_t d = dead; d; d &= d - 1)
                MALLET_TRACK_FREE(gc_page_addr(pg) + ((size_t)w * 64 + (size_t)__builtin_ctzll(d))
                                  * pg->bsize, pg->bsize);
        }
    }
    if (freed == 0)
        return false;
    pg->nused -= (uint32_t)freed;
    pg->fresh = false;
    pg->cursor = 0;
    heap.live -= freed * pg->bsize;
    heap.stats.bytes_freed += freed * pg->bsize;
    heap.stats.last_freed += freed;
    return pg->nused == 0;
}

static void gc_page_release(gc_page_t *pg, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        pg[i].kind = GC_PAGE_FREE;
        pg[i].dirty = true;
    }
    heap.heap_bytes -= k * GC_PAGE;
}

// Rebuild the list of free page runs in address order, merging neighbours,
// and give back to the OS every page freed by this sweep past the first
// GC_KEEP_FREE bytes (low addresses are kept: first fit reuses them first).
static void gc_rebuild_free_runs(void)
{
    gc_page_t **link = &heap.free_runs;
    size_t kept = 0;
    size_t i = 0;
    while (i < heap.npages) {
        gc_page_t *pg = gc_desc(i);
        if (pg->kind != GC_PAGE_FREE) {
            i += pg->kind == GC_PAGE_LARGE ? pg->npages : 1;
            continue;
        }
        size_t j = i;
        while (j < heap.npages && gc_desc(j)->kind == GC_PAGE_FREE) {
            if (!gc_desc(j)->dirty || kept < GC_KEEP_FREE) {
                kept += gc_desc(j)->dirty ? GC_PAGE : 0;
                j++;
                continue;
            }
            size_t d = j;
            while (d < heap.npages && gc_desc(d)->kind == GC_PAGE_FREE && gc_desc(d)->dirty)
                d++;
            // A page the OS did not take back still holds old data: it stays dirty.
            bool purged = mallet__os_purge(gc_page_addr(gc_desc(j)), (d - j) * GC_PAGE);
            for (; j < d; j++)
                gc_desc(j)->dirty = !purged;
        }
        pg->npages = (uint32_t)(j - i);
        *link = pg;
        link = &pg->next;
        i = j;
    }
    *link = NULL;
}

static void gc_sweep(void)
{
    gc_page_t *tail[GC_CLASSES] = { 0 };
    memset(heap.avail, 0, sizeof heap.avail);
    for (size_t i = 0; i < heap.npages;) {
        gc_page_t *pg = gc_desc(i);
        if (pg->kind == GC_PAGE_LARGE) {
            size_t k = pg->npages;
            if (pg->mark[0]) {
                pg->mark[0] = 0;
            } else {
                MALLET_TRACK_FREE(gc_page_addr(pg), k * GC_PAGE);
                heap.live -= k * GC_PAGE;
                heap.stats.bytes_freed += k * GC_PAGE;
                heap.stats.last_freed++;
                gc_page_release(pg, k);
            }
            i += k;
            continue;
        }
        if (pg->kind == GC_PAGE_SMALL) {
            if (gc_sweep_small(pg)) {
                gc_page_release(pg, 1);
            } else if (pg->nused < pg->nblocks) {
                // Appended, not pushed: allocation keeps to low addresses.
                pg->next = NULL;
                if (tail[pg->cls])
                    tail[pg->cls]->next = pg;
                else
                    heap.avail[pg->cls] = pg;
                tail[pg->cls] = pg;
            }
        }
        i++;
    }
    gc_rebuild_free_runs();
}

// DEBUG=3: each small page's count agrees with its bitmaps, no mark bit
// survives a sweep, and the class lists hold exactly the pages with room.
static bool gc_heap_ok(void)
{
    size_t with_room = 0, listed = 0, in_use = 0;
    for (size_t i = 0; i < heap.npages; i++) {
        const gc_page_t *pg = gc_desc(i);
        if (pg->kind == GC_PAGE_LARGE) {
            in_use += (size_t)pg->npages * GC_PAGE;
            if (pg->mark[0])
                return false;
        }
        if (pg->kind != GC_PAGE_SMALL)
            continue;
        in_use += GC_PAGE;
        unsigned nwords = (pg->nblocks + 63) / 64;
        size_t used = 0;
        for (unsigned w = 0; w < nwords; w++) {
            uint64_t pad = w == nwords - 1 ? gc_pad_bits(pg) : 0;
            if (pg->mark[w] || (pg->used[w] & pad) != pad)
                return false;
            used += (size_t)__builtin_popcountll(pg->used[w] & ~pad);
        }
        if (used != pg->nused || used == 0)
            return false;
        with_room += pg->nused < pg->nblocks;
    }
    for (unsigned c = 0; c < GC_CLASSES; c++)
        for (const gc_page_t *pg = heap.avail[c]; pg; pg = pg->next, listed++)
            if (pg->kind != GC_PAGE_SMALL || pg->cls != c || pg->nused == pg->nblocks)
                return false;
    return with_room == listed && in_use == heap.heap_bytes;
}

static void gc_collect_now(void)
{
    if (!pthread_equal(pthread_self(), heap.owner))
        mallet__fatal("mallet", "gc_collect", "called from a thread that does not own the gc heap",
                      (void *)pthread_self());
    uint64_t t0 = gc_now_us();
    heap.stats.last_marked = 0;
    heap.stats.last_freed = 0;
    mallet__gc_mark();
    gc_sweep();
    heap.collect_at = heap.live + (heap.live > GC_MIN_TRIGGER ? heap.live : GC_MIN_TRIGGER);
    mallet_assert_expensive(gc_heap_ok());
    uint64_t pause = gc_now_us() - t0;
    heap.stats.collections++;
    heap.stats.last_pause_us = pause;
    heap.stats.total_pause_us += pause;
    if (pause > heap.stats.max_pause_us)
        heap.stats.max_pause_us = pause;
}

// The registers go to the stack before anything else: a pointer the program
// holds only in a callee-saved register must be seen, and the stack scan
// starts below this frame. The empty asm keeps the frame alive (no tail
// call) until the collection has returned.
__attribute__((noinline)) static void gc_collect_spilled(void)
{
    __builtin_unwind_init();
    gc_collect_now();
    __asm__ volatile("" ::: "memory");
}

// Zero GC_CLEAR_STACK bytes of the stack below the caller. A function the
// program called and that has returned leaves its locals there -- the head
// of a list it built and dropped -- and the collector's own frames are about
// to sit on exactly that memory: a slot they leave unwritten (padding, a
// local not yet set) would be scanned as a root and keep the whole dead
// structure alive. Zeroing first means the collector's frames hold only
// what the collector writes. Plain stores, not memset: under ASan the band
// is uninstrumented real stack, and an interceptor would check its shadow.
GC_NO_ASAN __attribute__((noinline)) static void gc_clear_stack(void)
{
    volatile uintptr_t band[GC_CLEAR_STACK / sizeof(uintptr_t)];
    for (size_t i = 0; i < sizeof band / sizeof band[0]; i++)
        band[i] = 0;
}

// Every collection: clear the dead stack, then collect with the registers spilled.
__attribute__((noinline)) static void gc_collect_clean(void)
{
    gc_clear_stack();
    gc_collect_spilled();
}

// ---------------------------------------------------------------------------
// Allocation

MALLET_COLD static bool gc_init(void)
{
    size_t i = 0;
    while (!mallet__brk_init_private(&heap.arena, gc_arena_sizes[i]))
        if (++i == sizeof gc_arena_sizes / sizeof gc_arena_sizes[0])
            return false;
    size_t pages = gc_arena_sizes[i] / GC_PAGE;
    if (!mallet__brk_init_private(&heap.descs, pages * sizeof(gc_page_t)))
        goto fail_arena;
#if GC_MEMCHECK
    if (!mallet__brk_init_private(&heap.reqs, pages * (GC_PAGE / GC_GRAIN) * sizeof(uint16_t)))
        goto fail_descs;
#endif
    heap.owner = pthread_self();
    if (!mallet__gc_mark_init())
        goto fail_reqs;
    heap.base = (uintptr_t)heap.arena.base;
    heap.collect_at = GC_MIN_TRIGGER;
    heap.ready = true;
    return true;
fail_reqs:
#if GC_MEMCHECK
    mallet__brk_destroy(&heap.reqs);
fail_descs:
#endif
    mallet__brk_destroy(&heap.descs);
fail_arena:
    mallet__brk_destroy(&heap.arena);
    return false;
}

// Collect if the heap has doubled since the last collection.
static void gc_maybe_collect(void)
{
    if (heap.live >= heap.collect_at)
        gc_collect_clean();
}

// A page of class c with a free block, or NULL when the heap is full.
MALLET_COLD static gc_page_t *gc_class_refill(unsigned c)
{
    gc_maybe_collect();
    if (heap.avail[c])
        return heap.avail[c];
    gc_page_t *pg = gc_pages_take(1);
    if (pg == NULL) {
        gc_collect_clean();
        if (heap.avail[c])
            return heap.avail[c];
        if ((pg = gc_pages_take(1)) == NULL)
            return NULL;
    }
    gc_small_setup(pg, c);
    heap.avail[c] = pg;
    return pg;
}

static void *gc_small_alloc(size_t n)
{
    unsigned c = gc_class_of(n);
    gc_page_t *pg = heap.avail[c];
    if (pg == NULL && (pg = gc_class_refill(c)) == NULL)
        return NULL;
    unsigned w = pg->cursor;
    uint64_t free_bits;
    while ((free_bits = ~pg->used[w]) == 0)
        w++;
    unsigned bit = (unsigned)__builtin_ctzll(free_bits);
    pg->used[w] |= 1ull << bit;
    pg->cursor = w;
    if (++pg->nused == pg->nblocks)
        heap.avail[c] = pg->next;
    size_t i = (size_t)w * 64 + bit;
    size_t bsize = pg->bsize;
    char *p = gc_page_addr(pg) + i * bsize;
#if GC_MEMCHECK
    gc_reqs(pg)[i] = (uint16_t)n;
#endif
    MALLET_TRACK_MEM_UNDEFINED(p, bsize);
    if (!pg->fresh)
        memset(p, 0, bsize);
    MALLET_TRACK_MALLOC(p, n, bsize, true);
    MALLET_TRACK_MEM_NOACCESS(p + n, bsize - n);
    heap.live += bsize;
    return p;
}

MALLET_COLD static void *gc_large_alloc(size_t n)
{
    if (n > (size_t)(heap.arena.limit - heap.arena.base))
        return NULL;
    size_t k = (n + GC_PAGE - 1) >> GC_PAGE_SHIFT;
    gc_maybe_collect();
    gc_page_t *pg = gc_pages_take(k);
    if (pg == NULL) {
        gc_collect_clean();
        if ((pg = gc_pages_take(k)) == NULL)
            return NULL;
    }
    char *p = gc_page_addr(pg);
    size_t bytes = k * GC_PAGE;
    MALLET_TRACK_MEM_UNDEFINED(p, n);
    // Free pages read as zero unless kept back from the OS by the last sweep.
    for (size_t i = 0; i < k; i++) {
        if (pg[i].dirty) {
            size_t off = i * GC_PAGE;
            memset(p + off, 0, n - off < GC_PAGE ? n - off : GC_PAGE);
        }
        pg[i].kind = GC_PAGE_LARGE_TAIL;
        pg[i].head = (uint32_t)(pg - gc_desc(0));
        pg[i].dirty = false;
    }
    pg->kind = GC_PAGE_LARGE;
    pg->npages = (uint32_t)k;
    pg->req = n;
    pg->mark[0] = 0;
    MALLET_TRACK_MALLOC(p, n, bytes, true);
    gc_heap_grew(bytes);
    heap.live += bytes;
    return p;
}

// Everything but "a small block from a page that has one".
MALLET_COLD static void *gc_malloc_slow(size_t n)
{
    if (!heap.ready && !gc_init()) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = n <= GC_SMALL_MAX ? gc_small_alloc(n) : gc_large_alloc(n);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

void *gc_malloc(size_t n)
{
    if (likely(n <= GC_SMALL_MAX) && likely(heap.avail[gc_class_of(n)] != NULL))
        return gc_small_alloc(n);
    return gc_malloc_slow(n);
}

// ---------------------------------------------------------------------------
// The rest of the API

void gc_collect(void)
{
    if (heap.ready)
        gc_collect_clean();
}

size_t gc_live_bytes(void)
{
    return heap.live;
}

void gc_stats_get(gc_stats_t *out)
{
    *out = heap.stats;
    out->bytes_allocated = heap.stats.bytes_freed + heap.live;   // nothing else leaves the heap
    out->live_bytes = heap.live;
    out->heap_bytes = heap.heap_bytes;
}

void gc_add_root(void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)p;
    for (size_t i = 0; i < heap.nroots; i++) {
        if (heap.roots[i].lo == lo) {
            heap.roots[i].hi = lo + n;
            return;
        }
    }
    if (heap.nroots == heap.roots_cap) {
        size_t page = mallet__os_page_size();
        size_t old = heap.roots_cap * sizeof(gc_root_t);
        size_t want = old ? 2 * old : page;
        gc_root_t *t = old ? mallet__os_remap(heap.roots, old, want) : mallet__os_map(want, 0);
        if (t == NULL)
            mallet__fatal("mallet", "gc_add_root", "out of memory for the root table", p);
        heap.roots = t;
        heap.roots_cap = want / sizeof(gc_root_t);
    }
    heap.roots[heap.nroots++] = (gc_root_t){ lo, lo + n };
}

void gc_remove_root(void *p)
{
    for (size_t i = 0; i < heap.nroots; i++) {
        if (heap.roots[i].lo == (uintptr_t)p) {
            heap.roots[i] = heap.roots[--heap.nroots];
            return;
        }
    }
}

void gc_reset(void)
{
    if (heap.ready) {
        for (size_t i = 0; i < heap.npages;) {
            gc_page_t *pg = gc_desc(i);
            if (pg->kind == GC_PAGE_LARGE) {
                MALLET_TRACK_FREE(gc_page_addr(pg), (size_t)pg->npages * GC_PAGE);
                i += pg->npages;
                continue;
            }
            if (pg->kind == GC_PAGE_SMALL && MALLET_TRACK_ENABLED) {
                for (uint32_t b = 0; b < pg->nblocks; b++)
                    if (pg->used[b / 64] >> (b % 64) & 1)
                        MALLET_TRACK_FREE(gc_page_addr(pg) + (size_t)b * pg->bsize, pg->bsize);
            }
            i++;
        }
        mallet__brk_destroy(&heap.arena);
        mallet__brk_destroy(&heap.descs);
#if GC_MEMCHECK
        mallet__brk_destroy(&heap.reqs);
#endif
        mallet__os_release(heap.stack, heap.stack_cap * sizeof(uintptr_t));
    }
    mallet__os_release(heap.roots, heap.roots_cap * sizeof(gc_root_t));
    memset(&heap, 0, sizeof heap);
}
