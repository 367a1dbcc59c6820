// SPDX-License-Identifier: MIT
//
// lib_bigheap.c -- a big live set under random replacement: each of THREADS
// threads (sharing nothing) fills LIVE slots with blocks of 1..1024 bytes,
// then OPS times frees the block in a random slot and puts a new one of a
// random size there, reading the old block's first byte and writing the new
// one's. Sizes are skewed small: a power-of-two bucket (1, 2-3, 4-7, ...,
// 512-1024) is chosen uniformly, then a size uniformly within it, so half the
// blocks are under 32 bytes. The live set is far larger than the caches, so
// the cost of finding memory to reuse, not of the fast path, shows. Plain
// malloc/free, so any allocator can be preloaded.
//
//   lib_bigheap THREADS LIVE OPS     (OPS per thread)
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "workers.h"

static long live, ops;

static size_t skewed_size(uint64_t r)
{
    unsigned b = (unsigned)(r % 10);
    size_t lo = (size_t)1 << b, hi = b == 9 ? 1024 : (lo << 1) - 1;
    return lo + (size_t)((r >> 8) % (hi - lo + 1));
}

static void *work(void *arg)
{
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    unsigned char **slot = malloc(sizeof *slot * (size_t)live);
    uint64_t sum = 0;
    for (long k = 0; k < live; k++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        slot[k] = malloc(skewed_size(s));
        slot[k][0] = (unsigned char)k;
    }
    for (long i = 0; i < ops; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        long k = (long)((s >> 32) % (uint64_t)live);
        sum += slot[k][0];
        free(slot[k]);
        slot[k] = malloc(skewed_size(s));
        slot[k][0] = (unsigned char)i;
    }
    for (long k = 0; k < live; k++)
        free(slot[k]);
    free(slot);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    live = argc > 2 ? atol(argv[2]) : 262144;
    ops = argc > 3 ? atol(argv[3]) : 100000000;
    if (live < 1)
        live = 1;
    uint64_t sum = run_workers(threads, work);
    printf("bigheap %d threads x %ld live x %ld: %llu\n", threads, live, ops,
           (unsigned long long)sum);
    return 0;
}
