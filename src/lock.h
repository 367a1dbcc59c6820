// SPDX-License-Identifier: MIT
//
// lock.h -- the one lock type of libmallet, and its clock.
//
// A lock is a byte taken with an atomic exchange and waited on with
// sched_yield: it is only held on slow paths, for short stretches, and it
// must work before libc is initialised and in a forked child (where it is
// simply reset). It never allocates.
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
    uint8_t held;          // 1 while some thread holds the lock
} mallet_lock_t;

static inline bool mallet__lock_try(mallet_lock_t *l)
{
    return __atomic_load_n(&l->held, __ATOMIC_RELAXED) == 0 &&
           __atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE) == 0;
}

static inline void mallet__lock(mallet_lock_t *l)
{
    for (unsigned spin = 0; !mallet__lock_try(l); spin++) {
        if (spin < 64)
            mallet__cpu_relax();
        else
            sched_yield();
    }
}

static inline void mallet__unlock(mallet_lock_t *l)
{
    __atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
}

// Milliseconds on the coarse monotonic clock.
static inline uint64_t mallet__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
