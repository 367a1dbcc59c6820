// SPDX-License-Identifier: MIT
//
// override_misuse.c -- the checks that stay on in the default build: freeing
// twice (at once, after other frees, a large block, by two threads racing,
// after a write after free rewrote the block's first 16 bytes), freeing
// what malloc never returned (an interior pointer of every size class, the
// stack, a global, a foreign mapping, a wild address), and realloc of a
// freed block. libmallet must print one line naming the error and the
// address, then the stack of the call, then abort.
//
// Each misuse runs in a forked child with its stderr captured. The glibc
// build checks what glibc does (it aborts for most, and crashes without a
// message for a few). Memcheck reports these itself, so under valgrind the
// tests skip.
#include "override_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MALLET_SECURE
#define MALLET_SECURE 0
#endif


static int aborted(const outcome_t *o)
{
    return WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGABRT;
}

// glibc_needle for a misuse glibc lets through without a sign.
static const char GLIBC_MISSES[] = "";

// libmallet: SIGABRT after one line that names the error (needle) and the
// address, and the stack of the call. glibc: the message it is known to print, or (NULL) just
// death, or (GLIBC_MISSES) nothing to check.
static void expect_report(void (*fn)(void *), void *arg, const void *addr,
                          const char *mallet_needle, const char *glibc_needle)
{
    outcome_t o;
    run_child(fn, arg, &o);
    if (test_on_mallet()) {
        char hex[32];
        snprintf(hex, sizeof hex, "%p", addr);
        CHECK(aborted(&o));
        CHECK(test_report_shape(o.text));
        CHECK(strstr(o.text, "mallet") != NULL);
        CHECK(strstr(o.text, mallet_needle) != NULL);
        CHECK(strstr(o.text, hex) != NULL);
    } else if (glibc_needle == GLIBC_MISSES) {
        TEST_SKIP("glibc does not notice this misuse");
    } else if (glibc_needle) {
        CHECK(aborted(&o));
        CHECK(strstr(o.text, glibc_needle) != NULL);
    } else {
        // glibc follows the pointer and crashes, with no message.
        CHECK(WIFSIGNALED(o.status));
    }
}

// Memcheck reports misuse itself (and counts it as an error), so these tests
// skip under it, before they allocate anything it could call a leak.
#define SKIP_UNDER_MEMCHECK() \
    do { if (test_under_valgrind()) TEST_SKIP("memcheck reports misuse itself"); } while (0)

static char a_global[256];

static void do_free(void *p) { free(p); }

static void *opaque_block(size_t n)
{
    return opaque_ptr(malloc(n));
}

static void double_free_at_once(void *p)
{
    void *again = opaque_ptr(p);
    free(p);
    free(again);
}

TEST(double_free_at_once)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_block(32);
    expect_report(double_free_at_once, p, p, "double free", "double free");
}

// The block is freed, then seven neighbours of its size, then it again.
static void double_free_after_other_frees(void *p)
{
    void **others = p;
    void *again = opaque_ptr(others[0]);
    free(others[0]);
    for (int i = 1; i < 8; i++)
        free(others[i]);
    free(again);
}

TEST(double_free_after_other_frees)
{
    SKIP_UNDER_MEMCHECK();
    static void *blocks[8];
    for (int i = 0; i < 8; i++)
        blocks[i] = opaque_block(48);
    expect_report(double_free_after_other_frees, blocks, blocks[0], "double free", "double free");
}

TEST(double_free_of_a_large_block)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_block(8 << 20);
    expect_report(double_free_at_once, p, p, "double free", NULL);
}

TEST(free_of_an_interior_pointer)
{
    SKIP_UNDER_MEMCHECK();
    char *p = opaque_block(64);
    expect_report(do_free, p + 16, p + 16, "invalid pointer", "invalid pointer");
}

TEST(free_of_an_interior_pointer_of_a_large_block)
{
    SKIP_UNDER_MEMCHECK();
    char *p = opaque_block(4 << 20);
    expect_report(do_free, p + 65536, p + 65536, "invalid pointer", "invalid pointer");
}

static void free_stack(void *unused)
{
    (void)unused;
    char buf[64];
    memset(buf, 0, sizeof buf);
    free(opaque_ptr(buf + 16));
}

TEST(free_of_a_stack_address)
{
    SKIP_UNDER_MEMCHECK();
    outcome_t o;
    run_child(free_stack, NULL, &o);
    CHECK(aborted(&o));
    if (test_on_mallet()) {
        CHECK(test_report_shape(o.text));
        CHECK(strstr(o.text, "invalid pointer") != NULL && strstr(o.text, "0x") != NULL);
    } else {
        // glibc's words depend on what it finds where a chunk header would be.
        CHECK(strstr(o.text, "free(): invalid") != NULL);
    }
}

TEST(free_of_a_global)
{
    SKIP_UNDER_MEMCHECK();
    expect_report(do_free, a_global + 16, a_global + 16, "invalid pointer", "invalid pointer");
}

TEST(free_of_memory_from_a_foreign_mmap)
{
    SKIP_UNDER_MEMCHECK();
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    expect_report(do_free, m + 65536, m + 65536, "invalid pointer", "invalid pointer");
}

TEST(free_of_a_wild_address)
{
    SKIP_UNDER_MEMCHECK();
    void *wild = (void *)(uintptr_t)0x123456789ab0;
    expect_report(do_free, wild, wild, "invalid pointer", NULL);
}

static void realloc_freed(void *p)
{
    void *again = opaque_ptr(p);
    free(p);
    void *r = realloc(again, 100);
    free(r);
}

TEST(realloc_of_a_freed_pointer)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_block(32);
    expect_report(realloc_freed, p, p, "realloc", GLIBC_MISSES);
}

// --- the edges of the marks (page.h) ---------------------------------------------

// Interior pointers of every size class: 8 and 16 bytes in, the middle (on
// a 16-byte step), the last 16 bytes. The block-start test is a multiply by
// the page's reciprocal of the block size: every size is its own case.
TEST(free_of_an_interior_pointer_of_every_size_class)
{
    SKIP_UNDER_MEMCHECK();
    if (!test_on_mallet())
        TEST_SKIP("glibc reads a header before an interior pointer: no promise");
    size_t sizes[64];
    int n = 0;
    for (size_t s = 16; s <= 128; s += 16)
        sizes[n++] = s;
    for (int b = 7; b < 18; b++)
        for (size_t k = 1; k <= 4; k++)
            sizes[n++] = ((size_t)1 << b) + k * ((size_t)1 << (b - 2));
    int cases = 0, reported = 0;
    for (int i = 0; i < n; i++) {
        char *p = opaque_block(sizes[i]);
        size_t offs[4] = { 8, 16, (sizes[i] / 2) & ~(size_t)15, sizes[i] - 16 };
        for (int k = 0; k < 4; k++) {
            if (offs[k] == 0 || offs[k] >= sizes[i] || (k > 0 && offs[k] <= offs[k - 1]))
                continue;
            char text[512], hex[32];
            int status = test_run_child(do_free, p + offs[k], text, sizeof text);
            snprintf(hex, sizeof hex, "%p", (void *)(p + offs[k]));
            bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && test_report_shape(text) &&
                      strstr(text, "invalid pointer") && strstr(text, hex);
            if (!ok)
                fprintf(stderr, "  size %zu, offset %zu: %s", sizes[i], offs[k], text[0] ? text : "(nothing)\n");
            cases++, reported += ok;
        }
        free(p);
    }
    fprintf(stderr, "  %d interior frees over %d sizes, %d reported\n", cases, n, reported);
    CHECK(n == 52 && reported == cases);
}

// Two threads, neither the blocks' owner, free the same blocks at the same
// moment: the second free of each block finds the first one's mark, which
// a free by another thread lays with an atomic exchange, so one of them
// always reports. Each round is a child of its own.
typedef struct {
    void **blocks;
    int n;
    atomic_int *go;
} racer_t;

static void *race_free(void *arg)
{
    racer_t *r = arg;
    while (atomic_load(r->go) == 0)
        ;
    for (int i = 0; i < r->n; i++)
        free(r->blocks[i]);
    return NULL;
}

static void double_free_racing(void *unused)
{
    (void)unused;
    enum { N = 256 };
    static void *blocks[N];
    atomic_int go = 0;
    for (int i = 0; i < N; i++)
        blocks[i] = opaque_block(48 + 16 * (i % 4));
    racer_t r = { blocks, N, &go };
    pthread_t a, b;
    pthread_create(&a, NULL, race_free, &r);
    pthread_create(&b, NULL, race_free, &r);
    atomic_store(&go, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    _exit(0);       // both passed every free: the race was missed
}

TEST(double_free_racing_between_two_threads)
{
    SKIP_UNDER_MEMCHECK();
    if (!test_on_mallet())
        TEST_SKIP("glibc checks its own thread's cache only: a race between two is missed");
    int rounds = 200, reported = 0;
    for (int i = 0; i < rounds; i++) {
        char text[512];
        int status = test_run_child(double_free_racing, NULL, text, sizeof text);
        bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && test_report_shape(text) &&
                  strstr(text, "double free of");
        if (!ok)
            fprintf(stderr, "  round %d: status %d: %s", i, status, text[0] ? text : "(nothing)\n");
        reported += ok;
    }
    fprintf(stderr, "  %d rounds, %d reported\n", rounds, reported);
    CHECK(reported == rounds);
}

// A write after free rewrites the freed block's first 16 bytes (its link
// and its mark), then the block is freed again, then blocks of its size are
// allocated. The default build's second free cannot tell (the mark is
// gone) and lists the block again; the first malloc to hand it out clears
// its link, so the list stops at its second place with "heap corruption"
// before the block is handed out twice. The secure build stops at the
// second free: the block's tag is fill ("heap overflow past"). (README,
// "What the checks catch".)
typedef struct {
    int others;        // frees of other blocks between the two frees
} waf_df_t;

static void double_free_after_write_after_free(void *arg)
{
    const waf_df_t *w = arg;
    enum { KEEP = 4096 };
    static void *got[KEEP];
    void *others[8];
    char *p = opaque_block(48);
    for (int i = 0; i < w->others; i++)
        others[i] = opaque_block(48);
    free(p);
    for (int i = 0; i < w->others; i++)
        free(others[i]);
    memset(opaque_ptr(p), 0x41, 16);
    free(opaque_ptr(p));
    // Every block is kept: one handed out twice shows as a repeat.
    int seen = 0;
    for (int i = 0; i < KEEP; i++) {
        got[i] = malloc(48);
        seen += got[i] == p;
    }
    if (seen > 1) {
        static const char msg[] = "test: the block was handed out twice\n";
        write(2, msg, sizeof msg - 1);
        _exit(3);
    }
    _exit(0);
}

TEST(double_free_after_a_write_after_free_of_its_first_16_bytes)
{
    SKIP_UNDER_MEMCHECK();
    if (!test_on_mallet())
        TEST_SKIP("glibc: a misuse with no promise");
    int others[3] = { 0, 1, 7 };
    for (int k = 0; k < 3; k++) {
        waf_df_t w = { others[k] };
        outcome_t o;
        run_child(double_free_after_write_after_free, &w, &o);
        CHECK(aborted(&o));
        CHECK(test_report_shape(o.text));
        CHECK(strstr(o.text, MALLET_SECURE ? "free(): heap overflow past" : "heap corruption") != NULL);
    }
}

// The checks cost nothing to a correct program: the same operations, done
// right, go through without a word.
static void correct_use(void *unused)
{
    (void)unused;
    void *p = malloc(32), *q = malloc(8 << 20);
    free(p);
    free(q);
}

TEST(correct_use_is_not_reported)
{
    SKIP_UNDER_MEMCHECK();
    outcome_t o;
    run_child(correct_use, NULL, &o);
    CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
    CHECK(o.text[0] == 0);
}
