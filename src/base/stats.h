// SPDX-License-Identifier: MIT
//
// stats.h -- the counters of libmallet, in one X-macro list.
//
// Counters are plain data: kept per thread heap, as plain increments on
// slow paths (the fast paths count nothing), and merged on demand (stats.c)
// with the totals of exited threads; api/stats_report.c reports them. The
// byte figures (allocated, active, mapped, resident)
// are not counted at all: they are read off the pages' counters (page.h)
// and the large-block table when asked for.
#ifndef MALLET_STATS_H
#define MALLET_STATS_H

#include <stdint.h>

#define MALLET_STAT_LIST(X)                                                              \
    X(blocks_installed, "small blocks placed before the fast path (free lists swapped in)") \
    X(blocks_returned, "of those, not handed out when their page stopped being current")   \
    X(large_allocs, "large blocks mapped or taken from the cache")                         \
    X(remote_frees, "frees of blocks owned by another thread")                             \
    X(remote_batches, "batches of remote frees handed over (one atomic exchange each)")    \
    X(pages_allocated, "pages taken from segments")                                        \
    X(pages_retired, "empty pages given back to their segment")                            \
    X(pages_abandoned, "pages left behind by exiting threads")                             \
    X(pages_adopted, "abandoned pages taken over by another thread")

typedef enum {
#define MALLET_STAT_ENUM(name, meaning) MALLET_STAT_##name,
    MALLET_STAT_LIST(MALLET_STAT_ENUM)
#undef MALLET_STAT_ENUM
    MALLET_STAT_COUNT
} mallet_stat_id_t;

#define mallet__stat_add(heap, name, n) ((heap)->stat[MALLET_STAT_##name] += (n))

// Counters of threads without a heap (their first call was free) and of
// exited threads; atomic.
extern uint64_t mallet__stats_orphan[MALLET_STAT_COUNT];
static inline void mallet__stat_orphan_add(mallet_stat_id_t id, uint64_t n)
{
    __atomic_add_fetch(&mallet__stats_orphan[id], n, __ATOMIC_RELAXED);
}

// Merging (stats.c): out = the orphan totals; then out += one heap's
// counters, read while their owner may be adding to them.
void mallet__stats_merge_orphans(uint64_t out[MALLET_STAT_COUNT]);
void mallet__stats_merge(uint64_t out[MALLET_STAT_COUNT], const uint64_t counters[MALLET_STAT_COUNT]);

#endif
