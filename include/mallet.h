// SPDX-License-Identifier: MIT
//
// mallet.h -- the public interface of libmallet.
//
// The mallet_* functions are the allocator under its own names; they work
// whether or not libmallet also replaces malloc (LD_PRELOAD=libmallet.so, or
// linking libmallet.a). They follow the glibc rules of their libc twins:
// errno ENOMEM on exhaustion, EINVAL for a bad alignment, and free never
// changes errno.
#ifndef MALLET_H
#define MALLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MALLET_API __attribute__((visibility("default")))

// --- version ----------------------------------------------------------------
//
// The one place the project's version is written (the Makefile, the
// packages and the manual pages read it from here). Semantic versioning:
// MAJOR changes when a program built against an older header or library
// would break, and is the N of the library's SONAME, libmallet.so.N; MINOR
// when functions or options are added; PATCH for fixes.
#define MALLET_VERSION_MAJOR 1
#define MALLET_VERSION_MINOR 0
#define MALLET_VERSION_PATCH 0

// The version of the library the program runs with, "MAJOR.MINOR.PATCH":
// it may be newer than the header the program was compiled with (the same
// MAJOR). A static string; never NULL.
MALLET_API const char *mallet_version(void);

MALLET_API void  *mallet_malloc(size_t size);
MALLET_API void  *mallet_calloc(size_t count, size_t size);
MALLET_API void  *mallet_realloc(void *p, size_t size);
MALLET_API void  *mallet_reallocarray(void *p, size_t count, size_t size);
MALLET_API void   mallet_free(void *p);
MALLET_API void   mallet_free_sized(void *p, size_t size);
MALLET_API void   mallet_free_aligned_sized(void *p, size_t align, size_t size);
MALLET_API int    mallet_posix_memalign(void **out, size_t align, size_t size);
MALLET_API void  *mallet_aligned_alloc(size_t align, size_t size);
MALLET_API void  *mallet_memalign(size_t align, size_t size);
MALLET_API void  *mallet_valloc(size_t size);
MALLET_API void  *mallet_pvalloc(size_t size);
MALLET_API size_t mallet_usable_size(const void *p);

// Return every empty page to the OS now (what malloc_trim(0) does).
MALLET_API void   mallet_trim(void);

// Check every free block of the calling thread's heap and of exited
// threads' pages: its free-list link and, in the secure build, that no byte
// of it was written after its free. A damaged block is reported in one line
// naming it, and the process aborts; otherwise returns the blocks checked.
// (Blocks of other running threads are not walked.)
MALLET_API size_t mallet_check(void);

// --- statistics -------------------------------------------------------------

typedef struct mallet_stats {
    uint64_t allocated;        // bytes in blocks handed out and not freed (block sizes)
    uint64_t active;           // bytes in pages that hold at least one live block
    uint64_t mapped;           // bytes mapped from the OS and not returned
    uint64_t resident;         // bytes mapped and not purged
    uint64_t purged;           // bytes given back to the OS with madvise, ever
    uint64_t large_allocated;  // bytes in live large blocks
    uint64_t malloc_calls;     // small and large allocations, ever
    uint64_t free_calls;       // frees, ever
    uint64_t remote_frees;     // frees of blocks owned by another thread
    uint64_t pages_abandoned;  // pages left behind by exiting threads
    uint64_t pages_adopted;    // of those, pages taken over by another thread
    uint64_t threads;          // thread heaps alive now
    uint64_t guarded;          // guarded blocks live now (guard=1)
    uint64_t guarded_total;    // guarded blocks, ever
} mallet_stats_t;

// Fill *out with a snapshot (counters merged across threads).
MALLET_API void mallet_stats_get(mallet_stats_t *out);
// Print the summary that MALLET_STATS=1 prints at exit, to file descriptor fd.
MALLET_API void mallet_stats_print(int fd);

// --- options ----------------------------------------------------------------
//
// Every option has a MALLET_<NAME> environment variable read once at start.
// mallet_option_get/set take the lower-case name, e.g. "purge_delay_ms".
// Set returns false for an unknown name, get returns -1. The options are
// listed, with their defaults and meanings, in src/base/options.h.
MALLET_API bool    mallet_option_set(const char *name, int64_t value);
MALLET_API int64_t mallet_option_get(const char *name);
// Options whose value is text (prof_dir): set returns false for an unknown
// name or a value of 1024 bytes or more; get copies the value into buf (at
// most size - 1 bytes, then a NUL) and returns its length, or (size_t)-1
// for an unknown name.
MALLET_API bool    mallet_option_set_text(const char *name, const char *value);
MALLET_API size_t  mallet_option_get_text(const char *name, char *buf, size_t size);

// --- heap profile ------------------------------------------------------------
//
// With the option prof=1 (MALLET_PROF=1), about one allocation per
// prof_sample_kb KiB is sampled with its call stack. The profile is written
// in the text heap-profile format google-pprof reads: at exit
// (prof_dir/mallet.PID.exit.heap), at each new peak when prof_peak > 0
// (prof_dir/mallet.PID.peak.heap), and on demand here: to path, or, when
// path is NULL, to prof_dir/mallet.PID.SEQ.heap (SEQ = 1, 2, ...).
// Returns 0, or -1 with errno set (EINVAL: profiling was never on).
MALLET_API int     mallet_prof_dump(const char *path);

#ifdef __cplusplus
}
#endif

#endif
