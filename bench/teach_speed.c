// SPDX-License-Identifier: MIT
//
// teach_speed.c -- time random small malloc/free on every teach design,
// in-process through teach_allocators[], and print a Markdown table: the
// median CPU time per malloc+free pair over the repetitions, and the ratio
// to first fit (segregated size classes are the design meant to beat it).
//
//   teach_speed [OPS [REPS [DESIGN]]]   defaults 200000 pairs, 5 repetitions,
//                                       every design
//
// With DESIGN, only that design runs: bench/sections/10-teach.sh runs it
// under callgrind at two pair counts, and the difference of the
// instruction counts over the difference of the pairs is the cost of one
// pair, free of the set-up and of the machine's noise.
//
// The designs run in turn within each repetition (A B C ... A B C ...), so a
// slow spell on the shared machine hits all of them alike, and the time is
// the thread's CPU time, which does not count waiting for a core. Every
// repetition starts from reset() and replays the same random sequence.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "teach.h"

enum { SLOTS = 4000, MAX_DESIGNS = 16, MAX_REPS = 31 };

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// One run: fill SLOTS blocks, then `ops` random replacements (free one,
// malloc another), sizes uniform in [16, 512]. Returns ns per pair.
static double run(const teach_allocator_t *a, unsigned ops)
{
    static void *p[SLOTS];
    uint64_t rng = 0x5eed;
    a->reset();
    for (size_t k = 0; k < SLOTS; k++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        p[k] = a->malloc(16 + (size_t)(rng >> 40) % 497);
    }
    double t0 = cpu_seconds();
    for (unsigned op = 0; op < ops; op++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t k = (size_t)(rng >> 20) % SLOTS;
        a->free(p[k]);
        p[k] = a->malloc(16 + (size_t)(rng >> 40) % 497);
        if (p[k] == NULL) {
            fprintf(stderr, "teach_speed: %s ran out of memory at pair %u\n", a->name, op);
            exit(1);
        }
        *(volatile char *)p[k] = 1;
    }
    double t = cpu_seconds() - t0;
    for (size_t k = 0; k < SLOTS; k++)
        a->free(p[k]);
    a->reset();
    return t * 1e9 / ops;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    unsigned ops = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    const char *only = argc > 3 ? argv[3] : NULL;
    if (reps < 1 || reps > MAX_REPS || ops == 0) {
        fprintf(stderr, "usage: teach_speed [OPS [REPS<=%d]]\n", MAX_REPS);
        return 2;
    }
    static double ns[MAX_DESIGNS][MAX_REPS];
    const teach_allocator_t *designs[MAX_DESIGNS];
    int n = 0;
    for (int i = 0; teach_allocators[i] && n < MAX_DESIGNS; i++)
        if (!only || strcmp(only, teach_allocators[i]->name) == 0)
            designs[n++] = teach_allocators[i];
    if (n == 0) {
        fprintf(stderr, "teach_speed: no design called %s\n", only);
        return 2;
    }
    for (int r = 0; r < reps; r++)
        for (int d = 0; d < n; d++)
            ns[d][r] = run(designs[d], ops);
    double med[MAX_DESIGNS], ff = 0;
    for (int d = 0; d < n; d++) {
        double sorted[MAX_REPS];
        memcpy(sorted, ns[d], sizeof(double) * (size_t)reps);
        qsort(sorted, (size_t)reps, sizeof(double), cmp_double);
        med[d] = sorted[reps / 2];
        if (strcmp(designs[d]->name, "firstfit") == 0)
            ff = med[d];
    }
    printf("| design | median ns per malloc+free | min .. max | speedup over firstfit |\n"
           "|---|---:|---:|---:|\n");
    for (int d = 0; d < n; d++) {
        double lo = ns[d][0], hi = ns[d][0];
        for (int r = 1; r < reps; r++) {
            lo = ns[d][r] < lo ? ns[d][r] : lo;
            hi = ns[d][r] > hi ? ns[d][r] : hi;
        }
        printf("| %s | %.1f | %.1f .. %.1f | ", designs[d]->name, med[d], lo, hi);
        if (ff > 0)
            printf("%.2fx |\n", ff / med[d]);
        else
            printf("n/a |\n");
    }
    printf("\n%u random malloc/free pairs over %d live blocks of 16..512 bytes; median of %d"
           " repetitions, designs interleaved; thread CPU time.\n", ops, SLOTS, reps);
    return 0;
}
