// SPDX-License-Identifier: MIT
//
// lib_fanout.c -- one producer, many consumers: a producer thread mallocs
// COUNT blocks of 64 bytes, writes a byte of each, and deals them in turn
// into one single-producer single-consumer ring per consumer; each of
// CONSUMERS threads reads a byte of every block it receives and frees it.
// Every free is a cross-thread free, and the producer's heap is drained from
// several threads at once. A thread that finds its ring full (producer) or
// empty (consumer) yields. Plain malloc/free, so any allocator can be
// preloaded.
//
//   lib_fanout CONSUMERS COUNT     (COUNT blocks in all)
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"


static ring_t *rings;
static int consumers;
static long count;

static void *produce(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i++) {
        unsigned char *p = malloc(64);
        p[0] = (unsigned char)i;
        ring_put(&rings[i % consumers], p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    consumers = argc > 1 ? atoi(argv[1]) : 2;
    count = argc > 2 ? atol(argv[2]) : 10000000;
    if (consumers < 1 || consumers > 63)
        consumers = consumers < 1 ? 1 : 63;
    rings = aligned_alloc(64, sizeof(ring_t) * (size_t)consumers);
    memset(rings, 0, sizeof(ring_t) * (size_t)consumers);
    pthread_t th[64];
    for (int c = 0; c < consumers; c++) {
        // Block i goes to consumer i % consumers.
        rings[c].count = count / consumers + (c < count % consumers);
        pthread_create(&th[c], NULL, ring_consume, &rings[c]);
    }
    pthread_create(&th[consumers], NULL, produce, NULL);
    pthread_join(th[consumers], NULL);
    uint64_t sum = 0;
    for (int c = 0; c < consumers; c++) {
        pthread_join(th[c], NULL);
        sum += rings[c].sum;
    }
    free(rings);
    printf("fanout 1 x %d consumers x %ld: %llu\n", consumers, count, (unsigned long long)sum);
    return 0;
}
