// SPDX-License-Identifier: MIT
//
// flame.c -- a heap profile as a flame graph, in SVG written by hand (the
// heap map's style: one font, flat fills, every figure in words).
//
// The stacks are merged into a tree, outermost frame at the root: a node
// is one function called along one path, weighed by the estimated in-use
// bytes of the stacks through it. Drawn bottom up -- the whole profile
// ("all") at the bottom, each caller under its callees, the allocating
// function on top -- every box as wide as its share of the in-use bytes,
// siblings largest first. Colour tells functions apart (one shade per
// name, the same in every picture) and unnamed frames from named ones
// (grey). Each box carries a <title> (function, bytes, share) that a
// browser shows on hover; its label is cut to the box ("abc..").
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "prof.h"

#define WIDTH   1200.0                // the picture
#define MARGIN  10.0                  // left and right of the boxes
#define TOP     66.0                  // the titles above the boxes
#define FRAME_H 17.0                  // one level of the stacks
#define BOTTOM  28.0                  // the note below the boxes
#define CHAR_W  6.7                   // advance of the 11 px monospace font, rounded up
#define MIN_W   0.25                  // narrower boxes (and all above them) are left out
#define NO_FUNC UINT32_MAX            // the root's function: "all"

typedef struct node {
    uint32_t func;                    // its function (index into names), NO_FUNC at the root
    size_t child, next;               // first callee, next sibling (0: none; node 0 is the root)
    double bytes;                     // estimated in-use bytes of the stacks through it
} node_t;

typedef struct tree {
    const prof_t *p;                  // the profile drawn
    node_t *nodes;                    // nodes[0] is the root
    size_t n, cap;                    // used and allocated nodes
    size_t depth;                     // levels above the root
} tree_t;

// The callee `func` of node `at`, added when new; 0 when out of memory.
static size_t callee(tree_t *t, size_t at, uint32_t func)
{
    size_t *link = &t->nodes[at].child;
    for (; *link; link = &t->nodes[*link].next)
        if (t->nodes[*link].func == func)
            return *link;
    if (t->n == t->cap) {
        size_t cap = t->cap * 2;
        ptrdiff_t link_at = (char *)link - (char *)t->nodes;
        node_t *nodes = realloc(t->nodes, cap * sizeof *nodes);
        if (!nodes)
            return 0;
        t->nodes = nodes;
        t->cap = cap;
        link = (size_t *)((char *)nodes + link_at);
    }
    t->nodes[t->n] = (node_t){ .func = func };
    *link = t->n;
    return t->n++;
}

static int cmp_node(const void *a, const void *b, void *tree)
{
    const tree_t *t = tree;
    const node_t *x = &t->nodes[*(const size_t *)a], *y = &t->nodes[*(const size_t *)b];
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return strcmp(t->p->names[x->func], t->p->names[y->func]);
}

// Every node's callees, largest first.
static bool sort_callees(tree_t *t)
{
    size_t *kids = malloc(t->n * sizeof *kids);
    if (!kids)
        return false;
    for (size_t i = 0; i < t->n; i++) {
        size_t n = 0;
        for (size_t c = t->nodes[i].child; c; c = t->nodes[c].next)
            kids[n++] = c;
        qsort_r(kids, n, sizeof *kids, cmp_node, t);
        for (size_t k = 0; k < n; k++)
            t->nodes[kids[k]].next = k + 1 < n ? kids[k + 1] : 0;
        t->nodes[i].child = n ? kids[0] : 0;
    }
    free(kids);
    return true;
}

static bool build(tree_t *t)
{
    const prof_t *p = t->p;
    t->cap = 1024;
    t->nodes = malloc(t->cap * sizeof *t->nodes);
    if (!t->nodes)
        return false;
    t->nodes[0] = (node_t){ .func = NO_FUNC };
    t->n = 1;
    for (size_t r = 0; r < p->n_recs; r++) {
        const prof_record_t *rec = &p->recs[r];
        if (rec->est_bytes <= 0)
            continue;
        size_t at = 0;
        t->nodes[0].bytes += rec->est_bytes;
        for (size_t i = rec->depth; i-- > 0;) {
            if (!(at = callee(t, at, p->funcs[rec->first + i])))
                return false;
            t->nodes[at].bytes += rec->est_bytes;
        }
        if (rec->depth > t->depth)
            t->depth = rec->depth;
    }
    return sort_callees(t);
}

// One shade per name (FNV-1a of it): greens to teals for named functions,
// grey for frames with no name.
static void fill_for(const char *name, char *buf, size_t cap)
{
    if (!strncmp(name, "0x", 2) || name[0] == '[') {
        snprintf(buf, cap, "#c8c8c8");
        return;
    }
    uint32_t h = 2166136261u;
    for (const char *s = name; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    snprintf(buf, cap, "#%02x%02x%02x", 70 + h % 70, 175 + (h >> 8) % 55, 95 + (h >> 16) % 80);
}

// The label of a box w pixels wide: the name, or its head and "..", or nothing.
static void label(FILE *f, const char *name, double x, double y, double w)
{
    size_t fits = w > 6 ? (size_t)((w - 6) / CHAR_W) : 0, len = strlen(name);
    if (fits < 3)
        return;
    char buf[512];
    if (len > fits || len >= sizeof buf) {
        size_t keep = fits - 2 < sizeof buf - 3 ? fits - 2 : sizeof buf - 3;
        while (keep > 0 && ((unsigned char)name[keep] & 0xc0) == 0x80)
            keep--;                       // not inside a UTF-8 character
        snprintf(buf, sizeof buf, "%.*s..", (int)keep, name);
        name = buf;
    }
    fprintf(f, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + FRAME_H - 5);
    tool_xml_text(f, name);
    fprintf(f, "</text>");
}

static void draw(FILE *f, const tree_t *t, size_t at, double x, size_t level)
{
    const node_t *n = &t->nodes[at];
    const prof_t *p = t->p;
    double w = n->bytes / t->nodes[0].bytes * (WIDTH - 2 * MARGIN);
    if (w < MIN_W)
        return;
    double y = TOP + (double)(t->depth - level) * FRAME_H;
    const char *name = n->func == NO_FUNC ? "all" : p->names[n->func];
    char fill[16], size[32];
    if (n->func == NO_FUNC)
        snprintf(fill, sizeof fill, "#d9d9d9");
    else
        fill_for(name, fill, sizeof fill);
    fprintf(f, "<g><title>");
    tool_xml_text(f, name);
    fprintf(f, ": %.0f bytes (%s), %.2f%% of the in-use bytes</title>", n->bytes,
            tool_human((uint64_t)n->bytes, size, sizeof size), 100 * n->bytes / t->nodes[0].bytes);
    fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" rx=\"2\" fill=\"%s\"/>", x, y, w,
            FRAME_H - 1, fill);
    label(f, name, x, y, w);
    fprintf(f, "</g>\n");
    for (size_t c = n->child; c; c = t->nodes[c].next) {
        draw(f, t, c, x, level + 1);
        x += t->nodes[c].bytes / t->nodes[0].bytes * (WIDTH - 2 * MARGIN);
    }
}

bool flame_write_svg(const prof_t *p, const char *what, FILE *f)
{
    tree_t t = { .p = p };
    if (!build(&t)) {
        free(t.nodes);
        return false;
    }
    double height = TOP + (double)(t.depth + 1) * FRAME_H + BOTTOM;
    char a[32], b[32];
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            WIDTH, height, WIDTH, height);
    fprintf(f, "<style>text { font-family: DejaVu Sans Mono, monospace; font-size: 11px; fill: #222 }"
               " .title { font-size: 15px; font-weight: bold } g:hover rect { stroke: #222; stroke-width: 1 }"
               "</style>\n");
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", WIDTH, height);
    fprintf(f, "<text class=\"title\" x=\"%.0f\" y=\"22\">estimated in-use bytes ", MARGIN);
    tool_xml_text(f, what);
    fprintf(f, ", by call stack</text>\n<text x=\"%.0f\" y=\"40\">", MARGIN);
    tool_xml_text(f, p->path);
    fprintf(f, ": %s in %.0f blocks, estimated from %llu sampled blocks (one sample per %s allocated)</text>\n",
            tool_human((uint64_t)p->est_bytes, a, sizeof a), p->est_n, (unsigned long long)p->live_n,
            tool_human(p->rate, b, sizeof b));
    fprintf(f, "<text x=\"%.0f\" y=\"56\">Width: share of the in-use bytes. Each function sits on its caller;"
               " the one that called malloc is on top. Grey: no symbol. Hover a box for its figures.</text>\n",
            MARGIN);
    if (t.nodes[0].bytes > 0)
        draw(f, &t, 0, MARGIN, 0);
    else
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">no sampled block in use</text>\n", MARGIN, TOP + FRAME_H - 5);
    fprintf(f, "</svg>\n");
    free(t.nodes);
    return !ferror(f);
}
