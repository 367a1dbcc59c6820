// SPDX-License-Identifier: MIT
//
// random.h -- the random numbers keys, canaries and shuffles are made from:
// a counter advanced by a constant per call and mixed, seeded at start-up
// from the raw getrandom system call (nothing of libc is trusted to be
// ready), seeded again in a fork child.
#ifndef MALLET_RANDOM_H
#define MALLET_RANDOM_H

#include <stdint.h>

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
// Seed the generator (start-up).
void mallet__random_seed(void);
// In a fork child: a fresh seed, so that its new keys, canaries and block
// order are its own.
void mallet__random_fork_child(void);

#endif
