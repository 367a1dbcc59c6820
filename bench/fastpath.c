// SPDX-License-Identifier: MIT
//
// fastpath.c -- a tight loop of malloc(SIZE) / free pairs, for counting the
// instructions of the allocation and free fast paths with callgrind:
//
//   valgrind --tool=callgrind --callgrind-out-file=cg.out
//       --trace-children=yes env LD_PRELOAD=build/libmallet.so
//       build/bench/fastpath 1000000 32
//   callgrind_annotate cg.out | grep -E ' (malloc|free) '
//
// Instructions per call = the function's Ir / the loop count. The calls go
// through volatile function pointers so the compiler can neither drop the
// pairs nor inline them. Run with any allocator through LD_PRELOAD.
//
// A third argument keeps that many blocks of the size live during the loop,
// so no allocator sees its page become empty on every free (some allocators
// take a slow path each time the last block of a page is freed).
#include <stdio.h>
#include <stdlib.h>

static void *(*volatile do_malloc)(size_t) = malloc;
static void (*volatile do_free)(void *) = free;

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
    long keep = argc > 3 ? atol(argv[3]) : 0;
    void **live = keep > 0 ? do_malloc((size_t)keep * sizeof *live) : NULL;
    for (long i = 0; i < keep; i++)
        live[i] = do_malloc(size);
    // Warm up: the first call of each kind builds the thread's state.
    do_free(do_malloc(size));
    for (long i = 0; i < n; i++)
        do_free(do_malloc(size));
    for (long i = 0; i < keep; i++)
        do_free(live[i]);
    do_free(live);
    printf("%ld malloc(%zu)/free pairs, %ld blocks kept live\n", n, size, keep);
    return 0;
}
