// SPDX-License-Identifier: MIT
//
// init.c -- lazy start-up.
//
// Start-up runs once, on the first slow path of the process, which reaches
// it through the hook table (base/start.h): options from the environment,
// the class table, a random seed, the reports' stacks, the thread-exit key.
// A second thread arriving meanwhile waits; nothing here allocates. A fork
// child of a process that was starting up starts up again (base/start.h).
#include "init.h"

#include "base/base.h"
#include "mem/mem.h"
#include "prof/prof.h"

void mallet__init_slow(void)
{
    if (!mallet__claim(&mallet__init_state))
        return;
    mallet__options_init();
    mallet__size_class_init();
    mallet__random_seed();
    mallet__stack_reports_on();
    mallet__thread_init();
    __atomic_store_n(&mallet__init_state, 2, __ATOMIC_RELEASE);
}
