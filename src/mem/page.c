// SPDX-License-Identifier: MIT
//
// page.c -- one page and its lists: carving blocks, collecting other
// threads' frees, the checked pop, the heap check's walk.
//
// Everything here runs on slow paths, by the page's owner or by the sole
// holder of an ownerless page (abandoned list, fork child). The fast paths
// in heap.h pop and push inline and come here when a list runs dry.
#include "page.h"

#include "os/os.h"
#include "base/base.h"
#include "harden.h"

#include <stdlib.h>

// Bytes of blocks carved at a time. The secure build carves an OS page per
// run of its shuffle (harden.c).
#if MALLET_SECURE
#define MALLET_CARVE_BYTES (MALLET_CARVE_RUNS * 4096)
#else
#define MALLET_CARVE_BYTES 4096
#endif

mallet_page_t mallet__page_none;
mallet_page_t mallet__page_empty;

void mallet__page_init(mallet_page_t *page, char *start, unsigned cls, struct mallet_heap *heap)
{
    const mallet_class_t *k = &mallet__classes[cls];
    page->free = 0;
    page->local_free = 0;
    page->local_count = 0;
    __atomic_store_n(&page->thread_free, 0, __ATOMIC_RELAXED);
    page->key = mallet__random_next() | 1;
    page->mark = mallet__random_next();
    page->start = start;
    page->block_size = k->size;
    // Rounded up past 2^64 / size even when size divides 2^64: then
    // magic * size wraps to a small e > 0, and block q's offset times magic
    // is q * e, below capacity * e, while any offset that is not a multiple
    // of the size lands at magic or above (page.h).
    page->magic = (uint64_t)(((unsigned __int128)1 << 64) / k->size) + 1;
    page->capacity = 0;
    page->limit = 0;
    page->reserved = k->blocks;
    page->cls = (uint8_t)cls;
    page->units = k->units;
#if MALLET_SECURE
    page->reserved = mallet__secure_capacity(page);
    page->canary = (uint32_t)mallet__random_next() | 0x80808080u;
#endif
    page->spare_seen = 0;
    page->internal = 0;
    page->next = page->prev = NULL;
    __atomic_store_n(&page->heap, (uintptr_t)heap, __ATOMIC_RELEASE);
    MALLET_TRACK_MEM_NOACCESS(start, (size_t)k->units * MALLET_UNIT_SIZE);
#if MALLET_TRACK_ENABLED
    size_t bytes = (k->blocks * sizeof(uint32_t) + mallet__os_page_size() - 1) &
                   ~(mallet__os_page_size() - 1);
    page->req = mallet__os_map(bytes, 0);
#endif
}

uint32_t mallet__page_extend(mallet_page_t *page)
{
    if (page->capacity >= page->reserved)
        return 0;
    // A few KiB at a time: a page is touched (and made resident) only as
    // far as it is used.
    uint32_t n = (MALLET_CARVE_BYTES + page->block_size - 1) / page->block_size;
    if (n < 4)
        n = 4;
    if (n > page->reserved - page->capacity)
        n = page->reserved - page->capacity;
    uintptr_t first = (uintptr_t)page->start + (uintptr_t)page->capacity * page->block_size;
#if MALLET_SECURE
    mallet__secure_carve(page, first, n);
#else
    uintptr_t b = first;
    for (uint32_t i = 1; i < n; i++, b += page->block_size) {
        mallet__link_write(page, b, b + page->block_size);
        mallet__mark_set(page, b);
    }
    mallet__link_write(page, b, page->free);
    mallet__mark_set(page, b);
    page->free = first;
#endif
    // Relaxed atomic: other threads read it (mallet__page_is_block) for
    // blocks they hold, which the old value already covers.
    __atomic_store_n(&page->capacity, page->capacity + n, __ATOMIC_RELAXED);
    mallet__page_set_limit(page);
    return n;
}

void mallet__page_set_limit(mallet_page_t *page)
{
    uint64_t e = page->magic * page->block_size;     // mod 2^64: 1..block_size
    // Relaxed: another thread's free tests blocks it holds, which the old
    // limit covers already.
    __atomic_store_n(&page->limit, (uint32_t)(e * page->capacity), __ATOMIC_RELAXED);
}

bool mallet__page_is_block(const mallet_page_t *page, uintptr_t p)
{
    if (page->block_size == 0 || p < (uintptr_t)page->start)
        return false;
    uintptr_t off = p - (uintptr_t)page->start;
    uint32_t capacity = __atomic_load_n(&page->capacity, __ATOMIC_RELAXED);
    // A page is at most a segment long, so the offset fits 32 bits and the
    // division is the short one.
    return off < (uintptr_t)capacity * page->block_size && (uint32_t)off % page->block_size == 0;
}

void mallet__page_corrupt(const mallet_page_t *page)
{
    char store[128];
    mallet_buf_t b = { store, sizeof store, 0 };
    mallet__buf_str(&b, "mallet: heap corruption: free list of page ");
    mallet__buf_hex(&b, (uintptr_t)page->start);
    mallet__buf_str(&b, " damaged\n");
    mallet__buf_flush(&b, 2);
    if (mallet__report_stack)
        mallet__report_stack(2);
    abort();
}

// A free block's link and mark (and, secure build, fill) are whole.
static void page_check_block(const mallet_page_t *page, uintptr_t b, uintptr_t next, const char *func)
{
    uint64_t mark = mallet__mark_get(b);
    MALLET_TRACK_MEM_NOACCESS((void *)(b + 8), sizeof(uint64_t));
#if MALLET_SECURE
    (void)mark;
    if ((next != 0 && !mallet__page_is_block(page, next)) || !mallet__secure_fill_intact(page, b))
        mallet__secure_written(b, func);
#else
    (void)func;
    if ((next != 0 && !mallet__page_is_block(page, next)) || mark != page->mark)
        mallet__page_corrupt(page);
#endif
}

uint32_t mallet__page_check(const mallet_page_t *page, const char *func, uintptr_t cut, uintptr_t cut_next)
{
    // Both lists, link by link; more blocks than the page has means a
    // cycle, which only a rewritten link makes.
    uint32_t n = 0;
    uintptr_t lists[2] = { page->free, page->local_free };
    for (int l = 0; l < 2; l++) {
        for (uintptr_t b = lists[l]; b != 0;) {
            if (!mallet__page_is_block(page, b) || ++n > page->capacity)
                mallet__page_corrupt(page);
            uintptr_t next = mallet__link_read(page, b);
            if (b == cut && next == 0)
                next = cut_next;
            page_check_block(page, b, next, func);
            b = next;
        }
    }
    return n;
}

// A decoded link must be 0 or a carved block of the same page.
static inline void page_check_link(const mallet_page_t *page, uintptr_t next)
{
    if (next != 0 && !mallet__page_is_block(page, next))
        mallet__page_corrupt(page);
}

void mallet__page_collect_chain(mallet_page_t *page)
{
    uint64_t tf = __atomic_exchange_n(&page->thread_free, 0, __ATOMIC_ACQUIRE);
    if (tf == 0)
        return;
    uintptr_t head = mallet__tf_head(page, tf), tail = mallet__tf_tail(page, tf);
    uint32_t n = mallet__tf_count(tf);
    // The word was written by the freers' compare-and-swap only; its ends
    // are checked anyway (the chain's inner links are when they are popped).
    if (!mallet__page_is_block(page, head) || !mallet__page_is_block(page, tail) || n == 0 ||
        n > page->capacity - page->local_count)
        mallet__page_corrupt(page);
    mallet__page_push_local(page, head, tail, n);
}

uint32_t mallet__page_swap_in(mallet_page_t *page)
{
    mallet_assert_expensive(mallet__page_free_count(page) + mallet__page_used(page) <= page->capacity);
    mallet_assert(page->local_count != 0 || page->local_free == 0);
    if (page->free != 0)
        return 0;
    uint32_t n = page->local_count;
#if MALLET_SECURE
    mallet__secure_swap_in(page);
#else
    page->free = page->local_free;
    page->local_free = 0;
#endif
    page->local_count = 0;
    return n;
}

uint32_t mallet__page_unload(mallet_page_t *page)
{
    uintptr_t head = page->free;
    if (head == 0)
        return 0;
    uint32_t n = 1;
    uintptr_t b = head;
    for (uintptr_t next; (next = mallet__link_read(page, b)) != 0; b = next) {
        page_check_link(page, next);
        if (++n > page->reserved)
            mallet__page_corrupt(page);
    }
    page->free = 0;
    mallet__page_push_local(page, head, b, n);
    return n;
}

uint32_t mallet__page_free_count(const mallet_page_t *page)
{
    uint32_t n = 0;
    for (uintptr_t b = page->free; b != 0; b = mallet__link_read(page, b)) {
        if (!mallet__page_is_block(page, b) || ++n > page->reserved)
            mallet__page_corrupt(page);
    }
    return n;
}

void *mallet__page_pop_checked(mallet_page_t *page)
{
    uintptr_t b = page->free;
    if (b == 0)
        return NULL;
    uintptr_t next = mallet__link_read(page, b);
#if MALLET_SECURE
    // The block's own link or fill is damaged: written after it was freed.
    if ((next != 0 && !mallet__page_is_block(page, next)) || !mallet__secure_fill_intact(page, b))
        mallet__secure_written(b, "malloc");
#else
    page_check_link(page, next);
    if (!mallet__mark_whole(page, b))
        mallet__page_corrupt(page);
#endif
    page->free = next;
    return (void *)b;
}

void mallet__page_list_push(mallet_page_list_t *l, mallet_page_t *page)
{
    page->prev = NULL;
    page->next = l->first;
    if (l->first)
        l->first->prev = page;
    else
        l->last = page;
    // Atomic (relaxed): a list's head may be peeked at without its lock
    // (mallet__thread_adopt's "anything abandoned?").
    __atomic_store_n(&l->first, page, __ATOMIC_RELAXED);
}

void mallet__page_list_insert_before(mallet_page_list_t *l, mallet_page_t *at, mallet_page_t *page)
{
    page->next = at;
    page->prev = at ? at->prev : l->last;
    if (page->prev)
        page->prev->next = page;
    else
        __atomic_store_n(&l->first, page, __ATOMIC_RELAXED);
    if (at)
        at->prev = page;
    else
        l->last = page;
}

void mallet__page_list_remove(mallet_page_list_t *l, mallet_page_t *page)
{
    if (page->prev)
        page->prev->next = page->next;
    else
        __atomic_store_n(&l->first, page->next, __ATOMIC_RELAXED);
    if (page->next)
        page->next->prev = page->prev;
    else
        l->last = page->prev;
    page->next = page->prev = NULL;
}
