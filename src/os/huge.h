// SPDX-License-Identifier: MIT
//
// huge.h -- what the kernel offers and grants in transparent huge pages.
//
// A huge page is MALLET_HUGE_SIZE bytes, aligned to its size. The kernel
// backs an aligned 2 MiB range of an anonymous mapping with one when the
// mode in /sys/kernel/mm/transparent_hugepage/enabled is `always`, or
// `madvise` and the range was advised (mallet__os_advise_huge in os.h).
// Purging any part of such a page splits it into 4 KiB pages for good, so
// whoever wants to keep huge pages purges whole aligned 2 MiB ranges only.
#ifndef MALLET_OS_HUGE_H
#define MALLET_OS_HUGE_H

#include <stddef.h>

#define MALLET_HUGE_SHIFT 21
#define MALLET_HUGE_SIZE  ((size_t)1 << MALLET_HUGE_SHIFT)

typedef enum {
    MALLET_THP_UNKNOWN = -1,  // the file is missing or unreadable
    MALLET_THP_NEVER,         // no huge pages for anonymous memory
    MALLET_THP_MADVISE,       // huge pages where advised
    MALLET_THP_ALWAYS,        // huge pages everywhere they fit
} mallet_thp_mode_t;

// The system's transparent huge page mode (read on every call).
mallet_thp_mode_t mallet__os_thp_mode(void);

// AnonHugePages of the calling process, in kB, from /proc/self/smaps_rollup;
// -1 when it cannot be read.
long mallet__os_anon_huge_kb(void);

#endif
