// SPDX-License-Identifier: MIT
//
// lib_rss.c -- RSS over time after a big free: allocate MIB mebibytes in
// blocks of 16..256 bytes, free them all, then print the resident set every
// 100 ms for 3 s while idle ("seconds rss_mib" lines, the first at t=0
// just before the free, labelled "peak").
//
//   lib_rss MIB [MODE]
//
// MODE says what the idle process does, since an allocator can only act
// from a call or from a thread of its own:
//   calls     one malloc(100) and its free at every sample (the default):
//             a process that idles but still calls the allocator now and
//             then, as an event loop does;
//   silent    no allocator call at all while idle: /proc is read with
//             open/read, and the output goes through a stdout buffer that
//             exists before the free;
//   threaded  silent, in a process that started (and joined) a thread of
//             its own before allocating, so a background thread of the
//             allocator's may run.
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// Resident MiB from /proc/self/statm, with no allocation.
static double rss_mib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = strchr(buf, ' ');
    long resident = p ? atol(p + 1) : 0;
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void *nothing(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    const char *mode = argc > 2 ? argv[2] : "calls";
    int calls = strcmp(mode, "calls") == 0;
    if (strcmp(mode, "threaded") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) != 0 || pthread_join(t, NULL) != 0)
            return 1;
    }
    void **head = NULL;
    size_t total = 0;
    uint64_t s = 12345;
    while (total < (mib << 20)) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t n = 16 + (size_t)(s % 241);
        void **b = malloc(n);
        b[0] = head;
        head = b;
        total += n;
    }
    printf("peak %.1f\n", rss_mib());
    fflush(stdout);
    while (head) {
        void **next = head[0];
        free(head);
        head = next;
    }
    for (int i = 0; i <= 30; i++) {
        printf("%.1f %.1f\n", i / 10.0, rss_mib());
        fflush(stdout);
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
        if (calls) {
            void *volatile p = malloc(100);
            free(p);
        }
    }
    return 0;
}
