// SPDX-License-Identifier: MIT
//
// prof_read.c -- reading a heap profile (src/prof/prof_dump.c) into a prof_t:
// the header, the records, MAPPED_LIBRARIES; then the estimates and the
// name of every pc's function.
//
//     heap profile:    N1:   B1 [   N2:   B2] @ heap_v2/RATE
//         n1:   b1 [   n2:   b2] @ 0xPC 0xPC ...      one record per line
//     <blank line>
//     MAPPED_LIBRARIES:
//     start-end perms offset dev inode path            /proc/PID/maps, verbatim
//
// The reader is strict about the shape of each line (a file that breaks
// the contract is named with its line, not half drawn) and lenient where
// google-pprof is: a header whose sums disagree with the records is only
// warned about (the records are what is drawn), and a file without
// MAPPED_LIBRARIES is read with every frame left as an address.
//
// Estimates: a sampled record of blocks of `size` bytes stands for
// 1 / (1 - exp(-size / RATE)) times as many (the chance that a block of
// that size is sampled is 1 - exp(-size / RATE)), as google-pprof scales
// heap_v2 records; so the totals here and pprof's agree.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prof.h"

#define MAX_FIGURE (1ull << 62)       // larger counts or byte sums are surely not a profile's

typedef struct reader {
    const char *verb;                 // for messages
    const char *path;                 // the file
    unsigned long line;               // number of the line being parsed
    const char *s;                    // parse position in it
    const char *text;                 // the whole line, for messages
} reader_t;

double prof_scale(uint64_t size, uint64_t rate)
{
    if (rate == 0 || size == 0)
        return 1;
    return 1 / (1 - exp(-(double)size / (double)rate));
}

static bool fail(reader_t *r, const char *expected)
{
    fprintf(stderr, "%s: %s:%lu: expected %s, found '%.60s'\n", r->verb, r->path, r->line, expected, r->text);
    return false;
}

static void skip_spaces(reader_t *r)
{
    while (*r->s == ' ' || *r->s == '\t')
        r->s++;
}

// The literal word at the parse position (after blanks); true and past it when there.
static bool word(reader_t *r, const char *w)
{
    skip_spaces(r);
    size_t n = strlen(w);
    if (strncmp(r->s, w, n))
        return false;
    r->s += n;
    return true;
}

static bool number(reader_t *r, int base, uint64_t *v)
{
    skip_spaces(r);
    if (!isxdigit((unsigned char)*r->s))
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(r->s, &end, base);
    if (errno || end == r->s || x > MAX_FIGURE)
        return false;
    r->s = end;
    *v = x;
    return true;
}

// "N: B [N: B] @" -- the figures of the header and of every record.
static bool figures(reader_t *r, uint64_t v[4])
{
    return number(r, 10, &v[0]) && word(r, ":") && number(r, 10, &v[1]) && word(r, "[")
        && number(r, 10, &v[2]) && word(r, ":") && number(r, 10, &v[3]) && word(r, "]") && word(r, "@");
}

static bool push(void **arr, size_t *n, size_t *cap, size_t size)
{
    if (*n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 64;
    void *a = realloc(*arr, c * size);
    if (!a)
        return false;
    *arr = a;
    *cap = c;
    return true;
}

static bool parse_header(reader_t *r, prof_t *p, uint64_t head[4])
{
    if (!word(r, "heap profile:") || !figures(r, head))
        return fail(r, "the header 'heap profile: N: B [N: B] @ heap_v2/RATE'");
    if (!word(r, "heap_v2/") || !number(r, 10, &p->rate) || (skip_spaces(r), *r->s))
        return fail(r, "a heap_v2 profile ('@ heap_v2/RATE', version 2 sampling)");
    return true;
}

static bool parse_record(reader_t *r, prof_t *p, size_t *cap_recs, size_t *cap_pcs)
{
    uint64_t v[4];
    if (!figures(r, v))
        return fail(r, "a record 'n: b [n: b] @ 0xPC ...' or a blank line");
    if (!push((void **)&p->recs, &p->n_recs, cap_recs, sizeof *p->recs))
        return fail(r, "memory for the records (out of memory)");
    prof_record_t *rec = &p->recs[p->n_recs];
    *rec = (prof_record_t){ .live_n = v[0], .live_bytes = v[1], .alloc_n = v[2], .alloc_bytes = v[3],
                            .first = p->n_pcs };
    for (;;) {
        skip_spaces(r);
        if (!*r->s)
            break;
        uint64_t pc;
        if (!word(r, "0x") || !number(r, 16, &pc) || (*r->s && *r->s != ' ' && *r->s != '\t'))
            return fail(r, "a stack of return addresses '0x...'");
        if (!push((void **)&p->pcs, &p->n_pcs, cap_pcs, sizeof *p->pcs))
            return fail(r, "memory for the stacks (out of memory)");
        p->pcs[p->n_pcs++] = pc;
    }
    rec->depth = p->n_pcs - rec->first;
    if (rec->depth == 0)
        return fail(r, "a stack of return addresses after '@'");
    if (rec->live_n) {
        double scale = prof_scale(rec->live_bytes / rec->live_n, p->rate);
        rec->est_n = (double)rec->live_n * scale;
        rec->est_bytes = (double)rec->live_bytes * scale;
    }
    p->est_n += rec->est_n;
    p->est_bytes += rec->est_bytes;
    p->live_n += rec->live_n;
    p->live_bytes += rec->live_bytes;
    p->n_recs++;
    return true;
}

// "start-end perms offset dev inode [path]"
static bool parse_map(reader_t *r, prof_t *p, size_t *cap)
{
    unsigned long long start, end, offset, inode;
    char perms[8];
    int path_at = -1;
    if (sscanf(r->s, "%llx-%llx %7s %llx %*x:%*x %llu %n", &start, &end, perms, &offset, &inode, &path_at) < 5
        || path_at < 0 || end < start)
        return fail(r, "a mapping 'start-end perms offset dev inode path'");
    if (!push((void **)&p->maps, &p->n_maps, cap, sizeof *p->maps))
        return fail(r, "memory for the mappings (out of memory)");
    const char *path = r->s + path_at;
    prof_map_t *m = &p->maps[p->n_maps++];
    *m = (prof_map_t){ .start = start, .end = end, .offset = offset };
    // [heap], [stack], [vdso]: no file to read symbols from.
    if (*path && *path != '[' && !(m->path = strdup(path)))
        return fail(r, "memory for the mappings (out of memory)");
    return true;
}

static int cmp_pc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

typedef struct named {
    char *name;                       // the function of one distinct pc
    size_t pc;                        // that pc's index in the sorted distinct pcs
} named_t;

static int cmp_named(const void *a, const void *b)
{
    const named_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->pc > y->pc) - (x->pc < y->pc);
}

// Name each distinct pc once, then give each distinct name one index, in
// name order: p->funcs[i] for p->pcs[i], p->names.
static bool name_pcs(prof_t *p)
{
    uint64_t *pcs = malloc((p->n_pcs + 1) * sizeof *pcs);
    named_t *named = malloc((p->n_pcs + 1) * sizeof *named);
    uint32_t *func_of = malloc((p->n_pcs + 1) * sizeof *func_of);
    symbolizer_t *sym = sym_open(p->maps, p->n_maps);
    p->funcs = malloc((p->n_pcs + 1) * sizeof *p->funcs);
    p->names = malloc((p->n_pcs + 1) * sizeof *p->names);
    bool ok = pcs && named && func_of && sym && p->funcs && p->names;
    size_t n = 0, k = 0;
    if (ok) {
        memcpy(pcs, p->pcs, p->n_pcs * sizeof *pcs);
        qsort(pcs, p->n_pcs, sizeof *pcs, cmp_pc);
        for (size_t i = 0; i < p->n_pcs; i++)
            if (i == 0 || pcs[i] != pcs[n - 1])
                pcs[n++] = pcs[i];
        for (; ok && k < n; k++) {
            named[k] = (named_t){ .name = sym_name(sym, pcs[k]), .pc = k };
            ok = named[k].name != NULL;
        }
    }
    if (ok) {
        qsort(named, n, sizeof *named, cmp_named);
        for (size_t i = 0; i < n; i++) {
            if (p->n_names && !strcmp(p->names[p->n_names - 1], named[i].name)) {
                free(named[i].name);
            } else {
                p->names[p->n_names++] = named[i].name;
            }
            func_of[named[i].pc] = (uint32_t)(p->n_names - 1);
        }
        for (size_t i = 0; i < p->n_pcs; i++)
            p->funcs[i] = func_of[(uint64_t *)bsearch(&p->pcs[i], pcs, n, sizeof *pcs, cmp_pc) - pcs];
    } else {
        for (size_t i = 0; named && i < k; i++)
            free(named[i].name);
    }
    sym_close(sym);
    free(pcs);
    free(named);
    free(func_of);
    return ok;
}

static bool parse(reader_t *r, prof_t *p, FILE *f)
{
    enum { HEADER, RECORDS, GAP, MAPS } at = HEADER;
    size_t cap_recs = 0, cap_pcs = 0, cap_maps = 0;
    uint64_t head[4] = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = true;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        r->line++;
        r->s = r->text = line;
        skip_spaces(r);
        bool blank = !*r->s;
        if (at == HEADER) {
            ok = parse_header(r, p, head);
            at = RECORDS;
        } else if (at == MAPS) {
            ok = blank || parse_map(r, p, &cap_maps);
        } else if (!strcmp(r->s, "MAPPED_LIBRARIES:")) {
            at = MAPS;
        } else if (blank) {
            at = GAP;
        } else if (at == RECORDS) {
            ok = parse_record(r, p, &cap_recs, &cap_pcs);
        } else {
            ok = fail(r, "'MAPPED_LIBRARIES:' after the blank line");
        }
    }
    free(line);
    if (ok && ferror(f)) {
        fprintf(stderr, "%s: %s: %s\n", r->verb, r->path, strerror(errno));
        return false;
    }
    if (ok && at == HEADER) {
        fprintf(stderr, "%s: %s: empty: expected a heap profile\n", r->verb, r->path);
        return false;
    }
    if (ok && (head[0] != p->live_n || head[1] != p->live_bytes))
        fprintf(stderr, "%s: %s: warning: the header's in-use figures (%llu: %llu) are not the sums of the"
                " records (%llu: %llu); the records are what is shown\n", r->verb, r->path,
                (unsigned long long)head[0], (unsigned long long)head[1], (unsigned long long)p->live_n,
                (unsigned long long)p->live_bytes);
    return ok;
}

bool prof_read(const char *verb, const char *path, prof_t *p)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", verb, path, strerror(errno));
        return false;
    }
    reader_t r = { .verb = verb, .path = path };
    bool ok = parse(&r, p, f);
    fclose(f);
    if (ok && !(p->path = strdup(path)))
        ok = false;
    if (ok && !name_pcs(p)) {
        fprintf(stderr, "%s: %s: out of memory naming the frames\n", verb, path);
        ok = false;
    }
    if (!ok)
        prof_free(p);
    return ok;
}

void prof_free(prof_t *p)
{
    for (size_t i = 0; i < p->n_maps; i++)
        free(p->maps[i].path);
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->path);
    free(p->recs);
    free(p->pcs);
    free(p->maps);
    free(p->funcs);
    free(p->names);
    memset(p, 0, sizeof *p);
}
