// SPDX-License-Identifier: MIT
//
// tools_symbolize_prog.c -- a program that prints a stack of its own in
// the frame format of libmallet's reports, for tests/tools_symbolize.sh
// (compiled -g -O0 and linked with tools_symbolize_lib.c):
//     #0 0xADDR ?? (MODULE+0xVADDR)
// with every function `??`, for `mallet symbolize` to name. Frame #0 is
// the first byte of leaf, the others are return addresses: into leaf
// (its call of report), into lib_call in the library, into main. The
// lines the test expects carry a "line: NAME" comment. Each module and
// ELF address come from the loader (dl_iterate_phdr): the address less
// the module's load bias, in the main program and the library alike.
// Modes (argv[1]):
//   stdout        the frames to stdout
//   stderr [N]    to stderr, a line of text before and after, then exit N
//   abort         to stderr, then abort()
#define _GNU_SOURCE
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lib_call(void (*fn)(void *ret));

static FILE *out;

typedef struct lookup {
    uintptr_t pc;                     // the address looked for
    const char *module;               // the module holding it ("" for the program)
    uintptr_t bias;                   // that module's load bias
} lookup_t;

static int find_module(struct dl_phdr_info *info, size_t size, void *data)
{
    lookup_t *q = data;
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && q->pc - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz) {
            q->module = info->dlpi_name;
            q->bias = info->dlpi_addr;
            return 1;
        }
    }
    return 0;
}

static void frame(int n, void *pc)
{
    lookup_t q = { .pc = (uintptr_t)pc };
    char path[PATH_MAX];
    if (!dl_iterate_phdr(find_module, &q) || !realpath(*q.module ? q.module : "/proc/self/exe", path)) {
        fprintf(out, "    #%d %p ?? (?\?)\n", n, pc);
        return;
    }
    fprintf(out, "    #%d %p ?? (%s+0x%lx)\n", n, pc, path, (unsigned long)(q.pc - q.bias));
}

__attribute__((noinline)) static void report(void *leaf_ret, void *lib_ret);

__attribute__((noinline)) static void leaf(void *lib_ret) { // line: leaf
    report(__builtin_return_address(0), lib_ret); // line: call-report
}

__attribute__((noinline)) static void report(void *leaf_ret, void *lib_ret)
{
    fprintf(out, "a report of this program's stack:\n");
    frame(0, (void *)leaf);
    frame(1, __builtin_return_address(0));
    frame(2, leaf_ret);
    frame(3, lib_ret);
    fflush(out);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "stdout";
    out = strcmp(mode, "stdout") ? stderr : stdout;
    lib_call(leaf); // line: call-lib
    fprintf(out, "the end of the report\n");
    if (!strcmp(mode, "abort"))
        abort();
    return argc > 2 ? atoi(argv[2]) : 0;
}
