// SPDX-License-Identifier: MIT
//
// tools_prof_prog.c -- a program whose allocations come from known
// functions, for tests/tools_profile.sh (compiled -O1 -fno-inline, each
// function a frame of its own, and linked with tools_prof_lib.c). Modes:
//   maps   print /proc/self/maps: the test writes profiles by hand around
//          it, with return addresses from `nm` of the program and library
//   run    keep known amounts live: 8 MiB from alloc_big (via make_tree),
//          256 KiB from alloc_small, 1 MiB from lib_alloc; then free all
//          but alloc_small's, which leak
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *lib_alloc(size_t n);

// Not code: a return address in here has no function (the test's "[file]+0x" case).
const char prof_table[4096] = "a read-only table";

static void *volatile sink;           // keeps every block observable

__attribute__((noinline)) void *alloc_big(size_t n)
{
    return memset(malloc(n), 1, n);
}

__attribute__((noinline)) void *alloc_small(size_t n)
{
    return malloc(n);
}

// A name too long for its box in the flame graph: the label is cut.
__attribute__((noinline)) void *allocate_with_a_name_far_too_long_for_a_narrow_box_in_the_graph(size_t n)
{
    return malloc(n);
}

__attribute__((noinline)) void **make_tree(int n)
{
    void **v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = alloc_big(1 << 20);
    return v;
}

static int print_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f))
        fputs(line, stdout);
    return f ? fclose(f) : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "maps"))
        return print_maps();
    if (argc < 2 || strcmp(argv[1], "run")) {
        fprintf(stderr, "usage: %s maps|run\n", argv[0]);
        return 2;
    }
    void **tree = make_tree(8);
    void *small[256];
    for (int i = 0; i < 256; i++)
        small[i] = alloc_small(1024);
    void *lib = lib_alloc(1 << 20);
    sink = allocate_with_a_name_far_too_long_for_a_narrow_box_in_the_graph(64);
    free((void *)sink);
    for (int i = 0; i < 8; i++)
        free(tree[i]);
    free(tree);
    free(lib);
    sink = small;
    return 0;
}
