// SPDX-License-Identifier: MIT
//
// test_lib_fork_repair.c -- a fork child finds each of libmallet's locks
// held by a thread that did not come along, one lock per test: the child
// must repair or give up what that lock guards and go on allocating. A
// thread takes the lock and keeps it while the main thread forks; the child
// checks and frees blocks made before the fork (small and large), allocates
// and frees blocks of every kind, trims, reads the statistics, and exits.
// And the child of a process that was starting up starts up again.
#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "mem/mem.h"
#include "base/base.h"
#include "mallet.h"

// tsan: yes

static mallet_lock_t *held;
static atomic_int phase;          // 1: the lock is held; 2: let it go

static void *holder(void *arg)
{
    (void)arg;
    mallet__lock(held);
    atomic_store(&phase, 1);
    while (atomic_load(&phase) != 2)
        sched_yield();
    mallet__unlock(held);
    return NULL;
}

enum { SMALL = 64, BIG = 6 };

static int child_work(unsigned char **small, unsigned char **big)
{
    alarm(30);
    for (int i = 0; i < SMALL; i++) {
        if (small[i][0] != (unsigned char)i || small[i][99] != (unsigned char)i)
            return 2;
        mallet_free(small[i]);
    }
    for (int i = 0; i < BIG; i++) {
        if (big[i][0] != (unsigned char)i || big[i][(300 << 10) - 1] != (unsigned char)i)
            return 3;
        mallet_free(big[i]);
    }
    for (int round = 0; round < 2; round++) {
        void *p[512];
        for (int i = 0; i < 512; i++) {
            size_t n = i % 50 == 0 ? (size_t)(200 + i) << 10 : (size_t)(1 + i * 37 % 9000);
            p[i] = mallet_malloc(n);
            if (p[i] == NULL)
                return 4;
            memset(p[i], 0x33, n);
        }
        for (int i = 0; i < 512; i++)
            mallet_free(p[i]);
        mallet_trim();
    }
    mallet_stats_t s;
    mallet_stats_get(&s);
    return 0;
}

// Under memcheck the child hands its verdict to a shell: its leak check
// would count the holder thread's blocks as lost.
static void child_exit(int code)
{
    if (test_under_valgrind()) {
        char cmd[16];
        snprintf(cmd, sizeof cmd, "exit %d", code);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    }
    _exit(code);
}

static void fork_while_held(mallet_lock_t *lock)
{
    unsigned char *small[SMALL], *big[BIG];
    for (int i = 0; i < SMALL; i++) {
        small[i] = mallet_malloc(100);
        small[i][0] = small[i][99] = (unsigned char)i;
    }
    for (int i = 0; i < BIG; i++) {
        big[i] = mallet_malloc(300 << 10);
        big[i][0] = big[i][(300 << 10) - 1] = (unsigned char)i;
    }
    held = lock;
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    while (atomic_load(&phase) != 1)
        sched_yield();
    pid_t pid = fork();
    if (pid == 0)
        child_exit(child_work(small, big));
    atomic_store(&phase, 2);
    pthread_join(t, NULL);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  child status 0x%x\n", status);
    for (int i = 0; i < SMALL; i++)
        mallet_free(small[i]);
    for (int i = 0; i < BIG; i++)
        mallet_free(big[i]);
}

TEST(child_repairs_when_the_heap_list_lock_was_held)
{
    fork_while_held(&mallet__heaps_lock);
}

TEST(child_repairs_when_its_own_heap_was_being_swept)
{
    mallet_free(mallet_malloc(10));
    fork_while_held(&mallet__tls_heap->lock);
}

TEST(child_repairs_when_the_abandoned_lists_lock_was_held)
{
    fork_while_held(&mallet__abandoned_lock);
}

TEST(child_repairs_when_the_segment_lock_was_held)
{
    fork_while_held(&mallet__seg_lock);
}

TEST(child_repairs_when_the_large_block_lock_was_held)
{
    fork_while_held(&mallet__large_lock);
}

// As if another thread were inside start-up, and inside the registration of
// the fork handlers, when the process forked: the child must do both again.
TEST(child_of_a_process_that_was_starting_up_allocates)
{
    __atomic_store_n(&mallet__init_state, MALLET_RUNNING(getpid()), __ATOMIC_RELEASE);
    __atomic_store_n(&mallet__fork_state, MALLET_RUNNING(getpid()), __ATOMIC_RELEASE);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        void *p = mallet_malloc(100), *big = mallet_malloc(1 << 20);
        mallet_free(p);
        mallet_free(big);
        child_exit(p && big ? 0 : 1);
    }
    __atomic_store_n(&mallet__fork_state, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&mallet__init_state, 0, __ATOMIC_RELEASE);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    void *p = mallet_malloc(100);
    CHECK(p != NULL);
    mallet_free(p);
}
