// SPDX-License-Identifier: MIT
//
// override_common.h -- helpers shared by the tests/override_*.c programs.
//
// Each override test is built twice: linked with build/libmallet.a (malloc is
// libmallet's) and as override_X.glibc with -DTEST_ORACLE_GLIBC (malloc is
// glibc's, the oracle). The same checks run against both; the few that only
// libmallet promises are guarded by test_on_mallet().
//
// The mallet_* names and free_sized/free_aligned_sized are referenced weakly,
// so the glibc build links without them and a test can ask at run time
// whether they are there.
#ifndef MALLET_OVERRIDE_COMMON_H
#define MALLET_OVERRIDE_COMMON_H

#include "test.h"
#include "mallet.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <unistd.h>

#pragma weak mallet_stats_get
#pragma weak mallet_option_set
#pragma weak mallet_trim
void free_sized(void *p, size_t size) __attribute__((weak));
void free_aligned_sized(void *p, size_t align, size_t size) __attribute__((weak));

// 1 under memcheck: loops shrink, every check stays.
// A misuse run in a child: how it ended and what it said.
typedef struct {
    int status;      // wait status of the child
    char text[512];  // what it wrote on stderr
} outcome_t;

static inline void run_child(void (*fn)(void *), void *arg, outcome_t *o)
{
    o->status = test_run_child(fn, arg, o->text, sizeof o->text);
    fprintf(stderr, "  child said: %s", o->text[0] ? o->text : "(nothing)\n");
}


// n in plain runs, n / div (at least 1) under memcheck.
static inline long test_scaled(long n, long div)
{
    if (!test_under_valgrind())
        return n;
    return n / div > 0 ? n / div : 1;
}

// Under memcheck the glibc build runs valgrind's replacement malloc, which
// differs from glibc at the edges (huge sizes, pvalloc, mallinfo2): edge
// tests skip there. The libmallet build links malloc statically, so memcheck
// leaves it in place and those tests still run.
#ifdef TEST_ORACLE_GLIBC
#define TEST_SKIP_IF_VALGRIND_MALLOC() \
    do { if (test_under_valgrind()) TEST_SKIP("memcheck replaces glibc's malloc here"); } while (0)
#else
#define TEST_SKIP_IF_VALGRIND_MALLOC() do { } while (0)
#endif

// 1 when this binary's malloc is libmallet's: its stats entry point is
// linked in with the override (the weak reference stays null otherwise).
static inline int test_on_mallet(void)
{
#ifdef TEST_ORACLE_GLIBC
    return 0;
#else
    return mallet_stats_get != NULL;
#endif
}

// The shape of a libmallet report: one line naming the error, then only
// the frames of the stack of the call that found it ("    #N 0x..."),
// and for a guarded block the titles of its other stacks ("  freed by
// thread N:"); a capture buffer may cut the last line short.
static inline int test_report_shape(const char *s)
{
    const char *nl = strchr(s, '\n');
    if (nl == NULL || nl == s)
        return 0;
    for (s = nl + 1; *s; s = nl + 1) {
        nl = strchr(s, '\n');
        if (nl == NULL)
            return 1;
        if (strncmp(s, "    #", 5) != 0 && !(strncmp(s, "  ", 2) == 0 && s[2] != ' ' && nl[-1] == ':'))
            return 0;
    }
    return 1;
}

// Bytes libmallet reports as allocated now; 0 when it is not the malloc.
static inline uint64_t test_allocated(void)
{
    if (!mallet_stats_get)
        return 0;
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.allocated;
}

// Check that libmallet's allocated count is back at start, and say by how
// much it is not. Slack of 1 KiB: libmallet's purger thread may start during
// a long test, and libc's pthread_create makes its TLS with malloc.
#define CHECK_ALLOCATED_IS(start)                                                  \
    do { uint64_t now_ = test_allocated(), start_ = (start);                        \
         if (now_ != start_) fprintf(stderr, "  allocated: %llu at start, %llu now\n", \
                                     (unsigned long long)start_, (unsigned long long)now_); \
         CHECK(now_ >= start_ && now_ - start_ <= 1024); } while (0)

// Resident set size of this process in bytes (/proc/self/statm).
static inline size_t test_rss(void)
{
    char buf[128];
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    size_t pages = 0, resident = 0;
    if (!fgets(buf, sizeof buf, f) || sscanf(buf, "%zu %zu", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

// Hidden from the optimiser: a size it cannot reason about, and a pointer it
// cannot prove unused (so a malloc/free pair is not folded away) or prove
// passed to realloc (so the checks after a failed realloc do not warn).
static inline size_t opaque(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

static inline void *opaque_ptr(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

// A deterministic generator (xorshift64*), so a failure repeats.
static inline uint64_t test_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

// Fill p[0..n) with a pattern derived from seed; test_check_fill verifies it.
static inline void test_fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static inline int test_check_fill(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

// Fill only the first and last 64 bytes: enough to see a block moved or
// overlapped, cheap for megabyte blocks.
static inline void test_fill_ends(unsigned char *p, size_t n, unsigned seed)
{
    if (n <= 128) {
        test_fill(p, n, seed);
        return;
    }
    test_fill(p, 64, seed);
    test_fill(p + n - 64, 64, seed + 1);
}

static inline int test_check_ends(const unsigned char *p, size_t n, unsigned seed)
{
    if (n <= 128)
        return test_check_fill(p, n, seed);
    return test_check_fill(p, 64, seed) && test_check_fill(p + n - 64, 64, seed + 1);
}

#endif
