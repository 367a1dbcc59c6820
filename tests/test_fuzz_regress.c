// SPDX-License-Identifier: MIT
//
// test_fuzz_regress.c -- what the fuzzers found, kept as tests. Each test
// is the smallest call sequence that reproduces one finding of
// fuzz/fuzz_alloc.c; the fuzzer's own input is kept beside it in
// fuzz/regress/alloc/ and `make fuzz` replays those first.
#include "test.h"

#include <errno.h>
#include <stdint.h>

#include "mallet.h"

// fuzz/regress/alloc/aligned-large-zero-size: a zero-byte request with an
// alignment above 64 KiB is a large block whose request is 0; in checker
// builds (which report the request as the usable size) it was taken for a
// pointer that is not ours.
TEST(aligned_zero_size_large_block)
{
    static const size_t aligns[] = { 128 << 10, 256 << 10, 1 << 20, 4 << 20 };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        void *p = NULL;
        CHECK(mallet_posix_memalign(&p, aligns[i], 0) == 0);
        CHECK(p != NULL && ((uintptr_t)p & (aligns[i] - 1)) == 0);
        (void)mallet_usable_size(p);
        void *q = mallet_realloc(p, 100);
        CHECK(q != NULL);
        mallet_free(q);
        void *m = mallet_memalign(aligns[i], 0);
        CHECK(m != NULL);
        (void)mallet_usable_size(m);
        mallet_free(m);
    }
}
