// SPDX-License-Identifier: MIT
//
// init.c -- lazy start-up and the key generator.
//
// Start-up runs once, on the first slow path of the process: options from
// the environment, the class table, a random seed, the thread-exit key.
// A second thread arriving meanwhile waits; nothing here allocates. A fork
// child of a process that was starting up starts up again (init.h).
#define _GNU_SOURCE
#include "init.h"

#include "prof/prof.h"

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/options.h"
#include "mem/size_class.h"
#include "mem/thread.h"

int mallet__init_state;
static uint64_t random_state;        // advanced by a constant per call

uint64_t mallet__random_next(void)
{
    return mallet__mix64(__atomic_add_fetch(&random_state, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED));
}

static void random_seed(void)
{
    uint64_t seed = 0;
    // The raw system call: getrandom(3) is fine too, but nothing of libc
    // is trusted to be ready here.
    if (syscall(SYS_getrandom, &seed, sizeof seed, 1 /* GRND_NONBLOCK */) != (long)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&seed;
    }
    random_state = mallet__mix64(seed);
}

void mallet__random_fork_child(void)
{
    // The child's state must owe nothing to the parent's: a pre-forking
    // server's children would otherwise share their new pages' keys and
    // canaries and their shuffled order, and one leaked value would serve
    // for all of them.
    random_seed();
}

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

void mallet__init_slow(void)
{
    if (!mallet__claim(&mallet__init_state))
        return;
    mallet__options_init();
    mallet__size_class_init();
    random_seed();
    mallet__stack_reports_on();
    mallet__thread_init();
    __atomic_store_n(&mallet__init_state, 2, __ATOMIC_RELEASE);
}
