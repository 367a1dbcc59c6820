// SPDX-License-Identifier: MIT
//
// test_stress.c -- a bounded stress run of the mallet_* API: worker threads
// hand blocks to each other through shared slots (so most frees are
// cross-thread), storm realloc on blocks of their own from 8 bytes to
// 2 MiB, short-lived threads come and go (their pages are abandoned and
// adopted), and the main thread forks while all of that runs; each child
// allocates, checks and frees before it exits.
//
// Every block carries its size and a seed in its first 8 bytes and a
// pattern derived from them after; it is checked by whoever frees or
// reallocates it, and every block left at the end is checked too. Any
// mismatch, any NULL, a child that fails, or an allocated count that does
// not come back to its start fails the test.
//
// The run ends by itself: STRESS_SECONDS of wall time (30 plain, fewer
// under the checkers), then every thread stops at its next step.
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "mallet.h"

// tsan: yes

enum { WORKERS = 4, SHARED = 2048, OWN = 16 };

static _Atomic(unsigned char *) shared[SHARED];
static atomic_int stop;
static atomic_long damaged;      // blocks found not holding their pattern
static atomic_long null_returns; // allocations that failed
static atomic_long operations;

static const char *mode(void)
{
    const char *m = getenv("MALLET_TEST_MODE");
    return m ? m : "plain";
}

static double seconds(void)
{
    const char *s = getenv("STRESS_SECONDS");
    if (s)
        return atof(s);
    if (!strcmp(mode(), "plain"))
        return 30;
    if (!strcmp(mode(), "valgrind"))
        return 8;
    return 12;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static inline unsigned char pat(uint32_t seed, size_t i)
{
    return (unsigned char)(seed + i * 31 + (i >> 9));
}

// Bytes checked and filled: all of a block up to 4 KiB, then both ends and
// one byte per KiB.
static inline size_t step(size_t i, size_t n)
{
    return n <= 4096 || i < 256 || i + 256 >= n ? 1 : 1024;
}

static void stamp(unsigned char *p, size_t n, uint32_t seed)
{
    memcpy(p, &(uint32_t){ (uint32_t)n }, 4);
    memcpy(p + 4, &seed, 4);
    for (size_t i = 8; i < n; i += step(i, n))
        p[i] = pat(seed, i);
}

// Check a block against its stamp; `n` is what its owner believes its size
// to be (0: trust the stamp).
static size_t verify(const unsigned char *p, size_t n)
{
    uint32_t size, seed;
    memcpy(&size, p, 4);
    memcpy(&seed, p + 4, 4);
    if (n && size != n) {
        atomic_fetch_add(&damaged, 1);
        return n;
    }
    for (size_t i = 8; i < size; i += step(i, size))
        if (p[i] != pat(seed, i)) {
            atomic_fetch_add(&damaged, 1);
            break;
        }
    return size;
}

static unsigned char *make(uint64_t *x)
{
    uint64_t r = next(x);
    size_t n = 8 + r % (r % 97 == 0 ? 300000 : r % 7 == 0 ? 4000 : 200);
    unsigned char *p = r % 5 == 0 ? mallet_calloc(1, n) : mallet_malloc(n);
    if (!p) {
        atomic_fetch_add(&null_returns, 1);
        return NULL;
    }
    stamp(p, n, (uint32_t)(r >> 32));
    return p;
}

// One step of a worker: mostly exchange with the shared slots, sometimes
// a realloc of one of its own blocks.
static void work_step(uint64_t *x, unsigned char **own, size_t *own_n)
{
    uint64_t r = next(x);
    if (r % 4 == 0) {
        int k = (int)((r >> 8) % OWN);
        size_t n = 8 + (r >> 16) % ((r >> 40) % 16 == 0 ? (2u << 20) : 3000);
        if (own[k]) {
            verify(own[k], own_n[k]);
            unsigned char *q = mallet_realloc(own[k], n);
            if (!q) {
                atomic_fetch_add(&null_returns, 1);
                return;
            }
            size_t keep = own_n[k] < n ? own_n[k] : n;
            uint32_t seed;
            memcpy(&seed, q + 4, 4);
            for (size_t i = 8; i < keep; i += step(i, own_n[k]))
                if (q[i] != pat(seed, i)) {
                    atomic_fetch_add(&damaged, 1);
                    break;
                }
            own[k] = q;
        } else {
            own[k] = mallet_malloc(n);
            if (!own[k]) {
                atomic_fetch_add(&null_returns, 1);
                return;
            }
        }
        own_n[k] = n;
        stamp(own[k], n, (uint32_t)r);
        return;
    }
    unsigned char *p = make(x);
    if (!p)
        return;
    unsigned char *old = atomic_exchange(&shared[(r >> 20) % SHARED], p);
    if (old) {
        verify(old, 0);
        mallet_free(old);
    }
}

static void *worker(void *arg)
{
    uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    unsigned char *own[OWN] = { 0 };
    size_t own_n[OWN] = { 0 };
    long steps = 0;
    while (!atomic_load(&stop)) {
        for (int i = 0; i < 256; i++)
            work_step(&x, own, own_n);
        steps += 256;
    }
    for (int k = 0; k < OWN; k++)
        if (own[k]) {
            verify(own[k], own_n[k]);
            mallet_free(own[k]);
        }
    atomic_fetch_add(&operations, steps);
    return NULL;
}

// A thread of a few thousand steps that exits with blocks of its own still
// in the shared slots (its pages are abandoned, then adopted by others).
static void *short_lived(void *arg)
{
    uint64_t x = (uintptr_t)arg * 0xbf58476d1ce4e5b9ull + 7;
    unsigned char *own[OWN] = { 0 };
    size_t own_n[OWN] = { 0 };
    for (int i = 0; i < 3000 && !atomic_load(&stop); i++)
        work_step(&x, own, own_n);
    for (int k = 0; k < OWN; k++)
        if (own[k]) {
            verify(own[k], own_n[k]);
            mallet_free(own[k]);
        }
    atomic_fetch_add(&operations, 3000);
    return NULL;
}

static void *churn(void *arg)
{
    (void)arg;
    for (uintptr_t n = 1000; !atomic_load(&stop); n++) {
        pthread_t t[2];
        int made = 0;
        for (int i = 0; i < 2; i++)
            made += pthread_create(&t[i], NULL, short_lived, (void *)(n * 2 + (uintptr_t)i)) == 0;
        for (int i = 0; i < made; i++)
            pthread_join(t[i], NULL);
    }
    return NULL;
}

// The forked child: the other threads are gone, their locks must not be
// held; allocate, check, free, realloc, and look at some inherited blocks.
static int child_work(uint64_t seed)
{
    alarm(30);
    uint64_t x = seed | 1;
    unsigned char *mine[256];
    for (int i = 0; i < 256; i++)
        if (!(mine[i] = make(&x)))
            return 2;
    for (int i = 0; i < 64; i++) {
        unsigned char *p = atomic_load(&shared[(seed + (uint64_t)i * 31) % SHARED]);
        if (p)
            verify(p, 0);
    }
    unsigned char *g = mallet_malloc(16);
    for (size_t n = 32; g && n <= (1 << 20); n *= 4)
        g = mallet_realloc(g, n);
    if (!g)
        return 3;
    mallet_free(g);
    for (int i = 0; i < 256; i++) {
        verify(mine[i], 0);
        mallet_free(mine[i]);
    }
    return atomic_load(&damaged) ? 4 : 0;
}

TEST(threads_churn_share_realloc_and_fork)
{
    mallet_stats_t s0, s1;
    mallet_stats_get(&s0);
    double end = now() + seconds();
    pthread_t w[WORKERS], c;
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    pthread_create(&c, NULL, churn, NULL);
    int forks = 0, children_failed = 0;
    int fork_ok = strcmp(mode(), "valgrind") != 0;   // memcheck forks slowly: fewer
    while (now() < end) {
        struct timespec nap = { 0, fork_ok ? 150 * 1000 * 1000 : 900 * 1000 * 1000 };
        nanosleep(&nap, NULL);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            int rc = child_work((uint64_t)forks * 7919 + 1);
            // Memcheck's leak check at exit would count the blocks the
            // vanished threads held in registers and on their stacks as
            // lost: under it, the child hands its verdict to a shell.
            if (!fork_ok) {
                char cmd[16];
                snprintf(cmd, sizeof cmd, "exit %d", rc);
                execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            }
            _exit(rc);
        }
        if (pid < 0)
            continue;
        int status;
        waitpid(pid, &status, 0);
        forks++;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "  child %d: status 0x%x\n", forks, status);
            children_failed++;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i], NULL);
    pthread_join(c, NULL);
    for (int i = 0; i < SHARED; i++) {
        unsigned char *p = atomic_exchange(&shared[i], NULL);
        if (p) {
            verify(p, 0);
            mallet_free(p);
        }
    }
    mallet_stats_get(&s1);
    fprintf(stderr, "  %ld operations, %d forks, %llu remote frees, %llu pages adopted\n",
            atomic_load(&operations), forks, (unsigned long long)(s1.remote_frees - s0.remote_frees),
            (unsigned long long)(s1.pages_adopted - s0.pages_adopted));
    CHECK(atomic_load(&damaged) == 0);
    CHECK(atomic_load(&null_returns) == 0);
    CHECK(children_failed == 0);
    CHECK(forks > 0);
    CHECK(s1.remote_frees > s0.remote_frees);
    CHECK(s1.allocated == s0.allocated);
}
