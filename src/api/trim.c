// SPDX-License-Identifier: MIT
//
// trim.c -- mallet_trim and malloc_trim: give back every page that can go,
// now. The secure build checks the free blocks first (secure/check.c):
// a trim is a moment the program chose to spend time in the allocator.
//
// Calls: base/start.h (start-up), secure/ (the check), mem/purge.c.
#include "api.h"

#include "base/base.h"
#include "mem/mem.h"
#include "secure/secure.h"
#include "mallet.h"

size_t mallet__trim(const char *func)
{
    mallet__init();
#if MALLET_SECURE
    mallet__check_heap(func);
#else
    (void)func;
#endif
    return mallet__purge_all();
}

MALLET_API void mallet_trim(void)
{
    mallet__trim("malloc_trim");
}
