// SPDX-License-Identifier: MIT
//
// span.c -- segments: mapping them, finding runs of free units for pages,
// retiring pages, purging idle units, returning empty segments.
//
// All of it runs under seg_lock. A new page prefers units whose memory is
// still resident (no page faults to pay again), then any free run, then a
// new segment. Segment lists are short (one entry per 4 MiB), so a walk is
// cheap beside the page it produces.
//
// hugepages=1: a segment is two 2 MiB units (halves), each one transparent
// huge page once touched. Segments are advised MADV_HUGEPAGE before their
// first write; a new page goes to the fullest half that has room, so sparse
// halves drain; and a half is purged only when every unit in it is free and
// idle, all of it at once, since purging part of a huge page splits it.
// Half 0 also holds the metadata unit, which stays: purging its other 31
// units splits a huge page that holds no block.
//
// numa=1: a page's units are bound MPOL_PREFERRED to the node of the CPU the
// allocating thread runs on (os/numa.h), outside the lock. A new segment is
// bound whole before its first write; with hugepages=1 the unit of binding
// is the half, set by the first page in an empty half, because a policy
// boundary inside a 2 MiB range splits the mapping and forbids a huge page.
#include "span.h"

#include <errno.h>

#include "base/base.h"
#include "os/os.h"
#include "harden.h"

uint64_t mallet__segmap[MALLET_SEGMAP_BITS / 64];
mallet_lock_t mallet__seg_lock;

#define ALL_UNITS (~(uint64_t)1)            // units 1..63; unit 0 is metadata
#define HALF_UNITS ((unsigned)(MALLET_HUGE_SIZE / MALLET_UNIT_SIZE))

_Static_assert(MALLET_SEG_SIZE == 2 * MALLET_HUGE_SIZE, "a segment is two huge pages");

static struct {
    mallet_segment_t *first;    // every mapped segment, newest first
    uint64_t mapped;            // segments mapped now, in bytes
    uint64_t purged_now;        // bytes of free units purged and not reused
    uint64_t purged;            // bytes purged, ever
    uint64_t retired;           // bytes of pages retired, ever
} spans;

static inline uint64_t run_mask(unsigned n)
{
    return n >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
}

// Bind [p, p + size) to node for numa=1. A refusal (a kernel without NUMA,
// a seccomp filter) only costs the placement, and leaves errno alone.
static void bind_node(void *p, size_t size, int node)
{
    int saved = errno;
    mallet__numa_bind_preferred(p, size, (unsigned)node);
    errno = saved;
}

// The page units of half h (0 or 1) of a segment.
static inline uint64_t half_units(unsigned h)
{
    return (run_mask(HALF_UNITS) << (h * HALF_UNITS)) & ALL_UNITS;
}

// First unit u >= 1 where n bits of mask starting at u are all set, or 0.
static unsigned find_run(uint64_t mask, unsigned n)
{
    uint64_t want = run_mask(n);
    for (unsigned u = 1; u + n <= MALLET_SEG_UNITS; u++) {
        if (((mask >> u) & want) == want)
            return u;
        if (!(mask >> u))
            break;
    }
    return 0;
}

static mallet_segment_t *segment_map(int node)
{
    mallet_segment_t *seg = mallet__os_map(MALLET_SEG_SIZE, MALLET_SEG_SIZE);
    if (seg == NULL)
        return NULL;
    // Advice and policy before the first write below, which faults in the
    // first half.
    if (mallet__option(hugepages))
        mallet__os_advise_huge(seg, MALLET_SEG_SIZE, true);
    if (node >= 0)
        bind_node(seg, MALLET_SEG_SIZE, node);
    MALLET_TRACK_MEM_DEFINED(seg, MALLET_UNIT_SIZE);
#if MALLET_SECURE
    mallet__secure_guard_segment(seg);
#endif
    seg->free_units = ALL_UNITS;
    // Untouched units hold no memory: count them as purged already.
    seg->purged_units = ALL_UNITS;
    spans.purged_now += (MALLET_SEG_UNITS - 1) * MALLET_UNIT_SIZE;
    for (unsigned u = 0; u < MALLET_SEG_UNITS; u++)
        seg->unit_page[u] = &mallet__page_none;
    seg->next = spans.first;
    spans.first = seg;
    // Written under seg_lock, read without it (mallet__span_mapped).
    __atomic_store_n(&spans.mapped, spans.mapped + MALLET_SEG_SIZE, __ATOMIC_RELAXED);
    uintptr_t s = (uintptr_t)seg >> MALLET_SEG_SHIFT;
    __atomic_or_fetch(&mallet__segmap[s >> 6], (uint64_t)1 << (s & 63), __ATOMIC_RELEASE);
    return seg;
}

// hugepages=1: a free run of n units inside the half with the most units in
// use (resident runs first among equals), so pages gather in few halves and
// the others empty out and can be purged whole. *out = 0 when no half has room.
static mallet_segment_t *densest_run(unsigned n, unsigned *out)
{
    mallet_segment_t *best = NULL;
    unsigned best_key = 0;
    *out = 0;
    for (mallet_segment_t *seg = spans.first; seg; seg = seg->next) {
        for (unsigned h = 0; h < 2; h++) {
            uint64_t half = half_units(h), f = seg->free_units & half;
            if ((unsigned)__builtin_popcountll(f) < n)
                continue;
            unsigned used = (unsigned)__builtin_popcountll(~seg->free_units & half);
            if (best && 2 * used + 2 <= best_key)
                continue;
            unsigned u = find_run(f & ~seg->purged_units, n), key = 2 * used + 2;
            if (u == 0) {
                u = find_run(f, n);
                key = 2 * used + 1;
            }
            if (u && key > best_key) {
                best = seg;
                best_key = key;
                *out = u;
            }
        }
    }
    return best;
}

mallet_page_t *mallet__span_page_alloc(unsigned cls, struct mallet_heap *heap)
{
    unsigned n = mallet__classes[cls].units;
    bool huge = mallet__option(hugepages) != 0;
    int node = mallet__option(numa) ? mallet__numa_node_now() : -1;
    mallet_segment_t *seg = NULL;
    unsigned u = 0;
    mallet__lock(&mallet__seg_lock);
    if (huge)
        seg = densest_run(n, &u);
    for (int pass = 0; pass < 2 && u == 0; pass++) {
        for (seg = spans.first; seg; seg = seg->next) {
            uint64_t f = seg->free_units;
            if (pass == 0)
                f &= ~seg->purged_units;
            if (f && (u = find_run(f, n)) != 0)
                break;
        }
    }
    // The range to bind to node: none for a new segment (bound whole);
    // with hugepages, the halves this page is the first to use.
    char *bind = NULL;
    size_t bind_size = 0;
    if (u == 0) {
        seg = segment_map(node);
        if (seg == NULL) {
            mallet__unlock(&mallet__seg_lock);
            errno = ENOMEM;
            return NULL;
        }
        u = 1;
    } else if (node >= 0 && !huge) {
        bind = (char *)seg + (size_t)u * MALLET_UNIT_SIZE;
        bind_size = (size_t)n * MALLET_UNIT_SIZE;
    } else if (node >= 0) {
        for (unsigned h = u / HALF_UNITS; h <= (u + n - 1) / HALF_UNITS; h++) {
            if ((seg->free_units & half_units(h)) != half_units(h))
                continue;
            if (bind == NULL)
                bind = (char *)seg + (size_t)h * MALLET_HUGE_SIZE;
            bind_size += MALLET_HUGE_SIZE;
        }
        // Bound under the lock: a thread that takes the next page of the
        // half must not fault it in before the policy is there.
        if (bind)
            bind_node(bind, bind_size, node);
        bind = NULL;
    }
#if MALLET_SECURE
    if (!mallet__secure_guard_run(seg, u, n)) {
        mallet__unlock(&mallet__seg_lock);
        errno = ENOMEM;
        return NULL;
    }
#endif
    uint64_t bits = run_mask(n) << u;
    seg->free_units &= ~bits;
    uint64_t was_purged = seg->purged_units & bits;
    seg->purged_units &= ~bits;
    spans.purged_now -= (uint64_t)__builtin_popcountll(was_purged) * MALLET_UNIT_SIZE;
    mallet_page_t *page = &seg->pages[u];
    page->where = MALLET_PAGE_FREE;
    mallet__page_init(page, (char *)seg + (size_t)u * MALLET_UNIT_SIZE, cls, heap);
    for (unsigned i = u; i < u + n; i++)
        __atomic_store_n(&seg->unit_page[i], page, __ATOMIC_RELEASE);
    mallet__unlock(&mallet__seg_lock);
    // The units are this page's alone: no lock needed to set their policy.
    if (bind)
        bind_node(bind, bind_size, node);
    return page;
}

void mallet__span_page_retire(mallet_page_t *page)
{
    mallet_segment_t *seg = mallet__segment_of((uintptr_t)page->start);
    unsigned u = (unsigned)(((uintptr_t)page->start & MALLET_SEG_MASK) >> MALLET_UNIT_SHIFT);
    unsigned n = page->units;
    uint64_t now = mallet__clock_ms();
    mallet_assert(page->block_size != 0 && page == seg->unit_page[u]);
    mallet_assert_expensive(mallet__page_is_empty(page));
#if MALLET_TRACK_ENABLED
    if (page->req)
        mallet__os_release(page->req, (page->reserved * sizeof(uint32_t) + mallet__os_page_size() - 1) &
                                      ~(mallet__os_page_size() - 1));
    page->req = NULL;
#endif
    MALLET_TRACK_MEM_NOACCESS(page->start, (size_t)n * MALLET_UNIT_SIZE);
    mallet__lock(&mallet__seg_lock);
    for (unsigned i = u; i < u + n; i++) {
        __atomic_store_n(&seg->unit_page[i], &mallet__page_none, __ATOMIC_RELEASE);
        seg->dirty_ms[i] = now;
    }
    page->block_size = 0;
    page->where = MALLET_PAGE_FREE;
    __atomic_store_n(&page->heap, 0, __ATOMIC_RELEASE);
    seg->free_units |= run_mask(n) << u;
    uint64_t retired = spans.retired + (uint64_t)n * MALLET_UNIT_SIZE;
    __atomic_store_n(&spans.retired, retired, __ATOMIC_RELAXED);
    mallet__unlock(&mallet__seg_lock);
}

static void segment_release(mallet_segment_t **link, mallet_segment_t *seg)
{
    *link = seg->next;
    uintptr_t s = (uintptr_t)seg >> MALLET_SEG_SHIFT;
    __atomic_and_fetch(&mallet__segmap[s >> 6], ~((uint64_t)1 << (s & 63)), __ATOMIC_RELEASE);
    __atomic_store_n(&spans.mapped, spans.mapped - MALLET_SEG_SIZE, __ATOMIC_RELAXED);
    spans.purged_now -= (uint64_t)__builtin_popcountll(seg->purged_units) * MALLET_UNIT_SIZE;
    // Whoever maps this range next must not find it poisoned.
    MALLET_TRACK_MEM_UNDEFINED(seg, MALLET_SEG_SIZE);
    mallet__os_release(seg, MALLET_SEG_SIZE);
}

// hugepages=1: of the units to purge, keep the halves whose units are all
// idle, and take each of them whole (its units that count as purged too: a
// huge page made them resident when any part of the half was touched).
static uint64_t whole_halves(uint64_t idle, uint64_t todo)
{
    uint64_t out = 0;
    for (unsigned h = 0; h < 2; h++) {
        uint64_t half = half_units(h);
        if ((idle & half) == half && (todo & half))
            out |= half;
    }
    return out;
}

size_t mallet__span_purge(uint64_t now, bool force)
{
    uint64_t delay = (uint64_t)mallet__option(purge_delay_ms);
    bool huge = mallet__option(hugepages) != 0;
    size_t given = 0;
    mallet__lock(&mallet__seg_lock);
    mallet_segment_t **link = &spans.first;
    while (*link) {
        mallet_segment_t *seg = *link;
        uint64_t idle = 0;
        for (unsigned u = 1; u < MALLET_SEG_UNITS; u++)
            if (((seg->free_units >> u) & 1) && (force || seg->dirty_ms[u] + delay <= now))
                idle |= (uint64_t)1 << u;
        if (idle == seg->free_units && seg->free_units == ALL_UNITS) {
            given += (size_t)__builtin_popcountll(~seg->purged_units & ALL_UNITS) * MALLET_UNIT_SIZE;
            segment_release(link, seg);
            continue;
        }
        uint64_t todo = idle & ~seg->purged_units;
        if (huge)
            todo = whole_halves(idle, todo);
        while (todo) {
            unsigned u = (unsigned)__builtin_ctzll(todo);
            unsigned e = u;
            while (e < MALLET_SEG_UNITS && ((todo >> e) & 1))
                e++;
            mallet__os_purge((char *)seg + (size_t)u * MALLET_UNIT_SIZE, (size_t)(e - u) * MALLET_UNIT_SIZE);
            uint64_t bits = run_mask(e - u) << u;
            size_t newly = (size_t)__builtin_popcountll(bits & ~seg->purged_units) * MALLET_UNIT_SIZE;
            seg->purged_units |= bits;
            todo &= ~bits;
            given += newly;
            spans.purged_now += newly;
        }
        link = &seg->next;
    }
    spans.purged += given;
    mallet__unlock(&mallet__seg_lock);
    return given;
}

void mallet__span_totals(mallet_span_totals_t *t)
{
    mallet__lock(&mallet__seg_lock);
    t->mapped = spans.mapped;
    t->resident = spans.mapped - spans.purged_now;
    t->purged = spans.purged;
    t->active = t->allocated = t->live_blocks = 0;
    for (mallet_segment_t *seg = spans.first; seg; seg = seg->next) {
        for (unsigned u = 1; u < MALLET_SEG_UNITS; u++) {
            mallet_page_t *page = seg->unit_page[u];
            if (page == &mallet__page_none || page != &seg->pages[u])
                continue;
            if (page->internal)
                continue;
            uint32_t used = mallet__page_used(page);
            if (used) {
                t->active += (uint64_t)page->units * MALLET_UNIT_SIZE;
                t->allocated += (uint64_t)used * page->block_size;
                t->live_blocks += used;
            }
        }
    }
    mallet__unlock(&mallet__seg_lock);
}

void mallet__span_after_fork(void)
{
    mallet_lock_found_t found = mallet__lock_after_fork(&mallet__seg_lock);
    if (found == MALLET_LOCK_WAS_MINE)
        return;
    // A vanished thread was changing a segment's unit maps or the list: no
    // page is carved from these segments again, and none is purged or
    // released (their memory stays with the child). The segment map keeps
    // them, so frees of their blocks, and retiring their pages, still work.
    if (found == MALLET_LOCK_WAS_LOST)
        spans.first = NULL;
    mallet__unlock(&mallet__seg_lock);
}

uint64_t mallet__span_mapped(void)
{
    return __atomic_load_n(&spans.mapped, __ATOMIC_RELAXED);
}

uint64_t mallet__span_retired(void)
{
    return __atomic_load_n(&spans.retired, __ATOMIC_RELAXED);
}
