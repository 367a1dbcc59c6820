// SPDX-License-Identifier: MIT
//
// engine.h -- replaying one trace on one allocator: the checked pass that
// measures utilization, and the timed passes that measure throughput.
// Shared by `mallet replay` (both its in-process and its preloaded
// children) and `mallet heapmap`.
#ifndef MALLET_TOOLS_ENGINE_H
#define MALLET_TOOLS_ENGINE_H

#include "tools.h"

// One allocator as the engine drives it.
typedef struct backend {
    const char *name;                     // for messages
    void *(*malloc)(size_t n);            // allocate
    void (*free)(void *p);                // release
    void *(*realloc)(void *p, size_t n);  // resize
    size_t (*footprint)(void);            // bytes held from the OS now; NULL: the caller measures RSS
    unsigned footprint_every;             // sample it after every Nth op (0 or 1: every op)
    void (*reset)(void);                  // empty the heap before a timed pass, or NULL
} backend_t;

// What a replay child sends back through its pipe (same binary both ends).
typedef struct replay_result {
    int ok;                               // 1 when every check passed
    uint64_t ops;                         // operations replayed
    uint64_t peak_live;                   // most requested bytes live at once
    uint64_t peak_footprint;              // most memory held (see `measure`)
    double ops_per_sec;                   // median over the timed passes
    uint64_t peak_resident;               // libmallet: its `resident` statistic's peak, else 0
    char measure[16];                     // how peak_footprint was measured
} replay_result_t;

// Called after every op of the checked pass with the op's index and the
// requested bytes live (heapmap's snapshots), or NULL.
typedef void (*engine_step_fn)(void *ctx, uint64_t index, uint64_t live);

// Map (and touch) the engine's tables for t. False on out of memory.
bool engine_prepare(const trace_t *t);
// The checked pass: every block's alignment, overlap with live blocks, and
// payload (a pattern per id written on allocation, verified before free and
// across realloc). Samples the footprint after each op when the backend has
// one. Frees what the trace leaves live. On a failed check prints
// "TRACE:LINE: ALLOC: what went wrong" and returns false.
bool engine_check(const trace_t *t, const backend_t *b, replay_result_t *r,
                  engine_step_fn step, void *ctx);
// Timed passes without checks, `reps` of them or fewer: none starts once
// TIME_BUDGET seconds have gone into them (slow designs on long traces).
// The median ops/second into r.
#define TIME_BUDGET 3.0
bool engine_time(const trace_t *t, const backend_t *b, int reps, replay_result_t *r);
// Release the engine's tables.
void engine_release(void);

#endif
