// SPDX-License-Identifier: MIT
//
// large_cache.h -- private to large.c and large_cache.c: the state they
// share under large_lock (the record table, the cache of freed ranges, the
// secure build's quarantine, the peak windows) and the cache's functions.
#ifndef MALLET_LARGE_CACHE_H
#define MALLET_LARGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os/os.h"
#include "harden.h"

typedef struct large_cached {
    uintptr_t addr;        // range start
    size_t size;           // range length
    uint64_t since_ms;     // when it was last freed into or carved from
} large_cached_t;

#define CACHE_MAX 256
// Cached ranges one free may unmap to bring the cache within its limits.
#define EVICT_MAX 8
// A peak window lasts this many decay delays (mallet__large_peak_note).
#define PEAK_DELAYS 4
// Freed ranges the secure build keeps out of reach of reuse, the newest
// ones (large_cache.c); none in the default build.
#if MALLET_SECURE
#define QUARANTINE_RANGES 8
#else
#define QUARANTINE_RANGES 0
#endif

typedef struct large_state {
    struct large_table *table;  // the records
    size_t used;           // slots not empty
    uint64_t live;         // live blocks
    uint64_t live_bytes;   // their mapping lengths
    large_cached_t cache[CACHE_MAX];  // freed ranges kept for reuse, none adjacent
    size_t cached;         // entries in cache
    uint64_t cached_bytes; // their lengths
    uint64_t peak;         // most live bytes in the current peak window
    uint64_t peak_before;  // most live bytes in the window before it
    uint64_t peak_since;   // when the current window began, in ms
#if MALLET_SECURE
    large_cached_t quarantine[QUARANTINE_RANGES];  // the newest freed ranges, a ring
    size_t q_head;         // the oldest of them
    size_t quarantined;    // how many (their bytes count in cached_bytes)
#endif
} large_state_t;

extern large_state_t mallet__large;

// The byte totals are written under large_lock and read without it (for
// the purger's start-up test, mallet__large_mapped): relaxed atomic stores.
static inline void large_total_add(uint64_t *total, uint64_t delta)
{
    __atomic_store_n(total, *total + delta, __ATOMIC_RELAXED);
}

static inline size_t large_page_round(size_t n)
{
    size_t pg = mallet__os_page_size();
    return (n + pg - 1) & ~(pg - 1);
}

// The cache's functions (large_cache.c, where each is explained); lock held
// except by mallet__large_cache_return and mallet__large_release.
void mallet__large_peak_note(uint64_t now);
large_cached_t mallet__large_cache_remove(size_t i);
void mallet__large_cache_put(uintptr_t addr, size_t size, uint64_t now);
size_t mallet__large_cache_trim(large_cached_t *drop);
uintptr_t mallet__large_cache_take(size_t len, size_t *got, bool *short_by);
size_t mallet__large_cache_take_after(uintptr_t addr, size_t need, size_t want);
void mallet__large_cache_return(uintptr_t addr, size_t size);
void mallet__large_release(const large_cached_t *drop, size_t n);
#if MALLET_SECURE
void mallet__large_quarantine_put(uintptr_t addr, size_t size, uint64_t now);
#endif

#endif
