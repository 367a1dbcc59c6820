// SPDX-License-Identifier: MIT
//
// override_misuse_heap.c -- misuse of a block's memory rather than of the
// API: malloc_usable_size of a freed block, writing one byte past the
// request, writing 16 bytes into the next block, writing to a freed block.
// (override_misuse.c has the invalid and double frees.)
//
// What each build does, asserted here so that a change in either shows:
//
//   misuse                         default build               secure build
//   usable_size of a freed block   "invalid pointer", abort    the same
//   1 byte past the request        not detected                "heap overflow past", at free
//   16 bytes into a free neighbour "heap corruption", when the "heap overflow past", at free
//                                  neighbour is handed out
//   16 bytes into a live neighbour not detected                "heap overflow past", at free
//   8 bytes past the usable size   not detected                "heap overflow past", at free
//   write after free, payload      not detected                "write after free of", at reuse
//     (bytes 24, 40, the last)
//   write after free, first word   "heap corruption", at reuse "write after free of", at reuse
//   write after free, never reused not detected                "write after free of", at exit,
//                                                              in mallet_check, malloc_trim
//   the same over the first word   "heap corruption" in        the same
//                                  mallet_check
//   a large block: 1 byte past a   not detected                "heap overflow past", at free
//     request short of a page
//   a large block: past its last   reads what is there (or     SIGSEGV (guard page)
//     page                         SIGSEGV)
//   a large block after its free   reads what is there         SIGSEGV (made inaccessible)
//   *malloc(0)                     reads a 16-byte block       SIGSEGV (no-access region)
//   touching the end of a page     reads what is there         SIGSEGV (guard page)
//   touching the end of the
//   segment's metadata unit        reads what is there         SIGSEGV (guard page)
//
// The secure build compiles this file with MALLET_SECURE=1. Each misuse
// runs in a forked child with stderr captured; a report is one line naming
// the error and an address, then SIGABRT. The glibc build skips after
// running the misuse (glibc promises none of these). Memcheck reports the
// misuse itself, so under valgrind every test skips.
#include "override_common.h"

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef MALLET_SECURE
#define MALLET_SECURE 0
#endif


// The child was stopped with one line naming `needle` and an address (and
// the stack of the call).
static void expect_report(const outcome_t *o, const char *needle, const void *addr)
{
    CHECK(WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGABRT);
    CHECK(test_report_shape(o->text));
    CHECK(strncmp(o->text, "mallet: ", 8) == 0);
    CHECK(strstr(o->text, needle) != NULL);
    if (addr) {
        char hex[32];
        snprintf(hex, sizeof hex, "%p", addr);
        CHECK(strstr(o->text, hex) != NULL);
    } else {
        CHECK(strstr(o->text, " 0x") != NULL);
    }
}

// The child ran to its end, silently.
static void expect_unnoticed(const outcome_t *o)
{
    CHECK(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0);
    CHECK(o->text[0] == 0);
}

#define SKIP_UNDER_MEMCHECK() \
    do { if (test_under_valgrind()) TEST_SKIP("memcheck reports misuse itself"); } while (0)
#define SKIP_ON_GLIBC() \
    do { if (!test_on_mallet()) TEST_SKIP("glibc promises nothing here"); } while (0)

// Run the misuse fn(arg) in a child and check how it ended: the report
// `secure` in the secure build; in the default build the report `plain`,
// or nothing at all when plain is NULL.
static void expect_per_build(void (*fn)(void *), void *arg, const char *secure, const char *plain)
{
    outcome_t o;
    run_child(fn, arg, &o);
    SKIP_ON_GLIBC();
    const char *want = MALLET_SECURE ? secure : plain;
    if (want)
        expect_report(&o, want, NULL);
    else
        expect_unnoticed(&o);
}

// Allocate blocks of n bytes until the heap hands out `p` again, at most
// `limit` times, freeing them 256 at a time (so a quarantine moves on and
// freed blocks come round again). A check on reuse fires inside this loop.
static void reuse(void *p, size_t n, long limit)
{
    void *held[256];
    int k = 0;
    for (long i = 0; i < limit; i++) {
        void *q = opaque_ptr(malloc(n));
        held[k++] = q;
        if (q == p)
            break;
        if (k == 256)
            while (k > 0)
                free(held[--k]);
    }
    while (k > 0)
        free(held[--k]);
}

// --- malloc_usable_size of a freed block --------------------------------------

static void usable_size_of_freed(void *p)
{
    void *stale = opaque_ptr(p);
    free(p);
    size_t n = malloc_usable_size(stale);
    fprintf(stderr, "usable size %zu\n", n);
}

TEST(usable_size_of_a_freed_pointer)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_ptr(malloc(40));
    outcome_t o;
    run_child(usable_size_of_freed, p, &o);
    SKIP_ON_GLIBC();
    expect_report(&o, "malloc_usable_size(): invalid pointer", p);
}

// --- one byte past the request ----------------------------------------------------

// 24 bytes: the block is larger (a 32-byte class), so the byte written is
// inside the block and no neighbour is touched.
static void one_byte_overflow(void *unused)
{
    (void)unused;
    char *p = opaque_ptr(malloc(24));
    memset(p, 'a', 24);
    p[24] = 'X';
    free(opaque_ptr(p));        // opaque: the stores are not dead before free
}

TEST(one_byte_overflow_past_the_request)
{
    SKIP_UNDER_MEMCHECK();
    expect_per_build(one_byte_overflow, NULL, "free(): heap overflow past", NULL);
}

// A request that fills its class exactly: the byte past it is the next
// block's first byte in the default build (a link word, if that block is
// free: reported when it is handed out, as below for 16 bytes).
static void one_byte_overflow_exact(void *unused)
{
    (void)unused;
    char *p = opaque_ptr(malloc(64));
    memset(p, 'a', 64);
    p[opaque(64)] = 'X';
    free(opaque_ptr(p));
}

TEST(one_byte_overflow_of_an_exact_size)
{
    SKIP_UNDER_MEMCHECK();
    // Default build: the next block's first byte changed; nobody looked.
    expect_per_build(one_byte_overflow_exact, NULL, "free(): heap overflow past", NULL);
}

// --- 16 bytes into the next block --------------------------------------------------

enum { N48 = 48 };

// Two neighbours p, q = p + 48 (found by allocating pairs until the heap
// hands them out in address order); q is freed, p overflows into it, and
// 48-byte blocks are then taken until q comes back. (The secure build
// hands blocks out in random order and reports at free(p) anyway: there q
// is any other block.)
static void overflow_into_free_neighbour(void *unused)
{
    (void)unused;
    void *kept[64];
    int k = 0;
    char *p = NULL, *q = NULL;
    while (k < 62) {
        if (MALLET_SECURE) {
            p = opaque_ptr(malloc(N48));
            q = opaque_ptr(malloc(N48));
            break;
        }
        p = opaque_ptr(malloc(N48));
        q = opaque_ptr(malloc(N48));
        if (q == p + N48)
            break;
        kept[k++] = p;
        kept[k++] = q;
        p = q = NULL;
    }
    if (!p) {
        fprintf(stderr, "no neighbours found\n");
        _exit(3);
    }
    char *stale = opaque_ptr(q);
    free(q);
    memset(p, 'a', N48);
    memset(p + opaque(N48), 'a', 16);
    free(opaque_ptr(p));
    reuse(stale, N48, 100000);
    while (k > 0)
        free(kept[--k]);
}

TEST(sixteen_byte_overflow_into_a_free_block)
{
    SKIP_UNDER_MEMCHECK();
    expect_per_build(overflow_into_free_neighbour, NULL, "free(): heap overflow past",
                     "heap corruption");
}

// The neighbour is live: the overflow rewrites its contents.
static void overflow_into_live_neighbour(void *unused)
{
    (void)unused;
    char *p = opaque_ptr(malloc(N48));
    char *q = opaque_ptr(malloc(N48));
    memset(q, 'q', N48);
    memset(p, 'a', N48);
    memset(p + opaque(N48), 'a', 16);
    free(opaque_ptr(p));
    free(opaque_ptr(q));
}

TEST(sixteen_byte_overflow_into_a_live_block)
{
    SKIP_UNDER_MEMCHECK();
    expect_per_build(overflow_into_live_neighbour, NULL, "free(): heap overflow past", NULL);
}

// --- write after free ------------------------------------------------------------------

typedef struct {
    size_t offset;     // where the stale pointer writes
} waf_t;

static void write_after_free(void *arg)
{
    const waf_t *w = arg;
    char *p = opaque_ptr(malloc(64));
    char *stale = opaque_ptr(p);
    memset(p, 'a', 64);
    free(opaque_ptr(p));
    memset(stale + w->offset, 'Z', 8);
    reuse(opaque_ptr(stale), 64, 100000);
}

TEST(write_after_free_into_the_payload)
{
    SKIP_UNDER_MEMCHECK();
    waf_t w = { 24 };
    expect_per_build(write_after_free, &w, "malloc(): write after free of", NULL);
}

TEST(write_after_free_over_the_link)
{
    SKIP_UNDER_MEMCHECK();
    waf_t w = { 0 };
    // The secure build follows the damaged link when it moves the page's
    // newest frees for its quarantine, or when it pops the block, in a
    // malloc, and names the block.
    expect_per_build(write_after_free, &w, "malloc(): write after free of", "heap corruption");
}

TEST(write_after_free_past_byte_31)
{
    SKIP_UNDER_MEMCHECK();
    waf_t w = { 40 };
    expect_per_build(write_after_free, &w, "malloc(): write after free of", NULL);
}

TEST(write_after_free_over_the_last_bytes)
{
    SKIP_UNDER_MEMCHECK();
    // A 64-byte request is an 80-byte block in the secure build, 64 in the
    // default one: offset 56 covers the request's last 8 bytes.
    waf_t w = { 56 };
    expect_per_build(write_after_free, &w, "malloc(): write after free of", NULL);
}

// --- found late: a freed block written and never handed out again ----------------------

typedef struct {
    size_t offset;     // where the stale pointer writes
    int how;           // 0 exit, 1 mallet_check, 2 malloc_trim
} late_t;

// 100 bytes: a block of 112 in the secure build, filled whole when free.
static void write_after_free_late(void *arg)
{
    const late_t *w = arg;
    char *p = opaque_ptr(malloc(100));
    char *stale = opaque_ptr(p);
    free(opaque_ptr(p));
    memset(stale + w->offset, 'Z', 8);
#ifndef TEST_ORACLE_GLIBC
    if (w->how == 1)
        mallet_check();
#endif
    if (w->how == 2)
        malloc_trim(0);
    exit(0);
}

TEST(write_after_free_never_reused_is_found_at_exit)
{
    SKIP_UNDER_MEMCHECK();
    late_t w = { 60, 0 };
    expect_per_build(write_after_free_late, &w, "exit(): write after free of", NULL);
}

TEST(write_after_free_never_reused_is_found_by_mallet_check)
{
    SKIP_UNDER_MEMCHECK();
    late_t w = { 60, 1 };
    expect_per_build(write_after_free_late, &w, "mallet_check(): write after free of", NULL);
}

TEST(write_after_free_never_reused_is_found_by_malloc_trim)
{
    SKIP_UNDER_MEMCHECK();
    late_t w = { 60, 2 };
    expect_per_build(write_after_free_late, &w, "malloc_trim(): write after free of", NULL);
}

TEST(a_damaged_link_is_found_by_mallet_check_in_every_build)
{
    SKIP_UNDER_MEMCHECK();
    late_t w = { 0, 1 };
    expect_per_build(write_after_free_late, &w, "mallet_check(): write after free of",
                     "heap corruption");
}

// A clean heap passes the check, and the check counts what it walked.
TEST(mallet_check_passes_a_clean_heap)
{
    SKIP_ON_GLIBC();
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = opaque_ptr(malloc((size_t)(i * 37 % 3000) + 1));
    for (int i = 0; i < 100; i += 2)
        free(p[i]);
#ifndef TEST_ORACLE_GLIBC
    CHECK(mallet_check() >= 50);
#endif
    for (int i = 1; i < 100; i += 2)
        free(p[i]);
}

// --- 8 bytes past the usable size ------------------------------------------------------

// In the secure build the usable size is the request, and the byte 8 past
// it lies between the request and the block's tag.
static void overflow_past_usable(void *arg)
{
    size_t past = (size_t)(uintptr_t)arg;
    char *p = opaque_ptr(malloc(8));
    p[malloc_usable_size(p) + opaque(past)] ^= 1;
    free(opaque_ptr(p));
}

TEST(overflow_of_8_bytes_past_the_usable_size)
{
    SKIP_UNDER_MEMCHECK();
    expect_per_build(overflow_past_usable, (void *)(uintptr_t)7, "free(): heap overflow past", NULL);
}

TEST(overflow_of_1_byte_past_the_usable_size)
{
    SKIP_UNDER_MEMCHECK();
    // Default build: the usable size is the block's; the byte past it is
    // the next block's first, a live block's or a link, looked at by
    // nobody in this program.
    expect_per_build(overflow_past_usable, (void *)(uintptr_t)0, "free(): heap overflow past", NULL);
}

// --- large blocks ----------------------------------------------------------------------

enum { BIG = 300000 };     // large, and not a whole number of pages

static void large_overflow(void *unused)
{
    (void)unused;
    char *p = opaque_ptr(malloc(BIG));
    p[opaque(BIG)] ^= 1;
    free(opaque_ptr(p));
}

TEST(one_byte_past_a_large_block)
{
    SKIP_UNDER_MEMCHECK();
    expect_per_build(large_overflow, NULL, "free(): heap overflow past", NULL);
}

static void large_read_after_free(void *unused)
{
    (void)unused;
    char *p = opaque_ptr(malloc(BIG));
    memset(p, 'a', BIG);
    free(opaque_ptr(p));
    fprintf(stderr, "read %d\n", ((volatile char *)p)[BIG / 2]);
}

TEST(a_large_block_is_inaccessible_once_freed)
{
    SKIP_UNDER_MEMCHECK();
    SKIP_ON_GLIBC();
    outcome_t o;
    run_child(large_read_after_free, NULL, &o);
    if (MALLET_SECURE)
        CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSEGV);
    else
        CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
}

static void large_past_last_page(void *unused)
{
    (void)unused;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *p = opaque_ptr(malloc(64 * pg));
    fprintf(stderr, "read %d\n", ((volatile char *)p)[opaque(64 * pg)]);
    free(p);
}

TEST(a_large_block_ends_at_a_guard_page)
{
    SKIP_UNDER_MEMCHECK();
    SKIP_ON_GLIBC();
    outcome_t o;
    run_child(large_past_last_page, NULL, &o);
    if (MALLET_SECURE)
        CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSEGV);
}

// A large block grown and shrunk by realloc keeps its guard and its gap.
TEST(a_large_block_keeps_its_guard_through_realloc)
{
    SKIP_ON_GLIBC();
    char *p = opaque_ptr(malloc(BIG));
    memset(p, 'x', BIG);
    for (size_t n = BIG + 1000; n < 8 * BIG; n = n * 3 / 2) {
        p = opaque_ptr(realloc(p, n));
        CHECK(p != NULL && p[0] == 'x' && p[BIG - 1] == 'x');
        CHECK(malloc_usable_size(p) >= n);
        if (MALLET_SECURE)
            CHECK(malloc_usable_size(p) == n);
    }
    p = opaque_ptr(realloc(p, BIG / 4 + 3));
    CHECK(p != NULL && p[0] == 'x' && p[BIG / 4] == 'x');
    free(p);
}

// Does a read of the byte at p fault? A SIGSEGV handler jumps back over it.
static sigjmp_buf probe_jump;

static void probe_fault(int sig)
{
    (void)sig;
    siglongjmp(probe_jump, 1);
}

static bool read_faults(const char *p)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = probe_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    volatile bool faulted = true;
    if (sigsetjmp(probe_jump, 1) == 0) {
        (void)*(volatile const char *)opaque_ptr((void *)p);
        faulted = false;
    }
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

// The secure build quarantines the newest freed large ranges, this many
// (QUARANTINE_RANGES, src/mem/large_cache.h).
enum { QUARANTINED = 8 };

typedef struct {
    char *p;           // block (live) or freed range
    size_t n;          // its request
    char tag;          // live: the byte marked in it (span_mark)
    long frees;        // freed: the count of frees at its own free
} span_t;

// Mark the block: its byte at every 64 KiB and its last byte hold tag.
static void span_mark(span_t *b, char tag)
{
    for (size_t at = 0; at < b->n; at += 1 << 16)
        b->p[at] = tag;
    b->p[b->n - 1] = tag;
    b->tag = tag;
}

// Are the marks of `was` (the block before a realloc) in b, as far as b
// kept its bytes?
static bool span_kept(const span_t *b, const span_t *was)
{
    bool ok = true;
    size_t keep = was->n < b->n ? was->n : b->n;
    for (size_t at = 0; at < keep; at += 1 << 16)
        ok &= b->p[at] == was->tag;
    return ok && (was->n > b->n || b->p[was->n - 1] == was->tag);
}

// Large blocks below, at and above a huge page, freed, allocated and
// reallocated in a random order. Every block keeps its bytes through
// realloc. In the secure build a freed block's range faults at once (its
// first, middle and last byte) and for as long as it is quarantined, and
// no block is placed over a quarantined range. A realloc that moves a
// block may have freed it through the quarantine, pushing the oldest
// quarantined range out: it counts as a free for the ages of the ranges
// watched (but its old range, unmapped when mremap moved it, is not
// watched).
TEST(freed_large_ranges_stay_inaccessible_and_unused_while_quarantined)
{
    static const size_t sizes[] = { 300000, (1 << 20) + 5, (2 << 20) + 1, (3 << 20) - 7, 5 << 20 };
    enum { LIVE = 6, SIZES = sizeof sizes / sizeof sizes[0] };
    if (test_on_mallet()) {
        // Neither a guarded sample nor the clock may take a block or a
        // range out of the ways this test watches.
        mallet_option_set("guard", 0);
        mallet_option_set("purge_delay_ms", 1000000);
    }
    span_t live[LIVE] = { { 0 } }, freed[QUARANTINED] = { { 0 } };
    long frees = 0, rounds = test_scaled(600, 20);
    uint64_t seed = 7;
    for (long r = 0; r < rounds; r++) {
        span_t *b = &live[test_rand(&seed) % LIVE];
        size_t n = sizes[test_rand(&seed) % SIZES];
        char tag = (char)('a' + r % 26);
        if (b->p && test_rand(&seed) % 3 == 0) {
            span_t was = *b;
            was.p = opaque_ptr(b->p);
            char *q = opaque_ptr(realloc(b->p, n));
            CHECK(q != NULL);
            if (q == NULL)
                return;
            b->p = q;
            b->n = n;
            CHECK(span_kept(b, &was));
            if (q != was.p) {
                frees++;
                if (MALLET_SECURE)
                    CHECK(read_faults(was.p) && read_faults(was.p + was.n / 2));
            }
        } else {
            if (b->p) {
                char *stale = opaque_ptr(b->p);
                free(b->p);
                if (MALLET_SECURE)
                    CHECK(read_faults(stale) && read_faults(stale + b->n / 2) && read_faults(stale + b->n - 1));
                freed[frees % QUARANTINED] = (span_t){ stale, b->n, 0, frees };
                frees++;
            }
            b->p = opaque_ptr(malloc(n));
            b->n = n;
            CHECK(b->p != NULL);
            if (b->p == NULL)
                return;
        }
        for (int i = 0; MALLET_SECURE && i < QUARANTINED; i++) {
            const span_t *f = &freed[i];
            if (f->p == NULL || frees - f->frees > QUARANTINED)
                continue;
            CHECK(read_faults(f->p + f->n / 2));
            CHECK(b->p + b->n <= f->p || f->p + f->n <= b->p);
        }
        span_mark(b, tag);
    }
    for (int k = 0; k < LIVE; k++)
        free(live[k].p);
}

// --- malloc(0) --------------------------------------------------------------------------

static void read_zero_size(void *unused)
{
    (void)unused;
    char *p = opaque_ptr(malloc(0));
    fprintf(stderr, "read %d\n", *(volatile char *)p);
    free(p);
}

TEST(a_zero_size_block_cannot_be_read)
{
    SKIP_UNDER_MEMCHECK();
    SKIP_ON_GLIBC();
    outcome_t o;
    run_child(read_zero_size, NULL, &o);
    if (MALLET_SECURE)
        CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSEGV);
    else
        CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
}

static void free_zero_size_twice(void *unused)
{
    (void)unused;
    void *p = opaque_ptr(malloc(0));
    void *stale = opaque_ptr(p);
    free(p);
    free(stale);
}

TEST(a_zero_size_block_freed_twice)
{
    SKIP_UNDER_MEMCHECK();
    outcome_t o;
    run_child(free_zero_size_twice, NULL, &o);
    SKIP_ON_GLIBC();
    expect_report(&o, "free(): double free of", NULL);
}

// Zero-size blocks are unique, have no usable bytes in the secure build,
// grow by realloc, and their addresses come round again once freed.
TEST(zero_size_blocks_are_unique_and_reusable)
{
    enum { K = 1000 };
    static void *p[K];
    for (int i = 0; i < K; i++) {
        p[i] = opaque_ptr(malloc(0));
        CHECK(p[i] != NULL);
        CHECK(i == 0 || p[i] != p[i - 1]);
    }
    if (test_on_mallet() && MALLET_SECURE)
        CHECK(malloc_usable_size(p[0]) == 0);
    for (int i = 0; i < K; i++)
        free(p[i]);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < K; i++)
            free(opaque_ptr(malloc(0)));
    char *q = opaque_ptr(realloc(opaque_ptr(malloc(0)), 100));
    CHECK(q != NULL);
    memset(q, 'q', 100);
    free(q);
}

// --- guard pages ------------------------------------------------------------------------

// The last OS page of the page holding a 16-byte block (such pages are one
// 64 KiB unit), and the last OS page of the metadata unit that starts the
// block's 4 MiB segment.
static void touch(void *addr)
{
    volatile char *c = addr;
    fprintf(stderr, "read %d\n", c[0]);
}

static void expect_guard(const outcome_t *o)
{
    if (MALLET_SECURE)
        CHECK(WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGSEGV);
    else
        CHECK(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0);
}

TEST(guard_page_at_the_end_of_a_page)
{
    SKIP_UNDER_MEMCHECK();
    SKIP_ON_GLIBC();
    uintptr_t p = (uintptr_t)opaque_ptr(malloc(8));
    uintptr_t unit = 64 << 10, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    outcome_t o;
    run_child(touch, (void *)((p & ~(unit - 1)) + unit - pg), &o);
    expect_guard(&o);
    free((void *)p);
}

TEST(guard_page_after_the_segment_metadata)
{
    SKIP_UNDER_MEMCHECK();
    SKIP_ON_GLIBC();
    uintptr_t p = (uintptr_t)opaque_ptr(malloc(8));
    uintptr_t seg = 4 << 20, unit = 64 << 10, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    outcome_t o;
    run_child(touch, (void *)((p & ~(seg - 1)) + unit - pg), &o);
    expect_guard(&o);
    free((void *)p);
}
