// SPDX-License-Identifier: MIT
//
// prof.h -- libmallet's heap profiles (the format is src/prof/prof_dump.c's: the
// gperftools text heap profile, version 2 sampling) as `mallet profile`
// sees them:
//   prof_read.c     reads a .heap file, estimates the true figures from the
//                   sampled ones, and names every frame's function
//   symbols.c       turns an address into a function name (elf_file.h: the
//                   ELF files read by our own code)
//   prof_report.c   the table of the top functions and of the live stacks
//   flame.c         the flame graph (SVG)
//   profile.c       the verb: runs a program profiled, then all of the above
//
// Glossary. A *record* is one line of the profile: the blocks of one size
// allocated from one call stack. Its *stack* is a run of return addresses
// (pcs), innermost first. Each pc is named by a *function*: an index into
// prof_t.names, which holds each name once, so two stacks whose pcs differ
// but whose functions are the same compare equal by index.
#ifndef MALLET_TOOLS_PROF_H
#define MALLET_TOOLS_PROF_H

#include "tools.h"

typedef struct prof_map {
    uint64_t start, end;              // the mapping's addresses, [start, end)
    uint64_t offset;                  // file offset mapped at start
    char *path;                       // the file mapped; NULL for anonymous and [special] mappings
} prof_map_t;

typedef struct prof_record {
    uint64_t live_n, live_bytes;      // sampled blocks in use, and their bytes (n1, b1)
    uint64_t alloc_n, alloc_bytes;    // sampled blocks ever allocated (n2, b2)
    double est_n, est_bytes;          // live_n, live_bytes scaled to estimates of the truth
    size_t first, depth;              // its stack: pcs[first .. first + depth)
} prof_record_t;

typedef struct prof {
    char *path;                       // the file read, for messages and titles
    uint64_t rate;                    // mean bytes allocated between samples (heap_v2/RATE)
    prof_record_t *recs;              // the records, in file order
    size_t n_recs;                    // how many
    uint64_t *pcs;                    // every record's stack, end to end
    size_t n_pcs;                     // how many pcs
    prof_map_t *maps;                 // MAPPED_LIBRARIES, in file order
    size_t n_maps;                    // how many
    double est_bytes, est_n;          // estimated bytes and blocks in use: sums over the records
    uint64_t live_n, live_bytes;      // sampled blocks and bytes in use: the same sums, raw
    uint32_t *funcs;                  // per pc, its function (index into names); set by prof_read
    char **names;                     // the function names, sorted, each once
    size_t n_names;                   // how many
} prof_t;

// --- prof_read.c ------------------------------------------------------------------

// Read the heap profile at path, estimate, and name every pc. On error
// print "VERB: PATH:LINE: expected ..." (or why the file cannot be read)
// and return false with *p empty.
bool prof_read(const char *verb, const char *path, prof_t *p);
void prof_free(prof_t *p);
// What each sampled block of `size` bytes stands for: 1 / (1 - exp(-size /
// rate)), google-pprof's estimate for heap_v2 (1 when every block is sampled).
double prof_scale(uint64_t size, uint64_t rate);

// --- symbols.c ----------------------------------------------------------------------

typedef struct symbolizer symbolizer_t;

// A symbolizer for the mappings of one process (maps stays the caller's).
// NULL only when out of memory.
symbolizer_t *sym_open(const prof_map_t *maps, size_t n_maps);
// The name of the function that holds return address pc (looked up at
// pc - 1: a return address points after its call), as a new string:
// "main"; else "[libc.so.6]+0x29d8f" (the file and pc's ELF address, when
// the file has no symbol there); else "0x7f3a1c2b3c4d" (in no mapped file).
// NULL only when out of memory.
char *sym_name(symbolizer_t *s, uint64_t pc);
void sym_close(symbolizer_t *s);

// --- prof_report.c -------------------------------------------------------------------

// One function's share of the estimated in-use bytes.
typedef struct prof_func {
    uint32_t func;                    // index into prof_t.names
    double flat;                      // bytes it allocated itself (first frame of the stack)
    double cum;                       // bytes of every stack it is in (once per stack)
} prof_func_t;

// The functions with flat or cum bytes, most flat bytes first (ties: more
// cum, then by name); *n set to how many. NULL when out of memory or none.
prof_func_t *prof_top(const prof_t *p, size_t *n);

typedef enum {
    REPORT_PEAK,                      // the peak of the heap: the top table
    REPORT_EXIT,                      // at exit: the table, then what was never freed, by stack
    REPORT_SNAPSHOT,                  // a dump at some moment: the table, then the live stacks
} report_kind_t;

// The text report of p into f. False when writing fails or out of memory.
bool prof_write_text(const prof_t *p, report_kind_t kind, FILE *f);

// --- flame.c -----------------------------------------------------------------------

// The flame graph of p's estimated in-use bytes as SVG into f, titled with
// `what` (e.g. "at peak"). False when writing fails or out of memory.
bool flame_write_svg(const prof_t *p, const char *what, FILE *f);

#endif
