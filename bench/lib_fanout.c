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
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RING = 4096 };

typedef struct {
    _Alignas(64) _Atomic size_t head;   // next slot the consumer reads
    _Alignas(64) _Atomic size_t tail;   // next slot the producer writes
    void *slot[RING];                   // blocks in flight
    long count;                         // blocks this consumer receives
    uint64_t sum;                       // consumer's checksum
} ring_t;

static ring_t *rings;
static int consumers;
static long count;

static void *produce(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i++) {
        unsigned char *p = malloc(64);
        p[0] = (unsigned char)i;
        ring_t *r = &rings[i % consumers];
        size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        while (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
            sched_yield();
        r->slot[t % RING] = p;
        atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    }
    return NULL;
}

static void *consume(void *arg)
{
    ring_t *r = arg;
    for (long i = 0; i < r->count; i++) {
        size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        while (atomic_load_explicit(&r->tail, memory_order_acquire) == h)
            sched_yield();
        unsigned char *p = r->slot[h % RING];
        r->sum += p[0];
        free(p);
        atomic_store_explicit(&r->head, h + 1, memory_order_release);
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
        pthread_create(&th[c], NULL, consume, &rings[c]);
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
