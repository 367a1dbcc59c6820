// SPDX-License-Identifier: MIT
//
// fork.c -- the one fork handler, in the child, and its registration.
//
// One pthread_atfork registration, made lazily by the first slow path
// after start-up, before it takes any lock (it may allocate, so never from a
// constructor, never during start-up, never under a lock). It has a child
// handler only: fork takes no lock. A lock held across the prepare handler
// would be held while fork waits for libc's own locks (stdio's list lock
// comes after every prepare handler), and a thread that holds a FILE lock
// and allocates would wait for it: a deadlock glibc's malloc avoids by
// locking after stdio, which an interposed allocator cannot. A fork from a
// signal handler that interrupted the allocator would wait for its own
// thread. So the parent never waits, and the child, alone in its process,
// looks at each lock (base/lock.h): free, its data is whole; held by a thread
// that did not come along, its data is repaired or given up; held by the
// interrupted code of its own thread, left to that code.
//
// The core reaches the registration through the hook table (base/hooks.h),
// from base/start.h's test on every slow path.
//
// Calls: every layer's after_fork (mem, prof, secure), base's random.
#include <pthread.h>
#include <stdint.h>

#include "init.h"
#include "base/base.h"
#include "mem/mem.h"
#include "prof/prof.h"
#include "secure/secure.h"

static __thread uint8_t fork_registering __attribute__((tls_model("initial-exec")));

// Child-side re-initialisation: the state a child must not share with its
// parent. Everything of that kind happens here, after the shared state is
// repaired (it may allocate, except in a child forked from a signal handler
// that interrupted the allocator, where nothing may).
static void fork_child_reinit(void)
{
    mallet__purge_forget_thread();
    mallet__random_fork_child();
}

static void fork_child(void)
{
    // The handlers ran, so they are registered, whatever the parent's
    // registering thread had stored yet.
    __atomic_store_n(&mallet__fork_state, 2, __ATOMIC_RELEASE);
    // Each piece under its own lock, in any order: the repairs do not call
    // each other.
    mallet__large_after_fork();
    mallet__span_after_fork();
    mallet__thread_after_fork();
    mallet__prof_after_fork();          // before the heaps: it may give its heap up
    mallet__heap_after_fork();
#if MALLET_SECURE
    mallet__zero_after_fork();
#endif
    fork_child_reinit();
}

void mallet__thread_register_fork(void)
{
    if (fork_registering)
        return;               // pthread_atfork allocating: let it
    if (!mallet__claim(&mallet__fork_state))
        return;
    fork_registering = 1;
    pthread_atfork(NULL, NULL, fork_child);
    fork_registering = 0;
    __atomic_store_n(&mallet__fork_state, 2, __ATOMIC_RELEASE);
}

