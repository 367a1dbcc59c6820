// SPDX-License-Identifier: MIT
//
// lib_server.c -- a server simulation in which every block is freed by a
// thread other than the one that allocated it: THREADS workers each hold an
// array of SLOTS blocks (8..1000 bytes). In a round a worker visits every
// slot of its array once, in a fresh random order, freeing the block there
// (after reading a byte of it) and allocating a new one (writing a byte).
// Between rounds the workers meet at a barrier and the arrays rotate: worker
// i takes the array worker i+1 held. Fixed work; the harness times it. Plain
// malloc/free, so any allocator can be preloaded.
//
//   lib_server THREADS SLOTS ROUNDS
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int threads, rounds;
static long slots;
static unsigned char ***arrays;      // arrays[a][k]: block in slot k of array a
static pthread_barrier_t turn;       // between rounds, while the arrays rotate

static void *work(void *arg)
{
    int id = (int)(uintptr_t)arg;
    uint64_t s = (uint64_t)(id + 1) * 0x9E3779B97F4A7C15ull;
    long *order = malloc(sizeof *order * (size_t)slots);
    uint64_t sum = 0;
    for (long k = 0; k < slots; k++) {
        order[k] = k;
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        arrays[id][k] = malloc(8 + (size_t)(s % 993));
        arrays[id][k][0] = (unsigned char)k;
    }
    for (int r = 1; r <= rounds; r++) {
        pthread_barrier_wait(&turn);
        // In round r worker i holds array i + r: the one worker i + 1 held.
        unsigned char **a = arrays[(id + r) % threads];
        for (long j = slots - 1; j > 0; j--) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            long k = (long)(s % (uint64_t)(j + 1)), t = order[j];
            order[j] = order[k];
            order[k] = t;
        }
        for (long j = 0; j < slots; j++) {
            long k = order[j];
            sum += a[k][0];
            free(a[k]);
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            a[k] = malloc(8 + (size_t)(s % 993));
            a[k][0] = (unsigned char)j;
        }
    }
    free(order);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    threads = argc > 1 ? atoi(argv[1]) : 2;
    slots = argc > 2 ? atol(argv[2]) : 100000;
    rounds = argc > 3 ? atoi(argv[3]) : 100;
    if (threads < 1 || threads > 64)
        threads = threads < 1 ? 1 : 64;
    if (slots < 1)
        slots = 1;
    arrays = malloc(sizeof *arrays * (size_t)threads);
    for (int t = 0; t < threads; t++)
        arrays[t] = malloc(sizeof **arrays * (size_t)slots);
    pthread_barrier_init(&turn, NULL, (unsigned)threads);
    pthread_t th[64];
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, work, (void *)(uintptr_t)t);
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        void *r;
        pthread_join(th[t], &r);
        sum += (uintptr_t)r;
    }
    pthread_barrier_destroy(&turn);
    for (int t = 0; t < threads; t++) {
        for (long k = 0; k < slots; k++)
            free(arrays[t][k]);
        free(arrays[t]);
    }
    free(arrays);
    printf("server %d threads x %ld slots x %d rounds: %llu\n", threads, slots, rounds,
           (unsigned long long)sum);
    return 0;
}
