// SPDX-License-Identifier: MIT
//
// sysfs.c -- small kernel text files read without allocating.
//
// The files these read are produced by the kernel in one go and are short
// (a cpu list, a mode line, smaps_rollup); a few read(2) calls fill the
// buffer, and a file longer than the buffer is truncated, never overrun.
#define _GNU_SOURCE
#include "sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

ssize_t mallet__sysfs_read(const char *path, char *buf, size_t size)
{
    if (size == 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    close(fd);
    return (ssize_t)len;
}

long mallet__sysfs_field_kb(const char *text, const char *key)
{
    for (const char *line = text; *line;) {
        const char *k = key, *t = line;
        while (*k && *t == *k)
            k++, t++;
        if (*k == 0 && *t == ':') {
            t++;
            while (*t == ' ' || *t == '\t')
                t++;
            if (*t < '0' || *t > '9')
                return -1;
            long v = 0;
            for (; *t >= '0' && *t <= '9'; t++)
                v = v * 10 + (*t - '0');
            return v;
        }
        while (*line && *line != '\n')
            line++;
        if (*line == '\n')
            line++;
    }
    return -1;
}
