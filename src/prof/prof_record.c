// SPDX-License-Identifier: MIT
//
// prof_record.c -- the profiler's record: call stacks with their counts,
// the live samples by address.
//
//   arena     buckets, one per (stack, block size), appended, never freed:
//             a bucket's address is its name for good;
//   index     hash of (frames, size) -> bucket; open addressing;
//   samples   live sampled block -> its bucket; open addressing with
//             linear probing, deletion by shifting back (no tombstones).
// All of it is guarded by mallet__prof_lock, held for short stretches only
// (a profile is written from a snapshot of the counts, prof_dump.c).
//
// A fork child may find prof_lock held by a thread that did not come along,
// in the middle of a change. Every change is made so that the child can
// rebuild from what it finds (mallet__prof_record_repair): a table grows
// into a new mapping published with one store; a bucket is whole before the
// index points to it; a sample slot's address is stored last, so a slot
// with an address is whole -- a shift may leave one sample in two slots,
// never in none. The repair keeps each sample once and counts the live
// blocks of every bucket again from the samples.
//
// One bucket per block size, not per stack alone: a profile reader scales a
// record by its average block size, which is exact only when every block of
// the record has that size.
#include "base/base.h"
#include "os/os.h"
#include "prof.h"

mallet_lock_t mallet__prof_lock;
double mallet__prof_live_est;

typedef struct prof_index {
    size_t cap;                        // slots (a power of two)
    mallet_prof_bucket_t *slot[];      // NULL: empty
} prof_index_t;

typedef struct prof_sample {
    uintptr_t addr;                    // block address; 0: empty slot (stored last)
    mallet_prof_bucket_t *bucket;      // its bucket
    uintptr_t heap;                    // small blocks: the allocating thread's heap
    uint32_t id;                       // large blocks: the id in the block's record (else 0)
} prof_sample_t;

typedef struct prof_samples {
    size_t cap;                        // slots (a power of two)
    prof_sample_t slot[];
} prof_samples_t;

static struct {
    prof_index_t *index;               // published with one store
    size_t buckets;                    // buckets in it
    prof_samples_t *samples;           // published with one store
    size_t used;                       // live samples
    char *arena;                       // the current arena chunk's free part
    size_t arena_left;                 // its bytes
    double peak_written;               // live estimate of the last peak profile
} rec;

#define ARENA_CHUNK ((size_t)256 << 10)
// Estimates below this are not worth a peak profile.
#define PEAK_FLOOR ((double)(1 << 20))

// --- tables -----------------------------------------------------------------------

static uint64_t stack_hash(const mallet_prof_stack_t *st, size_t size)
{
    uint64_t h = mallet__mix64(size + 1);
    for (uint32_t i = 0; i < st->depth; i++)
        h = mallet__mix64(h ^ st->pc[i]);
    return h;
}

static mallet_prof_bucket_t *bucket_new(const mallet_prof_stack_t *st, size_t size, uint64_t hash)
{
    size_t bytes = (sizeof(mallet_prof_bucket_t) + st->depth * sizeof(uintptr_t) + 15) & ~(size_t)15;
    if (bytes > rec.arena_left) {
        char *chunk = mallet__os_map(ARENA_CHUNK, 0);
        if (chunk == NULL)
            return NULL;
        rec.arena = chunk;
        rec.arena_left = ARENA_CHUNK;
    }
    mallet_prof_bucket_t *b = (mallet_prof_bucket_t *)rec.arena;
    rec.arena += bytes;
    rec.arena_left -= bytes;
    b->hash = hash;
    b->size = size;
    // The rate is fixed by the time a bucket is made (a sample was drawn).
    b->weight = mallet__prof_weight(size);
    b->depth = st->depth;
    for (uint32_t i = 0; i < st->depth; i++)
        b->pc[i] = st->pc[i];
    return b;
}

// Put b in index t (which has room).
static void index_put(prof_index_t *t, mallet_prof_bucket_t *b)
{
    size_t j = b->hash & (t->cap - 1);
    while (t->slot[j] != NULL)
        j = (j + 1) & (t->cap - 1);
    __atomic_store_n(&t->slot[j], b, __ATOMIC_RELEASE);
}

static bool index_grow(void)
{
    prof_index_t *old = rec.index;
    size_t cap = old ? old->cap * 2 : 1024;
    prof_index_t *t = mallet__os_map(sizeof *t + cap * sizeof t->slot[0], 0);
    if (t == NULL)
        return false;
    t->cap = cap;
    for (size_t i = 0; old && i < old->cap; i++)
        if (old->slot[i])
            index_put(t, old->slot[i]);
    __atomic_store_n(&rec.index, t, __ATOMIC_RELEASE);
    if (old)
        mallet__os_release(old, sizeof *old + old->cap * sizeof old->slot[0]);
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

// The bucket of (stack, size), made when new; NULL when out of memory.
static mallet_prof_bucket_t *bucket_find(const mallet_prof_stack_t *st, size_t size)
{
    if ((rec.buckets + 1) * 2 > (rec.index ? rec.index->cap : 0) && !index_grow())
        return NULL;
    prof_index_t *t = rec.index;
    uint64_t h = stack_hash(st, size);
    size_t j = h & (t->cap - 1);
    for (; t->slot[j] != NULL; j = (j + 1) & (t->cap - 1))
        if (t->slot[j]->hash == h && same_stack(t->slot[j], st, size))
            return t->slot[j];
    mallet_prof_bucket_t *b = bucket_new(st, size, h);
    if (b == NULL)
        return NULL;
    __atomic_store_n(&t->slot[j], b, __ATOMIC_RELEASE);   // whole before it is found
    rec.buckets++;
    return b;
}

static size_t sample_home(uintptr_t addr, size_t cap)
{
    return mallet__mix64(addr) & (cap - 1);
}

// Write s into slot (empty, or being overwritten): the address last.
static void sample_put(prof_sample_t *slot, const prof_sample_t *s)
{
    __atomic_store_n(&slot->addr, 0, __ATOMIC_RELAXED);
    slot->bucket = s->bucket;
    slot->heap = s->heap;
    slot->id = s->id;
    __atomic_store_n(&slot->addr, s->addr, __ATOMIC_RELEASE);
}

static void samples_insert(prof_samples_t *t, const prof_sample_t *s)
{
    size_t j = sample_home(s->addr, t->cap);
    while (t->slot[j].addr != 0)
        j = (j + 1) & (t->cap - 1);
    sample_put(&t->slot[j], s);
}

static prof_samples_t *samples_map(size_t cap)
{
    prof_samples_t *t = mallet__os_map(sizeof *t + cap * sizeof t->slot[0], 0);
    if (t)
        t->cap = cap;
    return t;
}

static void samples_release(prof_samples_t *t)
{
    mallet__os_release(t, sizeof *t + t->cap * sizeof t->slot[0]);
}

static bool samples_grow(void)
{
    prof_samples_t *old = rec.samples, *t = samples_map(old ? old->cap * 2 : 1024);
    if (t == NULL)
        return false;
    for (size_t i = 0; old && i < old->cap; i++)
        if (old->slot[i].addr != 0)
            samples_insert(t, &old->slot[i]);
    __atomic_store_n(&rec.samples, t, __ATOMIC_RELEASE);
    if (old)
        samples_release(old);
    return true;
}

// Count a sampled block; its bucket, or NULL when out of memory. Lock held.
static mallet_prof_bucket_t *note_locked(uintptr_t p, size_t size, uint32_t id, uintptr_t heap,
                                         const mallet_prof_stack_t *st)
{
    mallet_prof_bucket_t *b = NULL;
    if (((rec.used + 1) * 2 <= (rec.samples ? rec.samples->cap : 0) || samples_grow()))
        b = bucket_find(st, size);
    if (b == NULL)
        return NULL;
    // A large block's address may be listed twice for a moment: freed by
    // one thread, mapped again for another before the first drops its
    // sample. The ids tell the two apart.
    samples_insert(rec.samples, &(prof_sample_t){ .addr = p, .bucket = b, .heap = heap, .id = id });
    rec.used++;
    b->live++;
    b->allocs++;
    mallet__prof_live_est += b->weight;
    return b;
}

bool mallet__prof_note(uintptr_t p, size_t size, uint32_t id, uintptr_t heap, const mallet_prof_stack_t *st,
                       bool *peak)
{
    *peak = false;
    mallet__lock(&mallet__prof_lock);
    bool ok = note_locked(p, size, id, heap, st) != NULL;
    int64_t pct = mallet__option(prof_peak);
    if (ok && pct > 0 && mallet__prof_live_est >= PEAK_FLOOR &&
        mallet__prof_live_est > rec.peak_written * (1 + (double)pct / 100)) {
        rec.peak_written = mallet__prof_live_est;
        *peak = true;
    }
    mallet__unlock(&mallet__prof_lock);
    return ok;
}

// Drop the sample of p (id); its bucket (NULL when not found) and the heap
// noted with it. Lock held.
static mallet_prof_bucket_t *drop_locked(uintptr_t p, uint32_t id, uintptr_t *heap)
{
    prof_samples_t *t = rec.samples;
    if (t == NULL)
        return NULL;
    size_t mask = t->cap - 1, j = sample_home(p, t->cap);
    for (; t->slot[j].addr != 0; j = (j + 1) & mask)
        if (t->slot[j].addr == p && t->slot[j].id == id)
            break;
    if (t->slot[j].addr == 0)
        return NULL;       // sampled before a fork child's repair, or never
    *heap = t->slot[j].heap;
    mallet_prof_bucket_t *b = t->slot[j].bucket;
    b->live--;
    mallet__prof_live_est -= b->weight;
    rec.used--;
    // Shift back the entries after j that would no longer be found.
    for (size_t k = (j + 1) & mask; t->slot[k].addr != 0; k = (k + 1) & mask) {
        size_t home = sample_home(t->slot[k].addr, t->cap);
        if (((k - home) & mask) >= ((k - j) & mask)) {
            sample_put(&t->slot[j], &t->slot[k]);
            j = k;
        }
    }
    __atomic_store_n(&t->slot[j].addr, 0, __ATOMIC_RELAXED);
    return b;
}

uintptr_t mallet__prof_drop(uintptr_t p, uint32_t id)
{
    uintptr_t heap = 0;
    mallet__lock(&mallet__prof_lock);
    drop_locked(p, id, &heap);
    mallet__unlock(&mallet__prof_lock);
    return heap;
}

void mallet__prof_move(uintptr_t p, uint32_t id, uintptr_t q, size_t size)
{
    uintptr_t heap = 0;
    mallet__lock(&mallet__prof_lock);
    mallet_prof_bucket_t *b = drop_locked(p, id, &heap);
    if (b != NULL) {
        mallet_prof_stack_t st = { .depth = b->depth };
        for (uint32_t i = 0; i < b->depth; i++)
            st.pc[i] = b->pc[i];
        note_locked(q, size, id, heap, &st);
    }
    mallet__unlock(&mallet__prof_lock);
}

size_t mallet__prof_snapshot(mallet_prof_row_t *to, size_t cap)
{
    size_t n = 0;
    mallet__lock(&mallet__prof_lock);
    prof_index_t *t = rec.index;
    for (size_t i = 0; t && i < t->cap; i++) {
        mallet_prof_bucket_t *b = t->slot[i];
        if (b == NULL)
            continue;
        if (n < cap)
            to[n] = (mallet_prof_row_t){ .bucket = b, .live = b->live, .allocs = b->allocs };
        n++;
    }
    mallet__unlock(&mallet__prof_lock);
    return n;
}

void mallet__prof_peak_reset(void)
{
    rec.peak_written = 0;
}

void mallet__prof_record_repair(void)
{
    // The arena's cursor may be half moved: later buckets start a new chunk.
    rec.arena = NULL;
    rec.arena_left = 0;
    prof_index_t *index = rec.index;
    rec.buckets = 0;
    for (size_t i = 0; index && i < index->cap; i++)
        if (index->slot[i]) {
            index->slot[i]->live = 0;
            rec.buckets++;
        }
    prof_samples_t *old = rec.samples, *t = old ? samples_map(old->cap) : NULL;
    rec.samples = t;
    rec.used = 0;
    mallet__prof_live_est = 0;
    if (t == NULL)
        return;            // no samples, or no memory: the record starts empty
    for (size_t i = 0; i < old->cap; i++) {
        const prof_sample_t *s = &old->slot[i];
        if (s->addr == 0)
            continue;
        // Once each: a shift may have left a sample in two slots.
        size_t j = sample_home(s->addr, t->cap);
        for (; t->slot[j].addr != 0; j = (j + 1) & (t->cap - 1))
            if (t->slot[j].addr == s->addr && t->slot[j].id == s->id)
                break;
        if (t->slot[j].addr != 0)
            continue;
        sample_put(&t->slot[j], s);
        rec.used++;
        s->bucket->live++;
        mallet__prof_live_est += s->bucket->weight;
    }
}
