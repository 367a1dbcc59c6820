// SPDX-License-Identifier: MIT
//
// size_class.h -- the geometry of libmallet and the size <-> class table.
//
// Glossary (the words every other file uses):
//   block    what malloc hands out; 16-byte aligned, no header.
//   class    a block size. Sizes round up to the next class: 16-byte steps up
//            to 128 bytes, then four classes per power of two, so a block
//            wastes at most a quarter of itself beyond 128 bytes.
//   unit     64 KiB of address space, the grain pages are carved in.
//   page     one or more units holding blocks of one class.
//   segment  4 MiB aligned to 4 MiB; unit 0 holds all the metadata of the
//            other 63 units (page descriptors, the unit map).
//   large    a block above MALLET_SMALL_MAX: a mapping of its own.
//
// Invariants: every class size is a multiple of 16; a class's page holds
// at least one block; class sizes grow strictly.
#ifndef MALLET_SIZE_CLASS_H
#define MALLET_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#define MALLET_GRAIN_SHIFT   4                          // 16-byte granules
#define MALLET_GRAIN         (1u << MALLET_GRAIN_SHIFT)
#define MALLET_UNIT_SHIFT    16                         // 64 KiB units
#define MALLET_UNIT_SIZE     ((size_t)1 << MALLET_UNIT_SHIFT)
#define MALLET_SEG_SHIFT     22                         // 4 MiB segments
#define MALLET_SEG_SIZE      ((size_t)1 << MALLET_SEG_SHIFT)
#define MALLET_SEG_MASK      (MALLET_SEG_SIZE - 1)
#define MALLET_SEG_UNITS     (MALLET_SEG_SIZE / MALLET_UNIT_SIZE)
#define MALLET_SEG_GRAINS    (MALLET_SEG_SIZE >> MALLET_GRAIN_SHIFT)

// The largest small block. 256 KiB keeps the common medium sizes (file
// buffers, hash tables of a few thousand entries) out of mmap, while a page
// of that class (1 MiB, four blocks) is still a quarter of a segment.
#define MALLET_SMALL_MAX     ((size_t)256 << 10)
#define MALLET_CLASSES       52
// Sizes up to this go through a direct slot per 16-byte step in the heap.
#define MALLET_DIRECT_MAX    1024
#define MALLET_DIRECT_SLOTS  (MALLET_DIRECT_MAX / MALLET_GRAIN + 1)
// Longest page, in units: four blocks of the largest class.
#define MALLET_PAGE_UNITS_MAX 16

typedef struct mallet_class {
    uint32_t size;         // block size in bytes
    uint32_t blocks;       // blocks in one page of this class
    uint8_t  units;        // page length in units
    uint8_t  direct_lo;    // first direct slot that maps to this class
    uint8_t  direct_hi;    // last one (lo > hi: none)
} mallet_class_t;

extern mallet_class_t mallet__classes[MALLET_CLASSES];

// Fill the table (page lengths are chosen by search). Idempotent.
void mallet__size_class_init(void);

// The smallest block handed out: 16 bytes, or 32 in the secure build,
// whose free blocks keep a link and 24 bytes of fill (harden.h).
#if defined(MALLET_SECURE) && MALLET_SECURE
#define MALLET_MIN_BLOCK 32
#else
#define MALLET_MIN_BLOCK 16
#endif

// The class of a request of `size` bytes, size <= MALLET_SMALL_MAX.
static inline unsigned mallet__size_class(size_t size)
{
    if (size <= 128) {
        if (size <= MALLET_MIN_BLOCK)
            return MALLET_MIN_BLOCK / MALLET_GRAIN - 1;
        return (unsigned)((size - 1) >> MALLET_GRAIN_SHIFT);
    }
    size_t s = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(s);      // 2^b <= s < 2^(b+1)
    return 8u + (b - 7u) * 4u + (unsigned)((s >> (b - 2)) & 3);
}

// The block size of class c, computed without the table.
static inline size_t mallet__class_size(unsigned c)
{
    if (c < 8)
        return (size_t)(c + 1) << MALLET_GRAIN_SHIFT;
    unsigned b = 7 + (c - 8) / 4, k = (c - 8) % 4;
    return ((size_t)1 << b) + (size_t)(k + 1) * ((size_t)1 << (b - 2));
}

#endif
