// SPDX-License-Identifier: MIT
//
// workers.h -- run n copies of a benchmark's worker thread (at most 64),
// each given its number from 1 as its argument, join them, and return the
// sum of what they returned: the checksum a benchmark prints so that its
// work cannot be optimised away.
#ifndef BENCH_WORKERS_H
#define BENCH_WORKERS_H

#include <pthread.h>
#include <stdint.h>

static uint64_t run_workers(int n, void *(*worker)(void *))
{
    pthread_t th[64];
    uint64_t sum = 0;
    for (int t = 0; t < n && t < 64; t++)
        pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)(t + 1));
    for (int t = 0; t < n && t < 64; t++) {
        void *r;
        pthread_join(th[t], &r);
        sum += (uintptr_t)r;
    }
    return sum;
}

#endif
