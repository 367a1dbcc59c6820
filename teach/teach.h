// SPDX-License-Identifier: MIT
//
// teach.h -- the one interface every teaching allocator implements.
//
// Each design in teach/ (01_bump.c ... 07_arena.c) fills in one
// teach_allocator_t. Tests, the replayer and the heap map drive every design
// through this table and nothing else, so they can be compared side by side.
//
// Where the memory comes from: each design grows a *break* (src/os/os.h,
// mallet_brk_t). Linked in-process the break is a private reservation, so
// several teach heaps live in one process and each footprint is exact; built
// as a preload library (TEACH_PRELOAD defined) the break is the real sbrk.
// Blocks of TEACH_MMAP_THRESHOLD bytes and more go to mmap in the free-list
// designs.
//
// Rules every design keeps:
//   - every pointer returned is 16-byte aligned;
//   - malloc(0) returns a unique pointer that free accepts;
//   - failure returns NULL with errno ENOMEM and leaves the heap usable;
//   - free(NULL) does nothing; free never changes errno;
//   - a block's header (where it has one) records the block size, not the
//     request.
#ifndef MALLET_TEACH_H
#define MALLET_TEACH_H

#include <stdbool.h>
#include <stddef.h>

#define TEACH_ALIGN          16
#define TEACH_MMAP_THRESHOLD (128 * 1024)

// Called by walk() once per block, in address order within each region.
typedef void (*teach_visit_fn)(void *ctx, void *addr, size_t size, bool used);

typedef struct teach_allocator {
    const char *name;                        // short name: "bump", "firstfit", ...
    const char *design;                      // one line: what the design is
    void *(*malloc)(size_t n);               // as malloc(3)
    void (*free)(void *p);                   // as free(3)
    void *(*realloc)(void *p, size_t n);     // as realloc(3), glibc's rules
    void *(*memalign)(size_t align, size_t n); // aligned block, or NULL if unsupported
    size_t (*usable_size)(void *p);          // bytes usable at p (>= request)
    void (*walk)(teach_visit_fn visit, void *ctx); // every block, used and free
    void (*reset)(void);                     // forget every block, return memory
    size_t (*footprint)(void);               // bytes taken from the OS now (break + mmap)
    size_t (*live_bytes)(void);              // usable bytes of the blocks in use
} teach_allocator_t;

// Every design, in reading order, ending with NULL.
extern const teach_allocator_t *const teach_allocators[];

// The design called `name`, or NULL.
const teach_allocator_t *teach_find(const char *name);

#endif
