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
// The repetitions behind engine_time and engine_time_threads: the backend
// reset before each pass, pass(t, b, &seconds) timing one and freeing what
// it left (false: it failed), the median ops/second into r.
typedef bool engine_pass_fn(const trace_t *t, const backend_t *b, double *seconds);
bool engine_time_passes(const trace_t *t, const backend_t *b, int reps, replay_result_t *r, engine_pass_fn *pass);
// Release the engine's tables.
void engine_release(void);

// The checks' parts, shared with the threaded engine: a block's pattern
// written over [from, to), the first byte of [0, n) that does not hold it
// (n when all do), the alignment a block of `size` bytes owes, and the
// "TRACE:LINE: ALLOC: what (op '...')" message (returns false).
void engine_fill(unsigned char *p, uint32_t id, uint64_t from, uint64_t to);
uint64_t engine_verify(const unsigned char *p, uint32_t id, uint64_t n);
size_t engine_alignment(uint64_t size);
bool engine_op_fail(const trace_t *t, const backend_t *b, const trace_op_t *op, const char *what,
                    const void *p);

// --- replay on the recorded threads (engine_threads.c) ------------------------
//
// Each thread number of the trace (op->thread) replays its own ops on a
// thread of its own. An op waits until the op before it on the same id, on
// whichever thread, is done: a block is made before it is resized or freed,
// so a free of another thread's block comes after that thread made it, as
// recorded. Ops on different ids run as the threads reach them. The same
// contract as above otherwise; the checked pass checks alignment and the
// payloads (an overlap shows as a payload another block wrote over) and
// samples the footprint, and the backend must be safe to call from several
// threads (a teach design is wrapped in one lock by the caller).
bool engine_prepare_threads(const trace_t *t);
bool engine_check_threads(const trace_t *t, const backend_t *b, replay_result_t *r);
bool engine_time_threads(const trace_t *t, const backend_t *b, int reps, replay_result_t *r);
void engine_release_threads(void);

#endif
