// SPDX-License-Identifier: MIT
//
// gc.h -- 08: a conservative mark-sweep garbage collector.
//
// The last teach design, and the one an interpreter would embed. The program
// allocates with gc_malloc and never frees: when the heap has grown enough,
// gc_malloc stops the program, finds every block the program can still
// reach, and reuses the rest.
//
//   void *p = gc_malloc(sizeof(node_t));    // zeroed, 16-byte aligned
//   p->next = gc_malloc(sizeof(node_t));    // links are plain pointers
//   p = NULL;                               // both blocks are now garbage
//   gc_collect();                           // ... and are reclaimed here
//
// What it looks at (the roots), on every collection:
//   - the calling thread's registers and its stack, from the innermost frame
//     to the stack's base;
//   - the writable data and bss of the program and of every shared library,
//     and this thread's thread-local variables;
//   - the ranges registered with gc_add_root.
// From there it follows every word inside every reachable block.
//
// "Conservative" means it does not know which words are pointers. Any
// 8-byte-aligned word whose value falls inside an allocated block -- at its
// start or anywhere inside it (an interior pointer) -- keeps that block alive.
//
// What a conservative collector cannot promise:
//   - False retention. An integer, a float or a stale stack slot that happens
//     to look like an address inside a block keeps that block, and everything
//     reachable from it, alive. Memory use is an upper bound, not exact; a
//     long linked list can be kept whole by one unlucky word. The collector
//     zeroes the dead stack below its caller before it scans, so what a
//     function that has returned left in its frame does not count; a dead
//     pointer still held in a live frame (the caller's, or any frame above
//     it) does, and so does one in memory the program never overwrote.
//   - Hidden pointers are not seen, and their targets are freed while still in
//     use: a pointer XOR-ed with another (XOR-linked lists), tagged in its high
//     bits, stored misaligned, written to a file, or kept only in memory the
//     collector does not scan -- malloc'd or mmap'd memory not registered with
//     gc_add_root, and the stacks and registers of other threads.
//   - No compaction. Blocks never move (a word that might be an integer cannot
//     be rewritten), so a heap fragmented into scattered survivors stays so.
//   - Pauses grow with the heap. Each collection marks every live block and
//     sweeps every page while the program waits; nothing is incremental.
//   - One thread. The heap belongs to the first thread that uses it; a
//     collection started from another thread aborts with a message, because
//     the stacks it cannot see would hold pointers it must not miss.
//
// When it collects: when the bytes allocated since the last collection reach
// the bytes that survived it (the heap has doubled), and at least 4 MiB, so
// that a small heap is not collected over and over. gc_collect collects now.
//
// Under Valgrind: blocks are announced to memcheck as they are handed out and
// freed, so a read of a reclaimed block is reported. At exit, garbage not yet
// collected shows up as "definitely lost"; call gc_reset() before exiting to
// hand everything back.
#ifndef MALLET_TEACH_GC_H
#define MALLET_TEACH_GC_H

#include <stddef.h>
#include <stdint.h>

#define GC_API __attribute__((visibility("default")))

typedef struct gc_stats {
    uint64_t collections;          // collections run so far, automatic or asked for
    uint64_t bytes_allocated;      // block bytes ever handed out
    uint64_t bytes_freed;          // block bytes ever reclaimed by a sweep
    size_t   live_bytes;           // block bytes handed out and not reclaimed
    size_t   heap_bytes;           // bytes of heap pages in use (live + free blocks in them)
    size_t   peak_heap_bytes;      // the largest heap_bytes ever
    uint64_t last_pause_us;        // CPU time of the last collection, microseconds (thread
                                   // CPU time: equal to the wall-clock pause on an idle
                                   // machine, not stretched by other processes on a busy one)
    uint64_t total_pause_us;       // all collections together
    uint64_t max_pause_us;         // the longest one
    uint64_t last_marked;          // blocks found reachable by the last collection
    uint64_t last_freed;           // blocks reclaimed by the last collection
    uint64_t mark_stack_overflows; // times the mark stack could not grow (heap rescanned)
} gc_stats_t;

// A zeroed block of at least n bytes, 16-byte aligned; NULL and errno ENOMEM
// when the heap cannot grow even after a collection. May collect first.
GC_API void *gc_malloc(size_t n);

// Collect now: mark from the roots, reclaim every unreachable block.
GC_API void gc_collect(void);

// Block bytes in use: handed out and not yet reclaimed (garbage included
// until the next collection). Blocks are counted at their size class.
GC_API size_t gc_live_bytes(void);

// Scan [p, p+n) as a root on every collection, e.g. a malloc'd table of
// pointers to gc blocks. Registering the same p twice replaces the range.
GC_API void gc_add_root(void *p, size_t n);
// Stop scanning the range registered at p; nothing happens if there is none.
GC_API void gc_remove_root(void *p);

// The counters above, as of now.
GC_API void gc_stats_get(gc_stats_t *out);

// Free every block, forget every root and give the heap back to the OS. The
// next gc_malloc starts a new heap, on whichever thread calls it.
GC_API void gc_reset(void);

#endif
