// SPDX-License-Identifier: MIT
//
// track.h -- how an allocator tells the memory checkers what it is doing.
//
// Every allocator in mallet (libmallet and the teach designs) reports its
// blocks through these macros and includes neither <sanitizer/asan_interface.h>
// nor <valgrind/memcheck.h> itself. Which backend is live is a build choice:
//
//   SAN=address     -> ASan manual poisoning: freed blocks, metadata and the
//                      tail between the requested size and the block size are
//                      poisoned, so touching them is reported by ASan.
//   TRACK=valgrind  -> memcheck client requests: every block is announced as
//                      a malloc-like block, so leaks and invalid accesses in a
//                      program that uses the allocator are reported.
//   neither         -> every macro compiles to nothing.
//
// The hooks, each in allocator terms:
//
//   MALLET_TRACK_MALLOC(p, req, size, zero)  a block of `size` bytes at p was
//                           handed out for a request of `req` bytes; `zero`
//                           says its contents are known to be zero.
//   MALLET_TRACK_FREE(p, size)     the block at p (of `size` bytes) is free.
//   MALLET_TRACK_RESIZE(p, old_req, new_req, size)  the block stayed in place
//                           and now serves `new_req` bytes.
//   MALLET_TRACK_MEM_UNDEFINED(p, n)  allocator-private memory, now usable by
//                           the allocator itself (metadata, free-list links).
//   MALLET_TRACK_MEM_NOACCESS(p, n)   memory nobody may touch until further
//                           notice (free payloads, guard gaps).
//   MALLET_TRACK_UNCHECKED  on a function: its reads and writes are the
//                           allocator's own bookkeeping inside poisoned
//                           bytes (the secure build's canaries and fills),
//                           not checked and leaving the poison as it is.
//   MALLET_TRACK_MEM_DEFINED(p, n)    memory the allocator reads or writes
//                           itself and knows to be initialised.
//
// The allocator unpoisons a free block's link word with MEM_UNDEFINED before
// writing it, and re-poisons with MEM_NOACCESS after.
#ifndef MALLET_DEBUG_TRACK_H
#define MALLET_DEBUG_TRACK_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define MALLET_TRACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MALLET_TRACK_ASAN 1
#endif
#endif

#if defined(MALLET_TRACK_ASAN)
#include <sanitizer/asan_interface.h>

#define MALLET_TRACK_MALLOC(p, req, size, zero) \
    do { ASAN_UNPOISON_MEMORY_REGION((p), (req)); \
         ASAN_POISON_MEMORY_REGION((char *)(p) + (req), (size) - (req)); } while (0)
#define MALLET_TRACK_FREE(p, size)            ASAN_POISON_MEMORY_REGION((p), (size))
#define MALLET_TRACK_RESIZE(p, old_req, new_req, size) \
    do { ASAN_UNPOISON_MEMORY_REGION((p), (new_req)); \
         ASAN_POISON_MEMORY_REGION((char *)(p) + (new_req), (size) - (new_req)); } while (0)
#define MALLET_TRACK_MEM_UNDEFINED(p, n)      ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define MALLET_TRACK_MEM_DEFINED(p, n)        ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define MALLET_TRACK_MEM_NOACCESS(p, n)       ASAN_POISON_MEMORY_REGION((p), (n))
#define MALLET_TRACK_UNCHECKED                __attribute__((no_sanitize_address))
#define MALLET_TRACK_ENABLED 1

#elif defined(MALLET_TRACK_VALGRIND)
#include <valgrind/memcheck.h>

// The block is described by its requested size so reads past the request
// are reported, exactly as they would be under the system malloc.
#define MALLET_TRACK_MALLOC(p, req, size, zero) \
    VALGRIND_MALLOCLIKE_BLOCK((p), (req), 0, (zero))
#define MALLET_TRACK_FREE(p, size)            VALGRIND_FREELIKE_BLOCK((p), 0)
#define MALLET_TRACK_RESIZE(p, old_req, new_req, size) \
    VALGRIND_RESIZEINPLACE_BLOCK((p), (old_req), (new_req), 0)
#define MALLET_TRACK_MEM_UNDEFINED(p, n)      VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define MALLET_TRACK_MEM_DEFINED(p, n)        VALGRIND_MAKE_MEM_DEFINED((p), (n))
#define MALLET_TRACK_MEM_NOACCESS(p, n)       VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define MALLET_TRACK_UNCHECKED
#define MALLET_TRACK_ENABLED 1

#else
#define MALLET_TRACK_MALLOC(p, req, size, zero)        ((void)0)
#define MALLET_TRACK_FREE(p, size)                     ((void)0)
#define MALLET_TRACK_RESIZE(p, old_req, new_req, size) ((void)0)
#define MALLET_TRACK_MEM_UNDEFINED(p, n)               ((void)0)
#define MALLET_TRACK_MEM_DEFINED(p, n)                 ((void)0)
#define MALLET_TRACK_MEM_NOACCESS(p, n)                ((void)0)
#define MALLET_TRACK_UNCHECKED
#define MALLET_TRACK_ENABLED 0
#endif

#endif
