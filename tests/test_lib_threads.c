// SPDX-License-Identifier: MIT
//
// test_lib_threads.c -- thread heaps: many threads freeing each other's
// blocks, thread exit with live blocks (abandonment) and their adoption,
// a thread whose first call is free, fork from a threaded process.
#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mallet.h"

// These tests check the statistics of frees between threads, to the block: a guarded block (src/secure/guard.h), placed alone
// between inaccessible pages, is none of that, so the guard is off.
__attribute__((constructor)) static void guard_off(void)
{
    setenv("MALLET_GUARD", "0", 1);     // read at start-up, which comes later
}


// tsan: yes


enum { T = 8, SLOTS = 4096 };
static _Atomic(unsigned char *) shared[SLOTS];

static void *swap_thread(void *arg)
{
    uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    long steps = test_under_valgrind() ? 2000 : 200000;
    for (long s = 0; s < steps; s++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = 1 + x % (x % 64 == 0 ? 70000 : 300);
        unsigned char *p = mallet_malloc(n);
        if (!p)
            return (void *)1;
        p[0] = (unsigned char)n;
        p[n - 1] = (unsigned char)(n >> 3);
        unsigned char *old = atomic_exchange(&shared[(x >> 20) % SLOTS], p);
        if (old) {
            size_t m = mallet_usable_size(old);
            if (m == 0)
                return (void *)2;
            mallet_free(old);
        }
    }
    return NULL;
}

TEST(threads_free_each_others_blocks)
{
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, swap_thread, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }
    for (int i = 0; i < SLOTS; i++)
        mallet_free(atomic_exchange(&shared[i], NULL));
    mallet_stats_t s;
    mallet_stats_get(&s);
    CHECK(s.remote_frees > 0);
    CHECK(s.pages_abandoned > 0);
    CHECK(s.allocated == 0);
}

static void *leave_blocks(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 1000; i++)
        out[i] = mallet_malloc(96);
    return NULL;
}

static void *adopt(void *arg)
{
    (void)arg;
    void *p[3000];
    for (int i = 0; i < 3000; i++)
        p[i] = mallet_malloc(96);
    for (int i = 0; i < 3000; i++)
        mallet_free(p[i]);
    return NULL;
}

TEST(an_exited_threads_pages_are_adopted)
{
    static void *blocks[1000];
    pthread_t t;
    pthread_create(&t, NULL, leave_blocks, blocks);
    pthread_join(t, NULL);
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    CHECK(a.pages_abandoned >= 1);
    // Free half from here (the page has no owner), then let a new thread
    // take the page over and allocate from the holes.
    for (int i = 0; i < 1000; i += 2)
        mallet_free(blocks[i]);
    pthread_create(&t, NULL, adopt, NULL);
    pthread_join(t, NULL);
    mallet_stats_get(&b);
    CHECK(b.pages_adopted > a.pages_adopted);
    for (int i = 1; i < 1000; i += 2)
        mallet_free(blocks[i]);
    mallet_stats_get(&b);
    CHECK(b.allocated == 0);
}

static void *only_free(void *p)
{
    mallet_free(p);
    return NULL;
}

TEST(a_thread_that_only_frees_builds_no_heap)
{
    void *p = mallet_malloc(200);
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    pthread_t t;
    pthread_create(&t, NULL, only_free, p);
    pthread_join(t, NULL);
    mallet_stats_get(&b);
    CHECK(b.threads == a.threads);
    CHECK(b.remote_frees == a.remote_frees + 1);
    CHECK(b.allocated + 200 <= a.allocated);
}

// A consumer: frees every block of the array it is given, then reports
// how many thread heaps are alive while it still runs.
typedef struct {
    void **blocks;       // what to free
    int n;               // how many
    uint64_t threads;    // heaps alive at the end, seen from inside
} consumer_t;

static void *consume(void *arg)
{
    consumer_t *c = arg;
    for (int i = 0; i < c->n; i++)
        mallet_free(c->blocks[i]);
    mallet_stats_t s;
    mallet_stats_get(&s);
    c->threads = s.threads;
    return NULL;
}

TEST(a_thread_that_keeps_freeing_builds_a_heap)
{
    enum { N = 2000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = mallet_malloc(48);
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    consumer_t c = { blocks, N, 0 };
    pthread_t t;
    pthread_create(&t, NULL, consume, &c);
    pthread_join(t, NULL);
    mallet_stats_get(&b);
    // Past its first few frees the consumer batches them in a heap of its
    // own, which goes away with the thread.
    CHECK(c.threads == a.threads + 1);
    CHECK(b.threads == a.threads);
    CHECK(b.remote_frees == a.remote_frees + N);
    CHECK(b.allocated + N * 48 <= a.allocated);
}

// An owner fills pages (its cursor finds the older ones with nothing free
// and moves them to its full list), two consumers free the blocks while
// the owner goes on allocating (taking its unfull stack back) and then
// exits (waiting for pages being queued on that stack). Many rounds: the
// races are between a push and the owner's take-back or exit.
typedef struct {
    void **blocks;       // filled by the owner, freed by the consumers
    int n;               // blocks
    atomic_int ready;    // the owner has filled blocks[]
} round_t;

static void *owner(void *arg)
{
    round_t *r = arg;
    for (int i = 0; i < r->n; i++)
        r->blocks[i] = mallet_malloc(64);
    atomic_store(&r->ready, 1);
    void *mine[256];
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < 256; i++)
            mine[i] = mallet_malloc(64);
        for (int i = 0; i < 256; i++)
            mallet_free(mine[i]);
    }
    return NULL;
}

static void *consume_half(void *arg)
{
    consumer_t *c = arg;
    round_t *r = (round_t *)c->blocks;
    while (!atomic_load(&r->ready))
        sched_yield();
    for (int i = c->n; i < r->n; i += 2)
        mallet_free(r->blocks[i]);
    return NULL;
}

TEST(frees_into_full_pages_race_the_owners_refill_and_exit)
{
    enum { N = 3000 };
    static void *blocks[N];
    int rounds = test_under_valgrind() ? 10 : 300;
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    for (int k = 0; k < rounds; k++) {
        round_t r = { blocks, N, 0 };
        consumer_t half[2] = { { (void **)&r, 0, 0 }, { (void **)&r, 1, 0 } };
        pthread_t o, c[2];
        pthread_create(&o, NULL, owner, &r);
        for (int i = 0; i < 2; i++)
            pthread_create(&c[i], NULL, consume_half, &half[i]);
        pthread_join(o, NULL);
        for (int i = 0; i < 2; i++)
            pthread_join(c[i], NULL);
    }
    mallet_stats_get(&b);
    CHECK(b.remote_frees >= a.remote_frees + (uint64_t)rounds * N);
    CHECK(b.allocated <= a.allocated);
    CHECK(b.threads == a.threads);
}

static atomic_int stop;

static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        mallet_free(mallet_malloc(1 + (size_t)rand() % 5000));
    return NULL;
}

TEST(fork_child_of_a_threaded_parent_allocates)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, busy, NULL);
    for (int k = 0; k < (test_under_valgrind() ? 3 : 30); k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 10000; i++)
                mallet_free(mallet_malloc((size_t)i % 3000 + 1));
            void *big = mallet_malloc(1 << 22);
            mallet_free(big);
            // exec, not exit: blocks the vanished threads held are not the
            // child's leaks, and memcheck does not check an exec'd child.
            execl("/bin/true", "true", (char *)NULL);
            _exit(1);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
}
