// SPDX-License-Identifier: MIT
//
// guard.h -- guarded sampling: a few allocations, chosen at random, are
// served alone between inaccessible pages, so a use after free, an
// overflow or an underflow of one of them faults at the instruction that
// makes it, and the report names where the block was allocated and freed.
//
// Which allocations. About one per guard_sample_kb KiB allocated: small
// blocks share the profiler's sampler (prof/prof.h: a Poisson process over the
// bytes allocated, drawn in the slow path, the fast paths untouched), whose
// rate is then the sum of the two and whose every sample is given to the
// guard, the profiler or both with the chances that keep each one's own
// process exact. Large blocks draw from a countdown of their own, each
// counting as 16 KiB whatever its size: a guarded block's pages are fresh
// and fault as they are touched, a cost that grows with its size, so a
// large block is guarded about as often as a 16 KiB one.
//
// The pool. guard_slots windows of GUARD_WINDOW bytes, reserved in one
// range that is inaccessible except for the pages of the live blocks. A
// window's first page is never opened, so each block has an inaccessible
// page on both sides. Three in four blocks end flush with the end of their
// window's last page (an overflow faults on its first byte past the
// block's end, up to the alignment's slack), the others start flush with
// its first usable page (an underflow faults on the byte before). The rest
// of the opened pages is filled with a pattern that is checked at free, so
// an overflow that stays inside them is reported then. A block too big for
// a window, or aligned beyond what one can place, gets a mapping of its
// own with a guard page on either side, kept (inaccessible) until its slot
// is used again. A freed block's pages are given back and made
// inaccessible; slots are taken round-robin, so a freed one is reused as
// late as the pool allows. Slots are claimed and released with one
// compare-and-swap each: no lock.
//
// Reports. The first guarded block installs a SIGSEGV and a SIGBUS handler
// (never before); a fault inside the pool becomes a report and an abort,
// any other goes to the handler that was there before, or to the default
// action, as if the pool did not exist. A program that installs its own
// handler later keeps it. A report names the kind, the address, its offset
// from the block, the block's size, the thread, and three stacks: where
// the block was allocated, where it was freed, where the bad access (or
// call) happened. Nothing in the handler allocates or uses stdio.
//
// The pool is left out of AddressSanitizer builds: ASan owns the fault
// handler and already finds what the pool would.
#ifndef MALLET_GUARD_H
#define MALLET_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "debug/debug.h"
#include "base/base.h"

// The mean bytes between guarded allocations, read from guard_sample_kb at
// the first draw and fixed from then on (0: every allocation).
double mallet__guard_rate(void);

// A block of req bytes aligned to align (a power of two, 0: malloc's) from
// the pool; NULL when the pool has no free slot or cannot open one.
void *mallet__guard_alloc(size_t req, size_t align);
// The profiler sampled p, a block just guarded, too (id: the large sample
// id, 0 for a small block): its record is dropped when p is freed.
void mallet__guard_prof(void *p, uint32_t id);
// Should a large block (of size bytes) be guarded? (this thread's countdown)
bool mallet__guard_large_draw(size_t size);

// Is p in the pool? Cheap enough for the paths where p is nothing else of
// ours (the free slow path, realloc, malloc_usable_size).
bool mallet__guard_owns(const void *p);
// Free p, one of the pool's (mallet__guard_owns); reports a double free, an
// invalid free and damaged slack in func's name.
void mallet__guard_free(void *p, const char *func);
// The requested size of p, one of the pool's live blocks; reports anything
// else in func's name.
size_t mallet__guard_usable(const void *p, const char *func);

typedef struct mallet_guard_totals {
    uint64_t live;         // guarded blocks live
    uint64_t total;        // guarded blocks ever
    uint64_t bytes;        // their requested bytes
    uint64_t opened;       // the bytes of the pages opened for them
} mallet_guard_totals_t;

// For the statistics.
void mallet__guard_totals(mallet_guard_totals_t *t);

#endif
