// SPDX-License-Identifier: MIT
//
// lib_fastpath.c -- the fast paths, for instruction counts under callgrind:
//
//   lib_fastpath pair N     N x { p = malloc(32); free(p); }
//   lib_fastpath batch N    N x { 1000 x malloc(32); then the 1000 frees }
//
// The loops live in their own functions (run_pairs, run_batches) so that
//   valgrind --tool=callgrind --toggle-collect=run_pairs ...
// counts only them; a run with N=0 measures what is not the loop, and
// (Ir(N) - Ir(0)) / N is the cost of one pair, or of one batch. A warm-up
// outside the counted function builds the thread's heap first. The calls go
// through volatile pointers so the compiler keeps every one.
#include <stdio.h>
#include <stdlib.h>

static void *(*volatile do_malloc)(size_t) = malloc;
static void (*volatile do_free)(void *) = free;
static void *batch[1000];

__attribute__((noinline)) void run_pairs(long n)
{
    for (long i = 0; i < n; i++)
        do_free(do_malloc(32));
}

__attribute__((noinline)) void run_batches(long n)
{
    for (long i = 0; i < n; i++) {
        for (int k = 0; k < 1000; k++)
            batch[k] = do_malloc(32);
        for (int k = 0; k < 1000; k++)
            do_free(batch[k]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lib_fastpath pair|batch N\n");
        return 2;
    }
    long n = atol(argv[2]);
    run_pairs(1000);      // warm-up: the heap and its first page exist
    run_batches(2);
    if (argv[1][0] == 'p')
        run_pairs(n);
    else
        run_batches(n);
    return 0;
}
