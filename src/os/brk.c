// SPDX-License-Identifier: MIT
//
// brk.c -- the break the teach allocators grow, in the manner of sbrk(2).
//
// A private break reserves its whole range up front (address space only)
// and commits pages as the break passes them, so several heaps can sit side
// by side in one process and each footprint (top - base) is exact. An sbrk
// break is the process's own, for preload builds that replace malloc.
//
// Invariant: base <= top <= committed <= limit, committed page aligned.
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <unistd.h>

bool mallet__brk_init_private(mallet_brk_t *b, size_t max)
{
    size_t page = mallet__os_page_size();
    max = (max + page - 1) & ~(page - 1);
    char *p = mallet__os_reserve(max, 0);
    if (p == NULL)
        return false;
    b->kind = MALLET_BRK_PRIVATE;
    b->base = b->top = b->committed = p;
    b->limit = p + max;
    return true;
}

void mallet__brk_init_sbrk(mallet_brk_t *b)
{
    b->kind = MALLET_BRK_SBRK;
    b->base = b->top = b->committed = sbrk(0);
    b->limit = NULL;
}

static void *brk_grow_sbrk(mallet_brk_t *b, intptr_t incr)
{
    void *old = sbrk(incr);
    if (old == (void *)-1) {
        errno = ENOMEM;
        return NULL;
    }
    // Someone else may have moved the process break since we last looked
    // (a libc that calls sbrk itself); our top is what sbrk says it is.
    b->top = (char *)old + incr;
    b->committed = b->top;
    return old;
}

void *mallet__brk_grow(mallet_brk_t *b, intptr_t incr)
{
    // Every growth counts as one request, so fault injection can say no to
    // it even when the pages are already committed.
    if (b->kind == MALLET_BRK_SBRK) {
        if (incr > 0 && mallet__os_count_request())
            return NULL;
        return brk_grow_sbrk(b, incr);
    }

    char *old = b->top;
    if (incr < 0) {
        if ((uintptr_t)-incr > (uintptr_t)(b->top - b->base)) {
            errno = EINVAL;
            return NULL;
        }
        b->top += incr;
        return old;
    }
    if ((uintptr_t)incr > (uintptr_t)(b->limit - b->top)) {
        errno = ENOMEM;
        return NULL;
    }
    char *want = b->top + incr;
    if (want > b->committed) {
        size_t page = mallet__os_page_size();
        char *end = (char *)(((uintptr_t)want + page - 1) & ~(uintptr_t)(page - 1));
        if (!mallet__os_commit(b->committed, (size_t)(end - b->committed))) {
            errno = ENOMEM;
            return NULL;
        }
        b->committed = end;
    } else if (incr > 0 && mallet__os_count_request()) {
        return NULL;
    }
    b->top = want;
    return old;
}

size_t mallet__brk_footprint(const mallet_brk_t *b)
{
    return (size_t)(b->top - b->base);
}

void mallet__brk_reset(mallet_brk_t *b)
{
    if (b->kind == MALLET_BRK_SBRK) {
        sbrk(-(intptr_t)(b->top - b->base));
        b->top = b->committed = b->base;
        return;
    }
    if (b->committed > b->base)
        mallet__os_decommit(b->base, (size_t)(b->committed - b->base));
    b->top = b->committed = b->base;
}

void mallet__brk_destroy(mallet_brk_t *b)
{
    if (b->kind == MALLET_BRK_PRIVATE && b->base)
        mallet__os_release(b->base, (size_t)(b->limit - b->base));
    b->base = b->top = b->committed = b->limit = NULL;
}
