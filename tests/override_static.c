// SPDX-License-Identifier: MIT
//
// override_static.c -- a program linked with build/libmallet.a really runs on
// libmallet: malloc resolves into the program itself, not libc.so; mallet's
// counters see every malloc, including the ones libc makes inside strdup,
// fopen and asprintf; and malloc_usable_size agrees with mallet_usable_size.
// The glibc build checks the opposite: malloc lives in libc.so.
#include "override_common.h"

#include <dlfcn.h>

#pragma weak mallet_usable_size

// The file that holds the code at fn, as the dynamic loader sees it.
static const char *home_of(void *fn)
{
    Dl_info info;
    if (!dladdr(fn, &info) || !info.dli_fname)
        return "";
    return info.dli_fname;
}

static int on_libc(void *fn)
{
    return strstr(home_of(fn), "libc.so") != NULL;
}

// The libmallet build must have libmallet in it; before the library exists
// the archive holds no allocator and the program falls back to glibc's.
static void require_mallet(void)
{
#ifdef TEST_ORACLE_GLIBC
    TEST_SKIP("glibc build");
#elif __has_include("override/override.c")
    // The source of the override is there, so the archive must carry it.
    CHECK(test_on_mallet());
    if (!test_on_mallet())
        _exit(1);
#else
    if (!test_on_mallet())
        TEST_SKIP("build/libmallet.a holds no allocator yet");
#endif
}

TEST(malloc_family_resolves_where_the_build_says)
{
    TEST_SKIP_IF_VALGRIND_MALLOC();
    void *fns[] = { (void *)malloc, (void *)free, (void *)calloc, (void *)realloc,
                    (void *)posix_memalign, (void *)aligned_alloc, (void *)memalign,
                    (void *)malloc_usable_size };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        fprintf(stderr, "  fn %zu in %s\n", i, home_of(fns[i]));
#ifdef TEST_ORACLE_GLIBC
        CHECK(on_libc(fns[i]));
#else
        if (test_on_mallet())
            CHECK(!on_libc(fns[i]));
#endif
    }
}

TEST(mallet_counters_see_our_mallocs)
{
    require_mallet();
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    void *ps[100];
    for (int i = 0; i < 100; i++)
        ps[i] = opaque_ptr(malloc(1000));
    mallet_stats_get(&b);
    CHECK(b.malloc_calls >= a.malloc_calls + 100);
    CHECK(b.allocated >= a.allocated + 100 * 1000);
    for (int i = 0; i < 100; i++) {
        CHECK(mallet_usable_size(ps[i]) == malloc_usable_size(ps[i]));
        free(ps[i]);
    }
    mallet_stats_get(&b);
    CHECK(b.free_calls >= a.free_calls + 100);
    CHECK(b.allocated == a.allocated);
}

TEST(libc_internal_mallocs_come_to_mallet)
{
    require_mallet();
    uint64_t start = test_allocated();
    char *s = strdup("a string libc copies with its own malloc call");
    CHECK(test_allocated() > start);
    CHECK(mallet_usable_size(s) >= strlen(s) + 1);
    char *f = NULL;
    CHECK(asprintf(&f, "%s/%d", s, 42) > 0);
    CHECK(mallet_usable_size(f) >= strlen(f) + 1);
    FILE *fp = fopen("/proc/self/statm", "r");
    CHECK(fp != NULL);
    char *line = NULL;
    size_t cap = 0;
    CHECK(getline(&line, &cap, fp) > 0);
    CHECK(mallet_usable_size(line) >= cap);
    free(line);
    fclose(fp);
    free(f);
    free(s);
    CHECK_ALLOCATED_IS(start);
}
