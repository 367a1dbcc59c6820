// SPDX-License-Identifier: MIT
//
// secure.h -- the checks that stand beside the core, the one header the
// layers above include from secure/: malloc(0)'s inaccessible region
// (zero.h), the guarded pool (guard.h), the heap check (check.c).
//
// secure/ uses mem/ and the sampler of prof/ (the guard draws its blocks
// from the profiler's sampler).
#ifndef MALLET_SECURE_H
#define MALLET_SECURE_H

#include <stdint.h>

#include "guard.h"
#include "zero.h"

// Check every free block of the calling thread's heap and of the abandoned
// pages (check.c); the blocks checked.
uint64_t mallet__check_heap(const char *func);

#endif
