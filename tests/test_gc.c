// SPDX-License-Identifier: MIT
//
// test_gc.c -- the conservative mark-sweep collector (teach/gc.h): what it
// keeps (data reachable from globals, the stack, registers, thread-locals,
// registered ranges, interior pointers), what it reclaims (garbage, cycles
// included), that it runs in bounded memory, marks long lists without
// recursion, survives a mark stack that cannot grow, and keeps its counters
// straight on an interpreter-like workload.
//
// A conservative collector may keep a garbage block alive through a stale
// word on the stack, so tests that expect reclamation build their garbage in
// a noinline helper, scrub the stack below them, and ask for 90%, not 100%.
// After a collection that should have kept something, the tests allocate
// blocks of the same sizes and fill them: a block wrongly freed would be
// handed out again and overwritten, and its check fails. Every test ends
// with gc_reset so that memcheck sees no garbage left at exit.
#include "test.h"
#include "gc.h"
#include "os/os.h"
#include "debug/track.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

// Locals may live in ASan's fake frames; the collector must find them there.
// scrub_stack keeps its buffer on the real stack, which it is meant to wipe.
#if defined(MALLET_TRACK_ASAN)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_stack_use_after_return=1";
}
#define REAL_STACK __attribute__((no_sanitize_address))
#else
#define REAL_STACK
#endif

#define NOINLINE __attribute__((noinline))

typedef struct node {
    struct node *next;     // list link, or left child
    struct node *right;    // right child
    uint64_t value;        // payload checked after collections
    uint64_t stamp;        // a second payload word
} node_t;


// Overwrite the dead stack below the caller, where the frames of the helpers
// that built garbage left pointers to it.
NOINLINE REAL_STACK static void scrub_stack(void)
{
    char buf[32 << 10];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

// Allocate n blocks of `size` bytes and fill them: garbage that reuses
// anything wrongly freed.
NOINLINE static void churn(size_t size, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char *p = gc_malloc(size);
        memset(p, 0xab, size);
    }
}

NOINLINE static node_t *build_list(int n, uint64_t seed)
{
    node_t *head = NULL;
    for (int i = 0; i < n; i++) {
        node_t *x = gc_malloc(sizeof *x);
        x->next = head;
        x->value = seed + (uint64_t)i;
        x->stamp = ~x->value;
        head = x;
    }
    return head;
}

// 1 when the list from build_list(n, seed) is whole.
static int list_ok(const node_t *x, int n, uint64_t seed)
{
    for (int i = n - 1; i >= 0; i--, x = x->next)
        if (x == NULL || x->value != seed + (uint64_t)i || x->stamp != ~x->value)
            return 0;
    return x == NULL;
}

// ---------------------------------------------------------------------------

static node_t *g_list;

TEST(globals_keep_lists_alive)
{
    g_list = build_list(1000, 7);
    for (int round = 0; round < 3; round++) {
        scrub_stack();
        gc_collect();
        churn(sizeof(node_t), 2000);
        CHECK(list_ok(g_list, 1000, 7));
    }
    gc_stats_t st;
    gc_stats_get(&st);
    CHECK(st.collections >= 3);
    CHECK(st.last_marked >= 1000);
    gc_reset();
}

NOINLINE static node_t *build_tree(int depth, uint64_t *sum)
{
    node_t *x = gc_malloc(sizeof *x);
    x->value = (uint64_t)depth * 31 + 5;
    *sum += x->value;
    if (depth > 0) {
        x->next = build_tree(depth - 1, sum);
        x->right = build_tree(depth - 1, sum);
    }
    return x;
}

static uint64_t tree_sum(const node_t *x)
{
    return x ? x->value + tree_sum(x->next) + tree_sum(x->right) : 0;
}

TEST(stack_and_registers_keep_trees_alive)
{
    uint64_t want_a = 0, want_b = 0;
    node_t *volatile on_stack = build_tree(9, &want_a);
    node_t *anywhere = build_tree(9, &want_b);      // stack slot or register
    for (int round = 0; round < 3; round++) {
        gc_collect();
        churn(sizeof(node_t), 3000);
    }
    CHECK(tree_sum(on_stack) == want_a);
    CHECK(tree_sum(anywhere) == want_b);
    gc_reset();
}

static __thread node_t *t_list;

TEST(thread_locals_keep_data_alive)
{
    t_list = build_list(500, 11);
    scrub_stack();
    gc_collect();
    churn(sizeof(node_t), 1000);
    CHECK(list_ok(t_list, 500, 11));
    gc_reset();
}

static char *volatile g_inside;

// A block of `size` bytes filled with its own pattern; only a pointer
// `offset` bytes into it is kept, in g_inside.
NOINLINE static void keep_inside(size_t size, size_t offset)
{
    unsigned char *p = gc_malloc(size);
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)(i * 7);
    g_inside = (char *)p + offset;
}

static int inside_ok(size_t size, size_t offset)
{
    const unsigned char *p = (const unsigned char *)g_inside - offset;
    for (size_t i = 0; i < size; i++)
        if (p[i] != (unsigned char)(i * 7))
            return 0;
    return 1;
}

TEST(interior_pointers_keep_blocks_alive)
{
    static const size_t cases[][2] = {
        { 100, 50 }, { 100, 99 }, { 3000, 2999 }, { 200000, 150000 }, { 200000, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t size = cases[c][0], offset = cases[c][1];
        keep_inside(size, offset);
        scrub_stack();
        gc_collect();
        churn(size, 4);
        CHECK(inside_ok(size, offset));
        // Nothing but g_inside held it: dropping that frees it.
        size_t before = gc_live_bytes();
        g_inside = NULL;
        scrub_stack();
        gc_collect();
        CHECK(gc_live_bytes() + size <= before);
    }
    gc_reset();
}

// n three-block cycles and n blocks pointing at themselves; nothing else.
NOINLINE static void make_cycles(int n)
{
    for (int i = 0; i < n; i++) {
        node_t *a = gc_malloc(32), *b = gc_malloc(48), *c = gc_malloc(64), *d = gc_malloc(96);
        a->next = b;
        b->next = c;
        c->next = a;
        d->next = d;
        d->right = a;
    }
}

TEST(garbage_is_reclaimed_cycles_included)
{
    int n = 2000;
    size_t before = gc_live_bytes();
    make_cycles(n);
    size_t made = gc_live_bytes() - before;
    CHECK(made == (size_t)n * (32 + 48 + 64 + 96));
    scrub_stack();
    gc_collect();
    size_t left = gc_live_bytes() - before;
    CHECK(left * 10 <= made);
    gc_stats_t st;
    gc_stats_get(&st);
    CHECK(st.last_freed * 10 >= (uint64_t)n * 4 * 9);
    CHECK(st.bytes_freed * 10 >= made * 9);
    gc_reset();
}

NOINLINE static void drop_list(int n)
{
    build_list(n, 3);
}

// The list's head lives only in the frame of the function that built it;
// after it returns, that slot is dead stack below the caller, exactly where
// gc_collect's own frames then sit. No scrub_stack here: the collector
// clears that stack itself.
NOINLINE static uint64_t build_and_drop(int n)
{
    node_t *volatile head[64];                       // 512 bytes of frame, each slot the head
    head[0] = build_list(n, 11);
    for (int i = 1; i < 64; i++)
        head[i] = head[i - 1];
    return head[63]->value + head[63]->next->value;
}

TEST(dead_list_in_a_stale_stack_slot_is_reclaimed)
{
    int n = 10000;
    size_t before = gc_live_bytes();
    CHECK(build_and_drop(n) == 2 * 11 + 2 * (uint64_t)n - 3);
    size_t made = gc_live_bytes() - before;
    CHECK(made == (size_t)n * sizeof(node_t));
    gc_collect();
    size_t left = gc_live_bytes() - before;
    CHECK(left * 100 <= made);
    gc_reset();
}

TEST(emptied_pages_leave_the_heap)
{
    int n = 600000;                                 // 19 MiB of 32-byte nodes
    drop_list(n);
    gc_stats_t st;
    gc_stats_get(&st);
    CHECK(st.peak_heap_bytes >= (size_t)n * sizeof(node_t));
    scrub_stack();
    gc_collect();
    gc_stats_get(&st);
    CHECK(st.heap_bytes * 10 <= st.peak_heap_bytes);
    CHECK(st.live_bytes <= st.heap_bytes);
    gc_reset();
}

TEST(hidden_pointers_are_not_seen)
{
    // Documents a limit: a pointer kept only XOR-ed is not a pointer to the
    // collector, and its block is reclaimed although the program can still
    // rebuild the address.
    static volatile uintptr_t hidden;
    keep_inside(4000, 0);
    hidden = (uintptr_t)g_inside ^ (uintptr_t)0x5a5a5a5a5a5a5a5aull;
    g_inside = NULL;
    size_t before = gc_live_bytes();
    scrub_stack();
    gc_collect();
    CHECK(gc_live_bytes() + 4000 <= before);
    CHECK(hidden != 0);
    gc_reset();
}

NOINLINE static void fill_table(node_t **table, int n)
{
    for (int i = 0; i < n; i++) {
        table[i] = gc_malloc(sizeof(node_t));
        table[i]->value = (uint64_t)i * 3;
    }
}

TEST(registered_roots_keep_data_until_removed)
{
    int n = 1000;
    node_t **table = malloc((size_t)n * sizeof *table);   // not scanned unless registered
    CHECK(table != NULL);
    size_t before = gc_live_bytes();
    fill_table(table, n);
    size_t made = gc_live_bytes() - before;
    gc_add_root(table, (size_t)n * sizeof *table);
    scrub_stack();
    gc_collect();
    churn(sizeof(node_t), 2 * n);
    int intact = 0;
    for (int i = 0; i < n; i++)
        intact += table[i]->value == (uint64_t)i * 3;
    CHECK(intact == n);
    CHECK(gc_live_bytes() >= before + made);

    gc_remove_root(table);
    scrub_stack();
    gc_collect();
    CHECK(gc_live_bytes() <= before + made / 10);
    free(table);
    gc_reset();
}

static node_t *g_long;
static int g_long_n;

static void *long_list_thread(void *arg)
{
    (void)arg;
    g_long = build_list(g_long_n, 1);
    gc_collect();
    churn(sizeof(node_t), 1000);
    CHECK(list_ok(g_long, g_long_n, 1));
    gc_stats_t st;
    gc_stats_get(&st);
    CHECK(st.last_marked >= (uint64_t)g_long_n);
    gc_reset();
    return NULL;
}

TEST(long_list_marks_on_a_small_stack)
{
    // A recursive marker needs a frame per node; this thread's whole stack
    // is 256 KiB, and the list has a million nodes.
    g_long_n = test_under_valgrind() ? 200000 : 1000000;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_t t;
    CHECK(pthread_create(&t, &attr, long_list_thread, NULL) == 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
}

static uintptr_t **g_fan;

TEST(full_mark_stack_falls_back_to_rescanning)
{
    // One block pointing at n others pushes n entries at once; with the OS
    // refusing every request the mark stack cannot grow past its first 64 KiB.
    int n = test_under_valgrind() ? 40000 : 200000;
    g_fan = gc_malloc((size_t)n * sizeof *g_fan);
    for (int i = 0; i < n; i++) {
        g_fan[i] = gc_malloc(16);
        g_fan[i][0] = (uintptr_t)i ^ 0x77;
        g_fan[i][1] = (uintptr_t)g_fan[i];    // points at itself: scanned again, no harm
    }
    mallet__os_fake_fail(1, 0);
    gc_collect();
    mallet__os_fake_fail(0, 0);
    gc_stats_t st;
    gc_stats_get(&st);
    CHECK(st.mark_stack_overflows >= 1);
    CHECK(st.last_marked >= (uint64_t)n + 1);
    churn(16, n);
    int intact = 0;
    for (int i = 0; i < n; i++)
        intact += g_fan[i][0] == ((uintptr_t)i ^ 0x77);
    CHECK(intact == n);
    // With the OS back the stack grows and nothing overflows.
    gc_collect();
    gc_stats_t again;
    gc_stats_get(&again);
    CHECK(again.mark_stack_overflows == st.mark_stack_overflows);
    gc_reset();
}

static uint64_t *g_ring[256];

TEST(garbage_loop_runs_in_bounded_memory)
{
    size_t total = test_under_valgrind() ? (size_t)512 << 20 : (size_t)2 << 30;
    size_t bound = (size_t)32 << 20;
    uint64_t rng = 88172645463325252ull;
    size_t done = 0;
    uint64_t count = 0;
    while (done < total) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        unsigned r = (unsigned)(rng % 100);
        size_t size = r < 70 ? 16 + rng % 113
                    : r < 95 ? 129 + rng % 1920
                    : r < 99 ? 2048 + rng % 30720
                    : 33000 + rng % 220000;
        uint64_t *p = gc_malloc(size);
        p[0] = count;
        if (size <= 2048 && (count & 15) == 0) {
            // A survivor for a while: the ring slot keeps it until replaced.
            g_ring[(count >> 4) % 256] = p;
        }
        done += size;
        count++;
    }
    gc_stats_t st;
    gc_stats_get(&st);
    fprintf(stderr, "  %zu MiB allocated in %llu blocks, %llu collections, peak heap %zu KiB\n",
            (size_t)(st.bytes_allocated >> 20), (unsigned long long)count,
            (unsigned long long)st.collections, st.peak_heap_bytes >> 10);
    CHECK(st.peak_heap_bytes <= bound);
    CHECK(st.collections >= total / bound);
    CHECK(st.bytes_allocated >= total);
    CHECK(st.bytes_freed + bound >= st.bytes_allocated);
    int intact = 0;
    for (unsigned i = 0; i < 256; i++)
        intact += g_ring[i] != NULL && (g_ring[i][0] & 15) == 0 && ((g_ring[i][0] >> 4) % 256) == i;
    CHECK(intact == 256);
    gc_reset();
}

// --- an interpreter's day: build expression trees, evaluate, drop them ----

typedef struct expr {
    int op;                     // 0 constant, 1 add, 2 mul, 3 sub
    int64_t k;                  // the constant
    struct expr *a, *b;         // operands
} expr_t;

static expr_t *g_env[64];       // the interpreter's global variables
static int64_t g_env_value[64]; // what each evaluated to when built

// +, * or - in two's complement: the values grow past 64 bits in deep
// trees, where signed overflow would be undefined; wrapping is what both
// the builder and the evaluator compute.
static int64_t expr_apply(int op, int64_t a, int64_t b)
{
    uint64_t x = (uint64_t)a, y = (uint64_t)b;
    return (int64_t)(op == 1 ? x + y : op == 2 ? x * y : x - y);
}

static expr_t *expr_build(int depth, uint64_t *rng, int64_t *value)
{
    expr_t *e = gc_malloc(sizeof *e);
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    if (depth == 0) {
        e->k = (int64_t)(*rng >> 60);
        *value = e->k;
        return e;
    }
    int64_t va, vb;
    e->op = 1 + (int)((*rng >> 40) % 3);
    e->a = expr_build(depth - 1, rng, &va);
    e->b = expr_build(depth - 1, rng, &vb);
    *value = expr_apply(e->op, va, vb);
    return e;
}

static int64_t expr_eval(const expr_t *e)
{
    if (e->op == 0)
        return e->k;
    int64_t va = expr_eval(e->a), vb = expr_eval(e->b);
    return expr_apply(e->op, va, vb);
}

TEST(interpreter_workload_keeps_its_counters_straight)
{
    int iterations = test_under_valgrind() ? 3000 : 30000;
    uint64_t rng = 42;
    int wrong = 0;
    for (int i = 0; i < iterations; i++) {
        int64_t want;
        expr_t *e = expr_build(7, &rng, &want);    // 255 nodes, then dropped
        wrong += expr_eval(e) != want;
        if (i % 8 == 0) {
            int slot = (i / 8) % 64;
            g_env[slot] = expr_build(5, &rng, &g_env_value[slot]);
        }
    }
    CHECK(wrong == 0);
    for (int s = 0; s < 64; s++)
        wrong += g_env[s] == NULL || expr_eval(g_env[s]) != g_env_value[s];
    CHECK(wrong == 0);

    gc_collect();
    gc_stats_t st;
    gc_stats_get(&st);
    size_t node = sizeof(expr_t);                  // 32: a size class of its own
    CHECK(st.collections >= 2);
    CHECK(st.bytes_allocated >= (uint64_t)iterations * 255 * node);
    CHECK(st.bytes_allocated - st.bytes_freed == st.live_bytes);
    CHECK(st.live_bytes <= st.heap_bytes && st.heap_bytes <= st.peak_heap_bytes);
    CHECK(st.live_bytes >= 64 * 63 * node);        // the environment is live
    CHECK(st.last_marked >= 64 * 63);
    CHECK(st.last_pause_us <= st.max_pause_us && st.max_pause_us <= st.total_pause_us);
    for (int s = 0; s < 64; s++)
        wrong += expr_eval(g_env[s]) != g_env_value[s];
    CHECK(wrong == 0);
    gc_reset();
}

// ---------------------------------------------------------------------------

NOINLINE static void fill_and_drop(size_t size, int n)
{
    for (int i = 0; i < n; i++)
        memset(gc_malloc(size), 0xff, size);
}

TEST(blocks_are_zeroed_and_aligned_even_when_reused)
{
    static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 129, 1000, 4097, 32768, 32769, 70000 };
    for (int round = 0; round < 2; round++) {
        int bad = 0;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int i = 0; i < 20; i++) {
                unsigned char *p = gc_malloc(sizes[s]);
                bad += p == NULL || ((uintptr_t)p & 15) != 0;
                for (size_t j = 0; p && j < sizes[s]; j++)
                    bad += p[j] != 0;
            }
            fill_and_drop(sizes[s], 50);
        }
        CHECK(bad == 0);
        scrub_stack();
        gc_collect();
    }
    gc_reset();
}

TEST(reset_returns_everything_and_the_heap_starts_again)
{
    g_list = build_list(3000, 5);
    CHECK(gc_live_bytes() >= 3000 * sizeof(node_t));
    gc_reset();
    gc_stats_t st;
    gc_stats_get(&st);
    CHECK(gc_live_bytes() == 0 && st.heap_bytes == 0 && st.collections == 0);
    g_list = build_list(10, 5);
    gc_collect();
    CHECK(list_ok(g_list, 10, 5));
    gc_reset();
}

TEST(out_of_memory_returns_null_and_the_heap_survives)
{
    errno = 0;
    CHECK(gc_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    g_list = build_list(100, 9);
    mallet__os_fake_fail(1, 0);               // the OS refuses everything from now
    errno = 0;
    CHECK(gc_malloc((size_t)8 << 20) == NULL && errno == ENOMEM);
    mallet__os_fake_fail(0, 0);
    void *p = gc_malloc((size_t)8 << 20);
    CHECK(p != NULL);
    CHECK(list_ok(g_list, 100, 9));
    gc_reset();
}

static void *collect_elsewhere(void *arg)
{
    (void)arg;
    gc_collect();
    return NULL;
}

static void collect_from_second_thread(void *arg)
{
    (void)arg;
    gc_malloc(16);
    pthread_t t;
    pthread_create(&t, NULL, collect_elsewhere, NULL);
    pthread_join(t, NULL);
}

TEST(collecting_from_another_thread_aborts)
{
    char out[512];
    CHECK(test_dies(collect_from_second_thread, NULL, "does not own the gc heap", out, sizeof out));
}
