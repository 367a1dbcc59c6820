// SPDX-License-Identifier: MIT
//
// lock.h -- the one lock type of libmallet, and its clock.
//
// A lock is a ticket lock waited on with sched_yield: it is only held on
// slow paths, for short stretches, and it must work before libc is
// initialised and in a forked child (where it is released like in the
// parent). It never allocates.
//
// Global lock order (take left before right; fork takes them all in this
// order, see thread.c):
//   heaps_lock -> heap->lock (one at a time) -> abandoned_lock -> seg_lock
//   large_lock is a leaf: nothing is taken while it is held.
//
// The clock is CLOCK_MONOTONIC_COARSE in milliseconds: a vDSO read, cheap
// enough for every slow path; purge delays need no finer grain.
#ifndef MALLET_LOCK_H
#define MALLET_LOCK_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define mallet__cpu_relax() __builtin_ia32_pause()
#else
#define mallet__cpu_relax() __asm__ volatile("" ::: "memory")
#endif

typedef struct mallet_lock {
    uint32_t next;         // tickets handed out
    uint32_t serving;      // ticket that holds the lock
} mallet_lock_t;

// Tickets make the lock fair: a thread that takes and drops its heap's
// lock in a loop cannot starve another waiting for it (fork's prepare
// handler takes every heap lock).
static inline bool mallet__lock_try(mallet_lock_t *l)
{
    // Acquire: the holder before us published its writes with the release
    // store to `serving` in mallet__unlock; reading it is what orders them
    // before ours (the exchange on `next` alone does not).
    uint32_t s = __atomic_load_n(&l->serving, __ATOMIC_ACQUIRE);
    uint32_t n = s;
    return __atomic_compare_exchange_n(&l->next, &n, s + 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void mallet__lock(mallet_lock_t *l)
{
    uint32_t mine = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    for (unsigned spin = 0; __atomic_load_n(&l->serving, __ATOMIC_ACQUIRE) != mine; spin++) {
        if (spin < 64)
            mallet__cpu_relax();
        else
            sched_yield();
    }
}

static inline void mallet__unlock(mallet_lock_t *l)
{
    uint32_t s = __atomic_load_n(&l->serving, __ATOMIC_RELAXED);
    __atomic_store_n(&l->serving, s + 1, __ATOMIC_RELEASE);
}

// In a fork child: free, whatever tickets the vanished threads were holding.
static inline void mallet__lock_reset(mallet_lock_t *l)
{
    l->next = l->serving = 0;
}

// Milliseconds on the coarse monotonic clock.
static inline uint64_t mallet__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
