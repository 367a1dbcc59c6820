// SPDX-License-Identifier: MIT
//
// override_rules.c -- the rules of the README's table "The malloc family,
// rule by rule" that tests/override_api.c does not already check, one test
// per row, against glibc as the oracle. Where the glibc at hand is older
// than the rule (C23's aligned_alloc check arrived in glibc 2.38), the
// .glibc build skips that test, and libmallet is held to the rule alone.
#include "override_common.h"

#include <gnu/libc-version.h>
#include <stdint.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// True when the running glibc is at least major.minor.
static int glibc_at_least(int major, int minor)
{
    int ma = 0, mi = 0;
    sscanf(gnu_get_libc_version(), "%d.%d", &ma, &mi);
    return ma > major || (ma == major && mi >= minor);
}

// Called through a volatile pointer: the compiler takes posix_memalign
// for one that writes nothing but *memptr, and would keep errno's 0.
static int (*volatile posix_memalign_call)(void **, size_t, size_t) = posix_memalign;

TEST(posix_memalign_out_of_memory_returns_and_leaves_enomem)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    size_t sizes[] = { SIZE_MAX - 64, SIZE_MAX / 2, (size_t)1 << 62 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = (void *)0x1234;
        errno = 0;
        CHECK(posix_memalign_call(&p, 64, opaque(sizes[i])) == ENOMEM);
        CHECK(errno == ENOMEM);
        CHECK(p == (void *)0x1234);   // *memptr untouched on failure
    }
}

TEST(posix_memalign_of_zero_bytes_is_a_unique_pointer)
{
    void *a = NULL, *b = NULL;
    CHECK(posix_memalign(&a, 64, 0) == 0 && posix_memalign(&b, 64, 0) == 0);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK(((uintptr_t)a & 63) == 0 && ((uintptr_t)b & 63) == 0);
    free(a);
    free(b);
}

TEST(aligned_alloc_fails_with_einval_for_an_alignment_not_a_power_of_two)
{
    if (!test_on_mallet() && !glibc_at_least(2, 38))
        TEST_SKIP("this glibc is older than C23's rule (2.38): it rounds the alignment up");
    size_t bad[] = { 0, 3, 24, 48, 1000, 4097, SIZE_MAX / 2 + 2, SIZE_MAX };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK(aligned_alloc(opaque(bad[i]), 64) == NULL);
        CHECK(errno == EINVAL);
    }
}

TEST(aligned_alloc_takes_every_power_of_two_and_any_size)
{
    // C23 dropped C11's "size a multiple of the alignment".
    for (size_t a = 1; a <= 8192; a *= 2) {
        void *p = aligned_alloc(a, opaque(a + 3));
        CHECK(p != NULL && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
    }
}

TEST(memalign_rounds_a_bad_alignment_up_and_rejects_a_huge_one)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    size_t odd[] = { 0, 3, 24, 100, 4097 };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t a = odd[i], up = 1;
        while (up < a)
            up *= 2;
        void *p = memalign(opaque(a), 40);
        CHECK(p != NULL && ((uintptr_t)p & (up - 1)) == 0);
        free(p);
    }
    errno = 0;
    CHECK(memalign(opaque(SIZE_MAX / 2 + 2), 40) == NULL);
    CHECK(errno == EINVAL);
}

// Each function, on success, leaves errno as it was.
TEST(success_leaves_errno_alone)
{
    size_t sizes[] = { 0, 1, 100, 5000, 200000, 3 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p[8] = { 0 };
        errno = 4321;
        p[0] = malloc(n);
        p[1] = calloc(1, n);
        p[2] = realloc(NULL, n);
        p[2] = realloc(p[2], n * 2 + 1);
        p[3] = aligned_alloc(64, n);
        p[4] = memalign(4096, n);
        CHECK(posix_memalign(&p[5], 256, n) == 0);
        p[6] = valloc(n);
        p[7] = reallocarray(NULL, 2, n);
        CHECK(errno == 4321);
        for (int k = 0; k < 8; k++) {
            CHECK(p[k] != NULL);
            free(p[k]);
        }
        CHECK(errno == 4321);
    }
}

// Whether realloc(p, n) kept the block; p is the result either way.
static int kept(void **p, size_t n)
{
    uintptr_t was = (uintptr_t)*p;
    *p = realloc(*p, n);
    return (uintptr_t)*p == was;
}

// glibc keeps a block whose new size it already holds (except a mapped
// one, 128 KiB and up, asked for its whole usable size: that grows with
// mremap and may move); libmallet keeps it for the size malloc_usable_size
// reports, for the size first asked for, and for any size of at least half
// the block (a shrink below half moves, and glibc would keep the block).
TEST(realloc_to_a_size_the_block_holds_keeps_the_block)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    size_t sizes[] = { 1, 3, 15, 16, 17, 100, 1000, 5000, 70000, 300000, 5 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = malloc(n);
        test_fill(p, n, 7);
        size_t u = malloc_usable_size(p);
        if (test_on_mallet() || n < 128 * 1024)
            CHECK(kept(&p, u));
        CHECK(kept(&p, n));
        // A quarter less: at least half the block for any block of 64
        // bytes and up (the classes are at most a quarter apart there), also
        // where the usable size is the request (secure and checker builds).
        if (n >= 64)
            CHECK(kept(&p, u - u / 4));
        CHECK(test_check_fill(p, n < malloc_usable_size(p) ? n : malloc_usable_size(p), 7));
        free(p);
    }
    void *a = aligned_alloc(256, 3);
    CHECK(kept(&a, malloc_usable_size(a)));
    free(a);
}

TEST(reallocarray_overflow_fails_and_keeps_the_block)
{
    unsigned char *p = malloc(50);
    test_fill(p, 50, 3);
    errno = 0;
    CHECK(reallocarray(opaque_ptr(p), opaque(SIZE_MAX / 2), 3) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(test_check_fill(p, 50, 3));
    free(p);
}

TEST(pvalloc_and_valloc_overflow_fail_with_enomem)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    errno = 0;
    CHECK(pvalloc(opaque(SIZE_MAX - 10)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(valloc(opaque(SIZE_MAX - 10)) == NULL && errno == ENOMEM);
}

TEST(realloc_zero_frees_and_keeps_errno)
{
    void *p = malloc(100);
    errno = 4321;
    CHECK(realloc(p, 0) == NULL);
    CHECK(errno == 4321);
}

TEST(malloc_trim_says_whether_it_gave_memory_back)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    enum { N = 256 };
    void *ps[N];
    for (int i = 0; i < N; i++)
        ps[i] = malloc(opaque(20000));
    for (int i = 0; i < N; i++)
        free(ps[i]);
    CHECK(malloc_trim(0) == 1);
    int again = malloc_trim(0);
    CHECK(again == 0 || again == 1);
}

TEST(mallinfo_and_mallinfo2_agree)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    void *p = opaque_ptr(malloc(100000));
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo m = mallinfo();
    CHECK(m2.uordblks + m2.hblkhd >= 100000);
    CHECK((size_t)m.uordblks + (size_t)m.hblkhd >= 100000);
    CHECK((size_t)m.hblkhd == m2.hblkhd && (size_t)m.uordblks == m2.uordblks);
    free(p);
}

TEST(the_libc_names_are_the_same_allocator)
{
    extern void *__libc_malloc(size_t), *__libc_calloc(size_t, size_t),
        *__libc_realloc(void *, size_t), *__libc_memalign(size_t, size_t);
    extern void __libc_free(void *);
    void *p = __libc_malloc(100);
    CHECK(malloc_usable_size(p) >= 100);
    p = __libc_realloc(p, 1000);
    CHECK(malloc_usable_size(p) >= 1000);
    free(p);
    void *q = __libc_memalign(128, 10);
    CHECK(((uintptr_t)q & 127) == 0);
    __libc_free(q);
    unsigned char *z = __libc_calloc(10, 10);
    CHECK(z != NULL && z[0] == 0 && z[99] == 0);
    __libc_free(z);
}

static void print_stats(void *arg)
{
    (void)arg;
    void *p = opaque_ptr(malloc(1000));
    malloc_stats();
    free(p);
}

TEST(malloc_stats_writes_a_summary_to_stderr)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    char out[4096];
    int status = test_run_child(print_stats, NULL, out, sizeof out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strlen(out) > 20);
}

// Not replaced: glibc's mallopt and malloc_info answer about glibc's own
// heap (unused under libmallet), and the program goes on.
TEST(mallopt_and_malloc_info_answer_and_change_nothing)
{
    CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
    FILE *f = tmpfile();
    CHECK(f != NULL && malloc_info(0, f) == 0);
    CHECK(f != NULL && ftell(f) > 0);
    if (f)
        fclose(f);
    void *p = malloc(100);
    CHECK(p != NULL);
    free(p);
}
