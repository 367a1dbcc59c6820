// SPDX-License-Identifier: MIT
//
// tools_prog.c -- a program with known allocations, for the tests of the
// mallet command (tests/tools_*.sh compile it with -O0, so no call is
// optimised away). Modes:
//   known          a fixed sequence of the malloc family between two marker
//                  allocations (777777 and 888888 bytes), for the trace round
//                  trip; the expected trace lines are in tools_trace.sh
//   threads N M    N threads, M operations each, random sizes; prints the
//                  number of operations it made
//   fork           allocates, forks; the child and the parent each allocate
//                  and free, the parent waits
//   crash          allocates, then dies of SIGSEGV
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;          // keeps every pointer observable
static void *volatile nil;           // NULL the compiler cannot see: realloc(nil, n) and
                                     // free(nil) are not folded into malloc(n) and nothing

static int known(void)
{
    void *m = malloc(777777);
    free(m);
    char *a = malloc(100);                         // a 0 100 (ids after the marker: 1..)
    char *b = calloc(3, 40);                       // a 120
    a = realloc(a, 200);                           // r 200
    free(b);                                       // f
    void *c = aligned_alloc(64, 256);              // a 256
    void *d = NULL;
    if (posix_memalign(&d, 32, 48) != 0)           // a 48
        return 1;
    void *e = memalign(128, 72);                   // a 72
    void *f = realloc(nil, 10);                    // r 10 (a new id)
    sink = a, sink = c, sink = d, sink = e, sink = f;
    free(a);                                       // f
    free(c);                                       // f
    free(d);                                       // f
    free(e);                                       // f
    free(f);                                       // f
    free(nil);                                     // f -1
    m = malloc(888888);
    free(m);
    return 0;
}

typedef struct worker {
    int ops;                                       // operations to make
    int made;                                      // operations made
    unsigned seed;                                 // its random stream
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    void *slot[64] = { 0 };
    for (int i = 0; i < w->ops; i++) {
        int k = (int)(rand_r(&w->seed) % 64);
        size_t n = 1 + rand_r(&w->seed) % 2000;
        if (!slot[k]) {
            slot[k] = malloc(n);
        } else if (rand_r(&w->seed) % 4 == 0) {
            slot[k] = realloc(slot[k], n);
        } else {
            free(slot[k]);
            slot[k] = NULL;
        }
        w->made++;
        memset(slot[k] ? slot[k] : (void *)&n, 1, 1);
    }
    for (int k = 0; k < 64; k++) {
        if (slot[k]) {
            free(slot[k]);
            w->made++;
        }
    }
    return NULL;
}

static int threads(int n, int ops)
{
    pthread_t t[64];
    worker_t w[64];
    int total = 0;
    if (n < 1 || n > 64)
        return 2;
    for (int i = 0; i < n; i++) {
        w[i] = (worker_t){ .ops = ops, .seed = 1234u + (unsigned)i };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        total += w[i].made;
    }
    printf("%d\n", total);
    return 0;
}

static int forks(void)
{
    void *p = malloc(1000);
    pid_t pid = fork();
    if (pid == 0) {
        void *q = malloc(2000);
        sink = q;
        free(q);
        free(p);                                   // the parent's block: skipped in the child's trace
        exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    void *r = malloc(3000);
    sink = r;
    free(r);
    free(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "known"))
        return known();
    if (argc >= 4 && !strcmp(argv[1], "threads"))
        return threads(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 2 && !strcmp(argv[1], "fork"))
        return forks();
    if (argc >= 2 && !strcmp(argv[1], "crash")) {
        sink = malloc(10);
        raise(SIGSEGV);
    }
    fprintf(stderr, "usage: tools_prog known | threads N M | fork | crash\n");
    return 2;
}
