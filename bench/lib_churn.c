// SPDX-License-Identifier: MIT
//
// lib_churn.c -- small-block churn: each of THREADS threads keeps 1,000 live
// blocks of 16..512 bytes and replaces a random one ITERS times, writing its
// first bytes. Plain malloc/free, so any allocator can be preloaded.
//
//   lib_churn THREADS ITERS
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"

static long iters;

static void *work(void *arg)
{
    enum { SLOTS = 1000 };
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    char *slot[SLOTS] = { 0 };
    uint64_t sum = 0;
    for (long i = 0; i < iters; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int k = (int)(s % SLOTS);
        if (slot[k]) {
            sum += (unsigned char)slot[k][0];
            free(slot[k]);
        }
        size_t n = 16 + (size_t)((s >> 20) % 497);
        slot[k] = malloc(n);
        memset(slot[k], (int)i, 16);
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iters = argc > 2 ? atol(argv[2]) : 10000000;
    uint64_t sum = run_workers(threads, work);
    printf("churn %d threads x %ld: %llu\n", threads, iters, (unsigned long long)sum);
    return 0;
}
