// SPDX-License-Identifier: MIT
//
// engine_threads.c -- replays a trace on the threads it was recorded from
// (`mallet replay --threads`).
//
// Ops are grouped by thread number, each group in recorded order, and each
// group runs on a thread of its own. What keeps the replay faithful is one
// counter per id: `done[id]` is the number of ops on that id finished so
// far, and an op that is the k-th on its id (its `rank`) waits until done[id]
// is k, runs, and sets it to k + 1 with release order -- so the op before
// it on that block, on whatever thread, has happened and its writes are
// seen. The recorded sequence is one order that satisfies every wait, so
// the replay cannot deadlock: the earliest op not yet run is always free to
// go. A wait spins briefly (the op it waits for is most often running on
// another CPU), then sleeps on the counter (a futex) with a flag in its top
// bit that tells the thread finishing the op to wake it: a trace may have
// more threads than the machine has CPUs, and a spinning thread would then
// hold the CPU the awaited one needs.
//
// The checked pass adds, per op, what engine.c checks (alignment, each
// block's pattern before a free and through a realloc) and counts the live
// bytes in one shared counter whose peak is kept; a failed check stops every
// thread. The timed passes time from the moment all threads are released to
// the moment the last one finishes.
//
// Tables come from mmap and are touched before any measurement, as in
// engine.c, so an RSS baseline taken after engine_prepare_threads sees only
// what the allocator adds.
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

// A wait spins this many pauses (some microseconds) before it sleeps.
#define SPINS_BEFORE_SLEEP 256
// done[id]: a thread sleeps until this counter moves.
#define WAITING 0x80000000u
// A sleeper wakes at least this often to see whether the pass was stopped.
#define SLEEP_NS 10000000

typedef struct pass {
    const trace_t *t;                 // the trace
    const backend_t *b;               // the allocator
    bool checked;                     // the checked pass (else a timed one)
    int go;                           // set once every worker is started: they begin
    int failed;                       // set by a failed check: every thread stops
    uint64_t live;                    // requested bytes live now (checked pass)
    uint64_t peak_live;               // the most `live` has been
    uint64_t peak_footprint;          // the most b->footprint() has said
} pass_t;

typedef struct worker {
    pass_t *pass;                     // what all workers share
    uint32_t thread;                  // the trace's thread number this worker replays
    pthread_t handle;                 // its thread
} worker_t;

static struct {
    void **ptr;                       // id -> live pointer
    uint64_t *size;                   // id -> requested size
    uint32_t *done;                   // id -> ops on it finished in this pass
    uint32_t *rank;                   // op -> how many ops on its id come before it
    uint32_t *order;                  // op indexes grouped by thread, recorded order within
    uint64_t *first;                  // thread -> its first entry in order; [n_threads] = n_ops
    size_t map_size[6];               // bytes mapped for each table above
} thr;

static void *map_touched(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

void engine_release_threads(void)
{
    void *maps[6] = { thr.ptr, thr.size, thr.done, thr.rank, thr.order, thr.first };
    for (int i = 0; i < 6; i++)
        if (maps[i])
            munmap(maps[i], thr.map_size[i]);
    memset(&thr, 0, sizeof thr);
}

bool engine_prepare_threads(const trace_t *t)
{
    if (t->n_ops >= WAITING) {         // a rank must stay clear of the flag bit
        fprintf(stderr, "%s: --threads replays at most 2147483647 operations\n", t->path);
        return false;
    }
    size_t ids = t->n_ids ? t->n_ids : 1, ops = t->n_ops ? t->n_ops : 1;
    size_t sizes[6] = { ids * sizeof *thr.ptr, ids * sizeof *thr.size, ids * sizeof *thr.done,
                        ops * sizeof *thr.rank, ops * sizeof *thr.order,
                        ((size_t)t->n_threads + 1) * sizeof *thr.first };
    void **maps[6] = { (void **)&thr.ptr, (void **)&thr.size, (void **)&thr.done,
                       (void **)&thr.rank, (void **)&thr.order, (void **)&thr.first };
    for (int i = 0; i < 6; i++) {
        thr.map_size[i] = sizes[i];
        if ((*maps[i] = map_touched(sizes[i])) == NULL) {
            fprintf(stderr, "%s: out of memory for the threads' tables\n", t->path);
            engine_release_threads();
            return false;
        }
    }
    // Ranks from a count of the ops seen on each id (done[] serves as the
    // counter, then is cleared); groups by a counting sort on the thread.
    for (uint64_t i = 0; i < t->n_ops; i++) {
        const trace_op_t *op = &t->ops[i];
        if (op->id != TRACE_NULL_ID)
            thr.rank[i] = thr.done[op->id]++;
        thr.first[op->thread + 1]++;
    }
    memset(thr.done, 0, thr.map_size[2]);
    uint64_t next[TRACE_THREADS_MAX];  // each group's fill cursor
    for (uint32_t k = 0; k < t->n_threads; k++)
        thr.first[k + 1] += thr.first[k];
    for (uint32_t k = 0; k < t->n_threads; k++)
        next[k] = thr.first[k];
    for (uint64_t i = 0; i < t->n_ops; i++)
        thr.order[next[t->ops[i].thread]++] = (uint32_t)i;
    return true;
}

// --- one op ---------------------------------------------------------------------

static void note_peak(uint64_t *peak, uint64_t v)
{
    uint64_t old = __atomic_load_n(peak, __ATOMIC_RELAXED);
    while (v > old && !__atomic_compare_exchange_n(peak, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        continue;
}

static bool stop(pass_t *ps)
{
    __atomic_store_n(&ps->failed, 1, __ATOMIC_RELAXED);
    return false;
}

static bool intact(pass_t *ps, const trace_op_t *op, uint64_t n, const char *when)
{
    uint64_t bad = engine_verify(thr.ptr[op->id], op->id, n);
    if (bad == n)
        return true;
    char what[128];
    snprintf(what, sizeof what, "payload byte %llu of %llu changed %s", (unsigned long long)bad,
             (unsigned long long)n, when);
    engine_op_fail(ps->t, ps->b, op, what, thr.ptr[op->id]);
    return stop(ps);
}

// Check q, the new place of op's block, and write its pattern from `from`.
static bool place(pass_t *ps, const trace_op_t *op, void *q, uint64_t from)
{
    size_t align = engine_alignment(op->size);
    if ((uintptr_t)q % align) {
        char what[64];
        snprintf(what, sizeof what, "block is not %zu-byte aligned", align);
        engine_op_fail(ps->t, ps->b, op, what, q);
        return stop(ps);
    }
    engine_fill(q, op->id, from, op->size);
    return true;
}

// The checked op: the block's pattern verified before it goes and kept
// through a realloc, the live bytes counted. false when a check failed.
static bool run_checked(pass_t *ps, const trace_op_t *op)
{
    const backend_t *b = ps->b;
    void *p = thr.ptr[op->id], *q;
    uint64_t old = thr.size[op->id], keep = old < op->size ? old : op->size;
    switch (op->kind) {
    case OP_ALLOC:
        q = b->malloc(op->size);
        if (!q && op->size == 0)
            return true;
        if (!q) {
            engine_op_fail(ps->t, b, op, "malloc returned NULL", NULL);
            return stop(ps);
        }
        thr.ptr[op->id] = q;
        thr.size[op->id] = op->size;
        note_peak(&ps->peak_live, __atomic_add_fetch(&ps->live, op->size, __ATOMIC_RELAXED));
        return place(ps, op, q, 0);
    case OP_FREE:
        if (!intact(ps, op, old, "while the block was live"))
            return false;
        thr.ptr[op->id] = NULL;
        thr.size[op->id] = 0;
        __atomic_sub_fetch(&ps->live, old, __ATOMIC_RELAXED);
        b->free(p);
        return true;
    case OP_REALLOC:
        if (!intact(ps, op, old, "while the block was live"))
            return false;
        q = b->realloc(p, op->size);
        if (!q && op->size == 0) {
            thr.ptr[op->id] = NULL;       // glibc's rule: realloc(p, 0) frees p
            thr.size[op->id] = 0;
            __atomic_sub_fetch(&ps->live, old, __ATOMIC_RELAXED);
            return true;
        }
        if (!q) {
            engine_op_fail(ps->t, b, op, "realloc returned NULL", p);
            return stop(ps);
        }
        thr.ptr[op->id] = q;
        thr.size[op->id] = op->size;
        if (!intact(ps, op, keep, "by realloc (contents not preserved)"))
            return false;
        if (op->size > old)
            note_peak(&ps->peak_live, __atomic_add_fetch(&ps->live, op->size - old, __ATOMIC_RELAXED));
        else
            __atomic_sub_fetch(&ps->live, old - op->size, __ATOMIC_RELAXED);
        return place(ps, op, q, keep);
    }
    return true;
}

static void run_timed(const backend_t *b, const trace_op_t *op)
{
    switch (op->kind) {
    case OP_ALLOC:
        thr.ptr[op->id] = b->malloc(op->size);
        break;
    case OP_FREE:
        b->free(thr.ptr[op->id]);
        thr.ptr[op->id] = NULL;
        break;
    case OP_REALLOC: {
        void *q = b->realloc(thr.ptr[op->id], op->size);
        if (q || op->size == 0)
            thr.ptr[op->id] = q;
        break;
    }
    }
}

// --- the threads ------------------------------------------------------------------

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ volatile("" ::: "memory");
#endif
}

// Wait for the ops before op i on its id; false when the pass was stopped.
static bool wait_turn(pass_t *ps, uint64_t i, uint32_t id)
{
    uint32_t want = thr.rank[i], v;
    unsigned spins = 0;
    while (((v = __atomic_load_n(&thr.done[id], __ATOMIC_ACQUIRE)) & ~WAITING) != want) {
        if (__atomic_load_n(&ps->failed, __ATOMIC_RELAXED))
            return false;
        if (spins++ < SPINS_BEFORE_SLEEP) {
            cpu_relax();
            continue;
        }
        // Flag the counter, then sleep while it still holds what we saw.
        if (!(v & WAITING) && !__atomic_compare_exchange_n(&thr.done[id], &v, v | WAITING, false,
                                                           __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        struct timespec ts = { 0, SLEEP_NS };
        syscall(SYS_futex, &thr.done[id], FUTEX_WAIT_PRIVATE, v | WAITING, &ts, NULL, 0);
    }
    return true;
}

// Op i is done: the next op on its id may go; wake it if it sleeps.
static void finish_turn(uint64_t i, uint32_t id)
{
    if (__atomic_exchange_n(&thr.done[id], thr.rank[i] + 1, __ATOMIC_RELEASE) & WAITING)
        syscall(SYS_futex, &thr.done[id], FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pass_t *ps = w->pass;
    const trace_t *t = ps->t;
    const backend_t *b = ps->b;
    while (!__atomic_load_n(&ps->go, __ATOMIC_ACQUIRE)) {
        struct timespec ts = { 0, SLEEP_NS };
        syscall(SYS_futex, &ps->go, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    }
    if (__atomic_load_n(&ps->failed, __ATOMIC_RELAXED))
        return NULL;
    for (uint64_t k = thr.first[w->thread]; k < thr.first[w->thread + 1]; k++) {
        uint64_t i = thr.order[k];
        const trace_op_t *op = &t->ops[i];
        if (op->id == TRACE_NULL_ID) {
            b->free(NULL);
            continue;
        }
        if (!wait_turn(ps, i, op->id))
            return NULL;
        if (ps->checked) {
            if (!run_checked(ps, op))
                return NULL;
            if (b->footprint && (b->footprint_every <= 1 || k % b->footprint_every == 0))
                note_peak(&ps->peak_footprint, b->footprint());
        } else {
            run_timed(b, op);
        }
        finish_turn(i, op->id);
    }
    return NULL;
}

static void free_live(const trace_t *t, const backend_t *b)
{
    for (uint64_t id = 0; id < t->n_ids; id++) {
        if (thr.ptr[id])
            b->free(thr.ptr[id]);
        thr.ptr[id] = NULL;
        thr.size[id] = 0;
        thr.done[id] = 0;
    }
}

// One pass on every thread; its wall time in *seconds, from the release
// of the threads to the end of the last one. false when a thread could not
// be started or a check failed.
static bool run_pass(pass_t *ps, double *seconds)
{
    static worker_t workers[TRACE_THREADS_MAX];
    uint32_t n = ps->t->n_threads, started;
    for (started = 0; started < n; started++) {
        workers[started] = (worker_t){ .pass = ps, .thread = started };
        if (pthread_create(&workers[started].handle, NULL, worker_main, &workers[started]) != 0) {
            fprintf(stderr, "%s: cannot start replay thread %u\n", ps->t->path, started);
            ps->failed = 1;               // the threads started stop at once
            break;
        }
    }
    double t0 = tool_now();
    __atomic_store_n(&ps->go, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &ps->go, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    for (uint32_t k = 0; k < started; k++)
        pthread_join(workers[k].handle, NULL);
    *seconds = tool_now() - t0;
    return !ps->failed;
}

bool engine_check_threads(const trace_t *t, const backend_t *b, replay_result_t *r)
{
    pass_t ps = { .t = t, .b = b, .checked = true };
    double seconds;
    memset(r, 0, sizeof *r);
    bool ok = run_pass(&ps, &seconds);
    if (b->footprint)
        note_peak(&ps.peak_footprint, b->footprint());
    free_live(t, b);
    if (!ok)
        return false;
    r->ops = t->n_ops;
    r->peak_live = ps.peak_live;
    r->peak_footprint = ps.peak_footprint;
    r->ok = 1;
    return true;
}

// One unchecked pass on every thread.
static bool time_pass(const trace_t *t, const backend_t *b, double *seconds)
{
    pass_t ps = { .t = t, .b = b };
    if (!run_pass(&ps, seconds))
        return false;
    free_live(t, b);
    return true;
}

bool engine_time_threads(const trace_t *t, const backend_t *b, int reps, replay_result_t *r)
{
    return engine_time_passes(t, b, reps, r, time_pass);
}
