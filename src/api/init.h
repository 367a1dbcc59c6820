// SPDX-License-Identifier: MIT
//
// init.h -- the entry points' start-up and fork handler: the work behind
// the hooks base/start.h calls (base/hooks.h).
#ifndef MALLET_INIT_H
#define MALLET_INIT_H

// Start-up, once: options from the environment, the class table, a random
// seed, the reports' stacks, the thread-exit key (init.c).
void mallet__init_slow(void);
// Register the fork handler; others wait until it is done (fork.c).
void mallet__thread_register_fork(void);

#endif
