// SPDX-License-Identifier: MIT
//
// override_fork.c -- fork never hangs, with the malloc of the process: the
// three shapes of fork_shapes.h, 200 rounds each (40 of the heavier single
// shape), the stdio one with getline itself holding the FILE's lock while
// it allocates. glibc passes all three (the .glibc build is the oracle); so
// must the default and the secure build (tests/secure_suite.sh).
#include "override_common.h"

#include <malloc.h>

static void getline_once(FILE *f);

#define SHAPE_MALLOC malloc
#define SHAPE_REALLOC realloc
#define SHAPE_FREE free
#define SHAPE_TRIM() malloc_trim(0)
#define SHAPE_LOCKED_ALLOC(f) getline_once(f)
#define SHAPE_PROF_ON() prof_on()
#define SHAPE_MAPPED() bytes_mapped()

static void prof_on(void);
static uint64_t bytes_mapped(void);

#include "fork_shapes.h"

// getline locks the FILE, then grows the line with realloc.
static void getline_once(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) < 0)
        rewind(f);
    free(line);
}

// On libmallet: sample often, write no profile at exit.
static void prof_on(void)
{
    if (!test_on_mallet())
        return;
    mallet_option_set("prof_sample_kb", 16);
    mallet_option_set("prof_at_exit", 0);
    mallet_option_set("prof", 1);
}

static uint64_t bytes_mapped(void)
{
    mallet_stats_t s;
    if (!test_on_mallet())
        return 0;
    mallet_stats_get(&s);
    return s.mapped;
}

// The oracle only shows the test is fair: a quarter of the rounds.
static long rounds(void)
{
    long n = shape_round_count();
    return test_on_mallet() || n < 4 ? n : n / 4;
}

TEST(fork_from_a_signal_handler_never_hangs)
{
    shape_rounds("signal", signal_round, rounds());
}

TEST(fork_beside_getline_and_fflush_never_hangs)
{
    // Under memcheck this shape once stalled past its deadline with glibc's
    // malloc as well as ours (memcheck runs the threads one at a time and
    // wraps fork); test_fork.c keeps the shape under memcheck.
    if (test_under_valgrind())
        TEST_SKIP("memcheck stalls this shape with any malloc");
    shape_rounds("stdio", stdio_round, rounds());
}

// glibc's tst-mallocfork2 with the heap past every threshold of libmallet's:
// the process must keep its one thread, or fork takes glibc's atfork lock.
TEST(fork_from_a_signal_handler_in_one_thread_never_hangs)
{
    single_rounds(rounds() / 5);
}
