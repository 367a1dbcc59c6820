// SPDX-License-Identifier: MIT
//
// test.h -- the test harness. Include it once per test program:
//
//   TEST(name) { CHECK(expr); ... }
//
// Each TEST runs in a child process of its own under an alarm (TEST_TIMEOUT
// seconds, default 120), so a crash or a hang fails that test alone. The
// program ends with the line "N passed, N failed, N skipped" and exits non-zero
// when anything failed. `prog NAME` runs the tests whose name contains NAME.
//
// test_run_child(fn, arg, out, size) runs fn(arg) in a child with stderr
// captured into out and returns its wait status. test_dies(fn, arg, needle)
// tells whether such a child died (a signal or a non-zero exit) printing
// `needle`.
// TEST_SKIP("why") ends the current test as skipped. test_threads() counts
// the threads of the process.
#ifndef MALLET_TEST_H
#define MALLET_TEST_H

#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct { const char *name; void (*fn)(void); } test_case_t;

static test_case_t test_cases[256];
static int test_count;
static int test_failures;               // CHECK failures in this process

#define TEST(name)                                                          \
    static void test_##name(void);                                          \
    __attribute__((constructor)) static void test_register_##name(void)     \
    { test_cases[test_count++] = (test_case_t){ #name, test_##name }; }     \
    static void test_##name(void)

#define CHECK(expr)                                                          \
    do { if (!(expr)) { test_failures++;                                     \
        fprintf(stderr, "  CHECK failed: %s  (%s:%d)\n", #expr, __FILE__, __LINE__); \
    } } while (0)

#define TEST_SKIP(why) \
    do { fprintf(stderr, "  skipped: %s\n", why); fflush(stderr); _exit(77); } while (0)

// True in the suite's memcheck mode (tests/run.sh sets MALLET_TEST_MODE):
// loops shrink there, and misuse that memcheck reports itself is skipped.
static inline bool test_under_valgrind(void)
{
    const char *m = getenv("MALLET_TEST_MODE");
    return m && strcmp(m, "valgrind") == 0;
}

// The threads of this process, as /proc/self/task lists them (0 when it
// cannot be read).
static inline int test_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

// End a forked child (code 0..3) of a process with threads. Under memcheck
// the child hands its verdict to a shell (execve is async-signal-safe): its
// leak check would count as lost the blocks that only the threads that did
// not come along could reach.
static inline void test_child_exit(int code)
{
    if (test_under_valgrind()) {
        static const char *const codes[] = { "exit 0", "exit 1", "exit 2", "exit 3" };
        execl("/bin/sh", "sh", "-c", codes[code & 3], (char *)NULL);
    }
    _exit(code);
}

// The wait status of a child that ran fn(arg); its stderr goes to out.
static inline int test_run_child(void (*fn)(void *), void *arg, char *out, size_t outsz)
{
    int fds[2];
    out[0] = 0;
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    // Kept up to outsz - 1 bytes; the rest read and dropped, so the child
    // never dies of a closed pipe.
    char sink[512];
    while ((n = len + 1 < outsz ? read(fds[0], out + len, outsz - 1 - len) : read(fds[0], sink, sizeof sink)) > 0)
        if (len + 1 < outsz)
            len += (size_t)n;
    out[len] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

// 1 when fn(arg) dies and its stderr contains needle; the text goes to out.
static inline int test_dies(void (*fn)(void *), void *arg, const char *needle,
                            char *out, size_t outsz)
{
    int status = test_run_child(fn, arg, out, outsz);
    int died = status != -1 && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
    return died && strstr(out, needle) != NULL;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    const char *t = getenv("TEST_TIMEOUT");
    unsigned timeout = t ? (unsigned)atoi(t) : 120;
    for (int i = 0; i < test_count; i++) {
        if (argc > 1 && !strstr(test_cases[i].name, argv[1]))
            continue;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(timeout);
            test_cases[i].fn();
            fflush(NULL);
            _exit(test_failures ? 1 : 0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
            printf("ok    %s\n", test_cases[i].name);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            skipped++;
            printf("skip  %s\n", test_cases[i].name);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("FAIL  %s (signal %d%s)\n", test_cases[i].name, WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? ", timeout" : "");
            else
                printf("FAIL  %s (exit %d)\n", test_cases[i].name, WEXITSTATUS(status));
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif
