// SPDX-License-Identifier: MIT
//
// base.h -- the leaves of libmallet, the one header the layers above
// include from base/: the lock and the clock (lock.h), the option table
// (options.h), the counters (stats.h), the key generator (random.h), the
// once-only work of a process (start.h) and the hook table through which
// the core reaches the layers above (hooks.h).
//
// base/ uses nothing above os/ and debug/: every layer may call it, from
// start-up on, and nothing in it allocates.
#ifndef MALLET_BASE_H
#define MALLET_BASE_H

#include "lock.h"
#include "options.h"
#include "stats.h"
#include "random.h"
#include "hooks.h"
#include "start.h"

#endif
