// SPDX-License-Identifier: MIT
//
// zero.c -- malloc(0) in the secure build: a unique address no one may read
// or write.
//
// A zero-size block needs an address of its own (C requires a unique
// pointer, or NULL) but no memory. Handing out a 16-byte block would let
// `*malloc(0)` read or write a neighbour's bytes unnoticed; here the address
// lies in one reserved, inaccessible region (ZERO_SLOTS addresses, 16 bytes
// apart), so any access faults. A bitmap, in memory of its own, marks the
// addresses handed out: free checks it, which stops a double free or a free
// of an address in the region that was never handed out, and a freed
// address can be handed out again.
//
// Everything is under zero_lock (a leaf lock): zero-size requests are rare.
// When the region is full, malloc(0) falls back to an ordinary block.
//
// Calls: os/ (the region, the bitmap), base/lock.h, debug/ (reports).
#include "zero.h"

#if MALLET_SECURE

#include "debug/debug.h"
#include "base/base.h"
#include "os/os.h"

#define ZERO_SLOTS  ((size_t)1 << 20)        // addresses in the region
#define ZERO_STEP   16                       // bytes between two addresses

static mallet_lock_t zero_lock;
static struct {
    uintptr_t base;          // the region's start, 0 until the first malloc(0)
    uint64_t *live;          // bit i: address base + i * ZERO_STEP is handed out
    size_t next;             // word of `live` to look in first
    bool failed;             // the region could not be made: use ordinary blocks
} zero;

// Make the region and its bitmap; lock held.
static bool zero_setup(void)
{
    if (zero.base != 0 || zero.failed)
        return zero.base != 0;
    void *region = mallet__os_reserve(ZERO_SLOTS * ZERO_STEP, 0);
    uint64_t *live = region ? mallet__os_map(ZERO_SLOTS / 8, 0) : NULL;
    if (live == NULL) {
        if (region)
            mallet__os_release(region, ZERO_SLOTS * ZERO_STEP);
        zero.failed = true;
        return false;
    }
    zero.live = live;
    zero.base = (uintptr_t)region;
    return true;
}

void *mallet__zero_alloc(void)
{
    void *p = NULL;
    mallet__lock(&zero_lock);
    if (zero_setup()) {
        size_t words = ZERO_SLOTS / 64;
        for (size_t k = 0; k < words; k++) {
            size_t w = (zero.next + k) % words;
            if (~zero.live[w] != 0) {
                unsigned bit = (unsigned)__builtin_ctzll(~zero.live[w]);
                zero.live[w] |= 1ull << bit;
                zero.next = w;
                p = (void *)(zero.base + (w * 64 + bit) * ZERO_STEP);
                break;
            }
        }
    }
    mallet__unlock(&zero_lock);
    return p;
}

bool mallet__zero_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = __atomic_load_n(&zero.base, __ATOMIC_RELAXED);
    return base != 0 && a >= base && a < base + ZERO_SLOTS * ZERO_STEP;
}

bool mallet__zero_free(void *p, const char *func)
{
    if (!mallet__zero_owns(p))
        return false;
    uintptr_t off = (uintptr_t)p - zero.base;
    if (off % ZERO_STEP != 0)
        mallet__fatal("mallet", func, "invalid pointer", p);
    size_t i = off / ZERO_STEP;
    mallet__lock(&zero_lock);
    uint64_t bit = 1ull << (i % 64);
    if (!(zero.live[i / 64] & bit)) {
        mallet__unlock(&zero_lock);
        mallet__fatal("mallet", func, "double free of", p);
    }
    zero.live[i / 64] &= ~bit;
    mallet__unlock(&zero_lock);
    return true;
}

bool mallet__zero_live(const void *p)
{
    if (!mallet__zero_owns(p))
        return false;
    uintptr_t off = (uintptr_t)p - zero.base;
    size_t i = off / ZERO_STEP;
    return off % ZERO_STEP == 0 && (__atomic_load_n(&zero.live[i / 64], __ATOMIC_RELAXED) >> (i % 64) & 1);
}

void mallet__zero_after_fork(void)
{
    // A vanished holder was setting one bit, or making the region: a bit
    // set for an address no one holds only keeps that address from being
    // handed out again; a region made but not published is left unused.
    if (mallet__lock_after_fork(&zero_lock) != MALLET_LOCK_WAS_MINE)
        mallet__unlock(&zero_lock);
}

#endif
