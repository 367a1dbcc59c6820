// SPDX-License-Identifier: MIT
//
// start.h -- the once-only work of a process (start-up, the fork
// handler's registration), claimed so that it survives a fork, and the
// test every slow path makes before it takes a lock.
//
// The work itself is above: start-up (api/init.c) and the registration
// (api/fork.c) are reached through the hook table (hooks.h), so the core
// starts the process without knowing what start-up does. Start-up may be
// the first code of the process to run (called from ld.so, from dlsym, from
// a TLS constructor), so it allocates nothing and calls nothing of libc
// that could.
#ifndef MALLET_START_H
#define MALLET_START_H

#include <stdbool.h>
#include <stdint.h>

#include "hooks.h"

// Start-up and the fork handlers' registration: 0 not started, 2 done,
// anything else running, in the process MALLET_RUNNING_PID(state). A fork
// child whose parent was in the middle of either sees a running state
// whose process is not its own: that thread did not come along, so the
// child starts the work over.
extern int mallet__init_state;
extern int mallet__fork_state;
#define MALLET_RUNNING(pid)       ((int)(pid) << 2 | 1)
#define MALLET_RUNNING_PID(state) ((state) >> 2)

// Wait until *state (one of the two above) is done: false; or claim the
// work for this process: true, the caller does it and stores 2.
bool mallet__claim(int *state);

// Every slow-path entry that may take a lock comes through here, so no lock
// is ever held before the fork handlers exist. They are registered after
// start-up, not during it: pthread_atfork may allocate.
static inline void mallet__init(void)
{
    if (__builtin_expect(__atomic_load_n(&mallet__init_state, __ATOMIC_ACQUIRE) != 2, 0))
        mallet__hooks.start();
    if (__builtin_expect(__atomic_load_n(&mallet__fork_state, __ATOMIC_ACQUIRE) != 2, 0))
        mallet__hooks.register_fork();
}

#endif
