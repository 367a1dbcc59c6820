// SPDX-License-Identifier: MIT
//
// trace.c -- the trace recorder, built as build/libmallet-trace.so and
// preloaded by `mallet trace`. It forwards every call of the malloc family to
// the allocator underneath (found with dlsym(RTLD_NEXT)) and writes what the
// program asked for as a CS:APP malloc-lab trace:
//
//   HEAP_HINT        peak live requested bytes (the suggested heap size)
//   IDS              number of ids used (each allocation gets a new id)
//   OPS              number of operations below
//   1                weight
//   a ID SIZE        malloc, calloc, aligned allocations
//   f ID             free, realloc(p, 0) that freed
//   f -1             free(NULL)
//   r ID SIZE        realloc that kept or moved a block; with a new ID,
//                    realloc(NULL, n)
//
// An op made by any thread but the first to record one ends with ` @T`,
// T numbering the threads in the order of their first op (the thread that
// forks is the child's thread 0). Ops without it belong to thread 0, so the
// trace of a single-threaded program is in the classic format.
//
// Files: MALLET_TRACE_FILE names the trace of the first program (the one
// whose pid is MALLET_TRACE_PID). Any other process -- a fork, or a program
// the first one runs -- writes MALLET_TRACE_FILE.PID; an image that finds its
// name taken (a process that exec'd after writing a trace) adds .1, .2, ...
// Files are opened on the first recorded operation, so a process that never
// allocates leaves none.
//
// Invariants:
//   - the recorder never calls malloc: the pointer->id table lives in mmap'd
//     memory, text is formatted by hand into a static buffer and written
//     with write(2) in 1 MiB chunks;
//   - one lock orders every operation, so the trace is one consistent
//     sequence: a free is recorded (and its pointer forgotten) before the
//     real free runs, an allocation after the real call returns, so a
//     pointer reused by another thread always maps to its newest id;
//   - the header is a fixed-width area at the start of the file, rewritten
//     with pwrite(2) when the process exits or execs; the body is final text;
//   - calls made while the recorder itself is running (dlsym asking for
//     calloc) are forwarded, or served from a static bootstrap buffer before
//     the real functions are known, and never recorded;
//   - a free of a pointer the table does not know (allocated before the
//     recorder started, or in the parent before a fork) is forwarded and
//     skipped in the trace.
//
// Fork: pthread_atfork holds the lock across fork; the child drops the
// parent's table and unwritten buffer and starts a file of its own.
// Exec: exec.c wraps the exec family so that mallet__trace_finish writes
// the trace out before the image is replaced (the descriptor is
// close-on-exec).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "recorder.h"

#define HEADER_FIELD 20                  // each header line: 20 columns + '\n'
#define HEADER_LINES 4
#define HEADER_SIZE  (HEADER_LINES * (HEADER_FIELD + 1))
#define OUT_SIZE     (1u << 20)          // text buffered before one write(2)
#define OUT_SLACK    64                  // room for one op line
#define PATH_MAX_LEN 4096

// --- the functions underneath ----------------------------------------------

typedef struct real_fns {
    void *(*malloc)(size_t);                        // the allocator's malloc
    void (*free)(void *);                           // its free
    void *(*calloc)(size_t, size_t);                // its calloc
    void *(*realloc)(void *, size_t);               // its realloc
    void *(*reallocarray)(void *, size_t, size_t);  // its reallocarray
    int (*posix_memalign)(void **, size_t, size_t); // its posix_memalign
    void *(*aligned_alloc)(size_t, size_t);         // its aligned_alloc
    void *(*memalign)(size_t, size_t);              // its memalign
    void *(*valloc)(size_t);                        // its valloc
    void *(*pvalloc)(size_t);                       // its pvalloc
} real_fns_t;

static real_fns_t real;
static int resolving;                     // 1 while dlsym runs (one thread: the constructor)

// dlsym may call calloc before `real` is filled: serve it from here. Blocks
// from this buffer are never handed to the real free.
static _Alignas(16) char boot_buf[16384];
static size_t boot_used;

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof boot_buf - boot_used)
        return NULL;
    void *p = boot_buf + boot_used;
    boot_used += n;
    return p;                             // static storage: already zero
}

static bool is_boot(const void *p)
{
    return (const char *)p >= boot_buf && (const char *)p < boot_buf + sizeof boot_buf;
}

static void resolve(void)
{
    if (real.malloc || resolving)
        return;
    resolving = 1;
    // free first: a block dlsym takes from the real malloc may be freed
    // while the rest are still being looked up.
    real.free = dlsym(RTLD_NEXT, "free");
    real.malloc = dlsym(RTLD_NEXT, "malloc");
    real.calloc = dlsym(RTLD_NEXT, "calloc");
    real.realloc = dlsym(RTLD_NEXT, "realloc");
    real.reallocarray = dlsym(RTLD_NEXT, "reallocarray");
    real.posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real.aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real.memalign = dlsym(RTLD_NEXT, "memalign");
    real.valloc = dlsym(RTLD_NEXT, "valloc");
    real.pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    resolving = 0;
}

// --- state ------------------------------------------------------------------

typedef struct slot {
    uintptr_t ptr;                        // live block, 0 = empty slot
    uint64_t id;                          // its id in the trace
} slot_t;

typedef struct recorder {
    pthread_mutex_t lock;                 // orders every recorded operation
    bool enabled;                         // MALLET_TRACE_FILE was set and we may record
    bool finished;                        // the header was written at exit: record no more
    int fd;                               // the trace file, -1 until the first op
    char base[PATH_MAX_LEN];              // MALLET_TRACE_FILE
    pid_t root_pid;                       // MALLET_TRACE_PID: the process that writes `base`
    slot_t *table;                        // open addressing, linear probing, mmap'd
    size_t table_cap;                     // slots (a power of two)
    size_t table_used;                    // live entries
    uint64_t next_id;                     // ids handed out
    uint64_t ops;                         // operations recorded
    uint64_t live_bytes;                  // requested bytes of the live blocks
    uint64_t peak_bytes;                  // the most live_bytes has been: the heap hint
    size_t out_len;                       // bytes waiting in `out`
    char out[OUT_SIZE + OUT_SLACK];       // op text not yet written
} recorder_t;

static recorder_t rec = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

// Sizes of live blocks are kept beside their ids so a free can lower the
// live total; they share the slot's table index in a parallel array.
static uint64_t *sizes;

// Set while this thread is inside the recorder: calls it makes are not recorded.
static __thread int busy __attribute__((tls_model("initial-exec")));
// This thread's number in the trace plus one; 0 until its first op.
static __thread uint32_t thread_no __attribute__((tls_model("initial-exec")));
static uint32_t threads_seen;            // thread numbers handed out (under rec.lock)

#define NULL_ID UINT64_MAX               // the id of free(NULL), written as -1

// --- output -----------------------------------------------------------------

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;                       // disk full: the trace is short, the program goes on
        p += w;
        n -= (size_t)w;
    }
}

static char *put_u64(char *s, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *s++ = tmp[--n];
    return s;
}

static bool path_append(char *dst, size_t cap, const char *a, const char *sep, uint64_t num, bool with_num)
{
    size_t la = strlen(a);
    if (la + 48 >= cap)
        return false;
    memcpy(dst, a, la);
    char *s = dst + la;
    if (with_num) {
        s = stpcpy(s, sep);
        s = put_u64(s, num);
    }
    *s = 0;
    return true;
}

// Create this image's file: `base` for the first program, base.PID for the
// others, with .N added while the name is taken.
static void open_trace(void)
{
    char name[PATH_MAX_LEN + 64], stem[PATH_MAX_LEN + 32];
    pid_t pid = getpid();
    if (pid == rec.root_pid) {
        rec.fd = open(rec.base, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (rec.fd >= 0)
            goto opened;
    }
    if (!path_append(stem, sizeof stem, rec.base, ".", (uint64_t)pid, true))
        goto failed;
    for (uint64_t n = 0; n < 1000; n++) {
        if (!path_append(name, sizeof name, stem, ".", n, n > 0))
            goto failed;
        rec.fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (rec.fd >= 0)
            goto opened;
        if (errno != EEXIST)
            break;
    }
failed:
    rec.enabled = false;
    write_all(2, "mallet trace: cannot create the trace file; recording stops\n", 60);
    return;
opened: {
        char blank[HEADER_SIZE];
        memset(blank, ' ', sizeof blank);
        for (int i = 0; i < HEADER_LINES; i++)
            blank[i * (HEADER_FIELD + 1) + HEADER_FIELD] = '\n';
        write_all(rec.fd, blank, sizeof blank);
    }
}

static void flush_out(void)
{
    if (rec.out_len && rec.fd >= 0)
        write_all(rec.fd, rec.out, rec.out_len);
    rec.out_len = 0;
}

// Write the header for what was recorded so far. Idempotent: a failed exec
// keeps recording and the exit rewrites it.
static void write_header(void)
{
    if (rec.fd < 0)
        return;
    flush_out();
    char h[HEADER_SIZE];
    uint64_t v[HEADER_LINES] = { rec.peak_bytes, rec.next_id, rec.ops, 1 };
    memset(h, ' ', sizeof h);
    for (int i = 0; i < HEADER_LINES; i++) {
        char *line = h + i * (HEADER_FIELD + 1);
        put_u64(line, v[i]);
        line[HEADER_FIELD] = '\n';
    }
    for (size_t off = 0; off < sizeof h;) {
        ssize_t w = pwrite(rec.fd, h + off, sizeof h - off, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static void emit(char kind, uint64_t id, uint64_t size, bool with_size)
{
    if (rec.fd < 0) {
        open_trace();
        if (rec.fd < 0)
            return;
    }
    if (!thread_no)
        thread_no = ++threads_seen;
    char *s = rec.out + rec.out_len;
    *s++ = kind;
    *s++ = ' ';
    if (id == NULL_ID)
        s = stpcpy(s, "-1");
    else
        s = put_u64(s, id);
    if (with_size) {
        *s++ = ' ';
        s = put_u64(s, size);
    }
    if (thread_no > 1) {
        s = stpcpy(s, " @");
        s = put_u64(s, thread_no - 1);
    }
    *s++ = '\n';
    rec.out_len = (size_t)(s - rec.out);
    rec.ops++;
    if (rec.out_len >= OUT_SIZE)
        flush_out();
}

// --- pointer -> id table ------------------------------------------------------

static size_t hash_ptr(uintptr_t p, size_t cap)
{
    return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 17) & (cap - 1);
}

static bool table_grow(void)
{
    size_t cap = rec.table_cap ? rec.table_cap * 2 : (1u << 16);
    slot_t *t = mmap(NULL, cap * sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t *sz = mmap(NULL, cap * sizeof *sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED || sz == MAP_FAILED) {
        if (t != MAP_FAILED)
            munmap(t, cap * sizeof *t);
        if (sz != MAP_FAILED)
            munmap(sz, cap * sizeof *sz);
        return false;
    }
    for (size_t i = 0; i < rec.table_cap; i++) {
        if (!rec.table[i].ptr)
            continue;
        size_t j = hash_ptr(rec.table[i].ptr, cap);
        while (t[j].ptr)
            j = (j + 1) & (cap - 1);
        t[j] = rec.table[i];
        sz[j] = sizes[i];
    }
    if (rec.table) {
        munmap(rec.table, rec.table_cap * sizeof *rec.table);
        munmap(sizes, rec.table_cap * sizeof *sizes);
    }
    rec.table = t;
    sizes = sz;
    rec.table_cap = cap;
    return true;
}

static void table_put(void *p, uint64_t id, uint64_t size)
{
    if ((rec.table_used + 1) * 2 > rec.table_cap && !table_grow()) {
        rec.enabled = false;              // out of memory for the table: stop, keep what we have
        return;
    }
    size_t i = hash_ptr((uintptr_t)p, rec.table_cap);
    while (rec.table[i].ptr && rec.table[i].ptr != (uintptr_t)p)
        i = (i + 1) & (rec.table_cap - 1);
    if (!rec.table[i].ptr)
        rec.table_used++;
    else
        rec.live_bytes -= sizes[i];       // a pointer we missed the free of: the new block wins
    rec.table[i] = (slot_t){ (uintptr_t)p, id };
    sizes[i] = size;
    rec.live_bytes += size;
    if (rec.live_bytes > rec.peak_bytes)
        rec.peak_bytes = rec.live_bytes;
}

// Forget p; its id and requested size in *id, *size. False when p is not
// ours to know.
static bool table_take(void *p, uint64_t *id, uint64_t *size)
{
    if (!rec.table_cap)
        return false;
    size_t mask = rec.table_cap - 1, i = hash_ptr((uintptr_t)p, rec.table_cap);
    while (rec.table[i].ptr != (uintptr_t)p) {
        if (!rec.table[i].ptr)
            return false;
        i = (i + 1) & mask;
    }
    *id = rec.table[i].id;
    *size = sizes[i];
    rec.live_bytes -= sizes[i];
    rec.table_used--;
    // Backward-shift deletion keeps probe chains unbroken without tombstones.
    size_t hole = i;
    for (size_t j = (i + 1) & mask; rec.table[j].ptr; j = (j + 1) & mask) {
        size_t home = hash_ptr(rec.table[j].ptr, rec.table_cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            rec.table[hole] = rec.table[j];
            sizes[hole] = sizes[j];
            hole = j;
        }
    }
    rec.table[hole].ptr = 0;
    return true;
}

// --- recording --------------------------------------------------------------

static bool enter(void)
{
    if (busy || !rec.enabled)
        return false;
    busy = 1;
    pthread_mutex_lock(&rec.lock);
    if (!rec.enabled || rec.finished) {
        pthread_mutex_unlock(&rec.lock);
        busy = 0;
        return false;
    }
    return true;
}

static void leave(void)
{
    pthread_mutex_unlock(&rec.lock);
    busy = 0;
}

// A new block under a new id: `a`, or `r` for realloc(NULL, n), which
// replays as the realloc it was.
static void record_new(void *p, size_t size, char kind)
{
    if (!p || !enter())
        return;
    uint64_t id = rec.next_id++;
    table_put(p, id, size);
    emit(kind, id, size, true);
    leave();
}

static void record_alloc(void *p, size_t size)
{
    record_new(p, size, 'a');
}

// Called before the real free: afterwards the pointer may be reused.
// free(NULL) is an op too (`f -1`): the replay makes the same call.
static void record_free(void *p)
{
    uint64_t id, size;
    if (!enter())
        return;
    if (!p)
        emit('f', NULL_ID, 0, false);
    else if (table_take(p, &id, &size))
        emit('f', id, 0, false);
    leave();
}

// --- the malloc family --------------------------------------------------------

EXPORT void *malloc(size_t n)
{
    resolve();
    if (!real.malloc)
        return boot_alloc(n);
    void *p = real.malloc(n);
    record_alloc(p, n);
    return p;
}

EXPORT void free(void *p)
{
    if (!p) {
        record_free(NULL);
        return;
    }
    if (is_boot(p))
        return;
    resolve();
    if (!real.free)
        return;                           // only while dlsym runs: leak rather than crash
    record_free(p);
    real.free(p);
}

EXPORT void *calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    resolve();
    if (!real.calloc)
        return boot_alloc(n);
    void *p = real.calloc(count, size);
    record_alloc(p, n);
    return p;
}

// realloc: the old pointer is forgotten before the call (the real realloc
// may free it, and another thread may then receive it) and the block keeps
// its id. A failed realloc leaves the old block live under the same id.
static void *realloc_recorded(void *p, size_t n, void *(*fn)(void *, size_t, size_t), size_t a, size_t b)
{
    if (!enter())
        return fn(p, a, b);
    uint64_t id = 0, old_size = 0;
    bool known = table_take(p, &id, &old_size);
    leave();
    void *q = fn(p, a, b);
    if (!enter())
        return q;
    if (!known) {                         // a block from before the recorder: new to the trace
        if (q) {
            id = rec.next_id++;
            table_put(q, id, n);
            emit('a', id, n, true);
        }
    } else if (q) {
        table_put(q, id, n);
        emit('r', id, n, true);
    } else if (n == 0) {
        emit('f', id, 0, false);          // realloc(p, 0) freed p
    } else {
        table_put(p, id, old_size);       // failed: p is still live, unchanged
    }
    leave();
    return q;
}

static void *call_realloc(void *p, size_t n, size_t unused)
{
    (void)unused;
    return real.realloc(p, n);
}

static void *call_reallocarray(void *p, size_t count, size_t size)
{
    return real.reallocarray(p, count, size);
}

// A block from the bootstrap buffer moves to the real heap; its size is
// not known, so copy what the buffer can hold past p.
static void *realloc_boot(void *p, size_t n)
{
    void *q = malloc(n);
    size_t room = (size_t)(boot_buf + sizeof boot_buf - (char *)p);
    if (q)
        memcpy(q, p, n < room ? n : room);
    return q;
}

EXPORT void *realloc(void *p, size_t n)
{
    if (is_boot(p))
        return realloc_boot(p, n);
    resolve();
    if (!real.realloc)
        return boot_alloc(n);
    if (!p) {
        void *q = real.realloc(NULL, n);
        record_new(q, n, 'r');
        return q;
    }
    return realloc_recorded(p, n, call_realloc, n, 0);
}

EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    if (is_boot(p))
        return realloc_boot(p, n);
    resolve();
    if (!p) {
        void *q = real.reallocarray(NULL, count, size);
        record_new(q, n, 'r');
        return q;
    }
    return realloc_recorded(p, n, call_reallocarray, count, size);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    int err = real.posix_memalign(out, align, n);
    if (err == 0)
        record_alloc(*out, n);
    return err;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    void *p = real.aligned_alloc(align, n);
    record_alloc(p, n);
    return p;
}

EXPORT void *memalign(size_t align, size_t n)
{
    resolve();
    void *p = real.memalign(align, n);
    record_alloc(p, n);
    return p;
}

EXPORT void *valloc(size_t n)
{
    resolve();
    void *p = real.valloc(n);
    record_alloc(p, n);
    return p;
}

EXPORT void *pvalloc(size_t n)
{
    resolve();
    void *p = real.pvalloc(n);
    record_alloc(p, n);
    return p;
}

// --- process life: start, exit, fork, exec -----------------------------------

void mallet__trace_finish(void)
{
    busy = 1;
    pthread_mutex_lock(&rec.lock);
    write_header();
    pthread_mutex_unlock(&rec.lock);
    busy = 0;
}

static void fork_prepare(void)
{
    busy = 1;
    pthread_mutex_lock(&rec.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&rec.lock);
    busy = 0;
}

// The child starts a trace of its own: the parent's blocks are unknown to
// it (their frees are skipped) and the parent's unwritten text is its own.
static void fork_child(void)
{
    pthread_mutex_init(&rec.lock, NULL);
    if (rec.table) {
        munmap(rec.table, rec.table_cap * sizeof *rec.table);
        munmap(sizes, rec.table_cap * sizeof *sizes);
    }
    rec.table = NULL;
    sizes = NULL;
    rec.table_cap = rec.table_used = 0;
    rec.next_id = rec.ops = rec.live_bytes = rec.peak_bytes = 0;
    rec.out_len = 0;
    if (rec.fd >= 0)
        close(rec.fd);
    rec.fd = -1;
    threads_seen = 1;                     // the forking thread is the child's thread 0
    thread_no = 1;
    busy = 0;
}

__attribute__((constructor)) static void recorder_start(void)
{
    busy = 1;
    resolve();
    const char *file = getenv("MALLET_TRACE_FILE");
    const char *pid = getenv("MALLET_TRACE_PID");
    if (file && *file && strlen(file) < sizeof rec.base) {
        strcpy(rec.base, file);
        rec.root_pid = pid ? (pid_t)strtol(pid, NULL, 10) : 0;
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        rec.enabled = real.free != NULL;
    }
    busy = 0;
}

// Runs late: the recorder is loaded first, so it is finalized last. Frees
// made after this are forwarded and not recorded.
__attribute__((destructor)) static void recorder_stop(void)
{
    mallet__trace_finish();
    pthread_mutex_lock(&rec.lock);
    rec.finished = true;
    pthread_mutex_unlock(&rec.lock);
}
