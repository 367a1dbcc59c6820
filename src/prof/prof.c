// SPDX-License-Identifier: MIT
//
// prof.c -- sampling: the countdowns, the cut in a free list, the stack of
// a sample (libgcc's unwinder), the profiler's heap that serves and takes
// back the sampled blocks, and the profiler's part of fork. prof.h explains
// the design; prof_record.c keeps the record, prof_dump.c writes it.
//
// The core reaches it only through the hook table (base/hooks.h): the
// malloc slow path (mem/heap.c) and large blocks (mem/large.c); the free
// slow path (api/free.c) and fork (api/fork.c) call it directly.
#include "prof.h"

#include <errno.h>
#include <unwind.h>

#include "mem/mem.h"
#include "base/base.h"

mallet_heap_t *mallet__prof_heap_gone;
mallet_lock_t mallet__prof_heap_lock;
int64_t mallet__prof_rate = -1;          // < 0: not read yet

// Large blocks: bytes left before the next sampled byte, and the generator.
static __thread double large_left __attribute__((tls_model("initial-exec")));
static __thread uint64_t large_rng __attribute__((tls_model("initial-exec")));
static uint32_t large_ids;               // the last large sample id given

// --- the numbers --------------------------------------------------------------

double mallet__sample_rate_once(int64_t *cache, int64_t kb)
{
    int64_t r = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (r < 0) {
        r = kb > 0 && kb < ((int64_t)1 << 40) ? kb * 1024 : 0;
        __atomic_store_n(cache, r, __ATOMIC_RELAXED);
    }
    return (double)r;
}

static double rate(void)
{
    return mallet__sample_rate_once(&mallet__prof_rate, mallet__option(prof_sample_kb));
}

// ln(x) for x > 0, to about 1e-10: x = m * 2^e with m in [0.707, 1.414),
// then ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172.
static double ln(double x)
{
    union { double d; uint64_t u; } v = { x };
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & ((1ull << 52) - 1)) | (1023ull << 52);
    double m = v.d;
    if (m > 1.4142135623730951) {
        m /= 2;
        e++;
    }
    double t = (m - 1) / (m + 1), t2 = t * t;
    double s = t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 / 11)))));
    return 2 * s + e * 0.6931471805599453;
}

// exp(-x) for x >= 0: x = k ln2 + r, r in [0, ln2), a Taylor series for
// exp(-r), then the power of two.
static double exp_neg(double x)
{
    if (x > 700)
        return 0;
    int k = (int)(x / 0.6931471805599453);
    double r = x - k * 0.6931471805599453, term = 1, sum = 1;
    for (int i = 1; i < 16; i++) {
        term *= -r / i;
        sum += term;
    }
    union { double d; uint64_t u; } scale = { .u = (uint64_t)(1023 - k) << 52 };
    return sum * scale.d;
}

double mallet__prof_weight(size_t size)
{
    double r = rate();
    if (r <= 0)
        return (double)size;
    double p = 1 - exp_neg((double)size / r);
    return p > 0 ? (double)size / p : (double)size;
}

static uint64_t rng_next(uint64_t *s)
{
    if (*s == 0)
        *s = mallet__random_next() | 1;
    uint64_t x = *s;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

double mallet__sample_bytes(uint64_t *s, double mean)
{
    if (mean <= 0)
        return 0;
    double u = (double)((rng_next(s) >> 11) + 1) * (1.0 / 9007199254740992.0);   // (0, 1]
    return -ln(u) * mean;
}

// Bytes to the next sampled byte: exponential with mean `rate`.
static double draw_bytes(uint64_t *s)
{
    return mallet__sample_bytes(s, rate());
}

// The small classes' one stream serves the profiler and the guard: two
// independent Poisson processes over the bytes, merged, are one whose rate
// is the sum of theirs. The mean bytes between its points (0: every
// allocation).
static double merged_mean(void)
{
    bool prof = mallet__prof_enabled(), guard = mallet__guard_enabled();
    double p = prof ? rate() : 0, g = guard ? mallet__hooks.guard_rate() : 0;
    if (!prof && !guard)
        return 1e30;                      // switched off since the last draw
    if ((prof && p <= 0) || (guard && g <= 0))
        return 0;
    return prof && guard ? 1 / (1 / p + 1 / g) : prof ? p : g;
}

// The allocation of class c that holds the next sampled byte, counted from
// the next one (1). After a sampled allocation the stream starts afresh:
// the process has no memory, so this keeps every allocation's chance
// independent.
static uint32_t draw_wait(mallet_heap_t *heap, unsigned c)
{
    double w = mallet__sample_bytes(&heap->prof.rng, merged_mean()) / (double)mallet__class_size(c);
    return w >= 1e9 ? 1000000000u : (uint32_t)w + 1;
}

// The chance that a block of size bytes holds a point of a process of
// this mean (0: every block).
static double chance(double mean, size_t size)
{
    return mean <= 0 ? 1 : 1 - exp_neg((double)size / mean);
}

// --- the unwinder ----------------------------------------------------------------

extern const char __start_mallet_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_mallet_text[] __attribute__((weak, visibility("hidden")));

// Frames searched for libmallet's own: the deepest call chain from the
// program's call to the unwinder is well within this.
#define OWN_FRAMES_MAX 24

typedef struct unwind_state {
    uintptr_t pc[OWN_FRAMES_MAX + MALLET_PROF_DEPTH];   // frames, innermost first
    uint32_t n;                                         // frames taken
} unwind_state_t;

static _Unwind_Reason_Code unwind_step(struct _Unwind_Context *ctx, void *arg)
{
    unwind_state_t *st = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0)
        return _URC_END_OF_STACK;
    st->pc[st->n++] = ip;
    return st->n == sizeof st->pc / sizeof st->pc[0] ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static bool own_frame(uintptr_t ip)
{
    return ip >= (uintptr_t)__start_mallet_text && ip < (uintptr_t)__stop_mallet_text;
}

// The frames of the calling function and its callers, innermost first:
// prof_unwind.c's walk where it knows every frame's rule, else libgcc's.
static inline __attribute__((always_inline)) void frames(unwind_state_t *st)
{
    st->n = 0;
#if defined(__x86_64__)
    uintptr_t pc, sp, fp;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(fp));
    st->n = mallet__prof_unwind(pc, sp, fp, st->pc, sizeof st->pc / sizeof st->pc[0]);
    if (st->n != 0)
        return;
#endif
    _Unwind_Backtrace(unwind_step, st);
}

// Inlined into its callers: one frame less to walk, on every sample.
static inline __attribute__((always_inline)) void capture(mallet_prof_stack_t *out)
{
    unwind_state_t st;
    frames(&st);
    // The stack starts after the outermost frame of libmallet's (the entry
    // the program called): unmarked helpers between marked frames are
    // skipped with them, whatever the compiler inlined or tail-called.
    uint32_t from = 0;
    for (uint32_t i = 0; i < st.n && i < OWN_FRAMES_MAX; i++)
        if (own_frame(st.pc[i]))
            from = i + 1;
    out->depth = 0;
    for (uint32_t i = from; i < st.n && out->depth < MALLET_PROF_DEPTH; i++)
        out->pc[out->depth++] = st.pc[i];
}

MALLET_PROF_FRAME __attribute__((noinline)) uint32_t mallet__stack_capture(uintptr_t *pc, uint32_t max)
{
    mallet_prof_stack_t st;
    capture(&st);
    uint32_t n = st.depth < max ? st.depth : max;
    for (uint32_t i = 0; i < n; i++)
        pc[i] = st.pc[i];
    return n;
}

uint32_t mallet__stack_of_context(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t *out, uint32_t max)
{
#if defined(__x86_64__)
    uint32_t n = mallet__prof_unwind(pc, sp, fp, out, max);
    if (n != 0)
        return n;
#else
    (void)sp, (void)fp;
#endif
    // libgcc's unwinder walks through the signal frame: the stack from the
    // interrupted pc on.
    unwind_state_t st;
    st.n = 0;
    _Unwind_Backtrace(unwind_step, &st);
    for (uint32_t i = 0; i < st.n; i++) {
        if (st.pc[i] != pc)
            continue;
        uint32_t k = 0;
        for (; i + k < st.n && k < max; k++)
            out[k] = st.pc[i + k];
        return k;
    }
    out[0] = pc;
    return 1;
}

// The stack of the call a report is about (debug.h's hook).
static void report_stack(int fd)
{
    uintptr_t pc[MALLET_PROF_DEPTH];
    mallet__frames_write(fd, pc, mallet__stack_capture(pc, MALLET_PROF_DEPTH));
}

void mallet__stack_reports_on(void)
{
    mallet__report_stack = report_stack;
}

__attribute__((noinline)) void mallet__prof_unwind_both(uintptr_t *fast, uint32_t *nfast, uintptr_t *slow,
                                                       uint32_t *nslow, uint32_t max)
{
    unwind_state_t st;
    *nfast = 0;
#if defined(__x86_64__)
    uintptr_t pc, sp, fp;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(fp));
    *nfast = mallet__prof_unwind(pc, sp, fp, fast, max);
#endif
    st.n = 0;
    _Unwind_Backtrace(unwind_step, &st);
    *nslow = st.n < max ? st.n : max;
    for (uint32_t i = 0; i < *nslow; i++)
        slow[i] = st.pc[i];
}

// --- the malloc slow path ------------------------------------------------------

uint32_t mallet__prof_heal(mallet_heap_t *heap, mallet_page_t *page, unsigned c)
{
    uintptr_t cut = heap->prof.cut[c];
    // The malloc slow path comes here when the fast path stopped at the
    // cut; a sweep, a trim or the thread's exit may come earlier, with
    // blocks still before it.
    uint32_t n = heap->prof.rest[c];
    for (uintptr_t b = page->free; b != cut; b = mallet__link_read(page, b))
        if (b == 0 || ++n > page->reserved)
            mallet__page_corrupt(page);
    mallet__link_write(page, cut, heap->prof.cut_next[c]);
    heap->prof.cut[c] = 0;
    return n;
}

void mallet__prof_restart(mallet_heap_t *heap)
{
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        if (heap->prof.cut[c])
            mallet__prof_heal(heap, heap->current[c], c);
        heap->prof.wait[c] = 0;
    }
    heap->prof.epoch = __atomic_load_n(&mallet__options_epoch, __ATOMIC_RELAXED);
}

bool mallet__prof_take_slow(mallet_heap_t *heap, unsigned c)
{
    uint32_t *w = &heap->prof.wait[c];
    if (*w == 0) {
        // Not drawn yet: the first draw starts the class's stream.
        *w = draw_wait(heap, c);
        return mallet__prof_take(heap, w, c);
    }
    *w = draw_wait(heap, c);
    return true;
}

void mallet__prof_cut(mallet_heap_t *heap, mallet_page_t *page, unsigned c, uint32_t n)
{
    uint32_t w = heap->prof.wait[c];
    uintptr_t b = page->free;
    for (uint32_t i = 1; i < w; i++)
        b = mallet__link_read(page, b);
    heap->prof.cut[c] = b;
    heap->prof.cut_next[c] = mallet__link_read(page, b);
    heap->prof.rest[c] = n - (w - 1);
    mallet__link_write(page, b, 0);
    heap->prof.wait[c] = 1;
}

// Count block p of `size` bytes, sampled at the call stack st.
static void note(uintptr_t p, size_t size, uint32_t id, uintptr_t heap, const mallet_prof_stack_t *st)
{
    bool peak;
    // Without memory for the record, the block is served, not counted.
    if (mallet__prof_note(p, size, id, heap, st, &peak) && peak)
        mallet__prof_write_peak();
}

MALLET_PROF_FRAME void *mallet__prof_alloc(size_t req, unsigned c)
{
    mallet__prof_busy = 1;
    mallet_prof_stack_t st;
    capture(&st);
    mallet__lock(&mallet__prof_heap_lock);
    mallet_heap_t *mine = mallet__heap_self();
    if (mallet__prof_heap == NULL) {
        mallet_heap_t *h = mallet__heap_create_shared();
        __atomic_store_n(&mallet__prof_heap, h, __ATOMIC_RELEASE);
    }
    void *b = NULL;
    mallet_heap_t *heap = mallet__prof_heap;
    if (heap) {
        // The profiler's heap is owned by whoever holds prof_heap_lock: for
        // the time of one allocation, it is this thread's heap.
        mallet__tls_heap = heap;
        b = mallet__page_pop(heap->current[c], req);
        if (b == NULL)
            b = mallet__malloc_slow(req, heap, (int)c);
        mallet__tls_heap = mine;
    }
    mallet__unlock(&mallet__prof_heap_lock);
    // Not yet seen by the program: no other thread can free it before the
    // record has it.
    if (b)
        note((uintptr_t)b, mallet__class_size(c), 0, (uintptr_t)mine, &st);
    mallet__prof_busy = 0;
    if (b == NULL)
        errno = ENOMEM;
    return b;
}

MALLET_PROF_FRAME void *mallet__sample_alloc(size_t req, unsigned c)
{
    // The merged stream's point falls in this allocation: it was the
    // profiler's, the guard's, or both, with the chances the two processes
    // give a block of its size (each the chance of its own hit, given that
    // one of them hit), so each process on its own stays exact.
    size_t size = mallet__class_size(c);
    bool prof = mallet__prof_enabled(), guard = mallet__guard_enabled();
    double pp = prof ? chance(rate(), size) : 0, pg = guard ? chance(mallet__hooks.guard_rate(), size) : 0;
    double only_prof = pp * (1 - pg), only_guard = pg * (1 - pp), any = 1 - (1 - pp) * (1 - pg);
    double u = (double)(rng_next(&large_rng) >> 11) * (1.0 / 9007199254740992.0) * any;
    bool to_prof = u < only_prof || u >= only_prof + only_guard;
    bool to_guard = u >= only_prof;
    if (to_guard) {
        void *b = mallet__hooks.guard_alloc(req, mallet__guard_align);
        if (b) {
            if (to_prof) {
                mallet__hooks.guard_prof(b, 0);
                mallet__prof_busy = 1;
                mallet_prof_stack_t st;
                capture(&st);
                note((uintptr_t)b, size, 0, (uintptr_t)mallet__heap_mine(), &st);
                mallet__prof_busy = 0;
            }
            return b;
        }
    }
    return to_prof ? mallet__prof_alloc(req, c) : NULL;
}

// --- frees ------------------------------------------------------------------------

void mallet__prof_free(mallet_page_t *page, uintptr_t p)
{
    // Dropped first: the block cannot be handed out again before it is freed.
    uintptr_t from = mallet__prof_drop(p, 0);
    mallet__lock(&mallet__prof_heap_lock);
    mallet__free_owned(mallet__prof_heap, page, p);
    mallet__unlock(&mallet__prof_heap_lock);
    // Counted as the free of the block would have been without the profiler.
    mallet_heap_t *heap = mallet__heap_mine();
    if (from != 0 && from != (uintptr_t)heap) {
        if (heap == &mallet__heap_empty)
            mallet__stat_orphan_add(MALLET_STAT_remote_frees, 1);
        else
            mallet__stat_add(heap, remote_frees, 1);
    }
}

// --- large blocks -------------------------------------------------------------

uint32_t mallet__prof_large_draw(size_t size)
{
    if (mallet__prof_busy)
        return 0;
    if (large_left <= 0 && large_rng == 0)
        large_left = draw_bytes(&large_rng);
    if (large_left > (double)size) {
        large_left -= (double)size;
        return 0;
    }
    large_left = draw_bytes(&large_rng);
    uint32_t id;
    do
        id = __atomic_add_fetch(&large_ids, 1, __ATOMIC_RELAXED);
    while (id == 0);
    return id;
}

MALLET_PROF_FRAME void mallet__prof_large_record(uintptr_t p, size_t size, uint32_t id)
{
    mallet__prof_busy = 1;
    mallet_prof_stack_t st;
    capture(&st);
    note(p, size, id, 0, &st);
    mallet__prof_busy = 0;
}

uint32_t mallet__prof_large_resize(size_t old, size_t len, uint32_t id)
{
    if (id == 0)
        return len > old && mallet__prof_enabled() ? mallet__prof_large_draw(len - old) : 0;
    if (len >= old)
        return id;
    // Kept with chance p(len) / p(old), p(s) = 1 - exp(-s / rate).
    double r = rate(), keep = 1;
    if (r > 0)
        keep = (1 - exp_neg((double)len / r)) / (1 - exp_neg((double)old / r));
    double u = (double)(rng_next(&large_rng) >> 11) * (1.0 / 9007199254740992.0);
    return u < keep ? id : 0;
}


// --- fork ---------------------------------------------------------------------

void mallet__prof_after_fork(void)
{
    mallet_lock_found_t found = mallet__lock_after_fork(&mallet__prof_heap_lock);
    if (found == MALLET_LOCK_WAS_LOST) {
        // A vanished thread was in the profiler's heap, whose fast path
        // takes no other lock: the heap is given up. Frees of its blocks
        // drop their samples and land on its pages' thread_free, as for
        // any heap the child forgot.
        mallet_heap_t *gone = mallet__prof_heap;
        if (gone)
            gone->shared = 0;
        mallet__prof_heap_gone = gone;
        mallet__prof_heap = NULL;
    }
    if (found != MALLET_LOCK_WAS_MINE)
        mallet__unlock(&mallet__prof_heap_lock);
    found = mallet__lock_after_fork(&mallet__prof_lock);
    if (found == MALLET_LOCK_WAS_LOST)
        mallet__prof_record_repair();
    if (found != MALLET_LOCK_WAS_MINE) {
        mallet__prof_peak_reset();
        mallet__unlock(&mallet__prof_lock);
    }
    mallet__prof_dump_after_fork();
}
