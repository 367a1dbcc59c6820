// SPDX-License-Identifier: MIT
//
// hooks.h -- the one place where a lower layer calls a higher one: a table
// of function pointers the lower layers call without knowing who is behind
// them, filled in at link time by api/hooks.c, which says who hooks what.
//
// Only slow paths call through it: the fast paths (mem/heap.h) never do.
// The table is constant, so it is whole before the first call of the
// process, from ld.so on, and no thread ever sees it change.
#ifndef MALLET_HOOKS_H
#define MALLET_HOOKS_H

typedef struct mallet_hooks {
    // base/start.h, from every slow path before its first lock:
    void (*start)(void);           // start-up, once per process (api/init.c)
    void (*register_fork)(void);   // the fork handler's registration (api/fork.c)
} mallet_hooks_t;

extern const mallet_hooks_t mallet__hooks;

#endif
