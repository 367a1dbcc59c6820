// SPDX-License-Identifier: MIT
//
// test_fault_os.c -- out of memory at every step. Through the fake OS's
// fault injection (src/os/os.h), OS request number N fails (reserve,
// commit, map, remap), for N = 1 .. K, where K is the number of requests
// one run of the workload makes; then the same with every request from N
// on failing. The workload mixes small, large, aligned, calloc,
// realloc-growth (small to large, large by mremap), reallocarray, valloc,
// pvalloc, and runs in a fresh thread, so building the thread's heap is
// one of the requests that fail.
//
// For every N: each call either succeeds or returns NULL with errno ENOMEM
// (posix_memalign: returns ENOMEM, errno ENOMEM as glibc leaves it, and
// untouched when it succeeds); a failed realloc
// leaves the old block whole; nothing crashes. Afterwards, with the OS
// healthy again, every block still holds its contents, freeing them all
// brings the allocated count back to its start, mallet_trim() brings the
// mapped bytes back to where a clean run leaves them (nothing leaked),
// and the same workload then succeeds in full (the heap is usable).
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "mallet.h"
#include "os/os.h"

enum { SLOTS = 48 };

typedef struct {
    unsigned char *p[SLOTS];   // blocks, NULL where a call failed
    size_t n[SLOTS];           // their sizes
    int failures;              // calls that returned NULL with ENOMEM
    int wrong;                 // calls that broke the rules (NULL without ENOMEM, ...)
    uint64_t requests;         // OS requests the run made
} run_t;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    // Both ends and a sample between: blocks reach megabytes.
    for (size_t i = 0; i < n; i += (n > 8192 && i >= 64 && i + 64 < n) ? 4096 : 1)
        p[i] = (unsigned char)(seed + i * 13);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += (n > 8192 && i >= 64 && i + 64 < n) ? 4096 : 1)
        if (p[i] != (unsigned char)(seed + i * 13))
            return 0;
    return 1;
}

// Record the outcome of an allocating call into slot i.
static void got(run_t *r, int i, void *p, size_t n, int err)
{
    if (p == NULL) {
        if (err == ENOMEM)
            r->failures++;
        else {
            fprintf(stderr, "  slot %d: NULL with errno %d\n", i, err);
            r->wrong++;
        }
        return;
    }
    r->p[i] = p;
    r->n[i] = n;
    fill(p, n, (unsigned)i);
}

// realloc slot i to n bytes: on failure the old block must be whole.
static void grow(run_t *r, int i, size_t n, int array)
{
    if (r->p[i] == NULL)
        return;
    errno = 0;
    void *q = array ? mallet_reallocarray(r->p[i], n / 16, 16) : mallet_realloc(r->p[i], n);
    int err = errno;
    if (q == NULL) {
        if (!intact(r->p[i], r->n[i], (unsigned)i)) {
            fprintf(stderr, "  slot %d: failed realloc damaged the block\n", i);
            r->wrong++;
        }
        got(r, i, NULL, 0, err);
        return;
    }
    size_t keep = r->n[i] < n ? r->n[i] : n;
    if (!intact(q, keep, (unsigned)i)) {
        fprintf(stderr, "  slot %d: realloc lost the contents\n", i);
        r->wrong++;
    }
    r->p[i] = NULL;
    got(r, i, q, n, 0);
}

static void *workload(void *arg)
{
    run_t *r = arg;
    static const size_t small[] = { 0, 16, 24, 100, 1000, 4000, 30000, 200000 };
    static const size_t large[] = { 300 << 10, 1 << 20, 5 << 20 };
    int i = 0;
    uint64_t start = mallet__os_requests();
    for (size_t k = 0; k < sizeof small / sizeof small[0]; k++, i++) {
        errno = 0;
        void *p = mallet_malloc(small[k]);
        got(r, i, p, small[k], errno);
    }
    for (size_t k = 0; k < sizeof large / sizeof large[0]; k++, i++) {
        errno = 0;
        void *p = mallet_malloc(large[k]);
        got(r, i, p, large[k], errno);
    }
    static const size_t aligns[] = { 64, 4096, 128 << 10, 1 << 20 };
    for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++, i++) {
        void *p = NULL;
        int saved = errno = 12345;
        int rc = mallet_posix_memalign(&p, aligns[k], 5000);
        if (errno != (rc == 0 ? saved : ENOMEM)) {
            fprintf(stderr, "  posix_memalign left errno %d (returned %d)\n", errno, rc);
            r->wrong++;
        }
        if (rc != 0 && rc != ENOMEM) {
            fprintf(stderr, "  posix_memalign returned %d\n", rc);
            r->wrong++;
        }
        got(r, i, rc == 0 ? p : NULL, 5000, rc);
    }
    static const struct { int kind; size_t align, size, usable; } al[] = {
        { 0, 256, 1000, 1000 }, { 1, 2 << 20, 70000, 70000 }, { 2, 0, 10000, 10000 },
        { 3, 0, 10000, 12288 },
    };
    for (size_t k = 0; k < sizeof al / sizeof al[0]; k++, i++) {
        errno = 0;
        void *p = al[k].kind == 0 ? mallet_aligned_alloc(al[k].align, al[k].size)
                : al[k].kind == 1 ? mallet_memalign(al[k].align, al[k].size)
                : al[k].kind == 2 ? mallet_valloc(al[k].size)
                                  : mallet_pvalloc(al[k].size);
        got(r, i, p, al[k].usable, errno);
    }
    for (int c = 0; c < 3; c++, i++) {
        size_t n = c == 2 ? (3 << 20) : (size_t)(c + 1) * 40;
        errno = 0;
        unsigned char *p = mallet_calloc(n / 8, 8);
        int err = errno;
        for (size_t b = 0; p && b < n; b += 512)
            if (p[b] != 0) {
                fprintf(stderr, "  calloc block not zero\n");
                r->wrong++;
                break;
            }
        got(r, i, p, n, err);
    }
    // Growth from 32 bytes to 8 MiB: small classes, the move to large,
    // then mremap.
    int g = i++;
    errno = 0;
    void *first = mallet_malloc(32);
    got(r, g, first, 32, errno);
    for (size_t n = 64; n <= (8 << 20); n *= 2)
        grow(r, g, n, n == 4096);
    // Many blocks of one class: more than a page, so pages are added.
    for (int k = 0; k < 6 && i < SLOTS; k++, i++) {
        errno = 0;
        void *p = mallet_malloc(20000);
        got(r, i, p, 20000, errno);
    }
    r->requests = mallet__os_requests() - start;
    return NULL;
}

static void run_in_thread(run_t *r)
{
    memset(r, 0, sizeof *r);
    pthread_t t;
    if (pthread_create(&t, NULL, workload, r) != 0) {
        fprintf(stderr, "  pthread_create failed\n");
        r->wrong++;
        return;
    }
    pthread_join(t, NULL);
}

// Check every block, free it; 1 when all were whole.
static int check_and_free(run_t *r)
{
    int ok = 1;
    for (int i = 0; i < SLOTS; i++) {
        if (!r->p[i])
            continue;
        if (!intact(r->p[i], r->n[i], (unsigned)i)) {
            fprintf(stderr, "  slot %d (%zu bytes) damaged\n", i, r->n[i]);
            ok = 0;
        }
        mallet_free(r->p[i]);
    }
    return ok;
}

static uint64_t stat_allocated(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.allocated;
}

static uint64_t stat_mapped_after_trim(void)
{
    mallet_trim();
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.mapped;
}

// One clean run: K, and where a clean run leaves the counters.
static void baseline(uint64_t *k, uint64_t *alloc0, uint64_t *mapped0)
{
    run_t r;
    *alloc0 = stat_allocated();
    // Twice: the first run of a process also makes what it keeps (the
    // segment holding thread-heap records, the large-block table).
    for (int i = 0; i < 2; i++) {
        run_in_thread(&r);
        check_and_free(&r);
        *mapped0 = stat_mapped_after_trim();
    }
    *k = r.requests;
}

static void sweep(int fail_count)
{
    uint64_t k, alloc0, mapped0;
    baseline(&k, &alloc0, &mapped0);
    fprintf(stderr, "  K = %llu OS requests per run\n", (unsigned long long)k);
    CHECK(k >= 10);
    int total_failures = 0, visible = 0;
    for (uint64_t n = 1; n <= k + 2; n++) {
        run_t r;
        mallet__os_fake_fail(n, (uint64_t)fail_count);
        run_in_thread(&r);
        mallet__os_fake_fail(0, 0);
        total_failures += r.failures;
        // When every request from N on fails, a call inside the run sees
        // it, unless all the requests left are optional ones (checker
        // builds map a side table per page and do without it).
        if (r.failures > 0 && n <= k)
            visible++;
        if (r.wrong)
            fprintf(stderr, "  N = %llu: %d calls broke the rules\n", (unsigned long long)n, r.wrong);
        CHECK(r.wrong == 0);
        CHECK(check_and_free(&r));
        uint64_t a = stat_allocated(), m = stat_mapped_after_trim();
        if (a != alloc0 || m > mapped0)
            fprintf(stderr, "  N = %llu: allocated %llu (start %llu), mapped %llu (clean %llu)\n",
                    (unsigned long long)n, (unsigned long long)a, (unsigned long long)alloc0,
                    (unsigned long long)m, (unsigned long long)mapped0);
        CHECK(a == alloc0);
        CHECK(m <= mapped0);
        // The heap is usable again: a clean run succeeds in full.
        run_t again;
        run_in_thread(&again);
        CHECK(again.failures == 0 && again.wrong == 0);
        CHECK(check_and_free(&again));
        // Every faulted run starts from the same state: nothing cached.
        mallet_trim();
    }
    fprintf(stderr, "  %d calls failed with ENOMEM over the sweep; a failure was seen for %d of %llu N\n",
            total_failures, visible, (unsigned long long)k);
    CHECK(total_failures > 0);
    if (fail_count == 0)
        CHECK(visible >= (int)k / 2);
}

TEST(the_nth_os_request_fails)
{
    sweep(1);
}

TEST(every_os_request_from_the_nth_on_fails)
{
    sweep(0);
}

// The fault hits a thread whose heap already exists, mid-realloc: the
// large block's mremap fails and the block stays where it was.
TEST(failed_mremap_leaves_the_block)
{
    unsigned char *p = mallet_malloc(2 << 20);
    CHECK(p != NULL);
    fill(p, 2 << 20, 7);
    mallet__os_fake_fail(1, 0);
    errno = 0;
    void *q = mallet_realloc(p, 64 << 20);
    CHECK(q == NULL && errno == ENOMEM);
    mallet__os_fake_fail(0, 0);
    CHECK(intact(p, 2 << 20, 7));
    q = mallet_realloc(p, 64 << 20);
    CHECK(q != NULL);
    CHECK(intact(q, 2 << 20, 7));
    mallet_free(q);
}
