// SPDX-License-Identifier: MIT
//
// options.h -- every tunable of libmallet, in one table.
//
// One X(name, default, meaning) line per option (integers; the few text
// options have a list of their own below); the environment variable is
// MALLET_<NAME> (upper case), read once at start-up by walking `environ`
// without allocating. mallet_option_get/set take the lower-case name.
// Adding an option is adding one line here.
#ifndef MALLET_OPTIONS_H
#define MALLET_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define MALLET_OPTION_LIST(X)                                                                      \
    X(purge_delay_ms, 250, "ms an empty page or a cached large span waits before its memory goes back to the OS") \
    X(purger, 1, "1: an idle process shrinks: a background thread purges once a multithreaded process is large, a single-threaded one's next call looks at the clock; 0: purge only in allocation slow paths") \
    X(purger_start_mb, 32, "MiB mapped before the background purger thread is started")          \
    X(large_cache_mb, 64, "MiB of freed large blocks kept mapped for reuse beyond what the live large bytes fell short of their recent peak")                        \
    X(large_cache_count, 64, "freed large ranges kept mapped for reuse, at most")                   \
    X(map_budget, 16384, "mappings of large blocks libmallet keeps, at most (the kernel allows 65530 by default)") \
    X(hugepages, 0, "1: segments are advised MADV_HUGEPAGE, pages fill the densest 2 MiB unit first, and purging gives back whole 2 MiB units only, so huge pages stay whole") \
    X(numa, 0, "1: a thread heap's new pages prefer (mbind MPOL_PREFERRED) the NUMA node of the CPU the thread runs on") \
    X(stats, 0, "1: print a statistics summary on stderr at exit")                                  \
    X(check_at_exit, 1, "secure build, 1: check every free block of the heap at a normal exit (0: skip the check)") \
    X(prof, 0, "1: sample allocations and keep a heap profile by call stack (prof.h)")               \
    X(prof_sample_kb, 512, "mean KiB allocated between two sampled allocations (read when the first sample is taken; 0: every allocation)") \
    X(prof_at_exit, 1, "with prof=1, write prof_dir/mallet.PID.exit.heap at a normal exit")          \
    X(prof_peak, 0, "with prof=1 and P > 0: rewrite prof_dir/mallet.PID.peak.heap each time the live bytes exceed the last one written by P percent") \
    X(guard, 1, "1: guarded sampling: a few allocations are served between inaccessible pages, so a use after free or an overflow of one faults and is reported with its stacks (guard.h); 0: off") \
    X(guard_sample_kb, 1048576, "mean KiB allocated between two guarded allocations (read at the first draw; 0: every allocation while the pool has a free slot)") \
    X(guard_slots, 256, "guarded blocks live at once, at most (the pool's slots, read when the first block is guarded)")

// Options whose value is text: X(name, default, meaning), read from
// MALLET_<NAME> as well, at most MALLET_OPTION_TEXT_MAX - 1 bytes.
#define MALLET_OPTION_TEXT_LIST(X)                                                                 \
    X(prof_dir, ".", "directory the profiler writes its files to")
#define MALLET_OPTION_TEXT_MAX 1024

typedef enum {
#define MALLET_OPTION_ENUM(name, def, meaning) MALLET_OPT_##name,
    MALLET_OPTION_LIST(MALLET_OPTION_ENUM)
#undef MALLET_OPTION_ENUM
    MALLET_OPT_COUNT
} mallet_option_id_t;

typedef enum {
#define MALLET_OPTION_ENUM(name, def, meaning) MALLET_OPT_TEXT_##name,
    MALLET_OPTION_TEXT_LIST(MALLET_OPTION_ENUM)
#undef MALLET_OPTION_ENUM
    MALLET_OPT_TEXT_COUNT
} mallet_option_text_id_t;

extern int64_t mallet__options[MALLET_OPT_COUNT];
// Bumped by every mallet_option_set: state drawn from the options (the
// samplers' countdowns) is drawn again.
extern uint32_t mallet__options_epoch;

// Copy a text option's value into to (at most cap - 1 bytes and a NUL);
// its length.
size_t mallet__option_text_copy(mallet_option_text_id_t id, char *to, size_t cap);

#define mallet__option(name) (__atomic_load_n(&mallet__options[MALLET_OPT_##name], __ATOMIC_RELAXED))

// Set every option to its default, then apply MALLET_* from the environment.
void mallet__options_init(void);

#endif
