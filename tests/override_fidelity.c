// SPDX-License-Identifier: MIT
//
// override_fidelity.c -- a program sees the same process with libmallet as
// with glibc's malloc (the .glibc build is the oracle; tests/secure_suite.sh
// runs the secure build's):
//
//   - a program of one thread keeps one thread, however large its heap
//     grew (glibc keys fork, stdio and more on __libc_single_threaded);
//   - a thread's TLS destructors may free and allocate, before and after
//     libmallet's own thread exit: pthread key destructors that set their
//     key again, up to PTHREAD_DESTRUCTOR_ITERATIONS rounds, and
//     thread_local destructors (__cxa_thread_atexit_impl, what C++
//     registers); the memory of the threads that are gone comes back;
//   - a library that allocates in its constructor and frees in its
//     destructor is opened and closed again and again (dlopen/dlclose),
//     with blocks handed across both ways (fidelity_dso.c, built beside
//     this program);
//   - atexit handlers and a destructor free and allocate at exit;
//   - vfork then exec or _exit, posix_spawn, and clone without CLONE_VM,
//     from a process with a large heap.
#include "override_common.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <time.h>

extern char **environ;

// --- helpers -----------------------------------------------------------------

// A block of n bytes filled with seed's pattern (test_fill).
static unsigned char *made(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    if (p)
        test_fill(p, n, seed);
    return p;
}

// Free a block of made(n, seed); 1 when it was whole.
static int freed_whole(unsigned char *p, size_t n, unsigned seed)
{
    int ok = p != NULL && test_check_fill(p, n, seed) && malloc_usable_size(p) >= n;
    free(p);
    return ok;
}

// A large heap: `bytes` in small blocks of 16..255 bytes and `large` blocks
// of 1..4 MiB (their ends written), each block's first word its length.
typedef struct {
    unsigned char **small;      // the small blocks
    size_t n_small;             // how many
    unsigned char *large[16];   // the large blocks
    size_t n_large;             // how many
} big_heap_t;

static void big_heap_make(big_heap_t *h, size_t bytes, size_t large)
{
    uint64_t x = 12345;
    h->n_small = bytes / 136;
    h->small = malloc(h->n_small * sizeof *h->small);
    CHECK(h->small != NULL);
    if (h->small == NULL)
        h->n_small = 0;
    for (size_t i = 0; i < h->n_small; i++) {
        size_t n = 16 + test_rand(&x) % 240;
        h->small[i] = malloc(n);
        CHECK(h->small[i] != NULL);
        if (h->small[i] == NULL) {
            h->n_small = i;
            break;
        }
        memcpy(h->small[i], &n, sizeof n);
    }
    h->n_large = large < 16 ? large : 16;
    for (size_t i = 0; i < h->n_large; i++) {
        size_t n = ((size_t)1 << 20) + test_rand(&x) % (3u << 20);
        h->large[i] = malloc(n);
        CHECK(h->large[i] != NULL);
        if (h->large[i])
            test_fill_ends(h->large[i], n, (unsigned)i), memcpy(h->large[i], &n, sizeof n);
    }
}

// 1 when every block still holds what was written. Then, with `all`, every
// block is freed; without, the large ones and the first sixteenth of the
// small ones (which lie on a sixteenth of the pages: in a child, the first
// write to each page copies it).
static int big_heap_free(big_heap_t *h, bool all)
{
    int ok = 1;
    for (size_t i = 0; i < h->n_small; i++) {
        size_t n;
        memcpy(&n, h->small[i], sizeof n);
        ok &= n >= 16 && n < 256 && malloc_usable_size(h->small[i]) >= n;
        if (all || i < h->n_small / 16)
            free(h->small[i]);
    }
    for (size_t i = 0; i < h->n_large; i++) {
        size_t n = 0;
        if (h->large[i])
            memcpy(&n, h->large[i], sizeof n);
        ok &= h->large[i] != NULL && test_check_fill(h->large[i] + n - 64, 64, (unsigned)i + 1);
        free(h->large[i]);
    }
    if (all)
        free(h->small);
    return ok;
}

// The wait status of pid.
static int reaped(pid_t pid)
{
    int status = -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

// Everything fd has to say, into buf (NUL-terminated); fd is closed.
static void read_all(int fd, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    close(fd);
}

// On libmallet: the profiler on, sampling one allocation per kb KiB, no
// profile written at exit.
static void prof_on(int kb)
{
    if (!test_on_mallet())
        return;
    mallet_option_set("prof_sample_kb", kb);
    mallet_option_set("prof_at_exit", 0);
    mallet_option_set("prof", 1);
}

// --- one thread stays one thread --------------------------------------------

// Hundreds of MiB of small blocks (past purger_start_mb many times over),
// large blocks made and freed past large_cache_mb, the profiler sampling;
// then the heap goes, the process idles past libmallet's purge delay and
// allocates a little: glibc still sees a program of one thread, and so
// does the kernel.
TEST(a_program_of_one_thread_keeps_one_thread)
{
    CHECK(__libc_single_threaded);
    CHECK(test_threads() == 1);
    prof_on(64);
    size_t n = (size_t)test_scaled(4 << 20, 6), kept = 0;
    void **small = malloc(n * sizeof *small);
    CHECK(small != NULL);
    if (small == NULL)
        return;
    for (; kept < n; kept++) {
        small[kept] = malloc(16 + (kept * 7) % 112);
        if (small[kept] == NULL)
            break;
        *(size_t *)small[kept] = kept;
    }
    CHECK(kept == n);
    enum { LARGE = 32 };
    void *large[LARGE];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < LARGE; i++) {
            size_t len = (size_t)(1 + (i + round) % 8) << 20;
            unsigned char *p = large[i] = malloc(len);
            CHECK(p != NULL);
            if (p)
                p[0] = p[len - 1] = 1;
        }
        for (int i = 0; i < LARGE; i++)
            free(large[i]);
    }
    if (test_on_mallet()) {
        mallet_stats_t s;
        mallet_stats_get(&s);
        CHECK(s.mapped > (48u << 20));
    }
    size_t bad = 0;
    for (size_t i = 0; i < kept; i++) {
        bad += *(size_t *)small[i] != i;
        free(small[i]);
    }
    free(small);
    CHECK(bad == 0);
    struct timespec idle = { 0, 300 * 1000 * 1000 };
    nanosleep(&idle, NULL);
    for (size_t len = 8; len < (4u << 20); len *= 3)
        free(opaque_ptr(malloc(len)));
    CHECK(__libc_single_threaded);
    CHECK(test_threads() == 1);
}

// --- thread exit: TLS destructors that free and allocate --------------------
//
// glibc runs a thread's thread_local destructors first, then its pthread key
// destructors in rounds: each round calls the destructor of every key that
// has a value, in the order the keys were made, and a destructor that sets
// a key again gets another round, up to PTHREAD_DESTRUCTOR_ITERATIONS.
// libmallet's own key (thread.c) is made at its start-up, before the
// program's keys: its destructor runs first in each round, and whatever the
// program's destructors allocate after it must not be lost -- not even in
// the last round, which no round follows.

enum { KEYS = 4, TLS_OBJS = 3, HANDED = KEYS + TLS_OBJS + 1 };

// What one thread's destructors did, for the main thread to check.
typedef struct {
    bool keys;                       // the thread sets the keys
    bool tls;                        // the thread registers thread_local destructors
    atomic_int key_calls[KEYS];      // key destructor calls, per key
    atomic_int tls_calls;            // thread_local destructor calls
    atomic_int bad;                  // blocks found damaged
    unsigned char *handed[HANDED];   // made at thread exit, freed by the main thread
} exit_report_t;

// A key's value: a block that says whose it is.
typedef struct {
    exit_report_t *report;  // the thread's report
    int key;                // index in exit_keys
    int round;              // 1 for the value set by the thread, +1 per destructor round
    size_t len;             // the block's length; past this header it is filled
} key_value_t;

// A thread_local object with a destructor, owning a block.
typedef struct {
    exit_report_t *report;  // the thread's report
    unsigned char *block;   // made by the thread, freed by the destructor
    int index;              // 0..TLS_OBJS-1
} tls_obj_t;

static pthread_key_t exit_keys[KEYS];
static __thread tls_obj_t tls_objs[TLS_OBJS];
extern void *__dso_handle;
int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso_symbol);

static size_t key_len(int key, int round)
{
    static const size_t base[KEYS] = { 24, 200, 3000, 300000 };
    return base[key] + (size_t)round * 8;
}

static size_t handed_len(int i)
{
    return 40 + (size_t)i * 700 + (i == 3 ? 150000 : 0);
}

static size_t tls_len(int i)
{
    static const size_t len[TLS_OBJS] = { 48, 5000, 200000 };
    return len[i];
}

static key_value_t *key_value_make(exit_report_t *r, int key, int round)
{
    size_t len = key_len(key, round);
    key_value_t *v = malloc(len);
    if (v == NULL)
        return NULL;
    *v = (key_value_t){ r, key, round, len };
    test_fill((unsigned char *)(v + 1), len - sizeof *v, (unsigned)round);
    return v;
}

// Free the value; set the key again until the last round glibc runs, and
// in that one hand a new block to the main thread.
static void key_destructor(void *value)
{
    key_value_t *v = value;
    exit_report_t *r = v->report;
    int key = v->key, round = v->round;
    if (!test_check_fill((unsigned char *)(v + 1), v->len - sizeof *v, (unsigned)round) ||
        malloc_usable_size(v) < v->len)
        atomic_fetch_add(&r->bad, 1);
    atomic_fetch_add(&r->key_calls[key], 1);
    free(v);
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS)
        pthread_setspecific(exit_keys[key], key_value_make(r, key, round + 1));
    else
        r->handed[key] = made(handed_len(key), (unsigned)key);
}

static void tls_late_destructor(void *obj)
{
    tls_obj_t *o = obj;
    o->report->handed[HANDED - 1] = made(handed_len(HANDED - 1), HANDED - 1);
    atomic_fetch_add(&o->report->tls_calls, 1);
}

// Free the object's block, hand a new one to the main thread; the first
// one registers one more destructor, which runs too.
static void tls_destructor(void *obj)
{
    tls_obj_t *o = obj;
    if (!freed_whole(o->block, tls_len(o->index), (unsigned)o->index))
        atomic_fetch_add(&o->report->bad, 1);
    o->block = NULL;
    o->report->handed[KEYS + o->index] = made(handed_len(KEYS + o->index), (unsigned)(KEYS + o->index));
    atomic_fetch_add(&o->report->tls_calls, 1);
    if (o->index == 0)
        __cxa_thread_atexit_impl(tls_late_destructor, o, &__dso_handle);
}

static void *exit_thread(void *arg)
{
    exit_report_t *r = arg;
    for (int k = 0; r->keys && k < KEYS; k++)
        pthread_setspecific(exit_keys[k], key_value_make(r, k, 1));
    for (int i = 0; r->tls && i < TLS_OBJS; i++) {
        tls_objs[i] = (tls_obj_t){ r, made(tls_len(i), (unsigned)i), i };
        __cxa_thread_atexit_impl(tls_destructor, &tls_objs[i], &__dso_handle);
    }
    // Pages of several classes in this thread's heap, some freed again.
    void *churn[64];
    for (int i = 0; i < 64; i++)
        churn[i] = malloc(16 + (size_t)i * 40);
    for (int i = 0; i < 64; i += 2)
        free(churn[i]);
    for (int i = 1; i < 64; i += 2)
        free(churn[i]);
    return NULL;
}

static void *idle_thread(void *arg) { return arg; }

// Threads, four at a time, whose destructors free and allocate; then the
// main thread checks what they did, frees what they handed over, and
// allocates again. The memory of a thread that is gone must come back: the
// resident set stops growing after the first quarter of the threads (on
// glibc it grows by less than a MiB over the rest).
static void thread_exit_rounds(bool keys, bool tls)
{
    for (int k = 0; keys && k < KEYS; k++)
        CHECK(pthread_key_create(&exit_keys[k], key_destructor) == 0);
    // glibc keeps a thread's TLS vector with its cached stack: warm up.
    enum { AT_ONCE = 4 };
    pthread_t th[AT_ONCE];
    for (int i = 0; i < AT_ONCE; i++)
        pthread_create(&th[i], NULL, idle_thread, NULL);
    for (int i = 0; i < AT_ONCE; i++)
        pthread_join(th[i], NULL);
    uint64_t start = test_allocated();
    size_t rss_quarter = 0;
    long batches = test_scaled(100, 20), bad = 0, wrong_calls = 0, lost = 0;
    for (long b = 0; b < batches; b++) {
        if (b == batches / 4)
            rss_quarter = test_rss();
        exit_report_t *r[AT_ONCE];
        for (int i = 0; i < AT_ONCE; i++) {
            r[i] = calloc(1, sizeof *r[i]);
            CHECK(r[i] != NULL);
            if (r[i] == NULL)
                return;
            r[i]->keys = keys, r[i]->tls = tls;
            CHECK(pthread_create(&th[i], NULL, exit_thread, r[i]) == 0);
        }
        for (int i = 0; i < AT_ONCE; i++) {
            pthread_join(th[i], NULL);
            for (int k = 0; keys && k < KEYS; k++)
                wrong_calls += atomic_load(&r[i]->key_calls[k]) != PTHREAD_DESTRUCTOR_ITERATIONS;
            wrong_calls += tls && atomic_load(&r[i]->tls_calls) != TLS_OBJS + 1;
            bad += atomic_load(&r[i]->bad);
            for (int h = 0; h < HANDED; h++)
                if ((keys && h < KEYS) || (tls && h >= KEYS))
                    lost += !freed_whole(r[i]->handed[h], handed_len(h), (unsigned)h);
            free(r[i]);
        }
    }
    CHECK(wrong_calls == 0);
    CHECK(bad == 0);
    CHECK(lost == 0);
    // (Under memcheck the resident set is mostly memcheck's own.)
    size_t rss = test_rss();
    if (rss > rss_quarter + (8u << 20))
        fprintf(stderr, "  resident: %zu KiB after %ld threads, %zu KiB after %ld\n",
                rss_quarter >> 10, batches / 4 * AT_ONCE, rss >> 10, batches * AT_ONCE);
    CHECK(rss <= rss_quarter + (8u << 20) || test_under_valgrind());
    // What the destructors freed is there to be used again.
    enum { AGAIN = 2000 };
    unsigned char **again = malloc(AGAIN * sizeof *again);
    CHECK(again != NULL);
    if (again == NULL)
        return;
    for (int i = 0; i < AGAIN; i++)
        again[i] = made(key_len(i % KEYS, 1), (unsigned)i);
    for (int i = 0; i < AGAIN; i++)
        lost += !freed_whole(again[i], key_len(i % KEYS, 1), (unsigned)i);
    free(again);
    CHECK(lost == 0);
    CHECK_ALLOCATED_IS(start);
    if (test_on_mallet()) {
        // Every heap of an exited thread released.
        mallet_stats_t s;
        mallet_stats_get(&s);
        if (s.threads > 1)
            fprintf(stderr, "  thread heaps alive after %ld threads: %llu\n", batches * AT_ONCE,
                    (unsigned long long)s.threads);
        CHECK(s.threads <= 1);
    }
}

TEST(thread_local_destructors_may_free_and_allocate)
{
    thread_exit_rounds(false, true);
}

TEST(thread_key_destructors_may_free_and_allocate_in_every_round)
{
    thread_exit_rounds(true, false);
}

TEST(thread_local_and_key_destructors_together)
{
    thread_exit_rounds(true, true);
}

// --- dlopen and dlclose -----------------------------------------------------

// The library beside this program: build/tests/fidelity_dso.so for
// build/tests/override_fidelity.
static int dso_path(char *path, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", path, size - 32);
    if (n <= 0)
        return 0;
    path[n] = 0;
    char *slash = strrchr(path, '/');
    if (slash == NULL)
        return 0;
    strcpy(slash + 1, "fidelity_dso.so");
    return access(path, R_OK) == 0;
}

typedef struct {
    int (*loads)(void);
    void (*report_to)(long *);
    void *(*make)(size_t, unsigned);
    int (*take)(void *, size_t, unsigned);
    char *(*dup)(const char *);
} dso_t;

static int dso_bind(void *h, dso_t *d)
{
    *(void **)&d->loads = dlsym(h, "fidelity_dso_loads");
    *(void **)&d->report_to = dlsym(h, "fidelity_dso_report_to");
    *(void **)&d->make = dlsym(h, "fidelity_dso_make");
    *(void **)&d->take = dlsym(h, "fidelity_dso_take");
    *(void **)&d->dup = dlsym(h, "fidelity_dso_strdup");
    return d->loads && d->report_to && d->make && d->take && d->dup;
}

TEST(dlopen_dlclose_of_a_library_that_allocates)
{
    char path[PATH_MAX];
    CHECK(dso_path(path, sizeof path));
    if (!dso_path(path, sizeof path))
        return;
    // The first opens leave libc's own bookkeeping behind (the global
    // scope's list grows for RTLD_GLOBAL and stays grown).
    void *h = NULL;
    for (int i = 0; i < 2; i++) {
        h = dlopen(path, RTLD_NOW | (i ? RTLD_GLOBAL : RTLD_LOCAL));
        CHECK(h != NULL && dlclose(h) == 0);
    }
    uint64_t start = test_allocated();
    enum { HELD = 16 };
    unsigned char *from_dso[HELD] = { 0 };  // made by a copy of the library since closed
    size_t from_len[HELD] = { 0 };
    unsigned from_seed[HELD] = { 0 };
    char *names[HELD] = { 0 };              // strdup'ed by the library
    long report[2] = { 0, 0 }, opens = test_scaled(300, 15), bad = 0;
    for (long i = 0; i < opens; i++) {
        h = dlopen(path, RTLD_NOW | (i % 2 ? RTLD_LOCAL : RTLD_GLOBAL));
        dso_t d;
        if (h == NULL || !dso_bind(h, &d)) {
            fprintf(stderr, "  dlopen: %s\n", dlerror());
            CHECK(!"dlopen");
            break;
        }
        d.report_to(report);
        bad += d.loads() != 1;
        int slot = (int)(i % HELD);
        if (from_dso[slot])
            bad += !freed_whole(from_dso[slot], from_len[slot], from_seed[slot]);
        from_len[slot] = 1 + (size_t)(i * 977) % (i % 5 == 0 ? 300000 : 4000);
        from_seed[slot] = (unsigned)i;
        from_dso[slot] = d.make(from_len[slot], from_seed[slot]);
        free(names[slot]);
        char name[32];
        snprintf(name, sizeof name, "open %ld", i);
        names[slot] = d.dup(name);
        bad += names[slot] == NULL || strcmp(names[slot], name) != 0;
        size_t n = 100 + (size_t)(i * 31) % (i % 7 == 0 ? 500000 : 2000);
        bad += !d.take(made(n, (unsigned)i + 1), n, (unsigned)i + 1);
        CHECK(dlclose(h) == 0);
    }
    for (int slot = 0; slot < HELD; slot++) {
        if (from_dso[slot])
            bad += !freed_whole(from_dso[slot], from_len[slot], from_seed[slot]);
        free(names[slot]);
    }
    CHECK(bad == 0);
    // Every close ran the destructor, which found its 48 blocks whole.
    CHECK(report[0] == opens * 48);
    CHECK(report[1] == 0);
    CHECK_ALLOCATED_IS(start);
}

// --- atexit and destructors --------------------------------------------------

static unsigned char *exit_blocks[64];  // 0-31 made by main, 32-63 at exit; all freed at exit
static int exit_armed;                  // this process's exit is the test's

static size_t exit_len(int i)
{
    return 100 + (size_t)i * 300 + (i == 40 ? 400000 : 0);
}

static void exit_free(void)
{
    int whole = 0;
    for (int i = 0; i < 32; i++) {
        whole += freed_whole(exit_blocks[i], exit_len(i), (unsigned)i);
        exit_blocks[i] = NULL;
    }
    printf("atexit: freed %d blocks whole\n", whole);
}

static void exit_late(void)
{
    char *s = strdup("registered at exit");
    printf("atexit: %s\n", s);
    free(s);
}

static void exit_allocate(void)
{
    // Blocks made at exit, for the destructor to free; one more handler.
    for (int i = 32; i < 64; i++)
        exit_blocks[i] = made(exit_len(i), (unsigned)i);
    char *line = NULL;
    if (asprintf(&line, "atexit: made %d blocks", 32) > 0)
        puts(line);
    free(line);
    atexit(exit_late);
}

__attribute__((destructor)) static void exit_destructor(void)
{
    if (!exit_armed)
        return;
    int whole = 0;
    for (int i = 32; i < 64; i++)
        whole += freed_whole(exit_blocks[i], exit_len(i), (unsigned)i);
    printf("destructor: freed %d blocks whole\n", whole);
}

// The child's handlers run in the reverse of their order: the last one
// registered makes blocks and registers one more, which runs next; the
// first frees the blocks main made; then the program's destructor frees
// those made at exit. libmallet's own exit work (statistics, the profile,
// the secure build's heap check) runs among them; stdio flushes last.
TEST(atexit_handlers_and_destructors_free_and_allocate)
{
    static const char expect[] =
        "main: returning\n"
        "atexit: made 32 blocks\n"
        "atexit: registered at exit\n"
        "atexit: freed 32 blocks whole\n"
        "destructor: freed 32 blocks whole\n";
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        exit_armed = 1;
        for (int i = 0; i < 32; i++)
            exit_blocks[i] = made(exit_len(i), (unsigned)i);
        atexit(exit_free);
        atexit(exit_allocate);
        printf("main: returning\n");
        exit(0);
    }
    close(fds[1]);
    char out[1024];
    read_all(fds[0], out, sizeof out);
    int status = reaped(pid);
    if (strcmp(out, expect) != 0)
        fprintf(stderr, "  the child wrote:\n%s", out);
    CHECK(strcmp(out, expect) == 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// --- vfork, posix_spawn, clone ----------------------------------------------

// The child prints a variable of its environment: what exec handed it.
static char *const echo_argv[] = { "sh", "-c", "printf %s \"$FIDELITY_VAR\"", NULL };

TEST(vfork_then_exec_or_exit_beside_a_large_heap)
{
    big_heap_t heap;
    big_heap_make(&heap, (size_t)test_scaled(64 << 20, 8), 12);
    long rounds = test_scaled(40, 8), bad = 0;
    for (long i = 0; i < rounds; i++) {
        char var[64];
        snprintf(var, sizeof var, "FIDELITY_VAR=vfork %ld", i);
        char *envp[] = { var, NULL };
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = vfork();
        if (pid == 0) {
            dup2(fds[1], 1);
            execve("/bin/sh", echo_argv, envp);
            _exit(127);
        }
        close(fds[1]);
        char out[128];
        read_all(fds[0], out, sizeof out);
        int status = reaped(pid);
        bad += strcmp(out, var + strlen("FIDELITY_VAR=")) != 0;
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;

        pid = vfork();
        if (pid == 0)
            _exit((int)(i % 100));
        status = reaped(pid);
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != i % 100;
    }
    CHECK(bad == 0);
    CHECK(big_heap_free(&heap, true));
}

TEST(posix_spawn_of_programs_beside_a_large_heap)
{
    big_heap_t heap;
    big_heap_make(&heap, (size_t)test_scaled(64 << 20, 8), 12);
    long rounds = test_scaled(60, 10), bad = 0;
    char *true_argv[] = { "true", NULL };
    for (long i = 0; i < rounds; i++) {
        pid_t pid;
        int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, true_argv, environ);
        bad += rc != 0 || reaped(pid) != 0;

        char var[64];
        snprintf(var, sizeof var, "FIDELITY_VAR=spawn %ld", i);
        char *envp[] = { var, NULL };
        int fds[2];
        CHECK(pipe(fds) == 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
        rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, echo_argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(fds[1]);
        char out[128];
        read_all(fds[0], out, sizeof out);
        bad += rc != 0 || reaped(pid) != 0;
        bad += strcmp(out, var + strlen("FIDELITY_VAR=")) != 0;
    }
    CHECK(bad == 0);
    CHECK(big_heap_free(&heap, true));
}

// A child of clone() without CLONE_VM: a copy of the process that did not
// go through fork(), so no atfork handler ran. It allocates and frees, and
// frees blocks its parent made; its exit code is its verdict.
typedef struct {
    big_heap_t *heap;  // the parent's heap, copied
    unsigned seed;     // for its own blocks
} clone_arg_t;

static int clone_child(void *arg)
{
    clone_arg_t *a = arg;
    uint64_t x = a->seed;
    unsigned char *mine[256] = { 0 };
    for (int i = 0; i < 4000; i++) {
        int slot = (int)(test_rand(&x) % 256);
        size_t n = 1 + (size_t)(slot * 37 % 1000) + (slot % 32 == 0 ? 200000 : 0);
        if (mine[slot] && !freed_whole(mine[slot], n, (unsigned)slot))
            return 2;
        mine[slot] = made(n, (unsigned)slot);
        if (mine[slot] == NULL)
            return 3;
    }
    for (int slot = 0; slot < 256; slot++) {
        size_t n = 1 + (size_t)(slot * 37 % 1000) + (slot % 32 == 0 ? 200000 : 0);
        if (mine[slot] && !freed_whole(mine[slot], n, (unsigned)slot))
            return 2;
    }
    if (!big_heap_free(a->heap, false))
        return 4;
    return 42;
}

TEST(clone_without_shared_memory_allocates_in_the_child)
{
    big_heap_t heap;
    big_heap_make(&heap, (size_t)test_scaled(32 << 20, 8), 8);
    enum { STACK = 256 * 1024 };
    char *stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    CHECK(stack != MAP_FAILED);
    if (stack == MAP_FAILED)
        return;
    long rounds = test_scaled(16, 4), wrong = 0;
    for (long i = 0; i < rounds; i++) {
        clone_arg_t a = { &heap, (unsigned)i + 1 };
        fflush(NULL);
        pid_t pid = clone(clone_child, stack + STACK, SIGCHLD, &a);
        CHECK(pid > 0);
        if (pid <= 0)
            break;
        int status = reaped(pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 42) {
            if (wrong++ == 0)
                fprintf(stderr, "  clone child: status %#x\n", status);
        }
        // The parent's own heap goes on.
        void *p = malloc(1000 + (size_t)i);
        CHECK(p != NULL);
        free(p);
    }
    CHECK(wrong == 0);
    munmap(stack, STACK);
    CHECK(big_heap_free(&heap, true));
}
