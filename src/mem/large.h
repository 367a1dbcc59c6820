// SPDX-License-Identifier: MIT
//
// large.h -- blocks above MALLET_SMALL_MAX (and small ones with an alignment
// above 64 KiB): one mapping each, metadata out of band.
//
// A block's record (address, mapping length, requested size) lives in a
// hash table keyed by address, never next to the block. A freed block's
// record stays behind as a tombstone, so freeing it again is reported as a
// double free until the address is mapped anew or the table is compacted.
//
// realloc grows and shrinks with mremap (no copy). Freed mappings go to a
// cache of address ranges, merged with their cached neighbours, so churn
// reuses pages already faulted in instead of paying an mmap/munmap pair and
// a fault per page: a request is carved from the best-fitting cached range
// (the rest stays cached), or, when none is big enough, the largest one is
// mremapped up to size. A range untouched for purge_delay_ms is unmapped.
// The cache is bounded in bytes (what the live large bytes fell short of
// their recent peak, plus large_cache_mb) and entries (large_cache_count),
// and the count of live mappings is held under map_budget, far below the
// kernel's limit. The secure build quarantines a freed range before it
// joins the cache, and places its blocks on huge pages (large.c).
#ifndef MALLET_LARGE_H
#define MALLET_LARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

// A block of at least size bytes aligned to align (0: page alignment). When
// zeroed is not NULL it says whether the memory is known to be zero.
void *mallet__large_alloc(size_t size, size_t align, bool *zeroed);
// Free p if it is a live large block: true. False when p is not one of
// ours at all. A double free is reported and aborts.
bool mallet__large_free(void *p, const char *func);
// Is p a live large block? Then *usable is its usable size (the request
// in checker builds, so copies never read past it).
bool mallet__large_usable(const void *p, size_t *usable);
// Resize a live large block to size bytes (> MALLET_SMALL_MAX), in place or
// with mremap. NULL + ENOMEM when the kernel refuses; the block is intact.
void *mallet__large_resize(void *p, size_t size);
// Drop cached mappings older than purge_delay_ms (all when force).
void mallet__large_decay(uint64_t now_ms, bool force);

// A block now lives at addr that is not a large block: a tombstone of one
// that lived there before is forgotten.
void mallet__large_forget(uintptr_t addr);

// Guards the record table, the cache and the totals; a leaf lock.
extern mallet_lock_t mallet__large_lock;
// In a fork child: repair what a vanished thread holding large_lock may
// have left half done (api/fork.c).
void mallet__large_after_fork(void);

typedef struct mallet_large_totals {
    uint64_t live;         // live large blocks
    uint64_t allocated;    // their usable bytes
    uint64_t mapped;       // their mappings plus the cache's, in bytes
    uint64_t cached;       // bytes in the cache
} mallet_large_totals_t;

void mallet__large_totals(mallet_large_totals_t *t);
// Bytes mapped for large blocks and the cache, read without the lock.
uint64_t mallet__large_mapped(void);

#endif
