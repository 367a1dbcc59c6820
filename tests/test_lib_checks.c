// SPDX-License-Identifier: MIT
//
// test_lib_checks.c -- the checks that are always on: the page map tells
// ours from not ours; double frees (at once, after other frees, of large
// blocks, from another thread), interior and foreign pointers, and a
// damaged free-list link are each reported in one line and abort.
#include "test.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "mallet.h"
#include "mem/mem.h"

static int global_int;

static int under_checker(void)
{
    const char *m = getenv("MALLET_TEST_MODE");
    return m && (strcmp(m, "asan") == 0 || strcmp(m, "valgrind") == 0);
}

TEST(page_map_tells_ours_from_not_ours)
{
    int local = 0;
    void *small = mallet_malloc(40);
    void *big = mallet_malloc(4 << 20);
    void *libc = malloc(40);
    void *foreign = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mallet__span_page_of((uintptr_t)small) != NULL);
    CHECK(mallet__span_page_of((uintptr_t)&local) == NULL);
    CHECK(mallet__span_page_of((uintptr_t)&global_int) == NULL);
    CHECK(mallet__span_page_of((uintptr_t)libc) == NULL);
    CHECK(mallet__span_page_of((uintptr_t)foreign) == NULL);
    CHECK(mallet__span_page_of((uintptr_t)0x123456789ab0) == NULL);
    CHECK(mallet__span_page_of(UINTPTR_MAX - 15) == NULL);
    CHECK(mallet_usable_size(big) >= (4u << 20));
    munmap(foreign, 1 << 16);
    free(libc);
    mallet_free(big);
    mallet_free(small);
}

static void double_free_now(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    void *p = mallet_malloc(n);
    mallet_free(p);
    mallet_free(p);
}

// Other frees in between, but nothing that could take the freed block's
// address again (after that, freeing it is legitimate, or the address
// belongs to something else and is reported as an invalid pointer).
static void double_free_later(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    void *p = mallet_malloc(n);
    void *others[100];
    for (int i = 0; i < 100; i++)
        others[i] = mallet_malloc(n);
    mallet_free(p);
    for (int i = 0; i < 100; i++)
        mallet_free(others[i]);
    for (int i = 0; i < 50; i++)
        mallet_free(mallet_malloc(24));
    mallet_free(p);
}

TEST(double_free_is_always_caught)
{
    size_t sizes[] = { 1, 16, 24, 100, 1000, 5000, 70000, 200000, 300000, 5u << 20 };
    char out[512];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *arg = (void *)(uintptr_t)sizes[i];
        int now = test_dies(double_free_now, arg, "mallet: free(): double free of 0x", out, sizeof out);
        CHECK(now);
        if (!now)
            fprintf(stderr, "  size %zu, at once, child said: %s\n", sizes[i], out);
        // If the 100 frees emptied p's page and it went back to its segment
        // (the purger thread may get there first), p is no block any more:
        // the second free is still stopped, named an invalid pointer.
        int later = test_dies(double_free_later, arg, "mallet: free(): ", out, sizeof out) &&
                    (strstr(out, "double free of") || strstr(out, "invalid pointer"));
        CHECK(later);
        if (!later)
            fprintf(stderr, "  size %zu, later, child said: %s\n", sizes[i], out);
    }
}

static void *free_it(void *p)
{
    mallet_free(p);
    return NULL;
}

static void double_free_across_threads(void *arg)
{
    (void)arg;
    void *p = mallet_malloc(64);
    pthread_t t;
    pthread_create(&t, NULL, free_it, p);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_it, p);
    pthread_join(t, NULL);
    // The owner collects the second free and finds the block already free.
    for (int i = 0; i < 100000; i++)
        mallet_free(mallet_malloc(64));
}

TEST(double_free_from_other_threads_is_caught)
{
    char out[512];
    CHECK(test_dies(double_free_across_threads, NULL, "double free of", out, sizeof out));
}

static void free_interior(void *arg)
{
    char *p = mallet_malloc((size_t)(uintptr_t)arg);
    mallet_free(p + 16);
}

static void free_misaligned(void *arg)
{
    char *p = mallet_malloc((size_t)(uintptr_t)arg);
    mallet_free(p + 8);
}

static void free_stack(void *arg)
{
    (void)arg;
    char buf[64];
    mallet_free(buf + 16);
}

static void free_global(void *arg)
{
    (void)arg;
    mallet_free(&global_int);
}

static void free_wild(void *arg)
{
    (void)arg;
    mallet_free((void *)0x123456789ab0);
}

static void realloc_foreign(void *arg)
{
    (void)arg;
    void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mallet_realloc(p, 100);
}

TEST(invalid_and_interior_pointers_are_reported)
{
    char out[512];
    CHECK(test_dies(free_interior, (void *)(uintptr_t)64, "free(): invalid pointer 0x", out, sizeof out));
    CHECK(test_dies(free_interior, (void *)(uintptr_t)400000, "free(): invalid pointer", out, sizeof out));
    CHECK(test_dies(free_misaligned, (void *)(uintptr_t)32, "free(): invalid pointer", out, sizeof out));
    CHECK(test_dies(free_stack, NULL, "free(): invalid pointer", out, sizeof out));
    CHECK(test_dies(free_global, NULL, "free(): invalid pointer", out, sizeof out));
    CHECK(test_dies(free_wild, NULL, "free(): invalid pointer 0x123456789ab0", out, sizeof out));
    CHECK(test_dies(realloc_foreign, NULL, "realloc(): invalid pointer", out, sizeof out));
}

static void overwrite_link(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    char *a = mallet_malloc(n);
    char *b = mallet_malloc(n);
    mallet_free(b);
    mallet_free(a);
    // An overflow from a live neighbour rewrites the freed block's link.
    memset(a, 0x41, 8);
    for (int i = 0; i < 100000; i++)
        mallet_malloc(n);
}

TEST(a_damaged_free_list_link_is_caught_not_followed)
{
    if (under_checker())
        TEST_SKIP("writes into a freed block on purpose");
    char out[512];
    size_t sizes[] = { 16, 48, 256, 3000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK(test_dies(overwrite_link, (void *)(uintptr_t)sizes[i],
                        "mallet: heap corruption: free list of page 0x", out, sizeof out));
}

TEST(a_freed_block_comes_back_before_fresh_memory)
{
    void *p = mallet_malloc(48);
    mallet_free(p);
    void *q = mallet_malloc(48);
    CHECK(q != NULL);
    mallet_free(q);
    CHECK(mallet_usable_size(NULL) == 0);
}
