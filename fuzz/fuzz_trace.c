// SPDX-License-Identifier: MIT
//
// fuzz_trace.c -- libFuzzer target for the trace parser (tools/tracefile.c).
//
// The input is a trace file's text. It is handed to trace_load() as a file
// (an in-memory file from memfd_create, opened through /proc/self/fd), so
// the parser runs exactly as `mallet replay` runs it. A trace it accepts
// must keep the promises replay relies on, and they are checked here: the
// ops count matches the header, every id is below n_ids (or is the free of
// NULL), ids are allocated (or realloc'd from NULL) before they are freed,
// never allocated twice, and every thread number is below n_threads.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tools.h"

static void must(int ok, const char *what, uint64_t i)
{
    if (!ok) {
        fprintf(stderr, "fuzz_trace: accepted trace breaks a promise: %s (op %llu)\n", what,
                (unsigned long long)i);
        abort();
    }
}

// The ops of an accepted trace, replayed against a bitmap of live ids.
static void check_trace(const trace_t *t)
{
    must(t->n_ids <= UINT32_MAX, "ids fit in 32 bits", 0);
    size_t bytes = (size_t)(t->n_ids / 8 + 1);
    uint8_t *live = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (live == MAP_FAILED)
        return;
    for (uint64_t i = 0; i < t->n_ops; i++) {
        const trace_op_t *op = &t->ops[i];
        must(op->thread < t->n_threads, "thread below n_threads", i);
        if (op->id == TRACE_NULL_ID) {
            must(op->kind == OP_FREE, "only a free has no block", i);
            continue;
        }
        must(op->id < t->n_ids, "id in range", i);
        int is_live = live[op->id / 8] >> (op->id % 8) & 1;
        if (op->kind != OP_REALLOC)
            must(op->kind == OP_ALLOC ? !is_live : is_live, "ids used in order", i);
        must(op->size < (1ull << 48), "size below 2^47", i);
        if (op->kind != OP_FREE)
            live[op->id / 8] |= (uint8_t)(1u << (op->id % 8));
        else if (op->kind == OP_FREE)
            live[op->id / 8] &= (uint8_t)~(1u << (op->id % 8));
    }
    munmap(live, bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("trace", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    trace_t t;
    if (trace_load(path, &t)) {
        check_trace(&t);
        trace_free(&t);
    }
    return 0;
}
