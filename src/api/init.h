// SPDX-License-Identifier: MIT
//
// init.h -- lazy start-up, and the random numbers keys are made from.
//
// mallet__init() runs on the first slow path. It may be the first code of
// the process to run (called from ld.so, from dlsym, from a TLS
// constructor), so it allocates nothing and calls nothing of libc that
// could: options come from walking `environ`, randomness from the raw
// getrandom system call.
#ifndef MALLET_INIT_H
#define MALLET_INIT_H

#include <stdbool.h>
#include <stdint.h>

// Start-up and the fork handlers' registration: 0 not started, 2 done,
// anything else running, in the process MALLET_RUNNING_PID(state). A fork
// child whose parent was in the middle of either sees a running state
// whose process is not its own: that thread did not come along, so the
// child starts the work over.
extern int mallet__init_state;
extern int mallet__fork_state;
#define MALLET_RUNNING(pid)       ((int)(pid) << 2 | 1)
#define MALLET_RUNNING_PID(state) ((state) >> 2)

// Wait until *state (one of the two above) is done: false; or claim the
// work for this process: true, the caller does it and stores 2.
bool mallet__claim(int *state);

void mallet__init_slow(void);
// Register the fork handlers (thread.c); others wait until it is done.
void mallet__thread_register_fork(void);

// Every slow-path entry that may take a lock comes through here, so no lock
// is ever held before the fork handlers exist. They are registered after
// start-up, not during it: pthread_atfork may allocate.
static inline void mallet__init(void)
{
    if (__builtin_expect(__atomic_load_n(&mallet__init_state, __ATOMIC_ACQUIRE) != 2, 0))
        mallet__init_slow();
    if (__builtin_expect(__atomic_load_n(&mallet__fork_state, __ATOMIC_ACQUIRE) != 2, 0))
        mallet__thread_register_fork();
}

// 64 random-looking bits, different on every call (thread-safe).
uint64_t mallet__random_next(void);

// A 64-bit mixer (splitmix64's finaliser): every input bit moves every
// output bit; for seeds and hash tables.
static inline uint64_t mallet__mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
// In a fork child: a fresh seed, so that its new keys, canaries and block
// order are its own.
void mallet__random_fork_child(void);

#endif
