// SPDX-License-Identifier: MIT
//
// prof_report.c -- a heap profile as text: its totals, the top functions
// by estimated in-use bytes, and (at exit, or for a dump) the blocks still
// live grouped by call stack.
//
// Flat bytes go to the allocating function: the first frame of each stack,
// the function that called malloc (libmallet's own frames are not in the
// stacks). Cumulative bytes go to every function of the stack, once per
// stack however often it recurses. Stacks are grouped by their functions,
// not their addresses: two calls to malloc from one function are one line
// of the table and, with the same callers, one stack of the leak list.
// Every figure is an estimate (prof_read.c); byte columns are whole bytes,
// so the file is easy to check with awk.
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "prof.h"

#define TOP_FUNCS   20                // rows of the top table
#define LIVE_STACKS 50                // stacks listed in full; the rest are counted

static int cmp_func(const void *a, const void *b, void *prof)
{
    const prof_func_t *x = a, *y = b;
    const prof_t *p = prof;
    if (x->flat != y->flat)
        return x->flat < y->flat ? 1 : -1;
    if (x->cum != y->cum)
        return x->cum < y->cum ? 1 : -1;
    return strcmp(p->names[x->func], p->names[y->func]);
}

prof_func_t *prof_top(const prof_t *p, size_t *n)
{
    *n = 0;
    prof_func_t *f = calloc(p->n_names + 1, sizeof *f);
    size_t *seen = calloc(p->n_names + 1, sizeof *seen);   // the last record (+1) counted in cum
    if (!f || !seen) {
        free(f);
        free(seen);
        return NULL;
    }
    for (size_t r = 0; r < p->n_recs; r++) {
        const prof_record_t *rec = &p->recs[r];
        f[p->funcs[rec->first]].flat += rec->est_bytes;
        for (size_t i = rec->first; i < rec->first + rec->depth; i++) {
            uint32_t k = p->funcs[i];
            if (seen[k] != r + 1)
                f[k].cum += rec->est_bytes;
            seen[k] = r + 1;
        }
    }
    free(seen);
    for (size_t k = 0; k < p->n_names; k++) {
        if (f[k].cum > 0) {
            f[*n] = f[k];
            f[(*n)++].func = (uint32_t)k;
        }
    }
    qsort_r(f, *n, sizeof *f, cmp_func, (void *)p);
    return f;
}

static double share(double part, double whole)
{
    return whole > 0 ? 100 * part / whole : 0;
}

static bool write_top(const prof_t *p, FILE *f)
{
    size_t n;
    prof_func_t *top = prof_top(p, &n);
    if (!top && p->n_names)
        return false;
    fprintf(f, "top %d functions by estimated in-use bytes\n"
               "(flat: blocks the function allocated itself; cum: it and everything it called)\n\n",
            TOP_FUNCS);
    fprintf(f, "%14s %7s %7s %14s %7s  %s\n", "flat bytes", "flat%", "sum%", "cum bytes", "cum%", "function");
    double sum = 0;
    for (size_t i = 0; i < n && i < TOP_FUNCS; i++) {
        sum += top[i].flat;
        fprintf(f, "%14.0f %6.2f%% %6.2f%% %14.0f %6.2f%%  %s\n", top[i].flat, share(top[i].flat, p->est_bytes),
                share(sum, p->est_bytes), top[i].cum, share(top[i].cum, p->est_bytes), p->names[top[i].func]);
    }
    // The rest, by difference: rounding may leave a hair below zero.
    if (n > TOP_FUNCS)
        fprintf(f, "(%zu more functions, %.0f bytes)\n", n - TOP_FUNCS,
                p->est_bytes > sum ? p->est_bytes - sum : 0.0);
    free(top);
    return true;
}

// A group of records with the same functions on their stacks.
typedef struct stack_group {
    size_t rec;                       // its first record (the stack shown)
    double bytes, blocks;             // estimated in use, summed over its records
} stack_group_t;

static int cmp_stack(const void *a, const void *b, void *prof)
{
    const prof_t *p = prof;
    const prof_record_t *x = &p->recs[*(const size_t *)a], *y = &p->recs[*(const size_t *)b];
    for (size_t i = 0; i < x->depth && i < y->depth; i++) {
        uint32_t fx = p->funcs[x->first + i], fy = p->funcs[y->first + i];
        if (fx != fy)
            return (fx > fy) - (fx < fy);
    }
    return (x->depth > y->depth) - (x->depth < y->depth);
}

static int cmp_group(const void *a, const void *b)
{
    const stack_group_t *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return (x->rec > y->rec) - (x->rec < y->rec);
}

static bool write_stacks(const prof_t *p, const char *heading, FILE *f)
{
    size_t *order = malloc((p->n_recs + 1) * sizeof *order);
    stack_group_t *g = malloc((p->n_recs + 1) * sizeof *g);
    if (!order || !g) {
        free(order);
        free(g);
        return false;
    }
    size_t n = 0, n_groups = 0;
    for (size_t r = 0; r < p->n_recs; r++)
        if (p->recs[r].live_n)
            order[n++] = r;
    qsort_r(order, n, sizeof *order, cmp_stack, (void *)p);
    for (size_t i = 0; i < n; i++) {
        const prof_record_t *rec = &p->recs[order[i]];
        if (!n_groups || cmp_stack(&order[i], &g[n_groups - 1].rec, (void *)p))
            g[n_groups++] = (stack_group_t){ .rec = order[i] };
        g[n_groups - 1].bytes += rec->est_bytes;
        g[n_groups - 1].blocks += rec->est_n;
    }
    qsort(g, n_groups, sizeof *g, cmp_group);
    fprintf(f, "\n%s\n", heading);
    if (!n_groups)
        fprintf(f, "    none\n");
    double rest = 0;
    for (size_t i = 0; i < n_groups; i++) {
        if (i >= LIVE_STACKS) {
            rest += g[i].bytes;
            continue;
        }
        const prof_record_t *rec = &p->recs[g[i].rec];
        fprintf(f, "\n%14.0f bytes in %.0f blocks (%.2f%%)\n", g[i].bytes, g[i].blocks,
                share(g[i].bytes, p->est_bytes));
        for (size_t k = rec->first; k < rec->first + rec->depth; k++)
            fprintf(f, "        %s\n", p->names[p->funcs[k]]);
    }
    if (n_groups > LIVE_STACKS)
        fprintf(f, "\n(%zu more stacks, %.0f bytes)\n", n_groups - LIVE_STACKS, rest);
    free(order);
    free(g);
    return true;
}

bool prof_write_text(const prof_t *p, report_kind_t kind, FILE *f)
{
    char a[32], b[32];
    fprintf(f, "heap profile %s\n", p->path);
    fprintf(f, "estimated in use: %.0f bytes (%s) in %.0f blocks\n", p->est_bytes,
            tool_human((uint64_t)p->est_bytes, a, sizeof a), p->est_n);
    fprintf(f, "sampled: %llu blocks, %llu bytes in use; one sample per %s allocated on average\n",
            (unsigned long long)p->live_n, (unsigned long long)p->live_bytes, tool_human(p->rate, b, sizeof b));
    fprintf(f, "(each sampled record of blocks of SIZE bytes counts 1 / (1 - exp(-SIZE / %llu)) times,"
               " as google-pprof counts heap_v2)\n\n",
            (unsigned long long)p->rate);
    if (!write_top(p, f))
        return false;
    if (kind == REPORT_EXIT
        && !write_stacks(p, "possible leaks: blocks still live at exit, by call stack (outermost last)", f))
        return false;
    if (kind == REPORT_SNAPSHOT && !write_stacks(p, "blocks live when the profile was written, by call stack"
                                                    " (outermost last)", f))
        return false;
    return !ferror(f);
}
