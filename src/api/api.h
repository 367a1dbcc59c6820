// SPDX-License-Identifier: MIT
//
// api.h -- the entry points, the one header override/ includes from api/:
// the malloc family in mallet_* names (alloc.c, free.c, include/mallet.h),
// malloc's and free's fast paths (fast.h), start-up (init.h), trimming
// (trim.c), the counters merged and reported (stats_report.c), the version.
//
// api/ uses every layer below it; nothing below calls it, except start-up
// through the hook table (base/hooks.h).
#ifndef MALLET_API_H
#define MALLET_API_H

#include <stddef.h>

#include "fast.h"
#include "init.h"

// malloc_trim's work (trim.c): the secure build's check in func's name,
// then every page that can go given back; the bytes given back.
size_t mallet__trim(const char *func);

#endif
