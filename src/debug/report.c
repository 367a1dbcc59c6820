// SPDX-License-Identifier: MIT
//
// report.c -- error lines and text formatting that never allocate.
// Used on failure paths, so it touches no allocator state, no stdio and no
// locale: a stack buffer, write(2), abort().
#include "debug.h"

#include <stdlib.h>
#include <unistd.h>

void mallet__buf_str(mallet_buf_t *b, const char *s)
{
    while (*s && b->len < b->cap)
        b->p[b->len++] = *s++;
}

void mallet__buf_u64w(mallet_buf_t *b, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = n; i < width && b->len < b->cap; i++)
        b->p[b->len++] = ' ';
    while (n > 0 && b->len < b->cap)
        b->p[b->len++] = tmp[--n];
}

void mallet__buf_u64(mallet_buf_t *b, uint64_t v)
{
    mallet__buf_u64w(b, v, 0);
}

void mallet__buf_hex(mallet_buf_t *b, uintptr_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[2 * sizeof v];
    int n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    mallet__buf_str(b, "0x");
    while (n > 0 && b->len < b->cap)
        b->p[b->len++] = tmp[--n];
}

void mallet__buf_flush(mallet_buf_t *b, int fd)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->p + off, b->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    b->len = 0;
}

void (*mallet__report_stack)(int fd);

void mallet__fatal(const char *who, const char *func, const char *what, const void *addr)
{
    char store[256];
    mallet_buf_t b = { store, sizeof store, 0 };
    mallet__buf_str(&b, who);
    mallet__buf_str(&b, ": ");
    mallet__buf_str(&b, func);
    mallet__buf_str(&b, "(): ");
    mallet__buf_str(&b, what);
    mallet__buf_str(&b, " ");
    mallet__buf_hex(&b, (uintptr_t)addr);
    mallet__buf_str(&b, "\n");
    mallet__buf_flush(&b, 2);
    if (mallet__report_stack)
        mallet__report_stack(2);
    abort();
}

void mallet__assert_fail(const char *expr, const char *file, int line)
{
    char store[512];
    mallet_buf_t b = { store, sizeof store, 0 };
    mallet__buf_str(&b, "mallet: assertion failed: ");
    mallet__buf_str(&b, expr);
    mallet__buf_str(&b, " at ");
    mallet__buf_str(&b, file);
    mallet__buf_str(&b, ":");
    mallet__buf_u64(&b, (uint64_t)line);
    mallet__buf_str(&b, "\n");
    mallet__buf_flush(&b, 2);
    abort();
}
