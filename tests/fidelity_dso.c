// SPDX-License-Identifier: MIT
//
// fidelity_dso.c -- a library that tests/override_fidelity.c opens and
// closes with dlopen/dlclose, over and over: it allocates in its
// constructor and frees in its destructor, makes blocks that the program
// frees and frees blocks that the program made. It links no allocator: its
// malloc is the program's (libmallet's, or glibc's in the .glibc build).
#include <stdlib.h>
#include <string.h>

#define DSO_API __attribute__((visibility("default")))

enum { KEPT = 48 };

static unsigned char *kept[KEPT];   // made by the constructor, freed by the destructor
static size_t kept_len[KEPT];       // their lengths
static int loads;                   // constructor runs in this copy of the library
static long *report;                // the program's tally: [0] blocks freed whole, [1] damaged

// The same pattern as the program's: byte i of a block is seed + 7 i.
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int whole(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

// Small, page-sized and large blocks, made the ways a library makes them.
__attribute__((constructor)) static void dso_load(void)
{
    loads++;
    for (unsigned i = 0; i < KEPT; i++) {
        size_t n = i % 8 == 7 ? 200000 + i * 1000 : 8 + i * i * 13;
        unsigned char *p;
        if (i % 3 == 0) {
            p = calloc(1, n);
            if (p && p[n - 1] != 0)
                p = NULL;
        } else if (i % 3 == 1) {
            p = malloc(n / 2 + 1);
            unsigned char *q = p ? realloc(p, n) : NULL;
            if (q == NULL)
                free(p);
            p = q;
        } else if (posix_memalign((void **)&p, 64, n) != 0) {
            p = NULL;
        }
        if (p)
            fill(p, n, i);
        kept[i] = p;
        kept_len[i] = n;
    }
}

__attribute__((destructor)) static void dso_unload(void)
{
    for (unsigned i = 0; i < KEPT; i++) {
        if (report)
            report[kept[i] && whole(kept[i], kept_len[i], i) ? 0 : 1]++;
        free(kept[i]);
    }
}

// Constructor runs in this copy: 1 when each dlopen loads it anew.
DSO_API int fidelity_dso_loads(void)
{
    return loads;
}

// Where the destructor counts the blocks it frees.
DSO_API void fidelity_dso_report_to(long *tally)
{
    report = tally;
}

// A block for the program to free, filled with seed's pattern.
DSO_API void *fidelity_dso_make(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    if (p)
        fill(p, n, seed);
    return p;
}

// Free a block the program made; 1 when it was whole.
DSO_API int fidelity_dso_take(void *p, size_t n, unsigned seed)
{
    int ok = p && whole(p, n, seed);
    free(p);
    return ok;
}

// A copy of s in a block of the library's making.
DSO_API char *fidelity_dso_strdup(const char *s)
{
    return strdup(s);
}
