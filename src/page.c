// SPDX-License-Identifier: MIT
//
// page.c -- one page and its lists: carving blocks, collecting other
// threads' frees, the checked pop, emptiness from the bitmap.
//
// Everything here runs on slow paths, by the page's owner or by the sole
// holder of an ownerless page (abandoned list, fork child). The fast paths
// in heap.h pop and push inline and come here when a list runs dry.
#include "page.h"

#include "os/os.h"
#include "init.h"
#include "secure.h"

#include <stdlib.h>

// Bytes of blocks carved at a time. The secure build carves an OS page per
// run of its shuffle (secure.c).
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
    page->start = start;
    page->bitbase = mallet__bitbase_of((uintptr_t)start);
    page->block_size = k->size;
    page->capacity = 0;
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
    for (uint32_t i = 1; i < n; i++, b += page->block_size)
        mallet__link_write(page, b, b + page->block_size);
    mallet__link_write(page, b, page->free);
    page->free = first;
#endif
    // Relaxed atomic: other threads read it (mallet__page_is_block) for
    // blocks they hold, which the old value already covers.
    __atomic_store_n(&page->capacity, page->capacity + n, __ATOMIC_RELAXED);
    return n;
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
    abort();
}

uint32_t mallet__page_check(const mallet_page_t *page, const char *func)
{
    // A carved block whose bit is clear is on free or local_free (one on
    // thread_free keeps its bit until collected): it holds a link, and in
    // the secure build the fill. Walking the blocks in address order, not
    // the lists, reads the page once, front to back.
    uint32_t n = 0, bs = page->block_size;
    uintptr_t b = (uintptr_t)page->start;
    for (uint32_t i = 0; i < page->capacity; i++, b += bs) {
        if (mallet__bit_get(b))
            continue;
        uintptr_t next = mallet__link_read(page, b);
#if MALLET_SECURE
        if ((next != 0 && !mallet__page_is_block(page, next)) || !mallet__secure_fill_intact(page, b))
            mallet__secure_written(b, func);
#else
        (void)func;
        if (next != 0 && !mallet__page_is_block(page, next))
            mallet__page_corrupt(page);
#endif
        n++;
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
    uintptr_t head = __atomic_exchange_n(&page->thread_free, 0, __ATOMIC_ACQUIRE);
    if (head != 0) {
        page_check_link(page, head);
        uintptr_t b = head;
        uint32_t n = 1;
        for (;; n++) {
            uintptr_t next = mallet__link_read(page, b);
            page_check_link(page, next);
            uint64_t *w = mallet__bit_word(b);
            uint64_t bit = mallet__bit_mask(b);
            // A block freed twice by other threads reaches here twice; the
            // second visit finds its bit already clear (this also ends a
            // cycle the second push made).
            if (!(*w & bit))
                mallet__fatal("mallet", "free", "double free of", (void *)b);
            __atomic_store_n(w, *w & ~bit, __ATOMIC_RELAXED);
            if (next == 0)
                break;
            b = next;
        }
        mallet__page_push_local(page, head, b, n);
    }
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

// The bitmap words of the page's carved blocks (no block beyond them has
// ever been handed out, so their bits are clear).
static inline const uint64_t *page_bits(const mallet_page_t *page, size_t *words)
{
    uintptr_t s = (uintptr_t)page->start;
    size_t carved = (size_t)page->capacity * page->block_size;
    *words = (carved + (64 << MALLET_GRAIN_SHIFT) - 1) >> (MALLET_GRAIN_SHIFT + 6);
    return mallet__bit_word(s);
}

bool mallet__page_is_empty(const mallet_page_t *page)
{
    size_t n;
    const uint64_t *w = page_bits(page, &n);
    for (size_t i = 0; i < n; i++)
        if (__atomic_load_n(&w[i], __ATOMIC_ACQUIRE) != 0)
            return false;
    return __atomic_load_n(&page->thread_free, __ATOMIC_RELAXED) == 0;
}

// Popcount: the instruction when the CPU has it (nearly all x86-64 CPUs
// since 2008; cpuid says), the portable builtin otherwise.
#if defined(__x86_64__)
#include <cpuid.h>

__attribute__((target("popcnt"))) static uint32_t count_bits_popcnt(const uint64_t *w, size_t n)
{
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (uint32_t)__builtin_popcountll(__atomic_load_n(&w[i], __ATOMIC_RELAXED));
    return c;
}

static int has_popcnt = -1;   // -1 not asked yet, else 0 / 1
#endif

static uint32_t count_bits(const uint64_t *w, size_t n)
{
#if defined(__x86_64__)
    // Threads may ask at once; they all store the same answer.
    int popcnt = __atomic_load_n(&has_popcnt, __ATOMIC_RELAXED);
    if (__builtin_expect(popcnt < 0, 0)) {
        unsigned a, b, c, d;
        popcnt = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_POPCNT);
        __atomic_store_n(&has_popcnt, popcnt, __ATOMIC_RELAXED);
    }
    if (popcnt)
        return count_bits_popcnt(w, n);
#endif
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (uint32_t)__builtin_popcountll(__atomic_load_n(&w[i], __ATOMIC_RELAXED));
    return c;
}

uint32_t mallet__page_used(const mallet_page_t *page)
{
    size_t n;
    const uint64_t *w = page_bits(page, &n);
    return count_bits(w, n);
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
#endif
    if (mallet__bits_test_set(page->bitbase, b >> MALLET_GRAIN_SHIFT))
        mallet__page_corrupt(page);   // a live block on the free list
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
