// SPDX-License-Identifier: MIT
//
// lib_larson.c -- a server simulation in the manner of Larson and Krishnan's
// benchmark: THREADS workers each own an array of SLOTS blocks (16..1024
// bytes) and replace random ones; after each round a worker exits and a new
// thread takes over its array, so blocks made by one thread are freed by
// another and thread heaps come and go.
//
//   lib_larson THREADS ROUNDS OPS_PER_ROUND
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 2000 };

typedef struct {
    char *slot[SLOTS];   // the worker's live blocks, handed to its successor
    uint64_t seed;       // random state carried across generations
    long ops;            // replacements per round
    uint64_t sum;        // checksum of what was read before each free
} worker_t;

static void *round_of(void *arg)
{
    worker_t *w = arg;
    uint64_t s = w->seed;
    for (long i = 0; i < w->ops; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int k = (int)(s % SLOTS);
        if (w->slot[k]) {
            w->sum += (unsigned char)w->slot[k][1];
            free(w->slot[k]);
        }
        size_t n = 16 + (size_t)((s >> 24) % 1009);
        w->slot[k] = malloc(n);
        w->slot[k][0] = w->slot[k][1] = (char)i;
    }
    w->seed = s;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    int rounds = argc > 2 ? atoi(argv[2]) : 50;
    long ops = argc > 3 ? atol(argv[3]) : 100000;
    if (threads > 64)
        threads = 64;
    worker_t *w = calloc((size_t)threads, sizeof *w);
    for (int t = 0; t < threads; t++) {
        w[t].seed = (uint64_t)t * 7919 + 13;
        w[t].ops = ops;
    }
    pthread_t th[64];
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < threads; t++)
            pthread_create(&th[t], NULL, round_of, &w[t]);
        for (int t = 0; t < threads; t++)
            pthread_join(th[t], NULL);
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        sum += w[t].sum;
        for (int k = 0; k < SLOTS; k++)
            free(w[t].slot[k]);
    }
    free(w);
    printf("larson %d threads x %d rounds x %ld: %llu\n", threads, rounds, ops,
           (unsigned long long)sum);
    return 0;
}
