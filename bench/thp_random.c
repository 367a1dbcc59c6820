// SPDX-License-Identifier: MIT
//
// thp_random.c -- a TLB-bound workload: many small blocks linked in random
// order, then chased. Each step lands on a block far from the last one, so
// the time per step is mostly a TLB miss (a page walk) plus a cache miss;
// with 2 MiB pages one TLB entry covers 512 times the memory, and the walk
// is a level shorter.
//
//   thp_random [MIB [BLOCK [ROUNDS]]]     defaults 256 MiB of 64-byte blocks, 4 rounds
//
// The blocks come from malloc, so the allocator measured is whichever
// LD_PRELOAD provides (libmallet with MALLET_HUGEPAGES=0/1, MALLET_NUMA=0/1).
// Times are the process's CPU time (user and system: page faults and page
// zeroing count), so a busy machine stretches them less than wall-clock time.
// Prints one tab-separated line: alloc ms, chase ms, ns per step, free ms,
// AnonHugePages in KiB once the blocks are linked, and a checksum that
// keeps the chase from being optimised away.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct node {
    struct node *next;      // the next block in the random cycle
    uint64_t value;         // summed while chasing
} node_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

// AnonHugePages of this process in KiB (-1 when the kernel does not say).
static long anon_huge_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    size_t block = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
    size_t rounds = argc > 3 ? strtoul(argv[3], NULL, 10) : 4;
    size_t n = block >= sizeof(node_t) ? (mib << 20) / block : 0;
    if (n < 2 || rounds == 0) {
        fprintf(stderr, "usage: thp_random [MIB [BLOCK>=%zu [ROUNDS]]]\n", sizeof(node_t));
        return 2;
    }
    node_t **all = malloc(n * sizeof *all);
    if (all == NULL)
        return 1;
    double t0 = now_ms();
    for (size_t i = 0; i < n; i++) {
        all[i] = malloc(block);
        if (all[i] == NULL)
            return 1;
        all[i]->value = i;
    }
    double t1 = now_ms();
    // A random cyclic order (Fisher-Yates on the pointer array), linked.
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng() % (i + 1));
        node_t *t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        all[i]->next = all[(i + 1) % n];
    long huge_kb = anon_huge_kb();
    node_t *p = all[0];
    uint64_t sum = 0;
    double t2 = now_ms();
    for (size_t s = 0; s < rounds * n; s++) {
        sum += p->value;
        p = p->next;
    }
    double t3 = now_ms();
    for (size_t i = 0; i < n; i++)
        free(all[i]);
    double t4 = now_ms();
    free(all);
    printf("%.1f\t%.1f\t%.2f\t%.1f\t%ld\t%llu\n", t1 - t0, t3 - t2, (t3 - t2) * 1e6 / (double)(rounds * n),
           t4 - t3, huge_kb, (unsigned long long)sum);
    return 0;
}
