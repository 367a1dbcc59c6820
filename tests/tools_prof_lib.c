// SPDX-License-Identifier: MIT
//
// tools_prof_lib.c -- a shared library with one exported allocating
// function and one local one, for tests/tools_profile.sh: once the library
// is stripped, the exported name is still found (in .dynsym) and the local
// one is not (its frames show as "[file]+0xADDR").
#include <stdlib.h>

__attribute__((noinline)) static void *lib_local_alloc(size_t n)
{
    return malloc(n);
}

__attribute__((noinline)) void *lib_alloc(size_t n)
{
    return n > 1 ? lib_local_alloc(n) : malloc(n);
}
