// SPDX-License-Identifier: MIT
//
// engine.c -- replays a trace on one allocator and checks every block.
//
// The checked pass keeps, per id, the live pointer and its requested size,
// and an interval set of the live blocks (a treap keyed by address, one node
// per id) so a block that overlaps another is caught when it is handed out,
// not later. Each block is filled with a pattern derived from its id; the
// pattern is verified before the block is freed and, up to the smaller size,
// after a realloc, so an allocator that corrupts or fails to copy a payload
// is caught at the op that shows it.
//
// All of the engine's tables come from mmap and are touched in
// engine_prepare, so a child measuring RSS can take its baseline after it
// and see only what the allocator adds. The timed passes do nothing but
// the allocator calls and the id -> pointer bookkeeping.
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "engine.h"

#define NIL UINT32_MAX

typedef struct node {
    uintptr_t start;                  // block address
    uintptr_t end;                    // one past its last byte (at least start + 1)
    uint32_t left, right;             // children (ids), NIL for none
    uint32_t prio;                    // heap order of the treap
} node_t;

typedef struct engine {
    void **ptr;                       // id -> live pointer
    uint64_t *size;                   // id -> requested size
    node_t *nodes;                    // id -> its interval node
    uint32_t root;                    // treap root, NIL when empty
    size_t map_size[3];               // bytes mapped for ptr, size, nodes
} engine_t;

static engine_t eng = { .root = NIL };

static void *map_touched(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, bytes);              // resident now, part of the baseline
    return p;
}

bool engine_prepare(const trace_t *t)
{
    size_t ids = t->n_ids ? t->n_ids : 1;
    eng.map_size[0] = ids * sizeof *eng.ptr;
    eng.map_size[1] = ids * sizeof *eng.size;
    eng.map_size[2] = ids * sizeof *eng.nodes;
    eng.ptr = map_touched(eng.map_size[0]);
    eng.size = map_touched(eng.map_size[1]);
    eng.nodes = map_touched(eng.map_size[2]);
    eng.root = NIL;
    if (!eng.ptr || !eng.size || !eng.nodes) {
        fprintf(stderr, "%s: out of memory for %llu ids\n", t->path, (unsigned long long)t->n_ids);
        engine_release();
        return false;
    }
    return true;
}

void engine_release(void)
{
    void *maps[3] = { eng.ptr, eng.size, eng.nodes };
    for (int i = 0; i < 3; i++)
        if (maps[i])
            munmap(maps[i], eng.map_size[i]);
    eng.ptr = NULL;
    eng.size = NULL;
    eng.nodes = NULL;
}

// --- the interval set ----------------------------------------------------------

// Split tree `n` into keys < key (*l) and keys >= key (*r).
static void split(uint32_t n, uintptr_t key, uint32_t *l, uint32_t *r)
{
    if (n == NIL) {
        *l = *r = NIL;
    } else if (eng.nodes[n].start < key) {
        split(eng.nodes[n].right, key, &eng.nodes[n].right, r);
        *l = n;
    } else {
        split(eng.nodes[n].left, key, l, &eng.nodes[n].left);
        *r = n;
    }
}

static uint32_t merge(uint32_t l, uint32_t r)
{
    if (l == NIL)
        return r;
    if (r == NIL)
        return l;
    if (eng.nodes[l].prio > eng.nodes[r].prio) {
        eng.nodes[l].right = merge(eng.nodes[l].right, r);
        return l;
    }
    eng.nodes[r].left = merge(l, eng.nodes[r].left);
    return r;
}

// Insert id's interval; NIL, or the id of a live block it overlaps.
static uint32_t set_insert(uint32_t id, uintptr_t start, uintptr_t end)
{
    uint32_t l, r, clash = NIL;
    split(eng.root, start, &l, &r);
    uint32_t m = l;
    while (m != NIL && eng.nodes[m].right != NIL)
        m = eng.nodes[m].right;          // the block just below
    if (m != NIL && eng.nodes[m].end > start)
        clash = m;
    m = r;
    while (m != NIL && eng.nodes[m].left != NIL)
        m = eng.nodes[m].left;           // the block at or just above
    if (m != NIL && eng.nodes[m].start < end)
        clash = m;
    eng.nodes[id] = (node_t){ start, end, NIL, NIL, (uint32_t)((id + 1) * 2654435761u) };
    if (clash == NIL)
        eng.root = merge(merge(l, id), r);
    else
        eng.root = merge(l, r);
    return clash;
}

static void set_remove(uint32_t id)
{
    uint32_t l, m, r;
    uintptr_t start = eng.nodes[id].start;
    split(eng.root, start, &l, &m);
    split(m, start + 1, &m, &r);
    eng.root = merge(l, r);
}

// --- payload patterns ----------------------------------------------------------

static uint64_t pattern(uint32_t id)
{
    return ((uint64_t)id + 1) * 0x9E3779B97F4A7C15ull ^ 0xA5A5A5A5A5A5A5A5ull;
}

// Fill [from, to) of the block with its pattern (byte i is byte i%8 of the word).
void engine_fill(unsigned char *p, uint32_t id, uint64_t from, uint64_t to)
{
    uint64_t w = pattern(id);
    const unsigned char *wb = (const unsigned char *)&w;
    while (from < to && from % 8)
        p[from] = wb[from % 8], from++;
    for (; from + 8 <= to; from += 8)
        memcpy(p + from, &w, 8);
    for (; from < to; from++)
        p[from] = wb[from % 8];
}

// Offset of the first byte in [0, n) that does not hold the pattern, or n.
uint64_t engine_verify(const unsigned char *p, uint32_t id, uint64_t n)
{
    uint64_t w = pattern(id), i = 0, v;
    const unsigned char *wb = (const unsigned char *)&w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, p + i, 8);
        if (v != w)
            break;
    }
    for (; i < n; i++)
        if (p[i] != wb[i % 8])
            return i;
    return n;
}

// --- the checked pass ------------------------------------------------------------

size_t engine_alignment(uint64_t size)
{
    // A block must suit any object that fits in it: 16 bytes (x86-64
    // max_align_t), or the largest power of two <= size for tiny blocks.
    if (size >= 16)
        return 16;
    size_t a = 1;
    while (a * 2 <= size)
        a *= 2;
    return a;
}

static const char *op_text(const trace_op_t *op, char *buf, size_t cap)
{
    if (op->id == TRACE_NULL_ID)
        snprintf(buf, cap, "f -1");
    else if (op->kind == OP_FREE)
        snprintf(buf, cap, "f %u", op->id);
    else
        snprintf(buf, cap, "%c %u %llu", op->kind == OP_ALLOC ? 'a' : 'r', op->id,
                 (unsigned long long)op->size);
    return buf;
}

bool engine_op_fail(const trace_t *t, const backend_t *b, const trace_op_t *op, const char *what, const void *p)
{
    char text[64];
    fprintf(stderr, "%s:%u: %s: %s (op '%s'", t->path, op->line, b->name, what, op_text(op, text, sizeof text));
    if (p)
        fprintf(stderr, ", block %p", p);
    fprintf(stderr, ")\n");
    return false;
}

// Place the block of op->id at p: alignment, overlap, pattern from `from`.
static bool place(const trace_t *t, const backend_t *b, const trace_op_t *op, void *p, uint64_t from)
{
    char what[128];
    size_t align = engine_alignment(op->size);
    if ((uintptr_t)p % align) {
        snprintf(what, sizeof what, "block is not %zu-byte aligned", align);
        return engine_op_fail(t, b, op, what, p);
    }
    uintptr_t start = (uintptr_t)p, end = start + (op->size ? op->size : 1);
    uint32_t clash = set_insert(op->id, start, end);
    if (clash != NIL) {
        snprintf(what, sizeof what, "block overlaps live block id %u at %p (%llu bytes)", clash,
                 eng.ptr[clash], (unsigned long long)eng.size[clash]);
        return engine_op_fail(t, b, op, what, p);
    }
    eng.ptr[op->id] = p;
    eng.size[op->id] = op->size;
    engine_fill(p, op->id, from, op->size);
    return true;
}

static bool intact(const trace_t *t, const backend_t *b, const trace_op_t *op, uint64_t n, const char *when)
{
    uint64_t bad = engine_verify(eng.ptr[op->id], op->id, n);
    if (bad == n)
        return true;
    char what[128];
    snprintf(what, sizeof what, "payload byte %llu of %llu changed %s", (unsigned long long)bad,
             (unsigned long long)n, when);
    return engine_op_fail(t, b, op, what, eng.ptr[op->id]);
}

static void free_live(const trace_t *t, const backend_t *b)
{
    for (uint64_t id = 0; id < t->n_ids; id++) {
        if (eng.ptr[id]) {
            b->free(eng.ptr[id]);
            eng.ptr[id] = NULL;
        }
        eng.size[id] = 0;
    }
    eng.root = NIL;
}

bool engine_check(const trace_t *t, const backend_t *b, replay_result_t *r,
                  engine_step_fn step, void *ctx)
{
    uint64_t live = 0;
    memset(r, 0, sizeof *r);
    for (uint64_t i = 0; i < t->n_ops; i++) {
        const trace_op_t *op = &t->ops[i];
        if (op->id == TRACE_NULL_ID) {
            b->free(NULL);
            goto done;
        }
        // A realloc of an id that is not live starts from NULL with size 0:
        // realloc(NULL, n), as the trace recorded it.
        void *p = eng.ptr[op->id], *q;
        switch (op->kind) {
        case OP_ALLOC:
            q = b->malloc(op->size);
            if (!q && op->size == 0)
                break;                    // malloc(0) may answer NULL
            if (!q)
                return engine_op_fail(t, b, op, "malloc returned NULL", NULL);
            if (!place(t, b, op, q, 0))
                return false;
            live += op->size;
            break;
        case OP_FREE:
            if (!intact(t, b, op, eng.size[op->id], "while the block was live"))
                return false;
            if (p)
                set_remove(op->id);
            live -= eng.size[op->id];
            eng.ptr[op->id] = NULL;
            eng.size[op->id] = 0;
            b->free(p);
            break;
        case OP_REALLOC: {
            uint64_t old = eng.size[op->id], keep = old < op->size ? old : op->size;
            if (!intact(t, b, op, old, "while the block was live"))
                return false;
            if (p)
                set_remove(op->id);
            q = b->realloc(p, op->size);
            if (!q && op->size == 0) {
                eng.ptr[op->id] = NULL;   // glibc's rule: realloc(p, 0) frees p
                eng.size[op->id] = 0;
                live -= old;
                break;
            }
            if (!q)
                return engine_op_fail(t, b, op, "realloc returned NULL", p);
            eng.ptr[op->id] = q;
            if (!intact(t, b, op, keep, "by realloc (contents not preserved)"))
                return false;
            if (!place(t, b, op, q, keep))
                return false;
            live = live - old + op->size;
            break;
        }
        }
    done:
        if (live > r->peak_live)
            r->peak_live = live;
        if (b->footprint && (b->footprint_every <= 1 || i % b->footprint_every == 0 || i + 1 == t->n_ops)) {
            uint64_t f = b->footprint();
            if (f > r->peak_footprint)
                r->peak_footprint = f;
        }
        if (step)
            step(ctx, i, live);
    }
    free_live(t, b);
    r->ops = t->n_ops;
    r->ok = 1;
    return true;
}

bool engine_time_passes(const trace_t *t, const backend_t *b, int reps, replay_result_t *r, engine_pass_fn *pass)
{
    double rates[64], spent = 0;
    int rep;
    if (reps > 64)
        reps = 64;
    for (rep = 0; rep < reps && spent < TIME_BUDGET; rep++) {
        if (b->reset)
            b->reset();
        double dt;
        if (!pass(t, b, &dt))
            return false;
        rates[rep] = dt > 0 ? (double)t->n_ops / dt : 0;
        spent += dt;
    }
    r->ops_per_sec = tool_median(rates, rep);
    return true;
}

// One pass without checks, on the calling thread.
static bool time_pass(const trace_t *t, const backend_t *b, double *seconds)
{
    void **ptr = eng.ptr;
    double t0 = tool_now();
    for (uint64_t i = 0; i < t->n_ops; i++) {
        const trace_op_t *op = &t->ops[i];
        if (op->id == TRACE_NULL_ID) {
            b->free(NULL);
            continue;
        }
        switch (op->kind) {
        case OP_ALLOC:
            ptr[op->id] = b->malloc(op->size);
            break;
        case OP_FREE:
            b->free(ptr[op->id]);
            ptr[op->id] = NULL;
            break;
        case OP_REALLOC: {
            void *q = b->realloc(ptr[op->id], op->size);
            if (q || op->size == 0)
                ptr[op->id] = q;
            break;
        }
        }
    }
    *seconds = tool_now() - t0;
    free_live(t, b);
    return true;
}

bool engine_time(const trace_t *t, const backend_t *b, int reps, replay_result_t *r)
{
    return engine_time_passes(t, b, reps, r, time_pass);
}
