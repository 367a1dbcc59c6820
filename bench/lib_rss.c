// SPDX-License-Identifier: MIT
//
// lib_rss.c -- RSS over time after a big free: allocate MIB mebibytes in
// blocks of 16..256 bytes, free them all, then print the resident set every
// 100 ms for 3 s while the process sits idle ("seconds rss_mib" lines, the
// first at t=0 just before the free, labelled "peak").
//
//   lib_rss MIB
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double rss_mib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
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
    while (head) {
        void **next = head[0];
        free(head);
        head = next;
    }
    for (int i = 0; i <= 30; i++) {
        printf("%.1f %.1f\n", i / 10.0, rss_mib());
        fflush(stdout);
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
    }
    return 0;
}
