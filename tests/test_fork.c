// SPDX-License-Identifier: MIT
//
// test_fork.c -- fork never hangs: the three shapes of fork_shapes.h on the
// mallet_* API, as many rounds as fork_shapes.h sets for the mode. In the
// stdio shape the thread that holds a FILE's lock calls mallet_malloc under
// flockfile, as getline calls malloc (override_fork.c runs getline itself).
// Built in every mode, the sanitizers' too, and in the secure build by
// tests/fork_secure.sh.
#include "test.h"

#include "mallet.h"

// tsan: yes

static __thread uint64_t locked_seed;

#define SHAPE_MALLOC mallet_malloc
#define SHAPE_REALLOC mallet_realloc
#define SHAPE_FREE mallet_free
#define SHAPE_TRIM mallet_trim
#define SHAPE_LOCKED_ALLOC(f) locked_alloc(f)
#define SHAPE_PROF_ON() prof_on()
#define SHAPE_MAPPED() bytes_mapped()

static void locked_alloc(FILE *f);
static void prof_on(void);
static uint64_t bytes_mapped(void);

#include "fork_shapes.h"

// What getline does: take the FILE's lock, then allocate and grow a line.
static void locked_alloc(FILE *f)
{
    if (locked_seed == 0)
        locked_seed = (uintptr_t)&locked_seed | 1;
    flockfile(f);
    size_t n = shape_size(&locked_seed);
    char *line = mallet_malloc(120);
    if (line && n > 120) {
        char *longer = mallet_realloc(line, n);
        if (longer)
            line = longer;
    }
    if (line)
        line[0] = 'x';
    mallet_free(line);
    funlockfile(f);
}

// Sample often; write no profile at exit.
static void prof_on(void)
{
    mallet_option_set("prof_sample_kb", 16);
    mallet_option_set("prof_at_exit", 0);
    mallet_option_set("prof", 1);
}

static uint64_t bytes_mapped(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.mapped;
}

TEST(fork_from_a_signal_handler_never_hangs)
{
    shape_rounds("signal", signal_round, shape_round_count());
}

TEST(fork_beside_stdio_never_hangs)
{
    shape_rounds("stdio", stdio_round, shape_round_count());
}

// glibc's tst-mallocfork2, with a heap past every threshold of libmallet's:
// a fifth of the other shapes' rounds, each a heavier one.
TEST(fork_from_a_signal_handler_in_one_thread_never_hangs)
{
    single_rounds(shape_round_count() / 5);
}
