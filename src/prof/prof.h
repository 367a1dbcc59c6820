// SPDX-License-Identifier: MIT
//
// prof.h -- the sampling heap profiler: which allocations are sampled, and
// the record of the sampled blocks that are live, by call stack.
//
// Sampling. About one allocation per prof_sample_kb KiB allocated is
// sampled, and the choice is a Poisson process over the bytes allocated:
// an allocation of s bytes is sampled with probability 1 - exp(-s/rate),
// independently of every other, so a sampled block weighted by the inverse
// of that probability gives an unbiased estimate of the bytes per stack.
// Each thread heap keeps one byte stream per size class (all blocks of a
// class have one size, so its countdown is a count of blocks) and large
// blocks keep one more, in bytes. Splitting the stream by class keeps the
// probabilities exact: the points of a Poisson process in disjoint
// intervals are independent.
//
// The fast path is not touched. The malloc slow path, which hands the fast
// path a free list, counts the blocks on it against the class's countdown.
// When the sampled allocation is among them, the list is cut just before
// that block (its link is made the end of the list, the rest kept aside),
// so the fast path runs dry exactly there and the slow path takes the
// sampled allocation; it heals the cut, and serves that allocation from the
// profiler's own heap instead (the block at the cut stays first on the
// list). With prof=0 the slow path pays one load and a branch.
//
// The sampled blocks. Small ones come from one heap of the profiler's,
// shared by all threads under prof_heap_lock: its pages' owner is that heap, so
// a free of a sampled block always misses the free fast path (the owner
// test fails in every thread), and the free slow path hands it back here,
// where the record is dropped. Large blocks carry a sample id in their
// record (mem/large.c). Everything the profiler keeps -- call stacks, counts,
// the table of live samples -- is in memory it maps itself, never in the
// heap, and nothing here calls malloc (tests/test_lib_prof.c counts the
// mallocs made while every allocation is sampled: none). A stack is walked
// with the unwind rule of each return address, read once from the
// .eh_frame records and kept (prof_unwind.c); a frame whose rule that walk
// cannot express sends the stack to libgcc's unwinder.
//
// Output (prof_dump.c): gperftools' text heap profile, with heap_v2
// sampling, so google-pprof reads it; written at exit, at each new peak,
// and by mallet_prof_dump().
#ifndef MALLET_PROF_H
#define MALLET_PROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "mem/mem.h"

struct mallet_heap;
struct mallet_page;

// --- the malloc slow path (mem/heap.c, through base/hooks.h) -----------------------

// The sampler's side of the countdown (mem/sample.h), called through the
// hook table: the sampled allocation is the next one (true when it is the
// one being served); cut page->free's n blocks before the sampled one.
bool mallet__prof_take_slow(struct mallet_heap *heap, unsigned c);
void mallet__prof_cut(struct mallet_heap *heap, struct mallet_page *page, unsigned c, uint32_t n);
// Make class c's cut list whole again (the fast path stopped at the cut,
// or the page stops being current). Returns the blocks on page->free.
uint32_t mallet__prof_heal(struct mallet_heap *heap, struct mallet_page *page, unsigned c);
// The options changed since the heap's countdowns were drawn: heal every
// cut and draw them afresh (heap->lock held).
void mallet__prof_restart(struct mallet_heap *heap);
// Serve a sampled allocation of class c from the profiler's heap and
// record it; NULL + ENOMEM when out of memory.
void *mallet__prof_alloc(size_t req, unsigned c);
// Serve a sampled allocation of class c: from the guard's pool, the
// profiler's heap or both (the stream is theirs together); NULL when
// neither could (then the caller serves it as any other).
void *mallet__sample_alloc(size_t req, unsigned c);
// A sampling rate in bytes from its option's KiB (0: every allocation),
// kept in *cache (< 0: not read yet) the first time and fixed from then on.
double mallet__sample_rate_once(int64_t *cache, int64_t kb);
// Bytes to the next point of a Poisson process of this mean over the bytes
// allocated (0: the next byte); *rng is its generator's state.
double mallet__sample_bytes(uint64_t *rng, double mean);

// --- frees (api/free.c) ------------------------------------------------------------

// Free p, a live block of the profiler's heap, and drop its record. (A
// block of the heap a fork child gave up only has its sample dropped,
// mallet__prof_drop, and goes where any forgotten heap's blocks go.)
void mallet__prof_free(struct mallet_page *page, uintptr_t p);

// --- large blocks (mem/large.c, through base/hooks.h) ------------------------------

// A large block of `size` bytes is being allocated: its sample id when it
// is to be sampled, else 0. No lock is taken (it runs under large_lock).
uint32_t mallet__prof_large_draw(size_t size);
// Record large block p (sample id) with its call stack; the caller holds
// no lock.
void mallet__prof_large_record(uintptr_t p, size_t size, uint32_t id);
// A large block (sample id `id`, 0: not sampled) is resized from `old` to
// `len` bytes (under large_lock): its sample id after. The block stays one
// block for the profiler: one not sampled takes the chance of its new bytes
// only, one sampled stays sampled as it grows, and as it shrinks keeps its
// sample with the ratio of the two sizes' chances -- so at every size it is
// sampled with exactly the chance of a block of that size. The caller then
// moves the sample (mallet__prof_move), drops it (mallet__prof_drop) or
// records a new one (mallet__prof_large_record).
uint32_t mallet__prof_large_resize(size_t old, size_t len, uint32_t id);

// --- fork --------------------------------------------------------------------------

// In a fork child, before the heaps' own repair (api/fork.c): the
// record is kept, and repaired when a vanished thread was changing it; the
// profiler's heap is given up when a vanished thread was using it.
void mallet__prof_after_fork(void);

// --- the stack (prof_unwind.c) -----------------------------------------------------

// The frames from code address pc, with rsp = sp and rbp = fp there, into
// out[0 .. max) (pc first, then return addresses); 0 when some frame's rule
// is not one this walk knows (then libgcc's unwinder is used).
uint32_t mallet__prof_unwind(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t *out, uint32_t max);
// The program's stack at its call into libmallet (the frames up to the
// outermost one in mallet_text left out) into pc[0 .. max); the frames.
uint32_t mallet__stack_capture(uintptr_t *pc, uint32_t max);
// The stack of an interrupted context (a signal handler's), from pc on.
uint32_t mallet__stack_of_context(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t *out, uint32_t max);
// Reports (debug.h's mallet__fatal) end with the stack of the call.
void mallet__stack_reports_on(void);
// For tests: the caller's stack by both walks (each with its own first
// frame, in this function).
void mallet__prof_unwind_both(uintptr_t *fast, uint32_t *nfast, uintptr_t *slow, uint32_t *nslow, uint32_t max);

// --- the record (prof_record.c) ----------------------------------------------------

#define MALLET_PROF_DEPTH 64

// Locks, each taken alone, never one inside another, and before any lock of
// the heaps: prof_heap_lock (the profiler's heap), prof_lock (the record,
// for short stretches), dump_lock (prof_dump.c: one profile written at a
// time; it takes prof_lock for the moment of a snapshot).
extern mallet_lock_t mallet__prof_lock;
extern mallet_lock_t mallet__prof_heap_lock;
// A profiler's heap that a fork child gave up: frees of its blocks drop
// their samples, then go where any forgotten heap's go.
extern struct mallet_heap *mallet__prof_heap_gone;
// Estimated bytes in live blocks (each sample weighted by its inverse
// probability); prof_lock.
extern double mallet__prof_live_est;
// The mean bytes between samples, read from prof_sample_kb at the first
// sample and fixed from then on (0: every allocation is sampled; -1: not
// read yet).
extern int64_t mallet__prof_rate;

typedef struct mallet_prof_stack {
    uint32_t depth;                       // frames
    uintptr_t pc[MALLET_PROF_DEPTH];      // return addresses, innermost (the program's call) first
} mallet_prof_stack_t;

// One per (stack, block size); in the arena, so its address never changes.
typedef struct mallet_prof_bucket {
    uint64_t hash;         // of the frames and the size
    size_t size;           // block size of every block counted here
    uint64_t live;         // sampled blocks live now
    uint64_t allocs;       // sampled blocks ever
    double weight;         // estimated bytes one sample stands for (mallet__prof_weight)
    uint32_t depth;        // frames
    uintptr_t pc[];        // the frames
} mallet_prof_bucket_t;

// The estimated bytes a sampled block of `size` bytes stands for.
double mallet__prof_weight(size_t size);
// Count a sampled block (a small one: heap is its allocating thread's);
// false when the record is out of memory. Takes prof_lock; true in *peak
// when the live estimate passed the last peak written by prof_peak percent.
bool mallet__prof_note(uintptr_t p, size_t size, uint32_t id, uintptr_t heap, const mallet_prof_stack_t *st,
                       bool *peak);
// Drop the sample of p (id: the large block's sample id, 0 for a small
// block); the heap noted with it (0 when it was not found). Takes prof_lock.
uintptr_t mallet__prof_drop(uintptr_t p, uint32_t id);
// Move the sample of p (id) to q, a block of size bytes, keeping its stack.
// Takes prof_lock.
void mallet__prof_move(uintptr_t p, uint32_t id, uintptr_t q, size_t size);

// A bucket's counts at one moment (its frames and size never change).
typedef struct mallet_prof_row {
    const mallet_prof_bucket_t *bucket;   // the bucket
    uint64_t live;                        // its live count then
    uint64_t allocs;                      // its count ever then
} mallet_prof_row_t;

// The counts of every bucket into to[0 .. cap); the number of buckets,
// which may exceed cap. Takes prof_lock.
size_t mallet__prof_snapshot(mallet_prof_row_t *to, size_t cap);
// A fork child's repair of a record a vanished thread was changing.
void mallet__prof_record_repair(void);
// A fork child writes its own peak profile from its first new peak on.
void mallet__prof_peak_reset(void);

// --- writing (prof_dump.c) ---------------------------------------------------------

// Write a profile to path; 0, or -1 with errno set.
int mallet__prof_write(const char *path);
// Write the peak profile (after mallet__prof_note said so).
void mallet__prof_write_peak(void);
// A fork child: the writer's lock is free again.
void mallet__prof_dump_after_fork(void);

#endif
