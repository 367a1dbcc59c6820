// SPDX-License-Identifier: MIT
//
// violation.c -- one heap violation per run, for measuring what an allocator
// notices: `violation NAME` commits the violation NAME and exits 0 when it
// ran to its end unnoticed; `violation --list` prints every NAME.
//
// The program links no allocator: the malloc it calls is libc's or the one
// LD_PRELOAD supplies, so the same binary measures every allocator.
// tests/violations.sh runs it and sorts each run into report (SIGABRT and a
// message), fault (SIGSEGV or SIGBUS), erased, missed (exit 0).
//
// `violation uaf-write-at SIZE OFFSET reuse|once` is the write after free
// of a block of SIZE bytes at OFFSET, for violations.sh's sweep over the
// small classes.
//
// Exit codes: 0 ran to the end; 3 a read after free found the old data gone
// (erased; 0 with "leaked" on stdout when it was still there); 2 bad usage.
//
// Sizes: a small block is 64 bytes (room for byte 40, past the first 32
// bytes some allocators fill on free); a large block is 1 MiB, above the
// small classes of every allocator measured (and glibc's mmap threshold).
//
// Every pointer a violation uses goes through opaque(), so the compiler
// cannot prove the misuse and drop or rewrite it.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SMALL 64
#define LARGE (1 << 20)
#define REUSE_TRIES 100000   // allocations of the freed block's size before giving up on it

#define EXIT_ERASED 3

// The compiler sees p escape and come back as an unknown value.
static void *opaque(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

static char *alloc(size_t n)
{
    return opaque(malloc(n));
}

static void flip(char *p, size_t at)
{
    ((volatile char *)p)[at] ^= 1;
}

// --- double free -------------------------------------------------------------

static int double_free(size_t n)
{
    char *p = alloc(n);
    free(opaque(p));
    free(opaque(p));
    return 0;
}

// Other blocks of the same size are freed between the two frees, so the
// block is no longer the newest free one.
static int double_free_delayed(size_t n)
{
    char *p = alloc(n);
    char *others[4];
    for (int i = 0; i < 4; i++)
        others[i] = alloc(n);
    free(opaque(p));
    for (int i = 0; i < 4; i++)
        free(others[i]);
    free(opaque(p));
    return 0;
}

static int double_free_small(void) { return double_free(SMALL); }
static int double_free_large(void) { return double_free(LARGE); }
static int double_free_small_delayed(void) { return double_free_delayed(SMALL); }
static int double_free_large_delayed(void) { return double_free_delayed(LARGE); }

// --- invalid free ------------------------------------------------------------

static char a_global[256];

static int free_interior_small(void)
{
    char *p = alloc(SMALL);
    free(opaque(p + 16));
    return 0;
}

// One OS page in: page-aligned, as a large block's start would be.
static int free_interior_large(void)
{
    char *p = alloc(LARGE);
    free(opaque(p + 4096));
    return 0;
}

static int free_stack(void)
{
    char buf[256];
    memset(opaque(buf), 0, sizeof buf);
    free(opaque(buf + 16));
    return 0;
}

static int free_global(void)
{
    free(opaque(a_global + 16));
    return 0;
}

static int free_foreign_mmap(void)
{
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 2;
    free(opaque(m + 65536));
    return 0;
}

// 16-byte aligned, in the user half of the address space, mapped by nothing.
static int free_wild(void)
{
    free(opaque((void *)(uintptr_t)0x123456789ab0));
    return 0;
}

// --- overflow past malloc_usable_size ----------------------------------------

// Write byte usable + past of a block of n bytes, then free the block.
static int overflow(size_t n, size_t past)
{
    char *p = alloc(n);
    flip(p, malloc_usable_size(p) + past);
    free(opaque(p));
    return 0;
}

static int overflow_small_1(void) { return overflow(8, 0); }
static int overflow_small_8(void) { return overflow(8, 7); }
static int overflow_large_1(void) { return overflow(LARGE, 0); }
static int overflow_large_8(void) { return overflow(LARGE, 7); }

// --- write after free --------------------------------------------------------

// Free a block of n bytes and change byte `at` (SIZE_MAX: its last usable
// byte). With reuse, allocate blocks of its size until it comes back (or
// REUSE_TRIES times), then free them all: the allocator gets every chance
// to check the freed block.
static int write_after_free(size_t n_bytes, size_t at, int reuse)
{
    char **got = reuse ? malloc(REUSE_TRIES * sizeof *got) : NULL;
    if (reuse && !got)
        return 2;
    char *p = alloc(n_bytes);
    if (at == SIZE_MAX)
        at = malloc_usable_size(p) - 1;
    free(opaque(p));
    flip(p, at);
    if (!reuse)
        return 0;
    int n = 0;
    while (n < REUSE_TRIES) {
        got[n] = alloc(n_bytes);
        if (got[n++] == p)
            break;
    }
    if (got[n - 1] == p)
        printf("the freed block came back after %d allocations\n", n);
    else
        printf("the freed block did not come back in %d allocations\n", n);
    for (int i = 0; i < n; i++)
        free(got[i]);
    free(got);
    return 0;
}

static int uaf_write_small_0(void) { return write_after_free(SMALL, 0, 0); }
static int uaf_write_small_40(void) { return write_after_free(SMALL, 40, 0); }
static int uaf_write_small_last(void) { return write_after_free(SMALL, SIZE_MAX, 0); }
static int uaf_write_small_0_reuse(void) { return write_after_free(SMALL, 0, 1); }
static int uaf_write_small_40_reuse(void) { return write_after_free(SMALL, 40, 1); }
static int uaf_write_small_last_reuse(void) { return write_after_free(SMALL, SIZE_MAX, 1); }
// Byte 65 of 128: past the first 64 bytes that allocators which fill only
// a block's ends cover, before the last 64.
static int uaf_write_128_at_65(void) { return write_after_free(128, 65, 0); }
static int uaf_write_128_at_65_reuse(void) { return write_after_free(128, 65, 1); }

// Free a large block and change a byte in its middle; with reuse, allocate
// and free one block of its size afterwards.
static int write_after_free_large(int reuse)
{
    char *p = alloc(LARGE);
    free(opaque(p));
    flip(p, LARGE / 2);
    if (reuse)
        free(alloc(LARGE));
    return 0;
}

static int uaf_write_large(void) { return write_after_free_large(0); }
static int uaf_write_large_reuse(void) { return write_after_free_large(1); }

// Free a large block, allocate one of its size and keep it live, then write
// into the middle of the freed one: where the allocator handed the freed
// range straight back, the write lands in the live block, unnoticed.
static int uaf_write_large_reused(void)
{
    char *p = alloc(LARGE);
    free(opaque(p));
    char *q = alloc(LARGE);
    printf("the live block %s the freed one\n", q == p ? "is" : "is not");
    fflush(stdout);
    flip(p, LARGE / 2);
    free(opaque(q));
    return 0;
}

// --- read after free ---------------------------------------------------------

// The byte at i of a block written by read_after_free: no allocator fill
// pattern is a run of such bytes.
static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)(0x5a ^ (i * 37) ^ (i >> 8));
}

// Write a pattern over a block of n bytes, free it, read it back. Leaked
// when any aligned 8-byte word of the pattern is still there.
static int read_after_free(size_t n)
{
    unsigned char *p = (unsigned char *)alloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_byte(i);
    free(opaque(p));
    volatile unsigned char *v = opaque(p);
    size_t words = 0, kept = 0;
    for (size_t w = 0; w + 8 <= n; w += 8) {
        int same = 1;
        for (size_t i = w; i < w + 8; i++)
            same &= v[i] == pattern_byte(i);
        words++;
        kept += (size_t)same;
    }
    printf("%s: %zu of %zu words of the freed block still readable\n",
           kept ? "leaked" : "erased", kept, words);
    return kept ? 0 : EXIT_ERASED;
}

static int uaf_read_small(void) { return read_after_free(SMALL); }
static int uaf_read_512(void) { return read_after_free(512); }
static int uaf_read_large(void) { return read_after_free(LARGE); }

// --- zero-size blocks and freed pointers in other calls ----------------------

static int zero_size_read(void)
{
    char *p = alloc(0);
    char c = *(volatile char *)p;
    opaque(&c);
    free(opaque(p));
    return 0;
}

static int zero_size_write(void)
{
    char *p = alloc(0);
    *(volatile char *)p = 1;
    free(opaque(p));
    return 0;
}

static int usable_size_freed(void)
{
    char *p = alloc(SMALL);
    free(opaque(p));
    size_t n = malloc_usable_size(opaque(p));
    opaque(&n);
    return 0;
}

static int realloc_freed(void)
{
    char *p = alloc(SMALL);
    free(opaque(p));
    free(realloc(opaque(p), 2 * SMALL));
    return 0;
}

// --- the list ----------------------------------------------------------------

static const struct {
    const char *name;   // what `violation NAME` runs
    int (*run)(void);   // the violation; returns the exit code
} violations[] = {
    {"double-free-small", double_free_small},
    {"double-free-large", double_free_large},
    {"double-free-small-delayed", double_free_small_delayed},
    {"double-free-large-delayed", double_free_large_delayed},
    {"free-interior-small", free_interior_small},
    {"free-interior-large", free_interior_large},
    {"free-stack", free_stack},
    {"free-global", free_global},
    {"free-foreign-mmap", free_foreign_mmap},
    {"free-wild", free_wild},
    {"overflow-small-1", overflow_small_1},
    {"overflow-small-8", overflow_small_8},
    {"overflow-large-1", overflow_large_1},
    {"overflow-large-8", overflow_large_8},
    {"uaf-write-small-0", uaf_write_small_0},
    {"uaf-write-small-40", uaf_write_small_40},
    {"uaf-write-small-last", uaf_write_small_last},
    {"uaf-write-small-0-reuse", uaf_write_small_0_reuse},
    {"uaf-write-small-40-reuse", uaf_write_small_40_reuse},
    {"uaf-write-small-last-reuse", uaf_write_small_last_reuse},
    {"uaf-write-128-at-65", uaf_write_128_at_65},
    {"uaf-write-128-at-65-reuse", uaf_write_128_at_65_reuse},
    {"uaf-write-large", uaf_write_large},
    {"uaf-write-large-reuse", uaf_write_large_reuse},
    {"uaf-write-large-reused", uaf_write_large_reused},
    {"uaf-read-small", uaf_read_small},
    {"uaf-read-512", uaf_read_512},
    {"uaf-read-large", uaf_read_large},
    {"zero-size-read", zero_size_read},
    {"zero-size-write", zero_size_write},
    {"usable-size-freed", usable_size_freed},
    {"realloc-freed", realloc_freed},
};

int main(int argc, char **argv)
{
    size_t count = sizeof violations / sizeof violations[0];
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < count; i++)
            puts(violations[i].name);
        return 0;
    }
    // The sweep's form (violations.sh): a write after free of a block of
    // SIZE bytes at OFFSET, with or without reuse.
    if (argc == 5 && strcmp(argv[1], "uaf-write-at") == 0) {
        size_t n = strtoul(argv[2], NULL, 10), at = strtoul(argv[3], NULL, 10);
        if (n == 0 || at >= n)
            return 2;
        int code = write_after_free(n, at, strcmp(argv[4], "reuse") == 0);
        fflush(stdout);
        return code;
    }
    for (size_t i = 0; argc == 2 && i < count; i++) {
        if (strcmp(argv[1], violations[i].name) == 0) {
            int code = violations[i].run();
            fflush(stdout);
            return code;
        }
    }
    fprintf(stderr, "usage: violation NAME | --list | uaf-write-at SIZE OFFSET reuse|once\n");
    return 2;
}
