// SPDX-License-Identifier: MIT
//
// fuzz_alloc.c -- libFuzzer target for the mallet_* API, in process.
//
// The input is a program: each operation is one opcode byte followed by its
// operands (a slot byte, size bytes). Operations are malloc, calloc,
// realloc (growing, shrinking, to 0), free, free_sized, aligned allocation
// (posix_memalign, aligned_alloc, memalign, valloc) and usable-size checks,
// over 64 slots and sizes from 0 to 8 MiB. A shadow model remembers each
// live block's size and fill seed; every block is filled when it is handed
// out and checked against the model when it is freed or reallocated, so a
// block handed out twice, an overlap or a bad copy is found. At the end of
// each input every block is freed and libmallet's allocated count must be
// back where it started.
//
// Built with clang -fsanitize=fuzzer,address,undefined over libmallet's
// sources: libmallet then poisons freed blocks and the tail past each
// request through ASan (src/debug/track.h), so the fuzzer also sees any
// touch of memory libmallet considers free.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mallet.h"

enum { SLOTS = 64, LIVE_LIMIT = 96 << 20 };

typedef struct {
    unsigned char *p;      // the block, NULL when the slot is empty
    size_t size;           // bytes requested (what the model checks)
    size_t align;          // alignment asked for (16 when none)
    unsigned seed;         // fill pattern seed
} slot_t;

static slot_t slots[SLOTS];
static size_t live_bytes;    // sum of the live blocks' sizes
static unsigned next_seed = 1;

// Reads operands from the input; past its end, zeros.
typedef struct {
    const uint8_t *data;   // the input
    size_t size, pos;      // its length and the read position
} input_t;

static unsigned take(input_t *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

// A size from 0 to 8 MiB, most of them small: the first byte picks a range.
static size_t take_size(input_t *in)
{
    unsigned r = take(in);
    size_t v = take(in) | (size_t)take(in) << 8;
    switch (r % 8) {
    case 0: case 1: case 2: return v % 129;               // the 16-byte classes
    case 3: case 4:        return v % 4097;
    case 5:                return (v | (size_t)take(in) << 16) % (300 << 10);  // up to the largest class
    case 6:                return (256 << 10) - 32 + v % 64;                   // around the small/large edge
    default:               return (v | (size_t)take(in) << 16) % (8 << 20);    // large
    }
}

// The byte at offset i of a block filled with seed.
static inline unsigned char pattern(unsigned seed, size_t i)
{
    return (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

// Blocks above 64 KiB are filled at both ends and one byte per 16 KiB
// between: enough to see a block moved, overlapped or truncated, and it
// touches few pages (faulting in megabytes would cost more than the rest).
static inline size_t fill_step(size_t i, size_t n)
{
    return n <= 65536 || i < 4096 || i + 4096 >= n ? 1 : 16384 - (i & 16383);
}

// The fill and check loops carry no coverage instrumentation: they are the
// harness, not the code under test, and traced they were most of the time.
#define HARNESS __attribute__((no_sanitize("coverage")))

HARNESS static void fill(slot_t *s)
{
    for (size_t i = 0; i < s->size; i += fill_step(i, s->size))
        s->p[i] = pattern(s->seed, i);
}

// Check the first n bytes of s's block against the model.
HARNESS static void verify(const slot_t *s, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += fill_step(i, s->size)) {
        if (p[i] != pattern(s->seed, i)) {
            fprintf(stderr, "fuzz_alloc: block %p (%zu bytes) byte %zu is %u, model says %u\n",
                    (void *)p, s->size, i, p[i], pattern(s->seed, i));
            abort();
        }
    }
}

HARNESS static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += fill_step(i, n))
        if (p[i] != 0)
            return 0;
    return 1;
}

static void must(int ok, const char *what, const void *p, size_t n)
{
    if (!ok) {
        fprintf(stderr, "fuzz_alloc: %s (block %p, size %zu, errno %d)\n", what, p, n, errno);
        abort();
    }
}

// A new block in slot s: check what the API promises, fill it.
static void adopt(slot_t *s, void *p, size_t size, size_t align)
{
    must(p != NULL, "allocation failed", p, size);
    must(((uintptr_t)p & (align - 1)) == 0, "misaligned block", p, align);
    must(mallet_usable_size(p) >= size, "usable size below the request", p, size);
    s->p = p;
    s->size = size;
    s->align = align;
    s->seed = next_seed++;
    live_bytes += size;
    fill(s);
}

static void release(slot_t *s, int how)
{
    verify(s, s->p, s->size);
    if (how == 0)
        mallet_free(s->p);
    else if (how == 1)
        mallet_free_sized(s->p, s->size);
    else
        mallet_free_aligned_sized(s->p, s->align, s->size);
    live_bytes -= s->size;
    s->p = NULL;
}

static void op_realloc(slot_t *s, size_t size)
{
    if (size == 0) {
        verify(s, s->p, s->size);
        must(mallet_realloc(s->p, 0) == NULL, "realloc(p, 0) returned a block", s->p, 0);
        live_bytes -= s->size;
        s->p = NULL;
        return;
    }
    verify(s, s->p, s->size);
    unsigned char *q = mallet_realloc(s->p, size);
    must(q != NULL, "realloc failed", s->p, size);
    must(((uintptr_t)q & 15) == 0, "misaligned realloc", q, size);
    // Bytes past the old size were never written: check only the prefix,
    // with the sampling the old size used.
    verify(s, q, s->size < size ? s->size : size);
    must(mallet_usable_size(q) >= size, "usable size below the request", q, size);
    live_bytes += size;
    live_bytes -= s->size;
    s->p = q;
    s->size = size;
    s->align = 16;
    fill(s);
}

static void op_aligned(slot_t *s, input_t *in)
{
    unsigned how = take(in) % 4;
    size_t align = (size_t)1 << (take(in) % 23);       // 1 B .. 4 MiB
    size_t size = take_size(in);
    void *p = NULL;
    if (how == 0) {
        if (align < sizeof(void *))
            align = sizeof(void *);
        int e = errno;
        must(mallet_posix_memalign(&p, align, size) == 0, "posix_memalign failed", NULL, size);
        must(errno == e, "posix_memalign changed errno", p, size);
    } else if (how == 1) {
        p = mallet_aligned_alloc(align, size);
    } else if (how == 2) {
        p = mallet_memalign(align, size);
    } else {
        align = 4096;
        p = mallet_valloc(size);
    }
    adopt(s, p, size, align < 16 ? 16 : align);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = { data, size, 0 };
    mallet_stats_t before, after;
    mallet_stats_get(&before);
    while (in.pos < in.size) {
        unsigned op = take(&in);
        slot_t *s = &slots[take(&in) % SLOTS];
        if (s->p) {
            // The slot holds a block: the op frees, resizes or checks it.
            switch (op % 5) {
            case 0: release(s, 0); break;
            case 1: release(s, 1 + (op >> 7)); break;
            case 2: case 3: {
                size_t n = take_size(&in);
                if (live_bytes + n <= LIVE_LIMIT)
                    op_realloc(s, n);
                break;
            }
            default:
                must(mallet_usable_size(s->p) >= s->size, "usable size shrank", s->p, s->size);
                verify(s, s->p, s->size);
            }
            continue;
        }
        if (live_bytes > LIVE_LIMIT - (8 << 20))
            continue;
        switch (op % 4) {
        case 0: {
            size_t n = take_size(&in);
            adopt(s, mallet_malloc(n), n, 16);
            break;
        }
        case 1: {
            size_t n = take(&in) % 17, m = take_size(&in) / (n ? n : 1);
            unsigned char *p = mallet_calloc(n, m);
            must(p != NULL, "calloc failed", NULL, n * m);
            must(all_zero(p, n * m), "calloc block not zero", p, n * m);
            adopt(s, p, n * m, 16);
            break;
        }
        case 2: {
            size_t n = take_size(&in);
            adopt(s, mallet_realloc(NULL, n), n, 16);
            break;
        }
        default: op_aligned(s, &in);
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p)
            release(&slots[i], 0);
    mallet_stats_get(&after);
    must(after.allocated == before.allocated, "allocated bytes not back to start", NULL,
         (size_t)after.allocated);
    // Overflowing count * size must fail, never wrap.
    errno = 0;
    must(mallet_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "calloc overflow", NULL, 0);
    return 0;
}
