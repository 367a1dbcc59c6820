// SPDX-License-Identifier: MIT
//
// override.c -- the only file that defines libc's names: the malloc family,
// malloc_usable_size, free_sized, malloc_trim, malloc_stats, mallinfo2,
// mallinfo and the __libc_* aliases glibc's own code and some tools call.
//
// malloc and free inline the fast paths of heap.h (no extra call); the rest
// forward to the mallet_* functions. Linked into libmallet.so (preload) and
// libmallet.a (a program linking it gets these definitions before libc's).
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

#include "mem/mem.h"
#include "api/api.h"
#include "mallet.h"

MALLET_API MALLET_PROF_FRAME void *malloc(size_t size)
{
    return mallet__malloc_fast(size);
}

MALLET_API MALLET_PROF_FRAME void free(void *p)
{
    mallet__free_fast(p, "free");
}

MALLET_API MALLET_PROF_FRAME void *calloc(size_t count, size_t size)
{
    return mallet_calloc(count, size);
}

MALLET_API MALLET_PROF_FRAME void *realloc(void *p, size_t size)
{
    return mallet_realloc(p, size);
}

MALLET_API MALLET_PROF_FRAME void *reallocarray(void *p, size_t count, size_t size)
{
    return mallet_reallocarray(p, count, size);
}

MALLET_API MALLET_PROF_FRAME int posix_memalign(void **out, size_t align, size_t size)
{
    return mallet_posix_memalign(out, align, size);
}

MALLET_API MALLET_PROF_FRAME void *aligned_alloc(size_t align, size_t size)
{
    return mallet_aligned_alloc(align, size);
}

MALLET_API MALLET_PROF_FRAME void *memalign(size_t align, size_t size)
{
    return mallet_memalign(align, size);
}

MALLET_API MALLET_PROF_FRAME void *valloc(size_t size)
{
    return mallet_valloc(size);
}

MALLET_API MALLET_PROF_FRAME void *pvalloc(size_t size)
{
    return mallet_pvalloc(size);
}

MALLET_API MALLET_PROF_FRAME size_t malloc_usable_size(void *p)
{
    return mallet_usable_size(p);
}

MALLET_API MALLET_PROF_FRAME void free_sized(void *p, size_t size)
{
    mallet_free_sized(p, size);
}

MALLET_API MALLET_PROF_FRAME void free_aligned_sized(void *p, size_t align, size_t size)
{
    mallet_free_aligned_sized(p, align, size);
}

MALLET_API int malloc_trim(size_t pad)
{
    (void)pad;
    return mallet__trim("malloc_trim") > 0;
}

MALLET_API void malloc_stats(void)
{
    mallet_stats_print(2);
}

MALLET_API struct mallinfo2 mallinfo2(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    struct mallinfo2 mi = { 0 };
    mi.arena = s.mapped - (s.mapped > s.large_allocated ? s.large_allocated : 0);
    mi.hblkhd = s.large_allocated;
    mi.uordblks = s.allocated - s.large_allocated;
    mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
    mi.keepcost = s.resident > s.active ? s.resident - s.active : 0;
    return mi;
}

// The old form, still exported by glibc (a program calling it would read
// glibc's unused heap otherwise): the same numbers, each cut to INT_MAX.
static int clamp_int(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

MALLET_API struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = { 0 };
    mi.arena = clamp_int(m2.arena);
    mi.hblkhd = clamp_int(m2.hblkhd);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    mi.keepcost = clamp_int(m2.keepcost);
    return mi;
}

// glibc's internal names, for programs and tools that call them directly.
MALLET_API MALLET_PROF_FRAME void *__libc_malloc(size_t size) { return mallet__malloc_fast(size); }
MALLET_API MALLET_PROF_FRAME void __libc_free(void *p) { mallet__free_fast(p, "free"); }
MALLET_API MALLET_PROF_FRAME void *__libc_calloc(size_t count, size_t size) { return mallet_calloc(count, size); }
MALLET_API MALLET_PROF_FRAME void *__libc_realloc(void *p, size_t size) { return mallet_realloc(p, size); }
MALLET_API MALLET_PROF_FRAME void *__libc_memalign(size_t align, size_t size) { return mallet_memalign(align, size); }
MALLET_API MALLET_PROF_FRAME void *__libc_valloc(size_t size) { return mallet_valloc(size); }
MALLET_API MALLET_PROF_FRAME void *__libc_pvalloc(size_t size) { return mallet_pvalloc(size); }
MALLET_API MALLET_PROF_FRAME int __posix_memalign(void **out, size_t align, size_t size)
{
    return mallet_posix_memalign(out, align, size);
}
