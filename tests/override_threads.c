// SPDX-License-Identifier: MIT
//
// override_threads.c -- malloc under threads: many threads at once with
// random sizes; blocks freed by another thread than the one that made them
// (producer/consumer queues); threads that come and go while blocks pass
// between them, so blocks of exited threads are freed by others and their
// memory is reused; and fork() while other threads keep allocating.
#include "override_common.h"

#include <pthread.h>
#include <stdatomic.h>

// glibc keeps a few hundred bytes per cached thread stack (its TLS vector,
// made with malloc) after a join. Starting and joining as many threads as a
// test will use before it reads its starting count keeps that out of the
// leak check.
static void *nothing(void *arg) { return arg; }

static uint64_t allocated_after_warm_up(int threads)
{
    pthread_t th[32];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, nothing, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return test_allocated();
}

// --- many threads, random sizes ----------------------------------------------

static void *churn_thread(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 7919 + 1;
    enum { SLOTS = 256 };
    unsigned char *ptrs[SLOTS] = { 0 };
    size_t sizes[SLOTS] = { 0 };
    long steps = test_scaled(60000, 30);
    long bad = 0;
    for (long s = 0; s < steps; s++) {
        int i = (int)(test_rand(&seed) % SLOTS);
        if (ptrs[i]) {
            bad += !test_check_ends(ptrs[i], sizes[i], (unsigned)i);
            free(ptrs[i]);
        }
        uint64_t r = test_rand(&seed);
        sizes[i] = (r % 32 == 0) ? 1 + (r >> 8) % 300000 : 1 + (r >> 8) % 512;
        ptrs[i] = malloc(sizes[i]);
        if (!ptrs[i])
            return (void *)1;
        test_fill_ends(ptrs[i], sizes[i], (unsigned)i);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (ptrs[i]) {
            bad += !test_check_ends(ptrs[i], sizes[i], (unsigned)i);
            free(ptrs[i]);
        }
    }
    return (void *)(intptr_t)(bad != 0);
}

TEST(many_threads_with_random_sizes)
{
    enum { T = 12 };
    pthread_t th[T];
    uint64_t start = allocated_after_warm_up(T);
    for (int i = 0; i < T; i++)
        CHECK(pthread_create(&th[i], NULL, churn_thread, (void *)(intptr_t)(i + 1)) == 0);
    for (int i = 0; i < T; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        CHECK(ret == NULL);
    }
    if (test_on_mallet())
        CHECK_ALLOCATED_IS(start);
}

// --- producer/consumer: every block is freed by another thread -----------------

typedef struct {
    pthread_mutex_t lock;   // guards everything below
    pthread_cond_t cond;    // signalled on push and on close
    unsigned char **items;  // ring of blocks in flight
    size_t cap;             // ring capacity
    size_t head, len;       // ring position and fill
    int producers_left;     // consumers stop when 0 and empty
} queue_t;

static void queue_init(queue_t *q, size_t cap, int producers)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->items = malloc(cap * sizeof *q->items);
    q->cap = cap;
    q->head = q->len = 0;
    q->producers_left = producers;
}

static void queue_push(queue_t *q, unsigned char *p)
{
    pthread_mutex_lock(&q->lock);
    while (q->len == q->cap)
        pthread_cond_wait(&q->cond, &q->lock);
    q->items[(q->head + q->len++) % q->cap] = p;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static unsigned char *queue_pop(queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->len == 0 && q->producers_left > 0)
        pthread_cond_wait(&q->cond, &q->lock);
    unsigned char *p = NULL;
    if (q->len) {
        p = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return p;
}

static void queue_producer_done(queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->producers_left--;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static queue_t pc_queue;
static atomic_long pc_bad;

// A block carries its size in its first bytes, then a pattern from it.
static void *producer(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    long n = test_scaled(50000, 25);
    for (long i = 0; i < n; i++) {
        uint64_t r = test_rand(&seed);
        size_t sz = 16 + (r % 64 == 0 ? (r >> 8) % 100000 : (r >> 8) % 400);
        unsigned char *p = malloc(sz);
        memcpy(p, &sz, sizeof sz);
        test_fill_ends(p + sizeof sz, sz - sizeof sz, (unsigned)sz);
        queue_push(&pc_queue, p);
    }
    queue_producer_done(&pc_queue);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    unsigned char *p;
    while ((p = queue_pop(&pc_queue))) {
        size_t sz;
        memcpy(&sz, p, sizeof sz);
        if (!test_check_ends(p + sizeof sz, sz - sizeof sz, (unsigned)sz))
            atomic_fetch_add(&pc_bad, 1);
        free(p);
    }
    return NULL;
}

TEST(producer_consumer_cross_thread_frees)
{
    enum { P = 4, C = 4 };
    uint64_t start = allocated_after_warm_up(P + C);
    queue_init(&pc_queue, 1024, P);
    pthread_t pt[P], ct[C];
    for (int i = 0; i < C; i++)
        pthread_create(&ct[i], NULL, consumer, NULL);
    for (int i = 0; i < P; i++)
        pthread_create(&pt[i], NULL, producer, (void *)(intptr_t)(i + 11));
    for (int i = 0; i < P; i++)
        pthread_join(pt[i], NULL);
    for (int i = 0; i < C; i++)
        pthread_join(ct[i], NULL);
    CHECK(atomic_load(&pc_bad) == 0);
    CHECK(pc_queue.len == 0);
    free(pc_queue.items);
    if (test_on_mallet()) {
        CHECK_ALLOCATED_IS(start);
        mallet_stats_t s;
        mallet_stats_get(&s);
        CHECK(s.remote_frees > 0);
    }
}

// --- threads come and go; blocks outlive their makers ---------------------------

enum { POOL = 4096 };
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *pool[POOL];   // blocks handed from one generation to the next
static size_t pool_size[POOL];
static atomic_long churn_bad;

// Each short-lived thread frees half of what earlier (exited) threads left in
// the pool, checking it, and leaves blocks of its own in their place.
static void *short_lived(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 31 + 5;
    for (int k = 0; k < 300; k++) {
        int i = (int)(test_rand(&seed) % POOL);
        size_t sz = 8 + (size_t)(test_rand(&seed) % 2000);
        unsigned char *p = malloc(sz);
        test_fill_ends(p, sz, (unsigned)sz);
        pthread_mutex_lock(&pool_lock);
        unsigned char *old = pool[i];
        size_t old_sz = pool_size[i];
        pool[i] = p;
        pool_size[i] = sz;
        pthread_mutex_unlock(&pool_lock);
        if (old) {
            if (!test_check_ends(old, old_sz, (unsigned)old_sz))
                atomic_fetch_add(&churn_bad, 1);
            free(old);
        }
    }
    return NULL;
}

TEST(thread_churn_hands_blocks_between_generations)
{
    long generations = test_scaled(400, 20);
    uint64_t start = allocated_after_warm_up(4);
    uint64_t mapped_warm = 0;
    for (long g = 0; g < generations; g++) {
        enum { W = 4 };
        pthread_t th[W];
        for (int i = 0; i < W; i++)
            pthread_create(&th[i], NULL, short_lived, (void *)(intptr_t)(g * W + i));
        for (int i = 0; i < W; i++)
            pthread_join(th[i], NULL);
        if (g == generations / 4 && test_on_mallet()) {
            mallet_stats_t s;
            mallet_stats_get(&s);
            mapped_warm = s.mapped;
        }
    }
    CHECK(atomic_load(&churn_bad) == 0);
    if (test_on_mallet()) {
        // Pages of exited threads are reused: the footprint after the
        // warm-up stays flat instead of growing with each generation.
        mallet_stats_t s;
        mallet_stats_get(&s);
        CHECK(s.pages_abandoned > 0);
        CHECK(s.mapped <= 2 * mapped_warm + (8u << 20));
        CHECK(s.threads <= 2);
    }
    for (int i = 0; i < POOL; i++) {
        if (pool[i]) {
            CHECK(test_check_ends(pool[i], pool_size[i], (unsigned)pool_size[i]));
            free(pool[i]);
            pool[i] = NULL;
        }
    }
    if (test_on_mallet())
        CHECK_ALLOCATED_IS(start);
}

// The main thread exits its heap's blocks to a thread that outlives nothing:
// a thread whose only call is free.
static void *free_only(void *arg)
{
    free(arg);
    return NULL;
}

TEST(a_thread_that_only_frees)
{
    for (int i = 0; i < (int)test_scaled(200, 10); i++) {
        pthread_t t;
        pthread_create(&t, NULL, free_only, malloc((size_t)(i * 37 % 5000) + 1));
        pthread_join(t, NULL);
    }
}

// --- fork from a multithreaded program -----------------------------------------

static atomic_int fork_stop;
// Global, so a child's leak check still sees the busy threads' blocks.
static void *fork_ptrs[4][64];

static void *fork_busy(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    void **ptrs = fork_ptrs[(uintptr_t)arg % 4];
    while (!atomic_load(&fork_stop)) {
        // Bursts of allocation with a pause between, so that the forking
        // thread gets the CPU on a small machine (and under memcheck, which
        // runs one thread at a time).
        for (int k = 0; k < 200; k++) {
            int i = (int)(test_rand(&seed) % 64);
            free(ptrs[i]);
            ptrs[i] = malloc(1 + (size_t)(test_rand(&seed) % 70000));
        }
        usleep(test_under_valgrind() ? 1000 : 50);
    }
    for (int i = 0; i < 64; i++)
        free(ptrs[i]);
    return NULL;
}

TEST(fork_while_other_threads_allocate)
{
    enum { T = 3 };
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, fork_busy, (void *)(intptr_t)(i + 100));
    long forks = test_scaled(100, 20);
    int bad = 0;
    for (long f = 0; f < forks; f++) {
        pid_t pid = fork();
        if (pid == 0) {
            // The child allocates, formats and frees, then leaves (through
            // test_child_exit: under memcheck, a block another thread held
            // only in a register when the fork came would count as the
            // child's leak).
            char *bufs[100];
            for (int i = 0; i < 100; i++) {
                bufs[i] = malloc(16 + (size_t)i * 97);
                if (!bufs[i])
                    test_child_exit(2);
                snprintf(bufs[i], 16 + (size_t)i * 97, "child %ld block %d", f, i);
            }
            char *big = malloc(1 << 20);
            if (!big)
                test_child_exit(3);
            snprintf(big, 100, "%s", bufs[99]);
            for (int i = 0; i < 100; i++)
                free(bufs[i]);
            int ok = strcmp(big, "") != 0;
            free(big);
            test_child_exit(ok ? 0 : 1);
        }
        CHECK(pid > 0);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            bad++;
            fprintf(stderr, "  fork %ld: child status 0x%x\n", f, status);
        }
    }
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    CHECK(bad == 0);
}
