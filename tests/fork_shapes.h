// SPDX-License-Identifier: MIT
//
// fork_shapes.h -- the three ways a fork used to hang, as rounds run many
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
//   single  glibc's tst-mallocfork2: a process with one thread, signalled
//           by a helper process; the handler forks while the main thread
//           is inside fork, malloc or free, and the heap grows past every
//           threshold the allocator has. glibc's fork takes no lock in a
//           process of one thread, which is what makes this safe: the
//           process must still have one thread at the end.
//
// The includer defines the allocator under test before including this:
// SHAPE_MALLOC, SHAPE_REALLOC, SHAPE_FREE, SHAPE_TRIM(), SHAPE_LOCKED_ALLOC(f)
// for the stdio shape's third thread: allocate while holding f's lock, and
// SHAPE_PROF_ON(): turn the heap profiler on, sampling often, and
// SHAPE_MAPPED(): the bytes the allocator has mapped (both nothing on
// glibc).
#ifndef MALLET_FORK_SHAPES_H
#define MALLET_FORK_SHAPES_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/single_threaded.h>
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

// --- single: fork from a signal handler in a process of one thread -------------
//
// The heap goes past libmallet's thresholds (options.h): 12 MiB of small
// blocks and 24 large ones of 128 KiB to 8 MiB, about 110 MiB mapped (past
// purger_start_mb, 32: the purger must not start in a process with no
// thread of its own), the large ones made, resized and freed until far
// more than large_cache_mb (64) has gone through the cache, twice all at
// once, and the profiler sampling one allocation per 16 KiB. Only the ends
// of a large block are written: after each fork the parent's first write
// to a page faults, and that is most of a fork's cost. The main thread
// wakes the helper before each of its forks and as often again between;
// the helper waits 0-1.5 ms (a fork of this heap takes about one),
// signals, and waits for the handler's word before it reads the next
// wake-up: one signal at a time, so the main thread always gets on (a
// signal per fork would starve it under memcheck).

enum { SINGLE_ELSE, SINGLE_FORK, SINGLE_MALLOC, SINGLE_FREE };

static volatile sig_atomic_t single_in;     // what the main thread is in: SINGLE_*
static volatile sig_atomic_t single_bad;    // forks that failed
static volatile long single_hits[4];        // handler forks, by single_in
static int single_go = -1;                  // pipe to the helper: signal soon
static int single_ack = -1;                 // pipe to the helper: a handler is done
static unsigned char **volatile single_small; // the round's small blocks

// Counted over all the rounds of a test, in memory shared with the rounds.
static struct { long forks, in[4]; } *single_tally;

static void single_fork(int sig)
{
    (void)sig;
    int saved = errno;
    single_hits[single_in]++;
    pid_t pid = fork();
    if (pid == 0)
        test_child_exit(0);
    if (pid < 0 || shape_reap(pid) != 0)
        single_bad++;
    char c = 0;
    if (write(single_ack, &c, 1) != 1)
        single_bad++;
    errno = saved;
}

// The helper process: on each wake-up (those that came meanwhile count as
// one), wait a little, signal, wait for the handler.
static void single_sender(pid_t target, int go, int ack, uint64_t x)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != target)
        _exit(0);
    char buf[256];
    while (read(go, buf, sizeof buf) > 0) {
        struct timespec nap = { 0, (long)(shape_next(&x) % 1500) * 1000 };
        nanosleep(&nap, NULL);
        if (kill(target, SIGUSR1) != 0 || read(ack, buf, 1) != 1)
            _exit(1);
    }
    _exit(0);
}

static void single_wake(void)
{
    char c = 0;
    if (write(single_go, &c, 1) != 1 && errno != EAGAIN)
        single_bad++;
}

// A fork of the main thread's own; its child allocates a little.
static void single_fork_main(void)
{
    single_wake();
    single_in = SINGLE_FORK;
    pid_t pid = fork();
    single_in = SINGLE_ELSE;
    if (pid == 0) {
        void *p = SHAPE_MALLOC(100);
        SHAPE_FREE(p);
        test_child_exit(p ? 0 : 1);
    }
    if (pid < 0 || shape_reap(pid) != 0)
        single_bad++;
}

// A block that tells its own length: the length in its first word, its low
// byte at the end.
static void single_mark(unsigned char *p, size_t n)
{
    memcpy(p, &n, sizeof n);
    p[n - 1] = (unsigned char)n;
}

static int single_whole(const unsigned char *p)
{
    size_t n;
    memcpy(&n, p, sizeof n);
    return p[n - 1] == (unsigned char)n;
}

static unsigned char *single_malloc(size_t n)
{
    single_in = SINGLE_MALLOC;
    unsigned char *p = SHAPE_MALLOC(n);
    single_in = SINGLE_ELSE;
    CHECK(p != NULL);
    if (p)
        single_mark(p, n);
    return p;
}

static unsigned char *single_realloc(unsigned char *p, size_t n)
{
    CHECK(single_whole(p));
    single_in = SINGLE_MALLOC;
    unsigned char *q = SHAPE_REALLOC(p, n);
    single_in = SINGLE_ELSE;
    CHECK(q != NULL);
    if (q == NULL)
        return p;
    single_mark(q, n);
    return q;
}

static void single_free(unsigned char *p)
{
    if (p == NULL)
        return;
    CHECK(single_whole(p));
    single_in = SINGLE_FREE;
    SHAPE_FREE(p);
    single_in = SINGLE_ELSE;
}

static size_t single_small_size(uint64_t *x)
{
    return 16 + shape_next(x) % 400;
}

static size_t single_large_size(uint64_t *x)
{
    return 128 * 1024 + shape_next(x) % (8 << 20);
}

// ThreadSanitizer's runtime keeps a thread of its own: no process is
// single-threaded there, so libmallet's purger may start (its fork holds a
// signal back until the call returns, so the handler never lands inside).
// The shape still runs; what it asserts of the threads does not.
#ifdef __SANITIZE_THREAD__
#define SINGLE_THREADED() 1
#else
#define SINGLE_THREADED() (__libc_single_threaded && test_threads() == 1)
#endif

static void single_round(unsigned seed)
{
    CHECK(SINGLE_THREADED());
    SHAPE_PROF_ON();
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    int go[2], ack[2];
    int piped = pipe(go) == 0 && pipe(ack) == 0 && fcntl(go[1], F_SETFL, O_NONBLOCK) == 0;
    CHECK(piped);
    if (!piped)
        return;
    single_go = go[1], single_ack = ack[1];
    struct sigaction sa = { 0 };
    sa.sa_handler = single_fork;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid(), sender = fork();
    if (sender == 0) {
        close(go[1]);
        close(ack[1]);
        single_sender(parent, go[0], ack[0], x);
    }
    close(go[0]);
    close(ack[0]);
    CHECK(sender > 0);

    enum { SMALL_BYTES = 12 << 20, LARGE = 24 };
    size_t n_small = SMALL_BYTES / 216, made = 0;
    unsigned char **small = single_small = SHAPE_MALLOC(n_small * sizeof *small);
    unsigned char *large[LARGE] = { 0 };
    CHECK(small != NULL);
    if (small == NULL)
        return;
    for (; made < n_small; made++) {
        if (made % 12500 == 0)
            single_wake();
        if (made % 25000 == 12500)
            single_fork_main();
        if ((small[made] = single_malloc(single_small_size(&x))) == NULL)
            break;
    }
    long steps = test_under_valgrind() ? 24 : 48;
    uint64_t peak = 0;
    for (long s = 0; s < steps && made > 0; s++) {
        unsigned i = (unsigned)(shape_next(&x) % LARGE);
        if (s == steps / 3 || s == 2 * steps / 3)
            for (unsigned k = 0; k < LARGE; k++)
                single_free(large[k]), large[k] = NULL;
        if (s % 12 == 0)
            single_wake();
        if (s % 24 == 12)
            single_fork_main();
        if (large[i] && s % 3 == 0) {
            large[i] = single_realloc(large[i], single_large_size(&x));
        } else {
            single_free(large[i]);
            large[i] = single_malloc(single_large_size(&x));
        }
        uint64_t mapped = SHAPE_MAPPED();
        peak = mapped > peak ? mapped : peak;
        for (int k = 0; k < 16; k++) {
            size_t j = shape_next(&x) % made;
            if (k % 2)
                small[j] = single_realloc(small[j], single_small_size(&x));
            else
                single_free(small[j]), small[j] = single_malloc(single_small_size(&x));
        }
    }
    // Well past purger_start_mb: the purger would have started by now.
    CHECK(peak == 0 || peak > (48u << 20));
    CHECK(SINGLE_THREADED());

    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    kill(sender, SIGKILL);
    shape_reap(sender);
    // Every block whole; the first sixteenth of the small ones freed, which
    // lie on a sixteenth of the pages (the first write to each page since
    // the last fork faults: freeing all of them would cost as much as the
    // round). The rest stay reachable from single_small.
    for (unsigned k = 0; k < LARGE; k++)
        single_free(large[k]);
    for (size_t i = 0; i < made; i++) {
        CHECK(single_whole(small[i]));
        if (i < made / 16)
            single_free(small[i]), small[i] = NULL;
    }
    CHECK(single_bad == 0);
    long forks = 0;
    for (int k = 0; k < 4; k++) {
        forks += single_hits[k];
        __atomic_fetch_add(&single_tally->in[k], single_hits[k], __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&single_tally->forks, forks, __ATOMIC_RELAXED);
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

// Rounds of the single shape (one at least), and what the signals landed in.
static void single_rounds(long rounds)
{
    if (rounds < 1)
        rounds = 1;
    single_tally = mmap(NULL, sizeof *single_tally, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(single_tally != MAP_FAILED);
    if (single_tally == MAP_FAILED)
        return;
    shape_rounds("single", single_round, rounds);
    fprintf(stderr, "  single: %ld forks from the handler: %ld inside fork, %ld inside malloc, "
            "%ld inside free\n", single_tally->forks, single_tally->in[SINGLE_FORK],
            single_tally->in[SINGLE_MALLOC], single_tally->in[SINGLE_FREE]);
    CHECK(single_tally->forks > 0);
    munmap(single_tally, sizeof *single_tally);
}

#endif
