// SPDX-License-Identifier: MIT
//
// secure.h -- the secure build's hooks (make secure: MALLET_SECURE=1).
//
// The secure build adds, on top of the checks every build has:
//   canaries     a small block is sized for its request + 8 bytes; up to
//                16 bytes past the request hold a canary and the last 8 the
//                request itself with a keyed check. free and realloc verify
//                them: "heap overflow past 0x...".
//   fill/check   a freed block's first 64 bytes are filled with a pattern;
//                when it is handed out again the pattern must be whole:
//                "write after free of 0x...".
//   quarantine   freed small blocks wait in a ring per heap before they go
//                back to a free list, so a dangling pointer does not alias
//                the next allocation at once; a block is marked while it
//                waits, so freeing it again is a double free.
//   shuffling    the blocks carved from a page go on its free list in a
//                random order.
//   guard pages  the last OS page of every page of blocks, and the last of
//                the segment's metadata unit, are inaccessible.
//
// Every hook is a no-op (or absent) in the default build: the fast paths
// in heap.h compile to the same code with or without this header.
//
// Calls: page.h, span.h (lookups), os.h (guard pages), debug.h (reports).
#ifndef MALLET_SECURE_H
#define MALLET_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

#ifndef MALLET_SECURE
#define MALLET_SECURE 0
#endif

struct mallet_heap;

#if MALLET_SECURE

#define MALLET_SECURE_TAIL   8     // bytes a small block gets beyond its request
#define MALLET_QUARANTINE    64    // freed blocks held back per heap (a power of two)

// The size a small block must have to serve a request of n bytes.
#define MALLET_SECURE_PAD(n) ((n) <= SIZE_MAX - MALLET_SECURE_TAIL ? (n) + MALLET_SECURE_TAIL : (n))

// A block of page was just handed out for req bytes: check that nothing
// wrote to it while it was free, then lay down its canary.
void mallet__secure_on_alloc(mallet_page_t *page, uintptr_t b, size_t req);
// free's first step: check the canary of a live small block, mark and fill
// it, put it in the heap's quarantine and return the block that leaves the
// quarantine (NULL when none does), to be freed for real. Anything that is
// not a live small block is returned unchanged for the normal checks.
void *mallet__secure_quarantine(void *ptr, const char *func);
// Free every block in heap's quarantine now (thread exit, statistics).
void mallet__secure_flush(struct mallet_heap *heap);
// The request of a live small block at p, after checking its canary;
// reports a block that waits in quarantine as an invalid pointer.
size_t mallet__secure_request(const mallet_page_t *page, uintptr_t p, const char *func);
// A block resized in place now serves req bytes: move its canary.
void mallet__secure_resize(const mallet_page_t *page, uintptr_t p, size_t req);
// Link n fresh blocks from first onto page->free in a random order, filled.
void mallet__secure_carve(mallet_page_t *page, uintptr_t first, uint32_t n);
// Make a run of `units` units at start accessible except its last OS page,
// the guard; false (errno ENOMEM) when the OS refuses.
bool mallet__secure_guard_run(char *start, unsigned units);
// The blocks of a freshly initialised page that fit before its guard.
uint32_t mallet__secure_capacity(const mallet_page_t *page);
// Guard the last OS page of a new segment's metadata unit.
void mallet__secure_guard_segment(mallet_segment_t *seg);

#else

#define MALLET_SECURE_PAD(n) (n)

#endif

#endif
