// SPDX-License-Identifier: MIT
//
// large.c -- large blocks: their mappings, the address-keyed record table,
// mremap growth. The cache of freed ranges is large_cache.c's.
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
// the guard hold the fill (harden.h), checked at free; a freed block's range
// is made inaccessible at once, quarantined behind the ranges freed after it
// (large_cache.c), kept resident in the cache, and made accessible again
// only when a block is carved from it.
//
// That round trip through inaccessible is what a reused secure block costs,
// and the page size decides its price. bench/page_prot.c on the machine
// this was tuned on (a KVM guest whose host shadows its page tables: dmesg
// "Booting paravirtualized kernel on PVM"), ns per 4 KiB of a 4 MiB range,
// median of 3 runs of 100 rounds:
//
//                                       4 KiB pages   2 MiB huge pages
//   touch a resident page                       11                 11
//   mprotect NONE, then READ|WRITE        275 +  90            38 + 31
//   the first touch after that                 4500                 17
//   MADV_DONTNEED, then touch (fresh)    176 + 11400           24 + 132
//
// The first touch of a 4 KiB page made inaccessible and opened again costs
// ~4.5 us (up to ~7 on a busy host): the host rebuilds its entry for the
// page. A huge page pays that once for 512 of them. With 4 KiB pages
// bench/lib_large ran 10.9 times as long as the default build, nearly all
// of it in those touches. So the secure build maps its large blocks with
// huge pages: every new mapping is advised MADV_HUGEPAGE; a block of 2 MiB
// or more starts on a 2 MiB boundary and is rounded up to whole huge pages
// (what lies between the request and the guard is gap, filled and checked
// at free), so that no byte of it sits in a 4 KiB page; and the cache
// carves blocks so as to keep its huge pages whole (cache_place). The price
// is memory: up to 2 MiB - 4 KiB more per block of 2 MiB or more (a block
// just over 2 MiB takes 4 MiB), and the whole of every huge page a program
// touches at all. Rounding only the blocks it grows by a quarter or less
// left bench/lib_large 1500 at 2.16 s against 1.50 s (medians of 5, same
// occasion). Blocks under 2 MiB keep 4 KiB pages, and on such a host still
// pay ~4.5 us per page at each reuse.
#include "large.h"

#include <errno.h>
#include <string.h>

#include "debug/debug.h"
#include "base/base.h"
#include "os/os.h"
#include "harden.h"
#include "size_class.h"
#include "large_cache.h"
#include "sample.h"

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

// A large block that grows is given this fraction of its old size beyond
// the request (mallet__large_resize).
#define GROW_ROOM 4
mallet_lock_t mallet__large_lock;
large_state_t mallet__large;
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
    return table_find(mallet__large.table, addr);
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
    large_table_t *t = mallet__os_map(table_bytes(cap), 0), *old = mallet__large.table;
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
    __atomic_store_n(&mallet__large.table, t, __ATOMIC_RELEASE);
    mallet__large.used = used;
    if (old)
        mallet__os_release(old, table_bytes(old->cap));
    return true;
}

// Record a live block (prof: its sample id, or 0); large_lock held.
static bool record_insert(uintptr_t addr, size_t size, size_t req, uint32_t prof)
{
    if (mallet__large.table == NULL || (mallet__large.used + 1) * 10 > mallet__large.table->cap * 7) {
        if (!table_rebuild((mallet__large.live + 1) * 4))
            return false;
    }
    large_slot_t *s = slot_find(addr);
    if (s->state == SLOT_EMPTY)
        mallet__large.used++;
    slot_set(s, addr, size, req, prof, SLOT_LIVE);
    mallet__large.live++;
    large_total_add(&mallet__large.live_bytes, size);
    mallet__large_peak_note(mallet__clock_ms());
    return true;
}

static large_slot_t *record_live(uintptr_t addr)
{
    if (mallet__large.table == NULL)
        return NULL;
    large_slot_t *s = slot_find(addr);
    return s->state == SLOT_LIVE ? s : NULL;
}

#if MALLET_SECURE
// The mapping length of a block serving size bytes: its pages, rounded up
// to whole huge pages from one huge page on (see above), and the guard.
static size_t secure_len(size_t size)
{
    size_t body = large_page_round(size ? size : 1);
    if (body >= MALLET_HUGE_SIZE)
        body = (body + MALLET_HUGE_SIZE - 1) & ~(MALLET_HUGE_SIZE - 1);
    return body + mallet__os_page_size();
}

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
    if (mallet__hooks.guard_large_draw(size)) {
        void *g = mallet__hooks.guard_alloc(size, align);
        if (g) {
            // Fresh pages: zero. The profiler counts its bytes as any other's.
            uint32_t id = mallet__prof_enabled() ? mallet__hooks.prof_large_draw(large_page_round(size)) : 0;
            if (id) {
                mallet__hooks.guard_prof(g, id);
                mallet__hooks.prof_large_record((uintptr_t)g, large_page_round(size), id);
            }
            if (zeroed)
                *zeroed = true;
            return g;
        }
    }
#if MALLET_SECURE
    size_t len = secure_len(size);
#else
    size_t len = large_page_round(size ? size : 1);
#endif
    bool fresh = false;
    uintptr_t addr = 0;
    size_t got = len;
    if (align <= mallet__os_page_size()) {
        bool short_by;
        mallet__lock(&mallet__large_lock);
        addr = mallet__large_cache_take(len, &got, &short_by);
#if MALLET_SECURE
        large_cached_t drop[EVICT_MAX];
        size_t n = mallet__large_cache_trim(drop);
#endif
        mallet__unlock(&mallet__large_lock);
#if MALLET_SECURE
        mallet__large_release(drop, n);
#endif
        if (short_by) {
            void *q = mallet__os_remap((void *)addr, got, len);
            if (q == NULL)
                mallet__large_cache_return(addr, got);
            addr = (uintptr_t)q;
            got = len;
        }
        align = 0;
    }
    if (addr == 0) {
        if (mallet__option(hugepages) && len >= MALLET_HUGE_SIZE && align < MALLET_HUGE_SIZE)
            align = MALLET_HUGE_SIZE;
#if MALLET_SECURE
        if (len > MALLET_HUGE_SIZE && align < MALLET_HUGE_SIZE)
            align = MALLET_HUGE_SIZE;
#endif
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
    mallet__os_place((void *)addr, got, mallet__option(hugepages) != 0 || (MALLET_SECURE && fresh),
                     mallet__option(numa) ? mallet__numa_node_now() : -1);
#if MALLET_SECURE
    if (!secure_open(addr, got, size, fresh)) {
        mallet__os_release((void *)addr, got);
        errno = ENOMEM;
        return NULL;
    }
#endif
    uint32_t prof = mallet__prof_enabled() ? mallet__hooks.prof_large_draw(got) : 0;
    mallet__lock(&mallet__large_lock);
    bool ok = record_insert(addr, got, size, prof);
    mallet__unlock(&mallet__large_lock);
    if (!ok) {
        mallet__os_release((void *)addr, got);
        errno = ENOMEM;
        return NULL;
    }
    if (prof)
        mallet__hooks.prof_large_record(addr, got, prof);
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
    large_slot_t *s = mallet__large.table ? slot_find(addr) : NULL;
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
    mallet__large.live--;
    large_total_add(&mallet__large.live_bytes, -(uint64_t)size);
    MALLET_TRACK_FREE(p, size);
    large_cached_t drop[EVICT_MAX + 1];
    size_t n = 0;
#if !MALLET_TRACK_ENABLED && !MALLET_SECURE
    // The room a grown block was given beyond its request was never
    // written unless the program used its whole usable size: it goes back
    // to the OS, so the cache keeps the pages that are resident.
    size_t used = large_page_round(s->req);
    if (size - used >= MALLET_UNIT_SIZE) {
        drop[n++] = (large_cached_t){ addr + used, size - used, 0 };
        size = used;
    }
#endif
#if MALLET_SECURE
    mallet__large_quarantine_put(addr, size, mallet__clock_ms());
#else
    mallet__large_cache_put(addr, size, mallet__clock_ms());
#endif
    n += mallet__large_cache_trim(drop + n);
    mallet__unlock(&mallet__large_lock);
    mallet__large_release(drop, n);
    if (prof)
        mallet__hooks.prof_drop(addr, prof);
    return true;
}

void mallet__large_forget(uintptr_t addr)
{
    mallet__lock(&mallet__large_lock);
    large_slot_t *s = mallet__large.table ? slot_find(addr) : NULL;
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
    size_t was = large_page_round(s->req), now_req = large_page_round(size);
    uint32_t old_prof = s->prof, prof = mallet__hooks.prof_large_resize(was, now_req, old_prof);
    uint64_t now = mallet__clock_ms();
    large_total_add(&mallet__large.live_bytes, len2 - len);
    s->size = len2;
    s->req = size;
    s->prof = prof;
    large_cached_t drop[EVICT_MAX];
    size_t n = 0;
    if (len2 > len) {
        mallet__large_peak_note(now);
    } else {
        mallet__large_cache_put(addr + len2, len - len2, now);
        n = mallet__large_cache_trim(drop);
    }
    mallet__unlock(&mallet__large_lock);
    mallet__large_release(drop, n);
    if (old_prof && prof)
        mallet__hooks.prof_move(addr, prof, addr, now_req);
    else if (old_prof)
        mallet__hooks.prof_drop(addr, old_prof);
    else if (prof)
        mallet__hooks.prof_large_record(addr, now_req, prof);
}
#endif

MALLET_PROF_FRAME void *mallet__large_resize(void *p, size_t size)
{
    if (size > PTRDIFF_MAX - (1u << 22)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t guard = MALLET_SECURE ? mallet__os_page_size() : 0;
#if MALLET_SECURE
    size_t len = secure_len(size);
#else
    size_t len = large_page_round(size) + guard;
#endif
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
    size_t room = len + (len > old ? large_page_round(old / GROW_ROOM) : 0);
    if (s && len > old) {
        size_t got = mallet__large_cache_take_after((uintptr_t)p + old, len - old, room - old);
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
    uint32_t old_prof = s->prof, prof = mallet__hooks.prof_large_resize(large_page_round(old_req) + guard, large_page_round(size) + guard, old_prof);
    if (q == p) {
        large_total_add(&mallet__large.live_bytes, len - old);
        mallet__large_peak_note(mallet__clock_ms());
        s->size = len;
        s->req = size;
        s->prof = prof;
    } else {
        s->state = SLOT_GONE;
        mallet__large.live--;
        large_total_add(&mallet__large.live_bytes, -(uint64_t)old);
        if (!record_insert((uintptr_t)q, len, size, prof)) {
            mallet__unlock(&mallet__large_lock);
            mallet__fatal("mallet", "realloc", "out of memory for the record of", q);
        }
    }
    mallet__unlock(&mallet__large_lock);
    if (old_prof && prof)
        mallet__hooks.prof_move((uintptr_t)p, prof, (uintptr_t)q, large_page_round(size) + guard);
    else if (old_prof)
        mallet__hooks.prof_drop((uintptr_t)p, old_prof);
    else if (prof)
        mallet__hooks.prof_large_record((uintptr_t)q, large_page_round(size) + guard, prof);
    return q;
#endif
}

void mallet__large_totals(mallet_large_totals_t *t)
{
    mallet__lock(&mallet__large_lock);
    t->live = mallet__large.live;
    t->allocated = mallet__large.live_bytes;
    t->mapped = mallet__large.live_bytes + mallet__large.cached_bytes;
    t->cached = mallet__large.cached_bytes;
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
        mallet__large.cached = 0;
        mallet__large.cached_bytes = 0;
#if MALLET_SECURE
        mallet__large.quarantined = 0;
#endif
        mallet__large.used = mallet__large.live = mallet__large.live_bytes = 0;
        large_table_t *t = mallet__large.table;
        for (size_t i = 0; t && i < t->cap; i++) {
            large_slot_t *s = &t->slot[i];
            mallet__large.used += s->state != SLOT_EMPTY;
            if (s->state == SLOT_LIVE) {
                mallet__large.live++;
                mallet__large.live_bytes += s->size;
            }
        }
    }
    mallet__unlock(&mallet__large_lock);
}

uint64_t mallet__large_mapped(void)
{
    return __atomic_load_n(&mallet__large.live_bytes, __ATOMIC_RELAXED) +
           __atomic_load_n(&mallet__large.cached_bytes, __ATOMIC_RELAXED);
}
