// SPDX-License-Identifier: MIT
//
// lib_bigbuf.c -- large buffers: LIVE live buffers of 5..25 MiB (uniform
// random size), one replaced at random STEPS times. The program zeroes every
// new buffer with memset over its whole length, as code that does not trust
// malloc's memory does, and reads a byte of the old one before freeing it.
// Whether the allocator keeps freed buffers mapped or returns them to the OS
// (and faults every page in again) decides the time. Plain malloc/free, so
// any allocator can be preloaded.
//
//   lib_bigbuf LIVE STEPS
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Called through a volatile pointer: the compiler would otherwise turn
// malloc followed by a memset to zero into calloc, which may skip the
// zeroing of fresh pages this program means to pay for.
static void *(*volatile zero)(void *, int, size_t) = memset;

static size_t buffer_size(uint64_t r)
{
    return ((size_t)5 << 20) + (size_t)(r % (((size_t)20 << 20) + 1));
}

static unsigned char *fresh(size_t n, long i)
{
    unsigned char *p = malloc(n);
    zero(p, 0, n);
    p[n / 2] = (unsigned char)i;
    return p;
}

int main(int argc, char **argv)
{
    int live = argc > 1 ? atoi(argv[1]) : 20;
    long steps = argc > 2 ? atol(argv[2]) : 2000;
    if (live < 1)
        live = 1;
    unsigned char **buf = malloc(sizeof *buf * (size_t)live);
    size_t *len = malloc(sizeof *len * (size_t)live);
    uint64_t s = 2463534242ull, sum = 0;
    for (int k = 0; k < live; k++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        len[k] = buffer_size(s);
        buf[k] = fresh(len[k], k);
    }
    for (long i = 0; i < steps; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int k = (int)((s >> 40) % (uint64_t)live);
        sum += buf[k][len[k] / 2];
        free(buf[k]);
        len[k] = buffer_size(s);
        buf[k] = fresh(len[k], i);
    }
    for (int k = 0; k < live; k++)
        free(buf[k]);
    free(buf);
    free(len);
    printf("bigbuf %d live x %ld steps: %llu\n", live, steps, (unsigned long long)sum);
    return 0;
}
