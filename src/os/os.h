// SPDX-License-Identifier: MIT
//
// os.h -- the OS seam. This is the only place in mallet that talks to the
// kernel about memory; everything above it sees address space through these
// calls and nothing else.
//
// Contract, written once:
//
//   reserve(size, align)   -> address space, inaccessible, `align`-aligned
//                             (align a power of two >= page size, or 0 for
//                             page alignment). NULL + errno ENOMEM on failure.
//   commit(p, size)        -> make a reserved range readable and writable.
//                             Fresh pages read as zero. false + ENOMEM.
//   decommit(p, size)      -> give the physical pages back and make the range
//                             inaccessible again; the reservation stays.
//   protect_none(p, size)  -> make a range inaccessible, keeping its pages and
//                             their contents (commit makes it accessible again).
//   purge(p, size)         -> give the physical pages back but keep the range
//                             accessible; it reads as zero afterwards.
//   release(p, size)       -> return the reservation to the OS.
//   map(size, align)       -> reserve + commit in one step (the common case:
//                             one system call, one VMA).
//   remap(p, old, new)     -> grow or shrink a mapping, moving it if the
//                             kernel must. NULL + ENOMEM on failure; the old
//                             mapping is then untouched.
//
// Every size and address is a multiple of mallet__os_page_size().
//
// Failure paths never allocate and never print: they return, and the caller
// decides. All requests are counted so the fake OS (below) can fail the Nth.
//
// The fake OS: mallet__os_fake_use() swaps the kernel for a fixed buffer
// owned by the caller. Every request is then served from that buffer, and
// mallet__os_fake_fail() makes request number N (and the `count` after it)
// fail with ENOMEM. Tests use it for deterministic out-of-memory paths.
//
// The break (mallet_brk_t) is the growable region the teach allocators carve
// from, in the manner of sbrk(2). A break is either private -- a reservation
// of its own, so several heaps can live side by side and each footprint is
// exact -- or the process's real sbrk, for a preload build.
#ifndef MALLET_OS_H
#define MALLET_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

size_t mallet__os_page_size(void);

void *mallet__os_reserve(size_t size, size_t align);
bool  mallet__os_commit(void *p, size_t size);
bool  mallet__os_decommit(void *p, size_t size);
bool  mallet__os_protect_none(void *p, size_t size);
bool  mallet__os_purge(void *p, size_t size);
void  mallet__os_release(void *p, size_t size);
void *mallet__os_map(size_t size, size_t align);
void *mallet__os_remap(void *p, size_t old_size, size_t new_size);

// Advice that may be ignored: ask for (or against) transparent huge pages.
bool mallet__os_advise_huge(void *p, size_t size, bool huge);

// Place a range that is about to be handed out, before its first write:
// advise huge pages when `huge`, and prefer NUMA node `node` (mbind
// MPOL_PREFERRED) when node >= 0. Both are advice: a refusal (no THP, a
// kernel without NUMA, a seccomp filter) costs the placement only, and
// errno is left as it was.
void mallet__os_place(void *p, size_t size, bool huge, int node);

// Total requests seen so far (reserve, commit, map, remap, brk growth).
uint64_t mallet__os_requests(void);
// Count one request; true (and errno ENOMEM) when it must fail.
bool mallet__os_count_request(void);

// --- the fake OS ------------------------------------------------------------

// Serve every later request from buf[0..size). buf must be page aligned.
// Passing NULL returns to the real kernel.
void mallet__os_fake_use(void *buf, size_t size);
// Fail request number `nth` (1-based, counted from this call) and the
// `count - 1` requests after it; count 0 means "and every one after".
void mallet__os_fake_fail(uint64_t nth, uint64_t count);
// Bytes of the fake buffer handed out so far.
size_t mallet__os_fake_used(void);

// --- the break --------------------------------------------------------------

typedef enum {
    MALLET_BRK_PRIVATE,       // a reservation of our own
    MALLET_BRK_SBRK,          // the process break, through sbrk(2)
} mallet_brk_kind_t;

typedef struct mallet_brk {
    mallet_brk_kind_t kind;   // which kind of break this is
    char *base;               // first byte of the region
    char *top;                // the break: first byte not handed out
    char *committed;          // end of the committed (accessible) prefix
    char *limit;              // end of the reservation (private only)
} mallet_brk_t;

// A private break able to grow to `max` bytes. false + ENOMEM on failure.
bool mallet__brk_init_private(mallet_brk_t *b, size_t max);
// The process break. Always succeeds; growth may still fail.
void mallet__brk_init_sbrk(mallet_brk_t *b);
// Move the break by `incr` bytes (may be negative); return the old break,
// or NULL with errno ENOMEM when it cannot move. Like sbrk(2), without the
// (void *)-1 convention.
void *mallet__brk_grow(mallet_brk_t *b, intptr_t incr);
// Bytes between base and the break: the heap's exact footprint.
size_t mallet__brk_footprint(const mallet_brk_t *b);
// Drop everything: the break returns to base and the pages go back to the OS.
void mallet__brk_reset(mallet_brk_t *b);
// Return a private break's reservation to the OS.
void mallet__brk_destroy(mallet_brk_t *b);

// The rest of the seam, for the layers above: transparent huge pages and
// NUMA placement.
#include "huge.h"
#include "numa.h"

#endif
