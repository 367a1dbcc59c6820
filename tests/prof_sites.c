// SPDX-License-Identifier: MIT
//
// prof_sites.c -- allocation sites of known size, for the heap profiler's
// end-to-end test (tests/prof.sh). Like violation.c it links no allocator:
// the malloc it calls is the one LD_PRELOAD supplies.
//
//   prof_sites plain          churn_four_hundred, keep_forty, leak_eight
//   prof_sites threads        the same sites in threads of their own; two
//                             threads share the churn and free each
//                             other's blocks
//   prof_sites fork           plain, but after keep_forty it forks a child
//                             (while a thread allocates) that runs
//                             child_twelve and exits with exit(0)
//   prof_sites dump PATH      keep_forty, then mallet_prof_dump(PATH) and
//                             mallet_prof_dump(NULL), found with dlsym
//
// The sites:
//   churn_four_hundred   allocates and frees 400 MiB, never holding more
//                        than one round's batch (at most 4.25 MiB)
//   keep_forty           keeps 40 MiB live until main frees it at the end
//   leak_eight           8 MiB live at exit, never freed
//   child_twelve         12 MiB live at the child's exit (fork mode)
// The churn runs first, so that it is over (its in-use bytes back to 0 and
// its total complete) by the time the live bytes near their peak.
//
// The program prints what is true, one line per figure the test checks:
//   truth ROLE PID WHEN SITE inuse|alloc BYTES SE
// ROLE main or child; WHEN peak (after leak_eight, all three sites done),
// exit (just before the process exits) or dump; BYTES the sum of
// malloc_usable_size over the site's blocks in use at that moment (inuse) or
// ever allocated (alloc); SE the relative standard error of the profile's
// estimate of BYTES.
//
// Why the sizes are mixed the way they are. The profiler samples a block of
// s bytes with probability p = 1 - exp(-s/R), R the mean distance between
// samples (512 KiB by default), and weighs a sampled block by 1/p. The
// estimate is unbiased and its variance is the sum over blocks of
// s^2 (1-p)/p: about s*R for a block much smaller than R, so a site made of
// T bytes in small blocks has a relative standard error of sqrt(R/T), 11% for
// 40 MiB. Per byte, a block of s = kR adds R * k/(e^k - 1) to the variance:
// 1.0 R (k << 1), 0.58 R (512 KiB), 0.31 R (1 MiB), 0.075 R (2 MiB),
// 0.0027 R (4 MiB), nearly 0 from 7 MiB up. To check a site within 10% at
// 4 standard errors its SE must stay under 2.5%.
//
// The SE is not the whole story: an estimate made of few large terms has
// heavy tails. A block of 4 MiB is missed once in 3000 runs (e^-8), and then
// 4 MiB of keep_forty (10%) or half of leak_eight is gone; a single sample
// among small blocks weighs R, 6% of 8 MiB. So no site has blocks between
// 1 MiB and 7 MiB (7 MiB and up: missed less than once in 10^6 runs), and the
// sites of 8 and 12 MiB keep almost nothing in small blocks. (Mixes with
// 2, 3 and 4 MiB blocks that had an SE under 2% missed 10% once in 700 runs,
// by simulation.) With R = 512 KiB (variances in MiB^2):
//   keep_forty    512 KiB small (48 B, 1 KiB, 24 KiB)        0.248
//                 2 x 1 MiB                                  0.313
//                 3 x 7.5 MiB, 15 MiB                        0.000
//                 40 MiB in use: SE 0.75 MiB = 1.87%
//   churn         100 MiB small (64 B .. 32 KiB)             49.5
//                 50 x 2 MiB, 50 x 4 MiB                     4.0
//                 400 MiB allocated: SE 7.3 MiB = 1.83%
//                 (a missed block here is 1% at most)
//   leak_eight    512 B small (64 B), 8 MiB                  0.0003
//                 8 MiB in use: SE 0.016 MiB = 0.2%
//   child_twelve  6 KiB small (32 B, 4 KiB), 12 MiB - 6 KiB  0.003
//                 12 MiB in use: SE 0.05 MiB = 0.45%
// Simulated, each of these misses its figure by more than 10% less than
// once in 10^5 runs (keep_forty: 4 in 2 * 10^6).
// The program computes the SE from the block sizes it got (and from
// MALLET_PROF_SAMPLE_KB when set) and prints it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define SITE __attribute__((noinline))   // a frame of its own on every stack

typedef struct mix {
    size_t size;       // bytes asked for
    unsigned count;    // blocks of that size
} mix_t;

static const mix_t keep_mix[] = {
    { 48, 4096 }, { 1 * KiB, 128 }, { 24 * KiB, 8 },
    { 1 * MiB, 2 }, { 7 * MiB + 512 * KiB, 3 }, { 15 * MiB, 1 },
};
static const mix_t leak_mix[] = {      // and one block realloc'ed to 8 MiB - 512 B
    { 64, 8 },
};
static const mix_t child_mix[] = {
    { 32, 64 }, { 4 * KiB, 1 }, { 12 * MiB - 6 * KiB, 1 },
};
// One round of the churn: this batch of small blocks (256 KiB), and on every
// fourth round one large block, 2 MiB and 4 MiB in turn.
static const mix_t churn_mix[] = {
    { 64, 1024 }, { 1 * KiB, 64 }, { 8 * KiB, 8 }, { 32 * KiB, 2 },
};
#define CHURN_ROUNDS 400
#define CHURN_BATCH  (1024 + 64 + 8 + 2 + 1)
#define NOISE_MAX    20000     // malloc/free pairs of the fork mode's noise thread at most

#define HELD_MAX 8192

typedef struct held {
    void *p[HELD_MAX];         // the blocks a site holds
    unsigned n;                // how many
} held_t;

typedef struct figure {
    double bytes;              // block bytes
    double var;                // variance of the profile's estimate of them
} figure_t;

static held_t keep_held, leak_held, child_held;
static double rate;            // mean bytes between samples
static const char *role = "main";

static void need(void *p)
{
    if (!p) {
        fprintf(stderr, "prof_sites: out of memory\n");
        exit(1);
    }
}

static void count_block(figure_t *f, void *p)
{
    double s = (double)malloc_usable_size(p);
    double q = -expm1(-s / rate);            // the chance the block is sampled
    f->bytes += s;
    f->var += s * s * (1 - q) / q;
}

static figure_t figure_of(const held_t *h)
{
    figure_t f = { 0, 0 };
    for (unsigned i = 0; i < h->n; i++)
        count_block(&f, h->p[i]);
    return f;
}

static void say(const char *when, const char *site, const char *kind, figure_t f)
{
    printf("truth %s %d %s %s %s %.0f %.4f\n", role, (int)getpid(), when, site, kind, f.bytes,
           f.bytes > 0 ? sqrt(f.var) / f.bytes : 0.0);
}

static void hold(held_t *h, void *p)
{
    need(p);
    if (h->n == HELD_MAX) {
        fprintf(stderr, "prof_sites: HELD_MAX too small\n");
        exit(1);
    }
    h->p[h->n++] = p;
}

static void release(held_t *h)
{
    for (unsigned i = 0; i < h->n; i++)
        free(h->p[i]);
    h->n = 0;
}

// --- the sites ---------------------------------------------------------------
// Each site calls malloc itself, each in the same few lines: a shared helper
// would be the innermost frame, the function the profile names.

SITE static void keep_forty(held_t *h)
{
    for (size_t i = 0; i < sizeof keep_mix / sizeof keep_mix[0]; i++)
        for (unsigned j = 0; j < keep_mix[i].count; j++)
            hold(h, keep_mix[i].size == KiB ? calloc(1, KiB) : malloc(keep_mix[i].size));
}

// The last block grows by realloc, which the profiler must follow.
SITE static void leak_eight(held_t *h)
{
    for (size_t i = 0; i < sizeof leak_mix / sizeof leak_mix[0]; i++)
        for (unsigned j = 0; j < leak_mix[i].count; j++)
            hold(h, malloc(leak_mix[i].size));
    void *p = malloc(1 * MiB);
    need(p);
    hold(h, realloc(p, 8 * MiB - 512));
}

SITE static void child_twelve(held_t *h)
{
    for (size_t i = 0; i < sizeof child_mix / sizeof child_mix[0]; i++)
        for (unsigned j = 0; j < child_mix[i].count; j++)
            hold(h, malloc(child_mix[i].size));
}

typedef struct churn {
    unsigned first;            // its rounds: first .. first + rounds - 1
    unsigned rounds;
    pthread_barrier_t *trade;  // NULL: free its own batch; else free the partner's, met here
    void **mine;               // the batch it allocated this round (CHURN_BATCH)
    void **theirs;             // the partner's batch
    figure_t total;            // what it allocated
} churn_t;

SITE static void churn_four_hundred(churn_t *c)
{
    for (unsigned r = c->first; r < c->first + c->rounds; r++) {
        unsigned n = 0;
        for (size_t i = 0; i < sizeof churn_mix / sizeof churn_mix[0]; i++)
            for (unsigned j = 0; j < churn_mix[i].count; j++)
                c->mine[n++] = malloc(churn_mix[i].size);
        if (r % 4 == 0)
            c->mine[n++] = malloc(r % 8 == 0 ? 2 * MiB : 4 * MiB);
        for (unsigned i = 0; i < n; i++) {
            need(c->mine[i]);
            count_block(&c->total, c->mine[i]);
        }
        if (c->trade)
            pthread_barrier_wait(c->trade);
        void **gone = c->trade ? c->theirs : c->mine;
        for (unsigned i = 0; i < CHURN_BATCH; i++) {
            free(gone[i]);
            gone[i] = NULL;
        }
        if (c->trade)
            pthread_barrier_wait(c->trade);    // the partner is done with our batch
    }
}

// Small blocks allocated and freed while the fork mode forks.
static atomic_int noise_started, noise_stop;

SITE static void *fork_noise(void *arg)
{
    (void)arg;
    for (int i = 0; i < NOISE_MAX && !atomic_load(&noise_stop); i++) {
        void *volatile p = malloc(64);
        free(p);
        atomic_store(&noise_started, 1);
    }
    atomic_store(&noise_started, 1);
    return NULL;
}

// --- the modes ---------------------------------------------------------------

static void *churn_thread(void *arg)
{
    churn_four_hundred(arg);
    return NULL;
}

static void *keep_thread(void *arg)
{
    keep_forty(arg);
    return NULL;
}

static void *leak_thread(void *arg)
{
    leak_eight(arg);
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0 || pthread_join(t, NULL) != 0) {
        fprintf(stderr, "prof_sites: cannot run a thread\n");
        exit(1);
    }
}

// The churn in the calling thread, or in two threads trading batches.
static figure_t churn(int threads)
{
    static void *batch[2][CHURN_BATCH];
    churn_t c[2] = {
        { 0, CHURN_ROUNDS, NULL, batch[0], batch[1], { 0, 0 } },
        { CHURN_ROUNDS / 2, CHURN_ROUNDS / 2, NULL, batch[1], batch[0], { 0, 0 } },
    };
    if (!threads) {
        churn_four_hundred(&c[0]);
        return c[0].total;
    }
    pthread_barrier_t trade;
    pthread_t t[2];
    pthread_barrier_init(&trade, NULL, 2);
    c[0].rounds = CHURN_ROUNDS / 2;
    for (int i = 0; i < 2; i++) {
        c[i].trade = &trade;
        if (pthread_create(&t[i], NULL, churn_thread, &c[i]) != 0) {
            fprintf(stderr, "prof_sites: cannot start a churn thread\n");
            exit(1);
        }
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&trade);
    return (figure_t){ c[0].total.bytes + c[1].total.bytes, c[0].total.var + c[1].total.var };
}

// The child: keep_forty's blocks (the parent's copies) and its own, at exit.
static void child(void)
{
    role = "child";
    child_twelve(&child_held);
    say("exit", "keep_forty", "inuse", figure_of(&keep_held));
    say("exit", "child_twelve", "inuse", figure_of(&child_held));
    say("exit", "leak_eight", "inuse", figure_of(&leak_held));
    exit(0);
}

static int forked(void)
{
    pthread_t noise;
    if (pthread_create(&noise, NULL, fork_noise, NULL) != 0)
        return fprintf(stderr, "prof_sites: cannot start the noise thread\n"), 1;
    while (!atomic_load(&noise_started))
        ;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return perror("prof_sites: fork"), 1;
    if (pid == 0)
        child();
    leak_eight(&leak_held);
    atomic_store(&noise_stop, 1);
    pthread_join(noise, NULL);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fprintf(stderr, "prof_sites: the child failed (status %#x)\n", status), 1;
    return 0;
}

static int dump(const char *path)
{
    int (*prof_dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "mallet_prof_dump");
    if (!prof_dump)
        return fprintf(stderr, "prof_sites: no mallet_prof_dump (is libmallet preloaded?)\n"), 1;
    keep_forty(&keep_held);
    say("dump", "keep_forty", "inuse", figure_of(&keep_held));
    fflush(stdout);
    if (prof_dump(path) != 0)
        return perror("prof_sites: mallet_prof_dump(path)"), 1;
    if (prof_dump(NULL) != 0)
        return perror("prof_sites: mallet_prof_dump(NULL)"), 1;
    release(&keep_held);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    const char *kb = getenv("MALLET_PROF_SAMPLE_KB");
    rate = (kb && atof(kb) > 0 ? atof(kb) : 512) * KiB;
    if (strcmp(mode, "dump") == 0 && argc == 3)
        return dump(argv[2]);
    int threads = strcmp(mode, "threads") == 0;
    if (!threads && strcmp(mode, "plain") != 0 && strcmp(mode, "fork") != 0) {
        fprintf(stderr, "usage: prof_sites plain|threads|fork|dump PATH\n");
        return 2;
    }
    figure_t churned = churn(threads);
    if (threads)
        run_thread(keep_thread, &keep_held);
    else
        keep_forty(&keep_held);
    if (strcmp(mode, "fork") == 0) {
        if (forked() != 0)
            return 1;
    } else if (threads) {
        run_thread(leak_thread, &leak_held);
    } else {
        leak_eight(&leak_held);
    }
    figure_t none = { 0, 0 };
    say("peak", "keep_forty", "inuse", figure_of(&keep_held));
    say("peak", "churn_four_hundred", "inuse", none);
    say("peak", "churn_four_hundred", "alloc", churned);
    release(&keep_held);
    say("exit", "leak_eight", "inuse", figure_of(&leak_held));
    say("exit", "keep_forty", "inuse", none);
    say("exit", "child_twelve", "inuse", none);
    return 0;
}
