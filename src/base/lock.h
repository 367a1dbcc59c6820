// SPDX-License-Identifier: MIT
//
// lock.h -- the one lock type of libmallet, and its clock.
//
// A lock is one word that holds its holder's thread token (0 when free),
// taken with a compare-and-swap and waited on with sched_yield: it is only
// held on slow paths, for short stretches, and it must work before libc is
// initialised. It never allocates.
//
// The holder is in the word itself, in the same atomic step that takes the
// lock, so a fork child can tell, for every lock, whether it is free, held
// by the interrupted code of its own thread (a fork from a signal handler),
// or held by a thread that did not come along -- whose data the child must
// then repair or give up (api/fork.c). Fork takes no lock at all.
//
// Global lock order (take left before right):
//   heaps_lock -> heap->lock (one at a time) -> abandoned_lock -> seg_lock
//   the profiler's locks (prof/prof.h) and the exiting threads' heap lock
//   (mem/thread.c) come before all of these, one at a time
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
    uintptr_t holder;      // token of the thread that holds it; 0: free
} mallet_lock_t;

// The calling thread's token: the address of one of its thread-local
// bytes, distinct among live threads, and the same in a fork child as in
// the thread of the parent that forked it.
extern __thread uint8_t mallet__lock_token __attribute__((tls_model("initial-exec")));

static inline uintptr_t mallet__lock_self(void)
{
    return (uintptr_t)&mallet__lock_token;
}

static inline bool mallet__lock_try(mallet_lock_t *l)
{
    uintptr_t free_word = 0;
    return __atomic_load_n(&l->holder, __ATOMIC_RELAXED) == 0 &&
           __atomic_compare_exchange_n(&l->holder, &free_word, mallet__lock_self(), false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
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
    __atomic_store_n(&l->holder, 0, __ATOMIC_RELEASE);
}

// What a fork child finds in a lock (mallet__lock_after_fork).
typedef enum {
    MALLET_LOCK_WAS_FREE,    // the data it guards is whole; now held by the caller
    MALLET_LOCK_WAS_LOST,    // a vanished thread held it: the data may be half
                             // updated; now held by the caller, who repairs it
    MALLET_LOCK_WAS_MINE,    // the code this thread interrupted holds it: left
                             // alone, and so is its data (that code goes on)
} mallet_lock_found_t;

// In a fork child, the only thread: take l whatever it held, and say what
// it held. A held lock is taken over, so a fork nested in a signal handler
// of the child finds it MINE while the child repairs what it guards.
static inline mallet_lock_found_t mallet__lock_after_fork(mallet_lock_t *l)
{
    uintptr_t was = __atomic_load_n(&l->holder, __ATOMIC_ACQUIRE);
    if (was == mallet__lock_self())
        return MALLET_LOCK_WAS_MINE;
    __atomic_store_n(&l->holder, mallet__lock_self(), __ATOMIC_RELAXED);
    return was == 0 ? MALLET_LOCK_WAS_FREE : MALLET_LOCK_WAS_LOST;
}

// Milliseconds on the coarse monotonic clock.
static inline uint64_t mallet__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
