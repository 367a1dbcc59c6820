// SPDX-License-Identifier: MIT
//
// fork_shapes.h -- the two ways a fork used to hang, as rounds run many
// times over, each round in a process of its own under a watchdog, so a
// hang fails the test after a deadline instead of stopping the suite.
//
//   signal  one thread allocates in a loop and forks now and then; a timer
//           signal whose handler forks lands anywhere -- inside malloc,
//           inside fork, inside the handler itself (SA_NODEFER: handlers
//           nest) -- and the handler's child exits at once.
//   stdio   one thread forks while another runs fflush(NULL) (stdio's list
//           lock, then each FILE's lock) and a third allocates while it
//           holds a FILE's lock (what getline does); the child allocates
//           freely, frees blocks its parent made, trims, and checks them.
//
// The includer defines the allocator under test before including this:
// SHAPE_MALLOC, SHAPE_REALLOC, SHAPE_FREE, SHAPE_TRIM(), and SHAPE_LOCKED_ALLOC(f)
// for the stdio shape's third thread: allocate while holding f's lock.
#ifndef MALLET_FORK_SHAPES_H
#define MALLET_FORK_SHAPES_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <time.h>

// Run round() in a child; 0 when it exits 0, 1 when it fails, 2 when it is
// still running after 20 s, 150 s under memcheck, which runs one thread at
// a time and forks slowly (then it is killed).
static int shape_watch(void (*round)(unsigned), unsigned seed)
{
    long deadline_ms = test_under_valgrind() ? 150000 : 20000;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        // Killed with the test if the harness's own timeout strikes first.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        round(seed);
        _exit(test_failures ? 1 : 0);
    }
    if (pid < 0)
        return 1;
    struct timespec nap = { 0, 2 * 1000 * 1000 };
    for (long waited = 0; waited < deadline_ms / 2; waited++) {
        int status;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
        if (got < 0 && errno != EINTR)
            return 1;
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 2;
}

static uint64_t shape_next(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

// A size: mostly small, now and then one that needs a new page or a large
// block (the paths that take the allocator's locks).
static size_t shape_size(uint64_t *x)
{
    uint64_t r = shape_next(x);
    if (r % 16 == 0)
        return 128 * 1024 + r % (512 * 1024);
    if (r % 4 == 0)
        return 1024 + r % 60000;
    return 1 + r % 512;
}

// Reap one child; its exit status, or -1 when it died otherwise.
static int shape_reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// --- signal: fork from a signal handler ----------------------------------------

static volatile sig_atomic_t signal_depth;
static volatile sig_atomic_t signal_rearm;
static volatile sig_atomic_t signal_forks;
static volatile sig_atomic_t signal_bad;

// One signal at a time, delay between 50 and 1000 us: a timer that fires
// faster than a fork completes keeps restarting the fork (a livelock of the
// test's own making, with any malloc).
static void signal_arm(void)
{
    signal_rearm = (sig_atomic_t)((unsigned)signal_rearm * 1103515245u + 12345u);
    struct itimerval it = { { 0, 0 }, { 0, 50 + (long)((unsigned)signal_rearm % 950) } };
    setitimer(ITIMER_REAL, &it, NULL);
}

static void signal_fork(int sig)
{
    (void)sig;
    int saved = errno;
    if (signal_depth < 3) {
        signal_depth++;
        // Now and then the next signal lands inside this handler's fork.
        if (signal_depth < 2 && (signal_rearm & 0x100))
            signal_arm();
        pid_t pid = fork();
        if (pid == 0)
            test_child_exit(0);
        if (pid > 0) {
            signal_forks++;
            if (shape_reap(pid) != 0)
                signal_bad++;
        }
        signal_depth--;
    }
    errno = saved;
}

static void signal_round(unsigned seed)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = signal_fork;
    sa.sa_flags = SA_NODEFER | SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    signal_rearm = (sig_atomic_t)seed;
    enum { SLOTS = 64 };
    unsigned char *slot[SLOTS] = { 0 };
    size_t len[SLOTS] = { 0 };
    long steps = test_under_valgrind() ? 200 : 600;
    for (long s = 0; s < steps; s++) {
        unsigned i = (unsigned)(shape_next(&x) % SLOTS);
        if (s % 40 == 0)
            signal_arm();
        if (slot[i]) {
            CHECK(slot[i][0] == (unsigned char)i && slot[i][len[i] - 1] == (unsigned char)i);
            if (s % 3 == 0) {
                size_t n = shape_size(&x);
                unsigned char *q = SHAPE_REALLOC(slot[i], n);
                if (q) {
                    slot[i] = q;
                    len[i] = n;
                    q[0] = q[n - 1] = (unsigned char)i;
                }
                continue;
            }
            SHAPE_FREE(slot[i]);
        }
        len[i] = shape_size(&x);
        slot[i] = SHAPE_MALLOC(len[i]);
        CHECK(slot[i] != NULL);
        if (slot[i] == NULL)
            break;
        slot[i][0] = slot[i][len[i] - 1] = (unsigned char)i;
        if (s % 300 == 0) {
            // A fork of the loop's own: signals land inside it too.
            pid_t pid = fork();
            if (pid == 0) {
                void *p = SHAPE_MALLOC(100);
                SHAPE_FREE(p);
                test_child_exit(p ? 0 : 1);
            }
            if (pid > 0 && shape_reap(pid) != 0)
                signal_bad++;
        }
    }
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    for (unsigned i = 0; i < SLOTS; i++)
        SHAPE_FREE(slot[i]);
    CHECK(signal_bad == 0);
}

// --- stdio: fork beside fflush(NULL) and an allocating FILE lock holder -----------

static atomic_int stdio_stop;
static FILE *stdio_file;

static void *stdio_flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stdio_stop))
        fflush(NULL);
    return NULL;
}

static void *stdio_reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stdio_stop))
        SHAPE_LOCKED_ALLOC(stdio_file);
    return NULL;
}

// The child: the other threads are gone. Blocks of every kind, freed and
// checked; a block the parent made before the fork, freed; a trim.
static int stdio_child(unsigned char *inherited, size_t n, uint64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (inherited[i] != (unsigned char)i)
            return 2;
    SHAPE_FREE(inherited);
    for (int k = 0; k < 30; k++) {
        size_t len = shape_size(&x);
        unsigned char *p = SHAPE_MALLOC(len);
        if (p == NULL)
            return 3;
        memset(p, 0x5a, len);
        if (p[len - 1] != 0x5a)
            return 3;
        SHAPE_FREE(p);
    }
    SHAPE_TRIM();
    fflush(NULL);
    return 0;
}

static void stdio_round(unsigned seed)
{
    stdio_file = tmpfile();
    CHECK(stdio_file != NULL);
    if (stdio_file == NULL)
        return;
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    // Lines to read, some long enough that reading one takes a large block.
    for (int i = 0; i < 8; i++) {
        size_t n = shape_size(&x);
        for (size_t k = 0; k < n; k++)
            putc('a' + (int)(k % 26), stdio_file);
        putc('\n', stdio_file);
    }
    rewind(stdio_file);
    pthread_t flusher, reader;
    pthread_create(&flusher, NULL, stdio_flusher, NULL);
    pthread_create(&reader, NULL, stdio_reader, NULL);
    int forks = test_under_valgrind() ? 2 : 5, bad = 0;
    for (int f = 0; f < forks; f++) {
        size_t n = shape_size(&x);
        unsigned char *keep = SHAPE_MALLOC(n);
        CHECK(keep != NULL);
        if (keep == NULL)
            break;
        for (size_t i = 0; i < n; i++)
            keep[i] = (unsigned char)i;
        pid_t pid = fork();
        if (pid == 0)
            test_child_exit(stdio_child(keep, n, x));
        if (pid > 0 && shape_reap(pid) != 0)
            bad++;
        SHAPE_FREE(keep);
    }
    atomic_store(&stdio_stop, 1);
    pthread_join(flusher, NULL);
    pthread_join(reader, NULL);
    fclose(stdio_file);
    CHECK(bad == 0);
}

// Run a shape's round `rounds` times, each with its own seed; every round
// must end, and end well.
static void shape_rounds(const char *name, void (*round)(unsigned), long rounds)
{
    // The watchdog bounds each round; the harness's timeout is for one
    // ordinary test, and a loaded machine forks slowly: ten minutes for all.
    alarm(600);
    long hung = 0, failed = 0;
    for (long r = 0; r < rounds && hung < 3; r++) {
        int rc = shape_watch(round, (unsigned)r + 1);
        if (rc == 2 && hung++ == 0)
            fprintf(stderr, "  %s: round %ld hung\n", name, r);
        if (rc == 1 && failed++ == 0)
            fprintf(stderr, "  %s: round %ld failed\n", name, r);
    }
    fprintf(stderr, "  %s: %ld rounds, %ld hung, %ld failed\n", name, rounds, hung, failed);
    CHECK(hung == 0);
    CHECK(failed == 0);
}

// Rounds: 200 (a hang is a race: one round proves nothing), fewer where a
// fork costs much more -- AddressSanitizer 60, ThreadSanitizer 25 (its
// shadow memory makes every fork slow), UBSan 20, memcheck 3 (it runs one
// thread at a time). MALLET_FORK_ROUNDS overrides, for long runs by hand.
static long shape_round_count(void)
{
    static const struct { const char *mode; long rounds; } scale[] = {
        { "asan", 60 }, { "tsan", 25 }, { "ubsan", 20 }, { "valgrind", 3 },
    };
    const char *e = getenv("MALLET_FORK_ROUNDS");
    const char *mode = getenv("MALLET_TEST_MODE");
    if (e && atol(e) > 0)
        return atol(e);
    for (size_t i = 0; mode && i < sizeof scale / sizeof scale[0]; i++)
        if (strcmp(mode, scale[i].mode) == 0)
            return scale[i].rounds;
    return 200;
}

#endif
