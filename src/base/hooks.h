// SPDX-License-Identifier: MIT
//
// hooks.h -- the one place where a lower layer calls a higher one: a table
// of function pointers the lower layers call without knowing who is behind
// them, filled in at link time by api/hooks.c, which says who hooks what.
//
// Who may hook what: start-up and fork are the entry points' (api/); the
// sampler's and large blocks' hooks are the profiler's (prof/); the guard's
// are secure/guard.c's. Only slow paths call through it: the fast paths
// (api/fast.h) never do.
// The table is constant, so it is whole before the first call of the
// process, from ld.so on, and no thread ever sees it change.
#ifndef MALLET_HOOKS_H
#define MALLET_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mallet_heap;
struct mallet_page;

typedef struct mallet_hooks {
    // base/start.h, from every slow path before its first lock; api/:
    void (*start)(void);                  // start-up, once per process (init.c)
    void (*register_fork)(void);          // the fork handler's registration (fork.c)

    // mem/sample.h and mem/heap.c, the malloc slow path; the sampler, prof/prof.c:
    bool (*sample_take)(struct mallet_heap *heap, unsigned c);    // the sampled one is next
    void (*sample_cut)(struct mallet_heap *heap, struct mallet_page *page, unsigned c, uint32_t n);
    uint32_t (*sample_heal)(struct mallet_heap *heap, struct mallet_page *page, unsigned c);
    void (*sample_restart)(struct mallet_heap *heap);             // the options changed
    void *(*sample_alloc)(size_t req, unsigned c);                // serve a sampled allocation

    // mem/large.c, large blocks; the profiler, prof/:
    uint32_t (*prof_large_draw)(size_t size);                     // sample it? its id
    void (*prof_large_record)(uintptr_t p, size_t size, uint32_t id);
    uint32_t (*prof_large_resize)(size_t old, size_t len, uint32_t id);
    uintptr_t (*prof_drop)(uintptr_t p, uint32_t id);
    void (*prof_move)(uintptr_t p, uint32_t id, uintptr_t q, size_t size);

    // mem/large.c and prof/prof.c (the sampler); the guard, secure/guard.c:
    bool (*guard_large_draw)(size_t size);                        // guard this large block?
    void *(*guard_alloc)(size_t req, size_t align);               // a guarded block
    void (*guard_prof)(void *p, uint32_t id);                     // it is sampled too
    double (*guard_rate)(void);                                   // the guard's share of the stream
} mallet_hooks_t;

extern const mallet_hooks_t mallet__hooks;

#endif
