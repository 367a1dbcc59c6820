// SPDX-License-Identifier: MIT
//
// gc_workload.c -- an interpreter's allocation pattern, run on the garbage
// collector (teach/gc.h) or on an allocator with explicit free, so the two
// can be compared on the same work.
//
//   gc_workload MODE [ITERATIONS]     MODE: gc | glibc | teach:NAME
//
// Each iteration parses-and-evaluates: it builds a random expression tree
// (about 200 nodes of 32 bytes, each leaf with a name string of 8..200
// bytes), evaluates it and drops it; every eighth tree is kept instead in
// one of 64 global variables, dropping the tree that was there. With gc the
// program only allocates; with explicit free it frees each dropped tree.
//
// Prints one tab-separated line:
//   mode  cpu_ms  allocations  collections  mean_pause_us  max_pause_us
//   peak_heap_kib  peak_live_kib
// cpu_ms is the process CPU time of the whole workload, collections
// included. peak_live_kib is the most the program itself held at once
// (bytes requested for the trees it still refers to, counted by the
// workload). peak_heap_kib is the most heap the allocator held: the
// collector's heap pages, a teach design's footprint, glibc's arena plus its
// mmapped chunks (mallinfo2), sampled right after every 16th tree is built.
// Collections and pauses are 0 for the explicit-free modes.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gc.h"
#include "teach.h"

typedef struct expr {
    int op;                    // 0 leaf, 1 add, 2 mul, 3 sub
    int name_len;              // leaf: bytes of name
    struct expr *a, *b;        // operands; a leaf keeps its name in a
} expr_t;

static void *(*wl_malloc)(size_t);          // the allocator under test
static void (*wl_free)(void *);             // NULL for gc
static size_t live, peak_live;              // bytes the program holds
static uint64_t allocations;
static uint64_t rng = 0x2545f4914f6cdd1dull;
static expr_t *env[64];                     // the interpreter's globals

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void *wl_alloc(size_t n)
{
    void *p = wl_malloc(n);
    if (p == NULL) {
        fprintf(stderr, "gc_workload: out of memory\n");
        exit(1);
    }
    allocations++;
    live += n;
    if (live > peak_live)
        peak_live = live;
    return p;
}

static expr_t *build(int depth)
{
    expr_t *e = wl_alloc(sizeof *e);
    memset(e, 0, sizeof *e);                // malloc does not zero; gc_malloc does
    uint64_t r = next_rand();
    if (depth == 0 || r % 8 == 0) {
        e->name_len = 8 + (int)((r >> 32) % 193);
        char *name = wl_alloc((size_t)e->name_len);
        memset(name, 'a' + (int)(r % 26), (size_t)e->name_len);
        e->a = (expr_t *)name;
        return e;
    }
    e->op = 1 + (int)((r >> 20) % 3);
    e->a = build(depth - 1);
    e->b = build(depth - 1);
    return e;
}

static int64_t eval(const expr_t *e)
{
    if (e->op == 0)
        return ((const char *)e->a)[e->name_len - 1] + e->name_len;
    int64_t a = eval(e->a), b = eval(e->b);
    return e->op == 1 ? a + b : e->op == 2 ? (a * b) % 1000003 : a - b;
}

// The program lets go of a tree: explicit free walks it; gc forgets it.
static void drop(expr_t *e)
{
    if (e == NULL)
        return;
    if (e->op == 0) {
        live -= (size_t)e->name_len + sizeof *e;
        if (wl_free) {
            wl_free(e->a);
            wl_free(e);
        }
        return;
    }
    drop(e->a);
    drop(e->b);
    live -= sizeof *e;
    if (wl_free)
        wl_free(e);
}

static size_t heap_now(const teach_allocator_t *design)
{
    if (design)
        return design->footprint();
    if (wl_free) {
        struct mallinfo2 mi = mallinfo2();
        return mi.arena + mi.hblkhd;
    }
    gc_stats_t st;
    gc_stats_get(&st);
    return st.heap_bytes;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "gc";
    long iterations = argc > 2 ? atol(argv[2]) : 40000;
    const teach_allocator_t *design = NULL;
    if (strcmp(mode, "gc") == 0) {
        wl_malloc = gc_malloc;
    } else if (strcmp(mode, "glibc") == 0) {
        wl_malloc = malloc;
        wl_free = free;
    } else if (strncmp(mode, "teach:", 6) == 0 && (design = teach_find(mode + 6)) != NULL) {
        wl_malloc = design->malloc;
        wl_free = design->free;
    } else {
        fprintf(stderr, "usage: gc_workload gc|glibc|teach:NAME [ITERATIONS]\n");
        return 2;
    }

    double t0 = cpu_ms();
    int64_t checksum = 0;
    size_t peak_heap = 0;
    for (long i = 0; i < iterations; i++) {
        expr_t *e = build(9);
        if (i % 16 == 0) {
            size_t h = heap_now(design);
            peak_heap = h > peak_heap ? h : peak_heap;
        }
        checksum += eval(e);
        if (i % 8 == 0) {
            size_t slot = (size_t)(i / 8) % 64;
            drop(env[slot]);
            env[slot] = e;
        } else {
            drop(e);
        }
    }
    double t = cpu_ms() - t0;

    gc_stats_t st = { 0 };
    if (wl_free == NULL) {
        gc_stats_get(&st);
        peak_heap = st.peak_heap_bytes;
    }
    printf("%s\t%.1f\t%llu\t%llu\t%.1f\t%llu\t%zu\t%zu\n", mode, t,
           (unsigned long long)allocations, (unsigned long long)st.collections,
           st.collections ? (double)st.total_pause_us / (double)st.collections : 0.0,
           (unsigned long long)st.max_pause_us, peak_heap >> 10, peak_live >> 10);
    fprintf(stderr, "gc_workload: checksum %lld\n", (long long)checksum);
    return 0;
}
