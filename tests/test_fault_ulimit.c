// SPDX-License-Identifier: MIT
//
// test_fault_ulimit.c -- out of memory for real: under an address-space
// limit (ulimit -v, set by tests/fault_ulimit.sh), allocate until the
// kernel refuses, in small, medium and large blocks. Each refusal must be
// NULL with errno ENOMEM (never a crash); after freeing everything the
// allocated count is back at its start, and allocating the same amount
// again succeeds (the heap recovered, nothing was lost on the way).
//
// Run without the limit (MALLET_TEST_ULIMIT unset) the tests skip: they
// would take all the memory the machine has.
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "mallet.h"

enum { MAX_BLOCKS = 1 << 20 };

static void **blocks;
static size_t count;

static void require_limit(void)
{
    if (!getenv("MALLET_TEST_ULIMIT"))
        TEST_SKIP("run by tests/fault_ulimit.sh under ulimit -v");
    blocks = mmap(NULL, MAX_BLOCKS * sizeof *blocks, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blocks == MAP_FAILED)
        TEST_SKIP("no room for the block table");
}

static uint64_t allocated(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.allocated;
}

// Allocate blocks of `size` (rotating through three sizes around it) until
// NULL; return the bytes obtained. Every block is written at both ends.
static size_t exhaust(size_t size)
{
    size_t got = 0;
    count = 0;
    for (;;) {
        size_t n = size + (count % 3) * (size / 4);
        errno = 0;
        char *p = mallet_malloc(n);
        if (p == NULL) {
            CHECK(errno == ENOMEM);
            break;
        }
        p[0] = 1;
        p[n - 1] = 2;
        blocks[count++] = p;
        got += n;
        if (count == MAX_BLOCKS)
            break;
    }
    CHECK(count < MAX_BLOCKS);
    return got;
}

static void release_all(void)
{
    while (count > 0)
        mallet_free(blocks[--count]);
}

static void exhaust_twice(size_t size)
{
    uint64_t start = allocated();
    size_t first = exhaust(size);
    fprintf(stderr, "  %zu-byte blocks: %zu MiB before ENOMEM\n", size, first >> 20);
    CHECK(first > 0);
    // Out of memory, other calls fail cleanly too.
    errno = 0;
    CHECK(mallet_calloc(1, 64 << 20) == NULL && errno == ENOMEM);
    void *p = NULL;
    CHECK(mallet_posix_memalign(&p, 1 << 20, 64 << 20) == ENOMEM);
    release_all();
    CHECK(allocated() == start);
    mallet_trim();
    size_t second = exhaust(size);
    fprintf(stderr, "  again: %zu MiB\n", second >> 20);
    // The second round gets at least nine tenths of the first: nothing
    // the first round took was lost.
    CHECK(second >= first / 10 * 9);
    release_all();
    CHECK(allocated() == start);
}

TEST(small_blocks_until_enomem)
{
    require_limit();
    exhaust_twice(1000);
}

TEST(medium_blocks_until_enomem)
{
    require_limit();
    exhaust_twice(40000);
}

TEST(large_blocks_until_enomem)
{
    require_limit();
    exhaust_twice(3 << 20);
}

// A realloc that cannot grow leaves the block as it was.
TEST(realloc_growth_until_enomem)
{
    require_limit();
    uint64_t start = allocated();
    size_t n = 1 << 20;
    char *p = mallet_malloc(n);
    CHECK(p != NULL);
    memset(p, 'x', n);
    for (;;) {
        errno = 0;
        char *q = mallet_realloc(p, n * 2);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            break;
        }
        memset(q + n, 'x', n);
        p = q;
        n *= 2;
    }
    CHECK(p[0] == 'x' && p[n - 1] == 'x' && p[n / 2] == 'x');
    mallet_free(p);
    CHECK(allocated() == start);
}
