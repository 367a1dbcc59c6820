// SPDX-License-Identifier: MIT
//
// sample.h -- a thread heap's sampling state: plain data the heap holds
// for the sampler (prof/prof.h), which draws, counts and cuts with it on the
// malloc slow path. The core keeps it and never reads it.
#ifndef MALLET_SAMPLE_H
#define MALLET_SAMPLE_H

#include <stdint.h>

#include "size_class.h"

// A thread heap's sampling state; lives in the heap, touched only in its
// slow paths.
typedef struct mallet_prof_heap {
    uint32_t wait[MALLET_CLASSES];       // allocations of the class up to the sampled one (0: not drawn)
    uint32_t rest[MALLET_CLASSES];       // blocks from the cut to the list's end
    uintptr_t cut[MALLET_CLASSES];       // block whose link was made the end of the list (0: none)
    uintptr_t cut_next[MALLET_CLASSES];  // its real next block
    uint32_t fresh;                      // blocks the last refill put on a free list
    uint64_t rng;                        // xorshift state (0: not seeded)
    uint32_t epoch;                      // mallet__options_epoch the countdowns were drawn in
} mallet_prof_heap_t;

// Functions that may stand between the program and the unwinder are put in
// one section, so the stack a sample records starts at the program's call.
#define MALLET_PROF_FRAME __attribute__((section("mallet_text")))

#endif
