// SPDX-License-Identifier: MIT
//
// os.c -- the Linux implementation of the OS seam in os.h, and the fake OS
// that tests substitute for it. Calls mmap, munmap, mprotect, madvise and
// mremap (and, to place a range, numa.c's mbind); nothing else in mallet does.
//
// Fault injection is a request counter checked on every call that can fail:
// it costs one atomic add per system call, which is noise beside the call.
#define _GNU_SOURCE
#include "os.h"
#include "numa.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#endif

static size_t os_page;                 // cached page size; 0 until first asked

static struct {
    uint64_t requests;                 // every request ever seen
    uint64_t fail_first;               // first request number that fails (0: none)
    uint64_t fail_last;                // last one that fails (UINT64_MAX: all)
    char *buf;                         // fake buffer, or NULL for the kernel
    size_t size;                       // its size
    size_t used;                       // bytes handed out from it
} os;

size_t mallet__os_page_size(void)
{
    // Relaxed atomics: two threads may find it unset at once, and both
    // store the same value.
    size_t page = __atomic_load_n(&os_page, __ATOMIC_RELAXED);
    if (page == 0) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (size_t)p : 4096;
        __atomic_store_n(&os_page, page, __ATOMIC_RELAXED);
    }
    return page;
}

uint64_t mallet__os_requests(void)
{
    return __atomic_load_n(&os.requests, __ATOMIC_RELAXED);
}

// Count a request; true when fault injection says this one must fail.
bool mallet__os_count_request(void)
{
    uint64_t n = __atomic_add_fetch(&os.requests, 1, __ATOMIC_RELAXED);
    uint64_t first = __atomic_load_n(&os.fail_first, __ATOMIC_RELAXED);
    if (first == 0 || n < first || n > os.fail_last)
        return false;
    errno = ENOMEM;
    return true;
}

void mallet__os_fake_fail(uint64_t nth, uint64_t count)
{
    uint64_t base = mallet__os_requests();
    os.fail_last = count == 0 ? UINT64_MAX : base + nth + count - 1;
    __atomic_store_n(&os.fail_first, nth == 0 ? 0 : base + nth, __ATOMIC_RELAXED);
}

void mallet__os_fake_use(void *buf, size_t size)
{
    os.buf = buf;
    os.size = size;
    os.used = 0;
}

size_t mallet__os_fake_used(void)
{
    return os.used;
}

// Carve `size` bytes aligned to `align` from the fake buffer.
static void *fake_carve(size_t size, size_t align)
{
    size_t used, start;
    do {
        used = __atomic_load_n(&os.used, __ATOMIC_RELAXED);
        uintptr_t at = (uintptr_t)os.buf + used;
        uintptr_t aligned = (at + align - 1) & ~(uintptr_t)(align - 1);
        start = aligned - (uintptr_t)os.buf;
        if (start + size > os.size || start + size < start) {
            errno = ENOMEM;
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&os.used, &used, start + size, false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    memset(os.buf + start, 0, size);
    return os.buf + start;
}

void *mallet__os_reserve(size_t size, size_t align)
{
    size_t page = mallet__os_page_size();
    if (align < page)
        align = page;
    if (mallet__os_count_request())
        return NULL;
    if (os.buf)
        return fake_carve(size, align);
    if (size + align < size) {
        errno = ENOMEM;
        return NULL;
    }
    // Over-reserve by the alignment and trim both ends: the kernel only
    // promises page alignment.
    size_t span = align == page ? size : size + align;
    char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    if (align == page)
        return p;
    char *aligned = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (aligned > p)
        munmap(p, (size_t)(aligned - p));
    size_t tail = (size_t)(p + span - (aligned + size));
    if (tail)
        munmap(aligned + size, tail);
    return aligned;
}

bool mallet__os_commit(void *p, size_t size)
{
    if (mallet__os_count_request())
        return false;
    if (os.buf)
        return true;
    if (mprotect(p, size, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return false;
    }
    return true;
}

bool mallet__os_decommit(void *p, size_t size)
{
    if (os.buf) {
        memset(p, 0, size);
        return true;
    }
    // MAP_FIXED over the range drops the pages and the commit charge at once.
    void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return q == p;
}

bool mallet__os_protect_none(void *p, size_t size)
{
    if (os.buf)
        return true;
    // mprotect keeps the pages (and their contents): made accessible again,
    // the range costs no page fault.
    return mprotect(p, size, PROT_NONE) == 0;
}

bool mallet__os_purge(void *p, size_t size)
{
    if (os.buf) {
        memset(p, 0, size);
        return true;
    }
    return madvise(p, size, MADV_DONTNEED) == 0;
}

void mallet__os_release(void *p, size_t size)
{
    if (os.buf || p == NULL)
        return;
    munmap(p, size);
}

void *mallet__os_map(size_t size, size_t align)
{
    size_t page = mallet__os_page_size();
    if (align <= page) {
        if (mallet__os_count_request())
            return NULL;
        if (os.buf)
            return fake_carve(size, page);
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            errno = ENOMEM;
            return NULL;
        }
        return p;
    }
    void *p = mallet__os_reserve(size, align);
    if (p == NULL)
        return NULL;
    if (!mallet__os_commit(p, size)) {
        mallet__os_release(p, size);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

void *mallet__os_remap(void *p, size_t old_size, size_t new_size)
{
    if (mallet__os_count_request())
        return NULL;
    if (os.buf) {
        if (new_size <= old_size)
            return p;
        void *q = fake_carve(new_size, mallet__os_page_size());
        if (q)
            memcpy(q, p, old_size);
        return q;
    }
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return q;
}

bool mallet__os_advise_huge(void *p, size_t size, bool huge)
{
    if (os.buf)
        return true;
    return madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0;
}

void mallet__os_place(void *p, size_t size, bool huge, int node)
{
    int saved = errno;
    if (huge)
        mallet__os_advise_huge(p, size, true);
    if (node >= 0)
        mallet__numa_bind_preferred(p, size, (unsigned)node);
    errno = saved;
}
