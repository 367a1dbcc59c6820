// SPDX-License-Identifier: MIT
//
// mem.h -- the allocator's core, the one header the layers above include
// from mem/: size classes (size_class.h), pages and their lists (page.h),
// the secure build's checks compiled into those lists (harden.h), segments
// (span.h), thread heaps and the fast paths (heap.h), abandoned heaps
// (thread.h), large blocks (large.h), giving memory back (purge.h).
//
// mem/ uses base/, os/ and debug/. The profiler and the secure build's
// features above it are reached only through the hooks of base/hooks.h.
#ifndef MALLET_MEM_H
#define MALLET_MEM_H

#include "size_class.h"
#include "page.h"
#include "harden.h"
#include "span.h"
#include "heap.h"
#include "thread.h"
#include "large.h"
#include "purge.h"

#endif
