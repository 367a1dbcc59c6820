// SPDX-License-Identifier: MIT
//
// purge.c -- the purger thread and trim.
//
// Owners retire and purge on their own slow paths, but a thread that frees
// everything and then sleeps never reaches one. The purger thread covers
// that case: every tick it try-locks each heap and retires the pages that
// are neither current nor hold a live block (their bits are all clear, so
// the owner cannot be touching them), collects abandoned pages, purges
// units idle for purge_delay_ms, and expires the large cache.
//
// It starts lazily, from a slow path, once the process has mapped
// purger_start_mb: never from a constructor (pthread_create may allocate,
// and a small process does not need it), and never in a program that has
// not started a thread of its own. glibc keys behaviour on being
// single-threaded (__libc_single_threaded: fork skips its atfork lock,
// stdio and shared_ptr skip atomics), so a thread of ours would change the
// program: a fork from a signal handler that lands in fork waits forever on
// the atfork lock its own thread holds. A single-threaded program's memory
// goes back from its own calls instead (heap.c, the parked heap). The
// purger blocks every signal, so signals still go to the program's
// threads. Its ticks stretch from purge_delay_ms/2 to 1 s while there is
// nothing to do.
#include "purge.h"

#include <pthread.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <time.h>

#include "heap.h"
#include "large.h"
#include "mallet.h"
#include "base/base.h"
#include "thread.h"

static uint8_t purger_state;     // 0 not started, 1 running (or starting)

static size_t sweep_heaps(bool all, bool block)
{
    uint64_t before = mallet__span_retired();
    mallet_heap_t *self = mallet__heap_mine();
    mallet__lock(&mallet__heaps_lock);
    for (mallet_heap_t *h = mallet__heaps; h; h = h->next) {
        if (h == self || !h->alive)
            continue;           // (a heap a fork child gave up keeps its lock)
        if (block)
            mallet__lock(&h->lock);
        else if (!mallet__lock_try(&h->lock))
            continue;
        mallet__heap_sweep(h, all, true);
        mallet__unlock(&h->lock);
    }
    mallet__unlock(&mallet__heaps_lock);
    mallet__thread_sweep_abandoned();
    return (size_t)(mallet__span_retired() - before);
}

static void *purger_main(void *arg)
{
    (void)arg;
    uint64_t idle_ticks = 0;
    for (;;) {
        uint64_t delay = (uint64_t)mallet__option(purge_delay_ms);
        uint64_t tick = delay / 2 + 10;
        if (idle_ticks > 4)
            tick *= idle_ticks - 3;
        if (tick > 1000)
            tick = 1000;
        struct timespec ts = { (time_t)(tick / 1000), (long)(tick % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        if (!mallet__option(purger))
            continue;
        uint64_t now = mallet__clock_ms();
        size_t work = sweep_heaps(false, false);
        work += mallet__span_purge(now, false);
        mallet_large_totals_t lt;
        mallet__large_totals(&lt);
        mallet__large_decay(now, false);
        work += lt.cached;
        idle_ticks = work ? 0 : idle_ticks + 1;
    }
    return NULL;
}

void mallet__purge_maybe_start(void)
{
    if (__atomic_load_n(&purger_state, __ATOMIC_RELAXED) != 0 || !mallet__option(purger))
        return;
    // glibc clears it for good in the first pthread_create.
    if (__libc_single_threaded)
        return;
    if (mallet__span_mapped() + mallet__large_mapped() < (uint64_t)mallet__option(purger_start_mb) << 20)
        return;
    if (__atomic_exchange_n(&purger_state, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    // What pthread_create allocates (the thread's TLS vector) comes from a
    // heap of libmallet's own, so the program's statistics do not show it.
    mallet_heap_t *mine = mallet__heap_self(), *internal = mallet__heap_create_internal();
    if (internal)
        mallet__tls_heap = internal;
    if (pthread_create(&tid, &attr, purger_main, NULL) != 0)
        __atomic_store_n(&purger_state, 0, __ATOMIC_RELEASE);
    mallet__tls_heap = mine;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void mallet__purge_forget_thread(void)
{
    __atomic_store_n(&purger_state, 0, __ATOMIC_RELAXED);
}

size_t mallet__purge_all(void)
{
    mallet_heap_t *heap = mallet__heap_mine();
    if (heap != &mallet__heap_empty) {
        if (heap->rf_count)
            mallet__remote_flush(heap);
        mallet__lock(&heap->lock);
        mallet__heap_sweep(heap, true, false);
        mallet__unlock(&heap->lock);
    }
    sweep_heaps(true, true);
    uint64_t now = mallet__clock_ms();
    mallet_large_totals_t lt;
    mallet__large_totals(&lt);
    mallet__large_decay(now, true);
    return mallet__span_purge(now, true) + (size_t)lt.cached;
}
