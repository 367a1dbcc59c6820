// SPDX-License-Identifier: MIT
//
// stats_report.c -- the counters of every heap merged (base/stats.c) and
// reported: mallet_stats_get, the printed summary (MALLET_STATS=1 at exit,
// mallet_stats_print, malloc_stats).
//
// Call counts come from the slow-path counters: a block is counted as
// allocated when the free list holding it is placed before the fast path,
// minus what is left when the list is put away; the lists current right
// now are walked for the calling thread and counted whole for the others
// (so other running threads can be ahead by at most one page per class).
// Frees are allocations minus live blocks, which every page's counters
// give (page.h), the same current lists counted the same way.
#include "base/base.h"

#include "mem/mem.h"
#include "prof/prof.h"
#include "init.h"
#include "secure/secure.h"
#include "mallet.h"

// The counters of every heap; *listed and *listed_bytes get the blocks on
// the calling thread's (and the profiler's) current free lists, which the
// pages count as in use (page.h).
static void stats_merge(uint64_t out[MALLET_STAT_COUNT], uint64_t *threads, uint64_t *listed,
                        uint64_t *listed_bytes)
{
    mallet__stats_merge_orphans(out);
    mallet_heap_t *self = mallet__heap_mine();
    *threads = 0;
    // The profiler's heap is idle while prof_heap_lock is held: its lists
    // are walked like the calling thread's own.
    mallet__lock(&mallet__prof_heap_lock);
    mallet_heap_t *prof = mallet__prof_heap;
    mallet__lock(&mallet__heaps_lock);
    for (mallet_heap_t *h = mallet__heaps; h; h = h->next) {
        if (h->internal)
            continue;
        *threads += !h->shared;
        mallet__stats_merge(out, h->stat);
    }
    mallet__unlock(&mallet__heaps_lock);
    *listed = *listed_bytes = 0;
    if (prof)
        *listed += mallet__heap_listed_all(prof, listed_bytes);
    mallet__unlock(&mallet__prof_heap_lock);
    if (self != &mallet__heap_empty)
        *listed += mallet__heap_listed_all(self, listed_bytes);
    *listed += mallet__thread_exiting_listed(listed_bytes);
    out[MALLET_STAT_blocks_returned] += *listed;
}

// Blocks in a batch another thread has not handed over yet count as in
// use. Before counting, hand over this thread's own batch, and collect what
// it may: its own pages, and the abandoned ones.
static void stats_collect(void)
{
    mallet_heap_t *self = mallet__heap_mine();
    if (self != &mallet__heap_empty) {
        if (self->rf_count)
            mallet__remote_flush(self);
        mallet__lock(&self->lock);
        mallet__heap_collect_all(self);
        mallet__unlock(&self->lock);
    }
    mallet__thread_sweep_abandoned();
}

MALLET_API void mallet_stats_get(mallet_stats_t *s)
{
    mallet__init();
    stats_collect();
    uint64_t c[MALLET_STAT_COUNT], threads, listed, listed_bytes;
    stats_merge(c, &threads, &listed, &listed_bytes);
    mallet_span_totals_t st;
    mallet_large_totals_t lt;
    mallet__span_totals(&st);
    mallet__large_totals(&lt);
    st.allocated -= listed_bytes < st.allocated ? listed_bytes : st.allocated;
    st.live_blocks -= listed < st.live_blocks ? listed : st.live_blocks;
    mallet_guard_totals_t gt;
    mallet__guard_totals(&gt);
    s->allocated = st.allocated + lt.allocated + gt.bytes;
    s->active = st.active + lt.allocated + gt.opened;
    s->mapped = st.mapped + lt.mapped + gt.opened;
    s->resident = st.resident + lt.mapped + gt.opened;
    s->purged = st.purged;
    s->large_allocated = lt.allocated;
    uint64_t small = c[MALLET_STAT_blocks_installed] - c[MALLET_STAT_blocks_returned];
    s->malloc_calls = small + c[MALLET_STAT_large_allocs] + gt.total;
    uint64_t live = st.live_blocks + lt.live + gt.live;
    s->free_calls = s->malloc_calls > live ? s->malloc_calls - live : 0;
    s->remote_frees = c[MALLET_STAT_remote_frees];
    s->pages_abandoned = c[MALLET_STAT_pages_abandoned];
    s->pages_adopted = c[MALLET_STAT_pages_adopted];
    s->threads = threads;
    s->guarded = gt.live;
    s->guarded_total = gt.total;
}

static void line(mallet_buf_t *b, const char *name, uint64_t v, const char *meaning)
{
    mallet__buf_str(b, "mallet:   ");
    mallet__buf_str(b, name);
    mallet__buf_u64w(b, v, 36 - (int)__builtin_strlen(name));
    mallet__buf_str(b, "  ");
    mallet__buf_str(b, meaning);
    mallet__buf_str(b, "\n");
}

MALLET_API void mallet_stats_print(int fd)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    uint64_t c[MALLET_STAT_COUNT], threads, listed, listed_bytes;
    stats_merge(c, &threads, &listed, &listed_bytes);
    char store[4096];
    mallet_buf_t b = { store, sizeof store, 0 };
    mallet__buf_str(&b, "mallet: statistics\n");
    line(&b, "allocated", s.allocated, "bytes in live blocks");
    line(&b, "active", s.active, "bytes in pages holding a live block, and large blocks");
    line(&b, "mapped", s.mapped, "bytes mapped from the OS");
    line(&b, "resident", s.resident, "bytes mapped and not purged");
    line(&b, "purged", s.purged, "bytes given back to the OS, ever");
    line(&b, "large_allocated", s.large_allocated, "bytes in live large blocks");
    line(&b, "malloc_calls", s.malloc_calls, "allocations, ever");
    line(&b, "free_calls", s.free_calls, "frees, ever");
    line(&b, "threads", s.threads, "thread heaps alive");
    line(&b, "guarded", s.guarded, "guarded blocks live");
    line(&b, "guarded_total", s.guarded_total, "guarded blocks, ever");
#define MALLET_STAT_LINE(name, meaning) line(&b, #name, c[MALLET_STAT_##name], meaning);
    MALLET_STAT_LIST(MALLET_STAT_LINE)
#undef MALLET_STAT_LINE
    mallet__buf_flush(&b, fd);
}

__attribute__((destructor)) static void stats_at_exit(void)
{
    if (__atomic_load_n(&mallet__init_state, __ATOMIC_ACQUIRE) == 2 && mallet__option(stats))
        mallet_stats_print(2);
}
