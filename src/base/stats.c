// SPDX-License-Identifier: MIT
//
// stats.c -- the orphan totals and the merge of the counters (stats.h).
// The core bumps its heaps' counters and the orphan totals; it never calls
// up to have them counted.
#include "stats.h"

uint64_t mallet__stats_orphan[MALLET_STAT_COUNT];

void mallet__stats_merge_orphans(uint64_t out[MALLET_STAT_COUNT])
{
    for (int i = 0; i < MALLET_STAT_COUNT; i++)
        out[i] = __atomic_load_n(&mallet__stats_orphan[i], __ATOMIC_RELAXED);
}

void mallet__stats_merge(uint64_t out[MALLET_STAT_COUNT], const uint64_t counters[MALLET_STAT_COUNT])
{
    for (int i = 0; i < MALLET_STAT_COUNT; i++)
        out[i] += __atomic_load_n(&counters[i], __ATOMIC_RELAXED);
}
