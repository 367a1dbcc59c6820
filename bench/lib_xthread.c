// SPDX-License-Identifier: MIT
//
// lib_xthread.c -- producer/consumer: PAIRS producer threads malloc blocks of
// 16..256 bytes and pass them through a single-producer single-consumer ring
// to their consumer thread, which frees them. Every free is a cross-thread
// free.
//
//   lib_xthread PAIRS COUNT     (COUNT blocks per producer)
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"


static void *produce(void *arg)
{
    ring_t *r = arg;
    uint64_t s = (uintptr_t)arg | 1;
    for (long i = 0; i < r->count; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t n = 16 + (size_t)(s % 241);
        unsigned char *p = malloc(n);
        p[0] = (unsigned char)i;
        ring_put(r, p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 2;
    long count = argc > 2 ? atol(argv[2]) : 2000000;
    ring_t *rings = aligned_alloc(64, sizeof(ring_t) * (size_t)pairs);
    memset(rings, 0, sizeof(ring_t) * (size_t)pairs);
    pthread_t th[64];
    for (int i = 0; i < pairs && i < 32; i++) {
        rings[i].count = count;
        pthread_create(&th[2 * i], NULL, ring_consume, &rings[i]);
        pthread_create(&th[2 * i + 1], NULL, produce, &rings[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < pairs && i < 32; i++) {
        pthread_join(th[2 * i + 1], NULL);
        pthread_join(th[2 * i], NULL);
        sum += rings[i].sum;
    }
    free(rings);
    printf("xthread %d pairs x %ld: %llu\n", pairs, count, (unsigned long long)sum);
    return 0;
}
