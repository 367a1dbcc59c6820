// SPDX-License-Identifier: MIT
//
// ring.h -- a single-producer single-consumer ring of blocks, shared by the
// cross-thread benchmarks (lib_xthread.c, lib_fanout.c): the producer puts
// the blocks it mallocs, the consumer thread (ring_consume) reads a byte of
// each and frees it. Either side yields while the ring is full or empty.
#ifndef BENCH_RING_H
#define BENCH_RING_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

enum { RING = 4096 };

typedef struct {
    _Alignas(64) _Atomic size_t head;   // next slot the consumer reads
    _Alignas(64) _Atomic size_t tail;   // next slot the producer writes
    void *slot[RING];                   // blocks in flight
    long count;                         // blocks this ring passes
    uint64_t sum;                       // consumer's checksum
} ring_t;

static inline void ring_put(ring_t *r, void *p)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
        sched_yield();
    r->slot[t % RING] = p;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

// The consumer thread of ring arg: frees r->count blocks.
static void *ring_consume(void *arg)
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

#endif
