// SPDX-License-Identifier: MIT
//
// api.h -- the entry points, the one header override/ includes from api/:
// the malloc family in mallet_* names (alloc.c, free.c, include/mallet.h),
// start-up (init.h), the counters merged (stats.c), the version.
//
// api/ uses every layer below it; nothing below calls it, except start-up
// through the hook table (base/hooks.h).
#ifndef MALLET_API_H
#define MALLET_API_H

#include "init.h"

#endif
