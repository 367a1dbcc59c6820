// SPDX-License-Identifier: MIT
//
// secure.c -- the secure build's checks: canaries, fill-on-free with a
// check on reuse, the quarantine, shuffled free lists, guard pages. What
// each one is and where it hooks in: secure.h. The default build compiles
// this file to nothing.
//
// Layout of a small block in the secure build (block size bs, request req,
// bs >= req + 8 by construction):
//
//   live:    [ user data: req | canary: up to 16 | ... | req:32 check:32 ]
//   free:    [ tag or link: 8 | fill: up to offset 64 | ...               ]
//
// The canary byte and the check are keyed by a process secret and the
// block's address, so neither can be forged by writing a known value. The
// tag marks a block waiting in quarantine (secret ^ address ^ a constant):
// a free that finds it is a double free, a realloc or usable_size that
// finds it was handed a freed pointer.
//
// Bounds, for cost: the canary is the 16 bytes after the request (a linear
// overflow crosses them first) plus the trailer; the fill covers the first
// 64 bytes of a free block (where a stale pointer to a struct writes its
// fields). Filling and checking whole blocks would make every malloc/free
// pair cost a pass over the block.
//
// Invariants: a block on a free list, or in a quarantine, holds fill bytes
// from offset 8 to min(bs, 64); a block in a quarantine has its bitmap bit
// set (the page is not empty, so it is not retired under the quarantine)
// and its tag in its first word.
//
// Calls: heap.h (the free path a block takes when it leaves the
// quarantine), span.h, os.h, init.h (randomness), debug.h (reports).
#include "secure.h"

#if MALLET_SECURE

#include <string.h>

#include "heap.h"
#include "init.h"
#include "os/os.h"
#include "span.h"

#define FILL_WORD  0xdfdfdfdfdfdfdfdfull      // what a free block holds past its first word
#define FILL_MAX   64u                        // bytes of a free block kept filled
#define CANARY_MAX 16u                        // canary bytes checked after the request
#define TAG_MAGIC  0x7175617261746e65ull      // marks a block in quarantine

_Static_assert(sizeof(mallet_segment_t) + 4096 <= MALLET_UNIT_SIZE,
               "segment metadata leaves room for its guard page");

// The helpers below run on every malloc and free of the secure build:
// inlined, they cost half the instructions they cost as calls.
#define INLINE static inline __attribute__((always_inline))

static uint64_t secret;                       // per process, never 0

static inline uint64_t key(void)
{
    uint64_t k = __atomic_load_n(&secret, __ATOMIC_ACQUIRE);
    if (__builtin_expect(k == 0, 0)) {
        uint64_t fresh = mallet__random_next() | 1, none = 0;
        // The first thread to get here sets it; everyone uses that one.
        if (!__atomic_compare_exchange_n(&secret, &none, fresh, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            return none;
        k = fresh;
    }
    return k;
}

static inline uint64_t tag_of(uintptr_t b)
{
    return key() ^ b ^ TAG_MAGIC;
}

static inline uint8_t canary_byte(uintptr_t b)
{
    return (uint8_t)((key() >> 24) ^ (b >> 4));
}

static inline uint64_t trailer_of(uintptr_t b, size_t req)
{
    uint64_t check = ((uint64_t)req ^ b ^ key()) * 0x9e3779b97f4a7c15ull;
    return (uint64_t)(uint32_t)req | (check & 0xffffffff00000000ull);
}

static inline size_t fill_end(const mallet_page_t *page)
{
    return page->block_size < FILL_MAX ? page->block_size : FILL_MAX;
}

static inline void store64(uintptr_t at, uint64_t v)
{
    memcpy((void *)at, &v, 8);
}

static inline uint64_t load64(uintptr_t at)
{
    uint64_t v;
    memcpy(&v, (const void *)at, 8);
    return v;
}

INLINE void fill(const mallet_page_t *page, uintptr_t b)
{
    for (size_t i = 8, end = fill_end(page); i < end; i += 8)
        store64(b + i, FILL_WORD);
}

static inline size_t canary_len(size_t req, size_t tail)
{
    return tail - req < CANARY_MAX ? tail - req : CANARY_MAX;
}

// The canary: its byte repeated over canary_len bytes after the request,
// written and checked as two (possibly overlapping) words when it is 8
// bytes or more long.
INLINE void lay_canary(const mallet_page_t *page, uintptr_t b, size_t req)
{
    size_t tail = page->block_size - 8, len = canary_len(req, tail);
    uint64_t c = canary_byte(b) * 0x0101010101010101ull;
    if (len >= 8) {
        store64(b + req, c);
        store64(b + req + len - 8, c);
    } else {
        memcpy((void *)(b + req), &c, len);
    }
    store64(b + tail, trailer_of(b, req));
}

// The request recorded in the block's canary; reports an overflow. A block
// whose trailer is gone and whose second word is fill was freed already
// (its quarantine mark replaced by a free-list link, after the quarantine
// let it go to another thread's page): that is a double free.
INLINE size_t check_canary(const mallet_page_t *page, uintptr_t b, const char *func)
{
    size_t tail = page->block_size - 8;
    uint64_t t, second;
    memcpy(&t, (char *)b + tail, 8);
    size_t req = (uint32_t)t;
    if (req > tail || t != trailer_of(b, req)) {
        memcpy(&second, (char *)b + 8, 8);
        if (page->block_size > 16 && second == FILL_WORD)
            mallet__fatal("mallet", func, "double free of", (void *)b);
        mallet__fatal("mallet", func, "heap overflow past", (void *)b);
    }
    size_t len = canary_len(req, tail);
    uint64_t c = canary_byte(b) * 0x0101010101010101ull, got = c, got2 = c;
    if (len >= 8) {
        got = load64(b + req);
        got2 = load64(b + req + len - 8);
    } else {
        memcpy(&got, (const void *)(b + req), len);
    }
    if (got != c || got2 != c)
        mallet__fatal("mallet", func, "heap overflow past", (void *)b);
    return req;
}

void mallet__secure_on_alloc(mallet_page_t *page, uintptr_t b, size_t req)
{
    uint64_t diff = 0;
    for (size_t i = 8, end = fill_end(page); i < end; i += 8)
        diff |= load64(b + i) ^ FILL_WORD;
    if (diff != 0)
        mallet__fatal("mallet", "malloc", "write after free of", (void *)b);
    lay_canary(page, b, req);
}

void mallet__secure_resize(const mallet_page_t *page, uintptr_t p, size_t req)
{
    lay_canary(page, p, req);
}

size_t mallet__secure_request(const mallet_page_t *page, uintptr_t p, const char *func)
{
    uint64_t first;
    memcpy(&first, (void *)p, 8);
    if (first == tag_of(p))
        mallet__fatal("mallet", func, "invalid pointer", (void *)p);
    return check_canary(page, p, func);
}

// A block leaving the quarantine: its tag must still be there.
static void *release(uintptr_t b, const char *func)
{
    uint64_t first;
    memcpy(&first, (void *)b, 8);
    if (first != tag_of(b))
        mallet__fatal("mallet", func, "write after free of", (void *)b);
    return (void *)b;
}

void *mallet__secure_quarantine(void *ptr, const char *func)
{
    uintptr_t p = (uintptr_t)ptr;
    mallet_heap_t *heap = mallet__tls_heap;
    mallet_page_t *page = mallet__span_page_of(p);
    // Large blocks, foreign pointers, interior pointers and blocks already
    // free take the normal path, which reports what needs reporting.
    // (A set bit marks the start of a live block: an aligned pointer whose
    // bit is set is one.)
    if (page == NULL || (p & (MALLET_GRAIN - 1)) != 0 || !mallet__bit_get(p))
        return ptr;
    uint64_t first;
    memcpy(&first, ptr, 8);
    if (first == tag_of(p))
        mallet__fatal("mallet", func, "double free of", ptr);
    check_canary(page, p, func);
    fill(page, p);
    // A thread without a heap has no quarantine: its block is freed now.
    if (heap == &mallet__heap_empty)
        return ptr;
    uint64_t t = tag_of(p);
    memcpy(ptr, &t, 8);
    uintptr_t out = heap->quarantine[heap->quarantine_next];
    heap->quarantine[heap->quarantine_next] = p;
    heap->quarantine_next = (heap->quarantine_next + 1) % MALLET_QUARANTINE;
    return out ? release(out, func) : NULL;
}

void mallet__secure_flush(mallet_heap_t *heap)
{
    if (heap == &mallet__heap_empty)
        return;
    for (unsigned i = 0; i < MALLET_QUARANTINE; i++) {
        uintptr_t b = heap->quarantine[i];
        if (b) {
            heap->quarantine[i] = 0;
            mallet__free_now(release(b, "free"), "free");
        }
    }
}

void mallet__secure_carve(mallet_page_t *page, uintptr_t first, uint32_t n)
{
    // n is at most 4096 / 16 blocks (page_extend carves a few KiB at a time).
    uint16_t order[256];
    uint32_t m = n < 256 ? n : 256;
    for (uint32_t i = 0; i < m; i++)
        order[i] = (uint16_t)i;
    uint64_t x = mallet__random_next() | 1;
    for (uint32_t i = m - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t j = (uint32_t)(x % (i + 1));
        uint16_t s = order[i];
        order[i] = order[j];
        order[j] = s;
    }
    uintptr_t bs = page->block_size, next = page->free;
    // Blocks past the shuffled 256 (none with today's carve sizes) keep
    // address order behind them.
    for (uint32_t i = n; i > m; i--) {
        uintptr_t b = first + (uintptr_t)(i - 1) * bs;
        fill(page, b);
        mallet__link_write(page, b, next);
        next = b;
    }
    for (uint32_t i = m; i > 0; i--) {
        uintptr_t b = first + (uintptr_t)order[i - 1] * bs;
        fill(page, b);
        mallet__link_write(page, b, next);
        next = b;
    }
    page->free = next;
}

bool mallet__secure_guard_run(char *start, unsigned units)
{
    size_t pg = mallet__os_page_size(), len = (size_t)units * MALLET_UNIT_SIZE;
    // The run may hold the guard of an earlier page at another offset:
    // open it all, then close its last OS page.
    if (!mallet__os_commit(start, len))
        return false;
    mallet__os_decommit(start + len - pg, pg);
    return true;
}

uint32_t mallet__secure_capacity(const mallet_page_t *page)
{
    size_t room = (size_t)page->units * MALLET_UNIT_SIZE - mallet__os_page_size();
    uint32_t fit = (uint32_t)(room / page->block_size);
    return fit < page->reserved ? fit : page->reserved;
}

void mallet__secure_guard_segment(mallet_segment_t *seg)
{
    size_t pg = mallet__os_page_size();
    mallet__os_decommit((char *)seg + MALLET_UNIT_SIZE - pg, pg);
}

#endif
