// SPDX-License-Identifier: MIT
//
// lib_realloc.c -- realloc growth: BUFFERS buffers grow by appending chunks
// of 1..64 bytes in turn, as string builders do, up to LIMIT bytes each; then
// all shrink to a tenth and grow again; the first byte must survive every move.
//
//   lib_realloc BUFFERS LIMIT ROUNDS
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int nbuf = argc > 1 ? atoi(argv[1]) : 64;
    size_t limit = argc > 2 ? (size_t)atol(argv[2]) : 1 << 20;
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    char **buf = calloc((size_t)nbuf, sizeof *buf);
    size_t *len = calloc((size_t)nbuf, sizeof *len);
    uint64_t s = 88172645463325252ull, bad = 0;
    for (int r = 0; r < rounds; r++) {
        int growing = nbuf;
        while (growing) {
            growing = 0;
            for (int i = 0; i < nbuf; i++) {
                if (len[i] >= limit)
                    continue;
                growing++;
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                size_t add = 1 + (size_t)(s % 64);
                buf[i] = realloc(buf[i], len[i] + add);
                memset(buf[i] + len[i], (int)((len[i] + (size_t)i) & 0x7f), add);
                len[i] += add;
            }
        }
        for (int i = 0; i < nbuf; i++) {
            // The first byte was written by the very first append.
            bad += buf[i][0] != (char)(i & 0x7f);
            len[i] /= 10;
            buf[i] = realloc(buf[i], len[i]);
        }
    }
    for (int i = 0; i < nbuf; i++)
        free(buf[i]);
    free(buf);
    free(len);
    printf("realloc %d buffers to %zu x %d: %llu\n", nbuf, limit, rounds, (unsigned long long)bad);
    return 0;
}
