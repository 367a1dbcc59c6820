// SPDX-License-Identifier: MIT
//
// large.c -- large blocks: their mappings, the address-keyed record table,
// mremap growth, and the cache of freed ranges.
//
// A block is a page-aligned address range the kernel maps; blocks carved
// from one cached range, or ranges merged in the cache, may share a kernel
// mapping or span two, which mremap refuses: growth then copies.
//
// Everything shared is under large_lock, a leaf lock; system calls that can
// be slow (mmap, munmap, mremap) are made outside it. The record table is
// open addressing with linear probing, in memory taken from the OS; it is
// rebuilt (dropping tombstones, growing if need be) when 70% full.
//
// hugepages=1 and numa=1 apply here as to small blocks: a new mapping of a
// huge page or more starts on a 2 MiB boundary, and every block handed out,
// new or reused, is advised MADV_HUGEPAGE and prefers the node of the CPU
// the allocating thread runs on -- before its first write, since a fault
// places a page for good.
//
// The secure build guards large blocks too: a block's mapping ends with an
// inaccessible OS page, the guard, and the bytes between the request and
// the guard hold the fill (secure.h), checked at free; a freed block's range
// is made inaccessible at once, kept resident in the cache, and made
// accessible again only when a block is carved from it.
#include "large.h"

#include <errno.h>
#include <string.h>

#include "debug/debug.h"
#include "base/base.h"
#include "os/os.h"
#include "secure/secure.h"
#include "prof/prof.h"
#include "harden.h"
#include "size_class.h"

enum { SLOT_EMPTY = 0, SLOT_LIVE, SLOT_FREED, SLOT_GONE };

typedef struct large_slot {
    uintptr_t addr;        // block address (= mapping start)
    size_t size;           // mapping length, the usable size
    size_t req;            // requested size
    uint32_t state;        // SLOT_EMPTY / _LIVE / _FREED (tombstone) / _GONE (moved away)
    uint32_t prof;         // the profiler's sample id (0: not sampled)
} large_slot_t;

// The record table and its size in one mapping, published with one store:
// a fork child never sees one table with the other's size.
typedef struct large_table {
    size_t cap;            // slots (a power of two)
    large_slot_t slot[];   // open addressing, linear probing
} large_table_t;

typedef struct large_cached {
    uintptr_t addr;        // range start
    size_t size;           // range length
    uint64_t since_ms;     // when it was last freed into or carved from
} large_cached_t;

#define CACHE_MAX 256
// Cached ranges one free may unmap to bring the cache within its limits.
#define EVICT_MAX 8
// A large block that grows is given this fraction of its old size beyond
// the request (mallet__large_resize).
#define GROW_ROOM 4
// A peak window lasts this many decay delays (see peak_note).
#define PEAK_DELAYS 4

mallet_lock_t mallet__large_lock;
static struct {
    large_table_t *table;  // the records
    size_t used;           // slots not empty
    uint64_t live;         // live blocks
    uint64_t live_bytes;   // their mapping lengths
    large_cached_t cache[CACHE_MAX];  // freed ranges kept for reuse, none adjacent
    size_t cached;         // entries in cache
    uint64_t cached_bytes; // their lengths
    uint64_t peak;         // most live bytes in the current peak window
    uint64_t peak_before;  // most live bytes in the window before it
    uint64_t peak_since;   // when the current window began, in ms
} large;

// The byte totals are written under large_lock and read without it (for
// the purger's start-up test, mallet__large_mapped): relaxed atomic stores.
static inline void total_add(uint64_t *total, uint64_t delta)
{
    __atomic_store_n(total, *total + delta, __ATOMIC_RELAXED);
}

static inline size_t page_round(size_t n)
{
    size_t pg = mallet__os_page_size();
    return (n + pg - 1) & ~(pg - 1);
}

static inline size_t slot_hash(uintptr_t a)
{
    return (size_t)(((a >> 12) * 0x9E3779B97F4A7C15ull) >> 20);
}

static inline size_t table_bytes(size_t cap)
{
    return sizeof(large_table_t) + cap * sizeof(large_slot_t);
}

// The slot of t for addr: its record, or the empty slot where it would go.
static large_slot_t *table_find(large_table_t *t, uintptr_t addr)
{
    size_t mask = t->cap - 1;
    for (size_t i = slot_hash(addr) & mask;; i = (i + 1) & mask) {
        large_slot_t *s = &t->slot[i];
        if (s->state == SLOT_EMPTY || s->addr == addr)
            return s;
    }
}

static inline large_slot_t *slot_find(uintptr_t addr)
{
    return table_find(large.table, addr);
}

// A record is written field by field and made live last, with a release
// store: a fork child that finds a live slot finds it whole.
static void slot_set(large_slot_t *s, uintptr_t addr, size_t size, size_t req, uint32_t prof, uint32_t state)
{
    s->addr = addr;
    s->size = size;
    s->req = req;
    s->prof = prof;
    __atomic_store_n(&s->state, state, __ATOMIC_RELEASE);
}

// The new table is filled before it is published.
static bool table_rebuild(size_t want)
{
    size_t cap = 1024;
    while (cap < want)
        cap *= 2;
    large_table_t *t = mallet__os_map(table_bytes(cap), 0), *old = large.table;
    if (t == NULL)
        return false;
    t->cap = cap;
    size_t used = 0;
    for (size_t i = 0; old && i < old->cap; i++) {
        large_slot_t *o = &old->slot[i];
        if (o->state != SLOT_LIVE)
            continue;
        slot_set(table_find(t, o->addr), o->addr, o->size, o->req, o->prof, SLOT_LIVE);
        used++;
    }
    __atomic_store_n(&large.table, t, __ATOMIC_RELEASE);
    large.used = used;
    if (old)
        mallet__os_release(old, table_bytes(old->cap));
    return true;
}

// Note the live bytes in the peak windows; lock held. A window lasts
// PEAK_DELAYS decay delays: long enough to span many rounds of churn,
// short enough that a peak long past stops holding memory in the cache
// (see cache_limit).
static void peak_note(uint64_t now)
{
    if (now - large.peak_since >= PEAK_DELAYS * (uint64_t)mallet__option(purge_delay_ms)) {
        large.peak_before = large.peak;
        large.peak = 0;
        large.peak_since = now;
    }
    if (large.live_bytes > large.peak)
        large.peak = large.live_bytes;
}

// Record a live block (prof: its sample id, or 0); large_lock held.
static bool record_insert(uintptr_t addr, size_t size, size_t req, uint32_t prof)
{
    if (large.table == NULL || (large.used + 1) * 10 > large.table->cap * 7) {
        if (!table_rebuild((large.live + 1) * 4))
            return false;
    }
    large_slot_t *s = slot_find(addr);
    if (s->state == SLOT_EMPTY)
        large.used++;
    slot_set(s, addr, size, req, prof, SLOT_LIVE);
    large.live++;
    total_add(&large.live_bytes, size);
    peak_note(mallet__clock_ms());
    return true;
}

static large_slot_t *record_live(uintptr_t addr)
{
    if (large.table == NULL)
        return NULL;
    large_slot_t *s = slot_find(addr);
    return s->state == SLOT_LIVE ? s : NULL;
}

// The cache's byte budget: what the program's live large bytes fell short
// of their recent peak, plus large_cache_mb. Memory the program needed a
// moment ago is likely needed again (churn: free one buffer, allocate
// another of a different size), so keeping it saves a page fault per page;
// and live plus cached stays within that peak plus large_cache_mb, so the
// cache never raises the peak RSS by more than large_cache_mb. A peak
// fades after one or two windows (peak_note), and idle ranges go back after
// purge_delay_ms whatever the budget. large_cache_mb 0 turns the cache off.
static uint64_t cache_limit(void)
{
    uint64_t floor = (uint64_t)mallet__option(large_cache_mb) << 20;
    uint64_t peak = large.peak > large.peak_before ? large.peak : large.peak_before;
    if (floor == 0)
        return 0;
    return floor + (peak > large.live_bytes ? peak - large.live_bytes : 0);
}

// Entries the cache may hold: one slot of the array always stays free for
// the next free's range, and cached plus live mappings stay under
// map_budget.
static size_t count_limit(void)
{
    uint64_t n = (uint64_t)mallet__option(large_cache_count);
    uint64_t budget = (uint64_t)mallet__option(map_budget);
    if (n > CACHE_MAX - 1)
        n = CACHE_MAX - 1;
    if (large.live + n >= budget)
        n = large.live < budget ? budget - large.live - 1 : 0;
    return (size_t)n;
}

static large_cached_t cache_remove(size_t i)
{
    large_cached_t c = large.cache[i];
    total_add(&large.cached_bytes, -(uint64_t)c.size);
    large.cache[i] = large.cache[--large.cached];
    return c;
}

// Cache the freed range [addr, addr + size), merged with the cached ranges
// it touches: a merged range serves a request larger than any of its parts
// without a fault. Lock held; there is a free slot (see count_limit).
static void cache_put(uintptr_t addr, size_t size, uint64_t now)
{
    for (size_t i = 0; i < large.cached;) {
        large_cached_t *c = &large.cache[i];
        if (c->addr + c->size == addr || addr + size == c->addr) {
            large_cached_t n = cache_remove(i);
            addr = n.addr < addr ? n.addr : addr;
            size += n.size;
        } else {
            i++;
        }
    }
    large.cache[large.cached++] = (large_cached_t){ addr, size, now };
    total_add(&large.cached_bytes, size);
}

static size_t cache_oldest(void)
{
    size_t old = 0;
    for (size_t i = 1; i < large.cached; i++)
        if (large.cache[i].since_ms < large.cache[old].since_ms)
            old = i;
    return old;
}

// Bring the cache back within its limits, least recently used ranges first;
// lock held. The ranges to unmap go to drop (at most EVICT_MAX, the rest
// on the next call). A range larger than the excess loses only its end, so
// the cache stays as full as the budget allows.
static size_t cache_trim(large_cached_t *drop)
{
    size_t n = 0;
    while (n < EVICT_MAX && large.cached > 0) {
        uint64_t limit = cache_limit();
        bool too_many = large.cached > count_limit();
        if (!too_many && large.cached_bytes <= limit)
            break;
        large_cached_t *c = &large.cache[cache_oldest()];
        uint64_t excess = large.cached_bytes - limit;
        if (!too_many && c->size > excess) {
            size_t cut = page_round((size_t)excess);
            c->size -= cut;
            total_add(&large.cached_bytes, -(uint64_t)cut);
            drop[n++] = (large_cached_t){ c->addr + c->size, cut, 0 };
            break;
        }
        drop[n++] = cache_remove((size_t)(c - large.cache));
    }
    return n;
}

// Take cached memory for a block of len bytes; lock held. The best fit of
// at least len wins: its pages are resident, so the block costs no page
// faults. The block is carved from the front of the range and the rest
// stays cached, resident, for the next request (a rest under one unit goes
// with the block). When nothing is large enough, the largest smaller range
// is taken (*short_by set) for the caller to mremap up to len: the pages it
// has stay resident and only the difference faults in, where a fresh
// mapping would fault in all of them.
static uintptr_t cache_take(size_t len, size_t *got, bool *short_by)
{
    size_t best = CACHE_MAX, below = CACHE_MAX;
    for (size_t i = 0; i < large.cached; i++) {
        size_t s = large.cache[i].size;
        if (s >= len && (best == CACHE_MAX || s < large.cache[best].size))
            best = i;
        if (s < len && (below == CACHE_MAX || s > large.cache[below].size))
            below = i;
    }
    *short_by = false;
    if (best == CACHE_MAX && (below == CACHE_MAX || MALLET_TRACK_ENABLED))
        return 0;
    if (best == CACHE_MAX) {
        // Checkers keep per-byte state a kernel move would not carry, so
        // their builds never get here (the test above).
        large_cached_t c = cache_remove(below);
        *got = c.size;
        *short_by = true;
        return c.addr;
    }
    large_cached_t *c = &large.cache[best];
    uintptr_t addr = c->addr;
    if (c->size - len < MALLET_UNIT_SIZE) {
        *got = c->size;
        cache_remove(best);
        return addr;
    }
    // Carving counts as use: the rest expires purge_delay_ms from now, so a
    // range that churn keeps drawing from stays resident.
    *got = len;
    c->addr += len;
    c->size -= len;
    c->since_ms = mallet__clock_ms();
    total_add(&large.cached_bytes, -(uint64_t)len);
    return addr;
}

#if !MALLET_TRACK_ENABLED && !MALLET_SECURE
// Take up to `want` bytes (at least `need`) of a cached range that starts
// exactly at addr, where a block ends: the block grows over it with no
// system call, and the range's resident pages come with it. Returns the
// bytes taken (0: no such range, or too short); lock held.
static size_t cache_take_after(uintptr_t addr, size_t need, size_t want)
{
    for (size_t i = 0; i < large.cached; i++) {
        large_cached_t *c = &large.cache[i];
        if (c->addr != addr || c->size < need)
            continue;
        size_t take = c->size < want ? c->size : want;
        if (c->size - take < MALLET_UNIT_SIZE) {
            take = c->size;
            cache_remove(i);
        } else {
            c->addr += take;
            c->size -= take;
            total_add(&large.cached_bytes, -(uint64_t)take);
        }
        return take;
    }
    return 0;
}
#endif

// Unmap ranges dropped from the cache; outside the lock.
static void release_all(const large_cached_t *drop, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        MALLET_TRACK_MEM_UNDEFINED((void *)drop[i].addr, drop[i].size);
        mallet__os_release((void *)drop[i].addr, drop[i].size);
    }
}

// Put back a range cache_take handed out that could not be grown (mremap
// refuses a range that spans two kernel mappings, as merged ranges may).
static void cache_return(uintptr_t addr, size_t size)
{
    large_cached_t drop[EVICT_MAX];
    mallet__lock(&mallet__large_lock);
    cache_put(addr, size, mallet__clock_ms());
    size_t n = cache_trim(drop);
    mallet__unlock(&mallet__large_lock);
    release_all(drop, n);
}

#if MALLET_SECURE
// The block at addr, len bytes mapped, now serves size bytes: everything
// but the last OS page accessible (cached ranges are inaccessible; a fresh
// mapping is not), the last one the guard, the gap up to it filled.
static bool secure_open(uintptr_t addr, size_t len, size_t size, bool fresh)
{
    size_t pg = mallet__os_page_size();
    if (fresh ? !mallet__os_protect_none((void *)(addr + len - pg), pg)
              : !mallet__os_commit((void *)addr, len - pg))
        return false;
    mallet__secure_fill_bytes(addr + size, len - pg - size);
    return true;
}

// Is the gap between the request and the guard whole?
static bool secure_gap_intact(uintptr_t addr, size_t len, size_t size)
{
    return mallet__secure_is_fill(addr + size, len - mallet__os_page_size() - size);
}
#endif

MALLET_PROF_FRAME void *mallet__large_alloc(size_t size, size_t align, bool *zeroed)
{
    mallet__init();
    if (size > PTRDIFF_MAX - (1u << 22) || align > PTRDIFF_MAX / 2) {
        errno = ENOMEM;
        return NULL;
    }
    // A request that fails and is retried (a cache range mremap refused, a
    // mapping refused before the cache was emptied) must not leave its
    // errno behind when the block comes after all.
    int saved = errno;
    if (mallet__guard_large_draw(size)) {
        void *g = mallet__guard_alloc(size, align);
        if (g) {
            // Fresh pages: zero. The profiler counts its bytes as any other's.
            uint32_t id = mallet__prof_enabled() ? mallet__prof_large_draw(page_round(size)) : 0;
            if (id) {
                mallet__guard_prof(g, id);
                mallet__prof_large_record((uintptr_t)g, page_round(size), id);
            }
            if (zeroed)
                *zeroed = true;
            return g;
        }
    }
    size_t len = page_round(size ? size : 1) + (MALLET_SECURE ? mallet__os_page_size() : 0);
    bool fresh = false;
    uintptr_t addr = 0;
    size_t got = len;
    if (align <= mallet__os_page_size()) {
        bool short_by;
        mallet__lock(&mallet__large_lock);
        addr = cache_take(len, &got, &short_by);
        mallet__unlock(&mallet__large_lock);
        if (short_by) {
            void *q = mallet__os_remap((void *)addr, got, len);
            if (q == NULL)
                cache_return(addr, got);
            addr = (uintptr_t)q;
            got = len;
        }
        align = 0;
    }
    if (addr == 0) {
        if (mallet__option(hugepages) && len >= MALLET_HUGE_SIZE && align < MALLET_HUGE_SIZE)
            align = MALLET_HUGE_SIZE;
        void *p = mallet__os_map(len, align);
        if (p == NULL) {
            // Cached mappings may be what stands in the way (address space,
            // the mapping limit): give them back and try once more.
            mallet__large_decay(0, true);
            p = mallet__os_map(len, align);
        }
        if (p == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        addr = (uintptr_t)p;
        fresh = true;
    }
    mallet__os_place((void *)addr, got, mallet__option(hugepages) != 0,
                     mallet__option(numa) ? mallet__numa_node_now() : -1);
#if MALLET_SECURE
    if (!secure_open(addr, got, size, fresh)) {
        mallet__os_release((void *)addr, got);
        errno = ENOMEM;
        return NULL;
    }
#endif
    uint32_t prof = mallet__prof_enabled() ? mallet__prof_large_draw(got) : 0;
    mallet__lock(&mallet__large_lock);
    bool ok = record_insert(addr, got, size, prof);
    mallet__unlock(&mallet__large_lock);
    if (!ok) {
        mallet__os_release((void *)addr, got);
        errno = ENOMEM;
        return NULL;
    }
    if (prof)
        mallet__prof_large_record(addr, got, prof);
    if (zeroed)
        *zeroed = fresh;
    MALLET_TRACK_MALLOC((void *)addr, size, got, fresh);
    errno = saved;
    return (void *)addr;
}

bool mallet__large_free(void *p, const char *func)
{
    uintptr_t addr = (uintptr_t)p;
    if (addr & (mallet__os_page_size() - 1))
        return false;
    mallet__lock(&mallet__large_lock);
    large_slot_t *s = large.table ? slot_find(addr) : NULL;
    if (s == NULL || s->state == SLOT_EMPTY || s->state == SLOT_GONE) {
        mallet__unlock(&mallet__large_lock);
        return false;
    }
    if (s->state == SLOT_FREED) {
        mallet__unlock(&mallet__large_lock);
        mallet__fatal("mallet", func, "double free of", p);
    }
    size_t size = s->size;
    uint32_t prof = s->prof;
#if MALLET_SECURE
    // Checked and closed before the range is cached: once it is, another
    // thread may carve it and open it again.
    if (!secure_gap_intact(addr, size, s->req)) {
        mallet__unlock(&mallet__large_lock);
        mallet__secure_overflow(addr, func);
    }
    mallet__os_protect_none(p, size);
#endif
    s->state = SLOT_FREED;
    large.live--;
    total_add(&large.live_bytes, -(uint64_t)size);
    MALLET_TRACK_FREE(p, size);
    large_cached_t drop[EVICT_MAX + 1];
    size_t n = 0;
#if !MALLET_TRACK_ENABLED && !MALLET_SECURE
    // The room a grown block was given beyond its request was never
    // written unless the program used its whole usable size: it goes back
    // to the OS, so the cache keeps the pages that are resident.
    size_t used = page_round(s->req);
    if (size - used >= MALLET_UNIT_SIZE) {
        drop[n++] = (large_cached_t){ addr + used, size - used, 0 };
        size = used;
    }
#endif
    cache_put(addr, size, mallet__clock_ms());
    n += cache_trim(drop + n);
    mallet__unlock(&mallet__large_lock);
    release_all(drop, n);
    if (prof)
        mallet__prof_drop(addr, prof);
    return true;
}

void mallet__large_forget(uintptr_t addr)
{
    mallet__lock(&mallet__large_lock);
    large_slot_t *s = large.table ? slot_find(addr) : NULL;
    if (s && s->state == SLOT_FREED)
        s->state = SLOT_GONE;
    mallet__unlock(&mallet__large_lock);
}

bool mallet__large_usable(const void *p, size_t *usable)
{
    mallet__lock(&mallet__large_lock);
    large_slot_t *s = record_live((uintptr_t)p);
    if (s)
        *usable = MALLET_TRACK_ENABLED || MALLET_SECURE ? s->req : s->size;
    mallet__unlock(&mallet__large_lock);
    return s != NULL;
}

// realloc as malloc, copy, free: NULL (errno ENOMEM) leaves p intact.
static void *resize_by_copy(void *p, size_t size, size_t held)
{
    void *q = mallet__large_alloc(size, 0, NULL);
    if (q) {
        memcpy(q, p, held < size ? held : size);
        mallet__large_free(p, "realloc");
    }
    return q;
}

#if !MALLET_TRACK_ENABLED && !MALLET_SECURE
// The live block at addr (slot s, len bytes) becomes len2 bytes serving
// size, where it is: the bytes it gains came from the cache, the bytes it
// gives up go to it. Lock held on entry, released on return.
static void resize_in_place(large_slot_t *s, uintptr_t addr, size_t len, size_t len2, size_t size)
{
    // The profiler sees the request, rounded to pages, not the room.
    size_t was = page_round(s->req), now_req = page_round(size);
    uint32_t old_prof = s->prof, prof = mallet__prof_large_resize(was, now_req, old_prof);
    uint64_t now = mallet__clock_ms();
    total_add(&large.live_bytes, len2 - len);
    s->size = len2;
    s->req = size;
    s->prof = prof;
    large_cached_t drop[EVICT_MAX];
    size_t n = 0;
    if (len2 > len) {
        peak_note(now);
    } else {
        cache_put(addr + len2, len - len2, now);
        n = cache_trim(drop);
    }
    mallet__unlock(&mallet__large_lock);
    release_all(drop, n);
    if (old_prof && prof)
        mallet__prof_move(addr, prof, addr, now_req);
    else if (old_prof)
        mallet__prof_drop(addr, old_prof);
    else if (prof)
        mallet__prof_large_record(addr, now_req, prof);
}
#endif

MALLET_PROF_FRAME void *mallet__large_resize(void *p, size_t size)
{
    if (size > PTRDIFF_MAX - (1u << 22)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t guard = MALLET_SECURE ? mallet__os_page_size() : 0;
    size_t len = page_round(size) + guard;
    mallet__lock(&mallet__large_lock);
    large_slot_t *s = record_live((uintptr_t)p);
    size_t old = s ? s->size : 0, old_req = s ? s->req : 0;
    (void)old_req;
#if MALLET_SECURE
    if (s && !secure_gap_intact((uintptr_t)p, old, old_req)) {
        mallet__unlock(&mallet__large_lock);
        mallet__secure_overflow((uintptr_t)p, "realloc");
    }
#endif
#if !MALLET_TRACK_ENABLED && !MALLET_SECURE
    // A block that grows takes the cached range after it when there is one,
    // and leaves room: 1/GROW_ROOM of its size again, address space only (a page is
    // resident once written), so a buffer grown a few bytes at a time moves
    // or calls mremap a logarithmic number of times, not once a page. A
    // block that shrinks below half keeps its place and caches its tail,
    // resident, for the next request. (The checker builds keep exact sizes,
    // the secure build its guard page at the end: both take the paths
    // below.)
    size_t room = len + (len > old ? page_round(old / GROW_ROOM) : 0);
    if (s && len > old) {
        size_t got = cache_take_after((uintptr_t)p + old, len - old, room - old);
        if (got) {
            resize_in_place(s, (uintptr_t)p, old, old + got, size);
            return p;
        }
    } else if (s && len < old / 2) {
        resize_in_place(s, (uintptr_t)p, old, len, size);
        return p;
    }
#elif !MALLET_TRACK_ENABLED
    size_t room = len;
#endif
    if (s && len <= old && len >= old / 2) {
        s->req = size;
#if MALLET_SECURE
        // The bytes the request gives up join the gap.
        if (size < old_req)
            mallet__secure_fill_bytes((uintptr_t)p + size, old_req - size);
#endif
        mallet__unlock(&mallet__large_lock);
        MALLET_TRACK_RESIZE(p, old_req, size, old);
        return p;
    }
    mallet__unlock(&mallet__large_lock);
    if (s == NULL)
        return NULL;
#if MALLET_TRACK_ENABLED
    // Checkers keep per-byte state that a kernel move would not carry.
    return resize_by_copy(p, size, old_req);
#else
#if MALLET_SECURE
    // The guard opens for the move, and closes at the new end.
    if (!mallet__os_commit((char *)p + old - guard, guard))
        return resize_by_copy(p, size, old_req);
#endif
    void *q = room > len ? mallet__os_remap(p, old, room) : NULL;
    if (q != NULL)
        len = room;
    else
        q = mallet__os_remap(p, old, len);
    if (q == NULL) {
#if MALLET_SECURE
        mallet__os_protect_none((char *)p + old - guard, guard);
        return resize_by_copy(p, size, old_req);
#else
        // mremap refuses a block that spans two kernel mappings (one carved
        // from merged cached ranges may); a copy still works.
        return resize_by_copy(p, size, old);
#endif
    }
#if MALLET_SECURE
    mallet__os_protect_none((char *)q + len - guard, guard);
    mallet__secure_fill_bytes((uintptr_t)q + size, len - guard - size);
#endif
    mallet__lock(&mallet__large_lock);
    s = slot_find((uintptr_t)p);
    uint32_t old_prof = s->prof, prof = mallet__prof_large_resize(page_round(old_req) + guard, page_round(size) + guard, old_prof);
    if (q == p) {
        total_add(&large.live_bytes, len - old);
        peak_note(mallet__clock_ms());
        s->size = len;
        s->req = size;
        s->prof = prof;
    } else {
        s->state = SLOT_GONE;
        large.live--;
        total_add(&large.live_bytes, -(uint64_t)old);
        if (!record_insert((uintptr_t)q, len, size, prof)) {
            mallet__unlock(&mallet__large_lock);
            mallet__fatal("mallet", "realloc", "out of memory for the record of", q);
        }
    }
    mallet__unlock(&mallet__large_lock);
    if (old_prof && prof)
        mallet__prof_move((uintptr_t)p, prof, (uintptr_t)q, page_round(size) + guard);
    else if (old_prof)
        mallet__prof_drop((uintptr_t)p, old_prof);
    else if (prof)
        mallet__prof_large_record((uintptr_t)q, page_round(size) + guard, prof);
    return q;
#endif
}

void mallet__large_decay(uint64_t now, bool force)
{
    uint64_t delay = (uint64_t)mallet__option(purge_delay_ms);
    large_cached_t drop[CACHE_MAX];
    size_t n = 0;
    mallet__lock(&mallet__large_lock);
    peak_note(now);
    for (size_t i = 0; i < large.cached;) {
        if (force || large.cache[i].since_ms + delay <= now) {
            drop[n++] = cache_remove(i);
        } else {
            i++;
        }
    }
    mallet__unlock(&mallet__large_lock);
    release_all(drop, n);
}

void mallet__large_totals(mallet_large_totals_t *t)
{
    mallet__lock(&mallet__large_lock);
    t->live = large.live;
    t->allocated = large.live_bytes;
    t->mapped = large.live_bytes + large.cached_bytes;
    t->cached = large.cached_bytes;
    mallet__unlock(&mallet__large_lock);
}

void mallet__large_after_fork(void)
{
    mallet_lock_found_t found = mallet__lock_after_fork(&mallet__large_lock);
    if (found == MALLET_LOCK_WAS_MINE)
        return;
    if (found == MALLET_LOCK_WAS_LOST) {
        // A vanished thread was changing the cache or the table. The cache
        // may list a range twice, or one handed out: it is given up (its
        // ranges stay mapped, unused). The published table and its live
        // records are whole (slot_set, table_rebuild); the counts are made
        // again from them.
        large.cached = 0;
        large.cached_bytes = 0;
        large.used = large.live = large.live_bytes = 0;
        large_table_t *t = large.table;
        for (size_t i = 0; t && i < t->cap; i++) {
            large_slot_t *s = &t->slot[i];
            large.used += s->state != SLOT_EMPTY;
            if (s->state == SLOT_LIVE) {
                large.live++;
                large.live_bytes += s->size;
            }
        }
    }
    mallet__unlock(&mallet__large_lock);
}

uint64_t mallet__large_mapped(void)
{
    return __atomic_load_n(&large.live_bytes, __ATOMIC_RELAXED) +
           __atomic_load_n(&large.cached_bytes, __ATOMIC_RELAXED);
}
