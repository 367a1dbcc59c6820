// SPDX-License-Identifier: MIT
//
// override_secure.c -- what the secure build changes in where blocks go and
// when they come back, asserted per build so that a change in either shows:
//
//   property                        default build            secure build
//   a freed block, next mallocs     the newest free comes    never among the
//                                   back first when the      last 8 freed
//                                   free list runs dry
//   consecutive small mallocs       neighbours, in address   from random runs:
//                                   order                    rarely neighbours
//   the order from run to run       the same                 different
//   the order in two fork children  the same                 different
//     of one parent
//   a block's usable size           its class size           its request
//
// The secure build compiles this file with MALLET_SECURE=1 (tests/
// secure_suite.sh); the glibc build checks nothing glibc does not promise.
#include "override_common.h"

#ifndef MALLET_SECURE
#define MALLET_SECURE 0
#endif

enum { N = 176, RECENT = 8 };     // a class no other test here uses first

// malloc(N) then free it, `rounds` times; count the mallocs that returned
// one of the last RECENT blocks freed.
static long reuse_of_recent_frees(long rounds)
{
    uintptr_t recent[RECENT] = { 0 };
    long hits = 0;
    for (long i = 0; i < rounds; i++) {
        void *p = opaque_ptr(malloc(N));
        CHECK(p != NULL);
        for (int k = 0; k < RECENT; k++)
            hits += recent[k] == (uintptr_t)p;
        memset(p, (int)i, N);
        recent[i % RECENT] = (uintptr_t)p;
        free(p);
    }
    return hits;
}

TEST(recently_freed_blocks_are_held_back)
{
    long hits = reuse_of_recent_frees(test_scaled(20000, 10));
    fprintf(stderr, "  %ld mallocs returned one of the last %d blocks freed\n", hits, RECENT);
    if (!test_on_mallet())
        TEST_SKIP("glibc promises nothing here");
    if (MALLET_SECURE)
        CHECK(hits == 0);
    else
        CHECK(hits > 0);
}

// Allocate `count` blocks of N bytes in a row; count the neighbours (a
// block at most 256 bytes after the one before it: the next block of the
// class) and write the address offsets within their 4 MiB segments to
// `order`.
static long neighbours(int count, uintptr_t *order)
{
    char *blocks[512];
    long next = 0;
    for (int i = 0; i < count; i++) {
        blocks[i] = opaque_ptr(malloc(N));
        CHECK(blocks[i] != NULL);
        order[i] = (uintptr_t)blocks[i] & ((4u << 20) - 1);
        if (i > 0 && blocks[i] > blocks[i - 1] && blocks[i] - blocks[i - 1] <= 256)
            next++;
    }
    for (int i = 0; i < count; i++)
        free(blocks[i]);
    return next;
}

// Run as `OVERRIDE_SECURE_ORDER=1 THIS_PROGRAM`: print the order of 32
// fresh blocks (offsets in their segment) and exit, before the tests start.
// (A forked child would inherit the parent's random state: a new process
// is what must differ.)
__attribute__((constructor)) static void print_order(void)
{
    if (!getenv("OVERRIDE_SECURE_ORDER"))
        return;
    uintptr_t order[32];
    neighbours(32, order);
    for (int i = 0; i < 32; i++)
        printf("%lx ", (unsigned long)order[i]);
    printf("\n");
    fflush(stdout);
    _exit(0);
}

static void order_of_a_new_process(char *out, size_t cap)
{
    char self[512], cmd[600];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    self[n > 0 ? n : 0] = 0;
    snprintf(cmd, sizeof cmd, "OVERRIDE_SECURE_ORDER=1 '%s'", self);
    out[0] = 0;
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    CHECK(fgets(out, (int)cap, f) != NULL);
    CHECK(pclose(f) == 0);
}

TEST(consecutive_blocks_are_rarely_neighbours)
{
    uintptr_t order[400];
    long next = neighbours(400, order);
    fprintf(stderr, "  %ld of 399 consecutive blocks are neighbours\n", next);
    if (!test_on_mallet())
        TEST_SKIP("glibc promises nothing here");
    if (MALLET_SECURE)
        CHECK(next < 200);           // about 1 in 8 with 8 runs
    else
        CHECK(next > 350);
}

// Two orders of the same allocations: they differ in the secure build and
// are the same in the default one.
static void expect_orders(const char *a, const char *b, const char *who)
{
    fprintf(stderr, "  first %s:  %.60s...\n  second %s: %.60s...\n", who, a, who, b);
    CHECK(a[0] != 0 && b[0] != 0);
    if (!test_on_mallet())
        TEST_SKIP("glibc promises nothing here");
    if (MALLET_SECURE)
        CHECK(strcmp(a, b) != 0);
    else
        CHECK(strcmp(a, b) == 0);
}

TEST(the_order_differs_from_run_to_run)
{
    char a[1024], b[1024];
    order_of_a_new_process(a, sizeof a);
    order_of_a_new_process(b, sizeof b);
    expect_orders(a, b, "run");
}

TEST(usable_size_is_the_request_in_the_secure_build)
{
    for (size_t n = 0; n < 600; n += 7) {
        char *p = opaque_ptr(malloc(n));
        CHECK(p != NULL);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n);
        if (test_on_mallet() && MALLET_SECURE)
            CHECK(u == n);
        memset(p, 1, u);             // the whole usable size is the caller's
        free(p);
    }
}

// Two children of one parent each print the order of 32 blocks of a size
// the parent never asked for (fresh pages, carved in the child).
static void order_in_a_child(char *out, size_t cap)
{
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char line[1024];
        void *held[32];
        size_t len = 0;
        for (int i = 0; i < 32; i++) {
            held[i] = malloc(3000);
            len += (size_t)snprintf(line + len, sizeof line - len, "%lx ",
                                    (unsigned long)((uintptr_t)held[i] & ((4u << 20) - 1)));
        }
        for (int i = 0; i < 32; i++)
            free(held[i]);        // nothing left for memcheck's leak check
        if (write(fd[1], line, len) != (ssize_t)len)
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], out, cap - 1);
    out[n > 0 ? n : 0] = 0;
    close(fd[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(two_fork_children_allocate_in_different_orders)
{
    char a[1024], b[1024];
    order_in_a_child(a, sizeof a);
    order_in_a_child(b, sizeof b);
    expect_orders(a, b, "child");
}
