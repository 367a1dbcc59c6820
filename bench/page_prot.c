// SPDX-License-Identifier: MIT
//
// page_prot.c -- what the secure build's large blocks cost the kernel (and
// the hypervisor, if any), per 4 KiB: a range is made inaccessible when its
// block is freed and accessible again when it is reused, then written. Each
// figure is the mean over ROUNDS rounds on one range of MIB MiB, first with
// 4 KiB pages, then advised MADV_HUGEPAGE on 2 MiB boundaries:
//
//   resident   touch (write one byte of) every page, nothing else
//   none       mprotect(PROT_NONE) of the whole range
//   rw         mprotect(PROT_READ | PROT_WRITE) of it again
//   reopened   touch every page after that pair
//   dropped    madvise(MADV_DONTNEED) of the range
//   fresh      touch every page after that: a page fault and a zeroed page
//
// src/mem/large.c quotes these figures for the machine it was tuned on: on
// bare metal the touch after a pair of mprotects costs about what a
// resident touch does; where the host shadows the guest's page tables it
// costs a hidden fault per page table entry changed.
//
//   page_prot [MIB [ROUNDS]]     defaults 4 MiB, 100 rounds
//
// Prints a row per page size, in ns per 4 KiB, and the AnonHugePages the
// huge row ended with (0: the kernel gave no huge pages, so that row is
// 4 KiB pages again).
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096
#define HUGE ((size_t)2 << 20)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void touch(volatile char *p, size_t n, int v)
{
    for (size_t at = 0; at < n; at += PAGE)
        p[at] = (char)v;
}

// AnonHugePages of this process in KiB (-1 when the kernel does not say).
static long anon_huge_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "AnonHugePages:", 14) == 0)
            kb = atol(line + 14);
    if (f)
        fclose(f);
    return kb;
}

static void measure(const char *name, char *p, size_t n, int rounds)
{
    enum { RESIDENT, NONE, RW, REOPENED, DROPPED, FRESH, FIGURES };
    double t[FIGURES] = { 0 }, at;
    touch(p, n, 1);
    for (int r = 0; r < rounds; r++) {
        at = now_ns();
        touch(p, n, r);
        t[RESIDENT] += now_ns() - at;
        at = now_ns();
        mprotect(p, n, PROT_NONE);
        t[NONE] += now_ns() - at;
        at = now_ns();
        mprotect(p, n, PROT_READ | PROT_WRITE);
        t[RW] += now_ns() - at;
        at = now_ns();
        touch(p, n, r);
        t[REOPENED] += now_ns() - at;
    }
    long huge = anon_huge_kb();
    for (int r = 0; r < rounds; r++) {
        at = now_ns();
        madvise(p, n, MADV_DONTNEED);
        t[DROPPED] += now_ns() - at;
        at = now_ns();
        touch(p, n, r);
        t[FRESH] += now_ns() - at;
    }
    double per = (double)rounds * (double)(n / PAGE);
    printf("%-9s %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f %12ld\n", name, t[RESIDENT] / per, t[NONE] / per,
           t[RW] / per, t[REOPENED] / per, t[DROPPED] / per, t[FRESH] / per, huge);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 4;
    int rounds = argc > 2 ? atoi(argv[2]) : 100;
    size_t n = (mib ? mib : 1) << 20;
    if (rounds < 1)
        rounds = 1;
    // Room to start on a 2 MiB boundary; the 4 KiB row is advised against
    // huge pages, so that a kernel in THP mode `always` gives it none.
    char *raw = mmap(NULL, 2 * n + 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    char *small = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    char *huge = small + n + HUGE;
    madvise(small, n, MADV_NOHUGEPAGE);
    madvise(huge, n, MADV_HUGEPAGE);
    printf("ns per 4 KiB, %zu MiB, %d rounds\n", mib, rounds);
    printf("%-9s %9s %9s %9s %9s %9s %9s %12s\n", "pages", "resident", "none", "rw", "reopened",
           "dropped", "fresh", "AnonHuge kB");
    measure("4 KiB", small, n, rounds);
    measure("2 MiB", huge, n, rounds);
    return 0;
}
