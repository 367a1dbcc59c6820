// SPDX-License-Identifier: MIT
//
// preload.c -- one teaching design as the malloc of a whole program
// (LD_PRELOAD=build/teach/libteach-NAME.so). Compiled once per design with
// -DTEACH_DESIGN=NAME, so DESIGN below is the table teach_NAME.
//
// What it adds to a design: the rest of the C library's allocation API
// (calloc, the aligned family, reallocarray, malloc_usable_size), and one
// lock around everything, so multithreaded programs run correctly, if
// slowly. The lock is a static initializer, usable before any constructor
// runs; nothing here calls malloc, stdio or locale, so the library works
// when it is the first code to run.
//
// Aligned blocks. A design with its own memalign serves them; otherwise we
// over-allocate by the alignment and hand out an aligned pointer inside the
// block. A side table (open addressing, in memory from the OS seam, never
// from malloc) maps that aligned pointer back to the block, so free,
// realloc and malloc_usable_size accept it.
//
// fork: pthread_atfork takes the lock before fork and gives it back in the
// parent; the child, whose only thread is the one that forked, starts with a
// fresh lock.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "debug/debug.h"
#include "os/os.h"
#include "teach.h"

#define PRELOAD_CAT2(a, b) a##b
#define PRELOAD_CAT(a, b)  PRELOAD_CAT2(a, b)
#define DESIGN             PRELOAD_CAT(teach_, TEACH_DESIGN)
#define EXPORT             __attribute__((visibility("default")))

extern const teach_allocator_t DESIGN;

static pthread_mutex_t preload_lock = PTHREAD_MUTEX_INITIALIZER;   // guards everything below and the design

// --- the side table: aligned pointer -> block it lives in --------------------

typedef struct side_slot {
    void *aligned;               // key: the pointer we handed out (NULL: empty, SIDE_GONE: deleted)
    void *block;                 // the design's block that contains it
} side_slot_t;

#define SIDE_GONE ((void *)1)    // a deleted slot: lookups probe past it

static side_slot_t *side;        // the table, in its own mapping
static size_t side_cap;          // slots (a power of two), 0 before first use
static size_t side_live;         // slots holding a key
static size_t side_used;         // slots holding a key or SIDE_GONE

static size_t side_hash(const void *p)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ULL);
}

// The slot for key p: where it is, or the empty slot that ends its probe.
static side_slot_t *side_slot(const void *p)
{
    size_t mask = side_cap - 1;
    for (size_t i = side_hash(p) & mask;; i = (i + 1) & mask)
        if (side[i].aligned == p || side[i].aligned == NULL)
            return &side[i];
}

// Rebuild into a table of `cap` slots, dropping deleted slots.
static bool side_rebuild(size_t cap)
{
    side_slot_t *old = side;
    size_t old_cap = side_cap;
    side_slot_t *t = mallet__os_map(cap * sizeof *t, 0);
    if (t == NULL)
        return false;
    side = t;
    side_cap = cap;
    side_used = side_live;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].aligned != NULL && old[i].aligned != SIDE_GONE)
            *side_slot(old[i].aligned) = old[i];
    if (old)
        mallet__os_release(old, old_cap * sizeof *old);
    return true;
}

static bool side_put(void *aligned, void *block)
{
    // Keep at most half the slots used, so probes stay short.
    if (2 * (side_used + 1) > side_cap) {
        size_t cap = side_cap ? side_cap : 256;
        while (2 * (side_live + 1) > cap / 2)
            cap *= 2;
        if (!side_rebuild(cap))
            return false;
    }
    side_slot_t *s = side_slot(aligned);
    *s = (side_slot_t){ aligned, block };
    side_live++;
    side_used++;
    return true;
}

// The block that aligned pointer p lives in, or NULL if p is a plain block.
static void *side_find(const void *p)
{
    if (side_live == 0)
        return NULL;
    side_slot_t *s = side_slot(p);
    return s->aligned ? s->block : NULL;
}

static void side_remove(const void *p)
{
    side_slot_t *s = side_slot(p);
    s->aligned = SIDE_GONE;
    side_live--;
}

// --- the API, each call under the one lock -----------------------------------

// Usable bytes at p, which may be an aligned pointer inside a block.
static size_t preload_usable(void *p)
{
    void *block = side_find(p);
    if (block)
        return DESIGN.usable_size(block) - (size_t)((char *)p - (char *)block);
    return DESIGN.usable_size(p);
}

static void preload_free(void *p)
{
    void *block = side_find(p);
    if (block) {
        side_remove(p);
        p = block;
    }
    DESIGN.free(p);
}

// An aligned block; align is a power of two. Called with the lock held.
static void *preload_memalign(size_t align, size_t n)
{
    if (align <= TEACH_ALIGN)
        return DESIGN.malloc(n);
    if (DESIGN.memalign)
        return DESIGN.memalign(align, n);
    if (n > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    char *block = DESIGN.malloc(n + align);
    if (block == NULL)
        return NULL;
    char *p = (char *)(((uintptr_t)block + align - 1) & ~(uintptr_t)(align - 1));
    if (p != block && !side_put(p, block)) {
        DESIGN.free(block);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

EXPORT void *malloc(size_t n)
{
    pthread_mutex_lock(&preload_lock);
    void *p = DESIGN.malloc(n);
    pthread_mutex_unlock(&preload_lock);
    return p;
}

EXPORT void free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    pthread_mutex_lock(&preload_lock);
    preload_free(p);
    pthread_mutex_unlock(&preload_lock);
    errno = saved;
}

EXPORT void *calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    // Through the design, not malloc(): a compiler may fuse malloc + memset
    // into a call to calloc, which would be this function.
    pthread_mutex_lock(&preload_lock);
    void *p = DESIGN.malloc(n);
    pthread_mutex_unlock(&preload_lock);
    if (p)
        memset(p, 0, n);
    return p;
}

EXPORT void *realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc(n);
    if (n == 0) {            // glibc: free the block, return NULL
        free(p);
        return NULL;
    }
    pthread_mutex_lock(&preload_lock);
    void *q;
    void *block = side_find(p);
    if (block == NULL) {
        q = DESIGN.realloc(p, n);
    } else {
        // An aligned block moves to a plain one, as glibc's realloc does.
        size_t old = preload_usable(p);
        q = DESIGN.malloc(n);
        if (q) {
            memcpy(q, p, old < n ? old : n);
            preload_free(p);
        }
    }
    pthread_mutex_unlock(&preload_lock);
    return q;
}

EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

EXPORT void *memalign(size_t align, size_t n)
{
    // glibc's rules: a non-power-of-two alignment is rounded up; an absurd
    // one is EINVAL.
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = TEACH_ALIGN;
    while (a < align)
        a *= 2;
    pthread_mutex_lock(&preload_lock);
    void *p = preload_memalign(a, n);
    pthread_mutex_unlock(&preload_lock);
    return p;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    int saved = errno;
    void *p = memalign(align, n);
    int err = p ? 0 : errno;
    errno = saved;
    if (p)
        *out = p;
    return err;
}

EXPORT void *valloc(size_t n)
{
    return memalign(mallet__os_page_size(), n);
}

EXPORT void *pvalloc(size_t n)
{
    size_t page = mallet__os_page_size();
    if (n > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign(page, (n + page - 1) & ~(page - 1));
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    pthread_mutex_lock(&preload_lock);
    size_t n = preload_usable(p);
    pthread_mutex_unlock(&preload_lock);
    return n;
}

// --- fork ------------------------------------------------------------------

static void preload_prepare(void)
{
    pthread_mutex_lock(&preload_lock);
}

static void preload_parent(void)
{
    pthread_mutex_unlock(&preload_lock);
}

static void preload_child(void)
{
    pthread_mutex_init(&preload_lock, NULL);
}

__attribute__((constructor)) static void preload_init(void)
{
    pthread_atfork(preload_prepare, preload_parent, preload_child);
}
