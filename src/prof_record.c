// SPDX-License-Identifier: MIT
//
// prof_record.c -- the profiler's record: call stacks, counts per stack and
// block size, the live samples by address, and the unwinder that takes the
// stacks.
//
// Three structures, all in memory mapped here (never in the heap):
//   arena     the frames of each bucket, appended, never freed;
//   buckets   one per (stack, block size): sampled blocks live and ever;
//             open addressing; never removed, so an index stays valid;
//   samples   live sampled block -> its bucket; open addressing with
//             linear probing, deletion by shifting back (no tombstones).
// A table grows (doubles, rehashed into a new mapping) at half full. All of
// it is guarded by mallet__prof_lock; the unwinder runs outside the lock.
//
// One bucket per block size, not per stack alone: a profile reader scales a
// record by its average block size, which is exact only when every block of
// the record has that size.
#include <unwind.h>

#include "lock.h"
#include "os/os.h"
#include "prof.h"

mallet_lock_t mallet__prof_lock;
double mallet__prof_live_est;

typedef struct prof_sample {
    uintptr_t addr;        // block address; 0: empty slot
    uint32_t bucket;       // index in the bucket table
    uint32_t id;           // large blocks: the id in the block's record (else 0)
    uintptr_t heap;        // small blocks: the heap of the thread that allocated it
} prof_sample_t;

static struct {
    mallet_prof_bucket_t *bucket;   // bucket table
    size_t bucket_cap;              // its slots (a power of two, or 0)
    size_t bucket_used;             // slots in use
    prof_sample_t *sample;          // sample table
    size_t sample_cap;              // its slots (a power of two, or 0)
    size_t sample_used;             // live samples
    char *arena;                    // the current arena chunk
    size_t arena_left;              // bytes left in it
} rec;

#define ARENA_CHUNK ((size_t)256 << 10)

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

void mallet__prof_capture(mallet_prof_stack_t *out)
{
    unwind_state_t st;
    st.n = 0;
    _Unwind_Backtrace(unwind_step, &st);
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

// --- tables -----------------------------------------------------------------------

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t stack_hash(const mallet_prof_stack_t *st, size_t size)
{
    uint64_t h = mix(size + 1);
    for (uint32_t i = 0; i < st->depth; i++)
        h = mix(h ^ st->pc[i]);
    return h | 1;          // never 0: 0 marks an empty slot
}

static void *table_map(size_t bytes)
{
    return mallet__os_map(bytes, 0);
}

static uintptr_t *arena_copy(const uintptr_t *pc, uint32_t depth)
{
    size_t bytes = (size_t)depth * sizeof *pc;
    if (bytes > rec.arena_left) {
        char *chunk = table_map(ARENA_CHUNK);
        if (chunk == NULL)
            return NULL;
        rec.arena = chunk;
        rec.arena_left = ARENA_CHUNK;
    }
    uintptr_t *to = (uintptr_t *)rec.arena;
    for (uint32_t i = 0; i < depth; i++)
        to[i] = pc[i];
    rec.arena += bytes;
    rec.arena_left -= bytes;
    return to;
}

static bool buckets_grow(void)
{
    size_t cap = rec.bucket_cap ? rec.bucket_cap * 2 : 1024;
    mallet_prof_bucket_t *t = table_map(cap * sizeof *t);
    if (t == NULL)
        return false;
    for (size_t i = 0; i < rec.bucket_cap; i++) {
        mallet_prof_bucket_t *b = &rec.bucket[i];
        if (b->hash == 0)
            continue;
        size_t j = b->hash & (cap - 1);
        while (t[j].hash != 0)
            j = (j + 1) & (cap - 1);
        t[j] = *b;
    }
    // Sample entries name buckets by index: move them along.
    for (size_t i = 0; i < rec.sample_cap; i++) {
        prof_sample_t *s = &rec.sample[i];
        if (s->addr == 0)
            continue;
        uint64_t h = rec.bucket[s->bucket].hash;
        size_t j = h & (cap - 1);
        while (t[j].hash != h || t[j].pc != rec.bucket[s->bucket].pc)
            j = (j + 1) & (cap - 1);
        s->bucket = (uint32_t)j;
    }
    if (rec.bucket)
        mallet__os_release(rec.bucket, rec.bucket_cap * sizeof *t);
    rec.bucket = t;
    rec.bucket_cap = cap;
    return true;
}

static bool same_stack(const mallet_prof_bucket_t *b, const mallet_prof_stack_t *st, size_t size)
{
    if (b->size != size || b->depth != st->depth)
        return false;
    for (uint32_t i = 0; i < st->depth; i++)
        if (b->pc[i] != st->pc[i])
            return false;
    return true;
}

// The bucket of (stack, size), made when new; -1 when out of memory.
static long bucket_find(const mallet_prof_stack_t *st, size_t size)
{
    if ((rec.bucket_used + 1) * 2 > rec.bucket_cap && !buckets_grow())
        return -1;
    uint64_t h = stack_hash(st, size);
    size_t j = h & (rec.bucket_cap - 1);
    for (; rec.bucket[j].hash != 0; j = (j + 1) & (rec.bucket_cap - 1))
        if (rec.bucket[j].hash == h && same_stack(&rec.bucket[j], st, size))
            return (long)j;
    uintptr_t *pc = arena_copy(st->pc, st->depth);
    if (pc == NULL)
        return -1;
    rec.bucket[j] = (mallet_prof_bucket_t){ .hash = h, .size = size, .depth = st->depth, .pc = pc };
    rec.bucket_used++;
    return (long)j;
}

static size_t sample_slot(uintptr_t addr, size_t cap)
{
    return mix(addr) & (cap - 1);
}

static bool samples_grow(void)
{
    size_t cap = rec.sample_cap ? rec.sample_cap * 2 : 1024;
    prof_sample_t *t = table_map(cap * sizeof *t);
    if (t == NULL)
        return false;
    for (size_t i = 0; i < rec.sample_cap; i++) {
        if (rec.sample[i].addr == 0)
            continue;
        size_t j = sample_slot(rec.sample[i].addr, cap);
        while (t[j].addr != 0)
            j = (j + 1) & (cap - 1);
        t[j] = rec.sample[i];
    }
    if (rec.sample)
        mallet__os_release(rec.sample, rec.sample_cap * sizeof *t);
    rec.sample = t;
    rec.sample_cap = cap;
    return true;
}

bool mallet__prof_note(uintptr_t p, size_t size, uint32_t id, uintptr_t heap, const mallet_prof_stack_t *st)
{
    if ((rec.sample_used + 1) * 2 > rec.sample_cap && !samples_grow())
        return false;
    long b = bucket_find(st, size);
    if (b < 0)
        return false;
    // A large block's address may be listed twice for a moment: freed by
    // one thread, mapped again for another before the first drops its
    // sample. The ids tell the two apart.
    size_t j = sample_slot(p, rec.sample_cap);
    while (rec.sample[j].addr != 0)
        j = (j + 1) & (rec.sample_cap - 1);
    rec.sample[j] = (prof_sample_t){ .addr = p, .bucket = (uint32_t)b, .id = id, .heap = heap };
    rec.sample_used++;
    rec.bucket[b].live++;
    rec.bucket[b].allocs++;
    mallet__prof_live_est += mallet__prof_weight(size);
    return true;
}

uintptr_t mallet__prof_drop(uintptr_t p, uint32_t id)
{
    if (rec.sample_cap == 0)
        return 0;
    size_t mask = rec.sample_cap - 1, j = sample_slot(p, rec.sample_cap);
    for (; rec.sample[j].addr != 0; j = (j + 1) & mask)
        if (rec.sample[j].addr == p && rec.sample[j].id == id)
            break;
    if (rec.sample[j].addr == 0)
        return 0;          // sampled before the record was lost (a fork child)
    uintptr_t heap = rec.sample[j].heap;
    mallet_prof_bucket_t *b = &rec.bucket[rec.sample[j].bucket];
    b->live--;
    mallet__prof_live_est -= mallet__prof_weight(b->size);
    rec.sample_used--;
    // Shift back the entries after j that would no longer be found.
    for (size_t k = (j + 1) & mask; rec.sample[k].addr != 0; k = (k + 1) & mask) {
        size_t home = sample_slot(rec.sample[k].addr, rec.sample_cap);
        if (((k - home) & mask) >= ((k - j) & mask)) {
            rec.sample[j] = rec.sample[k];
            j = k;
        }
    }
    rec.sample[j].addr = 0;
    return heap;
}

const mallet_prof_bucket_t *mallet__prof_buckets(size_t *cap)
{
    *cap = rec.bucket_cap;
    return rec.bucket;
}

void mallet__prof_record_forget(void)
{
    // The tables may be half updated: they are left mapped and unused.
    rec.bucket = NULL;
    rec.sample = NULL;
    rec.bucket_cap = rec.bucket_used = rec.sample_cap = rec.sample_used = 0;
    rec.arena = NULL;
    rec.arena_left = 0;
    mallet__prof_live_est = 0;
}
