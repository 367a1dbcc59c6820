// SPDX-License-Identifier: MIT
//
// debug.h -- assertion levels and the error reporter.
//
// Levels, chosen with `make DEBUG=N` (MALLET_DEBUG=N):
//   0  release: only the checks that guard against heap corruption, which
//      are written as plain `if` + mallet__fatal and stay on in every build.
//   1  mallet_assert: cheap internal invariants.
//   2  mallet_assert_internal: invariants that cost a little on hot paths.
//   3  mallet_assert_expensive: heap walks and full list checks.
//
// The reporter never allocates: it formats into a stack buffer and writes
// one line with write(2), then aborts. It is safe in a signal handler, in a
// forked child, and while the allocator's own locks are held.
#ifndef MALLET_DEBUG_DEBUG_H
#define MALLET_DEBUG_DEBUG_H

#include <stddef.h>
#include <stdint.h>

#ifndef MALLET_DEBUG
#define MALLET_DEBUG 0
#endif

#define MALLET_COLD     __attribute__((cold, noinline))
#define MALLET_NORETURN __attribute__((noreturn))
#define likely(x)       __builtin_expect(!!(x), 1)
#define unlikely(x)     __builtin_expect(!!(x), 0)

// "WHO: FUNC(): WHAT 0xADDR\n" on stderr, then the stack of the call that
// found it (when mallet__report_stack is set), then abort().
MALLET_NORETURN MALLET_COLD
void mallet__fatal(const char *who, const char *func, const char *what, const void *addr);

// Writes the calling program's stack to fd, for mallet__fatal. Set by the
// allocator that owns the unwinder (libmallet's start-up); NULL leaves the
// report at its one line.
extern void (*mallet__report_stack)(int fd);

// The frames pc[0 .. n) to fd, one line each, numbered from 0:
// "    #N 0xADDR FUNCTION+0xOFF (MODULE+0xVADDR)" (frames.c).
void mallet__frames_write(int fd, const uintptr_t *pc, unsigned n);

// Assertion failure: "mallet: assertion failed: EXPR at FILE:LINE".
MALLET_NORETURN MALLET_COLD
void mallet__assert_fail(const char *expr, const char *file, int line);

#define mallet__check(level, expr) \
    ((MALLET_DEBUG >= (level) && !(expr)) ? mallet__assert_fail(#expr, __FILE__, __LINE__) : (void)0)
#define mallet_assert(expr)           mallet__check(1, expr)
#define mallet_assert_internal(expr)  mallet__check(2, expr)
#define mallet_assert_expensive(expr) mallet__check(3, expr)

// A fixed buffer that formats text without allocating, for messages and
// the stats summary. Output past the end is dropped, never overrun.
typedef struct mallet_buf {
    char *p;     // start of storage
    size_t cap;  // its size
    size_t len;  // bytes used
} mallet_buf_t;

void mallet__buf_str(mallet_buf_t *b, const char *s);
void mallet__buf_u64(mallet_buf_t *b, uint64_t v);
void mallet__buf_hex(mallet_buf_t *b, uintptr_t v);
// Right-align v in a field `width` wide.
void mallet__buf_u64w(mallet_buf_t *b, uint64_t v, int width);
// Write the buffer to fd in full (retrying short writes) and empty it.
void mallet__buf_flush(mallet_buf_t *b, int fd);

// The checkers' hooks (ASan, Valgrind), for the layers above.
#include "track.h"

#endif
