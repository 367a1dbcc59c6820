// SPDX-License-Identifier: MIT
//
// large_cache.c -- the cache of freed large ranges: merged with their
// cached neighbours, carved by best fit, bounded by a budget that follows
// the recent peak of live large bytes (the peak windows), expired on the
// clock (mallet__large_decay). large.c hands it the ranges its blocks
// leave and takes them back; both share the state of large_cache.h, under
// large_lock, and unmap outside it.
//
// The secure build puts a freed range in a quarantine first, and places
// blocks in cached ranges by rules of its own (cache_place).
#include "large.h"

#include "base/base.h"
#include "debug/debug.h"
#include "os/os.h"
#include "large_cache.h"
#include "size_class.h"

// Note the live bytes in the peak windows; lock held. A window lasts
// PEAK_DELAYS decay delays: long enough to span many rounds of churn,
// short enough that a peak long past stops holding memory in the cache
// (see cache_limit).
void mallet__large_peak_note(uint64_t now)
{
    if (now - mallet__large.peak_since >= PEAK_DELAYS * (uint64_t)mallet__option(purge_delay_ms)) {
        mallet__large.peak_before = mallet__large.peak;
        mallet__large.peak = 0;
        mallet__large.peak_since = now;
    }
    if (mallet__large.live_bytes > mallet__large.peak)
        mallet__large.peak = mallet__large.live_bytes;
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
    uint64_t peak = mallet__large.peak > mallet__large.peak_before ? mallet__large.peak : mallet__large.peak_before;
    if (floor == 0)
        return 0;
    return floor + (peak > mallet__large.live_bytes ? peak - mallet__large.live_bytes : 0);
}

// Entries the cache may hold: one slot of the array always stays free for
// the next free's range, and cached plus live (plus quarantined) mappings
// stay under map_budget.
static size_t count_limit(void)
{
    uint64_t n = (uint64_t)mallet__option(large_cache_count);
    uint64_t budget = (uint64_t)mallet__option(map_budget);
#if MALLET_SECURE
    budget = budget > mallet__large.quarantined ? budget - mallet__large.quarantined : 0;
#endif
    if (n > CACHE_MAX - 1)
        n = CACHE_MAX - 1;
    if (mallet__large.live + n >= budget)
        n = mallet__large.live < budget ? budget - mallet__large.live - 1 : 0;
    return (size_t)n;
}

large_cached_t mallet__large_cache_remove(size_t i)
{
    large_cached_t c = mallet__large.cache[i];
    large_total_add(&mallet__large.cached_bytes, -(uint64_t)c.size);
    mallet__large.cache[i] = mallet__large.cache[--mallet__large.cached];
    return c;
}

// Cache the freed range [addr, addr + size), merged with the cached ranges
// it touches: a merged range serves a request larger than any of its parts
// without a fault. Lock held; there is a free slot (see count_limit).
void mallet__large_cache_put(uintptr_t addr, size_t size, uint64_t now)
{
    for (size_t i = 0; i < mallet__large.cached;) {
        large_cached_t *c = &mallet__large.cache[i];
        if (c->addr + c->size == addr || addr + size == c->addr) {
            large_cached_t n = mallet__large_cache_remove(i);
            addr = n.addr < addr ? n.addr : addr;
            size += n.size;
        } else {
            i++;
        }
    }
    mallet__large.cache[mallet__large.cached++] = (large_cached_t){ addr, size, now };
    large_total_add(&mallet__large.cached_bytes, size);
}

#if MALLET_SECURE
// The quarantine. Best fit hands the range of a block just freed to the
// next request of its size, so a write through a stale pointer would land
// in the new block; a freed range waits here instead, inaccessible, until
// QUARANTINE_RANGES more frees have come after it, and only then joins the
// cache. Its depth was measured on bench/lib_large 1500 (16 live blocks of
// 64 KiB to 24 MiB, one replaced per step): 2, 4 and 8 ranges ran within
// the noise of one another (medians of 5 runs: 1.08, 1.21, 1.22 s on one
// occasion, 1.81, 1.50, 1.38 s on another; fewer cached ranges fit a
// request, more fresh memory is mapped), so the deepest: a stale pointer
// keeps faulting for 8 large frees. Quarantined bytes count in the cache's
// budget and age like cached ones: when the budget or the clock drops them
// (after every cached range, the oldest first) they are unmapped, and the
// kernel may map the address again.
static large_cached_t quarantine_pop(void)
{
    large_cached_t c = mallet__large.quarantine[mallet__large.q_head];
    mallet__large.q_head = (mallet__large.q_head + 1) % QUARANTINE_RANGES;
    mallet__large.quarantined--;
    large_total_add(&mallet__large.cached_bytes, -(uint64_t)c.size);
    return c;
}

// Quarantine [addr, addr + size), freed and inaccessible; the oldest
// quarantined range, when there are QUARANTINE_RANGES already, joins the
// cache. Lock held; the caller trims.
void mallet__large_quarantine_put(uintptr_t addr, size_t size, uint64_t now)
{
    if (mallet__large.quarantined == QUARANTINE_RANGES) {
        large_cached_t c = quarantine_pop();
        mallet__large_cache_put(c.addr, c.size, now);
    }
    size_t at = (mallet__large.q_head + mallet__large.quarantined++) % QUARANTINE_RANGES;
    mallet__large.quarantine[at] = (large_cached_t){ addr, size, now };
    large_total_add(&mallet__large.cached_bytes, size);
}
#endif

static size_t cache_oldest(void)
{
    size_t old = 0;
    for (size_t i = 1; i < mallet__large.cached; i++)
        if (mallet__large.cache[i].since_ms < mallet__large.cache[old].since_ms)
            old = i;
    return old;
}

// Bring the cache back within its limits, least recently used ranges first;
// lock held. The ranges to unmap go to drop (at most EVICT_MAX, the rest
// on the next call). A range larger than the excess loses only its end, so
// the cache stays as full as the budget allows.
size_t mallet__large_cache_trim(large_cached_t *drop)
{
    size_t n = 0;
    while (n < EVICT_MAX && mallet__large.cached > 0) {
        uint64_t limit = cache_limit();
        bool too_many = mallet__large.cached > count_limit();
        if (!too_many && mallet__large.cached_bytes <= limit)
            break;
        large_cached_t *c = &mallet__large.cache[cache_oldest()];
        uint64_t excess = mallet__large.cached_bytes - limit;
        if (!too_many && c->size > excess) {
            size_t cut = large_page_round((size_t)excess);
            c->size -= cut;
            large_total_add(&mallet__large.cached_bytes, -(uint64_t)cut);
            drop[n++] = (large_cached_t){ c->addr + c->size, cut, 0 };
            break;
        }
        drop[n++] = mallet__large_cache_remove((size_t)(c - mallet__large.cache));
    }
#if MALLET_SECURE
    while (n < EVICT_MAX && mallet__large.cached == 0 && mallet__large.quarantined > 0 &&
           mallet__large.cached_bytes > cache_limit())
        drop[n++] = quarantine_pop();
#endif
    return n;
}

#if MALLET_SECURE
// Where a block of len bytes goes in cached range c, 0 when it does not
// (the secure build; large.c says why huge pages decide it). A block of a
// huge page or more starts on a huge page boundary, so that each of its
// huge pages is one page table entry for the kernel to flip. A smaller one
// keeps out of the range's whole huge pages: protecting part of one splits
// it into 4 KiB pages for good, dear to open again at every later reuse,
// so the block goes before the range's first whole huge page or after its
// last, and into no range that has no room there (a smaller range may
// grow to it, or fresh memory serves it).
static uintptr_t cache_place(const large_cached_t *c, size_t len)
{
    uintptr_t start = c->addr, end = c->addr + c->size;
    uintptr_t up = (start + MALLET_HUGE_SIZE - 1) & ~(uintptr_t)(MALLET_HUGE_SIZE - 1);
    if (len - mallet__os_page_size() >= MALLET_HUGE_SIZE)
        return up < end && end - up >= len ? up : 0;
    if (c->size < len)
        return 0;
    if (up + MALLET_HUGE_SIZE > end || up - start >= len)
        return start;
    if (end - (end & ~(uintptr_t)(MALLET_HUGE_SIZE - 1)) >= len)
        return end - len;
    return 0;
}
#endif

static inline bool cache_fits(const large_cached_t *c, size_t len)
{
#if MALLET_SECURE
    return cache_place(c, len) != 0;
#else
    return c->size >= len;
#endif
}

// May a request of len bytes grow a smaller cached range? Not a secure
// block of a huge page or more: mremap would move the range to an address
// of the kernel's choosing, splitting its huge pages.
static inline bool cache_may_grow(size_t len)
{
#if MALLET_SECURE
    return len - mallet__os_page_size() < MALLET_HUGE_SIZE;
#else
    (void)len;
    return true;
#endif
}

// Take cached memory for a block of len bytes; lock held. The best fit of
// at least len wins: its pages are resident, so the block costs no page
// faults. The block is carved from the front of the range and the rest
// stays cached, resident, for the next request (a rest under one unit goes
// with the block). When nothing is large enough, the largest smaller range
// is taken (*short_by set) for the caller to mremap up to len: the pages it
// has stay resident and only the difference faults in, where a fresh
// mapping would fault in all of them. (The secure build places the block
// by cache_place's rules; the caller trims after it, as the range may
// leave two pieces.)
uintptr_t mallet__large_cache_take(size_t len, size_t *got, bool *short_by)
{
    size_t best = CACHE_MAX, below = CACHE_MAX;
    for (size_t i = 0; i < mallet__large.cached; i++) {
        size_t s = mallet__large.cache[i].size;
        if (cache_fits(&mallet__large.cache[i], len) && (best == CACHE_MAX || s < mallet__large.cache[best].size))
            best = i;
        if (s < len && cache_may_grow(len) && (below == CACHE_MAX || s > mallet__large.cache[below].size))
            below = i;
    }
    *short_by = false;
    if (best == CACHE_MAX && (below == CACHE_MAX || MALLET_TRACK_ENABLED))
        return 0;
    if (best == CACHE_MAX) {
        // Checkers keep per-byte state a kernel move would not carry, so
        // their builds never get here (the test above).
        large_cached_t c = mallet__large_cache_remove(below);
        *got = c.size;
        *short_by = true;
        return c.addr;
    }
    large_cached_t *c = &mallet__large.cache[best];
    uintptr_t addr = c->addr;
#if MALLET_SECURE
    uintptr_t at = cache_place(c, len);
    if (at != addr) {
        // The bytes before the block stay in c, those after it (a rest
        // under one unit goes with the block) become an entry of their own.
        uintptr_t end = c->addr + c->size;
        size_t rest = (size_t)(end - (at + len));
        if (rest < MALLET_UNIT_SIZE || mallet__large.cached == CACHE_MAX) {
            len += rest;
        } else {
            mallet__large.cache[mallet__large.cached++] = (large_cached_t){ at + len, rest, c->since_ms };
        }
        c->size = (size_t)(at - c->addr);
        c->since_ms = mallet__clock_ms();
        large_total_add(&mallet__large.cached_bytes, -(uint64_t)len);
        *got = len;
        return at;
    }
#endif
    if (c->size - len < MALLET_UNIT_SIZE) {
        *got = c->size;
        mallet__large_cache_remove(best);
        return addr;
    }
    // Carving counts as use: the rest expires purge_delay_ms from now, so a
    // range that churn keeps drawing from stays resident.
    *got = len;
    c->addr += len;
    c->size -= len;
    c->since_ms = mallet__clock_ms();
    large_total_add(&mallet__large.cached_bytes, -(uint64_t)len);
    return addr;
}

#if !MALLET_TRACK_ENABLED && !MALLET_SECURE
// Take up to `want` bytes (at least `need`) of a cached range that starts
// exactly at addr, where a block ends: the block grows over it with no
// system call, and the range's resident pages come with it. Returns the
// bytes taken (0: no such range, or too short); lock held.
size_t mallet__large_cache_take_after(uintptr_t addr, size_t need, size_t want)
{
    for (size_t i = 0; i < mallet__large.cached; i++) {
        large_cached_t *c = &mallet__large.cache[i];
        if (c->addr != addr || c->size < need)
            continue;
        size_t take = c->size < want ? c->size : want;
        if (c->size - take < MALLET_UNIT_SIZE) {
            take = c->size;
            mallet__large_cache_remove(i);
        } else {
            c->addr += take;
            c->size -= take;
            large_total_add(&mallet__large.cached_bytes, -(uint64_t)take);
        }
        return take;
    }
    return 0;
}
#endif

// Unmap ranges dropped from the cache; outside the lock.
void mallet__large_release(const large_cached_t *drop, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        MALLET_TRACK_MEM_UNDEFINED((void *)drop[i].addr, drop[i].size);
        mallet__os_release((void *)drop[i].addr, drop[i].size);
    }
}

// Put back a range cache_take handed out that could not be grown (mremap
// refuses a range that spans two kernel mappings, as merged ranges may).
void mallet__large_cache_return(uintptr_t addr, size_t size)
{
    large_cached_t drop[EVICT_MAX];
    mallet__lock(&mallet__large_lock);
    mallet__large_cache_put(addr, size, mallet__clock_ms());
    size_t n = mallet__large_cache_trim(drop);
    mallet__unlock(&mallet__large_lock);
    mallet__large_release(drop, n);
}

void mallet__large_decay(uint64_t now, bool force)
{
    uint64_t delay = (uint64_t)mallet__option(purge_delay_ms);
    large_cached_t drop[CACHE_MAX + QUARANTINE_RANGES];
    size_t n = 0;
    mallet__lock(&mallet__large_lock);
    mallet__large_peak_note(now);
    for (size_t i = 0; i < mallet__large.cached;) {
        if (force || mallet__large.cache[i].since_ms + delay <= now) {
            drop[n++] = mallet__large_cache_remove(i);
        } else {
            i++;
        }
    }
#if MALLET_SECURE
    while (mallet__large.quarantined > 0 &&
           (force || mallet__large.quarantine[mallet__large.q_head].since_ms + delay <= now))
        drop[n++] = quarantine_pop();
#endif
    mallet__unlock(&mallet__large_lock);
    mallet__large_release(drop, n);
}
