// SPDX-License-Identifier: MIT
//
// start.c -- claiming the once-only work of a process (start.h).
#define _GNU_SOURCE
#include "start.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

int mallet__init_state;
int mallet__fork_state;

bool mallet__claim(int *state)
{
    pid_t pid = (pid_t)syscall(SYS_getpid);
    for (;;) {
        int s = __atomic_load_n(state, __ATOMIC_ACQUIRE);
        if (s == 2)
            return false;
        // Not started, or started by the parent of this fork child.
        if ((s == 0 || MALLET_RUNNING_PID(s) != pid) &&
            __atomic_compare_exchange_n(state, &s, MALLET_RUNNING(pid), false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return true;
        sched_yield();
    }
}

