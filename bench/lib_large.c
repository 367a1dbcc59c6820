// SPDX-License-Identifier: MIT
//
// lib_large.c -- large blocks: a window of 16 live blocks of 64 KiB .. 16 MiB,
// one replaced per step, each new block touched once per 4 KiB page (so the
// cost of fresh pages from the OS shows, as it does in real programs).
//
//   lib_large STEPS
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 20000;
    enum { WINDOW = 16 };
    char *live[WINDOW] = { 0 };
    uint64_t s = 2463534242ull, sum = 0;
    for (long i = 0; i < steps; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int k = (int)(s % WINDOW);
        if (live[k])
            sum += (unsigned char)live[k][0];
        free(live[k]);
        // Sizes spread over powers of two: 64 KiB << 0..8.
        size_t n = ((size_t)64 << 10) << ((s >> 8) % 9);
        n += (size_t)((s >> 16) % n) / 2;
        live[k] = malloc(n);
        for (size_t off = 0; off < n; off += 4096)
            live[k][off] = (char)i;
    }
    for (int k = 0; k < WINDOW; k++)
        free(live[k]);
    printf("large %ld steps: %llu\n", steps, (unsigned long long)sum);
    return 0;
}
