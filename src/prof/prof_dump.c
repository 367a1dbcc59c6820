// SPDX-License-Identifier: MIT
//
// prof_dump.c -- writing the heap profile: at exit, at each new peak, and
// by mallet_prof_dump().
//
// The format is gperftools' text heap profile with version 2 sampling,
// which google-pprof reads (--text, --svg, --callgrind, ...):
//
//   heap profile:   N1:   B1 [  N2:   B2] @ heap_v2/RATE
//       n1:   b1 [  n2:   b2] @ 0xPC 0xPC ...      one line per bucket
//   <blank line>
//   MAPPED_LIBRARIES:
//   <the process's /proc/self/maps>
//
// n1/b1 count the sampled blocks live now, n2/b2 those ever sampled, raw;
// a reader scales a line by 1 / (1 - exp(-(b/n) / RATE)), which is exact
// here because every block of a bucket has one size (a block size: the
// size class, or a large block's mapping; the sampling chance depends on
// it). The frames are return addresses, the program's call first (one less
// is the call instruction), at most MALLET_PROF_DEPTH of them; an address
// maps to its file through the MAPPED_LIBRARIES line that holds it.
//
// Files: prof_dir/mallet.PID.exit.heap at a normal exit (prof_at_exit),
// prof_dir/mallet.PID.peak.heap at each new peak (prof_peak), and
// mallet_prof_dump(path), or prof_dir/mallet.PID.SEQ.heap for a NULL path.
// A fork child names its files with its own PID.
//
// A file is written to a temporary name and renamed, so a reader never sees
// half of one. It is written from a snapshot of the counts, so prof_lock is
// held only to copy them, not while the file is written: the program's
// allocations wait for no file. Everything is formatted here, with write(2),
// from static buffers guarded by dump_lock: no malloc, no stdio.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "debug/debug.h"
#include "base/base.h"
#include "mallet.h"
#include "os/os.h"
#include "prof.h"

static mallet_lock_t dump_lock;          // one profile written at a time
static char out[64 << 10];               // the output buffer (dump_lock)
static mallet_prof_row_t *rows;          // the snapshot (dump_lock)
static size_t rows_cap;                  // its rows
static unsigned dump_seq;                // mallet_prof_dump(NULL) files so far

typedef struct writer {
    mallet_buf_t b;        // the buffer
    int fd;                // where it goes
    bool failed;           // a write failed (errno says why)
} writer_t;

static void flush_if(writer_t *w, size_t need)
{
    if (w->b.cap - w->b.len >= need)
        return;
    size_t off = 0;
    while (off < w->b.len) {
        ssize_t n = write(w->fd, w->b.p + off, w->b.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            w->failed = true;
            break;
        }
        off += (size_t)n;
    }
    w->b.len = 0;
}

static void put_counts(writer_t *w, uint64_t n1, uint64_t b1, uint64_t n2, uint64_t b2)
{
    mallet__buf_u64w(&w->b, n1, 6);
    mallet__buf_str(&w->b, ": ");
    mallet__buf_u64w(&w->b, b1, 8);
    mallet__buf_str(&w->b, " [");
    mallet__buf_u64w(&w->b, n2, 6);
    mallet__buf_str(&w->b, ": ");
    mallet__buf_u64w(&w->b, b2, 8);
    mallet__buf_str(&w->b, "] @");
}

static void put_maps(writer_t *w)
{
    mallet__buf_str(&w->b, "\nMAPPED_LIBRARIES:\n");
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (;;) {
        flush_if(w, 4096);
        ssize_t n = read(fd, w->b.p + w->b.len, 4096);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        w->b.len += (size_t)n;
    }
    close(fd);
}

// Take the snapshot into rows, growing it as needed; its rows, or -1 when
// out of memory. dump_lock held.
static long snapshot(void)
{
    for (;;) {
        size_t n = mallet__prof_snapshot(rows, rows_cap);
        if (n <= rows_cap)
            return (long)n;
        size_t cap = rows_cap ? rows_cap : 1024;
        while (cap < n + n / 2)
            cap *= 2;
        mallet_prof_row_t *r = mallet__os_map(cap * sizeof *r, 0);
        if (r == NULL)
            return -1;
        if (rows)
            mallet__os_release(rows, rows_cap * sizeof *rows);
        rows = r;
        rows_cap = cap;
    }
}

// The whole profile to fd; dump_lock held.
static bool write_profile(int fd)
{
    writer_t w = { { out, sizeof out, 0 }, fd, false };
    long n = snapshot();
    if (n < 0) {
        errno = ENOMEM;
        return false;
    }
    uint64_t n1 = 0, b1 = 0, n2 = 0, b2 = 0;
    for (long i = 0; i < n; i++) {
        size_t size = rows[i].bucket->size;
        n1 += rows[i].live, b1 += rows[i].live * size;
        n2 += rows[i].allocs, b2 += rows[i].allocs * size;
    }
    int64_t rate = __atomic_load_n(&mallet__prof_rate, __ATOMIC_RELAXED);
    if (rate < 0)
        rate = mallet__option(prof_sample_kb) * 1024;
    mallet__buf_str(&w.b, "heap profile: ");
    put_counts(&w, n1, b1, n2, b2);
    // Rate 1 byte: every block is sampled with a probability of 1 - e^-16
    // or more, so the reader scales by 1 (it takes 0 for "unknown").
    mallet__buf_str(&w.b, " heap_v2/");
    mallet__buf_u64(&w.b, (uint64_t)(rate > 0 ? rate : 1));
    mallet__buf_str(&w.b, "\n");
    for (long i = 0; i < n; i++) {
        const mallet_prof_bucket_t *k = rows[i].bucket;
        flush_if(&w, 64 + 20 * MALLET_PROF_DEPTH);
        put_counts(&w, rows[i].live, rows[i].live * k->size, rows[i].allocs, rows[i].allocs * k->size);
        for (uint32_t f = 0; f < k->depth; f++) {
            mallet__buf_str(&w.b, " ");
            mallet__buf_hex(&w.b, k->pc[f]);
        }
        if (k->depth == 0)
            mallet__buf_str(&w.b, " 0x0");      // the reader needs one frame
        mallet__buf_str(&w.b, "\n");
    }
    put_maps(&w);
    flush_if(&w, sizeof out);
    return !w.failed;
}

// dump_lock held.
static int write_locked(const char *path)
{
    char tmp[MALLET_OPTION_TEXT_MAX + 96];
    mallet_buf_t t = { tmp, sizeof tmp - 1, 0 };
    mallet__buf_str(&t, path);
    mallet__buf_str(&t, ".tmp.");
    mallet__buf_u64(&t, (uint64_t)getpid());
    tmp[t.len] = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    bool ok = write_profile(fd);
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) == 0)
        return 0;
    if (ok)
        err = errno;
    unlink(tmp);
    errno = err;
    return -1;
}

// prof_dir/mallet.PID.TAG.heap into path (TAG: a word, or a number).
static void name_file(char *path, size_t cap, const char *tag, unsigned seq)
{
    mallet_buf_t b = { path, cap - 1, 0 };
    b.len = mallet__option_text_copy(MALLET_OPT_TEXT_prof_dir, path, cap - 1);
    mallet__buf_str(&b, "/mallet.");
    mallet__buf_u64(&b, (uint64_t)getpid());
    mallet__buf_str(&b, ".");
    if (tag)
        mallet__buf_str(&b, tag);
    else
        mallet__buf_u64(&b, seq);
    mallet__buf_str(&b, ".heap");
    path[b.len] = 0;
}

// prof_dir/mallet.PID.TAG.heap (or .SEQ.heap when tag is NULL).
static int write_named(const char *tag)
{
    char path[MALLET_OPTION_TEXT_MAX + 64];
    mallet__lock(&dump_lock);
    name_file(path, sizeof path, tag, tag ? 0 : ++dump_seq);
    int r = write_locked(path);
    mallet__unlock(&dump_lock);
    return r;
}

int mallet__prof_write(const char *path)
{
    mallet__lock(&dump_lock);
    int r = write_locked(path);
    mallet__unlock(&dump_lock);
    return r;
}

void mallet__prof_write_peak(void)
{
    int saved = errno;
    write_named("peak");
    errno = saved;
}

void mallet__prof_dump_after_fork(void)
{
    // The buffers are filled anew by every profile: whatever a vanished
    // thread left in them is harmless.
    if (mallet__lock_after_fork(&dump_lock) != MALLET_LOCK_WAS_MINE)
        mallet__unlock(&dump_lock);
}

MALLET_API int mallet_prof_dump(const char *path)
{
    mallet__init();
    if (!mallet__prof_enabled() && __atomic_load_n(&mallet__prof_rate, __ATOMIC_RELAXED) < 0) {
        errno = EINVAL;
        return -1;
    }
    return path ? mallet__prof_write(path) : write_named(NULL);
}

__attribute__((destructor)) static void prof_at_exit(void)
{
    if (__atomic_load_n(&mallet__init_state, __ATOMIC_ACQUIRE) != 2 || !mallet__prof_enabled() ||
        !mallet__option(prof_at_exit))
        return;
    int saved = errno;
    write_named("exit");
    errno = saved;
}
