// SPDX-License-Identifier: MIT
//
// guard.c -- the guarded pool: placing a sampled block between
// inaccessible pages, freeing it, and turning a fault in the pool into a
// report. guard.h explains the design.
#define _GNU_SOURCE
#include "guard.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "debug/debug.h"
#include "base/base.h"
#include "mem/mem.h"
#include "os/os.h"
#include "prof/prof.h"

#define GUARD_WINDOW ((size_t)64 << 10)   // bytes of address space per slot
#define GUARD_DEPTH 32                    // frames kept per stack
#define LEFT_ONE_IN 4                     // one block in this many starts flush left
// A large block counts this many bytes toward the guard's countdown,
// whatever its size: a guarded one is a fresh mapping whose every touched
// page faults, a cost that grows with the block, so large blocks are
// guarded about as often as small ones of this size.
#define LARGE_WEIGHT ((size_t)16 << 10)

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_LIVE, SLOT_FREED };

// A slot's place (own_map, map, map_len, block, req) is read by any thread
// that looks an address up while its owner may be placing a new block:
// each word is read and written whole. A reader that catches a slot half
// placed sees it BUSY, or at worst names the wrong neighbour in a report.
#define PLACE_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define PLACE_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

typedef struct guard_stack {
    uint32_t depth;                       // frames
    int32_t tid;                          // the thread
    uintptr_t pc[GUARD_DEPTH];            // innermost first
} guard_stack_t;

typedef struct guard_slot {
    uint32_t state;                       // SLOT_*, changed by compare-and-swap
    uint32_t own_map;                     // the block is in a mapping of its own, not the window
    uintptr_t block;                      // the block handed out
    size_t req;                           // its size
    uintptr_t open;                       // the pages opened for it: [open, open + open_len)
    size_t open_len;
    uintptr_t map;                        // own_map: the whole mapping, guard pages included
    size_t map_len;
    uint8_t fill;                         // the slack's pattern byte (random per block)
    int64_t prof_id;                      // the profiler's sample (-1: none)
    guard_stack_t alloc, free;            // where it was allocated, freed
} guard_slot_t;

static struct {
    uint32_t state;                       // 0 not started, 1 starting, 2 ready, 3 failed
    uintptr_t base;                       // the windows: [base, base + slots * GUARD_WINDOW + page)
    size_t span;                          // their bytes, the trailing guard page included
    uint32_t slots;
    guard_slot_t *slot;
    uint32_t cursor;                      // the next slot to try (round-robin)
    uint64_t live, total;                 // blocks live, blocks ever
    uint64_t bytes, opened;               // the live blocks' bytes, their pages' bytes
    uint32_t own_maps;                    // slots whose block has a mapping of its own
    uint64_t secret;                      // makes the slack's pattern unpredictable
    struct sigaction old_segv, old_bus;   // the handlers before ours
} pool;

static __thread double large_left __attribute__((tls_model("initial-exec")));
static __thread uint64_t large_rng __attribute__((tls_model("initial-exec")));
static int64_t guard_rate = -1;           // < 0: not read yet

static void on_fault(int sig, siginfo_t *info, void *uctx);
static guard_slot_t *slot_near(uintptr_t a);

double mallet__guard_rate(void)
{
    return mallet__sample_rate_once(&guard_rate, mallet__option(guard_sample_kb));
}

static int32_t thread_id(void)
{
    return (int32_t)syscall(SYS_gettid);
}

// --- starting the pool ----------------------------------------------------------

static bool install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    // On the program's signal stack if it has one: a stack overflow of
    // its own must still reach its handler through ours.
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSEGV, &sa, &pool.old_segv) == 0 && sigaction(SIGBUS, &sa, &pool.old_bus) == 0;
}

static bool pool_start(void)
{
    uint32_t s = __atomic_load_n(&pool.state, __ATOMIC_ACQUIRE);
    if (__builtin_expect(s == 2, 1))
        return true;
    if (s == 3)
        return false;
    uint32_t zero = 0;
    if (s == 0 && __atomic_compare_exchange_n(&pool.state, &zero, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        int64_t n = mallet__option(guard_slots);
        pool.slots = n < 1 ? 1 : n > 65536 ? 65536 : (uint32_t)n;
        pool.span = pool.slots * GUARD_WINDOW + mallet__os_page_size();
        void *base = mallet__os_reserve(pool.span, 0);
        pool.slot = mallet__os_map((pool.slots * sizeof(guard_slot_t) + mallet__os_page_size() - 1) &
                                   ~(mallet__os_page_size() - 1), 0);
        pool.secret = mallet__random_next();
        pool.base = (uintptr_t)base;
        bool ok = base && pool.slot && install_handlers();
        __atomic_store_n(&pool.state, ok ? 2u : 3u, __ATOMIC_RELEASE);
        return ok;
    }
    // Another thread is starting it: this allocation is not guarded. (A
    // fork child whose parent was starting it stays without the pool.)
    return false;
}

// --- placing a block --------------------------------------------------------------

static inline size_t page_down(size_t a)
{
    return a & ~(mallet__os_page_size() - 1);
}

static inline size_t page_up(size_t a)
{
    return (a + mallet__os_page_size() - 1) & ~(mallet__os_page_size() - 1);
}

// The start of a block of req bytes aligned to align in [lo, hi), flush
// with hi or with lo; 0 when it does not fit.
static uintptr_t place(uintptr_t lo, uintptr_t hi, size_t req, size_t align, bool left)
{
    if (hi - lo < req)
        return 0;
    uintptr_t start = left ? (lo + align - 1) & ~(align - 1) : (hi - req) & ~(align - 1);
    return start >= lo && start <= hi - req ? start : 0;
}

// The offset of the first byte of p[0 .. n) that is not f; n when none.
static size_t first_not(const uint8_t *p, size_t n, uint8_t f)
{
    uint64_t word = 0x0101010101010101ull * f;
    size_t i = 0;
    for (; i < n && ((uintptr_t)(p + i) & 7); i++)
        if (p[i] != f)
            return i;
    for (; i + 8 <= n && *(const uint64_t *)(const void *)(p + i) == word; i += 8)
        ;
    for (; i < n; i++)
        if (p[i] != f)
            return i;
    return n;
}

// The opened pages around the block hold the slot's pattern byte.
static void slack_fill(guard_slot_t *s)
{
    memset((void *)s->open, s->fill, s->block - s->open);
    memset((void *)(s->block + s->req), s->fill, s->open + s->open_len - (s->block + s->req));
}

// The first damaged byte of the slack; 0 when it is intact.
static uintptr_t slack_damage(const guard_slot_t *s)
{
    size_t before = s->block - s->open, at = first_not((const uint8_t *)s->open, before, s->fill);
    if (at < before)
        return s->open + at;
    uintptr_t end = s->block + s->req;
    size_t after = s->open + s->open_len - end;
    at = first_not((const uint8_t *)end, after, s->fill);
    return at < after ? end + at : 0;
}

// A slot free to take, claimed (SLOT_BUSY); NULL when every one is live.
static guard_slot_t *slot_claim(void)
{
    if (__atomic_load_n(&pool.live, __ATOMIC_RELAXED) >= pool.slots)
        return NULL;
    for (uint32_t tries = 0; tries < pool.slots; tries++) {
        uint32_t i = __atomic_fetch_add(&pool.cursor, 1, __ATOMIC_RELAXED) % pool.slots;
        guard_slot_t *s = &pool.slot[i];
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
        if ((st == SLOT_FREE || st == SLOT_FREED) &&
            __atomic_compare_exchange_n(&s->state, &st, SLOT_BUSY, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return s;
    }
    return NULL;
}

static inline uintptr_t window_of(const guard_slot_t *s)
{
    return pool.base + (size_t)(s - pool.slot) * GUARD_WINDOW;
}

// Place the block in the slot's window, or in a mapping of its own; false
// (the slot untouched) when the OS says no.
static bool slot_open(guard_slot_t *s, size_t req, size_t align, bool left)
{
    size_t page = mallet__os_page_size();
    uintptr_t w = window_of(s);
    uintptr_t start = place(w + page, w + GUARD_WINDOW, req, align, left);
    uintptr_t map = 0;
    size_t map_len = 0;
    if (start == 0) {
        // A mapping of its own: a guard page, the block's pages, a guard page.
        size_t inner = page_up(req + align - 1);
        if (inner < req || inner > ((size_t)1 << 46))
            return false;
        map_len = inner + 2 * page;
        void *m = mallet__os_reserve(map_len, 0);
        if (m == NULL)
            return false;
        map = (uintptr_t)m;
        start = place(map + page, map + page + inner, req, align, left);
    }
    uintptr_t open = page_down(start), open_end = page_up(start + req);
    if (open_end > open && !mallet__os_commit((void *)open, open_end - open)) {
        if (map)
            mallet__os_release((void *)map, map_len);
        return false;
    }
    // The slot's last block's mapping goes once the slot no longer names
    // it: another thread may be given its range at once.
    uintptr_t old = s->own_map ? s->map : 0;
    size_t old_len = s->map_len;
    if (map)
        __atomic_add_fetch(&pool.own_maps, 1, __ATOMIC_RELAXED);
    PLACE_SET(s->own_map, map != 0);
    PLACE_SET(s->map, map);
    PLACE_SET(s->map_len, map_len);
    if (old) {
        mallet__os_release((void *)old, old_len);
        __atomic_sub_fetch(&pool.own_maps, 1, __ATOMIC_RELAXED);
    }
    PLACE_SET(s->block, start);
    PLACE_SET(s->req, req);
    s->open = open;
    s->open_len = open_end - open;
    return true;
}

// Inlined into its callers: the stack starts at the program's call.
static void stack_take(guard_stack_t *st)
{
    st->tid = thread_id();
    st->depth = mallet__stack_capture(st->pc, GUARD_DEPTH);
}

MALLET_PROF_FRAME void *mallet__guard_alloc(size_t req, size_t align)
{
    if (!mallet__guard_enabled() || !pool_start())
        return NULL;
    // malloc's alignment: what any object that fits in req bytes needs.
    size_t natural = req >= 16 ? 16 : req <= 1 ? 1 : (size_t)1 << (63 - __builtin_clzl(req));
    if (align < natural)
        align = natural;
    guard_slot_t *s = slot_claim();
    if (s == NULL)
        return NULL;
    uint64_t r = mallet__random_next();
    if (!slot_open(s, req, align, r % LEFT_ONE_IN == 0)) {
        __atomic_store_n(&s->state, s->block ? SLOT_FREED : SLOT_FREE, __ATOMIC_RELEASE);
        return NULL;
    }
    uint8_t fill = (uint8_t)(pool.secret >> 8 ^ r >> 32);
    s->fill = fill ? fill : 0x5a;         // not zero: fresh pages are
    s->prof_id = -1;
    slack_fill(s);
    stack_take(&s->alloc);
    s->free.depth = 0;
    // A page-aligned block may start where a large block lived before the
    // range was given back: its record's tombstone must not take this
    // block's free for a double free.
    if ((s->block & (mallet__os_page_size() - 1)) == 0)
        mallet__large_forget(s->block);
    MALLET_TRACK_MALLOC((void *)s->block, req, req, 1);
    __atomic_add_fetch(&pool.live, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool.total, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool.bytes, req, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool.opened, s->open_len, __ATOMIC_RELAXED);
    __atomic_store_n(&s->state, SLOT_LIVE, __ATOMIC_RELEASE);
    return (void *)s->block;
}

void mallet__guard_prof(void *p, uint32_t id)
{
    slot_near((uintptr_t)p)->prof_id = id;
}

bool mallet__guard_large_draw(size_t size)
{
    if (!mallet__guard_enabled())
        return false;
    if (large_left <= 0 && large_rng == 0)
        large_left = mallet__sample_bytes(&large_rng, mallet__guard_rate());
    (void)size;
    if (large_left > (double)LARGE_WEIGHT) {
        large_left -= (double)LARGE_WEIGHT;
        return false;
    }
    large_left = mallet__sample_bytes(&large_rng, mallet__guard_rate());
    return true;
}

// --- finding a block ----------------------------------------------------------------

bool mallet__guard_owns(const void *p)
{
    if (__atomic_load_n(&pool.state, __ATOMIC_ACQUIRE) != 2)
        return false;
    uintptr_t a = (uintptr_t)p;
    if (a - pool.base < pool.span)
        return true;
    if (__atomic_load_n(&pool.own_maps, __ATOMIC_RELAXED) == 0)
        return false;
    for (uint32_t i = 0; i < pool.slots; i++) {
        const guard_slot_t *s = &pool.slot[i];
        if (PLACE_GET(s->own_map) && a - PLACE_GET(s->map) < PLACE_GET(s->map_len))
            return true;
    }
    return false;
}

// How far a is from s's block: 0 inside it.
static size_t distance(const guard_slot_t *s, uintptr_t a)
{
    uintptr_t block = PLACE_GET(s->block);
    size_t req = PLACE_GET(s->req);
    if (a < block)
        return block - a;
    return a < block + req ? 0 : a - (block + req) + 1;
}

// The block an address of the pool belongs to: the live block that starts
// there, else the one in a mapping of its own that holds it, else the
// nearest of its window's and the two neighbours'. NULL when none was
// ever placed there.
static guard_slot_t *slot_near(uintptr_t a)
{
    guard_slot_t *best = NULL;
    if (__atomic_load_n(&pool.own_maps, __ATOMIC_RELAXED)) {
        for (uint32_t i = 0; i < pool.slots; i++) {
            guard_slot_t *s = &pool.slot[i];
            uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
            if (!PLACE_GET(s->own_map) || a - PLACE_GET(s->map) >= PLACE_GET(s->map_len) || st == SLOT_FREE)
                continue;
            if (st == SLOT_LIVE && PLACE_GET(s->block) == a)
                return s;
            if (best == NULL)
                best = s;
        }
    }
    if (best || a - pool.base >= pool.span)
        return best;
    size_t w = (a - pool.base) / GUARD_WINDOW;
    for (size_t i = w > 0 ? w - 1 : 0; i <= w + 1 && i < pool.slots; i++) {
        guard_slot_t *s = &pool.slot[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SLOT_FREE || PLACE_GET(s->own_map) ||
            PLACE_GET(s->block) == 0)
            continue;
        if (best == NULL || distance(s, a) < distance(best, a))
            best = s;
    }
    return best;
}

// --- reports ------------------------------------------------------------------------

static void stack_write(mallet_buf_t *b, const char *title, const guard_stack_t *st)
{
    mallet__buf_str(b, title);
    if (st->tid) {
        mallet__buf_str(b, " by thread ");
        mallet__buf_u64(b, (uint64_t)st->tid);
    }
    mallet__buf_str(b, ":\n");
    mallet__buf_flush(b, 2);
    mallet__frames_write(2, st->pc, st->depth);
}

// "WHAT 0xADDR, N bytes into|past the end of|before a guarded block of M
// bytes at 0xBLOCK, in thread T", then the block's stacks, then the stack
// of the access (pc[0 .. n)) or, with n == 0, of the call.
MALLET_NORETURN MALLET_COLD static void report(const char *func, const char *what, uintptr_t a,
                                               const guard_slot_t *s, const uintptr_t *pc, uint32_t n)
{
    char store[512];
    mallet_buf_t b = { store, sizeof store, 0 };
    mallet__buf_str(&b, "mallet: ");
    if (func) {
        mallet__buf_str(&b, func);
        mallet__buf_str(&b, "(): ");
    }
    mallet__buf_str(&b, what);
    mallet__buf_str(&b, " ");
    mallet__buf_hex(&b, a);
    if (s) {
        mallet__buf_str(&b, ", ");
        if (a < s->block) {
            mallet__buf_u64(&b, s->block - a);
            mallet__buf_str(&b, " bytes before");
        } else if (a < s->block + s->req) {
            mallet__buf_u64(&b, a - s->block);
            mallet__buf_str(&b, " bytes into");
        } else {
            mallet__buf_u64(&b, a - (s->block + s->req));
            mallet__buf_str(&b, " bytes past the end of");
        }
        mallet__buf_str(&b, " a guarded block of ");
        mallet__buf_u64(&b, s->req);
        mallet__buf_str(&b, " bytes at ");
        mallet__buf_hex(&b, s->block);
    }
    mallet__buf_str(&b, ", in thread ");
    mallet__buf_u64(&b, (uint64_t)thread_id());
    mallet__buf_str(&b, "\n");
    mallet__buf_str(&b, n ? "  the access:\n" : "  the call:\n");
    mallet__buf_flush(&b, 2);
    if (n)
        mallet__frames_write(2, pc, n);
    else if (mallet__report_stack)
        mallet__report_stack(2);
    if (s) {
        stack_write(&b, "  allocated", &s->alloc);
        if (s->free.depth)
            stack_write(&b, "  freed", &s->free);
    }
    abort();
}

// --- freeing ----------------------------------------------------------------------

// The slot of p, a live guarded block passed to func; anything else is
// reported: a freed block as a double free when func frees, else as a use
// after free.
static guard_slot_t *slot_of_call(const void *p, const char *func, bool frees)
{
    uintptr_t a = (uintptr_t)p;
    guard_slot_t *s = slot_near(a);
    if (s == NULL)
        report(func, "invalid pointer", a, NULL, NULL, 0);
    uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    if (PLACE_GET(s->block) != a)
        report(func, st == SLOT_LIVE ? "invalid pointer" : "invalid pointer (freed)", a, s, NULL, 0);
    if (st != SLOT_LIVE)
        report(func, frees ? "double free of" : "use after free of", a, s, NULL, 0);
    return s;
}

MALLET_PROF_FRAME void mallet__guard_free(void *p, const char *func)
{
    guard_slot_t *s = slot_of_call(p, func, true);
    uint32_t live = SLOT_LIVE;
    if (!__atomic_compare_exchange_n(&s->state, &live, SLOT_BUSY, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        report(func, "double free of", (uintptr_t)p, s, NULL, 0);     // another thread freed it first
    uintptr_t bad = slack_damage(s);
    if (bad)
        report(func, bad < s->block ? "heap underflow found at free, at" : "heap overflow found at free, at", bad, s,
               NULL, 0);
    stack_take(&s->free);
    MALLET_TRACK_FREE(p, s->req);
    if (s->open_len && !mallet__os_decommit((void *)s->open, s->open_len))
        mallet__os_protect_none((void *)s->open, s->open_len);
    if (s->prof_id >= 0)
        mallet__prof_drop(s->block, (uint32_t)s->prof_id);
    __atomic_sub_fetch(&pool.live, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&pool.bytes, s->req, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&pool.opened, s->open_len, __ATOMIC_RELAXED);
    __atomic_store_n(&s->state, SLOT_FREED, __ATOMIC_RELEASE);
}

size_t mallet__guard_usable(const void *p, const char *func)
{
    return slot_of_call(p, func, strcmp(func, "realloc") == 0)->req;
}

void mallet__guard_totals(mallet_guard_totals_t *t)
{
    t->live = __atomic_load_n(&pool.live, __ATOMIC_RELAXED);
    t->total = __atomic_load_n(&pool.total, __ATOMIC_RELAXED);
    t->bytes = __atomic_load_n(&pool.bytes, __ATOMIC_RELAXED);
    t->opened = __atomic_load_n(&pool.opened, __ATOMIC_RELAXED);
}

// --- the fault handler ------------------------------------------------------------

// Hand a fault that is not the pool's to the handler that was there
// before, or to the default action.
static void chain(int sig, siginfo_t *info, void *uctx)
{
    const struct sigaction *old = sig == SIGSEGV ? &pool.old_segv : &pool.old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, info, uctx);
        return;
    }
    if (old->sa_handler == SIG_IGN && info->si_code <= 0)
        return;                           // sent, and ignored: as before
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    // The default action: a fault comes back when the handler returns and
    // now kills the process; a signal someone sent is sent again, and
    // delivered when the handler returns.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    if (info->si_code <= 0)
        syscall(SYS_tgkill, getpid(), thread_id(), sig);
}

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
    uintptr_t a = (uintptr_t)info->si_addr;
    // si_code > 0: a fault, not a signal someone sent.
    if (info->si_code <= 0 || !mallet__guard_owns((void *)a)) {
        chain(sig, info, uctx);
        return;
    }
    guard_slot_t *s = slot_near(a);
    const ucontext_t *uc = uctx;
    uintptr_t pc[GUARD_DEPTH];
    uint32_t n = mallet__stack_of_context((uintptr_t)uc->uc_mcontext.gregs[REG_RIP],
                                          (uintptr_t)uc->uc_mcontext.gregs[REG_RSP],
                                          (uintptr_t)uc->uc_mcontext.gregs[REG_RBP], pc, GUARD_DEPTH);
    bool write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    const char *what;
    if (s == NULL)
        what = write ? "wild write into the guarded pool at" : "wild read from the guarded pool at";
    else if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_LIVE)
        what = write ? "use after free: a write at" : "use after free: a read at";
    else if (a < s->block)
        what = write ? "heap underflow: a write at" : "heap underflow: a read at";
    else
        what = write ? "heap overflow: a write at" : "heap overflow: a read at";
    report(NULL, what, a, s, pc, n);
}
