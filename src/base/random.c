// SPDX-License-Identifier: MIT
//
// random.c -- the key generator (random.h).
#define _GNU_SOURCE
#include "random.h"

#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t random_state;        // advanced by a constant per call

uint64_t mallet__random_next(void)
{
    return mallet__mix64(__atomic_add_fetch(&random_state, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED));
}

void mallet__random_seed(void)
{
    uint64_t seed = 0;
    // The raw system call: getrandom(3) is fine too, but nothing of libc
    // is trusted to be ready here.
    if (syscall(SYS_getrandom, &seed, sizeof seed, 1 /* GRND_NONBLOCK */) != (long)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&seed;
    }
    random_state = mallet__mix64(seed);
}

void mallet__random_fork_child(void)
{
    // The child's state must owe nothing to the parent's: a pre-forking
    // server's children would otherwise share their new pages' keys and
    // canaries and their shuffled order, and one leaked value would serve
    // for all of them.
    mallet__random_seed();
}

