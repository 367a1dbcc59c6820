// SPDX-License-Identifier: MIT
//
// tools.h -- what the parts of the `mallet` command share: the verbs, the
// allocator names, where the build products are, traces in memory.
//
// The command is a program, not allocator code: it uses stdio and malloc
// (glibc's) freely. It sees libmallet and the teach designs through their
// public headers only, linked in-process from their archives.
#ifndef MALLET_TOOLS_H
#define MALLET_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mallet.h"
#include "teach.h"

// --- verbs (each returns the process exit status) ----------------------------

int tool_run(int argc, char **argv);
int tool_trace(int argc, char **argv);
int tool_replay(int argc, char **argv);
int tool_replay_child(int argc, char **argv);
int tool_heapmap(int argc, char **argv);
int tool_profile(int argc, char **argv);
int tool_bench(int argc, char **argv);
int tool_symbolize(int argc, char **argv);

// --- allocators ---------------------------------------------------------------

typedef enum {
    ALLOC_GLIBC,                 // the C library's malloc: nothing preloaded
    ALLOC_MALLET,                // libmallet
    ALLOC_MALLET_SECURE,         // libmallet's secure build (make secure), preloaded
    ALLOC_TEACH,                 // one teach design
    ALLOC_PEER,                  // an allocator installed on the system
} alloc_kind_t;

typedef struct alloc_desc {
    const char *name;                 // as the user types it
    alloc_kind_t kind;                // which of the five
    const teach_allocator_t *teach;   // the design (ALLOC_TEACH), when linked in
    const char *peer_file;            // library file name (ALLOC_PEER)
    const char *peer_package;         // the Debian package that ships it (ALLOC_PEER)
} alloc_desc_t;

// Look `name` up; on failure print "VERB: unknown allocator NAME; valid: ..."
// and return false.
bool tool_alloc_lookup(const char *verb, const char *name, alloc_desc_t *out);
// Print the valid names, space separated, to f.
void tool_alloc_list(FILE *f);
// The library to preload for `a` into out (empty for glibc). On failure
// (not built, not installed) print why, naming the make target or the
// Debian package, and return false.
bool tool_alloc_preload(const char *verb, const alloc_desc_t *a, char *out, size_t cap);
// True when libmallet is linked into this binary (in-process replay).

// --- files and processes --------------------------------------------------------

// A build product: tries each of `rel` (relative to the directory of the
// running binary) in turn; true with the first that exists in out.
// TOOL_INSTALLED(file) is where `make install` put a library: relative to
// BINDIR, in LIBDIR (the Makefile passes MALLET_LIBDIR_FROM_BIN, e.g.
// "../lib/x86_64-linux-gnu", and MALLET_SONAME, "libmallet.so.1", to the
// files that look there).
#define TOOL_INSTALLED(file) MALLET_LIBDIR_FROM_BIN "/" file
bool tool_find_product(char *out, size_t cap, const char *const *rel);
// The directory that holds the running binary.
const char *tool_exe_dir(void);
// Put lib first in LD_PRELOAD, ahead of any the user set. False (and
// "VERB: out of memory") when it cannot.
bool tool_preload_first(const char *verb, const char *lib);
// Run argv[0] with its arguments as `mallet run` does: ^C and ^\ go to it
// alone while it runs; returns its status as tool_wait does, 127 or 126
// when it cannot be run ("VERB: cannot run CMD: why"). Its pid goes to
// *started unless started is NULL.
int tool_command(const char *verb, char *const argv[], const char *alloc, pid_t *started);
// What a caller of tool_command_during does while the program (pid) runs.
typedef void tool_during_fn(void *ctx, pid_t pid);
// tool_command with the program's stderr on err (the write end of a pipe,
// say), and during(ctx, pid) called once it has started, before the wait.
int tool_command_during(const char *verb, char *const argv[], const char *alloc, int err, tool_during_fn *during,
                        void *ctx);
// "SIGSEGV" for 11, "signal 77" when unnamed.
const char *tool_signame(int sig, char *buf, size_t cap);
// Wait for pid and return its exit status; for a signal, print
// "VERB: WHAT crashed under ALLOC: signal N (SIGNAME)" and return 128 + N.
int tool_wait(const char *verb, pid_t pid, const char *what, const char *alloc);
// The same for a status waitpid already returned.
int tool_status(const char *verb, int status, const char *what, const char *alloc);
// A median of n doubles (sorts them in place).
double tool_median(double *v, int n);
// Monotonic time in seconds.
double tool_now(void);

// --- text -------------------------------------------------------------------------

// v bytes for people: "512 B", "12.3 KiB"; returns buf.
const char *tool_human(uint64_t v, char *buf, size_t cap);
// s as the text of an XML element or attribute: & < > " escaped, control
// characters (which XML cannot hold) as '?'.
void tool_xml_text(FILE *f, const char *s);
// Whether s ends with suffix.
bool tool_ends_with(const char *s, const char *suffix);

// --- stack frames (symbolize.c) -----------------------------------------------------

typedef struct symbolize symbolize_t;

// A frame-line symbolizer (its modules read as frames name them); NULL
// when out of memory.
symbolize_t *symbolize_open(void);
// Write line (len bytes, its '\n' included when it has one) to out: a
// frame line of a libmallet report with " at FILE:LINE" appended when its
// module's line tables hold it, anything else as it is. False when
// writing fails.
bool symbolize_line(symbolize_t *s, const char *line, size_t len, FILE *out);
void symbolize_close(symbolize_t *s);

// --- traces in memory (tracefile.c) ---------------------------------------------

typedef enum { OP_ALLOC, OP_FREE, OP_REALLOC } op_kind_t;

// The id of `f -1`, a free of NULL: no block, nothing to check.
#define TRACE_NULL_ID UINT32_MAX
// Thread numbers (`@T`) run from 0 to TRACE_THREADS_MAX - 1.
#define TRACE_THREADS_MAX 256

typedef struct trace_op {
    uint64_t size;               // requested bytes (OP_ALLOC, OP_REALLOC)
    uint32_t id;                 // block id, < trace.n_ids, or TRACE_NULL_ID
    uint32_t kind : 2;           // op_kind_t
    uint32_t line : 30;          // line in the file, for messages (saturates)
    uint32_t thread;             // the recording's thread number (0 without the field)
} trace_op_t;

typedef struct trace {
    const char *path;            // as given on the command line
    uint64_t heap_hint;          // header line 1: suggested heap size
    uint64_t n_ids;              // header line 2
    uint64_t n_ops;              // operations read (= header line 3)
    uint64_t weight;             // header line 4 (1 when the header has 3 lines)
    uint32_t n_threads;          // 1 + the largest thread number in the ops
    trace_op_t *ops;             // n_ops entries, in mmap'd memory
    size_t ops_cap;              // bytes mapped for ops
} trace_t;

// Read and check a trace (plain, .gz or .zst). On error print
// "PATH:LINE: expected ..." (or why the file cannot be read) and return
// false. Memory comes from mmap, so a replay under a preloaded allocator
// sees none of it in its heap.
bool trace_load(const char *path, trace_t *t);
// Whether trace_load prints warnings (a replay child leaves them to its parent).
extern bool trace_warnings;
void trace_free(trace_t *t);

#endif
